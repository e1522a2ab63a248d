"""The training loop shared by the image-to-text models.

What every model in :mod:`radmine.img2text` gets from here:

* **seeds** -- weights are initialised and every epoch runs under a local
  torch seed (``torch.random.fork_rng``: the global RNG is left alone) and a
  per-epoch numpy Generator, both derived from ``random_state``; an epoch is
  therefore the same whether the run went straight through or was resumed;
* **mixed batches without same-case negatives** (:func:`group_batches`): a
  case (patient / report) never appears twice in a batch, so a contrastive
  loss never treats a second image or sentence of the same case as a negative;
* **early stopping** on a dev metric (higher is better) with ``patience``;
  the best weights are restored at the end;
* **checkpoints** after every epoch in ``checkpoint_dir``: ``last.safetensors``
  (weights + optimizer state), ``best.safetensors`` (weights) and
  ``trainer.json`` (epoch, history, best score, settings fingerprint, radmine
  version). A new ``fit`` with the same settings and folder **resumes** after
  the last finished epoch; a folder written with other settings is refused;
* a ``history`` table (one row per epoch) and a tqdm bar over epochs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from radmine._io import atomic_write_bytes, atomic_write_json
from radmine.base import derived_seed

logger = logging.getLogger(__name__)

TRAINER_FILE = "trainer.json"
LAST_FILE = "last.safetensors"
BEST_FILE = "best.safetensors"
LR_SCHEDULES = ("constant", "cosine")


def resolve_device(device: str | None):
    """``"auto"`` -> CUDA when available, else CPU; anything else -> ``torch.device(device)``."""
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"The 'device' parameter must be 'auto', 'cpu', 'cuda' or 'cuda:N'. Got {device!r}.") from None


@contextlib.contextmanager
def local_torch_seed(seed: int, device=None):
    """Run a block under ``torch.manual_seed(seed)`` and restore the global RNG state afterwards."""
    import torch

    devices = []
    if device is not None and getattr(device, "type", str(device)).startswith("cuda") and torch.cuda.is_available():
        devices = [torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def cpu_threads(n: int | None):
    """Run a block with ``torch.set_num_threads(n)`` and restore the previous count (None: unchanged).

    Small projection heads on frozen features train many times faster on one
    thread than on several (OpenMP start-up and barriers cost more than the
    matrix products, badly so on a busy machine).
    """
    import torch

    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def group_batches(groups: Sequence, batch_size: int, rng: np.random.Generator, *, min_size: int = 2) -> list[np.ndarray]:
    """Shuffle rows into batches in which no group occurs twice.

    Greedy: rows in a random order fill the open batch unless their group is
    already in it; skipped rows wait for the next batch. Every row lands in
    exactly one batch, except that batches smaller than ``min_size`` (a case
    with more rows than there are other cases) are dropped.

    Parameters
    ----------
    groups : sequence of hashable, length n_rows
        Case / patient of each row.
    batch_size : int
    rng : numpy Generator

    Returns
    -------
    list of int ndarray
        Row indices per batch.
    """
    groups = np.asarray(groups)
    _, codes = np.unique(groups.astype(str), return_inverse=True)
    pending = list(rng.permutation(len(groups)))
    batches = []
    while pending:
        batch, seen, rest = [], set(), []
        for i in pending:
            if len(batch) < batch_size and codes[i] not in seen:
                batch.append(i)
                seen.add(codes[i])
            else:
                rest.append(i)
        pending = rest
        if len(batch) >= min_size:
            batches.append(np.asarray(batch, dtype=np.int64))
    return batches


def split_by_group(groups: Sequence, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of rows held out: about ``fraction`` of the groups, never a split group.

    At least one group is held out and at least one kept when there are two
    or more groups.
    """
    groups = np.asarray(groups).astype(str)
    uniq = np.unique(groups)
    if len(uniq) < 2 or fraction <= 0:
        return np.zeros(len(groups), dtype=bool)
    n_held = int(np.clip(round(fraction * len(uniq)), 1, len(uniq) - 1))
    held = set(rng.permutation(uniq)[:n_held].tolist())
    return np.array([g in held for g in groups])


class AdamW:
    """Plain AdamW (Loshchilov & Hutter 2019), same update as ``torch.optim.AdamW``.

    Kept here because ``torch.optim`` imports ``torch._dynamo`` on first use,
    which costs seconds per process; the state is a flat dict of tensors that
    goes straight into a safetensors checkpoint.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2) -> None:
        import torch

        self.params = list(params)
        self.lr, self.betas, self.eps, self.weight_decay = float(lr), betas, float(eps), float(weight_decay)
        self.t = 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        import torch

        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        with torch.no_grad():
            for p, m, v in zip(self.params, self.m, self.v):
                if p.grad is None:
                    continue
                g = p.grad
                p.mul_(1 - self.lr * self.weight_decay)
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (v / c2).sqrt_().add_(self.eps)
                p.addcdiv_(m, denom, value=-self.lr / c1)

    def state_tensors(self) -> dict:
        out = {}
        for i, (m, v) in enumerate(zip(self.m, self.v)):
            out[f"opt.{i}.exp_avg"] = m.detach().cpu().contiguous().clone()
            out[f"opt.{i}.exp_avg_sq"] = v.detach().cpu().contiguous().clone()
        return out

    def load_state_tensors(self, tensors: dict, step: int) -> None:
        for i, (m, v) in enumerate(zip(self.m, self.v)):
            m.copy_(tensors[f"opt.{i}.exp_avg"])
            v.copy_(tensors[f"opt.{i}.exp_avg_sq"])
        self.t = int(step)


def _state_tensors(module) -> dict:
    return {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


def _clip_grad_norm(params, max_norm: float) -> None:
    import torch

    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    total = torch.sqrt(sum((g.detach().float() ** 2).sum() for g in grads))
    scale = max_norm / (float(total) + 1e-6)
    if scale < 1:
        for g in grads:
            g.mul_(scale)


class Trainer:
    """Epoch loop with early stopping, checkpoints and resume (see module docstring).

    Parameters
    ----------
    module : torch.nn.Module
        Trained in place; holds every parameter that is optimised.
    lr, weight_decay : float
        AdamW settings.
    epochs : int
        Last epoch to run (1-based epochs).
    patience : int or None
        Stop after this many epochs without a better monitor value (None: never).
    checkpoint_dir : str or Path or None
    fingerprint : str
        Hash of the settings and data; a checkpoint with another one is refused.
    config : dict
        JSON-serialisable settings written beside the checkpoint.
    monitor : str
        Key of the ``evaluate()`` dict to maximise.
    random_state : int or None
    device : torch.device
    progress : bool
    desc : str
        tqdm label.
    n_threads : int or None
        CPU threads while training (None: torch's current setting).
    lr_schedule : {"constant", "cosine"}
        Cosine: the learning rate decays from ``lr`` to 0 over ``epochs``
        (set per step from the epoch and the step's position in it).
    """

    def __init__(self, module, *, lr, weight_decay, epochs, patience, checkpoint_dir, fingerprint, config,
                 monitor, random_state, device, progress=True, desc="train", n_threads=None,
                 lr_schedule="constant") -> None:
        self.module = module
        self.params = [p for p in module.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError("Trainer: the module has no trainable parameter.")
        self.optimizer = AdamW(self.params, lr=lr, weight_decay=weight_decay)
        self.epochs = epochs
        self.patience = patience
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.fingerprint = fingerprint
        self.config = config
        self.monitor = monitor
        self.random_state = random_state
        self.device = device
        self.progress = progress
        self.desc = desc
        self.n_threads = n_threads
        self.lr = float(lr)
        self.lr_schedule = lr_schedule
        self.history: list[dict] = []
        self.best_score = -np.inf
        self.best_epoch = 0
        self.bad_epochs = 0
        self.stopped_early = False
        self.resumed_from = 0
        self._best_state = None

    # -- checkpoints ----------------------------------------------------
    def _save(self, epoch: int, improved: bool) -> None:
        from safetensors.torch import save

        import radmine

        if self.checkpoint_dir is None:
            return
        d = self.checkpoint_dir
        d.mkdir(parents=True, exist_ok=True)
        weights = {f"model.{k}": v for k, v in _state_tensors(self.module).items()}
        atomic_write_bytes(d / LAST_FILE, save({**weights, **self.optimizer.state_tensors()}))
        if improved:
            atomic_write_bytes(d / BEST_FILE, save(weights))
        atomic_write_json(
            d / TRAINER_FILE,
            {
                "format": "radmine-trainer",
                "radmine_version": radmine.__version__,
                "fingerprint": self.fingerprint,
                "config": self.config,
                "epoch": epoch,
                "best_epoch": self.best_epoch,
                "best_score": None if not np.isfinite(self.best_score) else float(self.best_score),
                "bad_epochs": self.bad_epochs,
                "stopped_early": self.stopped_early,
                "history": self.history,
                "history_columns": self._columns(),
                "optimizer_step": self.optimizer.t,
            },
        )

    def _try_resume(self) -> int:
        from safetensors.torch import load_file

        if self.checkpoint_dir is None or not (self.checkpoint_dir / TRAINER_FILE).is_file():
            return 0
        meta_path = self.checkpoint_dir / TRAINER_FILE
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != "radmine-trainer":
            raise ValueError(f"{meta_path}: not a radmine training checkpoint.")
        if meta.get("fingerprint") != self.fingerprint:
            raise ValueError(
                f"checkpoint_dir {str(self.checkpoint_dir)!r} holds a run with other settings or data "
                f"(fingerprint {meta.get('fingerprint')} != {self.fingerprint}); use a new folder to start over."
            )
        tensors = load_file(str(self.checkpoint_dir / LAST_FILE), device="cpu")
        weights = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
        self.module.load_state_dict(weights)
        self.optimizer.load_state_tensors(tensors, meta["optimizer_step"])
        cols = meta.get("history_columns") or []
        self.history = [{c: row[c] for c in cols if c in row} | row for row in meta["history"]]
        self.best_epoch = int(meta["best_epoch"])
        self.best_score = -np.inf if meta["best_score"] is None else float(meta["best_score"])
        self.bad_epochs = int(meta["bad_epochs"])
        self.stopped_early = bool(meta["stopped_early"])
        if (self.checkpoint_dir / BEST_FILE).is_file():
            best = load_file(str(self.checkpoint_dir / BEST_FILE), device="cpu")
            self._best_state = {k[len("model.") :]: v for k, v in best.items()}
        epoch = int(meta["epoch"])
        logger.info("Resuming from %s after epoch %d.", self.checkpoint_dir, epoch)
        self.resumed_from = epoch
        return epoch

    # -- loop -------------------------------------------------------------
    def run(
        self,
        make_batches: Callable[[np.random.Generator], list],
        step: Callable[[Any], Any],
        evaluate: Callable[[], dict] | None,
        *,
        restore_best: bool = True,
    ) -> Trainer:
        """Train until ``epochs`` or early stopping.

        Parameters
        ----------
        make_batches : callable(rng) -> list of batches
            Called once per epoch with that epoch's Generator.
        step : callable(batch) -> scalar loss tensor
            Forward pass and loss of one batch (module already in train mode).
        evaluate : callable() -> dict of float, or None
            Dev metrics after each epoch; ``monitor`` is maximised. Without
            it the negative train loss is monitored.
        restore_best : bool, default True
            Load the weights of the best epoch at the end (else keep the last).
        """
        start = self._try_resume()
        with cpu_threads(self.n_threads):
            self._loop(start, make_batches, step, evaluate)
        if restore_best and self._best_state is not None:
            self.module.load_state_dict(self._best_state)
        self.module.eval()
        return self

    def _loop(self, start, make_batches, step, evaluate) -> None:
        from tqdm.auto import tqdm

        bar = tqdm(total=self.epochs, initial=min(start, self.epochs), disable=not self.progress, desc=self.desc)
        try:
            epoch = start
            while epoch < self.epochs and not self.stopped_early:
                epoch += 1
                t0 = time.perf_counter()
                rng = np.random.default_rng(derived_seed(self.random_state, 7919 * epoch))
                self.module.train()
                losses, sizes = [], []
                with local_torch_seed(derived_seed(self.random_state, 104729 * epoch), self.device):
                    batches = make_batches(rng)
                    for i, batch in enumerate(batches):
                        if self.lr_schedule == "cosine":
                            t = (epoch - 1 + i / max(len(batches), 1)) / self.epochs
                            self.optimizer.lr = self.lr * 0.5 * (1 + np.cos(np.pi * t))
                        loss = step(batch)
                        self.optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        _clip_grad_norm(self.params, 5.0)
                        self.optimizer.step()
                        losses.append(float(loss.detach().cpu()))
                        sizes.append(len(batch) if hasattr(batch, "__len__") else 1)
                train_loss = float(np.average(losses, weights=sizes)) if losses else float("nan")
                self.module.eval()
                metrics = dict(evaluate()) if evaluate is not None else {}
                score = metrics.get(self.monitor, -train_loss) if evaluate is not None else -train_loss
                improved = bool(score > self.best_score)
                if improved:
                    self.best_score, self.best_epoch, self.bad_epochs = float(score), epoch, 0
                    self._best_state = _state_tensors(self.module)
                else:
                    self.bad_epochs += 1
                    if self.patience is not None and self.bad_epochs >= self.patience:
                        self.stopped_early = True
                row = {"epoch": epoch, "train_loss": train_loss, **metrics, "seconds": time.perf_counter() - t0}
                self.history.append(row)
                self._save(epoch, improved)
                bar.update(1)
                bar.set_postfix(loss=f"{train_loss:.4f}", **({self.monitor: f"{score:.3f}"} if evaluate else {}))
        finally:
            bar.close()

    def _columns(self) -> list:
        cols: list = []
        for row in self.history:
            cols += [c for c in row if c not in cols]
        return cols

    def history_frame(self):
        """The history as a DataFrame (one row per epoch; ``epoch, train_loss, <dev metrics>, seconds``)."""
        import pandas as pd

        return pd.DataFrame(self.history, columns=self._columns() or ["epoch", "train_loss", "seconds"])


# ---------------------------------------------------------------------------
# image inputs shared by the image-to-text models
# ---------------------------------------------------------------------------
def image_table(images, owner: str):
    """Normalise ``images`` (Corpus, images DataFrame, paths, 2-D arrays) to a list of items.

    Returns ``(items, image_ids)`` where each item is a path (str) or a 2-D/3-D
    array and ``image_ids`` is a list (None entries when unknown). A Corpus's
    relative paths are resolved against its root.
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


#: Preprocessing of the image-to-text models, passed explicitly so that a change of the
#: :class:`radmine.ImageEmbedder` defaults never changes what a fitted (or saved) model sees.
PREPROCESS = {"channels": "replicate", "resize": "pad", "intensity": "auto"}

#: Pixel preprocessings an image-to-text model can use (``image_preprocessing``), pinned
#: for the same reason: ``"plain"`` (aspect-preserving pad, min-max / 8-bit scaling, no
#: crop) and ``"content"`` (crop to the body, clip to the 0.5-99.5th percentiles, then pad:
#: the :class:`radmine.ImageEmbedder` defaults chosen on MedPix train cases).
PREPROCESSINGS = {
    "plain": {**PREPROCESS, "crop": "none"},
    "content": {"channels": "replicate", "resize": "pad", "intensity": "percentile", "crop": "content"},
}

#: Frozen-feature kinds of the image-to-text models (``ImageEmbedder(features=...)``).
IMAGE_FEATURES = ("last", "last+mid")


def make_embedder(backbone, *, cache_dir=None, random_state=None, progress=True, device=None, features="last",
                  preprocessing="plain", image_size=None):
    """A :class:`radmine.ImageEmbedder` for ``backbone`` with the options it accepts.

    The preprocessing settings are fixed to :data:`PREPROCESSINGS` ``[preprocessing]``
    (``"plain"``: :data:`PREPROCESS`, no crop), no test-time augmentation and
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
    """Features ``(n, dim)`` float32 of ``images`` (see :func:`image_table`)."""
    import pandas as pd

    from radmine.corpus import Corpus

    if isinstance(images, (Corpus, pd.DataFrame)):
        if isinstance(images, Corpus):
            tab = images.images.copy()
            tab["path"] = images.image_paths()
            images = tab
        feats = embedder.transform(images)
    else:
        items, _ = image_table(images, owner)
        feats = embedder.transform(items)
    return np.asarray(feats, dtype=np.float32)


def pixel_tensor(item, spec: dict):
    """One preprocessed ``(3, S, S)`` tensor from a path or an array (for fine-tuning).

    ``spec``: the backbone's input spec, with an optional ``"preprocessing"``
    key naming one of :data:`PREPROCESSINGS` (default ``"plain"``).
    """
    from radmine.images.preprocess import preprocess

    if isinstance(item, str):
        from radmine.pixels import load_pixels

        item = load_pixels(item)
    return preprocess(np.asarray(item), spec, **PREPROCESSINGS[spec.get("preprocessing", "plain")])


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
    paths = corpus.images.assign(_p=corpus.image_paths()).set_index("image_id")["_p"]
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


def freeze_batchnorm(module) -> None:
    """Put every BatchNorm of ``module`` in eval mode (fine-tuning on small batches keeps its statistics)."""
    import torch.nn as nn

    if module is None:
        return
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


# ---------------------------------------------------------------------------
# partial backbone fine-tuning: a frozen prefix computed once, a trainable tail
# ---------------------------------------------------------------------------
def backbone_stages(backbone) -> tuple[Callable, list, Callable]:
    """``(stem, blocks, head)`` of a CNN backbone: ``backbone(x) == pool(head(blocks(stem(x))))``.

    Supported: ``"efficientnet_lite0"`` (stem + 16 MBConv blocks + 1x1 conv
    head) and ``"random_cnn"`` (4 conv + ReLU layers). ``head`` includes the
    backbone's global pooling.
    """
    import torch.nn as nn

    from radmine.images.backbones import pool_feature_map

    pooling = getattr(backbone, "pooling", "avg")
    if hasattr(backbone, "stages"):
        stem, blocks, head_map = backbone.stages()

        def head(x):
            return pool_feature_map(head_map(x), pooling)

        return stem, blocks, head
    feats = getattr(backbone, "features", None)
    if isinstance(feats, nn.Sequential):
        layers = list(feats)
        blocks = [nn.Sequential(layers[i], layers[i + 1]) if i + 1 < len(layers) and isinstance(layers[i + 1], nn.ReLU)
                  else layers[i] for i in range(0, len(layers), 2)]
        return (lambda x: x), blocks, (lambda x: pool_feature_map(x, pooling))
    raise ValueError(
        f"train_backbone_blocks needs a CNN backbone with separable blocks ('efficientnet_lite0' or 'random_cnn'); "
        f"{getattr(backbone, 'name', type(backbone).__name__)!r} has none (use finetune_backbone=True instead)."
    )


def set_trainable_blocks(backbone, n_blocks: int) -> None:
    """Freeze ``backbone`` except its last ``n_blocks`` blocks and its head (n_blocks=0: head only)."""
    _, blocks, _ = backbone_stages(backbone)
    if not 0 <= n_blocks <= len(blocks):
        raise ValueError(f"train_backbone_blocks must be between 0 and {len(blocks)} for this backbone; got {n_blocks}.")
    for p in backbone.parameters():
        p.requires_grad_(False)
    tail = blocks[len(blocks) - n_blocks :]
    head_params = backbone.head_parameters() if hasattr(backbone, "head_parameters") else []
    for m in tail:
        for p in m.parameters():
            p.requires_grad_(True)
    for p in head_params:
        p.requires_grad_(True)


def backbone_prefix(backbone, n_blocks: int, x):
    """Feature maps of a pixel batch ``(n, 3, S, S)`` before the last ``n_blocks`` blocks."""
    stem, blocks, _ = backbone_stages(backbone)
    x = stem(x)
    for b in blocks[: len(blocks) - n_blocks]:
        x = b(x)
    return x


def backbone_tail(backbone, n_blocks: int, maps):
    """Pooled features ``(n, dim)`` from prefix maps: the last ``n_blocks`` blocks, then the head."""
    _, blocks, head = backbone_stages(backbone)
    x = maps
    for b in blocks[len(blocks) - n_blocks :]:
        x = b(x)
    return head(x)


def prefix_maps(backbone, n_blocks: int, items, spec: dict, *, flip: bool = False, batch_size: int = 8,
                device=None, progress: bool = False, desc: str = "backbone prefix"):
    """Frozen prefix maps of every item (paths or arrays), float16 on the CPU: ``(n, C, h, w)``.

    ``flip=True`` also returns the maps of the horizontally flipped images
    (exact flip augmentation for the trainable tail at no training cost).
    Unreadable items get zero maps and are listed in the returned ``bad`` mask.
    """
    import torch
    from tqdm.auto import tqdm

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
    * ``maps`` (+ ``maps_flip``) with ``n_blocks``: cached prefix maps, the
      last ``n_blocks`` blocks and the head of the backbone are trained;
    * ``items`` (paths / arrays) with ``spec``: pixels through the whole
      backbone (``finetune_backbone=True``).
    """

    def __init__(self, *, feats=None, maps=None, maps_flip=None, n_blocks: int = 0, items=None, spec=None,
                 device=None, flip: bool = False) -> None:
        self.feats, self.maps, self.maps_flip, self.n_blocks = feats, maps, maps_flip, n_blocks
        self.items, self.spec, self.device, self.flip = items, spec, device, flip

    def subset(self, rows) -> ImageSource:
        """The same source restricted to ``rows`` (renumbered 0..len(rows)-1)."""
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
        return "features" if self.feats is not None else ("partial" if self.maps is not None else "pixels")

    def __call__(self, backbone, rows, *, train: bool = False):
        """Backbone features ``(len(rows), dim)`` of the given rows (differentiable in the trained part)."""
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


def pixel_features(backbone, items, spec: dict, device, *, batch_size: int = 32) -> torch.Tensor:  # noqa: F821
    """Backbone features ``(n, dim)`` of paths / arrays run through a (fine-tuned) backbone, no gradients."""
    import torch

    out = []
    with torch.inference_mode():
        for s in range(0, len(items), batch_size):
            x = torch.stack([pixel_tensor(it, spec) for it in items[s : s + batch_size]]).to(device)
            out.append(backbone(x))
    return torch.cat(out) if out else torch.zeros((0, int(backbone.dim)), device=device)


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
        from radmine.corpus import Corpus

        if self._trains_backbone():
            items, _ = image_table(images, owner)
            self.module_.eval()
            with cpu_threads(None):
                return pixel_features(self.module_.backbone, items, self._spec_, self.device_).cpu().numpy()
        if isinstance(images, Corpus):
            tab = images.images.copy()
            tab["path"] = images.image_paths()
            images = tab
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
