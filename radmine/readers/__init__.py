"""Readers: turn a real archive, folder or table into a :class:`radmine.Corpus`.

=====================  ==========================================================
:func:`read_openi`     Open-i IU chest X-ray release (``.tgz`` or folder of XML)
:func:`read_medpix`    MedPix 2.0 folder (``Case_topic.json`` + ``Descriptions.json``)
:func:`read_dicom`     folder of DICOM files, a DICOMDIR, or one DICOM file
:func:`read_reports`   CSV / TSV / JSONL / JSON / parquet / DataFrame export
:func:`read_corpus`    any of the above, or a saved corpus, chosen by what the path is
=====================  ==========================================================
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from radmine.corpus import MANIFEST, Corpus
from radmine.readers.dicom import read_dicom
from radmine.readers.medpix import read_medpix
from radmine.readers.openi import read_openi
from radmine.readers.tables import is_table_file, read_reports

__all__ = ["read_corpus", "read_dicom", "read_medpix", "read_openi", "read_reports", "read_source", "detect_kind"]

ACCEPTED = (
    "a saved radmine corpus folder (with corpus.json), the Open-i .tgz or a folder of Open-i XML, "
    "a MedPix 2.0 folder (with Case_topic.json), a folder of DICOM files or a DICOMDIR, "
    "or a CSV/TSV/JSONL/JSON/parquet table of reports"
)


def _looks_dicom(path: Path) -> bool:
    try:
        if not path.is_file():  # a FIFO would block the open
            return False
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _folder_has_dicom(path: Path, limit: int = 200) -> bool:
    seen = 0
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for f in sorted(filenames):
            if f.upper().startswith("DICOMDIR") or f.lower().endswith(".dcm"):
                return True
            if _looks_dicom(Path(dirpath) / f):
                return True
            seen += 1
            if seen >= limit:
                return False
    return False


def _folder_has_xml(path: Path) -> bool:
    return next(path.rglob("*.xml"), None) is not None


def detect_kind(source: str | os.PathLike) -> str:
    """What ``source`` is: ``"corpus"``, ``"openi"``, ``"medpix"``, ``"dicom"`` or ``"table"``.

    Raises
    ------
    FileNotFoundError
        If ``source`` does not exist.
    ValueError
        If it is none of the accepted kinds (the message lists them).
    """
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"read_corpus: path not found: {path}")
    if path.is_dir():
        if (path / MANIFEST).is_file():
            return "corpus"
        if (path / "Case_topic.json").is_file():
            return "medpix"
        if (path / "DICOMDIR").is_file() or _folder_has_dicom(path):
            return "dicom"
        if _folder_has_xml(path):
            return "openi"
    elif not path.is_file():
        raise ValueError(f"read_corpus: {path} is not a regular file or folder (a FIFO, socket or device).")
    else:
        name = path.name.lower()
        if path.name == MANIFEST:
            return "corpus"
        if path.name == "Case_topic.json":
            return "medpix"
        if name.endswith((".tgz", ".tar.gz", ".tar")) or name.endswith(".xml"):
            return "openi"
        if path.name.upper().startswith("DICOMDIR") or name.endswith(".dcm") or _looks_dicom(path):
            return "dicom"
        if is_table_file(path):
            return "table"
        try:
            if tarfile.is_tarfile(path):
                return "openi"
        except OSError as err:
            raise ValueError(f"read_corpus: cannot tell what {path} is ({err}); expected {ACCEPTED}.") from None
    raise ValueError(f"read_corpus: cannot tell what {path} is; expected {ACCEPTED}.")


def read_corpus(source: str | os.PathLike, *, progress: bool = True, **kwargs) -> Corpus:
    """Load a corpus from whatever ``source`` is.

    Dispatch:

    * a folder with ``corpus.json`` -> :meth:`Corpus.load`
    * a folder with ``Case_topic.json`` (or that file) -> :func:`read_medpix`
    * a ``DICOMDIR``, a ``.dcm`` / DICOM file, or a folder of DICOM files -> :func:`read_dicom`
    * a ``.tgz``/``.tar`` archive, an ``.xml`` file or a folder of XML -> :func:`read_openi`
    * a ``.csv``/``.tsv``/``.jsonl``/``.json``/``.parquet`` file -> :func:`read_reports`

    Parameters
    ----------
    source : str or Path
    progress : bool, default True
        Progress bar for the readers that walk many items.
    **kwargs
        Passed to the chosen reader (e.g. ``dicom_table=`` for Open-i,
        ``columns=`` for tables).

    Returns
    -------
    Corpus

    Raises
    ------
    FileNotFoundError
        If ``source`` does not exist.
    ValueError
        If ``source`` is none of the accepted kinds (naming the path and the
        accepted kinds).

    Examples
    --------
    >>> import radmine
    >>> corpus = radmine.read_corpus("../shared/corpora/medpix-2.0", progress=False)  # doctest: +SKIP
    """
    kind = detect_kind(source)
    path = Path(source)
    if kind == "corpus":
        return Corpus.load(path if path.is_dir() else path.parent)
    if kind == "medpix":
        return read_medpix(path if path.is_dir() else path.parent, progress=progress, **kwargs)
    if kind == "dicom":
        return read_dicom(path, progress=progress, **kwargs)
    if kind == "openi":
        return read_openi(path, progress=progress, **kwargs)
    return read_reports(path, **kwargs)


def read_source(
    source: str | os.PathLike,
    *,
    reports: str | os.PathLike | None = None,
    columns: dict[str, str] | None = None,
    encoding: str = "utf-8",
    dicom_table: str | os.PathLike | None = None,
    progress: bool = True,
) -> Corpus:
    """:func:`read_corpus` with the options of the command line and the ``[read]`` settings.

    Parameters
    ----------
    source : str or Path
        Anything :func:`read_corpus` accepts.
    reports : str or Path, optional
        A reports table joined to a DICOM ``source`` (``--reports``).
    columns : dict, optional
        ``{their column: radmine column}`` (``--column THEIRS=ours``): for a
        table ``source``, or for the ``reports`` table of a DICOM source.
    encoding : str, default "utf-8"
        Text encoding of the table read (``--encoding``), e.g. ``"cp1252"``.
    dicom_table : str or Path, optional
        Open-i only: the DICOM metadata table.
    progress : bool, default True

    Returns
    -------
    Corpus

    Raises
    ------
    ValueError
        If an option does not apply to the kind of ``source`` (naming both).
    """
    kind = detect_kind(source)
    columns = dict(columns or {})
    if reports and kind != "dicom":
        raise ValueError(f"--reports (read.reports_file) joins reports to a DICOM folder; {source} is a {kind} source.")
    if columns and kind not in ("dicom", "table"):
        raise ValueError(f"--column (read.columns) maps the columns of a table; {source} is a {kind} source.")
    if columns and kind == "dicom" and not reports:
        raise ValueError("--column (read.columns) for a DICOM folder maps the columns of --reports; give --reports FILE.")
    if dicom_table and kind != "openi":
        raise ValueError(f"read.dicom_table is for the Open-i release; {source} is a {kind} source.")
    kwargs: dict = {}
    if kind == "dicom":
        kwargs = {"reports": reports or None, "report_columns": columns or None, "encoding": encoding}
    elif kind == "table":
        kwargs = {"columns": columns or None, "encoding": encoding}
    elif kind == "openi" and dicom_table:
        kwargs = {"dicom_table": dicom_table}
    return read_corpus(source, progress=progress, **kwargs)
