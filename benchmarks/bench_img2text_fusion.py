"""Late score fusion of ``radmine.ImageTextModel`` with TF-IDF caption transfer, image -> caption on MedPix.

Per held-out part (the 5 case-level train folds of ``bench_img2text_features.py``, seed 0, one caption
per image; and dev, fitted on all train cases) three image -> caption score matrices are computed once
and cached as ``.npz`` under ``--cache-dir``:

* ``effnet``: cosine of ``ImageTextModel()`` (EfficientNet-Lite0 last + mid features);
* ``sscd``: cosine of ``ImageTextModel(image_features="last")`` on SSCD ResNet-50 features
  (``benchmarks/results/features/medpix_sscd_224.npz`` when present, else computed); ``effnet+sscd`` is their mean, the ``ImageTextEnsemble``;
* ``tfidf``: TF-IDF caption transfer: the query is the mean TF-IDF vector of the captions of the 10
  nearest fitting images (EfficientNet-Lite0 last-map cosine), scored by cosine against the candidates.

Fusion: ``z(S_model) + w * z(S_tfidf)`` with ``z`` the per-query standardisation over the candidate
captions, or reciprocal rank fusion ``1 / (60 + rank_model) + w / (60 + rank_tfidf)``. ``w`` is chosen
leave-one-fold-out on the train folds (the value with the best mean R@10 on the other four folds, from
``--weights``), scored on the left-out fold; the dev row uses ``w`` chosen on all five folds. R@10 and
median rank as ``radmine.recall_at_k`` (ties against the query) over ``--reps`` random 197-image
candidate sets per fold; dev scores all dev images.

Usage (``OMP_NUM_THREADS=1 nice .venv/bin/python``)::

    benchmarks/bench_img2text_fusion.py --parts 0,1,2 & benchmarks/bench_img2text_fusion.py --parts 3,4,dev
    benchmarks/bench_img2text_fusion.py --table-only   # fuse the cached matrices: the table
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import radmine
from radmine import _paths

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_img2text import tfidf_transfer  # noqa: E402
from bench_img2text_features import case_folds, feature_table  # noqa: E402

WEIGHTS = "0,0.02,0.05,0.075,0.1,0.15,0.2,0.25,0.3,0.4,0.5,0.6,0.8,1"


def part_matrices(corpus, part, folds, pairs, cache: dict, minilm) -> dict:
    """Score matrices (n_images, n_texts) and ``owner`` (n_texts,) of one held-out part."""
    img_ids = pairs["image_id"].tolist()
    if part == "dev":
        rep_split = corpus.reports.set_index("report_id")["split"]
        c = corpus
        fit_split = "train"
        from radmine.img2text.model import image_text_pairs

        dev = corpus.subset(corpus.reports.loc[corpus.reports["split"] == "dev", "report_id"])
        hp = image_text_pairs(dev, "captions")
        hp = hp[hp["text"].astype(str).str.len() > 0]
        held_ids = list(dict.fromkeys(hp["image_id"]))
        held_texts = hp["text"].astype(str).tolist()
        owner = hp["image_id"].map({i: r for r, i in enumerate(held_ids)}).to_numpy()
        im = corpus.images.assign(split=corpus.images["report_id"].map(rep_split))
        fit_rows = im[im["split"] == "train"]
        fit_ids, fit_caps = fit_rows["image_id"].tolist(), fit_rows["caption"].fillna("").astype(str).tolist()
    else:
        f = int(part)
        train_ids = corpus.reports.loc[corpus.reports["split"] == "train", "report_id"]
        c = corpus.subset(train_ids)
        fold_of_case = dict(zip(pairs["group"].astype(str), folds))
        c.reports = c.reports.assign(split=np.where(c.reports["report_id"].astype(str).map(fold_of_case) == f,
                                                    "held", "fit"))
        fit_split = "fit"
        a, b = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        held_ids = [img_ids[i] for i in b]
        held_texts = [pairs["text"].iloc[i] for i in b]
        owner = np.arange(len(b))
        fit_ids, fit_caps = [img_ids[i] for i in a], [pairs["text"].iloc[i] for i in a]
    out = {"owner": owner}
    F = cache["effnet_last"]
    q, t = tfidf_transfer(fit_caps, F.loc[fit_ids].to_numpy(), held_texts, F.loc[held_ids].to_numpy())
    out["tfidf"] = q @ t.T
    for name, params in (("effnet", {}), ("sscd", {"image_features": "last", "random_state": 100})):
        t0 = time.perf_counter()
        p = {"random_state": 0, "progress": False, "text_encoder": minilm, **params, "train_split": fit_split}
        m = radmine.ImageTextModel(**p).fit(c, image_features=cache[name])
        out[name] = m.encode_image_features(cache[name].loc[held_ids].to_numpy()) @ m.encode_texts(held_texts).T
        print(f"  part {part} {name}: fitted in {time.perf_counter() - t0:.0f}s", flush=True)
    return out


def ranks(S: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """Image -> text rank of each image's best caption (ties count against the query), as ``recall_at_k``."""
    pos = owner[None, :] == np.arange(S.shape[0])[:, None]
    best = np.where(pos, S, -np.inf).max(1)
    return 1 + ((S >= best[:, None]) & ~pos).sum(1)


def zrows(S):
    return (S - S.mean(1, keepdims=True)) / (S.std(1, keepdims=True) + 1e-12)


def fuse(Sm, St, w, how):
    if how == "z":
        return zrows(Sm) + w * zrows(St)
    rm = (-Sm).argsort(1).argsort(1) + 1
    rt = (-St).argsort(1).argsort(1) + 1
    return 1.0 / (60 + rm) + w / (60 + rt)


def part_score(M: dict, model: str, w: float, how: str, reps: int, sample: bool):
    """Mean R@10 and median rank of ``z(model) + w z(tfidf)`` (or RRF) on one part."""
    Sm = M["effnet"] + M["sscd"] if model == "effnet+sscd" else M[model]
    owner = M["owner"]
    n = Sm.shape[0]
    subsets = [np.random.default_rng(r).choice(n, size=min(197, n), replace=False) for r in range(reps)] \
        if sample else [np.arange(n)]
    r10, med = [], []
    for idx in subsets:
        keep = np.isin(owner, idx)
        remap = {i: j for j, i in enumerate(idx)}
        own = np.array([remap[o] for o in owner[keep]])
        rk = ranks(fuse(Sm[np.ix_(idx, keep)], M["tfidf"][np.ix_(idx, keep)], w, how), own)
        r10.append(float((rk <= 10).mean()))
        med.append(float(np.median(rk)))
    return float(np.mean(r10)), float(np.mean(med))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="0,1,2,3,4,dev", help="held-out parts to fit and cache")
    ap.add_argument("--cache-dir", type=Path, default=HERE / "results" / "img2text_fusion")
    ap.add_argument("--sscd-dir", type=Path, default=HERE / "results" / "features")
    ap.add_argument("--weights", default=WEIGHTS)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--table-only", action="store_true", help="only fuse the cached matrices")
    args = ap.parse_args(argv)
    folder = _paths.medpix_dir()
    if folder is None:
        print("MedPix 2.0 not found; nothing to do.")
        return 0
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    parts = args.parts.split(",")
    todo = [p for p in parts if not (args.cache_dir / f"part_{p}.npz").exists()]
    if todo and not args.table_only:
        from radmine.img2text.model import image_text_pairs
        from radmine.img2text.text_encoders import TransformersTextEncoder

        corpus = radmine.read_medpix(folder, progress=False, image_sizes=False)
        cache: dict = {}
        for name in ("effnet", "sscd", "effnet_last"):
            feature_table(name, corpus, args.sscd_dir, cache)
        train = corpus.subset(corpus.reports.loc[corpus.reports["split"] == "train", "report_id"])
        pairs = image_text_pairs(train, "captions").drop_duplicates("image_id").reset_index(drop=True)
        folds = case_folds(pairs["group"].astype(str).to_numpy(), 5, 0)
        minilm = TransformersTextEncoder().fit()
        for p in todo:
            M = part_matrices(corpus, p, folds, pairs, cache, minilm)
            np.savez(args.cache_dir / f"part_{p}.npz", **M)
    if not all((args.cache_dir / f"part_{p}.npz").exists() for p in ["0", "1", "2", "3", "4", "dev"]):
        return 0
    P = {p: dict(np.load(args.cache_dir / f"part_{p}.npz")) for p in ["0", "1", "2", "3", "4", "dev"]}
    ws = [float(x) for x in args.weights.split(",")]
    print("\n| scores | folds i2t R@10 (mean ± sd) | per fold | folds median rank | w per fold | "
          "dev i2t R@10 | dev median rank | dev w |\n|---|---|---|---|---|---|---|---|")
    base = {}
    for model in ("effnet", "effnet+sscd"):
        for how in ("none", "z", "rrf"):
            grid = np.array([[part_score(P[str(f)], model, w if how != "none" else 0.0,
                                         "z" if how == "none" else how, args.reps, True)
                              for w in (ws if how != "none" else [0.0])] for f in range(5)])  # (5, n_w, 2)
            picked, wf = [], []
            for f in range(5):
                other = [g for g in range(5) if g != f]
                j = int(grid[other, :, 0].mean(0).argmax())
                picked.append(grid[f, j])
                wf.append(ws[j] if how != "none" else 0.0)
            v = np.array(picked)
            jd = int(grid[:, :, 0].mean(0).argmax())
            wd = ws[jd] if how != "none" else 0.0
            d = part_score(P["dev"], model, wd, "z" if how == "none" else how, 1, False)
            label = {"none": model, "z": f"z({model}) + w z(tfidf)", "rrf": f"RRF({model}, w tfidf)"}[how]
            if how == "none":
                base[model] = v[:, 0]
            diff = v[:, 0] - base[model]
            print(f"| {label} | {v[:, 0].mean():.3f} ± {v[:, 0].std(ddof=1):.3f} | "
                  f"{' '.join(f'{x:.3f}' for x in v[:, 0])} | {v[:, 1].mean():.1f} | "
                  f"{' '.join(f'{x:g}' for x in wf)} | {d[0]:.3f} | {d[1]:.1f} | {wd:g} |"
                  + (f" paired vs {model}: {diff.mean():+.3f}, better on {(diff > 0).sum()}/5" if how != "none" else ""),
                  flush=True)
    for f in ["tfidf"]:
        v = np.array([part_score({**P[str(g)], "x": P[str(g)]["tfidf"]}, "x", 0.0, "z", args.reps, True)
                      for g in range(5)])
        d = part_score({**P["dev"], "x": P["dev"]["tfidf"]}, "x", 0.0, "z", 1, False)
        print(f"| TF-IDF caption transfer (10-NN) alone | {v[:, 0].mean():.3f} ± {v[:, 0].std(ddof=1):.3f} | "
              f"{' '.join(f'{x:.3f}' for x in v[:, 0])} | {v[:, 1].mean():.1f} | | {d[0]:.3f} | {d[1]:.1f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
