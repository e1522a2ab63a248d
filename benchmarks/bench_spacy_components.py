"""radmine's spaCy components vs label_reports on the Open-i reports: same labels, and the cost of spaCy.

Usage::

    python benchmarks/bench_spacy_components.py            # all 3,145 IU reports
    python benchmarks/bench_spacy_components.py --quick    # the first 500

Systems, timed in the same process on the same texts:

``label_reports``            :func:`radmine.label_reports` on the reports table.
``labeler``                  ``spacy.blank("en")`` + ``radmine_labeler`` through ``nlp.pipe``.
``sections+labeler``         the same with ``radmine_sections`` first (section spans, sentence starts).

Prints seconds, reports per second, the time ratio to ``label_reports`` and
whether ``doc._.labels`` equals the ``label_reports`` row for every report.
Skips with a message when the Open-i corpus is absent.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    import spacy

    import radmine
    import radmine.spacy_components  # noqa: F401  (registers the factories without the entry points)
    from radmine import _paths

    tgz = _paths.openi_tgz()
    if tgz is None:
        print("Open-i NLMCXR_reports.tgz not found (../shared/corpora or $RADMINE_CORPORA); nothing to measure.")
        return 0
    reports = radmine.read_openi(tgz, progress=False).reports
    if args.quick:
        reports = reports.iloc[:500]
    texts = reports["text"].tolist()
    t = time.perf_counter()
    expected = radmine.label_reports(reports, vocabulary="chest_xray").to_numpy(dtype=float)
    base = time.perf_counter() - t
    rows = [("label_reports", base, True)]
    for pipes in (["radmine_labeler"], ["radmine_sections", "radmine_labeler"]):
        nlp = spacy.blank("en")
        for p in pipes:
            nlp.add_pipe(p)
        t = time.perf_counter()
        docs = list(nlp.pipe(texts, batch_size=256))
        sec = time.perf_counter() - t
        got = np.array([[np.nan if v is None else v for v in d._.labels.values()] for d in docs], dtype=float)
        rows.append(("+".join(p.replace("radmine_", "") for p in pipes), sec, np.array_equal(got, expected, equal_nan=True)))
    print(f"{len(texts)} Open-i reports")
    print(f"{'system':<20}{'seconds':>9}{'reports/s':>11}{'x label_reports':>17}  same labels")
    for name, sec, same in rows:
        print(f"{name:<20}{sec:>9.2f}{len(texts) / sec:>11.0f}{sec / base:>17.2f}  {same}")
    return 0 if all(same for _, _, same in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
