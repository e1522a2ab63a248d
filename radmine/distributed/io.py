"""Sharded report I/O on Dask: many files in, sharded parquet out."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

import pandas as pd

from radmine._validation import check_int
from radmine.distributed.client import as_dask_frame, compute

__all__ = ["read_reports_sharded", "to_parquet"]

_TABLE_SUFFIXES = (".parquet", ".pq", ".csv", ".tsv", ".jsonl", ".ndjson", ".json", ".csv.gz", ".tsv.gz", ".jsonl.gz", ".ndjson.gz", ".json.gz")


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

    ddf = as_dask_frame(ddf, "ddf")
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
