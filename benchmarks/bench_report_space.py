"""Report-aligned image features: nearest neighbours and clusters in an ImageTextModel's joint space, on MedPix.

A frozen CNN knows ImageNet, not radiology. The captions of the corpus say what
each image shows (modality, sequence, body part, finding), and
``radmine.ImageTextModel`` learns to map images next to their captions. Its
image tower (``encode_image_features``) is therefore also an image encoder
trained on the corpus itself, with the reports as the only supervision. This
benchmark asks whether that space is better for the two image-only tasks than
the backbone's own features:

* leave-one-case-out 1-NN accuracy of modality (CT/MR) and body region
  (MedPix "Location Category"), cosine similarity, as in ``bench_embed.py``;
* NMI against modality x location category of ``JointClusterer(n_clusters=10)``
  (its defaults: k-means in the spectral embedding of the 20-nearest-neighbour
  graph, then RIM merging), of ``JointClusterer(n_clusters=10,
  n_neighbors=None)`` (k-means on the features, then RIM: what ``radmine mine``
  runs in the joint space), of the same with Wang et al.'s fine-tuning loop
  (``finetune=True``: adapter rounds on the cluster ids) and of one-shot
  k-means, mean over ``--seeds``, as in ``bench_cluster.py``.

Feature sets (rows):

* ``effnet``: EfficientNet-Lite0 pooled last map, ``ImageEmbedder()``'s
  defaults (what ``radmine mine`` clusters without a text model);
* ``sscd``: SSCD ResNet-50 copy-detection descriptors (``--npz sscd=PATH``,
  as written by ``bench_embed.py --save-features-dir``), the strongest frozen
  encoder measured;
* ``aligned effnet``: the joint-space image embedding of ``ImageTextModel()``
  (defaults: EfficientNet-Lite0 last+mid, frozen MiniLM text, 3 members);
* ``aligned sscd``: the same model on SSCD features
  (``backbone="sscd", image_features="last", image_preprocessing="content"``);
* ``aligned effnet + sscd``: both joint embeddings, each L2-normalised, side
  by side (the embedding an ``ImageTextEnsemble`` of the two scores with).

Protocol (no choice looks at dev):

* ``folds``: the 535 MedPix ``train`` cases in ``--folds`` case-level folds.
  For each fold the text models are fitted on the other folds' captions, and
  every metric is computed on the held-out fold's images alone (about 330
  images, 107 cases). Mean ± sd over folds. The defaults are chosen here.
* ``dev``: the models fitted on all ``train`` captions; metrics on the 197
  ``dev`` images alone (67 cases): the figures of issue 22's table.
* ``all``: the same models embed all 1,850 images; clusters of all of them
  (the dev images are unseen, the train images' captions were the training
  signal; modality and region labels are never used).

``--banks`` adds rows that smooth each query's joint embedding with a memory
of the fitted cases (1-NN only; the fitted cases' captions and images are the
bank, the query's own case never is):

* ``aligned X, caption bank``: the softmax-weighted mean (temperature 0.05)
  of the bank captions' joint embeddings, i.e. the image described by the
  captions it would retrieve;
* ``aligned X + caption bank``: that and the image's own embedding side by side;
* ``aligned X + image bank``: the image's embedding plus the mean of its 10
  nearest bank images (query expansion).

Joint embeddings (and, for ``--banks``, every caption's) are cached in
``--cache`` (one ``.npz`` per fold and model), so the metrics can be recomputed
without refitting.

Usage::

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/bench_report_space.py \\
        --npz sscd=benchmarks/results/features/medpix_sscd_content_crop_pad_percentile_224_px.npz
    .venv/bin/python benchmarks/bench_report_space.py --no-sscd          # EfficientNet only
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import radmine
from radmine import _paths
from radmine.cluster import loop

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_embed import one_nn_accuracy  # noqa: E402
from bench_img2text import image_features  # noqa: E402
from bench_img2text_features import case_folds, load_npz  # noqa: E402

#: the text models whose image towers give the aligned rows: name -> (feature set, ImageTextModel params)
MODELS = {
    "effnet": ("effnet_pair", {}),
    "sscd": ("sscd", {"backbone": "sscd", "image_features": "last", "image_preprocessing": "content"}),
}


#: clusterings compared (JointClusterer parameters); ``radmine mine`` uses "k-means + RIM" in the joint space
CLUSTERINGS = {
    "JointClusterer()": {},
    "k-means + RIM": dict(n_neighbors=None),
    "one-shot k-means": dict(n_neighbors=None, merge=False),
    "k-means + RIM + loop": dict(n_neighbors=None, finetune=True),
}


def unit(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def fit_aligned(corpus, fit_split: str, feats: dict, models: list, seed: int, cache: Path, tag: str,
                text_encoder, with_captions: bool = False) -> tuple[dict, dict]:
    """Joint-space embeddings of every image of ``corpus`` (and of its caption) from models fitted on ``fit_split``.

    Returns ``({model: (n_images, dim)}, {model: (n_images, dim)})``; the second
    dict (caption embeddings, row ``i`` for image ``i``'s caption) is empty
    unless ``with_captions``.
    """
    out, captions = {}, {}
    ids = corpus.images["image_id"].to_numpy(dtype=str)
    for i, name in enumerate(models):
        fset, params = MODELS[name]
        path = cache / f"aligned_{tag}_{name}_seed{seed}.npz"
        if path.exists():
            d = np.load(path, allow_pickle=False)
            if list(d["image_id"]) == list(ids) and (not with_captions or "T" in d.files):
                out[name] = d["Z"]
                if with_captions:
                    captions[name] = d["T"]
                continue
        t0 = time.perf_counter()
        model = radmine.ImageTextModel(random_state=seed + 100 * i, progress=False, train_split=fit_split,
                                       text_encoder=text_encoder, **params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(corpus, image_features=feats[fset])
        Z = model.encode_image_features(feats[fset].loc[ids]).astype(np.float32)
        T = model.encode_texts(corpus.images["caption"].fillna("").astype(str).tolist()).astype(np.float32)
        np.savez(path, Z=Z, T=T, image_id=ids)
        print(f"  fitted {name} on {tag} ({time.perf_counter() - t0:.0f}s)", flush=True)
        out[name] = Z
        if with_captions:
            captions[name] = T
    return out, captions


def bank_rows(aligned: dict, captions: dict, query: np.ndarray, bank: np.ndarray, tau: float = 0.05,
              k: int = 10) -> dict:
    """Joint embeddings of the ``query`` images smoothed with the ``bank`` images' captions or neighbours.

    ``query`` and ``bank`` are boolean masks over the rows of ``aligned[m]``;
    returns ``{row name: (n_query, d)}``.
    """
    rows = {}
    for name, Z in aligned.items():
        Zq, Zb, Tb = unit(Z[query]), unit(Z[bank]), unit(captions[name][bank])
        S = Zq @ Tb.T / tau
        P = np.exp(S - S.max(axis=1, keepdims=True))
        text = unit((P / P.sum(axis=1, keepdims=True)) @ Tb)
        near = np.argsort(-(Zq @ Zb.T), axis=1)[:, :k]
        rows[f"aligned {name}, caption bank"] = text
        rows[f"aligned {name} + caption bank"] = np.hstack([Zq, text])
        rows[f"aligned {name} + image bank"] = unit(Zq + Zb[near].mean(axis=1))
    return rows


def metrics(X: np.ndarray, labels: pd.DataFrame, seeds: int, k: int, clusters: bool = True) -> dict:
    """1-NN modality / region (leave one case out) and, with ``clusters``, NMI of each of CLUSTERINGS."""
    row = {}
    for task in ("modality", "location_category"):
        row[f"1-NN {task}"] = one_nn_accuracy(X, labels[task].astype(str).to_numpy(), labels["report_id"].to_numpy())
    if not clusters:
        return row
    y = (labels["modality"].astype(str) + " x " + labels["location_category"].astype(str)).to_numpy()
    for method, kw in CLUSTERINGS.items():
        vals = []
        for s in range(seeds):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                jc = radmine.JointClusterer(n_clusters=k, random_state=s, progress=False, device="cpu", **kw)
                jc.fit(None, image_features=X)
            vals.append(loop.nmi(y, jc.labels_))
        row[f"NMI {method}"] = float(np.mean(vals))
    return row


def feature_rows(raw: dict, aligned: dict) -> dict:
    rows = dict(raw)
    for name, Z in aligned.items():
        rows[f"aligned {name}"] = Z
    if {"effnet", "sscd"} <= set(aligned):
        rows["aligned effnet + sscd"] = np.hstack([unit(aligned["effnet"]), unit(aligned["sscd"])])
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--npz", nargs="*", default=[], help="NAME=PATH of precomputed features (X, image_id): sscd=...")
    ap.add_argument("--no-sscd", action="store_true", help="EfficientNet rows only")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--fold-seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=3, help="clustering seeds")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--stages", nargs="+", default=["folds", "dev", "all"], choices=["folds", "dev", "all"])
    ap.add_argument("--cache", default=str(HERE / "results" / "report_space"))
    ap.add_argument("--banks", action="store_true", help="add the caption-bank and image-bank rows (1-NN only)")
    args = ap.parse_args(argv)

    folder = _paths.medpix_dir()
    if folder is None:
        raise SystemExit("MedPix 2.0 not found: set $RADMINE_CORPORA or put it in ../shared/corpora")
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    corpus = radmine.read_medpix(folder, progress=False, image_sizes=False)
    images = corpus.images.assign(split=corpus.images["report_id"].map(corpus.reports.set_index("report_id")["split"]))
    ids = images["image_id"].astype(str).tolist()

    models = ["effnet"] if args.no_sscd else ["effnet", "sscd"]
    feats = {"effnet_pair": image_features(corpus, features="last+mid")}
    emb = radmine.ImageEmbedder(cache_dir=HERE / "results" / "cache", progress=False)
    raw = {"effnet": emb.fit().transform(corpus).astype(np.float32)}
    if "sscd" in models:
        spec = dict(s.split("=", 1) for s in args.npz)
        if "sscd" in spec:
            feats["sscd"] = load_npz(Path(spec["sscd"]), ids)
        else:
            feats["sscd"] = image_features(corpus, backbone="sscd", preprocessing="content")
        raw["sscd"] = feats["sscd"].loc[ids].to_numpy(np.float32)

    from radmine.img2text.text_encoders import TransformersTextEncoder

    minilm = TransformersTextEncoder().fit()  # frozen, shared: it remembers the captions it has encoded
    results = []

    if "folds" in args.stages:
        train_ids = corpus.reports.loc[corpus.reports["split"] == "train", "report_id"]
        sub = corpus.subset(train_ids)
        fold_of = dict(zip(sub.reports["report_id"], case_folds(sub.reports["report_id"].to_numpy(), args.folds,
                                                                args.fold_seed)))
        sub_images = images.set_index("image_id").loc[sub.images["image_id"]].reset_index()
        per_fold = []
        for f in range(args.folds):
            c = sub.copy()
            c.reports = c.reports.assign(split=np.where(c.reports["report_id"].map(fold_of) == f, "held", "fit"))
            aligned, captions = fit_aligned(c, "fit", feats, models, 0, cache, f"fold{f}", minilm, args.banks)
            held = (sub_images["report_id"].map(fold_of) == f).to_numpy()
            pos = pd.Series(np.arange(len(ids)), index=ids)[sub_images["image_id"]].to_numpy()
            rows = feature_rows({k: v[pos] for k, v in raw.items()}, aligned)
            for name, X in rows.items():
                per_fold.append({"stage": "folds", "fold": f, "features": name,
                                 **metrics(X[held], sub_images[held], args.seeds, args.k)})
            if args.banks:
                for name, X in bank_rows(aligned, captions, held, ~held).items():
                    per_fold.append({"stage": "folds", "fold": f, "features": name,
                                     **metrics(X, sub_images[held], args.seeds, args.k, clusters=False)})
            print(pd.DataFrame([r for r in per_fold if r["fold"] == f]).round(3).to_string(index=False), flush=True)
        results += per_fold

    if {"dev", "all"} & set(args.stages):
        aligned, captions = fit_aligned(corpus, "train", feats, models, 0, cache, "train", minilm, args.banks)
        rows = feature_rows(raw, aligned)
        for stage in [s for s in ("dev", "all") if s in args.stages]:
            mask = (images["split"] == "dev").to_numpy() if stage == "dev" else np.ones(len(images), bool)
            for name, X in rows.items():
                results.append({"stage": stage, "fold": -1, "features": name,
                                **metrics(X[mask], images[mask], args.seeds, args.k)})
        if args.banks and "dev" in args.stages:
            dev = (images["split"] == "dev").to_numpy()
            train = (images["split"] == "train").to_numpy()
            for name, X in bank_rows(aligned, captions, dev, train).items():
                results.append({"stage": "dev", "fold": -1, "features": name,
                                **metrics(X, images[dev], args.seeds, args.k, clusters=False)})

    df = pd.DataFrame(results)
    cols = [c for c in df.columns if c.startswith(("1-NN", "NMI"))]
    print(f"\nMedPix 2.0, k={args.k}, clustering seeds 0..{args.seeds - 1}; 1-NN leaves the query's case out")
    print("\n| stage | features | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for (stage, name), g in df.groupby(["stage", "features"], sort=False):
        cells = []
        for c in cols:
            v = g[c].dropna().to_numpy()
            if not len(v):
                cells.append("")
                continue
            cells.append(f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if len(v) > 1 else f"{v.mean():.3f}")
        print(f"| {stage} | {name} | " + " | ".join(cells) + " |")
    if "folds" in args.stages:
        base = df[(df["stage"] == "folds")].pivot(index="fold", columns="features")
        print("\nPaired differences on the folds (mean, folds won):")
        for name in df.loc[df["stage"] == "folds", "features"].unique():
            # a bank row is compared with the joint embedding it smooths
            refs = [f"aligned {m}" for m in MODELS if name.startswith(f"aligned {m}") and "bank" in name]
            for ref in refs or ("effnet", "sscd"):
                if ref == name or ref not in df["features"].values:
                    continue
                for c in cols:
                    d = (base[c][name] - base[c][ref]).dropna()
                    if not len(d):
                        continue
                    print(f"  {name} - {ref}: {c} {d.mean():+.3f} ({int((d > 0).sum())}/{len(d)})")
    out = cache / "results.csv"
    df.to_csv(out, index=False)
    print(f"\nrows written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
