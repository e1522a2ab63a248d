"""The resumable step runner behind ``radmine mine``.

Each step has a name, the steps it depends on and the config sections it
reads. Its fingerprint hashes those settings, the fingerprints of its
dependencies, the source and the radmine version. The manifest
(``DIR/manifest.json``, written atomically after every step) records the
fingerprint of each finished step; a re-run skips a step whose fingerprint is
unchanged and whose outputs exist, so a stopped run resumes and a changed
setting re-runs only what depends on it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from radmine._io import atomic_write_json, atomic_write_parquet, fingerprint

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"


@dataclass
class Step:
    """One step of the main job."""

    name: str
    func: Callable[[RunContext], dict[str, Any]]
    deps: tuple[str, ...] = ()
    sections: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    description: str = ""
    #: single settings of other sections the step reads, as ``"section.key"``
    extra_keys: tuple[str, ...] = ()


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

    def path(self, *parts: str) -> Path:
        p = self.out.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def random_state(self) -> int:
        return int(self.config["run"]["random_state"])

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

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
    p = Path(out) / MANIFEST
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
        settings = {sec: ctx.config.get(sec, {}) for sec in step.sections}
        for key in step.extra_keys:
            sec, _, name = key.partition(".")
            settings[key] = ctx.config.get(sec, {}).get(name)
        fp = fingerprint(
            {
                "step": step.name,
                "settings": settings,
                "deps": {d: fps.get(d) for d in step.deps},
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
        missing_deps = [d for d in step.deps if d in known and manifest["steps"].get(d, {}).get("fingerprint") != fps.get(d)]
        if missing_deps:
            raise ValueError(
                f"Step {step.name!r} needs {missing_deps} to have run with the current settings first; "
                f"run them too (e.g. --steps {','.join(missing_deps + [step.name])})."
            )
        outputs_ok = all((ctx.out / o).exists() for o in step.outputs)
        if prev.get("fingerprint") == fp and prev.get("status") == "done" and outputs_ok and step.name not in (force or []):
            line = f"[{step.name}] up to date ({prev.get('summary', '')})"
            echo(line)
            rows.append({"step": step.name, "status": "skipped", "seconds": 0.0, "summary": prev.get("summary", "")})
            continue
        echo(f"[{step.name}] running: {step.description}")
        ctx.quarantine.clear()
        t0 = time.perf_counter()
        info = step.func(ctx) or {}
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
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        manifest["radmine_version"] = radmine.__version__
        manifest["source"] = ctx.source
        atomic_write_json(ctx.out / MANIFEST, manifest)
        echo(f"[{step.name}] done in {seconds:.1f}s: {summary}")
        rows.append({"step": step.name, "status": "ran", "seconds": seconds, "summary": summary})
    return pd.DataFrame(rows, columns=["step", "status", "seconds", "summary"])


def _write_quarantine(ctx: RunContext, step: str) -> int:
    """Replace ``step``'s rows of ``DIR/quarantine.csv`` by what it quarantined in this run."""
    path = ctx.out / "quarantine.csv"
    cols = ["step", "source", "item", "reason"]
    old = pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=cols)
    new = pd.DataFrame(ctx.quarantine, columns=cols).drop_duplicates()
    ctx.quarantine.clear()
    both = pd.concat([old[old["step"] != step], new], ignore_index=True)
    tmp = path.with_suffix(".csv.tmp")
    both.to_csv(tmp, index=False)
    tmp.replace(path)
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


def save_table(ctx: RunContext, df: pd.DataFrame, *parts: str) -> Path:
    """Write ``df`` to ``DIR/<parts>.parquet`` atomically."""
    p = ctx.path(*parts)
    atomic_write_parquet(df.reset_index(drop=not any(df.index.names)), p.with_suffix(".parquet"))
    return p.with_suffix(".parquet")
