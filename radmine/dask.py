"""Run radmine's report and image pipelines on a Dask cluster (dask.dataframe + distributed).

Nothing here schedules work itself: every function builds a Dask graph
whose tasks call the *pandas* function of one partition -- the very function
the single-machine path calls on the whole table -- so the Dask results are
the pandas results, concatenated in partition order.

================================  =============================================  ==================================
Dask function                     pandas function of one partition               output (one row per)
================================  =============================================  ==================================
:func:`sentences`                 :func:`radmine.sentence_table`                 sentence
:func:`references`                :func:`reference_table`                        cited image (per sentence)
:func:`negations`                 :func:`negation_table`                         negation / uncertainty scope
:func:`links`                     :func:`radmine.link_key_images`                link (``corpus.links`` rows)
:func:`label_reports`             :func:`radmine.label_reports`                  report (index ``report_id``)
:func:`topic_transform`           :meth:`radmine.TopicModel.transform`           report (``report_id, topic_0..``)
================================  =============================================  ==================================

Plus sharded I/O (:func:`read_reports_sharded`, :func:`to_parquet`), topic
fitting that streams the corpus from shards (:func:`fit_topics_streaming`:
tokenising on the workers, gensim's online LDA ``update`` on the client) and
image embeddings spread over the workers (:func:`embed_images`, every worker
committing its own shards of the resumable embedding cache).

Examples
--------
>>> import radmine, radmine.dask as rd                      # doctest: +SKIP
>>> client = rd.get_client("local", n_workers=2)            # doctest: +SKIP
>>> reports = rd.read_reports_sharded("exports/*.parquet")  # doctest: +SKIP
>>> labels = rd.label_reports(reports, vocabulary="chest_xray")  # doctest: +SKIP
>>> rd.to_parquet(labels, "out/labels")                     # doctest: +SKIP
"""

from __future__ import annotations

import glob
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radmine._validation import is_dask_collection  # noqa: F401 - re-exported

# the partition functions live with their pipelines; re-exported here
from radmine.text.negation import NEGATION_COLUMNS, negation_table  # noqa: F401
from radmine.text.references import REFERENCE_COLUMNS, reference_table  # noqa: F401

logger = logging.getLogger(__name__)

__all__ = [
    "get_client",
    "is_dask_collection",
    "from_pandas",
    "read_reports_sharded",
    "to_parquet",
    "sentences",
    "references",
    "negations",
    "links",
    "order_links",
    "label_reports",
    "topic_transform",
    "reference_table",
    "negation_table",
    "fit_topics_streaming",
    "embed_images",
    "compute",
]

#: Rows per partition used by :func:`from_pandas` when neither ``npartitions`` nor ``partition_size`` is given.
DEFAULT_PARTITION_SIZE = 2000
_TABLE_SUFFIXES = (".parquet", ".pq", ".csv", ".tsv", ".jsonl", ".ndjson", ".json", ".csv.gz", ".tsv.gz", ".jsonl.gz", ".ndjson.gz", ".json.gz")


# --------------------------------------------------------------------------- client
def get_client(
    address_or_local: Any = "local",
    n_workers: int = 2,
    threads_per_worker: int = 1,
    memory_limit: str | int | None = "auto",
    *,
    processes: bool = True,
    **cluster_kwargs: Any,
):
    """A ``distributed.Client``: a new ``LocalCluster`` for ``"local"``, else a connection.

    Parameters
    ----------
    address_or_local : str or distributed.Client, default "local"
        ``"local"`` starts a :class:`distributed.LocalCluster` on this machine;
        a scheduler address (``"tcp://host:8786"``) connects to a running
        cluster; a ``Client`` is returned as it is.
    n_workers, threads_per_worker : int
        Local cluster only: worker processes and threads per worker. radmine's
        partition functions are pure Python (GIL-bound), so scale with
        processes, one thread each.
    memory_limit : str or int, default "auto"
        Local cluster only: per-worker memory limit (``"2GiB"``, bytes, or
        ``"auto"`` = machine memory / workers).
    processes : bool, default True
        Local cluster only: workers are processes (``False``: threads in this
        process, handy for debugging).
    **cluster_kwargs
        Passed to ``LocalCluster``.

    Returns
    -------
    distributed.Client
        Close it (``client.close()``; for a local one also ``client.cluster.close()``)
        when done, or use it as a context manager.

    Raises
    ------
    TypeError
        If ``address_or_local`` is not a str or Client.
    ValueError
        Bad ``n_workers``/``threads_per_worker``.
    """
    from distributed import Client, LocalCluster

    from radmine._validation import check_int

    if isinstance(address_or_local, Client):
        return address_or_local
    if not isinstance(address_or_local, str) or not address_or_local:
        raise TypeError(
            f"get_client: address_or_local must be 'local', a scheduler address or a Client; got {address_or_local!r}."
        )
    if address_or_local == "local":
        n_workers = check_int(n_workers, "n_workers", "get_client", min_value=1)
        threads_per_worker = check_int(threads_per_worker, "threads_per_worker", "get_client", min_value=1)
        cluster_kwargs.setdefault("dashboard_address", None)
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            memory_limit=memory_limit,
            processes=processes,
            **cluster_kwargs,
        )
        client = Client(cluster)
        # close the cluster with the client (``mine(..., scheduler="local")`` only closes the client)
        _orig_close = client.close

        def close(*args, **kwargs):
            out = _orig_close(*args, **kwargs)
            try:
                cluster.close()
            except Exception as err:  # noqa: BLE001 - closing is best effort
                logger.debug("closing the local cluster failed: %s", err)
            return out

        client.close = close
        logger.info("Started a local Dask cluster: %d workers x %d threads", n_workers, threads_per_worker)
        return client
    return Client(address_or_local)


def compute(*collections: Any, client: Any = None) -> Any:
    """Compute Dask collections together (shared tasks run once) on ``client`` or the default scheduler.

    Returns one result for one collection, else a tuple.
    """
    import dask

    if client is not None:
        out = client.compute(list(collections), sync=True)
        return out[0] if len(collections) == 1 else tuple(out)
    out = dask.compute(*collections)
    return out[0] if len(collections) == 1 else out


def from_pandas(df: pd.DataFrame, npartitions: int | None = None, *, partition_size: int | None = None):
    """A Dask DataFrame of ``df`` in contiguous row blocks (order kept, dtypes kept).

    Parameters
    ----------
    df : DataFrame
    npartitions : int, optional
        Number of partitions.
    partition_size : int, optional
        Rows per partition (default :data:`DEFAULT_PARTITION_SIZE` when
        ``npartitions`` is not given).

    Returns
    -------
    dask.dataframe.DataFrame
    """
    import dask
    import dask.dataframe as dd

    from radmine._validation import check_int

    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"from_pandas: df must be a pandas DataFrame, got {type(df).__name__}.")
    if npartitions is None:
        size = check_int(partition_size or DEFAULT_PARTITION_SIZE, "partition_size", "from_pandas", min_value=1)
        npartitions = max(1, math.ceil(len(df) / size))
    npartitions = check_int(npartitions, "npartitions", "from_pandas", min_value=1)
    with dask.config.set({"dataframe.convert-string": False}):
        return dd.from_pandas(df, npartitions=npartitions, sort=False)


def _as_ddf(x: Any, name: str = "reports"):
    if isinstance(x, pd.DataFrame):
        return from_pandas(x)
    import dask.dataframe as dd

    if isinstance(x, dd.DataFrame):
        return x
    raise TypeError(f"{name} must be a dask or pandas DataFrame; got {type(x).__name__}.")


def _map(ddf, func, *args, **kwargs):
    """``ddf.map_partitions(func, ...)`` with ``meta`` = ``func`` on an empty partition."""
    import dask

    meta = func(ddf._meta.copy(), *[_meta_arg(a) for a in args], **kwargs)
    with dask.config.set({"dataframe.convert-string": False}):
        return ddf.map_partitions(func, *args, meta=meta, align_dataframes=False, **kwargs)


def _meta_arg(a: Any) -> Any:
    from dask.delayed import Delayed

    if isinstance(a, Delayed):
        return a.compute(scheduler="sync")
    return a


def _shared(obj: Any):
    """Wrap ``obj`` so that it enters the graph once (not once per partition)."""
    import dask

    return dask.delayed(obj, pure=True, traverse=False)


# --------------------------------------------------------------------------- sharded I/O
def _expand(paths: Any) -> list[str]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[str] = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            files = sorted(
                str(q) for q in Path(p).rglob("*") if q.is_file() and (q.name.lower().endswith(_TABLE_SUFFIXES) or q.suffix.lower() == ".xml")
            )
            out.extend(files)
        elif any(ch in p for ch in "*?["):
            out.extend(sorted(glob.glob(p, recursive=True)))
        else:
            if not os.path.exists(p):
                raise FileNotFoundError(f"read_reports_sharded: no such file or folder: {p!r}.")
            out.append(p)
    return out


def _kind(path: str) -> str:
    name = path.lower()
    if name.endswith(".xml"):
        return "xml"
    if name.endswith(_TABLE_SUFFIXES):
        return "table"
    return "unknown"


def _read_table_part(path: str, kwargs: dict) -> pd.DataFrame:
    from radmine.readers.tables import read_reports

    return read_reports(path, **kwargs).reports


def _read_xml_part(files: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    from radmine.readers.openi import parse_report_xml

    rows, bad = [], []
    for f in files:
        try:
            data = Path(f).read_bytes()
            rows.append(parse_report_xml(data, item=f)["report"])
        except (OSError, ValueError) as err:
            bad.append({"source": "xml", "item": f, "reason": str(err)})
    cols = ["report_id", "patient_id", "study_id", "modality", "text", "comparison", "indication", "findings",
            "impression", "mesh_major", "mesh_automatic", "file"]
    reports = pd.DataFrame(rows, columns=cols)
    for c in cols:
        reports[c] = reports[c].astype(object)
    return reports, pd.DataFrame(bad, columns=["source", "item", "reason"]).astype(object)


def read_reports_sharded(
    paths: Any,
    *,
    files_per_partition: int = 500,
    return_quarantine: bool = False,
    **read_kwargs: Any,
):
    """A Dask DataFrame of reports from many files: one partition per table file, or per block of XML files.

    Parameters
    ----------
    paths : str, Path or list of them
        Files, folders (searched recursively) or glob patterns. Table files
        (``.parquet``, ``.csv``, ``.tsv``, ``.jsonl``, ``.json``, optionally
        ``.gz``) are read with :func:`radmine.read_reports` (same column
        mapping and id handling as the pandas path; ``read_kwargs`` such as
        ``columns=``/``id_column=``/``text_column=`` go to it). ``.xml``
        files are Open-i reports parsed by :func:`radmine.readers.openi.parse_report_xml`.
        All files must be of one kind.
    files_per_partition : int, default 500
        XML files per partition.
    return_quarantine : bool, default False
        XML only: also return a Dask DataFrame ``source, item, reason`` of
        files that could not be parsed (they are skipped, never fatal).

    Returns
    -------
    dask.dataframe.DataFrame
        The reports table (``report_id, patient_id, study_id, modality, text, ...``),
        files in sorted order; with ``return_quarantine`` a tuple
        ``(reports, quarantine)``.

    Raises
    ------
    FileNotFoundError
        If a named file is missing or nothing matches.
    ValueError
        Mixed or unknown file kinds.
    """
    import dask
    import dask.dataframe as dd

    from radmine._validation import check_int

    files = _expand(paths)
    if not files:
        raise FileNotFoundError(f"read_reports_sharded: no report files match {paths!r}.")
    kinds = {_kind(f) for f in files}
    if "unknown" in kinds:
        bad = [f for f in files if _kind(f) == "unknown"][:3]
        raise ValueError(f"read_reports_sharded: unknown file kind (expected table files or .xml): {bad}.")
    if len(kinds) > 1:
        raise ValueError("read_reports_sharded: got both table files and XML files; read them separately.")
    if kinds == {"xml"}:
        if read_kwargs:
            raise TypeError(f"read_reports_sharded: XML input takes no reader options; got {sorted(read_kwargs)}.")
        n = check_int(files_per_partition, "files_per_partition", "read_reports_sharded", min_value=1)
        blocks = [files[i : i + n] for i in range(0, len(files), n)]
        parts = [dask.delayed(_read_xml_part, pure=True)(b) for b in blocks]
        meta_r, meta_q = _read_xml_part([])
        with dask.config.set({"dataframe.convert-string": False}):
            reports = dd.from_delayed([p[0] for p in parts], meta=meta_r, verify_meta=False)
            quarantine = dd.from_delayed([p[1] for p in parts], meta=meta_q, verify_meta=False)
        return (reports, quarantine) if return_quarantine else reports
    meta = _read_table_part(files[0], read_kwargs).iloc[:0]
    parts = [dask.delayed(_read_table_part, pure=True)(f, read_kwargs) for f in files]
    with dask.config.set({"dataframe.convert-string": False}):
        reports = dd.from_delayed(parts, meta=meta, verify_meta=False)
    if return_quarantine:
        return reports, dd.from_pandas(pd.DataFrame(columns=["source", "item", "reason"]).astype(object), npartitions=1)
    return reports


def to_parquet(ddf: Any, directory: str | os.PathLike, *, overwrite: bool = True, client: Any = None) -> Path:
    """Write a Dask (or pandas) DataFrame as sharded parquet: ``directory/part.<i>.parquet``.

    A named index (``report_id`` of :func:`label_reports`) is written as a
    column; ``dd.read_parquet(directory)`` or :func:`read_reports_sharded`
    read it back. Returns ``directory``.
    """
    import dask.dataframe as dd

    ddf = _as_ddf(ddf, "ddf")
    if ddf.index.name is not None:
        ddf = ddf.reset_index()
    directory = Path(directory)
    if overwrite and directory.exists():
        for p in directory.glob("part.*.parquet"):
            p.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    graph = dd.to_parquet(ddf, str(directory), write_index=False, compute=False, overwrite=False,
                          name_function=lambda i: f"part.{i:05d}.parquet")
    compute(graph, client=client)
    return directory


# --------------------------------------------------------------------------- partition functions (pandas)
def _sentences_part(part: pd.DataFrame, engine: Any) -> pd.DataFrame:
    from radmine.text.sentences import sentence_table

    return sentence_table(part, engine=engine)


def _links_part(part: pd.DataFrame, images: pd.DataFrame, context: int, fallback: str, engine: Any, name: str,
                sentences: pd.DataFrame | None = None) -> pd.DataFrame:
    from radmine.linking import link_partition

    return link_partition(part, images, context, fallback, engine, name, sentences)


def _study_map(reports: pd.DataFrame) -> dict:
    from radmine.linking import study_of_report

    return study_of_report(reports)


def _prepare_images(images: pd.DataFrame, reports_study: dict) -> pd.DataFrame:
    from radmine.linking import images_by_study

    return images_by_study(images, reports_study)


def _labels_part(part: pd.DataFrame, labeler: Any) -> pd.DataFrame:
    return _labels_and_mentions(part, labeler)[0]


def _labels_and_mentions(part: pd.DataFrame, labeler: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    import copy

    lab = copy.copy(labeler)  # worker-local: mentions_ of this partition only
    if not len(part):
        # WeakLabeler.transform does not take an empty table: label one blank row and keep none
        dummy = part.reindex([0])
        dummy["report_id"] = pd.Series(["_"], dtype=object).astype(part["report_id"].dtype, errors="ignore") \
            if part["report_id"].dtype == object or pd.api.types.is_string_dtype(part["report_id"]) else 0
        dummy["text"] = ""
        out = lab.transform(dummy[["report_id", "text"]]).iloc[:0]
        return out, lab.mentions_.iloc[:0]
    out = lab.transform(part)
    return out, lab.mentions_


def _topic_part(part: Any, model: Any, sections: Any) -> pd.DataFrame:
    texts = _doc_texts(part, sections)
    k = model.n_topics_
    cols = [f"topic_{t}" for t in range(k)]
    if len(texts):
        theta = model.transform(texts)
    else:
        theta = np.zeros((0, k))
    out = pd.DataFrame(theta, columns=cols)
    out.insert(0, "report_id" if not isinstance(part, pd.Series) else "doc_id", texts.index.to_numpy())
    if not isinstance(part, pd.Series):
        out["report_id"] = out["report_id"].astype(part["report_id"].dtype)
    return out


# --------------------------------------------------------------------------- report steps on Dask
def sentences(ddf: Any, *, engine: Any = "rules"):
    """:func:`radmine.sentence_table` partition by partition.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame (or pandas)
        Reports with ``report_id, text``.
    engine : str, default "rules"

    Returns
    -------
    dask.dataframe.DataFrame
        ``report_id, section, sentence_id, start, end, text``; concatenated
        in order it equals ``sentence_table(reports)``.
    """
    return _map(_as_ddf(ddf), _sentences_part, engine)


def references(ddf: Any, *, engine: Any = "rules"):
    """:func:`reference_table` partition by partition (written image references per sentence)."""
    return _map(_as_ddf(ddf), _ref_part, engine)


def _ref_part(part: pd.DataFrame, engine: Any) -> pd.DataFrame:
    return reference_table(part, engine=engine)


def negations(ddf: Any, *, detector: Any = None):
    """:func:`negation_table` partition by partition (negation / uncertainty scopes per report)."""
    return _map(_as_ddf(ddf), _neg_part, detector)


def _neg_part(part: pd.DataFrame, detector: Any) -> pd.DataFrame:
    return negation_table(part, detector=detector)


def links(
    ddf: Any,
    images: pd.DataFrame,
    *,
    context: int = 1,
    fallback: str = "auto",
    engine: Any = "rules",
    name: str = "corpus",
    sentences: Any = None,
):
    """:func:`radmine.link_key_images` partition by partition.

    Each partition's reports are linked against the images of their studies
    (an image table is small next to the reports; it enters the graph once).
    References resolve across reports of one study exactly as in the pandas
    path.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
        Reports (``report_id, text``, ``study_id``/``source`` when present).
    images : DataFrame
        The corpus's images table (``image_id, report_id``, ...).
    context, fallback, engine
        See :func:`radmine.link_key_images`.
    name : str, default "corpus"
        The corpus name (the linker reads the source from it when reports
        have no ``source`` column: pass ``corpus.name``).
    sentences : dask.dataframe.DataFrame, optional
        The output of :func:`sentences` on the *same* ``ddf`` (partition i
        holds the sentences of reports partition i); computed when omitted.

    Returns
    -------
    dask.dataframe.DataFrame
        The links table (:data:`radmine.linking.LINK_TABLE_COLUMNS`).
    """
    from radmine._validation import check_columns, check_int, check_option

    ddf = _as_ddf(ddf)
    context = check_int(context, "context", "links", min_value=0)
    check_option(fallback, "fallback", "links", ["auto", "caption", "report", "none"])
    if not isinstance(images, pd.DataFrame):
        raise TypeError(f"links: images must be a pandas DataFrame (the corpus's images table); got {type(images).__name__}.")
    check_columns(images, ["image_id", "report_id"], "images")
    cols = [c for c in ("report_id", "study_id") if c in ddf.columns]
    study_of = _study_map(compute(ddf[cols]) if "study_id" in cols else pd.DataFrame({"report_id": []}))
    imgs = _shared(_prepare_images(images, study_of))
    if sentences is None:
        return _map(ddf, _links_part, imgs, context, fallback, engine, str(name))
    import dask.dataframe as dd

    if not isinstance(sentences, dd.DataFrame) or sentences.npartitions != ddf.npartitions:
        raise ValueError("links: sentences must be the Dask output of sentences(ddf) on the same ddf (same partitions).")
    return _map(ddf, _links_part, imgs, context, fallback, engine, str(name), sentences)


def order_links(links: pd.DataFrame, images: pd.DataFrame) -> pd.DataFrame:
    """Put a computed :func:`links` table in the row order of :func:`radmine.link_key_images`.

    Reference rows by report id (stable: sentence order within a report),
    then caption/report rows in the order of ``images``; index reset.
    """
    if not len(links):
        return links.reset_index(drop=True)
    ref = links[links["method"] == "reference"]
    ref = ref.iloc[np.argsort(ref["report_id"].to_numpy(), kind="stable")] if len(ref) else ref
    rest = links[links["method"] != "reference"]
    if len(rest):
        pos = pd.Series(np.arange(len(images)), index=images["image_id"].to_numpy())
        pos = pos[~pos.index.duplicated()]
        rest = rest.iloc[np.argsort(rest["image_id"].map(pos).to_numpy(dtype=float), kind="stable")]
    return pd.concat([ref, rest]).reset_index(drop=True)


def label_reports(
    ddf: Any,
    vocabulary: Any = "chest_xray",
    *,
    sections: Sequence[str] = ("findings", "impression", "conclusion"),
    negation: Any = None,
    uncertain_blocks_normal: bool = False,
    return_mentions: bool = False,
    labeler: Any = None,
):
    """:func:`radmine.label_reports` partition by partition.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
        Reports with ``report_id`` (unique) and ``text``.
    vocabulary, sections, negation, uncertain_blocks_normal
        See :class:`radmine.WeakLabeler`.
    return_mentions : bool, default False
        Also return the mentions table (both come from one pass over the data
        when computed together, e.g. with :func:`compute`).
    labeler : WeakLabeler, optional
        A configured labeller (overrides the other options); fitted here if needed.

    Returns
    -------
    labels : dask.dataframe.DataFrame
        Index ``report_id``, one float column per finding (1 / 0 / -1 / NaN).
    mentions : dask.dataframe.DataFrame
        Only with ``return_mentions=True``.
    """
    import dask
    import dask.dataframe as dd

    from radmine.labels.labeler import WeakLabeler

    ddf = _as_ddf(ddf)
    if labeler is None:
        labeler = WeakLabeler(vocabulary, sections=tuple(sections), negation=negation,
                              uncertain_blocks_normal=uncertain_blocks_normal)
    if not hasattr(labeler, "labels_"):
        labeler.fit()
    shared = _shared(labeler)
    meta_l, meta_m = _labels_and_mentions(ddf._meta.copy(), labeler)
    if not return_mentions:
        with dask.config.set({"dataframe.convert-string": False}):
            return ddf.map_partitions(_labels_part, shared, meta=meta_l)
    parts = [dask.delayed(_labels_and_mentions, pure=True, nout=2)(p, shared) for p in ddf.to_delayed()]
    with dask.config.set({"dataframe.convert-string": False}):
        labels = dd.from_delayed([p[0] for p in parts], meta=meta_l, verify_meta=False)
        mentions = dd.from_delayed([p[1] for p in parts], meta=meta_m, verify_meta=False)
    return labels, mentions


def topic_transform(model: Any, ddf: Any):
    """:meth:`radmine.TopicModel.transform` partition by partition.

    Parameters
    ----------
    model : TopicModel
        A fitted model (its fit documents are not shipped to the workers).
    ddf : dask.dataframe.DataFrame or dask Series
        Reports (one document per report: the model's ``sections``, as
        ``TopicModel.transform(Corpus)`` with ``unit="report"``), or a Series
        of texts (one document each).

    Returns
    -------
    dask.dataframe.DataFrame
        ``report_id`` (``doc_id`` for a Series) then ``topic_0 .. topic_{k-1}``;
        rows sum to 1.
    """
    import dask.dataframe as dd

    from radmine._validation import check_is_fitted

    check_is_fitted(model, "components_")
    if isinstance(ddf, pd.Series):
        ddf = dd.from_pandas(ddf, npartitions=max(1, math.ceil(len(ddf) / DEFAULT_PARTITION_SIZE)), sort=False)
    elif isinstance(ddf, pd.DataFrame):
        ddf = from_pandas(ddf)
    light = model.without_documents()
    return _map(ddf, _topic_part, _shared(light), model.sections)


# --------------------------------------------------------------------------- streaming topic fit
def _iter_computed(tasks: Sequence[Any], client: Any, max_in_flight: int) -> Iterator[Any]:
    """Results of delayed ``tasks`` in order, with at most ``max_in_flight`` running/held at once."""
    if client is None:
        for t in tasks:
            yield t.compute()
        return
    futures: list = []
    it = iter(tasks)
    for t in it:
        futures.append(client.compute(t))
        if len(futures) >= max_in_flight:
            break
    while futures:
        f = futures.pop(0)
        nxt = next(it, None)
        if nxt is not None:
            futures.append(client.compute(nxt))
        yield f.result()
        f.release()


def _doc_texts(part: Any, sections: Any, unit: str = "report") -> pd.Series:
    """The topic-model documents of one partition, indexed by ``doc_id``."""
    docs = _documents_part(part, sections, unit)
    return pd.Series(docs["text"].to_numpy(), index=docs["doc_id"].to_numpy(), dtype=object)


def _documents_part(part: Any, sections: Any, unit: str = "report") -> pd.DataFrame:
    """``doc_id, report_id, sentence_id, text`` of one partition.

    ``unit="report"``: one document per report (its ``sections``);
    ``unit="sentence"``: one document per sentence in ``sections`` (as
    :class:`radmine.TopicModel` builds them for a corpus without links).
    A Series partition is taken as the documents themselves.
    """
    from types import SimpleNamespace

    from radmine.topics.io import report_texts, sentence_documents

    if isinstance(part, pd.Series):
        ids = part.index.to_numpy()
        return pd.DataFrame({"doc_id": ids, "report_id": ids, "sentence_id": -1, "text": part.to_numpy()})
    if not len(part):
        return pd.DataFrame({"doc_id": [], "report_id": [], "sentence_id": pd.Series([], dtype=np.int64), "text": []})
    if unit == "sentence":
        return sentence_documents(SimpleNamespace(sentences=None, reports=part), sections)
    ids = part["report_id"].to_numpy()
    return pd.DataFrame({"doc_id": ids, "report_id": ids, "sentence_id": -1, "text": report_texts(part, sections).to_numpy()})


def _count_part(part: Any, pre: Any, sections: Any, unit: str = "report") -> tuple[dict, dict, int]:
    """Document and collection frequencies of the tokens of one partition."""
    texts = _doc_texts(part, sections, unit)
    dfs: Counter = Counter()
    cfs: Counter = Counter()
    if len(texts):
        for toks in pre.transform(texts.tolist()):
            cfs.update(toks)
            dfs.update(set(toks))
    return dict(dfs), dict(cfs), len(texts)


def _bow_part(part: Any, pre: Any, vocab: Any, sections: Any, min_doc_terms: int, unit: str = "report") -> list:
    texts = _doc_texts(part, sections, unit)
    if not len(texts):
        return []
    kept = vocab.filter_docs(pre.transform(texts.tolist()))
    floor = max(min_doc_terms, 1)
    return [vocab.doc2bow(t) for t in kept if len(t) >= floor]


def _docinfo_part(part: Any, model: Any, sections: Any, min_doc_terms: int, unit: str = "report") -> pd.DataFrame:
    docs = _documents_part(part, sections, unit)
    texts = docs["text"].tolist()
    tokens = model.preprocessor_.transform(texts) if texts else []
    kept = model.vocabulary_.filter_docs(tokens)
    n_terms = np.array([len(t) for t in kept], dtype=np.int64)
    theta = model._transform_tokens(kept) if len(kept) else np.zeros((0, model.n_topics_))
    empty = n_terms == 0
    return pd.DataFrame(
        {
            "doc_id": docs["doc_id"].to_numpy(),
            "report_id": docs["report_id"].to_numpy(),
            "sentence_id": docs["sentence_id"].to_numpy().astype(np.int64),
            "n_terms": n_terms,
            "in_training": n_terms >= max(min_doc_terms, 1),
            "dominant_topic": np.where(empty, -1, theta.argmax(axis=1) if len(theta) else 0).astype(int),
            "probability": np.where(empty, np.nan, theta.max(axis=1) if len(theta) else 0.0),
        }
    )


def _build_vocabulary(dfs: Counter, cfs: Counter, num_docs: int, min_df: int, drop_top: int, max_df: float):
    """A radmine Vocabulary from merged frequencies, with the filters of ``Vocabulary.fit``."""
    from radmine.topics.preprocess import Vocabulary

    limit = max_df * num_docs
    keep = {w: d for w, d in dfs.items() if d >= min_df and d <= limit}
    top = sorted(keep.items(), key=lambda kv: (-kv[1], kv[0]))[:drop_top] if drop_top else []
    for w, _ in top:
        keep.pop(w)
    if not keep:
        raise ValueError(
            f"fit_topics_streaming: no term is left after the filters (min_df={min_df}, drop_top={drop_top}) "
            f"over {num_docs} document(s); use fewer filters or more documents."
        )
    words = sorted(keep)
    return Vocabulary.from_dict(
        {"min_df": min_df, "drop_top": drop_top, "max_df": max_df, "words": words,
         "dfs": [int(keep[w]) for w in words], "cfs": [int(cfs.get(w, 0)) for w in words],
         "num_docs": int(num_docs), "dropped_top": [w for w, _ in top]}
    )


def fit_topics_streaming(
    source: Any,
    n_topics: int = 20,
    *,
    unit: str = "report",
    sections: tuple[str, ...] | None = ("findings", "impression"),
    alpha: float = 0.01,
    eta: float = 0.01,
    passes: int = 1,
    iterations: int | None = None,
    chunksize: int = 2000,
    update_every: int = 1,
    decay: float = 0.5,
    offset: float = 1.0,
    min_df: int = 3,
    drop_top: int = 10,
    max_df: float = 1.0,
    min_doc_terms: int = 5,
    min_chars: int = 3,
    phrases: bool = True,
    mark_negation: bool = False,
    phrase_sample: int = 20000,
    max_in_flight: int = 2,
    document_info: bool = True,
    client: Any = None,
    random_state: int | None = None,
    progress: bool = False,
):
    """Fit a :class:`radmine.TopicModel` by streaming reports from shards (gensim online LDA).

    Never holds all reports (or all bags of words) in one process:

    1. *phrases* -- learned on the client from the first ``phrase_sample``
       documents (a sample; the full-corpus fit learns them from all);
    2. *dictionary* (distributed) -- each worker tokenises its partitions and
       returns their document/collection frequencies; the client merges these
       counters and applies the vocabulary filters (``min_df``, ``drop_top``,
       ``max_df``) exactly like :class:`radmine.topics.preprocess.Vocabulary`;
    3. *LDA* -- workers tokenise partitions into bags of words (distributed),
       the client feeds them in order to ``gensim.models.LdaModel.update``
       (online variational Bayes, Hoffman et al. 2010; ``chunksize``,
       ``update_every``, ``decay``, ``offset``); at most ``max_in_flight``
       partitions are computed ahead. ``passes`` repeats this over all shards;
    4. *document info* (distributed, optional) -- the dominant topic of every
       document, for ``get_topic_info()`` sizes and ``get_document_info()``.

    gensim's own distributed LDA (Pyro4 dispatcher) is not used.

    Parameters
    ----------
    source : str, list of paths, dask DataFrame or dask Series
        Shards read with :func:`read_reports_sharded`, a reports Dask
        DataFrame (one document per report: its ``sections``) or a Dask
        Series of texts.
    n_topics : int, default 20
    unit : {"report", "sentence"}, default "report"
        ``"report"``: one document per report (its ``sections``);
        ``"sentence"``: one document per sentence of those sections, split by
        the workers (``radmine.sentence_table``); ``doc_id`` is
        ``"<report_id>:<sentence_id>"`` as in the in-memory fit of a corpus
        without key-image links.
    sections, alpha, eta, iterations, min_df, drop_top, min_doc_terms, min_chars, phrases, mark_negation
        As for :class:`radmine.TopicModel`.
    passes : int, default 1
        Passes over all shards.
    chunksize, update_every, decay, offset
        gensim online LDA settings (documents per mini-batch; mini-batches
        per M-step; learning-rate decay and offset).
    max_df : float, default 1.0
    phrase_sample : int, default 20000
        Documents used to learn phrases.
    max_in_flight : int, default 2
        Partitions computed ahead of the LDA update (bounds client memory).
    document_info : bool, default True
        Compute every document's dominant topic at the end (one extra pass).
    client : distributed.Client, optional
        Default: the current client, if any, else Dask's local scheduler.
    random_state : int, optional
    progress : bool, default False

    Returns
    -------
    TopicModel
        Fitted (``components_``, ``alpha_``, ``preprocessor_``,
        ``vocabulary_``, ``documents_``); ``transform``, ``get_topic_info``,
        ``save``/``load`` work as for a model fitted in memory.
    """
    import dask
    import dask.dataframe as dd
    from gensim.models import LdaModel

    from radmine._validation import check_int
    from radmine.base import seed_int
    from radmine.topics.model import TopicModel
    from radmine.topics.preprocess import Preprocessor

    t0 = time.perf_counter()
    template = TopicModel(
        n_topics, unit=unit, alpha=alpha, eta=eta, passes=passes, iterations=iterations, min_df=min_df,
        min_chars=min_chars, drop_top=drop_top, min_doc_terms=min_doc_terms, phrases=phrases,
        mark_negation=mark_negation, sections=sections, random_state=random_state,
    )
    template._check_params()
    chunksize = check_int(chunksize, "chunksize", "fit_topics_streaming", min_value=1)
    update_every = check_int(update_every, "update_every", "fit_topics_streaming", min_value=0)
    max_in_flight = check_int(max_in_flight, "max_in_flight", "fit_topics_streaming", min_value=1)
    phrase_sample = check_int(phrase_sample, "phrase_sample", "fit_topics_streaming", min_value=1)
    if client is None:
        client = _current_client()
    if isinstance(source, (dd.DataFrame, dd.Series)):
        ddf = source
    elif isinstance(source, (pd.DataFrame, pd.Series)):
        ddf = from_pandas(source) if isinstance(source, pd.DataFrame) else dd.from_pandas(source, chunksize=DEFAULT_PARTITION_SIZE, sort=False)
    else:
        ddf = read_reports_sharded(source)
    parts = ddf.to_delayed()
    bar_desc = "streaming LDA"

    # 1. phrases on a sample
    pre = Preprocessor(min_chars=min_chars, mark_negation=mark_negation, phrases=phrases)
    if phrases:
        sample: list[str] = []
        for p in _iter_computed(parts, client, max_in_flight):
            sample.extend(_doc_texts(p, sections, unit).tolist())
            if len(sample) >= phrase_sample:
                break
        pre.fit(sample[:phrase_sample])
    else:
        pre.phrasegrams_ = {}
    shared_pre = _shared(pre)

    # 2. dictionary from merged per-partition frequencies
    dfs: Counter = Counter()
    cfs: Counter = Counter()
    num_docs = 0
    count_tasks = [dask.delayed(_count_part, pure=True)(p, shared_pre, sections, unit) for p in parts]
    for d, c, n in _iter_computed(count_tasks, client, max(max_in_flight, 4)):
        dfs.update(d)
        cfs.update(c)
        num_docs += n
    vocab = _build_vocabulary(dfs, cfs, num_docs, min_df, drop_top, max_df)
    del dfs, cfs
    logger.info("fit_topics_streaming: %d documents, %d terms, %d partitions", num_docs, len(vocab), len(parts))

    # 3. online LDA on the client
    seed = seed_int(random_state)
    lda = LdaModel(
        id2word=vocab.dictionary_, num_topics=n_topics, alpha=np.full(n_topics, float(alpha)), eta=float(eta),
        iterations=50 if iterations is None else iterations, random_state=seed, eval_every=None,
        chunksize=chunksize, update_every=update_every, decay=decay, offset=offset, dtype=np.float32,
    )
    shared_vocab = _shared(vocab)
    n_train = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=passes * len(parts), desc=bar_desc, unit="partition")
    try:
        for _ in range(passes):
            bow_tasks = [dask.delayed(_bow_part, pure=True)(p, shared_pre, shared_vocab, sections, min_doc_terms, unit) for p in parts]
            for bows in _iter_computed(bow_tasks, client, max_in_flight):
                if bows:
                    lda.update(bows, chunksize=chunksize, update_every=update_every, decay=decay, offset=offset)
                    n_train += len(bows)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if n_train == 0:
        raise ValueError(
            f"fit_topics_streaming: no document has >= min_doc_terms={min_doc_terms} in-vocabulary terms "
            f"({num_docs} documents, {len(vocab)} terms); lower min_doc_terms/min_df or pass more text."
        )

    # 4. fitted state, ordered like TopicModel.fit (largest topic first)
    model = TopicModel.from_arrays(
        np.asarray(lda.state.get_lambda(), dtype=np.float64), np.asarray(lda.alpha, dtype=np.float64), vocab, pre,
        **template.get_params(),
    )
    cols = ["doc_id", "report_id", "sentence_id", "n_terms", "in_training", "dominant_topic", "probability"]
    if document_info:
        light = _shared(model.without_documents())
        info_tasks = [dask.delayed(_docinfo_part, pure=True)(p, light, sections, min_doc_terms, unit) for p in parts]
        frames = list(_iter_computed(info_tasks, client, max(max_in_flight, 4)))
        info = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
        model.set_document_info(info)
    else:
        model.set_document_info(pd.DataFrame({c: pd.Series(dtype=object) for c in cols[:5]}))
    model.fit_seconds_ = time.perf_counter() - t0
    model.n_train_documents_ = n_train
    return model


def _current_client():
    try:
        from distributed import get_client as _get

        return _get()
    except (ImportError, ValueError):
        return None


# --------------------------------------------------------------------------- images on many workers
_WORKER_EMBEDDERS: dict[str, Any] = {}


def _embed_chunk(params: dict, table: pd.DataFrame, threads: int | None) -> tuple[np.ndarray, pd.DataFrame, int, int]:
    """Embed one chunk on a worker with a worker-cached ImageEmbedder (cache shards are per call)."""
    import torch

    from radmine._io import fingerprint
    from radmine.images.embed import ImageEmbedder

    if threads:
        torch.set_num_threads(int(threads))
    key = fingerprint(params)
    emb = _WORKER_EMBEDDERS.get(key)
    if emb is None:
        emb = ImageEmbedder(**params).fit()
        _WORKER_EMBEDDERS.clear()
        _WORKER_EMBEDDERS[key] = emb
    X = emb.transform(table)
    return X, emb.quarantine_, int(emb.n_computed_), int(emb.n_cached_)


def embed_images(
    embedder: Any,
    images: Any,
    *,
    client: Any = None,
    chunk_size: int = 2048,
    threads_per_task: int | None = 1,
) -> np.ndarray:
    """:meth:`radmine.ImageEmbedder.transform` spread over Dask workers, result in input order.

    The images are cut into contiguous chunks; each task builds (once per
    worker process) an ``ImageEmbedder`` with ``embedder``'s parameters and
    embeds its chunk. All tasks share ``embedder.cache_dir``: every call
    commits its own shard files (``shard-<seq>-<random>``, written atomically,
    index last), so two workers never write the same file and a killed run
    resumes from all committed shards.

    Parameters
    ----------
    embedder : ImageEmbedder
        Its parameters are used (``num_workers`` is forced to 0 and
        ``progress`` to False on the workers: Dask workers are the parallelism).
    images : Corpus, DataFrame (``image_id, path``) or list of paths
    client : distributed.Client, optional
        Default: the current client, else Dask's local scheduler.
    chunk_size : int, default 2048
        Images per task.
    threads_per_task : int, optional
        ``torch.set_num_threads`` inside each task (1 = one core per worker).

    Returns
    -------
    ndarray of float32, shape (n_images, dim)
        NaN rows for unreadable images; ``embedder.quarantine_``,
        ``n_computed_``, ``n_cached_`` are set as by ``transform``.
    """
    import dask

    from radmine._validation import check_int
    from radmine.corpus import Corpus

    chunk_size = check_int(chunk_size, "chunk_size", "embed_images", min_value=1)
    if isinstance(images, Corpus):
        table = pd.DataFrame({"image_id": images.images["image_id"].to_numpy(), "path": images.image_paths().to_numpy()})
    elif isinstance(images, pd.DataFrame):
        if not {"image_id", "path"} <= set(images.columns):
            raise ValueError(f"embed_images: an images DataFrame needs columns ['image_id', 'path']; it has {list(images.columns)}.")
        table = images[["image_id", "path"]].reset_index(drop=True)
    elif isinstance(images, (list, tuple, pd.Series)):
        paths = [str(p) for p in images]
        table = pd.DataFrame({"image_id": paths, "path": paths})
    else:
        raise TypeError(f"embed_images: images must be a Corpus, an images DataFrame or a list of paths; got {type(images).__name__}.")
    params = {k: v for k, v in embedder.get_params().items()} if hasattr(embedder, "get_params") else None
    if params is None:
        import inspect

        names = [p for p in inspect.signature(type(embedder).__init__).parameters if p != "self"]
        params = {n: getattr(embedder, n) for n in names}
    params.update(num_workers=0, progress=False)
    if params.get("cache_dir") is not None:
        params["cache_dir"] = str(params["cache_dir"])
    if client is None:
        client = _current_client()
    chunks = [table.iloc[i : i + chunk_size] for i in range(0, len(table), chunk_size)]
    tasks = [dask.delayed(_embed_chunk, pure=False)(params, c, threads_per_task) for c in chunks]
    if client is not None:
        results = client.compute(tasks, sync=True)
    else:
        results = dask.compute(*tasks, scheduler="threads")
    if not hasattr(embedder, "backbone_"):
        embedder.fit()
    if results:
        X = np.concatenate([r[0] for r in results]).astype(np.float32, copy=False)
        qs = [r[1] for r in results if len(r[1])]
        from radmine.images.embed import QUARANTINE_COLUMNS

        embedder.quarantine_ = pd.concat(qs, ignore_index=True) if qs else pd.DataFrame(columns=QUARANTINE_COLUMNS)
        embedder.n_computed_ = sum(r[2] for r in results)
        embedder.n_cached_ = sum(r[3] for r in results)
    else:
        X = np.zeros((0, embedder.dim_), dtype=np.float32)
        embedder.n_computed_ = embedder.n_cached_ = 0
    return X
