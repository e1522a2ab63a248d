"""Scale-out benchmark: report steps on 1 vs 2 Dask workers, and topic-fit memory (shards vs in memory).

Generates reports from templates (recombined synthetic sentences -- no real
report text), writes them as parquet shards, then

1. throughput (reports/s) of the report steps -- sentences + weak labels --
   read from the shards on a ``LocalCluster`` of 1 and of 2 worker processes
   (1 thread each), plus the plain pandas path in this process;
2. peak resident memory per process while fitting topics
   (a) in memory: one worker task loads every shard and runs ``TopicModel.fit``;
   (b) from shards: :func:`radmine.distributed.fit_topics_streaming` (workers
   tokenise partitions, this process runs the online LDA updates).

Usage::

    nice .venv/bin/python benchmarks/bench_dask.py            # 500,000 reports
    nice .venv/bin/python benchmarks/bench_dask.py --quick    # 50,000 reports
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

# ---------------------------------------------------------------------------- report generator
FINDINGS = ["pleural effusion", "pneumothorax", "consolidation", "cardiomegaly", "atelectasis", "pulmonary edema",
            "pulmonary nodule", "airspace opacity", "rib fracture", "emphysema", "hiatal hernia", "pneumonia"]
LOCATIONS = ["right upper lobe", "right lower lobe", "left upper lobe", "left lower lobe", "lingula", "right base",
             "left base", "bilateral bases", "right apex", "left apex", "perihilar region"]
SEVERITY = ["small", "moderate", "large", "mild", "minimal", "trace", "subtle", "patchy"]
CHANGE = ["unchanged", "improved", "increased", "decreased", "stable", "new"]
POSITIVE = ["There is a {sev} {f} in the {loc}.", "{Sev} {f} is seen at the {loc}.", "{F} in the {loc}, {chg} from the prior exam.",
            "Findings consistent with {f} of the {loc}.", "Again seen is {sev} {f} (series {s}, image {i})."]
NEGATIVE = ["No {f}.", "No evidence of {f}.", "There is no {f} or {f2}.", "Negative for {f}.", "Without {f}."]
UNCERTAIN = ["Possible {f} in the {loc}.", "Cannot exclude {f}.", "Findings may represent {f}.", "Questionable {sev} {f}."]
NORMAL = ["The heart size is normal.", "Mediastinal contours are within normal limits.", "The lungs are clear.",
          "Osseous structures are intact.", "No acute cardiopulmonary abnormality.", "Trachea is midline.",
          "Cardiomediastinal silhouette is stable.", "Visualized upper abdomen is unremarkable."]
INDICATIONS = ["Cough and fever.", "Shortness of breath.", "Chest pain.", "Follow-up of known nodule.", "Preoperative evaluation.",
               "Trauma.", "Hypoxia.", "Line placement."]
COMPARISONS = ["None.", "Prior radiograph from last year.", "CT chest from prior visit.", "Radiographs from 2 days ago."]
IMPRESSIONS = ["No acute disease.", "{Sev} {f}.", "Stable examination.", "{F}, {chg}.", "Possible {f}; clinical correlation recommended."]


def _fill(rng: np.random.Generator, template: str) -> str:
    f, f2 = rng.choice(FINDINGS, 2, replace=False)
    sev = SEVERITY[rng.integers(len(SEVERITY))]
    return template.format(
        f=f, F=f.capitalize(), f2=f2, sev=sev, Sev=sev.capitalize(), loc=LOCATIONS[rng.integers(len(LOCATIONS))],
        chg=CHANGE[rng.integers(len(CHANGE))], s=int(rng.integers(2, 6)), i=int(rng.integers(1, 200)),
    )


def _bank(rng: np.random.Generator, pool: list[str], size: int) -> np.ndarray:
    return np.array([_fill(rng, pool[rng.integers(len(pool))]) for _ in range(size)], dtype=object)


def generate_reports(n: int, start: int = 0, seed: int = 0, bank_size: int = 4000) -> pd.DataFrame:
    """``n`` template reports (INDICATION / COMPARISON / FINDINGS / IMPRESSION blocks).

    Sentences are drawn from banks of filled templates (``bank_size`` per
    kind) and recombined: 3-7 findings sentences and one impression per report.
    """
    rng = np.random.default_rng(seed + start)
    kinds = [_bank(rng, POSITIVE, bank_size), _bank(rng, NEGATIVE, bank_size), _bank(rng, UNCERTAIN, bank_size),
             _bank(rng, NORMAL, len(NORMAL) * 4)]
    bank = np.concatenate(kinds + [kinds[3]])  # normal sentences twice as likely
    imp_bank = _bank(rng, IMPRESSIONS, bank_size)
    m = rng.integers(3, 8, size=n)
    picks = rng.integers(len(bank), size=(n, 7))
    findings = [" ".join(bank[picks[k, : m[k]]]) for k in range(n)]
    impression = imp_bank[rng.integers(len(imp_bank), size=n)]
    indication = np.array(INDICATIONS, dtype=object)[rng.integers(len(INDICATIONS), size=n)]
    comparison = np.array(COMPARISONS, dtype=object)[rng.integers(len(COMPARISONS), size=n)]
    text = [f"INDICATION: {a}\n\nCOMPARISON: {b}\n\nFINDINGS: {c}\n\nIMPRESSION: {d}"
            for a, b, c, d in zip(indication, comparison, findings, impression)]
    ids = [f"G{start + k:08d}" for k in range(n)]
    return pd.DataFrame({"report_id": ids, "patient_id": ids, "study_id": ids, "modality": "CR", "text": text,
                         "indication": indication, "comparison": comparison, "findings": findings,
                         "impression": impression})


def write_shards(folder: Path, n: int, shard_size: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, start in enumerate(range(0, n, shard_size)):
        p = folder / f"reports-{i:04d}.parquet"
        if not p.exists():
            generate_reports(min(shard_size, n - start), start=start).to_parquet(p, index=False)
        paths.append(str(p))
    return paths


# ---------------------------------------------------------------------------- memory sampling
def _state() -> dict:
    """Per-process sampler state (kept in ``sys``, so these functions pickle by value without globals)."""
    import sys as _sys

    if not hasattr(_sys, "_radmine_bench_peak"):
        _sys._radmine_bench_peak = {"rss": 0, "stop": None}
    return _sys._radmine_bench_peak


def start_sampler(interval: float = 0.05) -> int:
    """Start sampling this process's RSS (run on each worker with client.run); returns the current RSS."""
    import threading as _threading
    import time as _time

    import psutil

    state = _state()
    proc = psutil.Process()
    stop = _threading.Event()
    state["stop"] = stop
    state["rss"] = proc.memory_info().rss

    def loop():
        while not stop.is_set():
            state["rss"] = max(state["rss"], proc.memory_info().rss)
            _time.sleep(interval)

    _threading.Thread(target=loop, daemon=True).start()
    return state["rss"]


def stop_sampler() -> int:
    state = _state()
    if state["stop"] is not None:
        state["stop"].set()
    return int(state["rss"])


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process (run on workers with client.run)."""
    import psutil

    t = psutil.Process().cpu_times()
    return float(t.user + t.system)


def _mb(x: float) -> float:
    return round(x / 2**20, 1)


# ---------------------------------------------------------------------------- runs
def report_steps(paths: list[str], client) -> tuple[int, int]:
    import radmine.distributed as rd

    ddf = rd.read_reports_sharded(paths)
    sents = rd.sentences(ddf)
    labels = rd.label_reports(ddf, vocabulary="chest_xray")
    n_sent, n_lab, n_pos = rd.compute(sents.map_partitions(len).sum(), labels.map_partitions(len).sum(),
                                      (labels == 1).sum().sum(), client=client)
    return int(n_sent), int(n_lab)


def _fit_in_memory(paths: list[str], n_topics: int, seed: int) -> dict:
    import radmine

    reports = pd.concat([radmine.read_reports(p).reports for p in paths], ignore_index=True)
    t0 = time.perf_counter()
    model = radmine.TopicModel(n_topics, passes=1, phrases=False, random_state=seed).fit(radmine.Corpus(reports))
    return {"docs": len(reports), "terms": len(model.vocabulary_), "seconds": time.perf_counter() - t0}


def cluster(n_workers: int):
    from distributed import Client, LocalCluster

    lc = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None, memory_limit="4GiB")
    return Client(lc), lc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="50,000 reports instead of 500,000")
    ap.add_argument("--n-reports", type=int, default=None)
    ap.add_argument("--shard-size", type=int, default=10_000, help="reports per parquet shard (= partition)")
    ap.add_argument("--topic-reports", type=int, default=None, help="reports for the topic-memory comparison")
    ap.add_argument("--n-topics", type=int, default=10)
    ap.add_argument("--data-dir", default=None, help="keep the generated shards here (default: a temp folder)")
    ap.add_argument("--skip-throughput", action="store_true", help="only the topic-memory comparison")
    args = ap.parse_args(argv)
    n = args.n_reports or (50_000 if args.quick else 500_000)
    n_topic = args.topic_reports or (20_000 if args.quick else 50_000)
    tmp = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="radmine-bench-dask-"))
    try:
        t0 = time.perf_counter()
        paths = write_shards(tmp / "shards", n, args.shard_size)
        print(f"# {n:,} generated reports in {len(paths)} parquet shards of {args.shard_size:,} "
              f"({time.perf_counter() - t0:.0f}s to write); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

        rows: list | None = None if args.skip_throughput else []
        if rows is not None:  # pandas baseline in this process on one shard (no Dask), then 1 and 2 workers
            import radmine
            from radmine.text.sentences import sentence_table

            one = radmine.read_reports(paths[0]).reports
            t, c0 = time.perf_counter(), time.process_time()
            sentence_table(one)
            radmine.label_reports(one, vocabulary="chest_xray")
            dt, cpu = time.perf_counter() - t, time.process_time() - c0
            rows.append({"run": "pandas, 1 process (one shard)", "reports": len(one), "seconds": dt, "reports_per_s": len(one) / dt,
                         "cpu_s": cpu, "reports_per_cpu_s": len(one) / cpu})
            for w in (1, 2):
                client, lc = cluster(w)
                try:
                    client.run(lambda: __import__("radmine.labels.labeler") and None)  # warm imports
                    cpu0 = client.run(_cpu_seconds)
                    t = time.perf_counter()
                    n_sent, n_lab = report_steps(paths, client)
                    dt = time.perf_counter() - t
                    cpu = sum(client.run(_cpu_seconds).values()) - sum(cpu0.values())
                finally:
                    client.close()
                    lc.close()
                assert n_lab == n
                rows.append({"run": f"dask, {w} worker(s) x 1 thread", "reports": n, "seconds": dt, "reports_per_s": n / dt,
                             "cpu_s": cpu, "reports_per_cpu_s": n / cpu, "sentences": n_sent})
            tp = pd.DataFrame(rows)
            base = tp.loc[tp["run"].str.startswith("dask, 1"), "reports_per_s"].iloc[0]
            tp["speedup_vs_1_worker"] = tp["reports_per_s"] / base
            print("\n## Report steps (sentences + weak labels), throughput")
            print(tp.round(2).to_string(index=False))

        # topic fitting memory
        tpaths = paths[: max(1, int(np.ceil(n_topic / args.shard_size)))]
        n_docs = sum(len(pd.read_parquet(p, columns=["report_id"])) for p in tpaths)
        mem = []
        client, lc = cluster(1)
        try:
            client.run(lambda: __import__("radmine.topics.model") and __import__("gensim.models") and None)
            before = client.run(start_sampler)
            t = time.perf_counter()
            fut = client.submit(_fit_in_memory, tpaths, args.n_topics, 0, pure=False)
            res = fut.result()
            dt = time.perf_counter() - t
            peak = client.run(stop_sampler)
            (addr, p), = peak.items()
            mem.append({"fit": "in memory (TopicModel.fit, one worker)", "docs": n_docs, "seconds": dt,
                        "worker_peak_mb": _mb(p), "worker_growth_mb": _mb(p - before[addr]), "client_peak_mb": None})
        finally:
            client.close()
            lc.close()
        from radmine.distributed import fit_topics_streaming

        client, lc = cluster(2)
        try:
            client.run(lambda: __import__("radmine.topics.model") and __import__("gensim.models") and None)
            before = client.run(start_sampler)
            c0 = start_sampler()
            t = time.perf_counter()
            model = fit_topics_streaming(tpaths, args.n_topics, phrases=False, passes=1, chunksize=2000, client=client,
                                         random_state=0)
            dt = time.perf_counter() - t
            cpeak = stop_sampler()
            peak = client.run(stop_sampler)
            worst = max(peak, key=lambda a: peak[a] - before[a])
            mem.append({"fit": "from shards (fit_topics_streaming, 2 workers)", "docs": n_docs, "seconds": dt,
                        "worker_peak_mb": _mb(max(peak.values())), "worker_growth_mb": _mb(peak[worst] - before[worst]),
                        "client_peak_mb": _mb(cpeak), "client_growth_mb": _mb(cpeak - c0)})
            top = model.get_topic_info()["name"].head(3).tolist()
        finally:
            client.close()
            lc.close()
        print(f"\n## Topic fit ({args.n_topics} topics, {n_docs:,} reports, partitions of {args.shard_size:,}): peak RSS")
        print(pd.DataFrame(mem).to_string(index=False))
        print(f"in-memory vocabulary: {res['terms']} terms; streaming vocabulary: {len(model.vocabulary_)} terms; "
              f"streaming topics e.g. {top}")
    finally:
        if not args.data_dir:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
