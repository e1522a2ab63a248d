"""Benchmark: joint image clustering (Wang et al., WACV 2017) on the shared MedPix 2.0 images.

Prints NMI / AMI / purity of the final clusters against the known labels
(modality x location category, and plane) for

a. one-shot k-means (+ RIM refine) on pretrained EfficientNet-Lite0 features;
b. the loop from those features (``finetune_mode="adapter"`` on CPU; ``--mode
   backbone`` fine-tunes the whole CNN, which wants a GPU);
c. the loop from a random CNN (whole network trained, small images);

plus the time per round and faiss vs scikit-learn k-means time at equal k.
Pretrained features come from the ImageEmbedder cache
(``benchmarks/results/cache``), so reruns are fast.

Usage::

    .venv/bin/python benchmarks/bench_cluster.py            # full (~10 min on 2 CPU cores)
    .venv/bin/python benchmarks/bench_cluster.py --quick    # short run
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

import radmine
from radmine import _paths
from radmine.cluster import loop
from radmine.cluster.naming import format_words

HERE = Path(__file__).resolve().parent


def fmt_table(rows, title):
    df = pd.DataFrame(rows)
    return f"\n{title}\n" + df.to_string(index=False, float_format=lambda v: f"{v:.3f}")


def truths(corpus):
    im = corpus.images
    mod_loc = (im["modality"].astype(str) + " x " + im["location_category"].astype(str)).to_numpy()
    plane = im["plane"].fillna("none").astype(str).to_numpy()
    split = im["report_id"].map(corpus.reports.set_index("report_id")["split"]).fillna("").to_numpy()
    return mod_loc, plane, split


def score(name, labels, mod_loc, plane, split, extra=None):
    dev = split == "dev"
    row = {
        "method": name,
        "k": int(len(np.unique(labels))),
        "NMI mod x loc": loop.nmi(mod_loc, labels),
        "AMI mod x loc": loop.ami(mod_loc, labels),
        "purity mod x loc": loop.purity(mod_loc, labels),
        "NMI plane": loop.nmi(plane, labels),
        "purity plane": loop.purity(plane, labels),
        "NMI mod x loc (dev)": loop.nmi(mod_loc[dev], np.asarray(labels)[dev]) if dev.any() else float("nan"),
    }
    row.update(extra or {})
    return row


def pretrained_features(corpus, batch_size, progress):
    emb = radmine.ImageEmbedder("efficientnet_lite0", batch_size=batch_size, cache_dir=HERE / "results" / "cache",
                                progress=progress)
    t = time.time()
    F = emb.fit().transform(corpus)
    return F, time.time() - t, emb.n_cached_


def kmeans_timing(Z, k, seed=0):
    rows = []
    for engine in ("faiss", "sklearn"):
        t = time.time()
        lab, _ = loop.kmeans(Z, k, seed=seed, niter=25, nredo=1, engine=engine)
        rows.append({"engine": engine, "n": len(Z), "dim": Z.shape[1], "k": k, "seconds": time.time() - t})
    base = rows[0]["seconds"]
    for r in rows:
        r["ratio vs faiss"] = r["seconds"] / base
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds, smaller random CNN run")
    ap.add_argument("--k", type=int, default=50, help="k-means clusters in round 0 (default 50)")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--mode", choices=["adapter", "backbone"], default="adapter",
                    help="fine-tuning of the pretrained loop (b); 'backbone' needs a GPU for a full run")
    ap.add_argument("--random-size", type=int, default=64, help="image size of the random-CNN loop (c)")
    ap.add_argument("--skip-random", action="store_true")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the results as JSON here")
    ap.add_argument("--docs-table", action="store_true", help="print the cluster table as markdown")
    args = ap.parse_args(argv)

    folder = _paths.medpix_dir()
    if folder is None:
        raise SystemExit("MedPix 2.0 not found: set $RADMINE_CORPORA or put it in ../shared/corpora")
    corpus = radmine.read_medpix(folder, progress=False)
    mod_loc, plane, split = truths(corpus)
    n_rounds = args.rounds or (3 if args.quick else 5)
    print(f"MedPix 2.0: {corpus.n_images} images; {len(set(mod_loc))} modality x location classes, "
          f"{len(set(plane))} planes; k={args.k}, rounds<={n_rounds}")

    F, t_feat, n_cached = pretrained_features(corpus, args.batch_size, progress=not args.quick)
    print(f"EfficientNet-Lite0 features (224 px): {F.shape}, {t_feat:.1f}s ({n_cached} from cache)")
    ok = np.isfinite(F).all(1)
    if not ok.all():
        print(f"  {int((~ok).sum())} unreadable images left out")
    images = corpus.images[ok].reset_index(drop=True)
    F, mod_loc, plane, split = F[ok], mod_loc[ok], plane[ok], split[ok]
    sub = radmine.Corpus(corpus.reports, images, annotations=corpus.annotations, root=corpus.root, name="medpix")

    common = dict(n_clusters=args.k, random_state=args.seed, progress=False, batch_size=args.batch_size)
    print("(NMI depends on k: compare rows at similar k; AMI corrects for chance)")
    rows, hist = [], {}
    # (a0) plain k-means, no refine; (a) one-shot k-means + RIM refine
    for name, merge in [("a0. one-shot k-means (no refine), pretrained", False),
                        ("a. one-shot k-means + RIM, pretrained", True)]:
        t = time.time()
        jc = radmine.JointClusterer(finetune=False, merge=merge, **common).fit(sub, features=F)
        rows.append(score(name, jc.labels_, mod_loc, plane, split, {"rounds": 1, "s/round": time.time() - t}))
        one_shot = jc
    # (b) the loop from pretrained features
    t = time.time()
    jl = radmine.JointClusterer(finetune=True, finetune_mode=args.mode, n_rounds=n_rounds, finetune_epochs=3
                                if args.mode == "adapter" else 1, lr=1e-3 if args.mode == "adapter" else 1e-4,
                                image_size=128 if args.mode == "backbone" else None, **common)
    jl.fit(sub, features=F, y_true=mod_loc)
    rows.append(score(f"b. loop ({args.mode}), pretrained", jl.labels_, mod_loc, plane, split,
                      {"rounds": len(jl.history_), "s/round": (time.time() - t) / len(jl.history_)}))
    hist["b"] = jl.history_
    # (c) the loop from a random CNN
    if not args.skip_random:
        t = time.time()
        jr = radmine.JointClusterer(backbone="random_cnn", pretrained=False, image_size=args.random_size,
                                    finetune=True, n_rounds=2 if args.quick else n_rounds, finetune_epochs=1,
                                    lr=1e-3, **common)
        jr.fit(sub, y_true=mod_loc)
        r0 = jr.history_.iloc[0]
        rows.append({"method": "c0. one-shot k-means, random CNN", "k": int(r0["n_clusters"]),
                     "NMI mod x loc": r0["nmi_true"], "AMI mod x loc": r0["ami_true"],
                     "purity mod x loc": r0["purity_true"], "rounds": 1})
        rows.append(score(f"c. loop (backbone), random CNN {args.random_size}px", jr.labels_, mod_loc, plane,
                          split, {"rounds": len(jr.history_), "s/round": (time.time() - t) / len(jr.history_)}))
        hist["c"] = jr.history_

    print(fmt_table(rows, "Final clusters vs known labels (MedPix, all images)"))
    base = rows[1]["NMI mod x loc"]
    best = rows[2]["NMI mod x loc"]
    print(f"\nloop (b) vs one-shot (a): NMI {best:.3f} vs {base:.3f} ({best - base:+.3f}, "
          f"{100 * (best - base) / base:+.1f}%)")
    cols = ["round", "n_clusters", "nmi_prev", "purity_prev", "nmi_true", "purity_true", "size_min",
            "size_median", "size_max", "n_empty_reseeded", "n_merged", "finetune_loss", "val_acc", "seconds"]
    for key, h in hist.items():
        print(fmt_table(h[[c for c in cols if c in h]].to_dict("records"), f"Convergence history ({key})"))

    Z = one_shot.features_
    print(fmt_table(kmeans_timing(Z, args.k, args.seed), "k-means time at equal k (same features, 25 iterations)"))

    info = jl.get_cluster_info(sub, n_words=8)
    im = images.set_index("image_id")
    info["majority"] = [pd.Series(mod_loc[jl.labels_ == c]).value_counts().index[0] for c in info["cluster"]]
    info["share"] = [pd.Series(mod_loc[jl.labels_ == c]).value_counts(normalize=True).iloc[0]
                     for c in info["cluster"]]
    info["plane"] = [im.loc[list(jl.members(c)), "plane"].value_counts().index[0] for c in info["cluster"]]
    show = info.head(20 if args.quick else len(info))
    print("\nClusters of the loop (b), largest first")
    for r in show.itertuples():
        print(f"#{r.cluster:>3} ({r.size:>3}) {r.name:<36} | {r.majority:<40} {r.share:.2f} {r.plane:<9} | "
              f"{format_words(r.top_words, 6)}")
    if args.docs_table:
        print("\n| cluster | size | name (distinctive words) | top words (count) | majority modality x location "
              "(share) | plane |")
        print("|---|---|---|---|---|---|")
        for r in info.itertuples():
            print(f"| {r.cluster} | {r.size} | {r.name} | {format_words(r.top_words, 5)} | "
                  f"{r.majority} ({r.share:.0%}) | {r.plane} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "history": {k: v.to_dict("records")
                                               for k, v in hist.items()}}, indent=2, default=float))


if __name__ == "__main__":
    main()
