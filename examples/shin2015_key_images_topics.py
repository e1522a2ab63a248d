"""Key images, their sentences and their topics (Shin et al., CVPR 2015 / JMLR 2016).

Shin et al. mined a hospital PACS: each report cites its key images ("series 3,
image 45"); they linked every key image to the sentence that cites it, fitted LDA
topics to the reports (document level), to the reports of each topic (a second
level) and to the key-image sentences (sentence level), used the topics as
weak image labels to train a CNN (top-1 / top-5 accuracy), and finally regressed
word2vec vectors of the sentence from the image to generate keywords ("R@1": the
first keyword occurs in the image's own sentence).

This script runs the same pipeline with radmine on MedPix 2.0 (CT/MR teaching
cases whose key images carry their own caption, so every image is linked to its
caption) or on any corpus with images, and prints the paper's key numbers.

    python examples/shin2015_key_images_topics.py                  # MedPix if present, else embedded
    python examples/shin2015_key_images_topics.py --quick          # a few minutes less: smaller slice
    python examples/shin2015_key_images_topics.py --corpus embedded
    python examples/shin2015_key_images_topics.py --corpus my_pacs_corpus/   # a saved radmine Corpus

Held-out evaluation never splits a case: images are scored on the MedPix ``dev``
cases (the published split), or on a patient-level split of any other corpus.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

import radmine
from radmine import _paths

# What the papers report on their own, much larger PACS (not comparable one to one), as quoted in
# the docstrings of radmine.TopicImageClassifier and radmine.word_match_rate.
PAPER = {
    "topic classifier top-1 (document level)": 0.658,   # Shin et al. JMLR 2016: VGG-19, 60 document topics
    "topic classifier top-5 (document level)": 0.946,
    "keyword R@1 (word2vec regression)": 0.56,          # Shin et al. CVPR 2015
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default=None,
                   help="a corpus path for radmine.read_corpus, or 'embedded' (default: MedPix 2.0 from the "
                        "shared corpora when present, else the embedded synthetic corpus)")
    p.add_argument("--out", default="out/examples/shin2015", help="output folder (default: %(default)s)")
    p.add_argument("--cache-dir", default=None,
                   help="image embedding cache (default: out/examples/cache, shared by the image examples)")
    p.add_argument("--quick", action="store_true", help="a small slice and fewer epochs (a smoke run)")
    p.add_argument("--backbone", default="efficientnet_lite0", help="image backbone (see radmine.list_backbones())")
    p.add_argument("--image-size", type=int, default=None, help="network input size (default 224; --quick 128)")
    p.add_argument("--n-topics", type=int, default=0,
                   help="document-level topics K (default 0: choose K by held-out coherence, c_npmi)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def load_corpus(spec):
    """The corpus to mine: a path, 'embedded', or (default) MedPix when present."""
    if spec == "embedded" or (spec is None and _paths.medpix_dir() is None):
        return radmine.load_embedded()
    return radmine.read_corpus(spec or _paths.medpix_dir(), progress=False)


def main(argv=None) -> dict:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(args.cache_dir) if args.cache_dir else Path("out/examples/cache")
    image_size = args.image_size or (128 if args.quick else 224)
    t_start = time.perf_counter()
    results: dict[str, float] = {}

    corpus = load_corpus(args.corpus)
    corpus.images = corpus.images[corpus.images["path"].notna()].reset_index(drop=True)
    if not corpus.n_images:
        raise SystemExit(f"{corpus.name}: no image files; this pipeline needs key images (try MedPix or the "
                         "embedded corpus). For Open-i reports see examples/shin2016_chest_xray_labels.py.")

    # Train / held-out cases. MedPix ships a published case-level split; otherwise split by patient.
    if "split" not in corpus.reports.columns or not corpus.reports["split"].isin(["train"]).any():
        parts = corpus.split(by="patient_id", sizes={"train": 0.8, "dev": 0.2}, random_state=args.seed)
        reports = corpus.reports.copy()
        reports["split"] = reports["report_id"].map(
            {r: name for name, part in parts.items() for r in part.reports["report_id"]})
        corpus.reports = reports
    if args.quick:  # a slice of the cases of each split keeps the run short
        ids, split = corpus.reports["report_id"], corpus.reports["split"]
        corpus = corpus.subset(pd.concat([ids[split == "train"].head(40), ids[split == "dev"].head(12)]))
    train = corpus.subset(corpus.reports.loc[corpus.reports["split"] == "train", "report_id"])
    n_dev = int((corpus.reports["split"] == "dev").sum())
    print(f"corpus: {corpus.name}: {corpus.n_reports} reports ({train.n_reports} train, {n_dev} dev), "
          f"{corpus.n_images} key images")

    # -- 1. Reports -> sections -> sentences (exact character offsets into the report text).
    corpus.sentences = radmine.sentence_table(corpus.reports)

    # -- 2. Key image <-> sentence links (Shin: the sentence that cites "series 3, image 45";
    #       MedPix images have their own caption, which becomes the linked sentence).
    corpus.links = radmine.link_key_images(corpus, context=1)
    linked = corpus.links.dropna(subset=["sentence"])
    print(f"links: {len(corpus.links)} rows, {linked['image_id'].nunique()} of {corpus.n_images} images "
          f"have a sentence; methods {corpus.links['method'].value_counts().to_dict()}")
    train = corpus.subset(train.reports["report_id"])  # train now carries sentences and links too

    # -- 3. Document-level LDA: choose K by held-out topic coherence (c_npmi), as select_n_topics does.
    # Shin et al. chose 80 topics on ~780k reports; this script tries 10/20/40/80 (select_n_topics'
    # default candidates are 5/10/20) and, on a small corpus, keeps K below ~1 topic per 20 training
    # reports, or the held-out coherence of topics with a handful of documents each decides K by noise.
    n_train = len(train.reports)
    candidates = [4, 8] if args.quick else [c for c in (10, 20, 40, 80) if c <= max(10, n_train // 20)]
    selection = radmine.select_n_topics(train, n_topics=candidates, random_state=args.seed,
                                        measures=("perplexity", "c_npmi"))
    k = args.n_topics or int(selection.sort_values("c_npmi", ascending=False)["n_topics"].iloc[0])
    print("\n== choosing K (document-level LDA on the training reports; 20% of them held out)")
    print(selection.round(3).to_string(index=False))
    selection.to_csv(out / "topic_selection.csv", index=False)

    doc_topics = radmine.TopicModel(n_topics=k, unit="report", random_state=args.seed).fit(train)
    info = doc_topics.get_topic_info()
    print(f"\n== document-level topics (K={k}), largest first")
    print(info.sort_values("size", ascending=False)[["topic", "size", "name"]].head(10).to_string(index=False))
    info.to_csv(out / "topics_document.csv", index=False)

    # -- 4. Two-level topics: a second LDA inside each document-level topic ("7.2").
    two_level = radmine.HierarchicalTopicModel(n_topics=k, n_subtopics=2 if args.quick else 3,
                                               random_state=args.seed).fit(train)
    level2 = two_level.get_topic_info(level=2)
    print(f"\n== two-level topics: {len(level2)} sub-topics under {k} topics, largest first")
    print(level2.sort_values("size", ascending=False)[["topic", "size", "name"]].head(8).to_string(index=False))
    level2.to_csv(out / "topics_level2.csv", index=False)

    # -- 5. Sentence-level topics: LDA over each key image's sentence with its neighbours.
    sentence_topics = radmine.TopicModel(n_topics=k, unit="sentence", random_state=args.seed).fit(train)
    sentence_topics.get_topic_info().to_csv(out / "topics_sentence.csv", index=False)

    # -- 6. Topics become image labels (one per key image): the weak labels Shin trained a CNN on.
    levels = {"document": doc_topics, "level2": two_level, "sentence": sentence_topics}
    for level, model in levels.items():
        labels = model.topic_labels_for_images(train)
        labels.to_csv(out / f"image_topics_{level}.csv", index=False)
        results[f"images labelled ({level})"] = int((labels["topic"].astype(str) != "-1").sum())

    # -- 7. Image features: a pretrained CNN, computed once and cached (re-runs read the cache).
    embedder = radmine.ImageEmbedder(args.backbone, image_size=image_size, cache_dir=cache / args.backbone,
                                     progress=not args.quick, random_state=args.seed)
    X = embedder.transform(corpus.image_paths().tolist())   # keyed by file path: any run on these files reuses it
    features = pd.DataFrame(X, index=pd.Index(corpus.images["image_id"], name="image_id"))
    print(f"\nimage features: {X.shape} ({embedder.n_cached_} cached, {embedder.n_computed_} computed)")

    # -- 8. Image -> topic classifier, held out by case: accuracy on cases it never saw.
    rows = []
    for level, model in levels.items():
        clf = radmine.TopicImageClassifier(topic_model=model, level=level, backbone=args.backbone,
                                           epochs=15 if args.quick else 50, random_state=args.seed, progress=False)
        clf.fit(corpus, image_features=features)              # uses the train cases only
        dev = clf.score(corpus, split="dev", image_features=features)
        rows.append({"level": level, "classes": len(clf.classes_),
                     "majority (train)": clf.train_majority_,
                     "top-1 (held-out train cases)": clf.test_scores_.get("top1_accuracy", np.nan),
                     "top-5 (held-out train cases)": clf.test_scores_.get("top5_accuracy", np.nan),
                     "top-1 (dev)": dev["top1_accuracy"], "top-5 (dev)": dev["top5_accuracy"],
                     "dev images": dev["n_images"]})
    topic_scores = pd.DataFrame(rows).set_index("level")
    print("\n== image -> topic classifier (frozen CNN features + linear head; accuracy on unseen cases)")
    print(topic_scores.round(3).to_string())
    topic_scores.to_csv(out / "topic_classifier.csv")
    results["top-1 (document, dev)"] = float(topic_scores.loc["document", "top-1 (dev)"])
    results["top-5 (document, dev)"] = float(topic_scores.loc["document", "top-5 (dev)"])

    # -- 9. Image -> text: Shin's word2vec regression (and CLIP-style InfoNCE beside it).
    dev_corpus = corpus.subset(corpus.reports.loc[corpus.reports["split"] == "dev", "report_id"])
    dev_ids = [i for i in dev_corpus.images["image_id"] if i in set(linked["image_id"])]
    own_text = linked.groupby("image_id")["sentence"].apply(list)
    rows, keywords = [], None
    for objective in ("regression", "contrastive"):
        # Keywords come from the 1,000 most frequent words/phrases of the training sentences (rare words and
        # typos have noisy word vectors that would crowd the nearest-word lists).
        # Shin's setting: word2vec text, one model on the embedder's last-layer features, early stopping
        # (radmine's defaults are the MiniLM 3-member recipe of docs/img2text.md)
        model = radmine.ImageTextModel(text_encoder="word2vec", objective=objective, backbone=args.backbone,
                                       n_ensemble=1, image_features="last", lr_schedule="constant", dev_fraction=0.1,
                                       epochs=8 if args.quick else 30, max_phrases=1000, random_state=args.seed,
                                       progress=False)
        model.fit(corpus, image_features=features)             # train cases; early stopping on a slice of them
        scores = model.score(corpus, split="dev", image_features=features)
        desc = model.describe(None, k=5, image_features=features.loc[dev_ids].to_numpy())
        words = desc[desc["kind"] == "word"].groupby("image")["text"].apply(list).reindex(range(len(dev_ids)))
        words = [w if isinstance(w, list) else [] for w in words]
        refs = [own_text.get(i, []) for i in dev_ids]
        rows.append({"objective": objective,
                     "keyword R@1": radmine.word_match_rate(words, refs, k=1),
                     "keyword R@5": radmine.word_match_rate(words, refs, k=5),
                     **{f"image->text R@{k}": scores[f"image_to_text_R@{k}"] for k in (1, 5, 10)},
                     **{f"text->image R@{k}": scores[f"text_to_image_R@{k}"] for k in (1, 5, 10)},
                     "dev images": scores["n_images"]})
        if objective == "regression":
            keywords = pd.DataFrame({"image_id": dev_ids, "keywords": [", ".join(w) for w in words]})
    retrieval = pd.DataFrame(rows).set_index("objective")
    print("\n== image -> text on the dev cases (keywords = describe(); R@K = retrieval among all dev images)")
    print(retrieval.round(3).T.to_string())
    retrieval.to_csv(out / "image_text.csv")
    keywords.to_csv(out / "keywords_dev.csv", index=False)
    print("\nkeywords of the first dev images (word2vec regression):")
    print(keywords.head(5).to_string(index=False))
    results["keyword R@1 (regression, dev)"] = float(retrieval.loc["regression", "keyword R@1"])
    results["image->text R@10 (contrastive, dev)"] = float(retrieval.loc["contrastive", "image->text R@10"])

    # -- Summary: the key numbers beside the papers'.
    summary = pd.DataFrame({
        "radmine": [results["top-1 (document, dev)"], results["top-5 (document, dev)"],
                    results["keyword R@1 (regression, dev)"]],
        "paper": list(PAPER.values()),
    }, index=list(PAPER))
    print(f"\n== summary ({corpus.name}, K={k}; the papers used 216k key images of a hospital PACS)")
    print(summary.round(3).to_string())
    summary.to_csv(out / "summary.csv")
    print(f"\ndone in {time.perf_counter() - t_start:.0f}s; tables in {out}/")
    return results


if __name__ == "__main__":
    main()
