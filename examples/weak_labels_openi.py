"""Weak labels from report text, scored on held-out patients (Open-i IU chest X-rays).

Label every report present (1) / absent (0) / uncertain (-1) for each finding of a
vocabulary, the way CheXpert-style labelers do (sections, negation, uncertainty),
and score the labels against the manual MeSH ``major`` annotations of Open-i on a
training split and on held-out patients. The vocabulary and the negation cues were
tuned on training reports only; the held-out numbers show how well that carries over.

    python examples/weak_labels_openi.py                 # Open-i if present, else the embedded corpus
    python examples/weak_labels_openi.py --quick         # 600 reports
    python examples/weak_labels_openi.py --corpus embedded
    python examples/weak_labels_openi.py --corpus my_reports.csv --vocabulary my_findings.yaml

On the embedded synthetic corpus the reference is the generator's ground truth
(``truth_labels``); on a corpus without any reference only the label prevalence is shown.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

import radmine
from radmine import _paths


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default=None,
                   help="a corpus path for radmine.read_corpus, or 'embedded' (default: the Open-i IU reports "
                        "from the shared corpora when present, else the embedded synthetic corpus)")
    p.add_argument("--out", default="out/examples/weak_labels", help="output folder (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="the first 600 reports only")
    p.add_argument("--vocabulary", default=None,
                   help="a built-in vocabulary name or a JSON/YAML file (default: chest_xray for X-ray reports, "
                        "ct_mr for CT/MR)")
    p.add_argument("--min-support", type=int, default=None,
                   help="score findings with at least this many positive training reports (default 30; --quick 10)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def load_corpus(spec):
    """The corpus to label: a path, 'embedded', or (default) the Open-i reports when present."""
    if spec == "embedded" or (spec is None and _paths.openi_tgz() is None):
        return radmine.load_embedded()
    return radmine.read_corpus(spec or _paths.openi_tgz(), progress=False)


def vocabulary_groups(corpus, vocabulary):
    """{vocabulary: report ids}: one vocabulary for all, or chest_xray for X-rays and ct_mr for the rest."""
    if vocabulary:
        return {vocabulary: corpus.reports["report_id"]}
    xray = corpus.reports["modality"].fillna("").astype(str).str.upper().isin(["CR", "DX", "XR"])
    groups = {"chest_xray": corpus.reports.loc[xray, "report_id"], "ct_mr": corpus.reports.loc[~xray, "report_id"]}
    return {v: ids for v, ids in groups.items() if len(ids)}


def reference_labels(corpus, vocabulary, report_ids):
    """Reference labels for ``report_ids`` (1/0, NaN = not annotated), or None when the corpus has none.

    Open-i: its MeSH ``major`` terms mapped to the vocabulary's findings (``mesh_reference``).
    The embedded corpus: the generator's ``truth_labels`` (a finding it did not write is absent).
    """
    if "mesh_major" in corpus.reports.columns:
        return radmine.mesh_reference(corpus, vocabulary=vocabulary, field="mesh_major").reindex(report_ids)
    if "truth_labels" in corpus.tables:
        truth = corpus.tables["truth_labels"]
        names = truth["finding"].str.replace(" ", "_").replace({"normal": "no_finding"})
        wide = (truth.assign(finding=names, value=(truth["label"] == 1).astype(float))
                .pivot_table(index="report_id", columns="finding", values="value", aggfunc="max"))
        return wide.reindex(report_ids).fillna(0.0)
    return None


def main(argv=None) -> dict:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    min_support = args.min_support if args.min_support is not None else (10 if args.quick else 30)
    t_start = time.perf_counter()

    corpus = load_corpus(args.corpus)
    if args.quick:
        corpus = corpus.subset(corpus.reports["report_id"].head(600))

    # -- 1. Split by patient: every report of a patient lands in one split (here: 80% train, 20% held out).
    parts = corpus.split(by="patient_id", sizes={"train": 0.8, "held_out": 0.2}, random_state=args.seed)
    split_of = {r: name for name, part in parts.items() for r in part.reports["report_id"]}
    print(f"corpus: {corpus.name}: {corpus.n_reports} reports of {corpus.reports['patient_id'].nunique()} patients; "
          f"train {parts['train'].n_reports}, held out {parts['held_out'].n_reports}")

    # -- 2. Sections and sentences once (the labeler reuses them).
    corpus.sentences = radmine.sentence_table(corpus.reports)

    results = {}
    for vocabulary, ids in vocabulary_groups(corpus, args.vocabulary).items():
        group = corpus.subset(ids)
        # -- 3. Weak labels: WeakLabeler keeps every mention so you can see why a label was set.
        labeler = radmine.WeakLabeler(vocabulary=vocabulary).fit()
        labels = labeler.transform(group)
        labels.to_csv(out / f"labels_{vocabulary}.csv")
        status = labeler.mentions_["status"].value_counts()
        print(f"\n== {vocabulary}: {len(labels)} reports, {labels.shape[1]} findings, {len(labeler.mentions_)} "
              f"mentions ({', '.join(f'{k} {v}' for k, v in status.items())}); {labeler.n_empty_} without text")
        prevalence = pd.DataFrame({"present": (labels == 1).mean(), "absent": (labels == 0).mean(),
                                   "uncertain": (labels == -1).mean()}).sort_values("present", ascending=False)
        prevalence.to_csv(out / f"prevalence_{vocabulary}.csv")

        reference = reference_labels(group, vocabulary, labels.index)
        if reference is None:
            print("no reference labels in this corpus: prevalence of the weak labels")
            print(prevalence.head(15).round(3).to_string())
            continue

        # -- 4. Score against the reference, on train and on held-out patients (same finding set).
        in_split = pd.Series(labels.index.map(split_of), index=labels.index)
        train_ids, held_ids = labels.index[in_split == "train"], labels.index[in_split == "held_out"]
        train = radmine.evaluate_labels(labels.loc[train_ids], reference, min_support=min_support)
        findings = [f for f in train.index if f not in ("micro avg", "macro avg")]
        if not findings:
            print(f"no finding has >= {min_support} positive training reports; try --min-support")
            continue
        held = radmine.evaluate_labels(labels.loc[held_ids], reference, labels=findings)
        table = pd.concat({"train": train[["support", "precision", "recall", "f1"]],
                           "held-out": held[["support", "precision", "recall", "f1"]]}, axis=1)
        print(f"per finding (>= {min_support} positive training reports), micro/macro averages over these findings")
        print(table.round(3).to_string())
        table.to_csv(out / f"scores_{vocabulary}.csv")

        # -- 5. How to count "uncertain" (-1): as absent (default), as present (CheXpert's U-Ones), or not at all.
        policy = pd.DataFrame({
            u: {split: radmine.evaluate_labels(labels.loc[s], reference, labels=findings, uncertain=u)
                .loc["micro avg", "f1"] for split, s in (("train micro-F1", train_ids), ("held-out micro-F1", held_ids))}
            for u in ("negative", "positive", "ignore")}).T
        policy.index.name = "uncertain ="
        print(policy.round(3).to_string())
        results[f"{vocabulary} held-out micro-F1"] = float(held.loc["micro avg", "f1"])
        results[f"{vocabulary} train micro-F1"] = float(train.loc["micro avg", "f1"])

    print(f"\ndone in {time.perf_counter() - t_start:.0f}s; tables in {out}/")
    return results


if __name__ == "__main__":
    main()
