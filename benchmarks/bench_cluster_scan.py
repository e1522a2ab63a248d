"""Benchmark: a SCAN-style clustering head on frozen image features, against ``JointClusterer()``.

SCAN (Van Gansbeke et al., ECCV 2020) on frozen features: each image's ``--nn`` nearest
neighbours are mined by cosine similarity in feature space; a small head (linear, or
``--hidden`` > 0 for one hidden layer) with a softmax over k clusters is trained with

    loss = mean_i mean_{j in N(i) + i} -log <p_i, p_j>  -  w * H(mean_i p_i)

(``w = --entropy-weight``), full-batch Adam, deterministic from the seed. With
``--self-label`` the head is then trained with cross-entropy on its own argmax for the
samples whose top probability exceeds ``--threshold`` (inputs perturbed by dropout).
Several heads (``--heads``) are trained at once and the one with the lowest SCAN loss
is kept, as in the paper.

Feature sets: ``.npz`` files (arrays ``X`` and ``image_id``, e.g. written by
``bench_embed.py --save-features-dir``) given with ``--npz name=path``;
``--concat a+b`` adds the concatenation of the L2-normalised sets ``a`` and ``b``.
NMI / AMI / purity against modality x location category, mean ± sd over ``--seeds``.

Usage::

    .venv/bin/python benchmarks/bench_cluster_scan.py --subset train \
        --npz sscd=benchmarks/results/features/medpix_sscd_content_crop_pad_percentile_224_px.npz effnet=FILE.npz --concat sscd+effnet
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import normalize

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import radmine  # noqa: E402
from radmine import _paths  # noqa: E402
from radmine.cluster import loop  # noqa: E402

from bench_cluster import feature_sets, truths  # noqa: E402


def scan_fit(X, k, seed, n_nn=10, hidden=0, entropy_weight=3.0, epochs=300, lr=1e-3, heads=5,
             self_label=False, threshold=0.99, sl_epochs=100):
    """Labels (n,) of the best of ``heads`` SCAN heads trained on ``X`` (n, d)."""
    torch.manual_seed(seed)
    Z = normalize(X - X.mean(0))
    nn_idx = NearestNeighbors(n_neighbors=n_nn + 1, metric="cosine").fit(Z).kneighbors(Z, return_distance=False)
    x = torch.from_numpy(Z.astype(np.float32))
    nb = torch.from_numpy(nn_idx)                      # (n, n_nn + 1), first column is the image itself
    d = x.shape[1]

    def make():
        if hidden:
            return torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.BatchNorm1d(hidden),
                                       torch.nn.ReLU(), torch.nn.Linear(hidden, k))
        return torch.nn.Linear(d, k)

    models = torch.nn.ModuleList([make() for _ in range(heads)])
    opt = torch.optim.Adam(models.parameters(), lr=lr, weight_decay=1e-4)

    def scan_losses(train):
        models.train(train)
        out = []
        for m in models:
            p = torch.softmax(m(x), 1)                 # (n, k)
            dots = (p[:, None, :] * p[nb]).sum(-1)      # (n, n_nn + 1)
            cons = -torch.log(dots.clamp_min(1e-8)).mean()
            pm = p.mean(0)
            ent = -(pm * torch.log(pm.clamp_min(1e-8))).sum()
            out.append(cons - entropy_weight * ent)
        return torch.stack(out)

    for _ in range(epochs):
        opt.zero_grad()
        scan_losses(True).sum().backward()
        opt.step()
    with torch.no_grad():
        best = models[int(scan_losses(False).argmin())]
    if self_label:
        opt = torch.optim.Adam(best.parameters(), lr=lr, weight_decay=1e-4)
        drop = torch.nn.Dropout(0.25)
        for _ in range(sl_epochs):
            best.eval()
            with torch.no_grad():
                p = torch.softmax(best(x), 1)
            conf, tgt = p.max(1)
            mask = conf > threshold
            if mask.sum() == 0:
                break
            best.train()
            counts = torch.bincount(tgt[mask], minlength=k).float()
            w = torch.where(counts > 0, counts.sum() / (k * counts.clamp_min(1)), torch.zeros_like(counts))
            opt.zero_grad()
            torch.nn.functional.cross_entropy(best(drop(x))[mask], tgt[mask], weight=w).backward()
            opt.step()
    best.eval()
    with torch.no_grad():
        return best(x).argmax(1).numpy()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subset", choices=["all", "train", "dev"], default="train")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--npz", nargs="*", default=[], help="NAME=PATH of precomputed features (X, image_id)")
    ap.add_argument("--concat", nargs="*", default=[], help="A+B: concatenation of L2-normalised sets A and B")
    ap.add_argument("--nn", type=int, nargs="+", default=[10], help="mined neighbours (one row per value)")
    ap.add_argument("--entropy-weight", type=float, nargs="+", default=[3.0])
    ap.add_argument("--hidden", type=int, nargs="+", default=[0], help="0: linear head")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--heads", type=int, default=5)
    ap.add_argument("--self-label", action="store_true", help="also rows with the self-labelling step")
    ap.add_argument("--threshold", type=float, default=0.99)
    ap.add_argument("--no-default", action="store_true", help="skip the JointClusterer() rows")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    folder = _paths.medpix_dir()
    if folder is None:
        raise SystemExit("MedPix 2.0 not found: set $RADMINE_CORPORA or put it in ../shared/corpora")
    corpus = radmine.read_medpix(folder, progress=False)
    y, split = truths(corpus)
    feats = feature_sets(corpus, [], args.npz, 64)
    for spec in args.concat:
        a, b = spec.split("+")
        feats[spec] = np.hstack([normalize(feats[a]), normalize(feats[b])]).astype(np.float32)
    keep = np.ones(len(y), bool) if args.subset == "all" else split == args.subset
    print(f"MedPix 2.0: {int(keep.sum())} images ({args.subset}); k={args.k}; seeds 0..{args.seeds - 1}")

    def report(fname, method, fit):
        nmi, ami, pur, t = [], [], [], time.time()
        for seed in range(args.seeds):
            lab = fit(seed)
            nmi.append(loop.nmi(yt, lab))
            ami.append(loop.ami(yt, lab))
            pur.append(loop.purity(yt, lab))
        print(f"| {fname} | {method} | {np.mean(nmi):.3f} ± {np.std(nmi):.3f} | {np.mean(ami):.3f} ± {np.std(ami):.3f} "
              f"| {np.mean(pur):.3f} | {(time.time() - t) / args.seeds:.1f} |", flush=True)

    print("| features | method | NMI | AMI | purity | s/fit |\n|---|---|---|---|---|---|")
    for fname, F in feats.items():
        ok = keep & np.isfinite(F).all(1)
        X, yt = F[ok], y[ok]
        if not args.no_default:
            def default(seed):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return radmine.JointClusterer(n_clusters=args.k, random_state=seed, progress=False,
                                                  device="cpu").fit(None, image_features=X).labels_
            report(fname, "JointClusterer()", default)
        for n_nn in args.nn:
            for w in args.entropy_weight:
                for hidden in args.hidden:
                    for sl in ([False, True] if args.self_label else [False]):
                        name = (f"SCAN nn={n_nn} w={w:g} {'mlp' + str(hidden) if hidden else 'linear'}"
                                + (" + self-label" if sl else ""))
                        report(fname, name, lambda seed: scan_fit(
                            X, args.k, seed, n_nn=n_nn, hidden=hidden, entropy_weight=w, epochs=args.epochs,
                            heads=args.heads, self_label=sl, threshold=args.threshold))


if __name__ == "__main__":
    main()
