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

logger = logging.getLogger(__name__)

TRAINER_FILE = "trainer.json"
LAST_FILE = "last.safetensors"
BEST_FILE = "best.safetensors"


def resolve_device(device: str | None):
    """``"auto"`` -> CUDA when available, else CPU; anything else -> ``torch.device(device)``."""
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"The 'device' parameter must be 'auto', 'cpu', 'cuda' or 'cuda:N'. Got {device!r}.") from None


def seed_of(random_state, offset: int = 0) -> int:
    """A non-negative int seed from ``random_state`` (None -> 0) plus ``offset``."""
    base = 0 if random_state is None else int(random_state)
    return (base * 1_000_003 + offset) % (2**31 - 1)


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
    """

    def __init__(self, module, *, lr, weight_decay, epochs, patience, checkpoint_dir, fingerprint, config,
                 monitor, random_state, device, progress=True, desc="train", n_threads=None) -> None:
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
        """
        start = self._try_resume()
        with cpu_threads(self.n_threads):
            self._loop(start, make_batches, step, evaluate)
        if self._best_state is not None:
            self.module.load_state_dict(self._best_state)
        self.module.eval()
        return self

    def _loop(self, start, make_batches, step, evaluate) -> None:
        import torch
        from tqdm.auto import tqdm

        bar = tqdm(total=self.epochs, initial=min(start, self.epochs), disable=not self.progress, desc=self.desc)
        try:
            epoch = start
            while epoch < self.epochs and not self.stopped_early:
                epoch += 1
                t0 = time.perf_counter()
                rng = np.random.default_rng(seed_of(self.random_state, 7919 * epoch))
                self.module.train()
                losses, sizes = [], []
                with local_torch_seed(seed_of(self.random_state, 104729 * epoch), self.device):
                    for batch in make_batches(rng):
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


def make_embedder(backbone, *, cache_dir=None, random_state=None, progress=True, device=None):
    """A :class:`radmine.ImageEmbedder` for ``backbone`` with the options it accepts."""
    import inspect

    from radmine.images.embed import ImageEmbedder

    wanted = {"backbone": backbone, "cache_dir": cache_dir, "random_state": random_state, "progress": progress}
    if device is not None:
        wanted["device"] = str(device)
    accepted = inspect.signature(ImageEmbedder.__init__).parameters
    kwargs = {k: v for k, v in wanted.items() if k in accepted and (v is not None or k == "cache_dir")}
    return ImageEmbedder(**kwargs)


def embed_images(embedder, images, owner: str) -> np.ndarray:
    """Features ``(n, dim)`` float32 of ``images`` (see :func:`image_table`)."""
    from radmine.corpus import Corpus

    import pandas as pd

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
    """One preprocessed ``(3, S, S)`` tensor from a path or an array (for fine-tuning)."""
    from radmine.images.preprocess import preprocess

    if isinstance(item, str):
        from radmine.pixels import load_pixels

        item = load_pixels(item)
    return preprocess(np.asarray(item), spec)
