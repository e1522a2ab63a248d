"""Read reports from a table: a PACS / RIS export as CSV, TSV, JSONL, JSON, parquet or a DataFrame.

This is how users' own data gets into radmine without code: point
:func:`read_reports` at the export and say which of its columns hold the
report id, the text and (optionally) the patient, study, modality and
section fields::

    corpus = radmine.read_reports(
        "export.csv",
        columns={"Accession": "study_id", "MRN": "patient_id", "ReportText": "text"},
        id_column="Accession",
    )
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import logging
import os
import warnings
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radmine.corpus import QUARANTINE_COLUMNS, SECTION_COLUMNS, Corpus

logger = logging.getLogger(__name__)
csv.field_size_limit(2**31 - 1)  # report texts can be longer than the csv module's 128 KiB default

#: Section columns (in this order) used to build ``text`` when a table has sections but no text.
TEXT_SECTION_ORDER = ["comparison", "indication", "history", "technique", "findings", "impression", "conclusion"]
ID_FIELDS = ["report_id", "patient_id", "study_id"]
TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".jsonl", ".ndjson", ".json", ".parquet", ".pq")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for suf in TABLE_SUFFIXES:
        if name.endswith(suf):
            return suf
    return Path(name).suffix


def is_table_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a file :func:`read_table` can read (by its suffix)."""
    p = Path(path)
    return p.is_file() and _suffix(p) in TABLE_SUFFIXES


def _decode_error(path: Path, encoding: str, raw: bytes, err: UnicodeDecodeError, line: int, line_offset: int) -> ValueError:
    """The error for undecodable bytes: byte offset, line and column, and how to pass the encoding."""
    col = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
    bad = raw[err.start : err.end]
    return ValueError(
        f"{path}: cannot decode as {encoding} at byte offset {line_offset + err.start} (line {line}, column {col}): "
        f"byte(s) {bad!r} ({err.reason}). Pass the export's encoding: encoding='cp1252' (or 'latin-1', ...) "
        f"to read_reports, --encoding on the command line, or encoding under [read] in the config."
    )


def _open_binary(path: Path):
    try:
        if path.name.lower().endswith(".gz"):
            return gzip.open(path, "rb")
        return open(path, "rb")
    except PermissionError as err:
        raise ValueError(f"{path}: cannot open the file ({err.strerror}).") from None


def _read_block(fh, path: Path, size: int = 1 << 20) -> bytes:
    try:
        return fh.read(size)
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{path}: not a valid gzip file or truncated ({type(err).__name__}: {err}).") from None


def _too_large(path: Path, max_bytes: int, read: int) -> ValueError:
    from radmine.readers.limits import mib

    return ValueError(
        f"{path}: the table is larger than the limit of {mib(max_bytes)} "
        f"{'after gzip decompression ' if path.name.lower().endswith('.gz') else ''}(read so far: "
        f"{mib(read)}); raise it with radmine.readers.limits.set_limits(max_table_bytes=...) "
        f"or the [read] setting max_table_mb, or stream it (radmine label reads in chunks)."
    )


def _lines(path: Path, encoding: str, max_bytes: int | None) -> Iterator[str]:
    """Decoded lines (each ending in ``"\\n"`` but the last) of a text file, streamed; gzip inflated on the fly.

    The file is decoded in 1 MiB blocks and split on ``"\\n"`` only (the
    csv module handles ``"\\r\\n"``; other line-break characters inside a
    cell stay text). Raises ``ValueError`` naming the byte offset, line and
    column of the first undecodable byte, on a corrupt gzip stream, and
    when the (inflated) text passes ``max_bytes``.
    """
    decoder = codecs.getincrementaldecoder(encoding)()
    offset, pending, first = 0, "", True
    with _open_binary(path) as fh:
        while True:
            raw = _read_block(fh, path)
            if max_bytes is not None and offset + len(raw) > max_bytes:
                raise _too_large(path, max_bytes, offset + len(raw))
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError:
                raise _locate_decode_error(path, encoding) from None
            if first and text:
                text = text.removeprefix("\ufeff")
                first = False
            offset += len(raw)
            pending += text
            parts = pending.split("\n")
            pending = parts.pop()
            for part in parts:
                yield part + "\n"
            if not raw:
                break
    if pending:
        yield pending


def _read_text(path: Path, encoding: str, max_bytes: int | None) -> str:
    """The whole (inflated, decoded) text of a file, refused past ``max_bytes``."""
    blocks, n = [], 0
    with _open_binary(path) as fh:
        while block := _read_block(fh, path):
            n += len(block)
            if max_bytes is not None and n > max_bytes:
                raise _too_large(path, max_bytes, n)
            blocks.append(block)
    try:
        text = b"".join(blocks).decode(encoding)
    except UnicodeDecodeError:
        raise _locate_decode_error(path, encoding) from None
    return text.removeprefix("\ufeff")


def _locate_decode_error(path: Path, encoding: str) -> ValueError:
    """Re-read ``path`` line by line to name the first undecodable byte (the slow path, only on error)."""
    offset = 0
    with _open_binary(path) as fh:
        for n, raw in enumerate(fh, start=1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError as err:
                return _decode_error(path, encoding, raw, err, n, offset)
            offset += len(raw)
    return ValueError(f"{path}: cannot decode as {encoding}; pass the export's encoding (encoding=, --encoding).")


def check_table_size(path: str | os.PathLike, max_bytes: int | None = None) -> int:
    """Bytes of a table file after gzip decompression, streamed; ``ValueError`` past the limit.

    For readers that hand a file to another library (which would inflate it
    into memory whole). ``max_bytes`` defaults to ``max_table_bytes``.
    """
    from radmine.readers.limits import resolve

    path = Path(path)
    limit = resolve("max_table_bytes", max_bytes)
    n = 0
    with _open_binary(path) as fh:
        while block := _read_block(fh, path):
            n += len(block)
            if n > limit:
                raise _too_large(path, limit, n)
    return n


def _mangle(header: list[str]) -> list[str]:
    """Unique column names, pandas-style: a repeated name gets ``.1``, ``.2``, ..."""
    seen: dict[str, int] = {}
    out = []
    for h in header:
        name = h
        while name in seen:
            seen[h] += 1
            name = f"{h}.{seen[h]}"
        seen.setdefault(name, 0)
        out.append(name)
    return out


def _frame(records: list[list[str]], header: list[str]) -> pd.DataFrame:
    cols = list(zip(*records)) if records else [()] * len(header)
    return pd.DataFrame(
        {h: pd.Series([v if v != "" else None for v in col], dtype="str") for h, col in zip(header, cols)},
        columns=header,
    )


def iter_table(
    path: str | os.PathLike,
    *,
    encoding: str = "utf-8",
    sep: str | None = None,
    chunksize: int = 50_000,
    max_bytes: int | None = None,
    whole: bool = False,
) -> Iterator[tuple[pd.DataFrame, list[dict]]]:
    """Read a table file in chunks: ``(rows, quarantine)`` pairs, memory bounded by ``chunksize``.

    CSV/TSV rows whose field count differs from the header's are not read
    (a wrong count shifts every later column); each becomes a quarantine
    row naming its line number and the counts. Cells are strings; empty
    cells are missing. JSON lines are parsed one by one. ``.json`` and
    parquet files are read whole (parquet by record batch).

    Parameters
    ----------
    path : str or Path
    encoding : str, default "utf-8"
    sep : str, optional
        CSV separator (default ``","``, ``"\t"`` for ``.tsv``).
    chunksize : int, default 50000
        Rows per chunk.
    max_bytes : int, optional
        Refuse text files larger than this after decompression (``None``:
        no limit; :func:`read_table` passes ``max_table_bytes``).
    whole : bool, default False
        Decode the whole file at once (faster; memory grows with the file,
        up to ``max_bytes``) instead of streaming it in 1 MiB blocks.

    Yields
    ------
    rows : DataFrame
    quarantine : list of dict
        ``source, item, reason, kept`` rows for the malformed lines of this chunk.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        On undecodable bytes (byte offset, line, column), malformed JSON
        (line), an empty file, an unknown file kind, a table over
        ``max_bytes``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"read_reports: file not found: {path}")
    if not path.is_file():
        raise ValueError(f"read_reports: {path} is not a regular file.")
    suf = _suffix(path)
    if suf in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
            for batch in pf.iter_batches(batch_size=chunksize):
                yield batch.to_pandas(), []
        except PermissionError as err:
            raise ValueError(f"{path}: cannot open the file ({err.strerror}).") from None
        except Exception as err:  # noqa: BLE001 - pyarrow raises its own types
            raise ValueError(f"{path}: not a readable parquet file ({type(err).__name__}: {err}).") from None
        return
    if suf not in (".csv", ".tsv", ".txt", ".jsonl", ".ndjson", ".json"):
        raise ValueError(
            f"{path}: unknown table kind {suf or '(no suffix)'!r}; expected one of {list(TABLE_SUFFIXES)} "
            f"(optionally .gz)."
        )
    lines = io.StringIO(_read_text(path, encoding, max_bytes), newline="") if whole else _lines(path, encoding, max_bytes)
    if suf in (".jsonl", ".ndjson"):
        records = []
        for i, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}, line {i}: not valid JSON ({err.msg} at column {err.colno}).") from None
            if not isinstance(rec, dict):
                raise ValueError(f"{path}, line {i}: expected a JSON object per line, found {type(rec).__name__}.")
            records.append(rec)
            if len(records) >= chunksize:
                yield pd.DataFrame.from_records(records), []
                records = []
        if records:
            yield pd.DataFrame.from_records(records), []
        return
    if suf == ".json":
        text = "".join(lines)
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}, char {err.pos})."
            ) from None
        if isinstance(obj, dict):
            for key in ("reports", "records", "data"):
                if isinstance(obj.get(key), list):
                    obj = obj[key]
                    break
        if not isinstance(obj, list) or not all(isinstance(r, dict) for r in obj):
            raise ValueError(f"{path}: expected a JSON list of objects (one per report).")
        yield pd.DataFrame.from_records(obj), []
        return
    yield from _iter_csv(path, lines, "\t" if sep is None and suf == ".tsv" else (sep or ","), chunksize, suf)


def _well_formed(text_io: io.StringIO, sep: str) -> list[str] | None:
    """The header when every record has the header's field count (one fast C-level pass), else None."""
    try:
        reader = csv.reader(text_io, delimiter=sep)
        header = next(reader)
        while not header:
            header = next(reader)
        width = len(header)
        ok = all(len(rec) == width for rec in reader if rec)
    except (StopIteration, csv.Error):
        ok = False
    text_io.seek(0)
    return header if ok else None


def _iter_csv(path: Path, lines: Iterator[str], sep: str, chunksize: int, suf: str):
    if isinstance(lines, io.StringIO):  # the whole text: let pandas' C parser build a well-formed table
        header = _well_formed(lines, sep)
        if header is not None:
            df = pd.read_csv(lines, sep=sep, dtype=str, keep_default_na=False, na_values=[""], index_col=False,
                             header=0, names=_mangle([h.strip() for h in header]), engine="c")
            if len(df) <= chunksize:
                yield df, []
                return
            for start in range(0, len(df), chunksize):
                yield df.iloc[start : start + chunksize].reset_index(drop=True), []
            return
    reader = csv.reader(lines, delimiter=sep)
    try:
        header = next(reader)
        while not header:  # blank lines before the header
            header = next(reader)
    except StopIteration:
        raise ValueError(f"{path}: the file is empty (no header row).") from None
    except csv.Error as err:
        raise ValueError(f"{path}: malformed {suf[1:].upper()} header ({err}).") from None
    header = _mangle([h.strip() for h in header])
    width = len(header)
    records: list[list[str]] = []
    bad: list[dict] = []
    last = reader.line_num
    while True:
        try:
            rec = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            raise ValueError(f"{path}, line {last + 1}: malformed {suf[1:].upper()} ({err}).") from None
        first_line, last = last + 1, reader.line_num
        if not rec:
            continue
        if len(rec) != width:
            bad.append({
                "source": "read_reports", "item": f"{path.name} line {first_line}", "kept": False,
                "reason": f"expected {width} fields (as in the header), found {len(rec)}; row not read "
                          f"(an unquoted separator in a cell? quote cells that contain {sep!r})",
            })
            continue
        records.append(rec)
        if len(records) >= chunksize:
            yield _frame(records, header), bad
            records, bad = [], []
    yield _frame(records, header), bad  # also the header-only table


def read_table(
    path: str | os.PathLike, *, encoding: str = "utf-8", sep: str | None = None, max_bytes: int | None = None
) -> pd.DataFrame:
    """Read one table file (CSV/TSV/JSONL/JSON/parquet, optionally ``.gz``) as strings-preserving DataFrame.

    CSV/TSV cells are read as strings (ids such as MRNs keep leading zeros);
    empty cells become missing. Rows whose field count differs from the
    header's are left out (never shifted into the wrong columns): they are
    listed in ``df.attrs["quarantine"]`` with their line numbers, and a
    warning says how many. JSON lines are parsed one by one so a bad line
    is reported with its number.

    Parameters
    ----------
    path : str or Path
    encoding : str, default "utf-8"
    sep : str, optional
    max_bytes : int, optional
        Size limit of the (decompressed) text; default ``max_table_bytes``
        of :func:`radmine.readers.limits.get_limits`.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        On undecodable bytes (naming the byte offset and line), malformed
        JSON (naming the line), an unknown file kind or a file over the
        size limit.
    """
    df, quarantine = _read_all(path, encoding, sep, max_bytes)
    df.attrs["quarantine"] = quarantine
    if quarantine:
        warnings.warn(_bad_rows_message(path, quarantine, len(df), 'df.attrs["quarantine"]'), stacklevel=2)
    return df


def _read_all(path, encoding: str, sep: str | None, max_bytes: int | None) -> tuple[pd.DataFrame, list[dict]]:
    from radmine.readers.limits import resolve

    limit = resolve("max_table_bytes", max_bytes)
    frames, quarantine = [], []
    for df, bad in iter_table(path, encoding=encoding, sep=sep, chunksize=1_000_000, max_bytes=limit, whole=True):
        frames.append(df)
        quarantine += bad
    df = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return df, quarantine


def _bad_rows_message(path, quarantine: list[dict], n_read: int, where: str) -> str:
    first = quarantine[0]
    return (
        f"{path}: {len(quarantine):,} row(s) have the wrong number of fields and were not read "
        f"({n_read:,} read); first: {first['item']}: {first['reason'].split(';')[0]}. See {where}."
    )


def _as_id(v: Any) -> Any:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return None
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    s = str(v).strip()
    return s or None


def _is_missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))


def tidy_strings(df: pd.DataFrame) -> pd.DataFrame:
    """Give object columns holding only strings / missing values pandas' inferred string dtype.

    Makes tables built row by row look exactly like their parquet round trip
    (``Corpus.save`` / ``Corpus.load``). Columns of lists or mixed types are
    left alone. Works in place and returns ``df``.
    """
    for col in df.columns:
        s = df[col]
        if s.dtype != object:
            continue
        vals = s.tolist()
        if any(isinstance(v, str) for v in vals) and all(v is None or isinstance(v, str) or _is_missing(v) for v in vals):
            df[col] = pd.Series(vals, index=df.index)
    return df


def build_text(row: Mapping[str, Any], sections: list[str]) -> str:
    """``"HEADING: body"`` blocks (blank line between) from the non-empty ``sections`` of ``row``."""
    blocks = []
    for s in sections:
        v = row.get(s)
        if isinstance(v, str) and v.strip():
            blocks.append(f"{s.upper().replace('_', ' ')}: {v.strip()}")
    return "\n\n".join(blocks)


def read_reports(
    source: str | os.PathLike | pd.DataFrame,
    *,
    columns: Mapping[str, str] | None = None,
    id_column: str | None = None,
    text_column: str | None = None,
    images: str | os.PathLike | pd.DataFrame | None = None,
    image_columns: Mapping[str, str] | None = None,
    encoding: str = "utf-8",
    sep: str | None = None,
    name: str | None = None,
    root: str | os.PathLike | None = None,
) -> Corpus:
    """Load reports from any PACS/RIS export table into a :class:`~radmine.Corpus`.

    Parameters
    ----------
    source : str, Path or DataFrame
        A ``.csv``, ``.tsv``, ``.jsonl``/``.ndjson``, ``.json`` (a list of
        objects) or ``.parquet`` file (``.gz`` allowed for the text kinds),
        or a DataFrame.
    columns : mapping of str -> str, optional
        Renames the source's columns to radmine names, e.g.
        ``{"ReportText": "text", "MRN": "patient_id", "Accession": "study_id"}``.
        Columns not named are kept as they are.
    id_column : str, optional
        The source column holding the report id (shortcut for
        ``columns={id_column: "report_id"}``). If it is also mapped to
        another name in ``columns`` (e.g. ``"study_id"``), it is copied to both.
    text_column : str, optional
        The source column holding the full report text (shortcut for
        ``columns={text_column: "text"}``).
    images : str, Path or DataFrame, optional
        An image table (same file kinds) with at least ``image_id`` and
        ``report_id`` after ``image_columns`` renaming.
    image_columns : mapping of str -> str, optional
        Renames for the image table.
    encoding : str, default "utf-8"
        Text encoding of CSV/JSON files.
    sep : str, optional
        CSV separator (default ``","``, ``"\\t"`` for ``.tsv``).
    name : str, optional
        Corpus name (default: the file stem or ``"reports"``).
    root : str or Path, optional
        Folder that relative image paths are resolved against.

    Returns
    -------
    Corpus
        ``reports`` with ``report_id, patient_id, study_id, modality, text``
        and every other source column; ``quarantine`` lists reports whose
        text cell was missing or not a string (kept, with ``text=None``;
        ``kept=True``) and CSV/TSV rows with the wrong number of fields
        (``item`` ``"<file> line <n>"``, not read, ``kept=False``; a
        warning says how many). Rows in == reports + dropped quarantine rows.

    Notes
    -----
    * Required: ``report_id`` and either ``text`` or at least one section
      column (``findings``, ``impression``, ...). With sections but no text,
      ``text`` is built as ``"FINDINGS: ...\\n\\nIMPRESSION: ..."`` blocks.
    * ``report_id`` defaults to the ``accession`` column when the table has
      no report id (RIS exports keyed by accession number).
    * ``patient_id`` and ``study_id`` default to ``report_id`` when absent
      (one report per patient/study; logged). ``modality`` defaults to None.
    * Ids are converted to strings (``12.0`` -> ``"12"``); CSV cells are read
      as strings so leading zeros survive.

    Raises
    ------
    ValueError
        Missing required columns (naming the source, the missing columns and
        the available ones), missing or duplicated report ids, undecodable
        bytes (file, byte offset and line), malformed JSON (file and line).
    FileNotFoundError
        If ``source`` is a path that does not exist.

    Examples
    --------
    >>> import pandas as pd, radmine
    >>> df = pd.DataFrame({"Accession": ["A1", "A2"], "MRN": ["007", "008"],
    ...                    "ReportText": ["FINDINGS: Clear lungs.", "FINDINGS: Small effusion."]})
    >>> c = radmine.read_reports(df, columns={"Accession": "report_id", "MRN": "patient_id",
    ...                                       "ReportText": "text"})
    >>> c.reports[["report_id", "patient_id", "study_id"]].values.tolist()
    [['A1', '007', 'A1'], ['A2', '008', 'A2']]
    """
    from radmine._validation import reject_dask

    reject_dask(source, "read_reports", "radmine.dask.read_reports_sharded(paths)")
    bad_rows: list[dict] = []
    if isinstance(source, pd.DataFrame):
        df, label = source.copy(), "DataFrame"
        default_name = "reports"
    elif isinstance(source, (str, os.PathLike)):
        df, bad_rows = _read_all(source, encoding, sep, None)
        label = str(source)
        if bad_rows:
            warnings.warn(_bad_rows_message(source, bad_rows, len(df), "corpus.quarantine"), stacklevel=2)
        default_name = Path(source).name.split(".")[0] or "reports"
    else:
        raise TypeError(
            f"read_reports: source must be a file path or a pandas DataFrame; got {type(source).__name__}."
        )
    df = _rename(df, columns, id_column, text_column, label)
    if "report_id" not in df.columns and "accession" in df.columns:
        logger.info("read_reports(%s): no report_id column; using the accession as the report id.", label)
        df.insert(0, "report_id", df["accession"])

    sections = [c for c in TEXT_SECTION_ORDER + SECTION_COLUMNS if c in df.columns]
    sections = list(dict.fromkeys(sections))
    missing = []
    if "report_id" not in df.columns:
        missing.append("report_id")
    if "text" not in df.columns and not sections:
        missing.append("text")
    if missing:
        raise ValueError(
            f"read_reports({label}): missing required column(s) {missing}; available columns: "
            f"{list(df.columns)}. Map yours with columns={{'YourIdColumn': 'report_id', "
            f"'YourTextColumn': 'text'}} (or id_column=/text_column=)."
        )
    df = df.reset_index(drop=True)
    df["report_id"] = df["report_id"].map(_as_id)
    no_id = df.index[df["report_id"].isna()]
    if len(no_id):
        raise ValueError(
            f"read_reports({label}): {len(no_id)} row(s) have no report_id, e.g. rows {no_id[:5].tolist()} "
            f"(0-based, header excluded)."
        )
    dup = df["report_id"].duplicated(keep=False)
    if dup.any():
        ex = df.loc[dup, "report_id"].drop_duplicates().head(5).tolist()
        rows = df.index[dup][:6].tolist()
        raise ValueError(
            f"read_reports({label}): report_id must be unique; {int(df.loc[dup, 'report_id'].nunique())} id(s) "
            f"repeat, e.g. {ex} (rows {rows})."
        )
    for col in ("patient_id", "study_id"):
        if col in df.columns:
            df[col] = df[col].map(_as_id)
            fill = df[col].isna()
            if fill.any():
                logger.info("read_reports(%s): %d row(s) without %s; using report_id.", label, int(fill.sum()), col)
                df.loc[fill, col] = df.loc[fill, "report_id"]
        else:
            logger.info("read_reports(%s): no %s column; using report_id (one report per %s).",
                        label, col, col.split("_")[0])
            df[col] = df["report_id"]
    if "modality" not in df.columns:
        df["modality"] = None

    quarantine = list(bad_rows)
    for s in sections:
        df[s] = df[s].map(lambda v: v if isinstance(v, str) and v.strip() else None)
    if "text" not in df.columns:
        logger.info("read_reports(%s): no text column; building text from sections %s.", label, sections)
        df["text"] = [build_text(r, sections) or None for r in df[sections].to_dict("records")]
    texts = []
    for rid, v in zip(df["report_id"], df["text"]):
        if isinstance(v, str):
            texts.append(v)
            continue
        texts.append(None)
        why = "text is missing" if _is_missing(v) else f"text is not a string ({type(v).__name__})"
        quarantine.append({"source": "read_reports", "item": rid, "reason": f"{why}; kept with text=None", "kept": True})
    df["text"] = pd.Series(texts, index=df.index, dtype=object)
    tidy_strings(df)
    if len(quarantine) > len(bad_rows):
        logger.warning("read_reports(%s): %d report(s) have no usable text (kept with text=None).",
                       label, len(quarantine) - len(bad_rows))

    lead = ["report_id", "patient_id", "study_id", "modality", "text"]
    df = df[lead + [c for c in df.columns if c not in lead]]
    img = None
    if images is not None:
        img = _read_images(images, image_columns, encoding, sep)
    q = pd.DataFrame(quarantine, columns=QUARANTINE_COLUMNS + ["kept"]) if quarantine else None
    return Corpus(df, img, quarantine=q, name=name or default_name, root=root)


def _rename(df: pd.DataFrame, columns, id_column, text_column, label: str) -> pd.DataFrame:
    columns = dict(columns or {})
    for arg, target in ((id_column, "report_id"), (text_column, "text")):
        if arg is None:
            continue
        if arg not in df.columns:
            raise ValueError(
                f"read_reports({label}): column {arg!r} (for {target}) not found; available columns: {list(df.columns)}."
            )
        if arg in columns and columns[arg] != target:
            df[f"__{target}"] = df[arg]
            columns[f"__{target}"] = target
        else:
            columns[arg] = target
    unknown = [k for k in columns if k not in df.columns]
    if unknown:
        raise ValueError(
            f"read_reports({label}): columns mapping names source column(s) {unknown} that are not in the table; "
            f"available columns: {[c for c in df.columns if not str(c).startswith('__')]}."
        )
    targets = list(columns.values())
    clash = sorted({t for t in targets if targets.count(t) > 1})
    if clash:
        raise ValueError(f"read_reports({label}): several source columns map to {clash}; map each name once.")
    keep_existing = [c for c in df.columns if c in targets and c not in columns]
    if keep_existing:
        # an unmapped column already has a target name: the mapping wins, keep the old one aside
        df = df.rename(columns={c: f"{c}_original" for c in keep_existing})
    return df.rename(columns=columns)


def _read_images(images, image_columns, encoding, sep) -> pd.DataFrame:
    if isinstance(images, pd.DataFrame):
        img, label = images.copy(), "images DataFrame"
    else:
        img, label = read_table(images, encoding=encoding, sep=sep), str(images)
    if image_columns:
        unknown = [k for k in image_columns if k not in img.columns]
        if unknown:
            raise ValueError(
                f"read_reports(images={label}): image_columns names {unknown} not in the table; "
                f"available columns: {list(img.columns)}."
            )
        img = img.rename(columns=dict(image_columns))
    missing = [c for c in ("image_id", "report_id") if c not in img.columns]
    if missing:
        raise ValueError(
            f"read_reports(images={label}): missing required column(s) {missing}; available columns: "
            f"{list(img.columns)}. Map yours with image_columns=."
        )
    for col in ("image_id", "report_id", "patient_id", "study_id"):
        if col in img.columns:
            img[col] = img[col].map(_as_id)
    return tidy_strings(img.reset_index(drop=True))
