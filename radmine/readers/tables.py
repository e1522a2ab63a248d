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

import gzip
import io
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radmine.corpus import QUARANTINE_COLUMNS, SECTION_COLUMNS, Corpus

logger = logging.getLogger(__name__)

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


def _decode(raw: bytes, path: Path, encoding: str) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        col = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        bad = raw[err.start : err.end]
        raise ValueError(
            f"{path}: cannot decode as {encoding} at byte offset {err.start} (line {line}, column {col}): "
            f"byte(s) {bad!r} ({err.reason}). Pass encoding='latin-1' (or the export's encoding) "
            f"to read_reports."
        ) from None


def read_table(path: str | os.PathLike, *, encoding: str = "utf-8", sep: str | None = None) -> pd.DataFrame:
    """Read one table file (CSV/TSV/JSONL/JSON/parquet, optionally ``.gz``) as strings-preserving DataFrame.

    CSV/TSV cells are read as strings (ids such as MRNs keep leading zeros);
    empty cells become missing. JSON lines are parsed one by one so a bad
    line is reported with its number.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        On undecodable bytes (naming the byte offset and line), malformed
        JSON (naming the line), or an unknown file kind.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"read_reports: file not found: {path}")
    suf = _suffix(path)
    if suf in (".parquet", ".pq"):
        try:
            return pd.read_parquet(path)
        except Exception as err:  # noqa: BLE001 - pyarrow raises its own types
            raise ValueError(f"{path}: not a readable parquet file ({type(err).__name__}: {err}).") from None
    if suf not in (".csv", ".tsv", ".txt", ".jsonl", ".ndjson", ".json"):
        raise ValueError(
            f"{path}: unknown table kind {suf or '(no suffix)'!r}; expected one of {list(TABLE_SUFFIXES)} "
            f"(optionally .gz)."
        )
    raw = path.read_bytes()
    if path.name.lower().endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise ValueError(f"{path}: not a valid gzip file ({err}).") from None
    text = _decode(raw, path, encoding)
    if text.startswith("\ufeff"):
        text = text[1:]
    if suf in (".jsonl", ".ndjson"):
        records = []
        for i, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}, line {i}: not valid JSON ({err.msg} at column {err.colno}).") from None
            if not isinstance(rec, dict):
                raise ValueError(f"{path}, line {i}: expected a JSON object per line, found {type(rec).__name__}.")
            records.append(rec)
        return pd.DataFrame.from_records(records)
    if suf == ".json":
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
        return pd.DataFrame.from_records(obj)
    if sep is None:
        sep = "\t" if suf == ".tsv" else ","
    try:
        return pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_values=[""])
    except pd.errors.ParserError as err:
        raise ValueError(f"{path}: malformed {suf[1:].upper()} ({err}).") from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: the file is empty (no header row).") from None


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
        ``kept=True``).

    Notes
    -----
    * Required: ``report_id`` and either ``text`` or at least one section
      column (``findings``, ``impression``, ...). With sections but no text,
      ``text`` is built as ``"FINDINGS: ...\\n\\nIMPRESSION: ..."`` blocks.
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
    if isinstance(source, pd.DataFrame):
        df, label = source.copy(), "DataFrame"
        default_name = "reports"
    elif isinstance(source, (str, os.PathLike)):
        df, label = read_table(source, encoding=encoding, sep=sep), str(source)
        default_name = Path(source).name.split(".")[0] or "reports"
    else:
        raise TypeError(
            f"read_reports: source must be a file path or a pandas DataFrame; got {type(source).__name__}."
        )
    df = _rename(df, columns, id_column, text_column, label)

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

    quarantine = []
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
    if quarantine:
        logger.warning("read_reports(%s): %d report(s) have no usable text (kept with text=None).",
                       label, len(quarantine))

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
