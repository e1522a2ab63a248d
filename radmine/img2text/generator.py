"""A CNN + GRU annotation generator (Shin et al., CVPR 2016 "Learning to read chest X-rays").

Shin et al. encoded each chest X-ray with an ImageNet CNN, used the CNN
features to initialise the state of a recurrent network (LSTM/GRU) and let
the RNN write the image's MeSH-style annotation word by word (e.g.
``opacity lung base left mild``), scored with BLEU-1..4. This module is the
small, CPU-friendly form of that cascade:

* **image side** -- frozen CNN features from :class:`radmine.ImageEmbedder`
  (``backbone``, cached in ``cache_dir``), standardised with the training
  mean / std and projected (``Linear + tanh``) to the GRU's initial hidden
  state, as in the paper;
* **text side** -- learned word embeddings, one GRU layer, a softmax over the
  training vocabulary; trained with teacher forcing (cross-entropy of every
  next token, ``<eos>`` included);
* **early stopping** on a held-out part of the *training* cases (split by
  patient / case, a case is never split) on the mean dev BLEU-1..4 of the
  greedy output;
* **decoding** -- greedy or beam search (``beam_size``; beams are ranked by
  their total log-probability, so ``beam_size=1`` is exactly greedy).

The training sequences come from :func:`annotation_sequences` unless given:
Open-i MeSH ``major`` terms, MedPix-style caption findings (weak labels of the
``ct_mr`` vocabulary) or the synthetic corpus's truth tables.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radmine._io import atomic_write_bytes, atomic_write_json, fingerprint, warn_if_other_version
from radmine._validation import check_int, check_is_fitted, check_option
from radmine.base import BaseEstimator, derived_seed
from radmine.corpus import Corpus
from radmine.img2text import training as tr
from radmine.img2text.metrics import bleu_scores
from radmine.img2text.training import check_features as _check_features
from radmine.img2text.training import restrict_split as _restrict_split
from radmine.nn import Trainer, cpu_threads, image_frame, local_torch_seed, resolve_device, split_by_group

logger = logging.getLogger(__name__)

__all__ = ["SEQUENCE_SOURCES", "SPECIAL_TOKENS", "AnnotationGenerator", "annotation_sequences"]

#: ``source`` values of :func:`annotation_sequences`
SEQUENCE_SOURCES = ("auto", "mesh", "captions", "reports", "truth")
#: the first four entries of every ``vocabulary_``
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
PAD, BOS, EOS, UNK = 0, 1, 2, 3
SEQUENCE_COLUMNS = ["image_id", "sequence"]
MODEL_FILE = "generator.safetensors"
CONFIG_FILE = "generator.json"
_FORMAT = "radmine-annotation-generator"
_WORD = re.compile(r"[a-z0-9]+")
_SKIP_WORDS = {"and", "or", "of", "the", "nos", "see", "not", "specified"}


# ---------------------------------------------------------------------------
# sequences
# ---------------------------------------------------------------------------
def _words(value: Any) -> list[str]:
    """Lower-case alphanumeric words of a MeSH term / qualifier (``"aorta, thoracic"`` -> ``aorta thoracic``)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return _WORD.findall(str(value).lower())


def _slug(value: Any) -> str | None:
    """One token for a categorical field: ``"Brain and Neuro"`` -> ``brain-neuro``; None when empty."""
    words = [w for w in _words(value) if w not in _SKIP_WORDS]
    return "-".join(words) if words else None


def _as_list(value: Any) -> list:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _mesh_sequences(corpus: Corpus, max_terms: int) -> pd.DataFrame:
    ann = corpus.annotations
    major = ann[ann["kind"].astype(str) == "mesh_major"]
    if not len(major):
        raise ValueError("annotation_sequences: source='mesh' needs annotations with kind == 'mesh_major' (Open-i); "
                         f"the corpus has kinds {sorted(ann['kind'].dropna().astype(str).unique())}.")
    seq_of: dict[Any, str] = {}
    for rid, grp in major.groupby("report_id", sort=False):
        toks: list[str] = []
        for _, row in grp.head(max_terms).iterrows():
            toks += _words(row["term"])
            for q in _as_list(row["qualifiers"]):
                toks += _words(q)
        if toks:
            seq_of[rid] = " ".join(toks)
    im = corpus.images
    if len(im) and "report_id" in im.columns:
        seq = im["report_id"].map(seq_of)
        out = pd.DataFrame({"image_id": im["image_id"].to_numpy(), "sequence": seq.to_numpy()})
    else:
        out = pd.DataFrame(columns=SEQUENCE_COLUMNS)
    return out[out["sequence"].notna()].reset_index(drop=True)


def _finding_tokens(texts: list[str], vocabulary: Any, max_findings: int) -> list[list[str]]:
    """Positive findings of each text, in vocabulary order (the derived "normal" entry left out)."""
    from radmine.labels.labeler import label_reports
    from radmine.labels.vocabulary import load_vocabulary

    if not texts:
        return []
    vocab = load_vocabulary(vocabulary)
    normal = {f.name for f in vocab.findings if getattr(f, "kind", None) == "normal"}
    labels = label_reports(list(texts), vocabulary=vocab)
    names = [c for c in labels.columns if c in {f.name for f in vocab.findings} and c not in normal]
    pos = labels[names].to_numpy(dtype=float) == 1.0
    return [[names[j].replace("_", "-") for j in np.flatnonzero(row)][:max_findings] for row in pos]


def _caption_like_sequences(corpus: Corpus, texts: pd.Series, vocabulary: Any, max_findings: int) -> pd.DataFrame:
    im = corpus.images
    keep = texts.notna() & texts.astype(str).str.strip().ne("")
    im, texts = im[keep.to_numpy()], texts[keep]
    findings = _finding_tokens(texts.astype(str).tolist(), vocabulary, max_findings)
    region_col = next((c for c in ("location", "body_part", "region") if c in im.columns), None)
    seqs = []
    for (_, row), fnd in zip(im.iterrows(), findings):
        toks = [_slug(row.get("modality")), _slug(row.get("plane")), _slug(row.get(region_col)) if region_col else None]
        seqs.append(" ".join([t for t in toks if t] + fnd))
    out = pd.DataFrame({"image_id": im["image_id"].to_numpy(), "sequence": seqs}, columns=SEQUENCE_COLUMNS)
    return out[out["sequence"].str.len() > 0].reset_index(drop=True)


def _truth_sequences(corpus: Corpus, max_findings: int) -> pd.DataFrame:
    ti = corpus["truth_images"]
    seqs = []
    for _, row in ti.iterrows():
        toks = [_slug(row.get("modality")), _slug(row.get("region"))]
        fnd = []
        if bool(row.get("has_lesion")) and _slug(row.get("lesion_type")):
            fnd.append(_slug(row.get("lesion_type")))
        diffuse = row.get("diffuse_findings")
        if isinstance(diffuse, str) and diffuse.strip():
            fnd += [s for s in (_slug(d) for d in diffuse.split(",")) if s]
        fnd = fnd[:max_findings] or ["normal"]
        seqs.append(" ".join([t for t in toks if t] + fnd))
    return pd.DataFrame({"image_id": ti["image_id"].to_numpy(), "sequence": seqs}, columns=SEQUENCE_COLUMNS)


def _resolve_source(corpus: Corpus, source: str) -> str:
    if source != "auto":
        return source
    ann = corpus.annotations
    if len(ann) and (ann["kind"].astype(str) == "mesh_major").any():
        return "mesh"
    if "caption" in corpus.images.columns and corpus.images["caption"].notna().any():
        return "captions"
    if "truth_images" in corpus.tables:
        return "truth"
    if len(corpus.reports) and len(corpus.images):
        return "reports"
    raise ValueError("annotation_sequences: the corpus has no MeSH annotations, captions, truth_images or "
                     "reports to build sequences from.")


def annotation_sequences(
    corpus: Corpus,
    *,
    source: str = "auto",
    vocabulary: Any = "ct_mr",
    max_findings: int = 3,
    max_terms: int = 1,
) -> pd.DataFrame:
    """Open-i-style label sequences, one per image, for :class:`AnnotationGenerator`.

    Recipes (``source``):

    ``"mesh"`` (Open-i, Shin et al. 2016)
        The report's first ``max_terms`` MeSH ``major`` annotations
        (``corpus.annotations`` with ``kind == "mesh_major"``), each as its
        head term then its qualifiers, split into lower-case words:
        ``Opacity/lung/base/left/mild`` -> ``opacity lung base left mild``;
        ``normal`` for normal reports. Every image of the report gets it.
    ``"captions"`` (MedPix and other captioned images)
        ``<modality> <plane> <region> <finding> ...``: the image's
        ``modality``, ``plane`` and region (``location``, else
        ``body_part``/``region``) as one lower-case token each (words joined
        with ``-``, e.g. ``brain-neuro``), then the findings that
        :func:`radmine.label_reports` marks *positive* (value 1, not negated
        nor uncertain) in the image's caption with ``vocabulary``, in the
        vocabulary's order (``mass``, ``mass-effect``, ``hemorrhage``, ...),
        at most ``max_findings``; the derived "no finding" entry is left out.
        Images without a caption get no sequence.
    ``"reports"``
        The same recipe with the image's report text in place of the caption.
    ``"truth"`` (the synthetic corpus, a known answer)
        ``<modality> <region> <lesion type> <diffuse findings>`` from the
        ``truth_images`` table, ``normal`` when the image shows none.
    ``"auto"``
        ``"mesh"`` when the corpus has MeSH major annotations, else
        ``"captions"`` when images have captions, else ``"truth"`` when it
        has a ``truth_images`` table, else ``"reports"``.

    Parameters
    ----------
    corpus : Corpus
    source : {"auto", "mesh", "captions", "reports", "truth"}, default "auto"
    vocabulary : str, path, dict or Vocabulary, default "ct_mr"
        Weak-label vocabulary of the captions / reports recipes.
    max_findings : int, default 3
        Findings kept per sequence (captions, reports, truth).
    max_terms : int, default 1
        MeSH major terms kept per sequence (mesh).

    Returns
    -------
    DataFrame
        ``image_id, sequence`` (space-separated tokens), one row per image
        that has a sequence, in ``corpus.images`` order.
    """
    if not isinstance(corpus, Corpus):
        raise TypeError(f"annotation_sequences expects a radmine.Corpus, got {type(corpus).__name__}.")
    check_option(source, "source", "annotation_sequences", SEQUENCE_SOURCES)
    check_int(max_findings, "max_findings", "annotation_sequences", min_value=1)
    check_int(max_terms, "max_terms", "annotation_sequences", min_value=1)
    source = _resolve_source(corpus, source)
    if source == "mesh":
        return _mesh_sequences(corpus, max_terms)
    if source == "truth":
        if "truth_images" not in corpus.tables:
            raise ValueError("annotation_sequences: source='truth' needs a 'truth_images' table (the synthetic corpus).")
        return _truth_sequences(corpus, max_findings)
    im = corpus.images
    if source == "captions":
        if "caption" not in im.columns or not im["caption"].notna().any():
            raise ValueError("annotation_sequences: source='captions' needs an images.caption column with text.")
        texts = im["caption"]
    else:
        text_of = corpus.reports.set_index("report_id")["text"]
        texts = im["report_id"].map(text_of)
    return _caption_like_sequences(corpus, texts, vocabulary, max_findings)


def _tokens(seq: Any, what: str) -> list[str]:
    if isinstance(seq, str):
        return seq.split()
    if seq is None or (isinstance(seq, float) and np.isnan(seq)):
        raise ValueError(f"{what}: a sequence is missing (None/NaN).")
    toks = [str(t) for t in seq]
    return toks


def _check_sequences(sequences: Any, owner: str) -> pd.DataFrame:
    if not isinstance(sequences, pd.DataFrame):
        raise TypeError(f"{owner}: sequences must be a DataFrame with columns ['image_id', 'sequence']; "
                        f"got {type(sequences).__name__}.")
    missing = [c for c in SEQUENCE_COLUMNS if c not in sequences.columns]
    if missing:
        raise ValueError(f"{owner}: sequences is missing column(s) {missing}; it has {list(sequences.columns)}.")
    seq = sequences[SEQUENCE_COLUMNS].dropna(subset=["sequence"])
    tokens = [_tokens(s, owner) for s in seq["sequence"]]
    seq = seq.assign(tokens=tokens)
    return seq[[len(t) > 0 for t in tokens]].reset_index(drop=True)


# ---------------------------------------------------------------------------
# torch module
# ---------------------------------------------------------------------------
def _make_decoder(feat_dim: int, vocab_size: int, embed_size: int, hidden_size: int, dropout: float):
    import torch
    from torch import nn

    class CaptionDecoder(nn.Module):
        """CNN features -> tanh(Linear) -> GRU h0; tokens -> embedding -> GRU -> vocabulary logits."""

        def __init__(self):
            super().__init__()
            self.register_buffer("img_mean", torch.zeros(feat_dim))
            self.register_buffer("img_std", torch.ones(feat_dim))
            self.init = nn.Sequential(nn.Dropout(dropout), nn.Linear(feat_dim, hidden_size), nn.Tanh())
            self.embed = nn.Embedding(vocab_size, embed_size, padding_idx=PAD)
            self.gru = nn.GRU(embed_size, hidden_size, batch_first=True)
            self.drop = nn.Dropout(dropout)
            self.out = nn.Linear(hidden_size, vocab_size)

        def initial_state(self, feats):
            return self.init((feats - self.img_mean) / self.img_std).unsqueeze(0)  # (1, n, hidden)

        def forward(self, feats, tokens):
            """Logits ``(n, T, vocab)`` of the next token after each input token ``(n, T)``."""
            h0 = self.initial_state(feats)
            y, _ = self.gru(self.drop(self.embed(tokens)), h0)
            return self.out(self.drop(y))

        def step(self, tokens, h):
            """One decoding step: tokens ``(n,)``, state ``(1, n, hidden)`` -> log-probs ``(n, vocab)``, state.

            ``<pad>``, ``<bos>`` and ``<unk>`` get probability 0.
            """
            y, h = self.gru(self.embed(tokens).unsqueeze(1), h)
            logits = self.out(y[:, 0])
            logits[:, [PAD, BOS, UNK]] = float("-inf")  # never written
            return torch.log_softmax(logits, dim=-1), h

    return CaptionDecoder()


def _greedy(module, feats, max_length: int) -> list[list[int]]:
    import torch

    n = feats.shape[0]
    h = module.initial_state(feats)
    tok = torch.full((n,), BOS, dtype=torch.long, device=feats.device)
    done = torch.zeros(n, dtype=torch.bool, device=feats.device)
    out = []
    for _ in range(max_length + 1):  # max_length words, then a forced stop
        logp, h = module.step(tok, h)
        tok = logp.argmax(dim=-1)
        tok = torch.where(done, torch.full_like(tok, PAD), tok)
        out.append(tok)
        done |= tok == EOS
        if bool(done.all()):
            break
    seqs = torch.stack(out, dim=1).cpu().numpy()
    return [_cut(row, max_length) for row in seqs]


def _cut(ids, max_length: int) -> list[int]:
    res = []
    for t in ids:
        if t in (EOS, PAD):
            break
        res.append(int(t))
    return res[:max_length]


def _beam(module, feats, max_length: int, beam_size: int, length_penalty: float = 0.0) -> list[list[int]]:
    """Batched beam search (``beam_size=1`` == greedy).

    Beams are extended by their total log-probability; the final answer is
    the beam with the best ``log p / n_tokens ** length_penalty`` (``<eos>``
    counted), so ``length_penalty=0`` picks the most probable sequence and
    larger values favour longer ones.
    """
    import torch

    n, B = feats.shape[0], beam_size
    dev = feats.device
    h = module.initial_state(feats).repeat_interleave(B, dim=1)  # (1, n*B, H)
    scores = torch.full((n, B), float("-inf"), device=dev)
    scores[:, 0] = 0.0
    tok = torch.full((n * B,), BOS, dtype=torch.long, device=dev)
    done = torch.zeros(n, B, dtype=torch.bool, device=dev)
    history = torch.zeros(n, B, 0, dtype=torch.long, device=dev)
    for _ in range(max_length + 1):
        logp, h = module.step(tok, h)
        V = logp.shape[-1]
        logp = logp.view(n, B, V)
        # finished beams only continue with <pad> at no cost
        fin = torch.full((V,), float("-inf"), device=dev)
        fin[PAD] = 0.0
        logp = torch.where(done.unsqueeze(-1), fin.view(1, 1, V), logp)
        cand = (scores.unsqueeze(-1) + logp).view(n, B * V)
        top, idx = cand.topk(B, dim=1)
        src, new = idx // V, idx % V
        scores = top
        history = torch.cat([history.gather(1, src.unsqueeze(-1).expand(-1, -1, history.shape[2])),
                             new.unsqueeze(-1)], dim=2)
        done = done.gather(1, src) | (new == EOS) | (new == PAD)
        flat_src = (src + torch.arange(n, device=dev).unsqueeze(1) * B).view(-1)
        h = h[:, flat_src]
        tok = new.view(-1)
        if bool(done.all()):
            break
    if length_penalty:
        lengths = ((history != PAD) & (history != EOS)).sum(dim=2) + 1
        scores = scores / lengths.float() ** length_penalty
    best = scores.argmax(dim=1)
    seqs = history[torch.arange(n, device=dev), best].cpu().numpy()
    return [_cut(row, max_length) for row in seqs]


# ---------------------------------------------------------------------------
# the estimator
# ---------------------------------------------------------------------------
class AnnotationGenerator(BaseEstimator):
    """Generate Open-i-style annotation sequences from images (CNN + GRU, Shin et al. CVPR 2016).

    Parameters
    ----------
    backbone : str, default "efficientnet_lite0"
        Frozen image backbone (see :func:`radmine.list_backbones`); its pooled
        features initialise the GRU.
    hidden_size : int, default 256
        GRU state size.
    embed_size : int, default 128
        Word embedding size.
    max_length : int, default 12
        Longest generated sequence (tokens, ``<eos>`` not counted); longer
        training sequences are cut.
    epochs : int, default 40
    batch_size : int, default 64
    lr : float, default 2e-3
        AdamW learning rate.
    weight_decay : float, default 1e-4
    dropout : float, default 0.5
        Dropout on the image features, the word embeddings and the GRU output.
    beam_size : int, default 1
        Default beam width of :meth:`generate` (1 = greedy). On MedPix greedy
        decoding scored as well as beam 3 (beam search prefers the shorter,
        more probable sequences, which BLEU's brevity penalty punishes).
    length_penalty : float, default 0.0
        Beam search picks the beam with the best ``log p / n_tokens ** length_penalty``
        (0: the most probable sequence; 1: the best mean log-probability per token).
    patience : int or None, default 8
        Early stopping: epochs without a better dev score (mean greedy dev
        BLEU-1..4, ties broken by the lower dev loss); None trains all epochs.
    dev_fraction : float, default 0.15
        Share of the training *cases* (patients / reports; never split) held
        out for early stopping.
    train_split : str or None, default "train"
        ``fit`` uses the reports with ``split == train_split`` when the
        column exists (None: all).
    sequence_source : str, default "auto"
        ``source`` of :func:`annotation_sequences` when ``fit`` gets no sequences.
    min_count : int, default 1
        Training-token count below which a token becomes ``<unk>``.
    checkpoint_dir : str or Path, optional
        Checkpoints after every epoch; a later ``fit`` with the same settings resumes.
    random_state : int, optional
        Seeds the dev split, the weights and the batch order (local
        generators only; the global RNGs are left alone).
    device : str, default "auto"
        ``"auto"`` = CUDA when available, else CPU.
    cache_dir : str or Path, optional
        Image feature cache of the :class:`radmine.ImageEmbedder`.
    progress : bool, default True

    Attributes
    ----------
    vocabulary_ : list of str
        Token of each output index; the first four are ``<pad> <bos> <eos> <unk>``.
    module_ : torch.nn.Module
        The decoder (image projection, embeddings, GRU, output layer).
    feature_dim_ : int
        Size of the backbone features.
    sequences_ : DataFrame
        ``image_id, sequence, group, role`` (role ``train`` / ``dev``) used by ``fit``.
    history_ : DataFrame
        ``epoch, train_loss, dev_loss, dev_BLEU-1 .. dev_BLEU-4, dev_bleu_mean, dev_score, seconds``.
    best_epoch_ : int
    sequence_source_ : str
        The resolved sequence recipe (``"given"`` when ``fit`` got sequences).
    device_ : torch.device

    Examples
    --------
    >>> import radmine
    >>> gen = radmine.AnnotationGenerator(epochs=30, random_state=0)  # doctest: +SKIP
    >>> gen.fit(corpus).generate(corpus.images.head(2))  # doctest: +SKIP
    [['ct', 'axial', 'brain-neuro', 'mass'], ['mr', 'axial', 'brain-neuro', 'mass', 'enhancement']]
    """

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        hidden_size: int = 256,
        embed_size: int = 128,
        max_length: int = 12,
        epochs: int = 40,
        batch_size: int = 64,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        dropout: float = 0.5,
        beam_size: int = 1,
        length_penalty: float = 0.0,
        patience: int | None = 8,
        dev_fraction: float = 0.15,
        train_split: str | None = "train",
        sequence_source: str = "auto",
        min_count: int = 1,
        checkpoint_dir=None,
        random_state: int | None = None,
        device: str = "auto",
        cache_dir=None,
        progress: bool = True,
    ) -> None:
        self.backbone = backbone
        self.hidden_size = hidden_size
        self.embed_size = embed_size
        self.max_length = max_length
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.beam_size = beam_size
        self.length_penalty = length_penalty
        self.patience = patience
        self.dev_fraction = dev_fraction
        self.train_split = train_split
        self.sequence_source = sequence_source
        self.min_count = min_count
        self.checkpoint_dir = checkpoint_dir
        self.random_state = random_state
        self.device = device
        self.cache_dir = cache_dir
        self.progress = progress

    def _validate(self) -> None:
        owner = "AnnotationGenerator"
        for name in ("hidden_size", "embed_size", "max_length", "epochs", "batch_size", "beam_size", "min_count"):
            check_int(getattr(self, name), name, owner, min_value=1)
        if self.patience is not None:
            check_int(self.patience, "patience", owner, min_value=1)
        check_option(self.sequence_source, "sequence_source", owner, SEQUENCE_SOURCES)
        for name, lo, hi in (("lr", 0.0, None), ("weight_decay", -1e-12, None), ("dropout", -1e-12, 1.0),
                             ("dev_fraction", -1e-12, 1.0), ("length_penalty", -1e-12, None)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > lo or (hi is not None and not v < hi):
                rng = f"> {max(lo, 0)}" if lo > 0 else ">= 0"
                rng += f" and < {hi}" if hi is not None else ""
                raise ValueError(f"The {name!r} parameter of {owner} must be a number {rng}. Got {v!r} instead.")
        if not isinstance(self.backbone, str):
            raise TypeError(f"The 'backbone' parameter of {owner} must be a backbone name. Got {self.backbone!r}.")

    # -- inputs -------------------------------------------------------------
    def _embedder(self):
        """The :class:`radmine.ImageEmbedder` (default preprocessing) that gives the features."""
        if getattr(self, "_embedder_", None) is None:
            from radmine.images.embed import ImageEmbedder

            device = "auto" if self.device in (None, "auto") else str(self.device)
            self._embedder_ = ImageEmbedder(self.backbone, cache_dir=self.cache_dir, random_state=self.random_state,
                                            progress=self.progress, device=device)
        return self._embedder_

    def _features_of(self, corpus_or_images: Any, image_ids: Sequence | None, owner: str) -> np.ndarray:
        """Backbone features ``(n, feature_dim)`` of a corpus's images (``image_ids`` rows) or of images."""
        if isinstance(corpus_or_images, Corpus):
            im = image_frame(corpus_or_images)
            im = im.drop_duplicates("image_id").set_index("image_id").loc[list(image_ids)].reset_index()
            return tr.embed_images(self._embedder(), im[["image_id", "path"]], owner)
        return tr.embed_images(self._embedder(), corpus_or_images, owner)

    @staticmethod
    def _image_frame(corpus: Any, owner: str) -> pd.DataFrame:
        """``image_id, group`` of every image (group = patient, else report, else the image)."""
        if isinstance(corpus, Corpus):
            im = corpus.images.copy()
            if "patient_id" not in im.columns or im["patient_id"].isna().any():
                rep = corpus.reports.set_index("report_id")
                pat = im["report_id"].map(rep["patient_id"]) if "patient_id" in rep.columns else im["report_id"]
                base = im["patient_id"] if "patient_id" in im.columns else pd.Series(np.nan, index=im.index)
                im["patient_id"] = base.where(base.notna(), pat)
        elif isinstance(corpus, pd.DataFrame):
            im = corpus.copy()
        else:
            raise TypeError(f"{owner}: corpus must be a radmine.Corpus or an images DataFrame (image_id, ...); "
                            f"got {type(corpus).__name__}.")
        if "image_id" not in im.columns:
            raise ValueError(f"{owner}: the images table has no 'image_id' column; it has {list(im.columns)}.")
        grp = pd.Series(np.nan, index=im.index, dtype=object)
        for col in ("patient_id", "report_id", "image_id"):
            if col in im.columns:
                grp = grp.where(grp.notna(), im[col])
        return pd.DataFrame({"image_id": im["image_id"].to_numpy(), "group": grp.astype(str).to_numpy()})

    # -- fitting --------------------------------------------------------------
    def fit(self, corpus: Any, sequences: pd.DataFrame | None = None, *,
            image_features: pd.DataFrame | None = None) -> AnnotationGenerator:
        """Train the GRU decoder on image -> sequence pairs of the training split.

        Parameters
        ----------
        corpus : Corpus or DataFrame
            A corpus (its ``train_split`` reports are used) or an images table
            with ``image_id`` (and ``path`` unless ``image_features`` is given;
            ``patient_id`` / ``report_id`` group the images into cases).
        sequences : DataFrame, optional
            ``image_id, sequence`` (a space-separated string or a list of
            tokens per image). Default: :func:`annotation_sequences` of the
            corpus with ``source=sequence_source``. Only images that have a
            sequence in the training split are used (others are left out);
            every ``image_id`` must be an image of the corpus.
        image_features : DataFrame, optional
            Precomputed backbone features indexed by ``image_id``, shape
            ``(n_images, feature_dim)``; default: computed with
            :class:`radmine.ImageEmbedder` (cached in ``cache_dir``).

        Returns
        -------
        self
        """
        import torch
        import torch.nn.functional as F

        self._validate()
        owner = "AnnotationGenerator.fit"
        self._embedder_ = None
        all_ids = set(self._image_frame(corpus, owner)["image_id"])
        if isinstance(corpus, Corpus):
            corpus = _restrict_split(corpus, self.train_split, owner)
        images = self._image_frame(corpus, owner)
        if sequences is None:
            if not isinstance(corpus, Corpus):
                raise ValueError(f"{owner}: pass sequences (image_id, sequence) when corpus is an images DataFrame.")
            source = _resolve_source(corpus, self.sequence_source)
            sequences = annotation_sequences(corpus, source=source)
        else:
            source = "given"
        seq = _check_sequences(sequences, owner)
        unknown = pd.Index(pd.unique(seq["image_id"])).difference(pd.Index(list(all_ids)))
        if len(unknown):
            raise KeyError(f"{owner}: sequences has {len(unknown)} image_id(s) that are not images of the "
                           f"corpus, e.g. {list(unknown[:5])}.")
        known = set(images["image_id"])  # sequences of other splits' images are left out
        seq = seq[seq["image_id"].isin(known)].drop_duplicates("image_id").reset_index(drop=True)
        seq["group"] = seq["image_id"].map(images.drop_duplicates("image_id").set_index("image_id")["group"])
        if len(seq) < 2:
            raise ValueError(f"{owner}: need at least 2 images with a sequence, found {len(seq)}.")

        ids = seq["image_id"].tolist()
        if image_features is not None:
            feats = np.array(_check_features(image_features, ids, owner).loc[ids].to_numpy(np.float32))
        else:
            if isinstance(corpus, Corpus):
                feats = self._features_of(corpus, ids, owner)
            else:
                tab = corpus.drop_duplicates("image_id").set_index("image_id").loc[ids].reset_index()
                feats = self._features_of(tab, None, owner)
        feats = np.array(feats, dtype=np.float32)  # writable copy
        ok = np.isfinite(feats).all(axis=1)
        if not ok.all():
            logger.warning("%s: %d image(s) without features (unreadable) left out.", owner, int((~ok).sum()))
            seq, feats = seq[ok].reset_index(drop=True), feats[ok]

        rng = np.random.default_rng(derived_seed(self.random_state, 11))
        held = split_by_group(seq["group"], self.dev_fraction, rng)
        seq["role"] = np.where(held, "dev", "train")
        counts = Counter(t for toks in seq.loc[~held, "tokens"] for t in toks)
        vocab = list(SPECIAL_TOKENS) + sorted(t for t, c in counts.items() if c >= self.min_count and t not in SPECIAL_TOKENS)
        self.vocabulary_ = vocab
        self._index = {t: i for i, t in enumerate(vocab)}
        L = self.max_length
        n = len(seq)
        inp = np.zeros((n, L + 1), dtype=np.int64)
        tgt = np.zeros((n, L + 1), dtype=np.int64)
        for r, toks in enumerate(seq["tokens"]):
            ids_ = [self._index.get(t, UNK) for t in toks[:L]]
            inp[r, : len(ids_) + 1] = [BOS] + ids_
            tgt[r, : len(ids_) + 1] = ids_ + [EOS]
        self.device_ = resolve_device(self.device)
        self.feature_dim_ = int(feats.shape[1])
        train_rows, dev_rows = np.flatnonzero(~held), np.flatnonzero(held)

        with local_torch_seed(derived_seed(self.random_state, 12)):
            module = _make_decoder(self.feature_dim_, len(vocab), self.embed_size, self.hidden_size, self.dropout)
        module.img_mean.copy_(torch.from_numpy(feats[train_rows].mean(0)))
        module.img_std.copy_(torch.from_numpy(feats[train_rows].std(0) + 1e-6))
        module.to(self.device_)
        self.module_ = module
        X = torch.from_numpy(feats).to(self.device_)
        I = torch.from_numpy(inp).to(self.device_)
        T = torch.from_numpy(tgt).to(self.device_)
        refs = [toks for toks in seq["tokens"]]

        def make_batches(rng):
            order = rng.permutation(train_rows)
            return [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]

        def loss_of(rows):
            rows = torch.as_tensor(rows, device=self.device_)
            logits = module(X[rows], I[rows])
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), T[rows].reshape(-1), ignore_index=PAD)

        def evaluate():
            if not len(dev_rows):
                return {}
            with torch.inference_mode():
                dev_loss = float(loss_of(dev_rows))
                hyp = [self._decode_ids(r) for r in _greedy(module, X[torch.as_tensor(dev_rows, device=self.device_)], L)]
            b = bleu_scores(hyp, [[refs[r][:L]] for r in dev_rows])
            out = {"dev_loss": dev_loss, **{f"dev_{k}": v for k, v in b.items()}}
            out["dev_bleu_mean"] = float(np.mean(list(b.values())))
            out["dev_score"] = out["dev_bleu_mean"] - 1e-6 * dev_loss
            return out

        config = self._config()
        fp = fingerprint({"config": {k: v for k, v in config.items() if k not in ("epochs", "patience")},
                          "sequences": seq[["image_id", "sequence", "role"]].astype(str).to_numpy().tolist(),
                          "features": float(np.round(feats.sum(), 3)), "vocabulary": vocab})
        trainer = Trainer(
            module, lr=self.lr, weight_decay=self.weight_decay, epochs=self.epochs, patience=self.patience,
            checkpoint_dir=self.checkpoint_dir, fingerprint=fp, config=config,
            monitor="dev_score" if len(dev_rows) else "train_loss", max_grad_norm=5.0,
            random_state=self.random_state,
            device=self.device_, progress=self.progress, desc="AnnotationGenerator",
            n_threads=1 if self.device_.type == "cpu" else None,
        )
        trainer.run(make_batches, loss_of, evaluate if len(dev_rows) else None)
        self.history_ = trainer.history_frame()
        self.best_epoch_ = int(trainer.best_epoch)
        self.resumed_from_ = int(trainer.resumed_from)
        self.sequence_source_ = source
        self.sequences_ = seq[["image_id", "sequence", "group", "role"]].assign(
            sequence=[" ".join(t) for t in seq["tokens"]])
        module.eval()
        return self

    def _config(self) -> dict:
        cfg = {k: v for k, v in self.get_params(deep=False).items() if k not in ("checkpoint_dir", "cache_dir", "progress")}
        cfg["device"] = str(cfg["device"])
        return cfg

    def _decode_ids(self, ids: Sequence[int]) -> list[str]:
        return [self.vocabulary_[i] for i in ids]

    # -- generation -------------------------------------------------------------
    def generate(self, images: Any = None, beam_size: int | None = None, *, image_features: Any = None,
                 as_strings: bool = False, features: Any = None) -> list:
        """Write an annotation sequence for each image.

        Parameters
        ----------
        images : Corpus, images DataFrame, path(s) or 2-D array(s)
            Embedded with the fitted ``backbone``; pass ``images=None`` with
            ``image_features`` instead to use precomputed backbone features.
        beam_size : int, optional
            Beam width (default: the ``beam_size`` parameter; 1 = greedy).
        image_features : array-like or DataFrame of shape (n_images, feature_dim), optional
            Precomputed backbone features (a DataFrame's row order is used).
        as_strings : bool, default False
            Return space-joined strings instead of token lists.
        features : array-like or DataFrame, optional
            Deprecated alias of ``image_features`` (``FutureWarning``).

        Returns
        -------
        list of (list of str) or list of str, length n_images
            Images that could not be read get an empty sequence.
        """
        import torch

        check_is_fitted(self, "module_")
        beam = self.beam_size if beam_size is None else beam_size
        check_int(beam, "beam_size", "AnnotationGenerator.generate", min_value=1)
        features = tr.renamed_features(image_features, features, "AnnotationGenerator.generate")
        if features is None and images is None:
            raise ValueError("AnnotationGenerator.generate: pass images or image_features.")
        if features is not None:
            feats = np.array(features.to_numpy() if isinstance(features, pd.DataFrame) else features, dtype=np.float32)
        elif isinstance(images, Corpus):
            feats = self._features_of(images, images.images["image_id"].tolist(), "AnnotationGenerator.generate")
        else:
            feats = self._features_of(images, None, "AnnotationGenerator.generate")
        feats = np.array(feats, dtype=np.float32)
        if feats.ndim == 1:
            feats = feats[None, :]
        if feats.ndim != 2 or feats.shape[1] != self.feature_dim_:
            raise ValueError(f"AnnotationGenerator.generate: expected features of shape (n, {self.feature_dim_}); "
                             f"got {feats.shape}.")
        ok = np.isfinite(feats).all(axis=1)
        out: list = [[] for _ in range(len(feats))]
        rows = np.flatnonzero(ok)
        self.module_.eval()
        threads = 1 if self.device_.type == "cpu" else None
        with torch.inference_mode(), cpu_threads(threads):
            for s in range(0, len(rows), 512):
                chunk = rows[s : s + 512]
                x = torch.from_numpy(feats[chunk]).to(self.device_)
                res = (_greedy(self.module_, x, self.max_length) if beam == 1
                       else _beam(self.module_, x, self.max_length, beam, float(self.length_penalty)))
                for r, ids in zip(chunk, res):
                    out[r] = self._decode_ids(ids)
        return [" ".join(t) for t in out] if as_strings else out

    def score(self, corpus_or_images: Any, references: Any = None, *, beam_size: int | None = None,
              image_features: Any = None, split: str | None = None, features: Any = None) -> dict:
        """Corpus BLEU-1..4 of the generated sequences against references.

        Parameters
        ----------
        corpus_or_images : Corpus, images DataFrame, paths or arrays (or None with ``image_features``)
        references : DataFrame or sequence, optional
            ``image_id, sequence`` (for a Corpus or an images DataFrame: the
            images scored are those with a reference), or one reference per
            image in input order (a string, a token list, or a list of several
            token lists). Default for a Corpus: :func:`annotation_sequences`
            with the recipe used in ``fit``.
        beam_size : int, optional
        image_features : array-like of shape (n_images, feature_dim), optional
            Precomputed features aligned with ``references`` (a list) or
            indexed by ``image_id`` (a DataFrame, with a references DataFrame).
        split : str, optional
            For a Corpus: score only the reports with ``split == split``.
        features : array-like or DataFrame, optional
            Deprecated alias of ``image_features`` (``FutureWarning``).

        Returns
        -------
        dict
            ``BLEU-1`` .. ``BLEU-4`` and ``n_images``.
        """
        check_is_fitted(self, "module_")
        owner = "AnnotationGenerator.score"
        features = tr.renamed_features(image_features, features, owner)
        corpus = corpus_or_images
        if isinstance(corpus, Corpus):
            corpus = _restrict_split(corpus, split, owner)
            if references is None:
                src = self.sequence_source_ if self.sequence_source_ != "given" else "auto"
                references = annotation_sequences(corpus, source=src)
        if references is None:
            raise ValueError(f"{owner}: pass references (one per image, or a DataFrame image_id, sequence).")
        if isinstance(references, pd.DataFrame):
            ref = _check_sequences(references, owner).drop_duplicates("image_id")
            ids = ref["image_id"].tolist()
            refs = [[t] for t in ref["tokens"]]
            if isinstance(features, pd.DataFrame):
                feats = _check_features(features, ids, owner).loc[ids].to_numpy(np.float32)
                hyp = self.generate(image_features=feats, beam_size=beam_size)
            elif isinstance(corpus, (Corpus, pd.DataFrame)):
                table = image_frame(corpus)
                unknown = pd.Index(ids).difference(pd.Index(table["image_id"]))
                if len(unknown):
                    raise KeyError(f"{owner}: references has {len(unknown)} image_id(s) that are not in the images, "
                                   f"e.g. {list(unknown[:5])}.")
                tab = table.drop_duplicates("image_id").set_index("image_id").loc[ids].reset_index()
                hyp = self.generate(tab[["image_id", "path"]], beam_size=beam_size)
            else:
                raise TypeError(f"{owner}: a references DataFrame needs a Corpus, an images DataFrame or "
                                "features indexed by image_id.")
        else:
            if isinstance(references, str):
                raise TypeError(f"{owner}: references must be one reference per image, not a single string.")
            refs = []
            for r in references:
                if isinstance(r, str):
                    refs.append([r.split()])
                else:
                    r = list(r)
                    refs.append([list(x) if not isinstance(x, str) else x.split() for x in r]
                                if r and not isinstance(r[0], str) else [[str(t) for t in r]])
            hyp = self.generate(corpus_or_images, beam_size=beam_size, image_features=features)
            if len(hyp) != len(refs):
                raise ValueError(f"{owner}: {len(hyp)} images but {len(refs)} references.")
        out = bleu_scores(hyp, refs)
        out["n_images"] = len(hyp)
        return out

    # -- persistence -------------------------------------------------------------
    def save(self, path) -> Path:
        """Write ``generator.safetensors`` (weights) and ``generator.json`` (settings, vocabulary, history).

        Returns
        -------
        Path
            The folder.
        """
        from safetensors.torch import save

        import radmine

        check_is_fitted(self, "module_")
        d = Path(path)
        d.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.module_.state_dict().items()}
        atomic_write_bytes(d / MODEL_FILE, save(state))
        params = self.get_params(deep=False)
        params = {k: (str(v) if isinstance(v, Path) else v) for k, v in params.items()}
        atomic_write_json(d / CONFIG_FILE, {
            "format": _FORMAT,
            "radmine_version": radmine.__version__,
            "params": params,
            "vocabulary": self.vocabulary_,
            "feature_dim": self.feature_dim_,
            "best_epoch": self.best_epoch_,
            "sequence_source": self.sequence_source_,
            "history": json.loads(self.history_.to_json(orient="records")),
        })
        return d

    @classmethod
    def load(cls, path, *, device: str | None = None) -> AnnotationGenerator:
        """Load a generator written by :meth:`save` (no pickle: safetensors + JSON)."""
        from safetensors.torch import load_file

        d = Path(path)
        cfg_path = d / CONFIG_FILE
        if not cfg_path.is_file() or not (d / MODEL_FILE).is_file():
            raise FileNotFoundError(f"AnnotationGenerator.load: {str(d)!r} has no {CONFIG_FILE} and {MODEL_FILE}.")
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        if cfg.get("format") != _FORMAT:
            raise ValueError(f"AnnotationGenerator.load: {cfg_path} is not a saved AnnotationGenerator "
                             f"(format {cfg.get('format')!r}).")
        warn_if_other_version(cfg, "AnnotationGenerator", d)
        params = dict(cfg["params"])
        if device is not None:
            params["device"] = device
        valid = inspect.signature(cls.__init__).parameters
        gen = cls(**{k: v for k, v in params.items() if k in valid})
        gen.vocabulary_ = list(cfg["vocabulary"])
        gen._index = {t: i for i, t in enumerate(gen.vocabulary_)}
        gen.feature_dim_ = int(cfg["feature_dim"])
        gen.best_epoch_ = int(cfg["best_epoch"])
        gen.sequence_source_ = cfg.get("sequence_source", "auto")
        gen.history_ = pd.DataFrame(cfg.get("history") or [])
        gen.device_ = resolve_device(gen.device)
        module = _make_decoder(gen.feature_dim_, len(gen.vocabulary_), gen.embed_size, gen.hidden_size, gen.dropout)
        module.load_state_dict(load_file(str(d / MODEL_FILE), device="cpu"))
        gen.module_ = module.to(gen.device_).eval()
        return gen

    def _summary_rows(self) -> dict[str, Any]:
        rows = super()._summary_rows()
        if hasattr(self, "module_"):
            rows["vocabulary size"] = len(self.vocabulary_)
            if len(getattr(self, "history_", [])):
                rows["epochs run"] = int(self.history_["epoch"].max())
                rows["best epoch"] = self.best_epoch_
        return rows
