"""CUDA checks of the image pipelines on MedPix (run on a machine with a GPU).

Sections (each prints a table; one failing section does not stop the others):

1. ``equal``      -- ImageEmbedder on CUDA vs CPU on the same images: max |diff|
                     and min cosine similarity of the embeddings.
2. ``throughput`` -- images/s: radmine end-to-end on CUDA (decode workers +
                     batched forward) vs the bare forward pass on pre-made
                     tensors already on the GPU, same batch size.
3. ``topics``     -- Shin et al.'s CNN on document-topic labels: a linear head
                     on frozen features vs the whole backbone fine-tuned
                     (``TopicImageClassifier(finetune=True)``), dev top-1/top-5.
4. ``generator``  -- ``AnnotationGenerator`` (CNN + GRU) fitted on CUDA, dev BLEU.

Topic labels come from ``--labels`` (``image_id, topic`` parquet, made with a
``TopicModel`` fitted on the MedPix train reports) so that the GPU machine
needs no topic-model engine.

Usage::

    python benchmarks/bench_cuda.py --labels labels.parquet --json out.json
    python benchmarks/bench_cuda.py --device cpu --quick          # a dry run on a CPU
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import traceback

import numpy as np
import pandas as pd

import radmine
from radmine import _paths

SECTIONS = ("equal", "throughput", "topics", "generator")


def _table(rows: list[dict], title: str) -> None:
    print(f"\n{title}\n")
    if not rows:
        print("(no rows)")
        return
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")


def section_equal(corpus, device: str, n: int) -> list[dict]:
    paths = corpus.image_paths()[:n]
    cpu = radmine.ImageEmbedder(progress=False, device="cpu", batch_size=16).transform(paths)
    dev = radmine.ImageEmbedder(progress=False, device=device, batch_size=16).transform(paths)
    cos = (cpu * dev).sum(1) / (np.linalg.norm(cpu, axis=1) * np.linalg.norm(dev, axis=1))
    return [{"images": len(paths), "dim": cpu.shape[1], "max_abs_diff": float(np.abs(cpu - dev).max()),
             "min_cosine": float(cos.min())}]


def section_throughput(corpus, device: str, n: int, rounds: int, batch_sizes, num_workers="auto") -> list[dict]:
    import torch

    from radmine.images.embed import decode_image
    from radmine.images.preprocess import preprocess

    paths = corpus.image_paths()[:n]
    rows = []
    for bs in batch_sizes:
        emb = radmine.ImageEmbedder(progress=False, device=device, batch_size=bs, num_workers=num_workers).fit()
        spec = emb.input_spec_
        tensors = torch.stack([preprocess(decode_image(p, size=spec["image_size"])[0], spec) for p in paths]).to(device)
        model = emb.backbone_
        emb.transform(paths[: 2 * bs])  # warm-up

        def bare():
            with torch.inference_mode():
                for s in range(0, len(paths), bs):
                    model(tensors[s : s + bs])
            if device.startswith("cuda"):
                torch.cuda.synchronize()

        times = {"bare forward": [], "radmine end-to-end": []}
        for _ in range(rounds):
            t = time.perf_counter()
            bare()
            times["bare forward"].append(time.perf_counter() - t)
            t = time.perf_counter()
            emb.transform(paths)
            times["radmine end-to-end"].append(time.perf_counter() - t)
        bare_ips = len(paths) / statistics.median(times["bare forward"])
        for name, ts in times.items():
            ips = len(paths) / statistics.median(ts)
            rows.append({"method": name, "batch": bs, "workers": emb._n_workers(len(paths)), "images": len(paths),
                         "images/s": ips, "vs bare forward": ips / bare_ips})
    return rows


def section_topics(corpus, labels: pd.DataFrame, device: str, epochs: int, seed: int, lr: float = 1e-4) -> list[dict]:
    rows = []
    dev = corpus.subset(corpus.reports.loc[corpus.reports["split"] == "dev", "report_id"])
    for name, kw in [("frozen features + linear head", {}), (f"backbone fine-tuned (lr {lr:g})", {"finetune": True, "lr": lr})]:
        t = time.perf_counter()
        clf = radmine.TopicImageClassifier(n_topics=10, level="document", random_state=seed, progress=False, device=device,
                                           epochs=epochs, batch_size=64, **kw)
        clf.fit(corpus, labels=labels)
        s = clf.score_labels(dev, labels)
        rows.append({"model": name, "classes": len(clf.classes_), "dev_top1": s["top1_accuracy"],
                     "dev_top5": s["top5_accuracy"], "epochs_run": int(len(clf.history_)), "fit_s": time.perf_counter() - t})
    return rows


def section_generator(corpus, device: str, seed: int) -> list[dict]:
    t = time.perf_counter()
    gen = radmine.AnnotationGenerator(random_state=seed, progress=False, device=device).fit(corpus)
    s = gen.score(corpus, split="dev")
    return [{"model": "CNN + GRU (greedy)", "device": str(gen.device_), **{k: float(v) for k, v in s.items()},
             "fit_s": time.perf_counter() - t}]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--labels", default=None, help="image_id, topic parquet for the topics section")
    ap.add_argument("--sections", default=",".join(SECTIONS))
    ap.add_argument("--quick", action="store_true", help="few images and epochs (a dry run)")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--finetune-lr", type=float, default=1e-4)
    ap.add_argument("--num-workers", type=int, default=None, help="decode workers (default: ImageEmbedder's auto)")
    ap.add_argument("--rounds", type=int, default=3, help="throughput rounds (median)")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("CUDA is not available here; use --device cpu for a dry run.")
    root = _paths.medpix_dir()
    if root is None:
        sys.exit("MedPix 2.0 not found (../shared/corpora/medpix-2.0 or $RADMINE_CORPORA).")
    corpus = radmine.read_medpix(root, progress=False)
    if args.quick:
        keep = corpus.reports.groupby("split").head(8)["report_id"]
        corpus = corpus.subset(keep)
    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    print(f"radmine {radmine.__version__}, torch {torch.__version__}, device {args.device} ({name}), "
          f"{len(corpus.images)} images")
    out: dict = {"device": name}
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    n = 64 if args.quick else len(corpus.images)
    for sec in sections:
        t = time.perf_counter()
        try:
            if sec == "equal":
                rows = section_equal(corpus, args.device, 32)
            elif sec == "throughput":
                rows = section_throughput(corpus, args.device, n, args.rounds, tuple(args.batch_sizes),
                                          "auto" if args.num_workers is None else args.num_workers)
            elif sec == "topics":
                if not args.labels:
                    print("\n[topics] skipped: no --labels")
                    continue
                rows = section_topics(corpus, pd.read_parquet(args.labels), args.device, 2 if args.quick else args.epochs,
                                      args.seed, args.finetune_lr)
            elif sec == "generator":
                rows = section_generator(corpus, args.device, args.seed)
            else:
                raise ValueError(f"unknown section {sec!r}; sections are {SECTIONS}")
        except Exception:  # noqa: BLE001 - report and go on with the next section
            traceback.print_exc()
            rows = [{"error": traceback.format_exc(limit=1).strip().splitlines()[-1]}]
        _table(rows, f"[{sec}] ({time.perf_counter() - t:.1f} s)")
        out[sec] = rows
        sys.stdout.flush()
        if args.json:  # after every section: a run stopped at its time limit keeps what it finished
            with open(args.json, "w") as fh:
                json.dump(out, fh, indent=2, default=float)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
