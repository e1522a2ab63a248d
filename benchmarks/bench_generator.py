"""CNN + GRU annotation generator (Shin et al., CVPR 2016) on MedPix: BLEU-1..4 vs two baselines.

Train on the MedPix ``train`` split, score on ``dev`` (cases never split).
Sequences: :func:`radmine.img2text.generator.annotation_sequences` with the
captions recipe (``<modality> <plane> <region> <caption findings>``, ct_mr
weak labels). Rows, all in one run on the same features:

* most frequent training sequence (the same answer for every image);
* nearest-neighbour transfer: the sequence of the nearest training image by
  cosine similarity of the CNN features;
* the generator, greedy and with beam search (mean over ``--n-seeds`` fits;
  time = fit + decoding of one fit).

Image features (EfficientNet-Lite0, ImageNet) come from the resumable cache
in ``benchmarks/results/cache`` shared with ``bench_img2text.py``.

Usage::

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice .venv/bin/python benchmarks/bench_generator.py [--quick] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

import radmine
from radmine import _paths
from radmine.img2text.generator import AnnotationGenerator, annotation_sequences
from radmine.img2text.metrics import bleu_scores

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CACHE = RESULTS / "cache"


def image_features(corpus, backbone: str = "efficientnet_lite0") -> pd.DataFrame:
    """Backbone features of every image (cache keyed by absolute path, as in bench_img2text.py)."""
    emb = radmine.ImageEmbedder(backbone, cache_dir=CACHE / backbone, progress=True)
    paths = [str(Path(p).resolve()) for p in corpus.image_paths()]
    X = emb.transform(paths)
    keys = ("backbone", "dim", "image_size", "intensity", "crop", "features", "resize")
    print("ImageEmbedder defaults: " + ", ".join(f"{k}={emb.settings_[k]}" for k in keys if k in emb.settings_))
    return pd.DataFrame(X, index=pd.Index(corpus.images["image_id"].tolist(), name="image_id"))


def split_of(corpus, name: str):
    """The reports (and their images) of one published split."""
    return corpus.subset(corpus.reports.loc[corpus.reports["split"] == name, "report_id"])


def nearest_neighbour(train_F: np.ndarray, train_seqs: list, dev_F: np.ndarray) -> list:
    """Sequence of the nearest training image (cosine similarity of the features)."""
    a = train_F / np.linalg.norm(train_F, axis=1, keepdims=True)
    b = dev_F / np.linalg.norm(dev_F, axis=1, keepdims=True)
    return [train_seqs[j] for j in np.argmax(b @ a.T, axis=1)]


def row(name: str, scores: dict, seconds: float) -> str:
    b = [scores[f"BLEU-{n}"] for n in range(1, 5)]
    return f"| {name:<40} | " + " | ".join(f"{v:.3f}" for v in b) + f" | {seconds:>6.1f} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer epochs (a short run)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--n-seeds", type=int, default=3, help="generator fits (seed, seed+1, ...); 1 with --quick")
    args = ap.parse_args()
    t_all = time.perf_counter()

    t0 = time.perf_counter()
    corpus = radmine.read_medpix(_paths.medpix_dir(), progress=False)
    F = image_features(corpus)
    seqs = annotation_sequences(corpus, source="captions")
    t_prep = time.perf_counter() - t0
    train, dev = split_of(corpus, "train"), split_of(corpus, "dev")
    tr_seq = seqs[seqs["image_id"].isin(set(train.images["image_id"]))].reset_index(drop=True)
    dv_seq = seqs[seqs["image_id"].isin(set(dev.images["image_id"]))].reset_index(drop=True)
    refs = [[s.split()] for s in dv_seq["sequence"]]
    tr_F = F.loc[tr_seq["image_id"]].to_numpy(np.float32)
    dv_F = F.loc[dv_seq["image_id"]].to_numpy(np.float32)
    print(f"MedPix: {len(tr_seq)} train images ({train.reports.shape[0]} cases), {len(dv_seq)} dev images "
          f"({dev.reports.shape[0]} cases); {tr_seq['sequence'].nunique()} distinct training sequences; "
          f"corpus + cached features + sequences {t_prep:.1f}s\n")

    results: dict[str, dict] = {}
    lines = []
    t0 = time.perf_counter()
    top = Counter(tr_seq["sequence"]).most_common(1)[0][0]
    results["most frequent training sequence"] = bleu_scores([top.split()] * len(dv_seq), refs)
    lines.append(row("most frequent training sequence", results["most frequent training sequence"],
                     time.perf_counter() - t0))
    t0 = time.perf_counter()
    nn_hyp = nearest_neighbour(tr_F, tr_seq["sequence"].tolist(), dv_F)
    results["nearest-neighbour transfer (CNN cosine)"] = bleu_scores([s.split() for s in nn_hyp], refs)
    lines.append(row("nearest-neighbour transfer (CNN cosine)", results["nearest-neighbour transfer (CNN cosine)"],
                     time.perf_counter() - t0))

    epochs = args.epochs or (10 if args.quick else 40)
    seeds = [args.seed + i for i in range(1 if args.quick else args.n_seeds)]
    per_seed: dict[str, list] = {}
    fits = []
    for seed in seeds:
        gen = AnnotationGenerator(epochs=epochs, random_state=seed, progress=False)
        t0 = time.perf_counter()
        gen.fit(train, tr_seq, image_features=F)
        t_fit = time.perf_counter() - t0
        fits.append({"seed": seed, "epochs_run": int(gen.history_["epoch"].max()), "best_epoch": gen.best_epoch_,
                     "vocabulary": len(gen.vocabulary_), "fit_seconds": t_fit})
        for beam in (1, 3):
            t0 = time.perf_counter()
            hyp = gen.generate(image_features=dv_F, beam_size=beam)
            name = f"CNN + GRU, {'greedy' if beam == 1 else f'beam {beam}'}"
            per_seed.setdefault(name, []).append((bleu_scores(hyp, refs), t_fit + time.perf_counter() - t0))
    for name, runs in per_seed.items():
        results[name] = {k: float(np.mean([r[0][k] for r in runs])) for k in runs[0][0]}
        results[name + " (sd over seeds)"] = {k: float(np.std([r[0][k] for r in runs])) for k in runs[0][0]}
        label = name + (f" ({len(runs)} seeds)" if len(runs) > 1 else "")
        lines.append(row(label, results[name], float(np.mean([r[1] for r in runs]))))
    results["generator_fits"] = fits

    print(f"| {'method':<40} | BLEU-1 | BLEU-2 | BLEU-3 | BLEU-4 | time s |")
    print(f"|{'-' * 42}|--------|--------|--------|--------|--------|")
    print("\n".join(lines))
    print()
    for gname in ("CNN + GRU, greedy", "CNN + GRU, beam 3"):
        g = results[gname]
        for base in ("most frequent training sequence", "nearest-neighbour transfer (CNN cosine)"):
            ratio = "  ".join(f"BLEU-{n} " + (f"x{g[f'BLEU-{n}'] / results[base][f'BLEU-{n}']:.2f}"
                                                if results[base][f"BLEU-{n}"] > 0 else "(baseline 0)")
                              for n in range(1, 5))
            print(f"{gname} vs {base}: {ratio}")
        if len(seeds) > 1:
            sd = results[gname + " (sd over seeds)"]
            print(f"{gname} sd over seeds: " + "  ".join(f"{k} {v:.3f}" for k, v in sd.items()))
    print()
    for f in fits:
        print(f"generator seed {f['seed']}: {f['epochs_run']} epochs (best {f['best_epoch']}), "
              f"vocabulary {f['vocabulary']} tokens, fit {f['fit_seconds']:.1f}s")
    total = time.perf_counter() - t_all
    print(f"wall time {total:.1f}s")
    results["wall_seconds"] = total
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / ("generator_quick.json" if args.quick else "generator.json")
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
