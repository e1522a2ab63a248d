"""Weak labels vs the Open-i MeSH reference: radmine and three baselines side by side.

Usage::

    python benchmarks/bench_labels.py            # full IU corpus (3,145 reports)
    python benchmarks/bench_labels.py --quick    # first 600 reports, no negspacy warm-up repeats

Split: by patient (Open-i has one report per patient), deterministic: a
report is held out when ``crc32(digits of patient_id) % 5 == 0`` (about 20%).
The vocabulary and the negation cues were tuned on the ``train`` part only.

Systems (all use the same ``chest_xray`` vocabulary terms, on the findings +
impression text):

``radmine``          :class:`radmine.WeakLabeler` (sections, sentences, NegEx
                     scopes with pseudo-negations/uncertainty, exclusions,
                     patterns, derived ``no_finding``). Timed end to end
                     (sentence splitting included) and labelling alone.
``keyword``          a term present anywhere = positive.
``keyword+neg``      the same, negated when "no/not/without/negative for"
                     precedes it in its sentence (one-line rule).
``negspacy``         spaCy blank English + sentencizer + EntityRuler with the
                     same terms + negspacy's ``negex`` (en_clinical termset).

For every system ``no_finding`` = 1 when no other finding is positive.
Scores: :func:`radmine.evaluate_labels` against :func:`radmine.mesh_reference`
with uncertain (-1) predictions counted as absent; micro-F1 over the findings
with >= 30 positive reports in ``train`` (the same label set for both splits).
Speed: reports per CPU-second of this single process (= per core).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import zlib

import numpy as np
import pandas as pd

import radmine
from radmine import _paths
from radmine.labels.evaluate import evaluate_labels, mesh_reference
from radmine.labels.vocabulary import load_vocabulary
from radmine.text.sentences import sentence_table


def held_out(patient_id: str) -> bool:
    digits = re.sub(r"\D", "", str(patient_id)) or str(patient_id)
    return zlib.crc32(digits.encode()) % 5 == 0


def body_text(reports: pd.DataFrame) -> list[str]:
    out = []
    for f, i in zip(reports["findings"], reports["impression"]):
        parts = [x for x in (f, i) if isinstance(x, str) and x.strip()]
        out.append("\n\n".join(parts))
    return out


def _finish(values: np.ndarray, vocab, index) -> pd.DataFrame:
    names = vocab.names
    normal = vocab.normal
    if normal is not None:
        j = names.index(normal.name)
        others = [k for k, f in enumerate(vocab.findings) if f.kind != "normal" and f.blocks_normal]
        values[:, j] = np.where((values[:, others] == 1).any(axis=1), 0.0, 1.0)
    return pd.DataFrame(values, index=index, columns=names)


def plain_vocabulary(vocab):
    """The same terms, synonyms and abbreviations; no patterns, exclusions or normal phrases."""
    from radmine.labels.vocabulary import Finding, Vocabulary

    findings = [
        Finding(name=f.name, terms=list(f.terms), synonyms=list(f.synonyms), abbreviations=list(f.abbreviations),
                kind=f.kind, blocks_normal=f.blocks_normal)
        for f in vocab.findings
    ]
    for f in findings:
        if f.kind == "normal":
            f.terms, f.synonyms = [], []
    return Vocabulary(name=vocab.name + "-plain", findings=findings)


def keyword_labels(texts, vocab, index, negation: bool) -> pd.DataFrame:
    from radmine.labels.labeler import _Matcher

    matcher = _Matcher(plain_vocabulary(vocab))
    neg = re.compile(r"\b(?:no|not|without|negative for)\b", re.IGNORECASE)
    split = re.compile(r"(?<=\.)\s+|\n\n")
    values = np.full((len(texts), len(vocab.findings)), np.nan)
    for i, text in enumerate(texts):
        for s in split.split(text) if negation else [text]:
            for a, b in matcher.finditer(s):
                v = 0.0 if negation and neg.search(s, 0, a) else 1.0
                for j in matcher.lookup(s[a:b]):
                    values[i, j] = v if np.isnan(values[i, j]) else max(values[i, j], v)
    return _finish(values, vocab, index)


def negspacy_pipeline(vocab):
    import spacy
    from negspacy.negation import Negex  # noqa: F401  (registers the "negex" factory)

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "LOWER"})
    patterns = []
    for f in vocab.findings:
        if f.kind == "normal":
            continue
        for t in (*f.terms, *f.synonyms, *f.abbreviations):
            patterns.append({"label": f.name.upper(), "pattern": t.lower() if t not in f.abbreviations else t})
            if t not in f.abbreviations and t[-1:].isalpha():
                patterns.append({"label": f.name.upper(), "pattern": t.lower() + ("es" if t.endswith("s") else "s")})
    ruler.add_patterns(patterns)
    nlp.add_pipe("negex")
    return nlp


def negspacy_labels(nlp, texts, vocab, index) -> pd.DataFrame:
    from radmine.labels.labeler import _Matcher

    # spaCy keeps one label per entity span; a term shared by two findings
    # ("nodule": lung_lesion and nodule) is mapped back to all of them
    matcher = _Matcher(plain_vocabulary(vocab))
    values = np.full((len(texts), len(vocab.findings)), np.nan)
    for i, doc in enumerate(nlp.pipe(texts, batch_size=256)):
        for ent in doc.ents:
            v = 0.0 if ent._.negex else 1.0
            for j in matcher.lookup(ent.text):
                values[i, j] = v if np.isnan(values[i, j]) else max(values[i, j], v)
    return _finish(values, vocab, index)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="first 600 reports only")
    ap.add_argument("--min-support", type=int, default=30)
    ap.add_argument("--per-label", action="store_true", help="print the per-label table for every system")
    args = ap.parse_args(argv)
    tgz = _paths.openi_tgz()
    if tgz is None:
        print("Open-i NLMCXR_reports.tgz not found (../shared/corpora); nothing to benchmark.")
        return 1
    corpus = radmine.read_openi(tgz, progress=False)
    reports = corpus.reports
    if args.quick:
        reports = reports.iloc[:600]
    vocab = load_vocabulary("chest_xray")
    ref_all = mesh_reference(reports, vocab)
    is_held = reports["patient_id"].map(held_out).to_numpy()
    splits = {"train": reports[~is_held], "held-out": reports[is_held]}
    train_ref = ref_all.loc[splits["train"]["report_id"]]
    support = (train_ref == 1).sum()
    label_set = [c for c in ref_all.columns if support[c] >= args.min_support]
    print(f"Open-i IU reports: {len(reports)} (train {len(splits['train'])}, held-out {len(splits['held-out'])}); "
          f"{len(label_set)} findings with >= {args.min_support} train reports.")
    nlp = negspacy_pipeline(vocab)
    results, speed = {}, {}
    T = time.process_time
    for split, rep in splits.items():
        index = pd.Index(rep["report_id"].to_numpy(), name="report_id")
        texts = body_text(rep)
        preds = {}
        t = T()
        sents = sentence_table(rep)
        t_sent = T() - t
        lab = radmine.WeakLabeler(vocab).fit()
        t = T()
        preds["radmine"] = lab.transform(rep, sentences=sents)
        t_lab = T() - t
        speed.setdefault("radmine (end to end)", []).append((len(rep), t_sent + t_lab))
        speed.setdefault("radmine (given sentences)", []).append((len(rep), t_lab))
        for name, fn in (
            ("keyword", lambda: keyword_labels(texts, vocab, index, negation=False)),
            ("keyword+neg", lambda: keyword_labels(texts, vocab, index, negation=True)),
            ("negspacy", lambda: negspacy_labels(nlp, texts, vocab, index)),
        ):
            t = T()
            preds[name] = fn()
            speed.setdefault(name, []).append((len(rep), T() - t))
        ref = ref_all.loc[index]
        for name, pred in preds.items():
            results[(split, name)] = evaluate_labels(pred, ref, labels=label_set)
        results[(split, "radmine (uncertain=positive)")] = evaluate_labels(
            preds["radmine"], ref, labels=label_set, uncertain="positive"
        )
    systems = ["radmine", "keyword", "keyword+neg", "negspacy"]
    for split in splits:
        table = pd.DataFrame({s: results[(split, s)]["f1"] for s in systems})
        table.insert(0, "support", results[(split, "radmine")]["support"])
        print(f"\n== {split}: F1 per finding (MeSH major reference; micro/macro over the {len(label_set)} findings)")
        print(table.round(3).to_string())
        if args.per_label:
            for s in systems:
                print(f"\n-- {split} / {s}")
                print(results[(split, s)].round(3).to_string())
    print("\n== summary")
    rows = []
    for s in [*systems, "radmine (uncertain=positive)"]:
        row = {"system": s}
        for split in splits:
            r = results[(split, s)].loc["micro avg"]
            row[f"{split} micro-P"] = r["precision"]
            row[f"{split} micro-R"] = r["recall"]
            row[f"{split} micro-F1"] = r["f1"]
        rows.append(row)
    print(pd.DataFrame(rows).set_index("system").round(3).to_string())
    print("\n== speed (reports per CPU-second, one process = one core)")
    base = None
    srows = []
    for name, runs in speed.items():
        n = sum(r[0] for r in runs)
        secs = sum(r[1] for r in runs)
        rate = n / secs if secs else float("inf")
        srows.append({"system": name, "reports": n, "cpu_s": round(secs, 2), "reports/s/core": round(rate)})
    sp = pd.DataFrame(srows).set_index("system")
    base = sp.loc["radmine (end to end)", "reports/s/core"]
    sp["ratio vs radmine"] = (sp["reports/s/core"] / base).round(2)
    print(sp.to_string())
    det = radmine.NegationDetector()
    det.scopes("warm up")
    texts = sentence_table(reports)["text"].tolist()
    t = T()
    for x in texts:
        det.scopes(x)
    secs = T() - t
    print(f"\nNegationDetector.scopes: {len(texts)} sentences in {secs:.2f} CPU-s = {len(texts) / secs:,.0f} sentences/s/core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
