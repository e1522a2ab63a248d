"""Preprocessing that respects medical images: gray -> 3 channels, aspect-preserving resize, normalisation.

:func:`preprocess` turns one 2-D image (``uint8`` display values, a float
array in ``[0, 1]`` from :func:`radmine.pixels.load_pixels`, or Hounsfield
units for CT) into the ``(3, S, S)`` float tensor a backbone expects:

0. **crop** (optional) -- ``"bbox"``: crop to the bounding box of all
   pixels brighter than ``crop_threshold`` (drops black borders);
   ``"content"``: crop to the bounding box of the body, i.e. the largest
   bright connected region (and regions at least a tenth of its size) after
   a 3x3 opening that erases thin burned-in text, so black margins with
   text or logos go too; ``"none"`` (default) keeps the whole image;
1. **resize** -- ``"pad"`` (default): scale so the longer side is ``S``
   (aspect ratio kept, bilinear with antialiasing) and pad the short side
   centred with ``pad_value``; ``"stretch"``: scale each side to ``S``
   (distorts anatomy; what a naive ImageNet pipeline does);
2. **intensity** -- ``"auto"``: ``uint8 / 255``, floats already in ``[0, 1]``
   kept, anything else min-max scaled; ``"percentile"``: clip to the
   ``percentiles`` and rescale to ``[0, 1]`` (robust to burned-in text and
   metal); ``"minmax"``; ``"none"``;
3. **channels** -- ``"replicate"``: the gray image in all three channels;
   ``"ct_windows"``: three CT windows as channels (default lung / soft
   tissue / bone, from :data:`radmine.pixels.WINDOWS`), only for CT pixels
   in HU (e.g. ``load_pixels(path, window="raw")``); other input falls back
   to ``"replicate"`` with a logged note;
4. the backbone's ``mean`` / ``std`` per channel.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

CHANNEL_MODES = ("replicate", "ct_windows")
RESIZE_MODES = ("pad", "stretch")
CROP_MODES = ("none", "bbox", "content")
INTENSITY_MODES = ("auto", "percentile", "minmax", "none")
DEFAULT_CT_WINDOWS = ("lung", "soft_tissue", "bone")
#: ImageNet per-channel mean / std (for ``spec["mean"]`` / ``spec["std"]`` of ImageNet-trained backbones)
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
_FALLBACK_WINDOWS = {"lung": (-600.0, 1500.0), "soft_tissue": (40.0, 400.0), "bone": (400.0, 1800.0)}
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_noted_fallback = False


def _check(value, name, allowed):
    if value not in allowed:
        shown = "{" + ", ".join(repr(a) for a in allowed) + "}"
        raise ValueError(f"The {name!r} parameter of preprocess must be one of {shown}. Got {value!r} instead.")


def window_bounds(windows: Sequence[Any] = DEFAULT_CT_WINDOWS) -> list[tuple[float, float]]:
    """``(lower, upper)`` HU bounds of named windows (:func:`radmine.pixels.list_windows`) or ``(center, width)`` pairs."""
    try:
        from radmine.pixels import WINDOWS as registry
    except ImportError:  # pragma: no cover - pixels is part of radmine
        registry = {k: (c, w, "") for k, (c, w) in _FALLBACK_WINDOWS.items()}
    out = []
    for w in windows:
        if isinstance(w, str):
            key = w.strip().lower().replace("-", "_").replace(" ", "_")
            if key not in registry:
                raise ValueError(f"Unknown CT window {w!r}; expected one of {sorted(registry)} or a (center, width) pair.")
            c, width = registry[key][0], registry[key][1]
        else:
            c, width = float(w[0]), float(w[1])
        out.append((c - width / 2.0, c + width / 2.0))
    if len(out) != 3:
        raise ValueError(f"'windows' must name exactly 3 CT windows (one per channel); got {len(out)}.")
    return out


def _to_gray(array: Any) -> tuple[np.ndarray, str]:
    """A 2-D float32 array and the kind of the input values (``uint8``, ``uint16``, ``float``)."""
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[-1] in (3, 4):  # H, W, RGB(A)
        kind = "uint8" if a.dtype == np.uint8 else "float"
        a = a[..., :3].astype(np.float32) @ _LUMA
        return a, kind
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"preprocess expects a 2-D image (H, W) or (H, W, 3); got shape {a.shape}.")
    if a.dtype == np.uint8:
        kind = "uint8"
    elif a.dtype in (np.uint16,):
        kind = "uint16"
    elif a.dtype == np.bool_:
        a, kind = a.astype(np.float32), "float"
    elif a.dtype.kind in "iuf":
        kind = "float"
    else:
        raise TypeError(f"preprocess expects a numeric image array; got dtype {a.dtype}.")
    return np.ascontiguousarray(a, dtype=np.float32), kind


def fast_percentiles(a: np.ndarray, q: Sequence[float], *, integer: bool = False, max_values: int = 1 << 16) -> list[float]:
    """Percentiles ``q`` (0-100) of an image, fast.

    ``integer=True`` (8-bit images): read off a 256-bin histogram (the
    smallest value whose cumulative share reaches ``q``), ~10x faster than
    :func:`numpy.percentile`; otherwise :func:`numpy.percentile` on a strided
    subsample of at most ``max_values`` pixels.
    """
    a = np.asarray(a)
    if a.size == 0:
        raise ValueError("fast_percentiles got an empty array.")
    if integer:
        hist = np.bincount(np.clip(a, 0, 255).astype(np.uint8, copy=False).ravel(), minlength=256)
        cum = np.cumsum(hist)
        n = int(cum[-1])
        return [float(np.searchsorted(cum, max(1.0, float(v) / 100.0 * n), side="left")) for v in q]
    flat = a.ravel()
    step = max(1, flat.size // int(max_values))
    return [float(v) for v in np.percentile(flat[::step], list(q))]


def _scale_intensity(x: np.ndarray, kind: str, intensity: str, percentiles, bounds=None) -> np.ndarray:
    """Map a resized gray image to [0, 1] according to ``intensity`` (numpy, in float32).

    ``bounds``: precomputed ``(lo, hi)`` clip points for ``"percentile"``.
    """
    if intensity == "none":
        return x
    if intensity == "auto":
        if kind == "uint8":
            return x * np.float32(1.0 / 255.0)
        lo, hi = float(x.min()), float(x.max())
        if kind == "float" and lo >= 0.0 and hi <= 1.0:
            return x
        return (x - lo) / np.float32(hi - lo) if hi > lo else np.zeros_like(x)
    if intensity == "minmax":
        lo, hi = float(x.min()), float(x.max())
        return (x - lo) / np.float32(hi - lo) if hi > lo else np.zeros_like(x)
    lo, hi = bounds if bounds is not None else fast_percentiles(x, percentiles)
    if hi <= lo:
        return np.zeros_like(x)
    return np.clip((x - lo) / np.float32(hi - lo), 0.0, 1.0)


def _resize(gray: np.ndarray, nh: int, nw: int) -> np.ndarray:
    """Bilinear resize (antialiased when shrinking) with PIL on float32: no torch/OpenMP thread pool.

    Tiny torch ops in a process whose OpenMP pool also runs the model cost
    10-50x their work in thread spin-waits; PIL's resampler is single-threaded.
    """
    from PIL import Image

    if (nh, nw) == gray.shape:
        return gray
    im = Image.fromarray(np.ascontiguousarray(gray, dtype=np.float32), mode="F")
    return np.asarray(im.resize((nw, nh), Image.BILINEAR), dtype=np.float32)


def content_bbox(gray: np.ndarray, mode: str = "content", threshold: float = 0.1,
                 margin: float = 0.02, min_fraction: float = 0.05,
                 integer: bool | None = None) -> tuple[int, int, int, int]:
    """Bounding box ``(top, bottom, left, right)`` (half-open) of the image content.

    Parameters
    ----------
    gray : ndarray, shape (H, W)
        Any numeric gray image.
    mode : {"content", "bbox", "none"}
        ``"bbox"``: all pixels above the threshold; ``"content"``: the largest
        bright connected region (plus regions of at least a tenth of its area)
        after a 3x3 binary opening, which removes thin text strokes and small
        marks; ``"none"``: the whole image.
    threshold : float, default=0.1
        Foreground = values above ``lo + threshold * (hi - lo)`` with ``lo`` /
        ``hi`` the 1st / 99th percentiles of the image.
    margin : float, default=0.02
        Border added around the box, as a fraction of the image's longer side.
    min_fraction : float, default=0.05
        A box smaller than this fraction of the image area (or no foreground
        at all) gives the whole image: the crop never throws the image away.
    integer : bool, optional
        Whether the values are 8-bit integers (percentiles from a histogram);
        default: ``gray.dtype == uint8``.

    Returns
    -------
    (top, bottom, left, right) : tuple of int
        ``gray[top:bottom, left:right]`` is the crop.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((100, 100), dtype=np.uint8); a[20:60, 30:90] = 200
    >>> content_bbox(a, margin=0.0)
    (20, 60, 30, 90)
    """
    h, w = gray.shape
    full = (0, h, 0, w)
    if mode == "none" or h < 8 or w < 8:
        return full
    step = max(1, round(max(h, w) / 128))  # the box is found on a ~128 px subsample (speed)
    small = gray[::step, ::step]
    if integer is None:
        integer = small.dtype == np.uint8
    lo, hi = fast_percentiles(small, (1.0, 99.0), integer=integer)
    if hi <= lo:
        return full
    mask = small > lo + float(threshold) * (hi - lo)
    if mode == "content":
        from scipy import ndimage

        mask = _open3(mask)
        labels, n = ndimage.label(mask)
        if n == 0:
            return full
        areas = np.bincount(labels.ravel())[1:]
        keep = areas >= 0.1 * areas.max()
        boxes = [b for b, k in zip(ndimage.find_objects(labels), keep) if k]
        t, b = min(s[0].start for s in boxes), max(s[0].stop for s in boxes)
        le, r = min(s[1].start for s in boxes), max(s[1].stop for s in boxes)
    else:
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        if rows.size == 0 or cols.size == 0:
            return full
        t, b, le, r = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    t, b, le, r = t * step, b * step, le * step, r * step
    m = round(float(margin) * max(h, w))
    top, bottom = max(0, t - m), min(h, b + m)
    left, right = max(0, le - m), min(w, r + m)
    if (bottom - top) * (right - left) < float(min_fraction) * h * w:
        return full
    return top, bottom, left, right


def _erode3(m: np.ndarray) -> np.ndarray:
    """3x3 binary erosion (pixels outside the image count as background)."""
    r = np.zeros_like(m)
    r[1:-1] = m[:-2] & m[1:-1] & m[2:]
    out = np.zeros_like(m)
    out[:, 1:-1] = r[:, :-2] & r[:, 1:-1] & r[:, 2:]
    return out


def _dilate3(m: np.ndarray) -> np.ndarray:
    """3x3 binary dilation."""
    r = m.copy()
    r[1:] |= m[:-1]
    r[:-1] |= m[1:]
    out = r.copy()
    out[:, 1:] |= r[:, :-1]
    out[:, :-1] |= r[:, 1:]
    return out


def _open3(m: np.ndarray) -> np.ndarray:
    """3x3 binary opening (same as ``scipy.ndimage.binary_opening`` with a 3x3 structure)."""
    return _dilate3(_erode3(m))


def looks_like_hu(array: np.ndarray) -> bool:
    """Heuristic: signed/float values reaching below -100 (air and fat in HU)."""
    a = np.asarray(array)
    return a.dtype.kind in "if" and a.size > 0 and float(a.min()) < -100.0


def preprocess(
    array: Any,
    spec: dict[str, Any],
    *,
    channels: str = "replicate",
    resize: str = "pad",
    intensity: str = "auto",
    percentiles: tuple[float, float] = (0.5, 99.5),
    pad_value: float = 0.0,
    windows: Sequence[Any] = DEFAULT_CT_WINDOWS,
    hu: bool | None = None,
    crop: str = "none",
    crop_threshold: float = 0.1,
):
    """Turn one 2-D image into a normalised ``(3, S, S)`` float tensor.

    Parameters
    ----------
    array : array-like, shape (H, W) or (H, W, 3)
        ``uint8`` display values, floats in ``[0, 1]`` (``load_pixels``) or HU
        for CT. RGB input is converted to gray (ITU-R 601 luma).
    spec : dict
        The backbone's ``input_spec``: ``image_size`` (``S``), ``mean``, ``std``.
    channels : {"replicate", "ct_windows"}, default="replicate"
    crop : {"none", "bbox", "content"}, default="none"
        Crop to the image content before resizing (:func:`content_bbox`):
        ``"bbox"`` drops black borders, ``"content"`` also burned-in text and
        logos in the margins.
    crop_threshold : float, default=0.1
        Foreground threshold of the crop, as a fraction of the image's
        1st-99th percentile range.
    resize : {"pad", "stretch"}, default="pad"
    intensity : {"auto", "percentile", "minmax", "none"}, default="auto"
        How gray values reach ``[0, 1]`` (not used for ``"ct_windows"``).
    percentiles : (float, float), default=(0.5, 99.5)
        Clip points for ``intensity="percentile"``, computed on the (cropped)
        image before resizing (from a histogram for 8-bit images,
        :func:`fast_percentiles`).
    pad_value : float, default=0.0
        Fill of the padded border, in ``[0, 1]`` units (0 = black).
    windows : three window names or (center, width) pairs
        Channels for ``"ct_windows"``.
    hu : bool, optional
        Whether ``array`` holds Hounsfield units; ``None`` guesses
        (:func:`looks_like_hu`). ``"ct_windows"`` on non-HU input falls back
        to ``"replicate"``.

    Returns
    -------
    torch.Tensor, shape (3, S, S), float32

    Examples
    --------
    >>> import numpy as np
    >>> from radmine.images.preprocess import preprocess
    >>> spec = {"image_size": 32, "mean": [0.5] * 3, "std": [0.25] * 3}
    >>> preprocess(np.zeros((40, 20), dtype=np.uint8), spec).shape
    torch.Size([3, 32, 32])
    """
    import torch

    global _noted_fallback
    _check(channels, "channels", CHANNEL_MODES)
    _check(resize, "resize", RESIZE_MODES)
    _check(intensity, "intensity", INTENSITY_MODES)
    _check(crop, "crop", CROP_MODES)
    size = int(spec["image_size"])
    gray, kind = _to_gray(array)
    if gray.size == 0:
        raise ValueError(f"preprocess got an empty image of shape {gray.shape}.")
    use_windows = channels == "ct_windows"
    if use_windows:
        is_hu = looks_like_hu(gray) if hu is None else bool(hu)
        if not is_hu or kind == "uint8":
            if not _noted_fallback:
                logger.info("channels='ct_windows' needs CT pixels in HU; using 'replicate' for non-HU images.")
                _noted_fallback = True
            use_windows = False

    if crop != "none":
        top, bottom, left, right = content_bbox(gray, crop, crop_threshold, integer=kind == "uint8")
        gray = gray[top:bottom, left:right]
    bounds = None
    if intensity == "percentile" and not use_windows:  # clip points from the (cropped) source image
        bounds = fast_percentiles(gray, percentiles, integer=kind == "uint8")
    h, w = gray.shape
    if resize == "pad":
        scale = size / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    else:
        nh, nw = size, size
    x = _resize(gray, nh, nw)  # (nh, nw) float32

    if use_windows:
        chans = [np.clip((x - lo) / np.float32(hi - lo), 0.0, 1.0) for lo, hi in window_bounds(windows)]
    else:
        g = _scale_intensity(x, kind, intensity, percentiles, bounds)
        chans = [g, g, g]
    mean = [float(v) for v in spec["mean"]]
    std = [float(v) for v in spec["std"]]
    out = np.empty((3, size, size), dtype=np.float32)
    top, left = (size - nh) // 2, (size - nw) // 2
    for c in range(3):
        fill = (float(pad_value) - mean[c]) / std[c]
        if (nh, nw) != (size, size):
            out[c].fill(fill)
        out[c, top : top + nh, left : left + nw] = (chans[c] - np.float32(mean[c])) / np.float32(std[c])
    return torch.from_numpy(out)
