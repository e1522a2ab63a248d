"""``radmine label``: weak labels for any source, tables read and labelled in chunks, outputs written atomically."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

logger = logging.getLogger(__name__)


class AtomicTableWriter:
    """Append DataFrame chunks to a CSV or parquet file that appears at ``path`` only when complete.

    Chunks go to a temporary file in the same folder; :meth:`commit` renames
    it onto ``path`` (``os.replace``, atomic on one file system), and
    :meth:`abort` (or leaving a ``with`` block on an exception) deletes it. A
    killed run leaves ``path`` as it was before.

    Parameters
    ----------
    path : str or Path
        ``.parquet`` writes parquet, anything else CSV.
    index : bool, default True
        Write the DataFrame index (e.g. ``report_id``) as the first column.
    """

    def __init__(self, path: str | os.PathLike, *, index: bool = True) -> None:
        self.path = Path(path)
        self.index = index
        self.parquet = self.path.suffix.lower() == ".parquet"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        os.close(fd)
        self.tmp = Path(tmp)
        self._writer: Any = None
        self._schema: Any = None
        self._fh: Any = None
        self.n_rows = 0

    def write(self, df: pd.DataFrame) -> None:
        """Append one chunk (same columns as the first)."""
        if self.parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(df, preserve_index=self.index)
            if self._writer is None:
                self._schema = table.schema
                self._writer = pq.ParquetWriter(self.tmp, self._schema)
            else:
                table = table.cast(self._schema)
            self._writer.write_table(table)
        else:
            if self._fh is None:
                self._fh = open(self.tmp, "w", encoding="utf-8", newline="")
                df.to_csv(self._fh, index=self.index)
            else:
                df.to_csv(self._fh, index=self.index, header=False)
        self.n_rows += len(df)

    def commit(self, empty: pd.DataFrame | None = None) -> Path:
        """Finish the file and move it onto ``path``; ``empty`` gives the columns when no chunk was written."""
        if self._writer is None and self._fh is None and empty is not None:
            self.write(empty)
        if self._writer is not None:
            self._writer.close()
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Delete the temporary file; ``path`` is left as it was."""
        for closer in (self._writer, self._fh):
            try:
                if closer is not None:
                    closer.close()
            except Exception:  # noqa: BLE001 - cleaning up after another error
                pass
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> AtomicTableWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


def _chunks(source, *, text_column, id_column, columns, encoding, reports, chunksize):
    """(reports chunk, quarantine rows) pairs: a table streamed, any other source read whole."""
    from radmine.readers import detect_kind, read_source
    from radmine.readers.tables import iter_table, read_reports

    kind = detect_kind(source)
    if kind == "table":
        seen: set = set()
        checked = False
        for df, bad in iter_table(source, encoding=encoding, chunksize=chunksize):
            if not len(df) and checked:
                yield None, bad
                continue
            try:
                corpus = read_reports(df, columns=columns, id_column=id_column, text_column=text_column,
                                      name=Path(source).name)
            except ValueError as err:
                raise ValueError(str(err).replace("read_reports(DataFrame)", f"{source}")) from None
            checked = True
            rep = corpus.reports
            dup = rep["report_id"][rep["report_id"].isin(seen)]
            if len(dup):
                raise ValueError(
                    f"{source}: report_id must be unique; {dup.iloc[0]!r} (and {len(dup) - 1} more in this chunk) "
                    f"appeared in an earlier chunk."
                )
            seen.update(rep["report_id"])
            q = corpus.quarantine.to_dict("records") if len(corpus.quarantine) else []
            yield rep, list(bad) + q
        return
    if text_column or id_column:
        raise ValueError(f"--text-column/--id-column name the columns of a table; {source} is a {kind} source "
                         f"(use --column THEIRS=ours with --reports).")
    corpus = read_source(source, reports=reports, columns=columns, encoding=encoding, progress=False)
    yield corpus.reports, corpus.quarantine.to_dict("records") if len(corpus.quarantine) else []


def label_source(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    vocabulary: Any = "auto",
    mentions: str | os.PathLike | None = None,
    text_column: str | None = None,
    id_column: str | None = None,
    columns: dict[str, str] | None = None,
    encoding: str = "utf-8",
    reports: str | os.PathLike | None = None,
    chunksize: int = 20_000,
) -> dict[str, Any]:
    """Weak-label every report of ``source`` and write the labels (and mentions) atomically.

    A table (CSV/TSV/JSONL/parquet) is read and labelled ``chunksize``
    reports at a time, so memory does not grow with the file; any other
    source (Open-i archive, DICOM folder, MedPix folder, saved corpus) is
    read whole with :func:`radmine.readers.read_source`. Rows that cannot
    be read (e.g. a CSV line with the wrong number of fields) are written
    to ``<out>.quarantine.csv``.

    Parameters
    ----------
    source : str or Path
    out : str or Path
        ``.parquet`` or CSV; one row per report, index ``report_id``.
    vocabulary : str, path, dict or Vocabulary, default "auto"
        As :class:`~radmine.labels.labeler.WeakLabeler`; ``"auto"`` is decided
        on the first chunk that has reports (its ``modality`` column).
    mentions : str or Path, optional
        Also write the mention table here.
    text_column, id_column : str, optional
        Table columns holding the text / the report id.
    columns : dict, optional
        ``{their column: radmine column}``.
    encoding : str, default "utf-8"
    reports : str or Path, optional
        Reports table for a DICOM ``source``.
    chunksize : int, default 20000

    Returns
    -------
    dict
        ``labelled`` (reports), ``quarantined`` (rows not read),
        ``quarantine_file`` (path or None), ``first_problem`` (text or None).

    Raises
    ------
    ValueError
        If no report at all could be read, or on any reader error.
    """
    from radmine._validation import check_int
    from radmine.corpus import QUARANTINE_COLUMNS
    from radmine.labels.labeler import WeakLabeler

    check_int(chunksize, "chunksize", "label_source", min_value=1)
    labeler = None
    quarantine: list[dict] = []
    labelled = 0
    out = Path(out)
    with AtomicTableWriter(out) as lw:
        mw = AtomicTableWriter(mentions, index=False) if mentions else None
        try:
            for rep, bad in _chunks(source, text_column=text_column, id_column=id_column, columns=columns,
                                    encoding=encoding, reports=reports, chunksize=chunksize):
                quarantine += bad
                if rep is None or not len(rep):
                    continue
                if labeler is None:  # "auto" needs reports to look at
                    labeler = WeakLabeler(vocabulary=vocabulary).fit(rep)
                labels = labeler.transform(rep)
                lw.write(labels)
                if mw is not None:
                    mw.write(labeler.mentions_)
                labelled += len(labels)
                logger.info("radmine label: %d report(s) labelled so far.", labelled)
            dropped = [q for q in quarantine if not q.get("kept", False)]
            if not labelled:
                first = f"; first problem: {dropped[0]['item']}: {dropped[0]['reason']}" if dropped else ""
                raise ValueError(f"{source}: no report could be read ({len(dropped)} row(s) quarantined){first}.")
            lw.commit()
            if mw is not None:
                mw.commit()
        except BaseException:
            if mw is not None:
                mw.abort()
            raise
    qfile = None
    if quarantine:
        from radmine._io import atomic_write_text

        qfile = out.with_name(out.name + ".quarantine.csv")
        qdf = pd.DataFrame(quarantine, columns=QUARANTINE_COLUMNS + ["kept"])
        atomic_write_text(qfile, qdf.to_csv(index=False))
    dropped = [q for q in quarantine if not q.get("kept", False)]
    return {
        "labelled": labelled,
        "quarantined": len(dropped),
        "quarantine_file": str(qfile) if qfile else None,
        "first_problem": f"{dropped[0]['item']}: {dropped[0]['reason']}" if dropped else None,
    }
