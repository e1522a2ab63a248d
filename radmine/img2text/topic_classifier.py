"""A CNN that predicts each key image's LDA topic (Shin et al., CVPR 2015 / JMLR 2016).

Shin et al. labelled every key image with the topic of its report (document
level), of a second-level LDA inside that topic, or of its sentence with
neighbours (sentence level), and fine-tuned ImageNet CNNs on those labels
(VGG-19, 60 document topics: top-1 0.658 / top-5 0.946). Here the labels come
from :meth:`radmine.TopicModel.topic_labels_for_images`, the image side is a
pretrained backbone (features cached once; a linear or MLP head, optionally
fine-tuning the CNN), and accuracy is measured on cases held out **by
patient/case** (a case is never split).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from radmine._io import fingerprint
from radmine._validation import check_int, check_is_fitted, check_option
from radmine.base import BaseEstimator, derived_seed
from radmine.corpus import Corpus
from radmine.img2text import training as tr
from radmine.nn import Trainer, cpu_threads, freeze_batchnorm, local_torch_seed, resolve_device, split_by_group

logger = logging.getLogger(__name__)

LEVELS = ("document", "level2", "sentence")


def _is_fitted(model) -> bool:
    return any(k.endswith("_") and not k.startswith("_") for k in vars(model))


def _call_labels(topic_model, corpus: Corpus, level: str) -> pd.DataFrame:
    fn = topic_model.topic_labels_for_images
    params = inspect.signature(fn).parameters
    kwargs = {"level": 2} if level == "level2" and "level" in params else {}
    labels = fn(corpus, **kwargs)
    missing = [c for c in ("image_id", "topic") if c not in labels.columns]
    if missing:
        raise ValueError(f"topic_labels_for_images returned no {missing} column(s); it has {list(labels.columns)}.")
    return labels


class TopicImageClassifier(tr.BackboneInputsMixin, BaseEstimator):
    """Predict an image's topic label from its pixels.

    Parameters
    ----------
    n_topics : int, default 20
        Topics of the topic model built when ``topic_model`` is None.
    topic_model : TopicModel or HierarchicalTopicModel, optional
        Fitted or not (an unfitted one is fitted on the ``train_split``
        reports). Default: ``TopicModel(n_topics, unit="report")`` for
        ``level="document"``, ``unit="sentence"`` for ``"sentence"``,
        :class:`radmine.HierarchicalTopicModel` for ``"level2"``.
    n_subtopics : int, default 5
        Level-2 topics inside each level-1 topic (``level="level2"``).
    level : {"document", "level2", "sentence"}, default "document"
        ``"document"``: the report's topic; ``"level2"``: the sub-topic
        (``"t.s"``) inside it; ``"sentence"``: the topic of the image's
        linked sentence(s) / caption with their neighbours.
    backbone : str, default "efficientnet_lite0"
    finetune : bool, default False
        Train the whole CNN on pixels (meant for a GPU); default: frozen cached features.
    train_backbone_blocks : int, optional
        Train only the last n blocks (+ head) of the CNN on cached frozen
        prefix maps (cheap on a CPU); see :class:`radmine.ImageTextModel`.
    flip_augment : bool, default True
        Random horizontal flips when the CNN is trained.
    hidden_dim : int, default 0
        0 = linear head (logistic regression on the features), else an MLP.
    dropout : float, default 0.2
    epochs, batch_size, lr, weight_decay, patience
        Training settings (early stopping on dev top-1, ties broken by dev loss).
    test_size : float, default 0.2
        Share of cases held out for :meth:`score` without a corpus.
    dev_fraction : float, default 0.1
        Share of the remaining cases used for early stopping.
    train_split : str or None, default "train"
        Use only reports with ``split == train_split`` when that column exists.
    ks : tuple of int, default (1, 5)
    checkpoint_dir, cache_dir, random_state, device, progress
        As in :class:`radmine.ImageTextModel`.

    Attributes
    ----------
    classes_ : ndarray
        Topic labels, the columns of :meth:`predict_proba`.
    labels_ : DataFrame
        ``image_id, topic, probability, group, role`` (role train/dev/test).
    topic_model_ : the fitted topic model
    history_ : DataFrame
        ``epoch, train_loss, dev_loss, dev_top1, dev_top5, dev_score, seconds``.
    test_scores_ : dict
        :meth:`score` on the held-out cases.
    """

    def __init__(
        self,
        n_topics: int = 20,
        topic_model=None,
        n_subtopics: int = 5,
        level: str = "document",
        backbone: str = "efficientnet_lite0",
        finetune: bool = False,
        train_backbone_blocks: int | None = None,
        flip_augment: bool = True,
        hidden_dim: int = 0,
        dropout: float = 0.2,
        epochs: int = 50,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 1e-3,
        patience: int | None = 8,
        test_size: float = 0.2,
        dev_fraction: float = 0.1,
        train_split: str | None = "train",
        ks: Sequence[int] = (1, 5),
        checkpoint_dir=None,
        cache_dir=None,
        random_state: int | None = None,
        device: str = "auto",
        progress: bool = True,
    ) -> None:
        self.n_topics = n_topics
        self.topic_model = topic_model
        self.n_subtopics = n_subtopics
        self.level = level
        self.backbone = backbone
        self.finetune = finetune
        self.train_backbone_blocks = train_backbone_blocks
        self.flip_augment = flip_augment
        self.hidden_dim = hidden_dim
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.test_size = test_size
        self.dev_fraction = dev_fraction
        self.train_split = train_split
        self.ks = ks
        self.checkpoint_dir = checkpoint_dir
        self.cache_dir = cache_dir
        self.random_state = random_state
        self.device = device
        self.progress = progress

    def _validate(self) -> None:
        owner = "TopicImageClassifier"
        check_option(self.level, "level", owner, LEVELS)
        check_int(self.n_topics, "n_topics", owner, min_value=2)
        check_int(self.n_subtopics, "n_subtopics", owner, min_value=1)
        for name in ("epochs", "batch_size"):
            check_int(getattr(self, name), name, owner, min_value=1)
        check_int(self.hidden_dim, "hidden_dim", owner, min_value=0)
        if self.patience is not None:
            check_int(self.patience, "patience", owner, min_value=1)
        tr.check_numbers(self, (("test_size", -1e-12, 1.0), ("dev_fraction", -1e-12, 1.0), ("lr", 0.0, None),
                                ("dropout", -1e-12, 1.0), ("weight_decay", -1e-12, None)), owner)
        tr.check_ks(self.ks, owner)
        if self.train_backbone_blocks is not None:
            check_int(self.train_backbone_blocks, "train_backbone_blocks", owner, min_value=0)
        if self.topic_model is not None and not hasattr(self.topic_model, "topic_labels_for_images"):
            raise TypeError(
                f"The 'topic_model' parameter of {owner} must have a topic_labels_for_images method "
                f"(radmine.TopicModel / HierarchicalTopicModel); got {type(self.topic_model).__name__}."
            )

    def _make_topic_model(self):
        if self.topic_model is not None:
            return self.topic_model
        if self.level == "level2":
            from radmine.topics.hierarchy import HierarchicalTopicModel as cls

            wanted = {"n_topics": self.n_topics, "n_subtopics": self.n_subtopics, "random_state": self.random_state}
        else:
            from radmine.topics.model import TopicModel as cls

            unit = "report" if self.level == "document" else "sentence"
            wanted = {"n_topics": self.n_topics, "unit": unit, "random_state": self.random_state}
        accepted = inspect.signature(cls.__init__).parameters
        return cls(**{k: v for k, v in wanted.items() if k in accepted})

    # -- fit ----------------------------------------------------------------
    def fit(self, corpus: Corpus, *, labels: pd.DataFrame | None = None,
            image_features: pd.DataFrame | None = None) -> TopicImageClassifier:
        """Label the images with topics and train the classifier.

        Parameters
        ----------
        corpus : Corpus
        labels : DataFrame, optional
            ``image_id, topic`` labels to use instead of a topic model.
        image_features : DataFrame, optional
            Precomputed backbone features indexed by ``image_id``.

        Returns
        -------
        self
        """
        import torch

        owner = "TopicImageClassifier.fit"
        train = self._begin_fit(corpus, owner)
        if labels is None:
            tm = self._make_topic_model()
            if not _is_fitted(tm):
                tm.fit(train)
            self.topic_model_ = tm
            labels = _call_labels(tm, train, self.level)
        else:
            self.topic_model_ = self.topic_model
            missing = [c for c in ("image_id", "topic") if c not in labels.columns]
            if missing:
                raise ValueError(f"{owner}: labels is missing column(s) {missing}; it has {list(labels.columns)}.")
        lab = labels[labels["image_id"].isin(set(train.images["image_id"])) & _has_topic(labels["topic"])]
        lab = lab.drop_duplicates("image_id").reset_index(drop=True)
        if len(lab) < 4:
            raise ValueError(f"{owner}: need at least 4 labelled images, found {len(lab)}.")
        img = train.images.set_index("image_id")
        rep = train.reports.set_index("report_id")
        rid = img.loc[lab["image_id"], "report_id"].to_numpy()
        pid = rep["patient_id"].reindex(rid).to_numpy() if "patient_id" in rep.columns else rid
        lab["group"] = [str(p) if isinstance(p, str) or not pd.isna(p) else str(r) for p, r in zip(pid, rid)]
        lab["topic"] = lab["topic"].astype(str)

        # features
        self.device_ = resolve_device(self.device)
        ids = lab["image_id"].tolist()
        source, backbone, in_dim, ok = self._image_source(train, ids, image_features, owner)
        if not ok.all():
            keep = np.flatnonzero(ok)
            lab = lab.iloc[keep].reset_index(drop=True)
            source = source.subset(keep)

        # split by case: test, dev, train
        rng = np.random.default_rng(derived_seed(self.random_state, 11))
        test = split_by_group(lab["group"], self.test_size, rng)
        dev = np.zeros(len(lab), dtype=bool)
        rest = np.flatnonzero(~test)
        dev[rest] = split_by_group(lab["group"].to_numpy()[rest], self.dev_fraction, rng)
        lab["role"] = np.where(test, "test", np.where(dev, "dev", "train"))
        train_rows = np.flatnonzero(lab["role"].eq("train").to_numpy())
        self.classes_ = np.array(sorted(lab.loc[train_rows, "topic"].unique()), dtype=object)
        if len(self.classes_) < 2:
            raise ValueError(f"{owner}: the training images carry only {len(self.classes_)} topic label(s); need >= 2.")
        cls_index = {c: i for i, c in enumerate(self.classes_)}
        y = np.array([cls_index.get(t, -1) for t in lab["topic"]])

        import torch.nn as nn

        with local_torch_seed(derived_seed(self.random_state, 12)):
            head = (nn.Linear(in_dim, len(self.classes_)) if self.hidden_dim == 0 else
                    nn.Sequential(nn.Linear(in_dim, self.hidden_dim), nn.GELU(), nn.Dropout(self.dropout),
                                  nn.Linear(self.hidden_dim, len(self.classes_))))
            module = _Classifier(in_dim, head, backbone, self.dropout)
        if source.mode == "features":
            f = source.feats.cpu().numpy()
            module.mean.copy_(torch.from_numpy(f[train_rows].mean(0)))
            module.std.copy_(torch.from_numpy(f[train_rows].std(0) + 1e-6))
        module.to(self.device_)
        self.module_ = module
        self._source = source
        y_t = torch.as_tensor(y, device=self.device_)
        dev_rows = np.flatnonzero(lab["role"].eq("dev").to_numpy())
        ks = [int(k) for k in self.ks]

        def make_batches(rng):
            perm = train_rows[rng.permutation(len(train_rows))]
            return [perm[s : s + self.batch_size] for s in range(0, len(perm), self.batch_size)]

        def step(rows):
            x = self._source(module.backbone, rows, train=True)
            return nn.functional.cross_entropy(module(x), y_t[torch.as_tensor(rows)])

        def evaluate():
            proba = self._proba_rows(dev_rows)
            yy = y[dev_rows]
            known = yy >= 0
            loss = float(-np.mean(np.log(np.clip(proba[known, yy[known]], 1e-12, None)))) if known.any() else 0.0
            out = {"dev_loss": loss}
            out.update({f"dev_top{k}": _topk(proba, yy, k) for k in ks})
            out["dev_score"] = out[f"dev_top{ks[0]}"] - 1e-3 * loss
            return out

        fp = fingerprint({"config": self._config(), "labels": lab[["image_id", "topic", "role"]].to_numpy().tolist()})
        trainer = Trainer(
            module, lr=self.lr, weight_decay=self.weight_decay, epochs=self.epochs,
            patience=self.patience if len(dev_rows) else None, checkpoint_dir=self.checkpoint_dir, fingerprint=fp,
            config={**self._config(), "epochs": self.epochs}, monitor="dev_score", max_grad_norm=5.0,
            random_state=self.random_state,
            device=self.device_, progress=self.progress, desc="TopicImageClassifier",
            n_threads=None if (self._trains_backbone() or self.device_.type != "cpu") else 1,
        )
        trainer.run(make_batches, step, evaluate if len(dev_rows) else None)
        self.history_ = trainer.history_frame()
        self.best_epoch_ = trainer.best_epoch
        self.resumed_from_ = trainer.resumed_from
        self.labels_ = lab
        test_rows = np.flatnonzero(test)
        self.test_scores_ = self._scores(self._proba_rows(test_rows), y[test_rows]) if len(test_rows) else {}
        self.train_majority_ = float(np.mean(y[train_rows] == np.bincount(y[train_rows]).argmax()))
        return self

    def _config(self) -> dict:
        keys = ("n_topics", "n_subtopics", "level", "backbone", "finetune", "train_backbone_blocks", "flip_augment", "hidden_dim", "dropout", "batch_size", "lr",
                "weight_decay", "test_size", "dev_fraction", "train_split", "random_state")
        return {k: getattr(self, k) for k in keys} | {"ks": [int(k) for k in self.ks]}

    _owner = "TopicImageClassifier"

    def _finetunes_all(self) -> bool:
        return bool(self.finetune)

    def _proba_rows(self, rows) -> np.ndarray:
        import torch

        self.module_.eval()
        out = []
        with torch.inference_mode(), cpu_threads(None if self._trains_backbone() else 1):
            for s in range(0, len(rows), 1024):
                x = self._source(self.module_.backbone, rows[s : s + 1024])
                out.append(torch.softmax(self.module_(x), dim=1).cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, len(self.classes_)), np.float32)

    def _scores(self, proba: np.ndarray, y: np.ndarray) -> dict:
        out = {f"top{int(k)}_accuracy": _topk(proba, y, int(k)) for k in self.ks}
        out["n_images"] = int(len(y))
        out["n_classes"] = int(len(self.classes_))
        return out

    # -- predict --------------------------------------------------------------
    def predict_proba(self, images=None, *, image_features=None, features=None) -> np.ndarray:
        """Topic probabilities.

        Parameters
        ----------
        images : Corpus, images DataFrame, paths or 2-D arrays
        image_features : array of shape (n, feature_dim), optional
            Precomputed backbone features instead of images.
        features : array, optional
            Deprecated alias of ``image_features`` (``FutureWarning``).

        Returns
        -------
        ndarray of shape (n_images, n_classes), float32; columns follow ``classes_``
        """
        import torch

        check_is_fitted(self, "module_")
        image_features = tr.renamed_features(image_features, features, "TopicImageClassifier.predict_proba")
        if image_features is None:
            image_features = np.nan_to_num(self._backbone_features(images, "TopicImageClassifier.predict_proba"))
        self.module_.eval()
        with torch.inference_mode():
            x = torch.as_tensor(np.asarray(image_features, dtype=np.float32), device=self.device_)
            return torch.softmax(self.module_(x), dim=1).cpu().numpy()

    def predict(self, images=None, *, image_features=None, features=None) -> np.ndarray:
        """Most probable topic label per image; ndarray of shape (n_images,) (arguments as :meth:`predict_proba`)."""
        image_features = tr.renamed_features(image_features, features, "TopicImageClassifier.predict")
        proba = self.predict_proba(images, image_features=image_features)
        return self.classes_[proba.argmax(axis=1)]

    def score(self, corpus: Corpus | None = None, split: str | None = "dev", *,
              image_features: pd.DataFrame | None = None) -> dict:
        """Top-k accuracy.

        Without ``corpus``: the held-out test cases of :meth:`fit`. With a
        corpus: its ``split`` reports' images, labelled by the fitted topic
        model (which never saw them). Images whose topic was never seen in
        training count as wrong.

        Returns
        -------
        dict
            ``top{k}_accuracy`` for each k in ``ks``, ``n_images``, ``n_classes``.
        """
        check_is_fitted(self, "module_")
        if corpus is None:
            return dict(self.test_scores_)
        if self.topic_model_ is None:
            raise ValueError("TopicImageClassifier.score(corpus): fitted with explicit labels; pass labels via "
                             "score_labels(...) instead.")
        sub = tr.restrict_split(corpus, split, "TopicImageClassifier.score")
        lab = _call_labels(self.topic_model_, sub, self.level)
        return self.score_labels(sub, lab, image_features=image_features)

    def score_labels(self, corpus: Corpus, labels: pd.DataFrame, *, image_features: pd.DataFrame | None = None) -> dict:
        """Top-k accuracy of the images of ``corpus`` against ``labels`` (``image_id, topic``)."""
        check_is_fitted(self, "module_")
        lab = labels[_has_topic(labels["topic"]) & labels["image_id"].isin(set(corpus.images["image_id"]))]
        lab = lab.drop_duplicates("image_id")
        ids, feats = self._split_features(corpus, lab["image_id"].tolist(), image_features, "TopicImageClassifier.score")
        lab = lab.set_index("image_id").loc[ids].reset_index()
        proba = self.predict_proba(image_features=feats)
        cls_index = {c: i for i, c in enumerate(self.classes_)}
        y = np.array([cls_index.get(str(t), -1) for t in lab["topic"]])
        return self._scores(proba, y)


def _has_topic(topic: pd.Series) -> pd.Series:
    """Rows with a usable topic label (topic models mark text-less images with -1)."""
    return topic.notna() & topic.astype(str).ne("-1")


def _topk(proba: np.ndarray, y: np.ndarray, k: int) -> float:
    if not len(y):
        return float("nan")
    top = np.argsort(-proba, axis=1, kind="stable")[:, :k]
    return float(np.mean([(yy >= 0) and (yy in row) for yy, row in zip(y, top)]))


def _make_classifier_module():
    import torch
    import torch.nn as nn

    class Classifier(nn.Module):
        def __init__(self, in_dim, head, backbone, dropout):
            super().__init__()
            self.backbone = backbone
            self.register_buffer("mean", torch.zeros(in_dim))
            self.register_buffer("std", torch.ones(in_dim))
            self.drop = nn.Dropout(dropout)
            self.head = head

        def train(self, mode=True):
            super().train(mode)
            freeze_batchnorm(self.backbone)
            return self

        def forward(self, feats):
            return self.head(self.drop((feats - self.mean) / self.std))

    return Classifier


def _Classifier(in_dim, head, backbone, dropout):
    return _make_classifier_module()(in_dim, head, backbone, dropout)
