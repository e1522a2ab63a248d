"""The resumable step runner behind ``radmine mine``.

Each step has a name, the steps it depends on and the config sections it
reads. Its fingerprint hashes those settings, the fingerprints of its
dependencies and the hashes of the files they wrote, the source and the
radmine version. The manifest
(``DIR/manifest.json``, written atomically) records for each finished step its
fingerprint and the size and SHA-256 of every file it wrote. The guarantees:

* one run at a time: :func:`output_lock` takes an exclusive lock on
  ``DIR/.radmine.lock`` (a second run stops at once with
  :class:`OutputLockedError`, or waits with ``wait=True``);
* a step's manifest entry is removed before the step writes anything and
  written back only after its last file is in place, so a killed step is never
  "up to date";
* a step owns its folder(s) (the first path component of its outputs, the
  :mod:`~radmine.pipeline.artifacts` it declares): before
  it runs, everything in them is removed except its resume state, so stale
  tables and models never linger;
* resume state (``<folder>/checkpoints/<fingerprint>/``) is keyed by the step's
  fingerprint: a changed setting starts clean, a killed run with the same
  settings resumes;
* a skipped step's files are checked against the recorded sizes and hashes;
  any difference re-runs the step;
* leftover ``*.tmp`` files of killed writers are removed when a run starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from radmine._io import atomic_write_csv, atomic_write_json, atomic_write_parquet, file_digest, fingerprint, remove_tmp_files
from radmine.pipeline import artifacts
from radmine.pipeline.artifacts import Artifact

logger = logging.getLogger(__name__)


class OutputLockedError(RuntimeError):
    """Another process is running ``radmine mine`` on the same output folder."""


@dataclass
class Step:
    """One step of the main job.

    ``outputs`` are the step's :class:`~radmine.pipeline.artifacts.Artifact`
    declarations: the entries of DIR it owns, the files a finished run must
    have left, the caches a re-run keeps and where its resume state goes.
    """

    name: str
    func: Callable[[RunContext], dict[str, Any]]
    deps: tuple[str, ...] = ()
    sections: tuple[str, ...] = ()
    outputs: tuple[Artifact, ...] = ()
    description: str = ""
    #: single settings of other sections the step reads, as ``"section.key"``
    extra_keys: tuple[str, ...] = ()
    #: steps it depends on only under a setting: ``(step, "section.key", value)``, e.g. ``cluster``
    #: reads the ``img2text`` output only with ``cluster.space = "report"``
    deps_when: tuple[tuple[str, str, Any], ...] = ()

    def deps_for(self, config: dict[str, dict[str, Any]]) -> tuple[str, ...]:
        """The steps it depends on under ``config``: :attr:`deps` plus the :attr:`deps_when` that apply."""
        extra = []
        for dep, key, value in self.deps_when:
            sec, _, name = key.partition(".")
            if config.get(sec, {}).get(name) == value and dep not in self.deps:
                extra.append(dep)
        return tuple(self.deps) + tuple(extra)

    def owned(self) -> list[str]:
        """Top-level entries of DIR the step owns: the first component of each output."""
        return sorted({o.top for o in self.outputs})

    @property
    def required(self) -> tuple[Artifact, ...]:
        """What every run of the step that is not skipped leaves in DIR."""
        return tuple(o for o in self.outputs if o.required)

    @property
    def keep(self) -> tuple[str, ...]:
        """Paths (relative to DIR) inside the step's folders that a re-run leaves alone (its caches)."""
        return tuple(o.path for o in self.outputs if o.kind == "cache")

    @property
    def checkpoints(self) -> Artifact | None:
        """Where the step keeps resume state (``<path>/<fingerprint>/``), or None."""
        return next((o for o in self.outputs if o.kind == "checkpoints"), None)


@dataclass
class RunContext:
    """What a step sees: the output folder, the settings and shared lazy state."""

    out: Path
    config: dict[str, dict[str, Any]]
    source: str | None
    progress: bool = True
    client: Any = None
    _cache: dict[str, Any] = field(default_factory=dict)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    #: the step now running and its fingerprint (set by :func:`run_steps`)
    step: Step | None = None
    fingerprint: str = ""
    #: what ``manifest.json`` records as the source (default: ``source`` as given); a run that
    #: de-identifies its source records a placeholder instead, since export folder names carry PHI
    source_label: str | None = None

    def checkpoint_dir(self) -> Path:
        """``DIR/<step>/checkpoints/<fingerprint>/`` of the running step (resume state).

        Raises
        ------
        RuntimeError
            No step is running, or the running step declares no checkpoints.
        """
        if self.step is None or not self.fingerprint:
            raise RuntimeError("checkpoint_dir() is only available while a step runs.")
        if self.step.checkpoints is None:
            raise RuntimeError(f"step {self.step.name!r} declares no checkpoints artifact.")
        p = self.step.checkpoints.member(self.out, fingerprint=self.fingerprint)
        p.mkdir(parents=True, exist_ok=True)
        return p

    def path(self, artifact: Artifact) -> Path:
        """Where ``artifact`` goes in DIR, its parent folder created."""
        p = artifact.at(self.out)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def random_state(self) -> int:
        return int(self.config["run"]["random_state"])

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        """The value cached under ``key`` for this run, made by ``make()`` on first use."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def forget(self, key: str) -> None:
        """Drop the value cached under ``key`` (a step rewrote what it was read from)."""
        self._cache.pop(key, None)

    def add_quarantine(self, step: str, df: pd.DataFrame | None) -> None:
        """Record skipped items (``source, item, reason`` columns) of a step."""
        if df is None or not len(df):
            return
        for row in df.to_dict("records"):
            self.quarantine.append(
                {
                    "step": step,
                    "source": str(row.get("source", step)),
                    "item": str(row.get("item", row.get("image_id", row.get("path", "")))),
                    "reason": str(row.get("reason", "")),
                }
            )


def read_manifest(out: Path) -> dict[str, Any]:
    """The manifest of ``out`` (``{"steps": {}}`` when there is none or it is unreadable)."""
    p = artifacts.MANIFEST.at(out)
    if not p.is_file():
        return {"steps": {}}
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        logger.warning("Manifest %s is unreadable; all steps will run again.", p)
        return {"steps": {}}


def run_steps(
    steps: list[Step],
    ctx: RunContext,
    *,
    only: list[str] | None = None,
    force: list[str] | None = None,
    echo: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Run ``steps`` in order, skipping the ones whose fingerprint is unchanged.

    Parameters
    ----------
    steps : list of Step
        In dependency order.
    ctx : RunContext
    only : list of str, optional
        Run just these steps (their dependencies must have run before or run now).
    force : list of str, optional
        Run these steps even when their fingerprint is unchanged.
    echo : callable
        Receives one summary line per step.

    Returns
    -------
    DataFrame
        One row per step: ``step, status (ran|skipped|not selected), seconds, summary``.
    """
    import radmine

    known = {s.name for s in steps}
    for name in list(only or []) + list(force or []):
        if name not in known:
            raise ValueError(f"Unknown step {name!r}; steps are {[s.name for s in steps]}.")
    manifest = read_manifest(ctx.out)
    manifest.setdefault("steps", {})
    fps: dict[str, str] = {}
    rows = []
    selected = set(only) if only else {s.name for s in steps}
    for step in steps:
        deps = step.deps_for(ctx.config)
        settings = {sec: ctx.config.get(sec, {}) for sec in step.sections}
        for key in step.extra_keys:
            sec, _, name = key.partition(".")
            settings[key] = ctx.config.get(sec, {}).get(name)
        fp = fingerprint(
            {
                "step": step.name,
                "settings": settings,
                # a dependency counts by its settings and by the files it left: a step re-runs when
                # what it reads changed, and not when its inputs were re-made identical
                "deps": {d: [fps.get(d), _outputs_key(manifest["steps"].get(d))] for d in deps},
                "source": _source_fingerprint(ctx.source),
                "random_state": ctx.random_state,
                "version": radmine.__version__,
            }
        )
        fps[step.name] = fp
        prev = manifest["steps"].get(step.name, {})
        if step.name not in selected:
            rows.append({"step": step.name, "status": "not selected", "seconds": 0.0, "summary": ""})
            continue
        missing_deps = [d for d in deps if d in known and manifest["steps"].get(d, {}).get("fingerprint") != fps.get(d)]
        if missing_deps:
            raise ValueError(
                f"Step {step.name!r} needs {missing_deps} to have run with the current settings first; "
                f"run them too (e.g. --steps {','.join(missing_deps + [step.name])})."
            )
        if prev.get("fingerprint") == fp and prev.get("status") == "done" and step.name not in (force or []):
            problem = verify_outputs(ctx.out, step, prev)
            if problem is None:
                echo(f"[{step.name}] up to date ({prev.get('summary', '')})")
                rows.append({"step": step.name, "status": "skipped", "seconds": 0.0, "summary": prev.get("summary", "")})
                continue
            echo(f"[{step.name}] its outputs changed since it ran ({problem}); running it again")
        echo(f"[{step.name}] running: {step.description}")
        # the entry goes first: a step killed from here on is never "up to date"
        if manifest["steps"].pop(step.name, None) is not None:
            _write_manifest(ctx, manifest)
        _prepare_folders(ctx.out, step, fp)
        ctx.quarantine.clear()
        ctx.step, ctx.fingerprint = step, fp
        t0 = time.perf_counter()
        try:
            info = step.func(ctx) or {}
        finally:
            ctx.step, ctx.fingerprint = None, ""
        seconds = time.perf_counter() - t0
        summary = ", ".join(f"{k}={_short(v)}" for k, v in info.items())
        new_q = _write_quarantine(ctx, step.name)
        if new_q:
            summary += f", quarantined={new_q}"
        manifest["steps"][step.name] = {
            "fingerprint": fp,
            "status": "done",
            "seconds": round(seconds, 3),
            "summary": summary,
            "info": info,
            "outputs": record_outputs(ctx.out, step),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        _write_manifest(ctx, manifest)
        if info.get("skipped"):
            echo(f"[{step.name}] nothing to do ({info['skipped']})")
        else:
            echo(f"[{step.name}] done in {seconds:.1f}s: {summary}")
        rows.append({"step": step.name, "status": "ran", "seconds": seconds, "summary": summary})
    return pd.DataFrame(rows, columns=["step", "status", "seconds", "summary"])


def _outputs_key(entry: dict[str, Any] | None) -> str | None:
    """A hash of a finished step's recorded files (``None`` when it has not finished)."""
    if not entry or entry.get("status") != "done" or "outputs" not in entry:
        return None
    return fingerprint(entry["outputs"])


def _write_manifest(ctx: RunContext, manifest: dict[str, Any]) -> None:
    import radmine

    manifest["radmine_version"] = radmine.__version__
    manifest["source"] = ctx.source_label if ctx.source_label is not None else ctx.source
    atomic_write_json(artifacts.MANIFEST.at(ctx.out), manifest)


def _excluded(out: Path, step: Step) -> set[Path]:
    """What a step's clean-up and output record leave out: its kept paths and its checkpoints."""
    skip = {out / k for k in step.keep}
    if step.checkpoints is not None:
        skip.add(step.checkpoints.at(out))
    return skip


def _prepare_folders(out: Path, step: Step, fp: str) -> None:
    """Empty the step's folders (except kept paths) and drop checkpoints of other fingerprints."""
    skip = _excluded(out, step)

    def clear(folder: Path) -> None:
        for child in list(folder.iterdir()):
            if child in skip:
                continue
            if child.is_dir() and not child.is_symlink():
                if any(k.is_relative_to(child) for k in skip):
                    clear(child)
                else:
                    shutil.rmtree(child)
            else:
                child.unlink()

    for name in step.owned():
        p = out / name
        if p.is_dir() and not p.is_symlink():
            clear(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
    if step.checkpoints is not None:
        root = step.checkpoints.at(out)
        if root.is_dir():
            for child in root.iterdir():
                if child.name != fp:
                    logger.info("%s: removing checkpoints of other settings (%s)", step.name, child.name)
                    shutil.rmtree(child) if child.is_dir() else child.unlink()


def _owned_files(out: Path, step: Step) -> Iterator[Path]:
    skip = _excluded(out, step)
    for name in step.owned():
        p = out / name
        if p.is_file():
            yield p
        elif p.is_dir():
            for root, dirs, files in os.walk(p):
                r = Path(root)
                dirs[:] = sorted(d for d in dirs if r / d not in skip)
                for f in sorted(files):
                    if r / f not in skip:
                        yield r / f


def record_outputs(out: Path, step: Step) -> dict[str, list]:
    """``{relative path: [size, sha256]}`` of every file the step's folders hold (checkpoints and kept paths excluded)."""
    rec = {}
    for p in _owned_files(out, step):
        rec[p.relative_to(out).as_posix()] = [p.stat().st_size, file_digest(p)]
    return rec


def verify_outputs(out: Path, step: Step, entry: dict[str, Any]) -> str | None:
    """``None`` when the step's files match the manifest entry, else what differs (one phrase)."""
    recorded = entry.get("outputs")
    if recorded is None:
        return "the manifest has no record of its files"
    if not entry.get("info", {}).get("skipped"):
        for o in step.required:
            if not o.exists(out):
                return f"{o.path} is missing"
    for rel, (size, digest) in recorded.items():
        p = out / rel
        if not p.is_file():
            return f"{rel} is missing"
        if p.stat().st_size != size:
            return f"{rel} has {p.stat().st_size} bytes, the manifest says {size}"
        if file_digest(p) != digest:
            return f"{rel} differs from the file the step wrote"
    present = {p.relative_to(out).as_posix() for p in _owned_files(out, step)}
    extra = sorted(present - set(recorded))
    if extra:
        return f"{extra[0]} was not written by this step's last run"
    return None


def check_output_folder(out: str | os.PathLike, steps: list[Step]) -> None:
    """Refuse an output folder that holds files radmine did not write.

    ``radmine mine`` clears its steps' folders before they run, so ``out`` must
    be new, empty, a folder an earlier run wrote (``manifest.json``), or hold
    only names a run writes.

    Raises
    ------
    ValueError
        Naming the folder and the first unexpected entry.
    """
    out = Path(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise ValueError(f"output folder {str(out)!r} is a file; expected a folder.")
    if artifacts.MANIFEST.exists(out):
        return
    known = {a.top for a in artifacts.of_step(artifacts.RUN)} | {n for s in steps for n in s.owned()}
    foreign = sorted(p.name for p in out.iterdir() if p.name not in known and not p.name.endswith(".tmp"))
    if foreign:
        raise ValueError(
            f"output folder {str(out)!r} is not empty and was not written by radmine mine (it holds {foreign[0]!r}); "
            "radmine mine owns its output folder and removes its steps' stale files, so use a new or empty folder."
        )


@contextlib.contextmanager
def output_lock(out: str | os.PathLike, *, wait: bool = False) -> Iterator[Path]:
    """Hold an exclusive lock on ``out`` (``out/.radmine.lock``, ``fcntl.flock``).

    Parameters
    ----------
    out : str or PathLike
        The output folder (created if missing).
    wait : bool, default=False
        Wait for the other run to finish instead of raising.

    Raises
    ------
    OutputLockedError
        When another process holds the lock and ``wait`` is false.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = artifacts.LOCK.at(out)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            raise OutputLockedError(
                f"output folder {str(out)!r} is in use by another radmine mine ({holder}); "
                "wait for it to finish, use another --out, or pass --wait."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%dT%H:%M:%S')}".encode(), 0)
        removed = remove_tmp_files(out)
        if removed:
            logger.info("removed %d leftover temporary file(s) of an interrupted run under %s", len(removed), out)
        try:
            yield out
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _write_quarantine(ctx: RunContext, step: str) -> int:
    """Replace ``step``'s rows of ``DIR/quarantine.csv`` by what it quarantined in this run."""
    path = artifacts.QUARANTINE.at(ctx.out)
    cols = list(artifacts.QUARANTINE.columns)
    old = pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=cols)
    new = pd.DataFrame(ctx.quarantine, columns=cols).drop_duplicates()
    ctx.quarantine.clear()
    both = pd.concat([old[old["step"] != step], new], ignore_index=True)
    atomic_write_csv(both, path, index=False)
    return len(new)


def _source_fingerprint(source: str | None) -> Any:
    """Resolved path + size and modification time of the file, or of every file under the folder.

    A folder is walked recursively (sub-folders such as MedPix's ``images/``
    included); the listing is hashed as it is read, so memory stays flat for
    folders of millions of files.
    """
    if source is None:
        return None
    p = Path(source)
    if p.is_file():
        st = p.stat()
        return [str(p.resolve()), st.st_size, int(st.st_mtime)]
    if p.is_dir():
        h = hashlib.sha256()
        n = 0
        for root, dirs, files in os.walk(p):
            dirs.sort()
            for name in sorted(files):
                q = os.path.join(root, name)
                try:
                    st = os.stat(q)
                except OSError:
                    continue
                h.update(f"{os.path.relpath(q, p)}\0{st.st_size}\0{int(st.st_mtime)}\n".encode("utf-8", "surrogateescape"))
                n += 1
        return [str(p.resolve()), n, h.hexdigest()]
    return str(source)


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_short(x)}" for k, x in list(v.items())[:6]) + "}"
    return str(v)


def save_table(ctx: RunContext, df: pd.DataFrame, artifact: Artifact) -> Path:
    """Write ``df`` to the parquet ``artifact`` in DIR atomically (a named index becomes columns).

    Raises
    ------
    ValueError
        ``artifact`` is not a parquet table.
    """
    if artifact.kind != "parquet":
        raise ValueError(f"save_table: {artifact.path!r} is a {artifact.kind} artifact; expected a parquet table.")
    p = ctx.path(artifact)
    atomic_write_parquet(df.reset_index(drop=not any(df.index.names)), p)
    return p
