"""img2text's inputs: the pinned image embedder, corpus splits and the backbone plumbing.

The models of :mod:`radmine.img2text` train with :class:`radmine.nn.Trainer`
and read images with :mod:`radmine.nn.inputs`; what is specific to them lives
here:

* :func:`make_embedder` / :func:`embed_images` -- a :class:`radmine.ImageEmbedder`
  with the preprocessing pinned (:data:`radmine.nn.PREPROCESSINGS`) and its features;
* :func:`restrict_split`, :func:`resolved_paths`, :func:`check_features` -- a
  corpus split, its image paths, precomputed ``image_features`` checked against ids;
* :func:`check_numbers`, :func:`check_ks` -- parameter checks shared by the models;
* :class:`BackboneInputsMixin` -- frozen features, cached prefix maps or pixels
  for :class:`radmine.ImageTextModel` and :class:`radmine.TopicImageClassifier`.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np

from radmine.nn.backbones import set_trainable_blocks
from radmine.nn.inputs import (
    PREPROCESS,
    PREPROCESSINGS,
    ImageSource,
    image_frame,
    image_table,
    pixel_features,
    prefix_maps,
)
from radmine.nn.runtime import cpu_threads
from radmine.nn.trainer import Trainer

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_FEATURES",
    "PREPROCESS",
    "PREPROCESSINGS",
    "BackboneInputsMixin",
    "Trainer",
    "check_features",
    "check_ks",
    "check_numbers",
    "renamed_features",
    "embed_images",
    "make_embedder",
    "resolved_paths",
    "restrict_split",
]

#: Frozen-feature kinds of the image-to-text models (``ImageEmbedder(features=...)``).
IMAGE_FEATURES = ("auto", "last", "last+mid")


def make_embedder(backbone, *, cache_dir=None, random_state=None, progress=True, device=None, features="last",
                  preprocessing="plain", image_size=None):
    """A :class:`radmine.ImageEmbedder` for ``backbone`` with the options it accepts.

    The preprocessing settings are fixed to :data:`radmine.nn.PREPROCESSINGS` ``[preprocessing]``
    (``"plain"``: :data:`radmine.nn.inputs.PREPROCESS`, no crop), no test-time augmentation and
    average pooling (each one only where the installed ImageEmbedder has the
    option); ``features`` picks the pooled last map (``"last"``, default) or
    last + middle stage (``"last+mid"``); ``image_size`` is the square input
    side in pixels (None: the backbone's own, 224 for EfficientNet-Lite0).
    """
    import inspect

    from radmine.images.embed import ImageEmbedder

    wanted = {"backbone": backbone, "cache_dir": cache_dir, "random_state": random_state, "progress": progress,
              "pooling": "avg", "features": features, "tta": "none", "image_size": image_size,
              **PREPROCESSINGS[preprocessing]}
    if device is not None:
        wanted["device"] = str(device)
    accepted = inspect.signature(ImageEmbedder.__init__).parameters
    kwargs = {k: v for k, v in wanted.items() if k in accepted and (v is not None or k == "cache_dir")}
    return ImageEmbedder(**kwargs)


def embed_images(embedder, images, owner: str) -> np.ndarray:
    """Features ``(n, dim)`` float32 of ``images`` (see :func:`radmine.nn.image_table`)."""
    import pandas as pd

    images = image_frame(images)
    if isinstance(images, pd.DataFrame):
        feats = embedder.transform(images)
    else:
        items, _ = image_table(images, owner)
        feats = embedder.transform(items)
    return np.asarray(feats, dtype=np.float32)


# ---------------------------------------------------------------------------
# corpus / feature plumbing shared by ImageTextModel and TopicImageClassifier
# ---------------------------------------------------------------------------
def restrict_split(corpus, split: str | None, owner: str):
    """The reports of ``corpus`` whose ``split`` column equals ``split`` (all when None or no such column)."""
    if split is None or "split" not in corpus.reports.columns:
        return corpus
    keep = corpus.reports.loc[corpus.reports["split"].astype(str) == str(split), "report_id"]
    if not len(keep):
        found = sorted(corpus.reports["split"].dropna().astype(str).unique())
        raise ValueError(f"{owner}: no report has split == {split!r}; splits found: {found}.")
    return corpus.subset(keep)


def resolved_paths(corpus, im) -> list:
    """Absolute paths of the images ``im`` (rows of ``corpus.images``), in ``im`` order."""
    paths = image_frame(corpus).set_index("image_id")["path"]
    return [paths.get(i) for i in im["image_id"]]


def check_features(features, image_ids, owner: str):
    """``features`` must be a DataFrame indexed by ``image_id`` with a row for every id."""
    import pandas as pd

    if not isinstance(features, pd.DataFrame):
        raise TypeError(f"{owner}: image_features must be a DataFrame indexed by image_id; got {type(features).__name__}.")
    missing = pd.Index(pd.unique(pd.Series(list(image_ids), dtype=object))).difference(features.index)
    if len(missing):
        raise KeyError(f"{owner}: image_features has no row for {len(missing)} image_id(s), e.g. {list(missing[:5])}.")
    return features


def renamed_features(image_features, features, owner: str):
    """``image_features``, or the value of its deprecated alias ``features`` (with a ``FutureWarning``).

    Parameters
    ----------
    image_features : array-like or DataFrame or None
    features : array-like or DataFrame or None
        The old keyword; passing both is a ``TypeError``.
    owner : str
        The method, named in the warning and the error.
    """
    if features is None:
        return image_features
    if image_features is not None:
        raise TypeError(f"{owner}: pass 'image_features' only (not also its deprecated alias 'features').")
    warnings.warn(f"{owner}: the 'features' keyword is deprecated; use 'image_features' (same values).",
                  FutureWarning, stacklevel=3)
    return features


def check_numbers(est, specs, owner: str) -> None:
    """Check float parameters: ``specs`` is ``[(name, low, high)]`` meaning ``low < value < high`` (None: open)."""
    for name, lo, hi in specs:
        v = getattr(est, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > lo or (hi is not None and not v < hi):
            rng = f"> {max(lo, 0)}" + (f" and < {hi}" if hi is not None else "")
            raise ValueError(f"The {name!r} parameter of {owner} must be a number {rng}. Got {v!r} instead.")


def check_ks(ks, owner: str) -> None:
    """``ks`` must be a non-empty list of ints >= 1."""
    ks = list(ks)
    if not ks or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in ks):
        raise ValueError(f"The 'ks' parameter of {owner} must be a non-empty list of ints >= 1. Got {ks!r}.")

class BackboneInputsMixin:
    """Image plumbing shared by :class:`radmine.ImageTextModel` and :class:`radmine.TopicImageClassifier`.

    Needs the estimator parameters ``backbone``, ``cache_dir``,
    ``random_state``, ``progress`` and ``train_backbone_blocks``, the method
    ``_finetunes_all()`` (whole backbone trained?) and, once fitted,
    ``device_`` and ``module_.backbone``.
    """

    _owner = "model"

    def _finetunes_all(self) -> bool:  # pragma: no cover - overridden
        return False

    def _begin_fit(self, corpus: Any, owner: str):
        """Validate the parameters, drop a cached embedder and return ``corpus``'s training split."""
        from radmine.corpus import Corpus

        self._validate()
        self._embedder_ = None
        if not isinstance(corpus, Corpus):
            raise TypeError(f"{owner} expects a radmine.Corpus, got {type(corpus).__name__}.")
        return restrict_split(corpus, self.train_split, owner)

    def _trains_backbone(self) -> bool:
        """Whether the fitted module carries its own (partly) trained backbone."""
        return bool(self._finetunes_all()) or getattr(self, "train_backbone_blocks", None) is not None

    def _embedder(self):
        if getattr(self, "_embedder_", None) is None:
            self._embedder_ = make_embedder(self.backbone, cache_dir=self.cache_dir,
                                            features=getattr(self, "image_features", "last"),
                                            preprocessing=getattr(self, "image_preprocessing", "plain"),
                                            image_size=getattr(self, "image_size", None),
                                            random_state=self.random_state, progress=self.progress)
        return self._embedder_

    def _embed_ids(self, corpus, ids):
        """Frozen backbone features of the corpus images ``ids``: DataFrame indexed by ``image_id``."""
        import pandas as pd

        im = corpus.images.set_index("image_id").loc[list(ids)].reset_index()
        im["path"] = resolved_paths(corpus, im)
        feats = embed_images(self._embedder(), im, self._owner)
        return pd.DataFrame(feats, index=pd.Index(list(ids), name="image_id"))

    def _image_source(self, corpus, ids, image_features, owner):
        """``(ImageSource, backbone or None, feature_dim, ok mask over ids)`` for training."""
        import torch

        if not self._trains_backbone():
            if image_features is None:
                image_features = self._embed_ids(corpus, ids)
            image_features = check_features(image_features, ids, owner)
            feats = image_features.loc[list(ids)].to_numpy(np.float32).copy()
            ok = np.isfinite(feats).all(axis=1)
            if not ok.all():
                logger.warning("%s: %d image(s) without features (unreadable) left out.", owner, int((~ok).sum()))
            feats[~ok] = 0.0
            return ImageSource(feats=torch.from_numpy(feats).to(self.device_)), None, feats.shape[1], ok
        from radmine.images.backbones import build_backbone

        backbone = build_backbone(self.backbone, pretrained=True, random_state=self.random_state,
                                  image_size=getattr(self, "image_size", None))
        self._spec_ = {**backbone.input_spec, "preprocessing": getattr(self, "image_preprocessing", "plain")}
        im = corpus.images.set_index("image_id").loc[list(ids)].reset_index()
        items = [None if p is None else str(p) for p in resolved_paths(corpus, im)]
        ok = np.array([p is not None for p in items])
        flip = bool(getattr(self, "flip_augment", False))
        if self._finetunes_all():
            backbone.to(self.device_)
            src = ImageSource(items=items, spec=self._spec_, device=self.device_, flip=flip)
            return src, backbone, int(backbone.dim), ok
        n = int(self.train_backbone_blocks)
        set_trainable_blocks(backbone, n)
        backbone.to(self.device_)
        maps, maps_flip, bad = prefix_maps(backbone, n, [it if it is not None else np.zeros((8, 8), np.uint8) for it in items],
                                           self._spec_, flip=flip, device=self.device_, progress=self.progress,
                                           desc=f"{owner}: frozen backbone prefix")
        ok &= ~bad
        src = ImageSource(maps=maps, maps_flip=maps_flip, n_blocks=n, device=self.device_)
        return src, backbone, int(backbone.dim), ok

    def _backbone_features(self, images, owner: str) -> np.ndarray:
        """Backbone features ``(n, dim)`` of images (Corpus, DataFrame, paths, arrays) for inference."""
        if self._trains_backbone():
            items, _ = image_table(images, owner)
            self.module_.eval()
            with cpu_threads(None):
                return pixel_features(self.module_.backbone, items, self._spec_, self.device_).cpu().numpy()
        return embed_images(self._embedder(), images, owner)

    def _split_features(self, corpus, ids, image_features, owner):
        """Backbone features of the corpus images ``ids`` for scoring: ``(ids kept, (n, dim) array)``."""

        if self._trains_backbone():  # precomputed frozen features do not fit a trained backbone
            im = corpus.images.set_index("image_id").loc[list(ids)].reset_index()
            im["path"] = resolved_paths(corpus, im)
            return list(ids), self._backbone_features(im, owner)
        if image_features is None:
            image_features = self._embed_ids(corpus, ids)
        feats = check_features(image_features, ids, owner).loc[list(ids)].to_numpy(np.float32)
        ok = np.isfinite(feats).all(axis=1)
        if not ok.all():
            logger.warning("%s: %d image(s) without features left out.", owner, int((~ok).sum()))
        return [i for i, good in zip(ids, ok) if good], feats[ok]
