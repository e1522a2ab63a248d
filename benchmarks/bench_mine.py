"""Wall time of `radmine mine` per step, and of a re-run with nothing changed.

Usage::

    python benchmarks/bench_mine.py                 # embedded corpus, Open-i IU and MedPix (when present)
    python benchmarks/bench_mine.py --quick         # embedded corpus + IU only, fast settings
    python benchmarks/bench_mine.py --source medpix --out /tmp/mine-medpix

Prints one table per corpus: seconds per step on the first run, the re-run
time (every step up to date) and the re-run / first-run ratio (target < 5%).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

import radmine
from radmine import _paths

QUICK = {
    "embed.backbone": "random_cnn",
    "embed.image_size": 64,
    "cluster.n_rounds": 2,
    "img2text.epochs": 5,
    "topics.n_topics": 10,
    "topics.n_subtopics": 2,
}


def sources(which: str):
    out = {"embedded": None}
    if _paths.openi_tgz() is not None:
        out["openi-iu"] = str(_paths.openi_tgz())
    if _paths.medpix_dir() is not None:
        out["medpix"] = str(_paths.medpix_dir())
    if which != "all":
        out = {k: v for k, v in out.items() if k == which or (which == "openi" and k == "openi-iu")}
    return out


def bench(name, source, out: Path, overrides) -> pd.DataFrame:
    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    first = radmine.mine(source, out, overrides=overrides, progress=False, echo=lambda s: None)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    second = radmine.mine(source, out, overrides=overrides, progress=False, echo=lambda s: None)
    t_second = time.perf_counter() - t0
    table = first[["step", "status", "seconds", "summary"]].copy()
    table["summary"] = table["summary"].str.slice(0, 70)
    print(f"\n== {name}: first run {t_first:.1f} s, re-run {t_second:.2f} s "
          f"({100 * t_second / t_first:.1f}% of the first; re-run statuses: {sorted(set(second['status']))})")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default="all", choices=["all", "embedded", "openi", "medpix"])
    ap.add_argument("--out", default=None, help="output root (default: a temporary folder)")
    ap.add_argument("--quick", action="store_true", help="embedded + IU only, small models")
    args = ap.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="bench-mine-"))
    srcs = sources(args.source)
    if args.quick:
        srcs.pop("medpix", None)
    for name, src in srcs.items():
        bench(name, src, root / name, QUICK if args.quick else {})


if __name__ == "__main__":
    main()
