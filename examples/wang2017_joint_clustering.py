"""Unsupervised joint mining of image clusters and their names (Wang et al., WACV 2017).

Wang et al. clustered ~216k key images of a hospital PACS without labels: CNN
features -> k-means -> fine-tune the CNN on the cluster ids -> cluster again, until
two rounds agree; each cluster was then named by the words of its images' report
sentences, and the clusters were checked against known categories.

This script runs radmine's version of that loop on MedPix 2.0 (1,850 CT/MR key
images, each with its caption) or on any corpus with images:

1. images -> a pretrained CNN (EfficientNet-Lite0) -> features (cached);
2. ``JointClusterer()``'s default: one round of k-means in the spectral
   embedding of the features' 20-nearest-neighbour graph, then merging (RIM);
3. the joint loop (``finetune=True``): cluster, fine-tune on the cluster ids,
   re-cluster, until two rounds agree;
4. names of the clusters from their captions/sentences (``get_cluster_info``);
5. agreement with the known category (modality x body location): NMI and purity;
6. the loop's history and a montage per cluster, saved as PNG.

Beyond the paper, the same images are also clustered in the joint image-text
space of an ``ImageTextModel`` trained on the corpus' own captions (what
``radmine mine`` does by default). On MedPix the fine-tuning rounds do not raise
NMI over the one-round default; the report-aligned space does (numbers in
examples/README.md and docs/clusters.md).

    python examples/wang2017_joint_clustering.py            # MedPix if present, else embedded
    python examples/wang2017_joint_clustering.py --quick
    python examples/wang2017_joint_clustering.py --finetune-mode backbone   # the paper's CNN fine-tuning (GPU)

On a CPU the loop fine-tunes a small adapter on the frozen CNN features
(``finetune_mode="adapter"``); ``--finetune-mode backbone`` trains the whole CNN
each round as in the paper (minutes per round on a GPU, much longer on a CPU).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import normalized_mutual_info_score

import radmine
from radmine import _paths


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default=None,
                   help="a corpus path for radmine.read_corpus, or 'embedded' (default: MedPix 2.0 from the "
                        "shared corpora when present, else the embedded synthetic corpus)")
    p.add_argument("--out", default="out/examples/wang2017", help="output folder (default: %(default)s)")
    p.add_argument("--cache-dir", default=None,
                   help="image embedding cache (default: out/examples/cache, shared by the image examples)")
    p.add_argument("--quick", action="store_true", help="a small slice and fewer rounds (a smoke run)")
    p.add_argument("--backbone", default="efficientnet_lite0", help="image backbone (see radmine.list_backbones())")
    p.add_argument("--image-size", type=int, default=None, help="network input size (default 224; --quick 128)")
    p.add_argument("--n-clusters", type=int, default=0, help="k-means clusters in round 0 (0 = about sqrt(n/2))")
    p.add_argument("--rounds", type=int, default=None, help="rounds of the joint loop (default 5; --quick 2)")
    p.add_argument("--finetune-mode", default="adapter", choices=["adapter", "backbone"])
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def load_corpus(spec):
    """The corpus to mine: a path, 'embedded', or (default) MedPix when present."""
    if spec == "embedded" or (spec is None and _paths.medpix_dir() is None):
        return radmine.load_embedded()
    return radmine.read_corpus(spec or _paths.medpix_dir(), progress=False)


def known_category(corpus) -> pd.Series:
    """The category each image is checked against: modality x body location (Wang: modality x body part)."""
    images = corpus.images.set_index("image_id")
    if "location_category" in images.columns:                       # MedPix
        where = images["location_category"]
    elif "truth_images" in corpus.tables:                           # the embedded corpus knows its classes
        where = corpus.tables["truth_images"].set_index("image_id")["region"].reindex(images.index)
    else:                                                           # DICOM / PACS exports
        where = images.get("body_part", pd.Series("?", index=images.index))
    return images["modality"].astype(str) + " " + where.fillna("?").astype(str)


def purity(truth, labels) -> float:
    """Share of images whose cluster's most common category is their own category."""
    table = pd.crosstab(np.asarray(labels), np.asarray(truth))
    return float(table.max(axis=1).sum() / table.to_numpy().sum())


def main(argv=None) -> dict:
    args = parse_args(argv)
    out = Path(args.out)
    (out / "montages").mkdir(parents=True, exist_ok=True)
    cache = Path(args.cache_dir) if args.cache_dir else Path("out/examples/cache")
    image_size = args.image_size or (128 if args.quick else 224)
    rounds = args.rounds or (2 if args.quick else 5)
    t_start = time.perf_counter()

    corpus = load_corpus(args.corpus)
    corpus.images = corpus.images[corpus.images["path"].notna()].reset_index(drop=True)
    if args.quick:                                  # a slice of cases keeps the smoke run short
        corpus = corpus.subset(corpus.reports["report_id"].head(40))
    if corpus.n_images < 8:
        raise SystemExit(f"{corpus.name}: {corpus.n_images} image files; clustering needs key images "
                         "(try MedPix or the embedded corpus).")
    # The text that names a cluster: each image's linked sentence (MedPix: its caption).
    corpus.sentences = radmine.sentence_table(corpus.reports)
    corpus.links = radmine.link_key_images(corpus)
    truth = known_category(corpus)
    k = args.n_clusters or max(2, round(math.sqrt(corpus.n_images / 2)))
    print(f"corpus: {corpus.name}: {corpus.n_images} images of {corpus.n_reports} cases; "
          f"{truth.nunique()} known categories (modality x location); k = {k}")

    # -- 1. Round-0 features: the pretrained CNN, computed once and cached.
    embedder = radmine.ImageEmbedder(args.backbone, image_size=image_size, cache_dir=cache / args.backbone,
                                     progress=not args.quick, random_state=args.seed)
    X = embedder.transform(corpus.image_paths().tolist())   # keyed by file path: any run on these files reuses it
    ok = np.isfinite(X).all(axis=1)                 # unreadable images are NaN rows: leave them out
    images = corpus.images[ok].reset_index(drop=True)
    X, y = X[ok], truth.reindex(images["image_id"]).to_numpy()
    print(f"image features: {X.shape} ({embedder.n_cached_} cached, {embedder.n_computed_} computed, "
          f"{int((~ok).sum())} unreadable)")

    common = dict(n_clusters=k, backbone=args.backbone, image_size=image_size, random_state=args.seed,
                  progress=False)

    # -- 2. The default: one round (neighbour graph -> k-means -> merging) on the pretrained features.
    baseline = radmine.JointClusterer(finetune=False, **common).fit(images, image_features=X, y_true=y)

    # -- 3. The joint loop: cluster -> fine-tune on the cluster ids -> re-cluster, until two rounds agree.
    loop = radmine.JointClusterer(finetune=True, finetune_mode=args.finetune_mode, n_rounds=rounds,
                                  checkpoint_dir=str(out / "checkpoints"), **common)
    loop.fit(images, image_features=X, y_true=y)
    history = loop.history_
    print("\n== the loop, round by round (nmi_prev: agreement with the previous round; *_true: with the category)")
    cols = [c for c in ("round", "n_clusters", "nmi_prev", "nmi_true", "purity_true", "n_merged",
                        "finetune_loss", "val_acc", "seconds") if c in history.columns]
    print(history[cols].round(3).to_string(index=False))
    history.to_csv(out / "history.csv", index=False)
    loop.plot_history().savefig(out / "history.png", dpi=90, bbox_inches="tight")

    # -- 3b. Beyond the paper: cluster in the joint image-text space of a model trained on the corpus'
    #    own captions / sentences (what `radmine mine` does by default, docs/clusters.md). Its image
    #    tower is an encoder taught by the reports; no category labels are used.
    has_split = "split" in corpus.reports.columns and corpus.reports["split"].eq("train").any()
    itm = radmine.ImageTextModel(backbone=args.backbone, image_size=image_size, random_state=args.seed,
                                 train_split="train" if has_split else None, cache_dir=str(cache / "img2text"),
                                 progress=False, **(dict(n_ensemble=1, epochs=5) if args.quick else {}))
    itm.fit(corpus)
    Z = itm.encode_images([p for p, good in zip(corpus.image_paths().tolist(), ok) if good])
    aligned = radmine.JointClusterer(finetune=False, n_neighbors=None, **common).fit(images, image_features=Z, y_true=y)
    print(f"joint image-text space: {Z.shape} (ImageTextModel trained on the "
          f"{'training split' if has_split else 'whole corpus'}'s captions / sentences)")

    # -- 4. Cluster names from the words of the images' sentences / captions.
    info = loop.get_cluster_info(corpus)
    category = pd.Series(y, index=images["image_id"])
    info["main category"] = [category.reindex(loop.members(c)).value_counts().index[0] for c in info["cluster"]]
    info["category share"] = [category.reindex(loop.members(c)).value_counts(normalize=True).iloc[0]
                              for c in info["cluster"]]
    print("\n== clusters, largest first: name (distinctive words) and the category most of its images have")
    print(info[["cluster", "size", "name", "main category", "category share"]].head(15).round(2)
          .to_string(index=False))
    info.assign(**{c: info[c].astype(str) for c in info.columns if info[c].dtype == object}) \
        .to_csv(out / "cluster_info.csv", index=False)

    # -- 5. Agreement with the known categories: the table Wang et al. report.
    rows = []
    for name, model in (("one round (the default)", baseline), (f"joint loop ({args.finetune_mode})", loop),
                        ("report-aligned space (radmine mine's default)", aligned)):
        labels = model.labels_level1_
        rows.append({"method": name, "clusters": int(model.n_clusters_),
                     "NMI": normalized_mutual_info_score(y, labels), "purity": purity(y, labels),
                     "rounds": len(model.history_), "seconds": model.fit_seconds_})
    table = pd.DataFrame(rows).set_index("method")
    print(f"\n== clusters vs modality x location ({len(set(y))} categories, {len(y)} images)")
    print(table.round(3).to_string())
    table.to_csv(out / "agreement.csv")

    # -- 6. A montage of each of the largest clusters, named.
    n_montages = 3 if args.quick else 8
    for c, name, size in zip(info["cluster"].head(n_montages), info["name"], info["size"]):
        fig = loop.plot_cluster(c, corpus, n=9, title=f"cluster {c} ({size} images): {name}")
        fig.savefig(out / "montages" / f"cluster_{c}.png", dpi=80, bbox_inches="tight")
    print(f"\nmontages of the {n_montages} largest clusters in {out / 'montages'}/; history plot in {out / 'history.png'}")
    print(f"done in {time.perf_counter() - t_start:.0f}s; tables in {out}/")
    return {"nmi_baseline": float(table["NMI"].iloc[0]), "nmi_loop": float(table["NMI"].iloc[1]),
            "purity_loop": float(table["purity"].iloc[1]), "nmi_report_space": float(table["NMI"].iloc[2])}


if __name__ == "__main__":
    main()
