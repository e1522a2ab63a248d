"""One training loop for radmine's torch models, on ``torch.optim``.

:class:`Trainer` runs epochs of ``step(batch) -> loss`` with:

* **an optimizer from torch.optim** -- ``torch.optim.AdamW`` over the module's
  trainable parameters by default, or any optimizer passed in (e.g. Adam with
  one learning rate per parameter group);
* **seeds** -- every epoch runs under a local torch seed
  (:func:`radmine.nn.local_torch_seed`: the global RNG is left alone) and gets
  its own numpy Generator, both derived from ``random_state``; an epoch is
  therefore the same whether the run went straight through or was resumed;
* **gradient clipping** (``torch.nn.utils.clip_grad_norm_``) and a constant or
  cosine learning rate;
* **early stopping** on ``evaluate()`` -- a score to maximise or a loss to
  minimise (``mode``), checked once or several times per epoch, with
  ``patience``; the best weights are restored at the end;
* **checkpoints** after every epoch in ``checkpoint_dir``: ``last.safetensors``
  (weights + optimizer state), ``best.safetensors`` (weights) and
  ``trainer.json`` (epoch, history, best score, settings fingerprint, radmine
  version). A new run with the same fingerprint and folder **resumes** after
  the last finished epoch; a folder written with another fingerprint is refused;
* a ``history`` (one row per check; :meth:`Trainer.history_frame`) and a tqdm bar.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from radmine._io import atomic_write_bytes, atomic_write_json
from radmine.base import derived_seed
from radmine.nn.runtime import cpu_threads, local_torch_seed

logger = logging.getLogger(__name__)

#: Files of a checkpoint folder.
TRAINER_FILE = "trainer.json"
LAST_FILE = "last.safetensors"
BEST_FILE = "best.safetensors"
#: Named learning-rate schedules (a callable ``t -> factor`` is accepted too).
LR_SCHEDULES = ("constant", "cosine")
MODES = ("max", "min")


def state_tensors(module) -> dict:
    """CPU copies of ``module.state_dict()`` (contiguous, ready for safetensors)."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


def lr_factor(schedule, t: float) -> float:
    """Learning-rate multiplier at training progress ``t`` in ``[0, 1)``.

    Parameters
    ----------
    schedule : {"constant", "cosine"} or callable
        ``"cosine"``: ``0.5 * (1 + cos(pi * t))`` (decay from the base rate to 0);
        a callable is called with ``t``.
    t : float
        ``(epoch - 1 + position in the epoch) / epochs``.
    """
    if callable(schedule):
        return float(schedule(t))
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * t))
    return 1.0


class Trainer:
    """Epoch loop with early stopping, checkpoints and resume (see the module docstring).

    Parameters
    ----------
    module : torch.nn.Module
        Trained in place; holds every parameter that is optimised (and is
        what the checkpoints store).
    optimizer : torch.optim.Optimizer, optional
        Default: ``torch.optim.AdamW(trainable parameters, lr, weight_decay)``.
        The schedule scales every parameter group's own initial rate.
    lr : float, default 1e-3
    weight_decay : float, default 0.01
        Settings of the default AdamW (ignored with ``optimizer``).
    epochs : int, default 10
        Last epoch to run (epochs are 1-based).
    patience : int or None, default None
        Stop after this many checks without a better monitored value (None: never).
    monitor : str, default "score"
        Key of the ``evaluate()`` dict that is watched; a bare number returned
        by ``evaluate`` is stored under this key.
    mode : {"max", "min"}, default "max"
        Whether the monitored value is a score to maximise or a loss to minimise.
    max_grad_norm : float or None, default None
        Clip the gradient norm of all trainable parameters (None: no clipping).
    lr_schedule : {"constant", "cosine"} or callable, default "constant"
        See :func:`lr_factor`; set per step.
    checks_per_epoch : int, default 1
        Evaluations per epoch (at evenly spaced batches, the last one at the
        end of the epoch); early stopping can stop mid-epoch.
    checkpoint_dir : str or Path, optional
        Folder of the checkpoints (None: none written, no resume).
    fingerprint : str, default ""
        Hash of the settings and data; a checkpoint with another one is refused.
    config : dict, optional
        JSON-serialisable settings written beside the checkpoint.
    random_state : int or None
    device : torch.device, optional
        Also forks the CUDA generator while seeding.
    progress : bool, default True
    desc : str, default "train"
        tqdm label.
    n_threads : int or None
        CPU threads while training (None: torch's current setting).

    Attributes
    ----------
    history : list of dict
        One row per check: ``epoch, train_loss, <evaluate() keys>, seconds``
        (plus ``check`` with ``checks_per_epoch > 1``).
    best_score : float
        Best monitored value, as a score to maximise (a loss is negated).
    best_epoch, bad_epochs, resumed_from : int
    stopped_early : bool

    Examples
    --------
    >>> import torch
    >>> from radmine.nn import Trainer
    >>> net = torch.nn.Linear(1, 1)
    >>> x, y = torch.ones(8, 1), 3 * torch.ones(8, 1)
    >>> trainer = Trainer(net, lr=0.1, epochs=50, progress=False, random_state=0)
    >>> trainer = trainer.run(lambda rng: [list(range(8))],
    ...                       lambda rows: torch.nn.functional.mse_loss(net(x[rows]), y[rows]))
    >>> round(float(net(torch.ones(1, 1))), 1)
    3.0
    """

    def __init__(self, module, *, optimizer=None, lr: float = 1e-3, weight_decay: float = 0.01, epochs: int = 10,
                 patience: int | None = None, monitor: str = "score", mode: str = "max",
                 max_grad_norm: float | None = None, lr_schedule="constant", checks_per_epoch: int = 1,
                 checkpoint_dir=None, fingerprint: str = "", config: dict | None = None, random_state=None,
                 device=None, progress: bool = True, desc: str = "train", n_threads: int | None = None) -> None:
        import torch

        if mode not in MODES:
            raise ValueError(f"The 'mode' parameter of Trainer must be one of {MODES}. Got {mode!r} instead.")
        if not (callable(lr_schedule) or lr_schedule in LR_SCHEDULES):
            raise ValueError(f"The 'lr_schedule' parameter of Trainer must be one of {LR_SCHEDULES} or a callable. "
                             f"Got {lr_schedule!r} instead.")
        if isinstance(checks_per_epoch, bool) or not isinstance(checks_per_epoch, int) or checks_per_epoch < 1:
            raise ValueError(f"The 'checks_per_epoch' parameter of Trainer must be an int >= 1. "
                             f"Got {checks_per_epoch!r} instead.")
        self.module = module
        if optimizer is None:
            params = [p for p in module.parameters() if p.requires_grad]
            if not params:
                raise ValueError("Trainer: the module has no trainable parameter.")
            optimizer = torch.optim.AdamW(params, lr=float(lr), weight_decay=float(weight_decay))
        self.optimizer = optimizer
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self.base_lrs = [float(g["lr"]) for g in optimizer.param_groups]
        self.epochs = epochs
        self.patience = patience
        self.monitor = monitor
        self.mode = mode
        self.max_grad_norm = max_grad_norm
        self.lr_schedule = lr_schedule
        self.checks_per_epoch = checks_per_epoch
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.fingerprint = fingerprint
        self.config = config or {}
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
        self._improved = False

    # -- checkpoints ----------------------------------------------------
    def optimizer_tensors(self) -> dict:
        """The optimizer state as flat tensors ``opt.<param index>.<key>`` (for safetensors)."""
        import torch

        out = {}
        for i, st in self.optimizer.state_dict()["state"].items():
            for key, v in st.items():
                t = v if torch.is_tensor(v) else torch.tensor(float(v))
                out[f"opt.{i}.{key}"] = t.detach().cpu().contiguous().clone()
        return out

    def load_optimizer_tensors(self, tensors: dict, step: int | None = None) -> None:
        """Load :meth:`optimizer_tensors`; ``step`` fills a missing ``step`` entry (older files)."""
        import torch

        state: dict = {}
        for name, v in tensors.items():
            if name.startswith("opt."):
                _, i, key = name.split(".", 2)
                state.setdefault(int(i), {})[key] = v
        if step is not None:
            for st in state.values():
                st.setdefault("step", torch.tensor(float(step)))
        sd = self.optimizer.state_dict()
        sd["state"] = state
        self.optimizer.load_state_dict(sd)

    def optimizer_step(self) -> int:
        """Optimizer steps taken so far (the first parameter's ``step``; 0 before the first)."""
        steps = [int(float(st["step"])) for st in self.optimizer.state_dict()["state"].values() if "step" in st]
        return max(steps) if steps else 0

    def _save(self, epoch: int, improved: bool) -> None:
        from safetensors.torch import save

        import radmine

        if self.checkpoint_dir is None:
            return
        d = self.checkpoint_dir
        d.mkdir(parents=True, exist_ok=True)
        weights = {f"model.{k}": v for k, v in state_tensors(self.module).items()}
        atomic_write_bytes(d / LAST_FILE, save({**weights, **self.optimizer_tensors()}))
        if improved:
            best = weights if self._best_state is None else {f"model.{k}": v for k, v in self._best_state.items()}
            atomic_write_bytes(d / BEST_FILE, save(best))
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
                "optimizer_step": self.optimizer_step(),
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
        self.load_optimizer_tensors(tensors, meta.get("optimizer_step"))
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
        evaluate: Callable[[], Any] | None = None,
        *,
        restore_best: bool = True,
    ) -> Trainer:
        """Train until ``epochs`` or early stopping.

        Parameters
        ----------
        make_batches : callable(rng) -> list of batches
            Called once per epoch with that epoch's numpy Generator.
        step : callable(batch) -> scalar loss tensor
            Forward pass and loss of one batch (module already in train mode).
        evaluate : callable() -> dict of float or float, optional
            Dev metrics at each check (module in eval mode); ``monitor`` is
            maximised (``mode="max"``) or minimised. Without it the train
            loss is minimised.
        restore_best : bool, default True
            Load the weights of the best check at the end (else keep the last).

        Returns
        -------
        self
        """
        start = self._try_resume()
        with cpu_threads(self.n_threads):
            self._loop(start, make_batches, step, evaluate)
        if restore_best and self._best_state is not None:
            self.module.load_state_dict(self._best_state)
        self.module.eval()
        return self

    def _score(self, metrics: dict, train_loss: float, evaluate) -> float:
        """The monitored value as a score to maximise."""
        if evaluate is None:
            return -train_loss
        value = float(metrics.get(self.monitor, np.nan))
        if not np.isfinite(value):
            return -np.inf
        return value if self.mode == "max" else -value

    def _check(self, epoch: int, check: int, losses: list, sizes: list, evaluate, t0: float) -> bool:
        """Evaluate, update the best state and the history; True when early stopping fires."""
        train_loss = float(np.average(losses, weights=sizes)) if losses else float("nan")
        self.module.eval()
        metrics = {}
        if evaluate is not None:
            got = evaluate()
            metrics = dict(got) if isinstance(got, dict) else {self.monitor: float(got)}
        score = self._score(metrics, train_loss, evaluate)
        improved = bool(score > self.best_score)
        if improved:
            self.best_score, self.best_epoch, self.bad_epochs = float(score), epoch, 0
            self._best_state = state_tensors(self.module)
        else:
            self.bad_epochs += 1
            if self.patience is not None and self.bad_epochs >= self.patience:
                self.stopped_early = True
        row = {"epoch": epoch, **({"check": check} if self.checks_per_epoch > 1 else {}), "train_loss": train_loss,
               **metrics, "seconds": time.perf_counter() - t0}
        self.history.append(row)
        self._improved = self._improved or improved
        return self.stopped_early

    def _loop(self, start, make_batches, step, evaluate) -> None:
        import torch
        from radmine._progress import tqdm

        bar = tqdm(total=self.epochs, initial=min(start, self.epochs), disable=not self.progress, desc=self.desc)
        try:
            epoch = start
            while epoch < self.epochs and not self.stopped_early:
                epoch += 1
                t0 = time.perf_counter()
                rng = np.random.default_rng(derived_seed(self.random_state, 7919 * epoch))
                self.module.train()
                losses, sizes, check, stopped_mid = [], [], 0, False
                self._improved = False
                with local_torch_seed(derived_seed(self.random_state, 104729 * epoch), self.device):
                    batches = make_batches(rng)
                    n = max(len(batches), 1)
                    check_at = {max(1, round(n * (c + 1) / self.checks_per_epoch)) for c in range(self.checks_per_epoch)}
                    for i, batch in enumerate(batches):
                        factor = lr_factor(self.lr_schedule, (epoch - 1 + i / n) / self.epochs)
                        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
                            group["lr"] = base * factor
                        loss = step(batch)
                        self.optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        if self.max_grad_norm is not None:
                            torch.nn.utils.clip_grad_norm_(self.params, float(self.max_grad_norm))
                        self.optimizer.step()
                        losses.append(float(loss.detach().cpu()))
                        sizes.append(len(batch) if hasattr(batch, "__len__") else 1)
                        if i + 1 in check_at and i + 1 < len(batches):  # a check inside the epoch
                            check += 1
                            if self._check(epoch, check, losses, sizes, evaluate, t0):
                                stopped_mid = True
                                break
                            losses, sizes, t0 = [], [], time.perf_counter()
                            self.module.train()
                if not stopped_mid:
                    self._check(epoch, check + 1, losses, sizes, evaluate, t0)
                self._save(epoch, self._improved)
                bar.update(1)
                last = self.history[-1]
                shown = {self.monitor: f"{last[self.monitor]:.3f}"} if evaluate is not None and self.monitor in last else {}
                bar.set_postfix(loss=f"{last['train_loss']:.4f}", **shown)
        finally:
            bar.close()

    def _columns(self) -> list:
        cols: list = []
        for row in self.history:
            cols += [c for c in row if c not in cols]
        return cols

    def history_frame(self):
        """The history as a DataFrame (one row per check; ``epoch, train_loss, <dev metrics>, seconds``)."""
        import pandas as pd

        return pd.DataFrame(self.history, columns=self._columns() or ["epoch", "train_loss", "seconds"])
