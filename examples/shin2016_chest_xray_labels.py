"""Chest X-ray annotations as label sequences, and weak labels read from the reports (Shin et al., CVPR 2016).

Shin et al. ("Learning to read chest X-rays: recurrent neural cascade model for
automated image annotation") took the Open-i Indiana University chest X-rays,
whose reports were annotated by people with MeSH terms such as
``Opacity/lung/base/left/mild``; each term is a *label sequence*: a finding
followed by its qualifiers (where, how much). A CNN learned the first label of
each image and an RNN the rest of the sequence.

This script rebuilds that label side with radmine and asks how well the report
text alone recovers the annotations:

1. MeSH annotations -> label sequences per report and per image (images inherit
   their report's annotation, as in the paper); how often each finding occurs;
2. weak labels read from the findings/impression text (``label_reports``) scored
   against the MeSH annotation mapped to the same findings (``mesh_reference``,
   ``evaluate_labels``).

The image side (the CNN + RNN annotation generator) is not run here: the IU
release in the shared corpora has the reports, the image ids and their DICOM
header fields, but no image files. radmine's CNN + RNN annotator is
``radmine.AnnotationGenerator`` (docs/img2text.md, "CNN + GRU annotation generator"); it
needs pixels, as do ``radmine.ImageTextModel`` and ``radmine.TopicImageClassifier``
(see examples/shin2015_key_images_topics.py).

    python examples/shin2016_chest_xray_labels.py            # Open-i if present, else the embedded corpus
    python examples/shin2016_chest_xray_labels.py --quick    # 600 reports
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

import radmine
from radmine import _paths

N_LABELS = 17  # Shin et al. trained on the 17 most frequent disease labels


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default=None,
                   help="a corpus path for radmine.read_corpus, or 'embedded' (default: the Open-i IU reports "
                        "from the shared corpora when present, else the embedded synthetic corpus)")
    p.add_argument("--out", default="out/examples/shin2016", help="output folder (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="the first 600 reports only")
    p.add_argument("--min-support", type=int, default=None,
                   help="score findings with at least this many positive reports (default 30; --quick 10)")
    return p.parse_args(argv)


def load_corpus(spec):
    """Open-i with its DICOM header table (default), a path, or 'embedded'."""
    if spec == "embedded" or (spec is None and _paths.openi_tgz() is None):
        return radmine.load_embedded()
    if spec is None:
        return radmine.read_openi(_paths.openi_tgz(), dicom_table=_paths.openi_dicom_table(), progress=False)
    return radmine.read_corpus(spec, progress=False)


def label_sequences(corpus) -> pd.DataFrame:
    """One row per annotation: ``report_id, sequence`` (a tuple: finding, then qualifiers), lower case.

    Open-i: the MeSH ``major`` terms (``annotations`` rows of kind ``mesh_major``).
    The embedded corpus: its ground-truth positive findings (one-label sequences).
    """
    ann = corpus.annotations
    if len(ann) and (ann["kind"] == "mesh_major").any():
        mesh = ann[ann["kind"] == "mesh_major"]
        seqs = [tuple(s.lower() for s in [term, *quals]) for term, quals in zip(mesh["term"], mesh["qualifiers"])]
        return pd.DataFrame({"report_id": mesh["report_id"].to_numpy(), "sequence": seqs})
    if "truth_labels" in corpus.tables:
        truth = corpus.tables["truth_labels"]
        truth = truth[truth["label"] == 1]
        return pd.DataFrame({"report_id": truth["report_id"].to_numpy(),
                             "sequence": [(f,) for f in truth["finding"]]})
    raise SystemExit(f"{corpus.name}: no MeSH annotations (annotations kind 'mesh_major') and no ground truth; "
                     "this example needs annotated reports such as Open-i's.")


def reference_labels(corpus, vocabulary):
    """The annotation mapped to the vocabulary's findings: 1/0 per report, NaN = not annotated."""
    if "mesh_major" in corpus.reports.columns:
        return radmine.mesh_reference(corpus, vocabulary=vocabulary, field="mesh_major")
    truth = corpus.tables["truth_labels"]
    names = truth["finding"].str.replace(" ", "_").replace({"normal": "no_finding"})
    wide = (truth.assign(finding=names, value=(truth["label"] == 1).astype(float))
            .pivot_table(index="report_id", columns="finding", values="value", aggfunc="max"))
    return wide.reindex(corpus.reports["report_id"]).fillna(0.0)


def main(argv=None) -> dict:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    min_support = args.min_support if args.min_support is not None else (10 if args.quick else 30)
    t_start = time.perf_counter()

    corpus = load_corpus(args.corpus)
    xray = corpus.reports["modality"].fillna("").astype(str).str.upper().isin(["CR", "DX", "XR"])
    corpus = corpus.subset(corpus.reports.loc[xray, "report_id"])   # chest X-ray reports only
    if args.quick:
        corpus = corpus.subset(corpus.reports["report_id"].head(600))
    n_files = int(corpus.images["path"].notna().sum()) if len(corpus.images) else 0
    print(f"corpus: {corpus.name}: {corpus.n_reports} chest X-ray reports, {corpus.n_images} images "
          f"({n_files} with an image file)")

    # -- 1. Annotations -> label sequences (finding, qualifier, qualifier, ...).
    seqs = label_sequences(corpus)
    seqs = seqs[seqs["sequence"].map(lambda s: s[0] != "no indexing")]
    seqs["label"] = seqs["sequence"].map(lambda s: s[0])          # the first label: what the CNN learned
    seqs["length"] = seqs["sequence"].map(len)
    per_report = seqs.groupby("report_id")["label"].apply(set)
    normal = per_report.map(lambda s: s == {"normal"})
    images_per_report = corpus.images.groupby("report_id").size().reindex(per_report.index).fillna(0)
    stats = pd.Series({
        "annotated reports": len(per_report),
        "annotated images (inherit their report's labels)": int(images_per_report.sum()),
        "normal reports (share)": float(normal.mean()),
        "normal images (share)": float(images_per_report[normal].sum() / max(images_per_report.sum(), 1)),
        "label sequences": len(seqs),
        "distinct sequences": seqs["sequence"].nunique(),
        "distinct first labels": seqs["label"].nunique(),
        "sequence length: mean": float(seqs["length"].mean()),
        "sequence length: max": int(seqs["length"].max()),
        "sequences per abnormal report: mean": float(seqs[~seqs["report_id"].map(normal)].groupby("report_id")
                                                     .size().mean()),
    })
    print("\n== label sequences (MeSH major annotation)")
    print(stats.round(3).to_string())
    stats.to_csv(out / "sequence_stats.csv", header=["value"])

    # The most frequent first labels (the paper kept the 17 most frequent disease labels), per report and per image.
    first = seqs.drop_duplicates(["report_id", "label"])
    top = pd.DataFrame({"reports": first["label"].value_counts()})
    top["images"] = first.assign(n=first["report_id"].map(images_per_report)).groupby("label")["n"].sum().astype(int)
    top["qualified (share of sequences with >= 1 qualifier)"] = seqs.groupby("label")["length"].apply(
        lambda n: (n > 1).mean())
    top = top.sort_values("reports", ascending=False).head(N_LABELS + 1)   # + "normal"
    print(f"\n== the {N_LABELS} most frequent labels (and normal)")
    print(top.round(3).to_string())
    top.to_csv(out / "top_labels.csv")

    # -- 2. Weak labels from the report text vs the annotation, on the same findings.
    labels = radmine.label_reports(corpus.reports, vocabulary="chest_xray")
    reference = reference_labels(corpus, "chest_xray")
    scores = radmine.evaluate_labels(labels, reference, min_support=min_support)
    print(f"\n== weak labels (chest_xray vocabulary) vs the annotation, findings with >= {min_support} positive reports")
    print(scores[["support", "precision", "recall", "f1"]].round(3).to_string())
    scores.to_csv(out / "weak_labels_vs_annotation.csv")

    # -- 3. The CNN + RNN annotation generator (radmine.AnnotationGenerator): not run here (see the docstring).
    why = "this script reads labels only; radmine.AnnotationGenerator trains the CNN+GRU annotator (docs/img2text.md)"
    if not n_files:
        why = f"this corpus has no image files (0 of {corpus.n_images} images); {why}"
    print(f"\nCNN+RNN annotation of images: not run: {why}.")
    print(f"done in {time.perf_counter() - t_start:.0f}s; tables in {out}/")
    return {"micro_f1": float(scores.loc["micro avg", "f1"]), "normal_share": float(normal.mean()),
            "n_sequences": int(len(seqs))}


if __name__ == "__main__":
    main()
