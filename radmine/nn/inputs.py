"""Images in, tensors out: every way a model reads images.

* :func:`image_frame` -- a Corpus's images table with absolute paths;
* :func:`image_table` -- a Corpus, an images DataFrame, a path, a list of paths
  or arrays, or an array of images, normalised to a list of items (path or array);
* :func:`pixel_tensor` -- one item to a preprocessed ``(3, S, S)`` tensor under
  one of the pinned :data:`PREPROCESSINGS`;
* :func:`pixel_features` -- backbone features of many items, no gradients;
* :func:`prefix_maps` -- cached maps of a backbone's frozen prefix;
* :class:`ImageSource` -- where a model's backbone features come from while it
  trains (frozen features, cached prefix maps, or pixels).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from radmine.nn.backbones import backbone_prefix, backbone_tail

logger = logging.getLogger(__name__)

#: Preprocessing of the models that read pixels, passed explicitly so that a change of the
#: :class:`radmine.ImageEmbedder` defaults never changes what a fitted (or saved) model sees.
PREPROCESS = {"channels": "replicate", "resize": "pad", "intensity": "auto"}

#: Pinned pixel preprocessings (``image_preprocessing`` of the image-to-text models):
#: ``"plain"`` (aspect-preserving pad, min-max / 8-bit scaling, no crop) and ``"content"``
#: (crop to the body, clip to the 0.5-99.5th percentiles, then pad: the
#: :class:`radmine.ImageEmbedder` defaults chosen on MedPix train cases).
PREPROCESSINGS = {
    "plain": {**PREPROCESS, "crop": "none"},
    "content": {"channels": "replicate", "resize": "pad", "intensity": "percentile", "crop": "content"},
}


def image_frame(images):
    """A Corpus's ``images`` table with the absolute ``path`` of every image; anything else unchanged.

    Parameters
    ----------
    images : Corpus or any
        Relative paths of a Corpus are resolved against its root
        (:meth:`radmine.Corpus.image_paths`).

    Returns
    -------
    DataFrame (for a Corpus) or ``images``
    """
    from radmine.corpus import Corpus

    if isinstance(images, Corpus):
        return images.images.assign(path=images.image_paths())
    return images


def image_table(images, owner: str):
    """Normalise ``images`` to a list of items (paths or arrays) and their image ids.

    Parameters
    ----------
    images : Corpus, DataFrame, str, Path, ndarray or list
        A Corpus (its ``images`` table; relative paths resolved against its
        root), an images DataFrame with a ``path`` column (and optionally
        ``image_id``), one path, one 2-D image, an array of images
        ``(n, H, W)`` or ``(n, H, W, C)``, or a list of paths / arrays.
    owner : str
        Named in error messages (e.g. ``"ImageTextModel.encode_images"``).

    Returns
    -------
    items : list
        One path (str, None when missing) or array per image.
    image_ids : list
        The image ids (None entries when unknown).

    Examples
    --------
    >>> import numpy as np
    >>> from radmine.nn import image_table
    >>> items, ids = image_table(np.zeros((2, 4, 4)), "example")
    >>> len(items), ids
    (2, [None, None])
    """
    import pandas as pd

    from radmine.corpus import Corpus

    if isinstance(images, Corpus):
        tab = images.images
        paths = images.image_paths()
        return [None if pd.isna(p) else str(p) for p in paths], tab["image_id"].tolist()
    if isinstance(images, pd.DataFrame):
        if "path" not in images.columns:
            raise ValueError(f"{owner}: an images DataFrame needs a 'path' column; it has {list(images.columns)}.")
        ids = images["image_id"].tolist() if "image_id" in images.columns else [None] * len(images)
        return [None if pd.isna(p) else str(p) for p in images["path"]], ids
    if isinstance(images, (str, Path)):
        return [str(images)], [None]
    if isinstance(images, np.ndarray):
        if images.ndim == 2:
            return [images], [None]
        if images.ndim in (3, 4):
            return list(images), [None] * len(images)
        raise ValueError(f"{owner}: an image array must be 2-D (one image) or 3-D (n, H, W); got shape {images.shape}.")
    if isinstance(images, (list, tuple)):
        return [str(x) if isinstance(x, Path) else x for x in images], [None] * len(images)
    raise TypeError(
        f"{owner}: images must be a Corpus, an images DataFrame, a path, a list of paths or arrays; "
        f"got {type(images).__name__}."
    )


def pixel_tensor(item, spec: dict):
    """One preprocessed ``(3, S, S)`` float tensor from a path or an array.

    Parameters
    ----------
    item : str or ndarray
        An image file (read with :func:`radmine.pixels.load_pixels`) or pixels.
    spec : dict
        The backbone's ``input_spec`` (size, mean, std), with an optional
        ``"preprocessing"`` key naming one of :data:`PREPROCESSINGS`
        (default ``"plain"``).

    Returns
    -------
    torch.Tensor of shape (3, S, S)
    """
    from radmine.images.preprocess import preprocess

    if isinstance(item, str):
        from radmine.pixels import load_pixels

        item = load_pixels(item)
    return preprocess(np.asarray(item), spec, **PREPROCESSINGS[spec.get("preprocessing", "plain")])


def pixel_features(backbone, items, spec: dict, device, *, batch_size: int = 32):
    """Backbone features of paths / arrays, without gradients.

    Parameters
    ----------
    backbone : torch.nn.Module
        Maps ``(n, 3, S, S)`` pixels to ``(n, backbone.dim)`` features.
    items : list of str or ndarray
    spec : dict
        See :func:`pixel_tensor`.
    device : torch.device
    batch_size : int, default 32

    Returns
    -------
    torch.Tensor of shape (n_items, backbone.dim), on ``device``
    """
    import torch

    out = []
    with torch.inference_mode():
        for s in range(0, len(items), batch_size):
            x = torch.stack([pixel_tensor(it, spec) for it in items[s : s + batch_size]]).to(device)
            out.append(backbone(x))
    return torch.cat(out) if out else torch.zeros((0, int(backbone.dim)), device=device)


def prefix_maps(backbone, n_blocks: int, items, spec: dict, *, flip: bool = False, batch_size: int = 8,
                device=None, progress: bool = False, desc: str = "backbone prefix"):
    """Maps of the frozen prefix of ``backbone`` for every item, float16 on the CPU.

    Parameters
    ----------
    backbone : torch.nn.Module
        See :func:`radmine.nn.backbone_stages`.
    n_blocks : int
        Trainable blocks at the end (the prefix is everything before them).
    items : list of str or ndarray
    spec : dict
        See :func:`pixel_tensor`.
    flip : bool, default False
        Also return the maps of the horizontally flipped images (exact flip
        augmentation for the trainable tail at no training cost).
    batch_size : int, default 8
    device : torch.device, optional
    progress : bool, default False
    desc : str
        Progress-bar label and log prefix.

    Returns
    -------
    maps : torch.Tensor of shape (n_items, C, h, w), float16
    maps_flip : torch.Tensor of the same shape, or None
    bad : bool ndarray of shape (n_items,)
        Unreadable items (their maps are computed from zeros).
    """
    import torch
    from radmine._progress import tqdm

    out, out_f, bad = [], [], np.zeros(len(items), dtype=bool)
    backbone.eval()
    with torch.inference_mode():
        for s in tqdm(range(0, len(items), batch_size), disable=not progress, desc=desc):
            xs = []
            for j, it in enumerate(items[s : s + batch_size]):
                try:
                    xs.append(pixel_tensor(it, spec))
                except (OSError, ValueError, TypeError) as err:
                    logger.warning("%s: item %d unreadable (%s).", desc, s + j, type(err).__name__)
                    bad[s + j] = True
                    size = int(spec["image_size"])
                    xs.append(torch.zeros(3, size, size))
            x = torch.stack(xs)
            if device is not None:
                x = x.to(device)
            out.append(backbone_prefix(backbone, n_blocks, x).half().cpu())
            if flip:
                out_f.append(backbone_prefix(backbone, n_blocks, torch.flip(x, dims=[3])).half().cpu())
    maps = torch.cat(out) if out else torch.zeros(0)
    return maps, (torch.cat(out_f) if out_f else None), bad


class ImageSource:
    """Where a model's backbone features come from while it trains.

    Three modes, picked by what is given:

    * ``feats`` ``(n, dim)``: frozen features (the model trains heads only);
    * ``maps`` (+ ``maps_flip``) with ``n_blocks``: cached prefix maps
      (:func:`prefix_maps`); the last ``n_blocks`` blocks and the head of the
      backbone are trained;
    * ``items`` (paths / arrays) with ``spec``: pixels through the whole backbone.

    Parameters
    ----------
    feats : torch.Tensor of shape (n, dim), optional
    maps, maps_flip : torch.Tensor of shape (n, C, h, w), optional
    n_blocks : int, default 0
    items : list of str or ndarray, optional
    spec : dict, optional
        See :func:`pixel_tensor`.
    device : torch.device, optional
    flip : bool, default False
        Pixel mode: random horizontal flips while training.

    Examples
    --------
    >>> import torch
    >>> from radmine.nn import ImageSource
    >>> src = ImageSource(feats=torch.eye(3))
    >>> src(None, [2, 0]).tolist(), src.mode
    ([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], 'features')
    """

    def __init__(self, *, feats=None, maps=None, maps_flip=None, n_blocks: int = 0, items=None, spec=None,
                 device=None, flip: bool = False) -> None:
        self.feats, self.maps, self.maps_flip, self.n_blocks = feats, maps, maps_flip, n_blocks
        self.items, self.spec, self.device, self.flip = items, spec, device, flip

    def subset(self, rows) -> ImageSource:
        """The same source restricted to ``rows`` (renumbered ``0..len(rows)-1``)."""
        import torch

        idx = torch.as_tensor(np.asarray(rows))
        return ImageSource(
            feats=None if self.feats is None else self.feats[idx.to(self.feats.device)],
            maps=None if self.maps is None else self.maps[idx],
            maps_flip=None if self.maps_flip is None else self.maps_flip[idx],
            n_blocks=self.n_blocks, items=None if self.items is None else [self.items[i] for i in rows],
            spec=self.spec, device=self.device, flip=self.flip,
        )

    @property
    def mode(self) -> str:
        """``"features"``, ``"partial"`` (prefix maps) or ``"pixels"``."""
        return "features" if self.feats is not None else ("partial" if self.maps is not None else "pixels")

    def __call__(self, backbone, rows, *, train: bool = False):
        """Backbone features ``(len(rows), dim)`` of the given rows (differentiable in the trained part).

        Parameters
        ----------
        backbone : torch.nn.Module or None
            Not used in ``"features"`` mode.
        rows : sequence of int
        train : bool, default False
            Draw the flip augmentation.
        """
        import torch

        rows = np.asarray(rows)
        if self.feats is not None:
            return self.feats[torch.as_tensor(rows, device=self.feats.device)]
        if self.maps is not None:
            idx = torch.as_tensor(rows)
            x = self.maps[idx]
            if train and self.maps_flip is not None:
                pick = torch.rand(len(rows)) < 0.5
                x = torch.where(pick[:, None, None, None], self.maps_flip[idx], x)
            return backbone_tail(backbone, self.n_blocks, x.to(self.device).float())
        x = torch.stack([pixel_tensor(self.items[r], self.spec) for r in rows]).to(self.device)
        if train and self.flip:
            pick = (torch.rand(len(rows)) < 0.5).to(self.device)
            x = torch.where(pick[:, None, None, None], torch.flip(x, dims=[3]), x)
        return backbone(x)
