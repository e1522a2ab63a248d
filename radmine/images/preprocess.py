"""Preprocessing that respects medical images: gray -> 3 channels, aspect-preserving resize, normalisation.

:func:`preprocess` turns one 2-D image (``uint8`` display values, a float
array in ``[0, 1]`` from :func:`radmine.pixels.load_pixels`, or Hounsfield
units for CT) into the ``(3, S, S)`` float tensor a backbone expects:

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
INTENSITY_MODES = ("auto", "percentile", "minmax", "none")
DEFAULT_CT_WINDOWS = ("lung", "soft_tissue", "bone")
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


def _scale_intensity(x: np.ndarray, kind: str, intensity: str, percentiles) -> np.ndarray:
    """Map a resized gray image to [0, 1] according to ``intensity`` (numpy, in float32)."""
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
    lo, hi = (float(v) for v in np.percentile(x, [percentiles[0], percentiles[1]]))
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
    resize : {"pad", "stretch"}, default="pad"
    intensity : {"auto", "percentile", "minmax", "none"}, default="auto"
        How gray values reach ``[0, 1]`` (not used for ``"ct_windows"``).
    percentiles : (float, float), default=(0.5, 99.5)
        Clip points for ``intensity="percentile"``.
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
        g = _scale_intensity(x, kind, intensity, percentiles)
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
