"""Benchmark: image clusters (Wang et al., WACV 2017) on the shared MedPix 2.0 images.

For each feature set and each k, fits ``JointClusterer`` with several settings on the
images of ``--subset`` (all 1,850, the ``train`` cases or the ``dev`` cases) and prints
NMI / AMI / purity against modality x location category, mean ± sd over ``--seeds``
random states, with the number of rounds and the NMI trace of the last seed (one
value per round: the convergence trace):

* ``one-shot k-means``: one round of k-means on the reduced features (no refine,
  no neighbour graph) -- the baseline at equal k;
* ``one-shot k-means + RIM``: the same with the RIM refine/merge step (may lower k);
* ``loop, k-means space``: the fine-tuning loop in k-means space
  (``finetune=True, n_neighbors=None``);
* ``default``: ``JointClusterer()``'s settings (one round, k-means in the
  spectral embedding of the 20-nearest-neighbour graph, RIM refine);
* ``default + loop``: the same with the fine-tuning loop (``finetune=True``).

Feature sets: ``effnet`` (EfficientNet-Lite0 via ``ImageEmbedder``, cached in
``benchmarks/results/cache``), ``random_cnn`` (the random CNN at 64 px, cached),
and precomputed ``.npz`` files (arrays ``X`` and ``image_id``) given with
``--npz name=path`` (e.g. SSCD embeddings).

Usage::

    .venv/bin/python benchmarks/bench_cluster.py --subset train --k 10 30 50 --npz sscd=FILE.npz
    .venv/bin/python benchmarks/bench_cluster.py --subset all --k 10 30 --npz sscd=FILE.npz
    .venv/bin/python benchmarks/bench_cluster.py --subset dev --k 10 --npz sscd=FILE.npz
    .venv/bin/python benchmarks/bench_cluster.py --quick                                   # one seed, k=10
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import radmine
from radmine import _paths
from radmine.cluster import loop

HERE = Path(__file__).resolve().parent

METHODS = {
    "one-shot k-means": dict(finetune=False, n_neighbors=None, merge=False),
    "one-shot k-means + RIM": dict(finetune=False, n_neighbors=None, merge=True),
    "loop, k-means space": dict(finetune=True, n_neighbors=None, merge=True),
    "default": dict(),
    "default + loop": dict(finetune=True),
}


def truths(corpus):
    im = corpus.images
    mod_loc = (im["modality"].astype(str) + " x " + im["location_category"].astype(str)).to_numpy()
    split = im["report_id"].map(corpus.reports.set_index("report_id")["split"]).fillna("").to_numpy()
    return mod_loc, split


def feature_sets(corpus, names, npz, batch_size):
    ids = corpus.images["image_id"].astype(str).to_numpy()
    out = {}
    for name in names:
        if name in ("effnet", "random_cnn"):
            kw = dict(pretrained=False, image_size=64, random_state=0) if name == "random_cnn" else {}
            emb = radmine.ImageEmbedder("efficientnet_lite0" if name == "effnet" else "random_cnn", batch_size=batch_size,
                                        cache_dir=HERE / "results" / "cache", progress=False, **kw)
            out[name] = emb.fit().transform(corpus).astype(np.float32)
    for spec in npz:
        name, path = spec.split("=", 1)
        data = np.load(path, allow_pickle=True)
        pos = pd.Series(np.arange(len(data["image_id"])), index=data["image_id"].astype(str))
        out[name] = data["X"][pos.reindex(ids).to_numpy()].astype(np.float32)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subset", choices=["all", "train", "dev"], default="all",
                    help="images clustered: all, or only those of the train / dev cases")
    ap.add_argument("--k", type=int, nargs="+", default=[10, 30])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--features", nargs="*", default=["effnet", "random_cnn"],
                    help="feature sets computed here: effnet, random_cnn")
    ap.add_argument("--npz", nargs="*", default=[], help="NAME=PATH of precomputed features (X, image_id)")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="one seed, k=10")
    ap.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.k = 1, [10]

    folder = _paths.medpix_dir()
    if folder is None:
        raise SystemExit("MedPix 2.0 not found: set $RADMINE_CORPORA or put it in ../shared/corpora")
    corpus = radmine.read_medpix(folder, progress=False)
    y, split = truths(corpus)
    feats = feature_sets(corpus, args.features, args.npz, args.batch_size)
    keep = np.ones(len(y), bool) if args.subset == "all" else split == args.subset
    print(f"MedPix 2.0: {int(keep.sum())} images ({args.subset}); {len(set(y[keep]))} modality x location classes; "
          f"seeds 0..{args.seeds - 1}")
    rows = []
    for fname, F in feats.items():
        ok = keep & np.isfinite(F).all(1)
        X, yt = F[ok], y[ok]
        for k in args.k:
            for method in args.methods:
                nmi, ami, pur, kk, rounds, t = [], [], [], [], [], time.time()
                for seed in range(args.seeds):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        jc = radmine.JointClusterer(n_clusters=k, random_state=seed, progress=False, device="cpu",
                                                    **METHODS[method]).fit(None, image_features=X, y_true=yt)
                    nmi.append(loop.nmi(yt, jc.labels_))
                    ami.append(loop.ami(yt, jc.labels_))
                    pur.append(loop.purity(yt, jc.labels_))
                    kk.append(jc.n_clusters_)
                    rounds.append(len(jc.history_))
                row = {"features": fname, "k": k, "method": method, "NMI": f"{np.mean(nmi):.3f} ± {np.std(nmi):.3f}",
                       "AMI": f"{np.mean(ami):.3f} ± {np.std(ami):.3f}", "purity": f"{np.mean(pur):.3f}",
                       "k final": f"{np.mean(kk):.0f}", "rounds": f"{np.mean(rounds):.1f}",
                       "NMI per round (last seed)": " ".join(f"{v:.3f}" for v in jc.history_["nmi_true"]),
                       "s/fit": f"{(time.time() - t) / args.seeds:.1f}", "nmi_mean": float(np.mean(nmi))}
                rows.append(row)
                print(" | ".join(str(v) for key, v in row.items() if key != "nmi_mean"), flush=True)
    df = pd.DataFrame(rows)
    print(f"\nClusters vs modality x location (MedPix, {args.subset} images, mean ± sd over {args.seeds} seeds)")
    print(df.drop(columns="nmi_mean").to_string(index=False))
    base = df[df["method"] == "one-shot k-means"].set_index(["features", "k"])["nmi_mean"]
    print("\nNMI gain over one-shot k-means at the same k:")
    for r in df[df["method"] != "one-shot k-means"].itertuples():
        print(f"  {r.features:>10} k={r.k:<3} {r.method:<24} {r.nmi_mean - base[(r.features, r.k)]:+.3f}")
    print("\n| features | k | method | NMI | AMI | purity | k final | rounds | NMI per round |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['features']} | {r['k']} | {r['method']} | {r['NMI']} | {r['AMI']} | {r['purity']} | "
              f"{r['k final']} | {r['rounds']} | {r['NMI per round (last seed)']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
