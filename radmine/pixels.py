"""Load image pixels as display-ready float arrays: DICOM (with LUTs and CT windows), PNG, JPEG.

:func:`load_pixels` is the one entry point every image pipeline uses. It
returns ``float32`` arrays scaled to ``[0, 1]`` (bright = dense / white on
screen) so that a DICOM CT slice, a computed radiograph stored as
``MONOCHROME1`` and a MedPix PNG look alike to an image model.

DICOM pipeline (monochrome images)
----------------------------------
1. stored values -> modality LUT / rescale slope + intercept
   (:func:`pydicom.pixels.apply_modality_lut`): Hounsfield units for CT;
2. then one of
   * a named CT window (``window="lung"``, see :func:`list_windows`) or an
     explicit ``(center, width)`` pair: linear window on the rescaled values,
     clipped to ``[0, 1]``;
   * the file's own VOI LUT or window (:func:`pydicom.pixels.apply_voi_lut`,
     when ``voi_lut=True`` and the file has one), scaled to ``[0, 1]`` by its
     output range;
   * otherwise min-max scaling of the image to ``[0, 1]``;
   * ``window="raw"``: the rescaled values (e.g. HU) as they are, unscaled;
3. ``MONOCHROME1`` (white = low values) is inverted so that bright always
   means dense.

Colour images (RGB, YBR, PALETTE COLOR) are converted to RGB by pydicom and
then to gray with ITU-R 601 luma weights (0.299 R + 0.587 G + 0.114 B).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

#: Named CT windows: name -> (center, width, use), in Hounsfield units.
WINDOWS: dict[str, tuple[float, float, str]] = {
    "lung": (-600.0, 1500.0, "lung parenchyma, airways, nodules"),
    "mediastinum": (40.0, 400.0, "mediastinum, heart, great vessels"),
    "soft_tissue": (40.0, 400.0, "general soft tissue (same as mediastinum)"),
    "abdomen": (50.0, 400.0, "abdominal soft tissue"),
    "liver": (30.0, 150.0, "liver lesions (narrow window)"),
    "bone": (400.0, 1800.0, "bone, fractures"),
    "brain": (40.0, 80.0, "brain parenchyma"),
    "subdural": (75.0, 215.0, "subdural / extra-axial blood"),
    "stroke": (40.0, 40.0, "early ischaemic change (very narrow)"),
    "temporal_bone": (600.0, 2800.0, "temporal bone, inner ear"),
}

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp"}
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)


def list_windows() -> pd.DataFrame:
    """The named CT windows accepted by :func:`load_pixels`.

    Returns
    -------
    DataFrame
        Columns ``window, center, width, lower, upper, use`` (HU), one row
        per window, in registry order.

    Examples
    --------
    >>> import radmine
    >>> radmine.list_windows().set_index("window").loc["lung", ["center", "width"]].tolist()
    [-600.0, 1500.0]
    """
    rows = [
        {"window": k, "center": c, "width": w, "lower": c - w / 2, "upper": c + w / 2, "use": u}
        for k, (c, w, u) in WINDOWS.items()
    ]
    return pd.DataFrame(rows, columns=["window", "center", "width", "lower", "upper", "use"])


def _resolve_window(window: Any) -> tuple[float, float] | str | None:
    if window is None:
        return None
    if isinstance(window, str):
        key = window.strip().lower().replace("-", "_").replace(" ", "_")
        if key == "raw":
            return "raw"
        if key not in WINDOWS:
            raise ValueError(
                f"Unknown window {window!r}: expected one of {sorted(WINDOWS)}, 'raw', "
                f"or a (center, width) pair in HU."
            )
        c, w, _ = WINDOWS[key]
        return (c, w)
    if isinstance(window, Sequence) and len(window) == 2:
        c, w = float(window[0]), float(window[1])
        if not w > 0:
            raise ValueError(f"window (center, width) needs width > 0; got {window!r}.")
        return (c, w)
    raise TypeError(
        f"window must be None, a name from {sorted(WINDOWS)}, 'raw' or a (center, width) pair; "
        f"got {window!r} of type {type(window).__name__}."
    )


def load_pixels(
    source: Any,
    *,
    window: str | tuple[float, float] | None = None,
    frame: int | None = None,
    voi_lut: bool = True,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Read an image as a grayscale ``float32`` array in ``[0, 1]``.

    Parameters
    ----------
    source : str, Path or pydicom.Dataset
        A DICOM file (any transfer syntax pydicom can decode), a
        :class:`pydicom.Dataset`, or a PNG/JPEG/TIFF/BMP file.
    window : str or (float, float), optional
        DICOM only. A named CT window from :func:`list_windows` (``"lung"``,
        ``"mediastinum"``, ``"soft_tissue"``, ``"bone"``, ``"brain"``, ...), an
        explicit ``(center, width)`` pair in rescaled units (HU for CT), or
        ``"raw"`` for the rescaled values unscaled. ``None`` (default) uses
        the file's VOI LUT / window if ``voi_lut`` and present, else min-max
        scaling. Ignored for PNG/JPEG files, whose pixels are already
        display values.
    frame : int, optional
        For multi-frame DICOM: the frame index to return. ``None`` returns
        all frames, shape ``(n_frames, H, W)``, when there are several.
    voi_lut : bool, default True
        Use the file's own VOI LUT / window when no ``window`` is given.
    max_pixels : int, optional
        Refuse images whose header declares more pixel values than this
        (``Rows x Columns x frames x samples`` for DICOM, only the requested
        frame when ``frame`` is given; width x height for PNG/JPEG) before
        decoding anything. Default: ``max_image_pixels`` of
        :func:`radmine.readers.limits.get_limits` (268 million).

    Returns
    -------
    ndarray of float32
        ``(H, W)`` for a single frame (or when ``frame`` is given),
        ``(n_frames, H, W)`` for a multi-frame DICOM with ``frame=None``.
        Values in ``[0, 1]`` except with ``window="raw"``.

    Raises
    ------
    FileNotFoundError
        If ``source`` is a path that does not exist.
    ValueError
        If the file is neither a DICOM nor an image PIL can decode, is
        truncated, has no pixel data, needs a decoder that is not installed
        (naming the transfer syntax), is larger than ``max_pixels`` or is a
        PNG decompression bomb, the window name is unknown, or ``frame`` is
        out of range.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> import radmine
    >>> ct = radmine.load_pixels(get_testdata_file("CT_small.dcm"), window="soft_tissue")
    >>> ct.shape, ct.dtype, float(ct.min()) >= 0.0, float(ct.max()) <= 1.0
    ((128, 128), dtype('float32'), True, True)
    """
    from radmine.readers.limits import resolve

    win = _resolve_window(window)
    limit = resolve("max_image_pixels", max_pixels)
    if frame is not None:
        if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)):
            raise TypeError(f"frame must be an int or None; got {frame!r} of type {type(frame).__name__}.")
    try:
        from pydicom import Dataset
    except ImportError:  # pragma: no cover - pydicom is a hard dependency
        Dataset = ()  # type: ignore[assignment]
    if isinstance(source, Dataset):
        name = str(getattr(source, "filename", None) or "<pydicom Dataset>")
        return _dicom_pixels(source, name, win, frame, voi_lut, limit)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            f"load_pixels: source must be a path or a pydicom Dataset; got {type(source).__name__}."
        )
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"load_pixels: image file not found: {path}")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return _pil_pixels(path, frame, limit)
    ds = _try_dcmread(path)
    if ds is None:
        # not DICOM: maybe an image file without a usual suffix
        return _pil_pixels(path, frame, limit, not_dicom=True)
    return _dicom_pixels(ds, str(path), win, frame, voi_lut, limit)


def too_many_pixels(n: int, limit: int, what: str) -> str:
    """The reason text for an image over the pixel limit."""
    return (
        f"image too large: {what} = {n:,} pixel values, over the limit of {limit:,} "
        f"(raise it with radmine.readers.limits.set_limits(max_image_pixels=...) or the "
        f"[read] setting max_image_megapixels)"
    )


def dicom_pixel_count(ds, frame: int | None = None) -> tuple[int, str]:
    """Pixel values a DICOM header declares (all frames, or one), and a description for messages."""

    def num(key, default):
        try:
            return max(int(ds.get(key, default) or default), 0)
        except (TypeError, ValueError):
            return default

    rows, cols, samples = num("Rows", 0), num("Columns", 0), num("SamplesPerPixel", 1) or 1
    frames = 1 if frame is not None else max(num("NumberOfFrames", 1), 1)
    what = f"{rows} rows x {cols} columns x {frames} frame(s) x {samples} sample(s)"
    return rows * cols * frames * samples, what


def _try_dcmread(path: Path):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, force=False)
    except InvalidDicomError:
        return None
    except Exception as err:  # noqa: BLE001 - pydicom raises many types on corrupt input
        raise ValueError(f"{path}: cannot read DICOM header ({type(err).__name__}: {err}).") from None


def _pil_pixels(path: Path, frame: int | None, limit: int, not_dicom: bool = False) -> np.ndarray:
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides
            im = Image.open(path)
    except Image.DecompressionBombError as err:
        raise ValueError(f"{path}: decompression bomb refused by PIL ({err}).") from None
    except UnidentifiedImageError:
        what = "neither a DICOM file nor an image PIL can read" if not_dicom else "not an image PIL can read"
        raise ValueError(f"{path}: {what}.") from None
    except (OSError, SyntaxError) as err:
        raise ValueError(f"{path}: cannot read image header ({err}).") from None
    try:
        with im:
            n = im.width * im.height * len(im.getbands())
            if n > limit:
                raise ValueError(f"{path}: " + too_many_pixels(n, limit, f"{im.width} x {im.height} x {len(im.getbands())} band(s)"))
            if frame:
                try:
                    im.seek(frame)
                except EOFError:
                    raise ValueError(
                        f"{path}: frame {frame} out of range (file has {getattr(im, 'n_frames', 1)} frame(s))."
                    ) from None
            im.load()
            arr = _pil_to_gray(im)
    except (OSError, SyntaxError) as err:
        raise ValueError(f"{path}: cannot decode image ({err}); the file may be truncated or corrupt.") from None
    return arr


def _pil_to_gray(im) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return (np.asarray(im, dtype=np.float64) / 65535.0).astype(np.float32)
    if mode in ("I", "F"):
        a = np.asarray(im, dtype=np.float64)
        return _minmax(a)
    if mode == "L":
        return (np.asarray(im, dtype=np.float32) / 255.0).astype(np.float32)
    if mode in ("LA",):
        return (np.asarray(im.getchannel(0), dtype=np.float32) / 255.0).astype(np.float32)
    # RGB, RGBA, P, 1, CMYK, YCbCr ...: let PIL apply ITU-R 601-2 luma
    return (np.asarray(im.convert("L"), dtype=np.float32) / 255.0).astype(np.float32)


def _minmax(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64, copy=False)
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    if hi <= lo:
        return np.zeros(a.shape, dtype=np.float32)
    return ((a - lo) / (hi - lo)).astype(np.float32)


def count_frames(ds) -> int:
    """Frames in a pydicom dataset (``NumberOfFrames``; 1 when absent or unreadable)."""
    try:
        return max(int(ds.get("NumberOfFrames", 1) or 1), 1)
    except (TypeError, ValueError):
        return 1


def _dicom_pixels(ds, name: str, win, frame: int | None, voi_lut: bool, limit: int | None = None) -> np.ndarray:
    from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        sop = ds.get("SOPClassUID")
        kind = getattr(sop, "name", None) or sop or "unknown"
        raise ValueError(f"{name}: no pixel data (SOP class {kind}); not an image or the file is truncated.")
    n_frames = count_frames(ds)
    if frame is not None and not (-n_frames <= frame < n_frames):
        raise ValueError(f"{name}: frame {frame} out of range; the image has {n_frames} frame(s).")
    if limit is not None:
        n, what = dicom_pixel_count(ds, frame if n_frames > 1 else None)
        if n > limit:
            raise ValueError(f"{name}: " + too_many_pixels(n, limit, what))
    try:
        if frame is not None and n_frames > 1:
            from pydicom.pixels import pixel_array

            arr = pixel_array(ds, index=frame % n_frames)
        else:
            arr = ds.pixel_array
    except Exception as err:  # noqa: BLE001 - decoders raise many types on bad data
        raise ValueError(
            f"{name}: cannot decode pixel data ({_first_line(err)}); the file may be truncated, "
            f"corrupt, or need a decoder plugin for {_transfer_syntax(ds)}{_missing_decoder_hint(ds)}."
        ) from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()

    if photometric == "PALETTE COLOR":
        try:
            rgb = apply_color_lut(arr, ds)
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"{name}: cannot apply the palette colour LUT ({err}).") from None
        return _rgb_to_gray(rgb, _bits_range(ds, rgb))
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples > 1:
        # pydicom converts YBR to RGB when decoding
        return _rgb_to_gray(arr, _bits_range(ds, arr))

    modality_values = apply_modality_lut(arr, ds)  # ints stay ints for a VOI LUT table lookup
    values = np.asarray(modality_values, dtype=np.float64)
    if win == "raw":
        return values.astype(np.float32)
    if isinstance(win, tuple):
        modality = str(ds.get("Modality", "") or "")
        if modality and modality != "CT":
            logger.info("%s: CT window applied to a %s image (values are not HU).", name, modality)
        c, w = win
        out = np.clip((values - (c - w / 2.0)) / w, 0.0, 1.0)
    elif voi_lut and _has_voi(ds):
        try:
            out = apply_voi_lut(modality_values, ds)
            lo, hi = _voi_range(ds, out)
            out = np.clip((np.asarray(out, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0) if hi > lo else _minmax(out)
        except Exception as err:  # noqa: BLE001 - bad LUT/window values in the header
            logger.info("%s: VOI LUT not usable (%s); falling back to min-max scaling.", name, err)
            out = _minmax(values)
    else:
        out = _minmax(values)
    if photometric == "MONOCHROME1":
        out = 1.0 - out
    return np.asarray(out, dtype=np.float32)


def _has_voi(ds) -> bool:
    return bool(ds.get("VOILUTSequence")) or ("WindowCenter" in ds and "WindowWidth" in ds)


def _voi_range(ds, out: np.ndarray) -> tuple[float, float]:
    """Output range of :func:`pydicom.pixels.apply_voi_lut` for this dataset."""
    seq = ds.get("VOILUTSequence")
    if seq:
        item = seq[0]
        try:
            data = np.asarray(item.LUTData, dtype=np.float64).ravel()
            if data.size and data.max() > data.min():
                return float(data.min()), float(data.max())
            bits = int(item.LUTDescriptor[2])
            return 0.0, float(2**bits - 1)
        except Exception:  # noqa: BLE001
            return float(np.min(out)), float(np.max(out))
    bits = int(ds.get("BitsStored", 16) or 16)
    if ds.get("ModalityLUTSequence"):
        y_min, y_max = 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    elif int(ds.get("PixelRepresentation", 0) or 0) == 0:
        y_min, y_max = 0.0, float(2**bits - 1)
    else:
        y_min, y_max = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None and intercept is not None and not ds.get("ModalityLUTSequence"):
        y_min = y_min * float(slope) + float(intercept)
        y_max = y_max * float(slope) + float(intercept)
    return y_min, y_max


def _bits_range(ds, arr: np.ndarray) -> float:
    if arr.dtype.kind == "f":
        return 0.0
    if arr.dtype.itemsize == 1:
        return 255.0
    bits = int(ds.get("BitsStored", arr.dtype.itemsize * 8) or arr.dtype.itemsize * 8)
    return float(2**bits - 1)


def _rgb_to_gray(rgb: np.ndarray, full_scale: float) -> np.ndarray:
    a = np.asarray(rgb, dtype=np.float64)[..., :3]
    gray = a @ _LUMA
    if full_scale > 0:
        return np.clip(gray / full_scale, 0.0, 1.0).astype(np.float32)
    return _minmax(gray)


def _transfer_syntax(ds) -> str:
    meta = getattr(ds, "file_meta", None)
    tsyntax = meta.get("TransferSyntaxUID") if meta is not None else None
    return getattr(tsyntax, "name", None) or str(tsyntax or "an unknown transfer syntax")


def _first_line(err: BaseException) -> str:
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    return f"{type(err).__name__}: {text[:400]}"


def _missing_decoder_hint(ds) -> str:
    """`` (install ...)`` when no decoder plugin for the dataset's transfer syntax is importable."""
    meta = getattr(ds, "file_meta", None)
    tsyntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if tsyntax is None or not getattr(tsyntax, "is_compressed", False):
        return ""
    try:
        from pydicom.pixels.decoders.base import get_decoder

        decoder = get_decoder(tsyntax)
        if decoder.is_available:
            return ""
        missing = [str(dep) for dep in decoder.missing_dependencies]
    except (NotImplementedError, ValueError, ImportError, AttributeError):
        return ""
    return f" (no decoder available; missing: {'; '.join(missing)}; install radmine's dependencies: pylibjpeg, pylibjpeg-libjpeg, pylibjpeg-openjpeg, pylibjpeg-rle)"


def downscale(arr: np.ndarray, size: int) -> np.ndarray:
    """Shrink a 2-D image so that its longer side is at most ``size`` pixels (area averaging).

    Images already small enough are returned as they are. Used for
    thumbnails and montages, so a figure of many full-resolution images
    stays small.

    Parameters
    ----------
    arr : ndarray, shape (H, W)
    size : int
        Longest side of the result, in pixels.

    Returns
    -------
    ndarray of float32

    Examples
    --------
    >>> import numpy as np
    >>> downscale(np.zeros((2000, 1000), dtype=np.float32), 100).shape
    (100, 50)
    """
    from PIL import Image

    a = np.asarray(arr, dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"downscale: expected a 2-D image, got shape {a.shape}.")
    h, w = a.shape
    if max(h, w) <= size:
        return a
    scale = size / max(h, w)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(a, mode="F").resize(new, Image.Resampling.BOX), dtype=np.float32)
