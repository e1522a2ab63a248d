"""Read a folder of DICOM files (or a DICOMDIR) into a Corpus: one image row per instance.

Headers are read with :func:`pydicom.dcmread` (``force=False``: files
without the ``DICM`` prefix are not DICOM) and large values deferred, so the
pixel data is never decoded; its declared length is checked against the
file size to catch truncated files, and its declared size (``Rows x
Columns x frames x samples``) against ``max_image_pixels``
(:mod:`radmine.readers.limits`). Use :func:`radmine.load_pixels` for the
pixels themselves.

DICOM Structured Reports (SR) are read as report text: their
``ContentSequence`` (TEXT, CODE, NUM, DATE, ... items, in document order,
each CONTAINER a heading) becomes the report of their study.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radmine.corpus import QUARANTINE_COLUMNS, Corpus
from radmine.readers.tables import tidy_strings

logger = logging.getLogger(__name__)

SOURCE = "dicom"
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
DEFLATED_TSYNTAX = "1.2.840.10008.1.2.1.99"
IMAGE_TABLE_COLUMNS = [
    "image_id",
    "report_id",
    "patient_id",
    "study_id",
    "accession",
    "series_uid",
    "series_number",
    "instance_number",
    "modality",
    "body_part",
    "view",
    "plane",
    "pixel_spacing",
    "slice_thickness",
    "rows",
    "columns",
    "n_frames",
    "photometric",
    "bits_stored",
    "study_date",
    "series_description",
    "sop_class",
    "transfer_syntax",
    "path",
]
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # PixelData, FloatPixelData, DoubleFloatPixelData


def plane_from_orientation(iop: Any, oblique_below: float = 0.8) -> str | None:
    """Anatomical plane from ImageOrientationPatient (6 direction cosines).

    The slice normal is ``row x column``; its dominant patient axis gives
    ``"sagittal"`` (x), ``"coronal"`` (y) or ``"axial"`` (z). When the
    dominant component is below ``oblique_below`` the plane is ``"oblique"``.

    Parameters
    ----------
    iop : sequence of 6 float or None

    Returns
    -------
    str or None
        None when ``iop`` is missing or malformed.

    Examples
    --------
    >>> plane_from_orientation([1, 0, 0, 0, 1, 0])
    'axial'
    >>> plane_from_orientation([0, 1, 0, 0, 0, -1])
    'sagittal'
    """
    try:
        v = np.asarray([float(x) for x in iop], dtype=float)
    except (TypeError, ValueError):
        return None
    if v.shape != (6,):
        return None
    n = np.cross(v[:3], v[3:])
    norm = np.linalg.norm(n)
    if norm == 0 or not np.isfinite(norm):
        return None
    n = np.abs(n / norm)
    axis = int(np.argmax(n))
    if n[axis] < oblique_below:
        return "oblique"
    return ("sagittal", "coronal", "axial")[axis]


def _str(v: Any) -> str | None:
    if v is None:
        return None
    s = str(v).strip()
    return s or None


def _int(v: Any) -> int | None:
    try:
        if v is None or str(v).strip() == "":
            return None
        return int(float(str(v)))
    except (TypeError, ValueError):
        return None


def _float(v: Any) -> float | None:
    try:
        if v is None or str(v).strip() == "":
            return None
        return float(str(v))
    except (TypeError, ValueError):
        return None


def _spacing(ds) -> list[float] | None:
    for key in ("PixelSpacing", "ImagerPixelSpacing"):
        v = ds.get(key)
        if v is None:
            continue
        if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
            v = [v]
        try:
            vals = [float(x) for x in v]
        except (TypeError, ValueError):
            continue
        if vals:
            return vals[:2]
    return None


def _list_files(path: Path, quarantine: list[dict] | None = None) -> list[Path]:
    """Files under ``path`` (sorted, hidden skipped); folders that cannot be listed become quarantine rows."""
    files = []

    def unreadable(err: OSError) -> None:
        if quarantine is not None:
            quarantine.append(
                {"source": SOURCE, "item": str(err.filename or path),
                 "reason": f"cannot list folder ({err.strerror or type(err).__name__}); its files were not read",
                 "kept": False}
            )
        logger.warning("read_dicom: cannot list folder %s (%s).", err.filename, err.strerror)

    for dirpath, dirnames, filenames in os.walk(path, onerror=unreadable):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if not f.startswith("."):
                files.append(Path(dirpath) / f)
    return files


# -- structured reports ------------------------------------------------------
SR_MODALITY = "SR"
_SR_SKIP_VALUE_TYPES = {"IMAGE", "COMPOSITE", "WAVEFORM", "SCOORD", "SCOORD3D", "TCOORD"}
_SR_SKIP_RELATIONS = {"HAS OBS CONTEXT", "HAS ACQ CONTEXT"}  # who observed / how: not report content


def _concept(item) -> str | None:
    seq = item.get("ConceptNameCodeSequence")
    if seq:
        return _str(seq[0].get("CodeMeaning"))
    return None


def _sr_value(item) -> str | None:
    """The text of one content item (TEXT, CODE, NUM, DATE, TIME, DATETIME, PNAME, UIDREF)."""
    vt = str(item.get("ValueType", "")).upper()
    if vt == "TEXT":
        return _str(item.get("TextValue"))
    if vt == "CODE":
        seq = item.get("ConceptCodeSequence")
        return _str(seq[0].get("CodeMeaning")) if seq else None
    if vt == "NUM":
        seq = item.get("MeasuredValueSequence")
        if not seq:
            return None
        mv = seq[0]
        value = _str(mv.get("NumericValue"))
        units = mv.get("MeasurementUnitsCodeSequence")
        unit = _str(units[0].get("CodeValue") or units[0].get("CodeMeaning")) if units else None
        if unit in ("1", "{ratio}", "no units"):
            unit = None
        return f"{value} {unit}" if value and unit else value
    if vt in ("DATE", "TIME", "DATETIME", "PNAME", "UIDREF"):
        key = {"DATE": "Date", "TIME": "Time", "DATETIME": "DateTime", "PNAME": "PersonName", "UIDREF": "UID"}[vt]
        return _str(item.get(key))
    return None


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?", ":")) else text + "."


def sr_text(ds) -> str:
    """The report text of a DICOM Structured Report, as ``"HEADING: body"`` blocks.

    Walks the ``ContentSequence`` in document order. Each CONTAINER starts a
    block headed by its concept name (``FINDINGS:``, ``IMPRESSION:``, ...);
    TEXT items add their text, CODE items ``"Concept: Meaning."``, NUM items
    ``"Concept: value unit."``; a leaf item outside any container is a block
    headed by its own concept name. Image references, coordinates and observation context are
    skipped. Blocks are separated by a blank line, like the other readers'
    text.

    Parameters
    ----------
    ds : pydicom.Dataset
        An SR document (``ValueType`` CONTAINER at the root).

    Returns
    -------
    str
        ``""`` when the document has no text content.

    Examples
    --------
    >>> from pydicom.dataset import Dataset
    >>> def item(vt, name, **kw):
    ...     it = Dataset(); it.ValueType = vt
    ...     code = Dataset(); code.CodeValue = "1"; code.CodingSchemeDesignator = "99X"; code.CodeMeaning = name
    ...     it.ConceptNameCodeSequence = [code]
    ...     for k, v in kw.items(): setattr(it, k, v)
    ...     return it
    >>> findings = item("CONTAINER", "Findings", ContentSequence=[item("TEXT", "Finding", TextValue="Lungs are clear")])
    >>> sr = Dataset(); sr.ValueType = "CONTAINER"; sr.ContentSequence = [findings]
    >>> sr_text(sr)
    'FINDINGS: Lungs are clear.'
    """
    blocks: list[tuple[str | None, list[str]]] = []

    def walk(items, heading: str | None, lines: list[str] | None) -> None:
        for it in items or []:
            vt = str(it.get("ValueType", "")).upper()
            name = _concept(it)
            if vt == "CONTAINER":
                own: list[str] = []
                blocks.append((name, own))
                walk(it.get("ContentSequence"), name, own)
                continue
            if vt in _SR_SKIP_VALUE_TYPES or str(it.get("RelationshipType", "")).upper() in _SR_SKIP_RELATIONS:
                continue
            value = _sr_value(it)
            if value:
                if vt == "TEXT" or name is None or (heading and name.lower() == heading.lower()):
                    line = _sentence(value)
                else:
                    line = _sentence(f"{name}: {value}")
                if lines is None:  # a leaf at the top level: its own block
                    blocks.append((name, [_sentence(value)]))
                else:
                    lines.append(line)
            if it.get("ContentSequence"):  # items may carry modifiers / children
                walk(it.get("ContentSequence"), heading, lines)

    walk(ds.get("ContentSequence"), None, None)
    out = []
    for heading, lines in blocks:
        if not lines:
            continue
        body = " ".join(lines)
        out.append(f"{heading.upper()}: {body}" if heading else body)
    return "\n\n".join(out)


def _is_sr(ds) -> bool:
    return str(ds.get("Modality", "")).upper() == SR_MODALITY or (
        "ContentSequence" in ds and str(ds.get("ValueType", "")).upper() == "CONTAINER"
    )


def _sr_row(ds, path: Path) -> dict:
    seq = ds.get("ConceptNameCodeSequence")
    return {
        "sr_uid": _str(ds.get("SOPInstanceUID")),
        "patient_id": _str(ds.get("PatientID")),
        "study_id": _str(ds.get("StudyInstanceUID")),
        "accession": _str(ds.get("AccessionNumber")),
        "study_date": _str(ds.get("StudyDate")),
        "title": _str(seq[0].get("CodeMeaning")) if seq else None,
        "text": sr_text(ds),
        "path": str(path),
    }


def _dicomdir_files(path: Path) -> tuple[list[Path], list[dict]]:
    """Instance files listed by a DICOMDIR, and quarantine rows for records whose file is missing."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.fileset import FileSet

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fs = FileSet(pydicom.dcmread(path, force=False))
    except (InvalidDicomError, ValueError, KeyError, AttributeError, NotImplementedError, OSError) as err:
        raise ValueError(f"{path}: not a readable DICOMDIR ({type(err).__name__}: {err}).") from None
    files, missing = [], []
    for inst in fs:
        p = Path(inst.path)
        if p.is_file():
            files.append(p)
        else:
            missing.append({"source": SOURCE, "item": str(p), "reason": "file listed in DICOMDIR is missing", "kept": False})
    return files, missing


def _is_dicomdir(path: Path) -> bool:
    if path.name.upper().startswith("DICOMDIR"):
        return True
    try:
        import pydicom

        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["MediaStorageSOPClassUID"])
        return str(ds.file_meta.get("MediaStorageSOPClassUID", "")) == DICOMDIR_SOP_CLASS
    except Exception:  # noqa: BLE001
        return False


def read_instance(
    path: str | os.PathLike, *, force: bool = False, max_pixels: int | None = None
) -> tuple[dict | None, str | None]:
    """Read one file's header: ``(row, None)`` for an image instance, ``(None, reason)`` otherwise.

    Never raises on bad content; the reason says why the file is not a
    usable image (not DICOM, unreadable, truncated, no pixel data, larger
    than ``max_pixels``, a structured report, ...). pydicom's warnings about
    odd values are silenced (they are logged at DEBUG).
    """
    kind, value = read_file(path, force=force, max_pixels=max_pixels)
    if kind == "image":
        return value, None
    if kind == "report":
        return None, "structured report (SR): read as the report text of its study by read_dicom"
    return None, value


def read_file(path: str | os.PathLike, *, force: bool = False, max_pixels: int | None = None) -> tuple[str, Any]:
    """Read one file's header: ``("image", row)``, ``("report", sr_row)`` or ``("skip", reason)``.

    Never raises on bad content (see :func:`read_instance`).
    """
    from radmine.readers.limits import resolve

    limit = resolve("max_image_pixels", max_pixels)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = _read_file(Path(path), caught, force, limit)
    for w in caught:
        logger.debug("%s: %s", path, w.message)
    return out


def _read_file(path: Path, caught: list, force: bool, limit: int) -> tuple[str, Any]:
    import pydicom
    from pydicom.errors import InvalidDicomError

    from radmine.pixels import dicom_pixel_count, too_many_pixels

    try:
        size = path.stat().st_size
    except OSError as err:
        return "skip", f"cannot stat file ({err.strerror or err})"
    if not path.is_file():  # never open a FIFO: it would block
        return "skip", "not a regular file (FIFO, socket or device)"
    if size == 0:
        return "skip", "empty file (0 bytes)"
    try:
        with open(path, "rb"):
            pass
    except OSError as err:
        return "skip", f"cannot open file ({err.strerror or type(err).__name__})"
    try:
        ds = pydicom.dcmread(path, force=force, defer_size=1024)
    except InvalidDicomError:
        return "skip", "not a DICOM file (no 'DICM' prefix after the 128-byte preamble)"
    except (EOFError, OSError) as err:
        return "skip", f"truncated DICOM file ({type(err).__name__}: {err})"
    except Exception as err:  # noqa: BLE001 - corrupt headers raise many types
        return "skip", f"unreadable DICOM header ({type(err).__name__}: {err})"
    eof = [str(w.message) for w in caught if "end of file" in str(w.message).lower()]
    meta = getattr(ds, "file_meta", None)
    sop_class = ds.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta is not None else None)
    if str(sop_class or "") == DICOMDIR_SOP_CLASS:
        return "skip", "DICOMDIR (directory index, not an image instance)"
    pixel = None
    for tag in _PIXEL_TAGS:
        if tag in ds:
            pixel = ds.get_item(tag, keep_deferred=True)
            break
    if pixel is None and _is_sr(ds):
        if _str(ds.get("StudyInstanceUID")) is None:
            return "skip", "structured report without a StudyInstanceUID (0020,000D): no study to attach it to"
        return "report", _sr_row(ds, path)
    if pixel is None:
        if eof:
            return "skip", "truncated DICOM file (end of file reached inside the pixel data)"
        kind = getattr(sop_class, "name", None) or _str(sop_class) or "unknown SOP class"
        return "skip", f"no pixel data ({kind}): not an image, or the file is truncated before the pixel data"
    tsyntax = meta.get("TransferSyntaxUID") if meta is not None else None
    deflated = str(tsyntax or "") == DEFLATED_TSYNTAX  # offsets refer to the inflated stream
    tell, length = getattr(pixel, "value_tell", None), getattr(pixel, "length", None)
    if not deflated and tell is not None and length is not None and length != 0xFFFFFFFF and tell + length > size:
        return "skip", f"truncated DICOM file: pixel data needs {length} bytes from offset {tell}, file has {size} bytes"
    if eof:
        return "skip", "truncated DICOM file (end of file reached inside the pixel data)"
    n_values, what = dicom_pixel_count(ds)
    if n_values > limit:
        return "skip", too_many_pixels(n_values, limit, what)
    sop_uid = _str(ds.get("SOPInstanceUID"))
    if sop_uid is None:
        return "skip", "no SOPInstanceUID (0008,0018)"
    row = {
        "image_id": sop_uid,
        "patient_id": _str(ds.get("PatientID")),
        "study_id": _str(ds.get("StudyInstanceUID")),
        "accession": _str(ds.get("AccessionNumber")),
        "series_uid": _str(ds.get("SeriesInstanceUID")),
        "series_number": _int(ds.get("SeriesNumber")),
        "instance_number": _int(ds.get("InstanceNumber")),
        "modality": _str(ds.get("Modality")),
        "body_part": _str(ds.get("BodyPartExamined")),
        "view": _str(ds.get("ViewPosition")),
        "plane": plane_from_orientation(ds.get("ImageOrientationPatient")),
        "pixel_spacing": _spacing(ds),
        "slice_thickness": _float(ds.get("SliceThickness")),
        "rows": _int(ds.get("Rows")),
        "columns": _int(ds.get("Columns")),
        "n_frames": _int(ds.get("NumberOfFrames")) or 1,
        "photometric": _str(ds.get("PhotometricInterpretation")),
        "bits_stored": _int(ds.get("BitsStored")),
        "study_date": _str(ds.get("StudyDate")),
        "series_description": _str(ds.get("SeriesDescription")),
        "sop_class": getattr(sop_class, "name", None) or _str(sop_class),
        "transfer_syntax": getattr(tsyntax, "name", None) or _str(tsyntax),
        "path": str(path),
    }
    return "image", row


def read_dicom(
    path: str | os.PathLike,
    *,
    reports: str | os.PathLike | pd.DataFrame | Corpus | None = None,
    report_columns: dict[str, str] | None = None,
    name: str | None = None,
    force: bool = False,
    encoding: str = "utf-8",
    max_pixels: int | None = None,
    progress: bool = True,
) -> Corpus:
    """Read DICOM instances from a folder (recursively), a DICOMDIR or one file.

    Parameters
    ----------
    path : str or Path
        A folder (walked recursively, hidden files skipped), a ``DICOMDIR``
        file (its instance records are read), or a single DICOM file.
    reports : str, Path, DataFrame or Corpus, optional
        Report texts to attach: anything :func:`radmine.read_reports`
        accepts (with ``report_columns`` as its ``columns``), or a Corpus.
        A report joins a study when its ``study_id`` equals the
        StudyInstanceUID or its ``accession`` (or ``study_id``) equals the
        AccessionNumber. Either way the joined report's ``study_id`` becomes
        the StudyInstanceUID (its ``accession`` the AccessionNumber, a
        missing ``modality`` the images' modality), so images and reports
        share one study key and cited key images resolve. These reports
        win over DICOM SR documents of the same study.
    report_columns : dict, optional
        Column mapping passed to :func:`radmine.read_reports`.
    name : str, optional
        Corpus name (default: the folder name).
    force : bool, default False
        Passed to :func:`pydicom.dcmread`. ``False`` (default) quarantines
        files without the ``DICM`` prefix (raw datasets without file meta
        information, and every non-DICOM file); ``True`` tries to read them
        too (files that still fail, or have no pixel data, are quarantined).
    encoding : str, default "utf-8"
        Text encoding of a ``reports`` file (e.g. ``"cp1252"``).
    max_pixels : int, optional
        Images whose header declares more pixel values (``Rows x Columns x
        frames x samples``) are quarantined. Default: ``max_image_pixels``
        of :func:`radmine.readers.limits.get_limits`.
    progress : bool, default True
        Show a tqdm progress bar.

    Returns
    -------
    Corpus
        ``images``: one row per image instance with ``image_id``
        (SOPInstanceUID), ``report_id``, ``patient_id``, ``study_id``
        (StudyInstanceUID), ``accession``, ``series_uid``, ``series_number``,
        ``instance_number``, ``modality``, ``body_part``, ``view``
        (ViewPosition), ``plane`` (from ImageOrientationPatient),
        ``pixel_spacing`` ([row, col] mm), ``rows``, ``columns``,
        ``n_frames``, ``photometric``, ``path`` (absolute) and a few more.
        ``reports``: the given reports, plus one row per study without one:
        the text of the study's DICOM SR (``report_source="dicom-sr"``), or
        a stub with ``text=""``; their ``report_id`` is the
        StudyInstanceUID. An SR whose study has no images is a report
        without images.
        ``quarantine``: every file that is not a usable image instance or
        SR, with the reason (not DICOM, unreadable, truncated, no pixel
        data, too large, duplicate SOPInstanceUID, an SR superseded by a
        given report, ...) and folders that cannot be listed;
        ``kept=False`` for dropped files.
        Files in == ``images`` rows + SR reports used + dropped quarantine rows.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``path`` is a DICOMDIR pydicom cannot read, a folder none of whose
        files can be read (naming the first unreadable path), or ``reports``
        ids collide with study ids.

    Examples
    --------
    >>> from pathlib import Path
    >>> from pydicom.data import get_testdata_file
    >>> import radmine
    >>> c = radmine.read_dicom(Path(get_testdata_file("DICOMDIR")), progress=False)
    >>> c.n_images, c.images["patient_id"].nunique()
    (31, 2)
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"read_dicom: path not found: {path}")
    quarantine: list[dict] = []
    if path.is_dir():
        files = _list_files(path, quarantine)
    elif _is_dicomdir(path):
        files, missing = _dicomdir_files(path)
        quarantine += missing
    else:
        files = [path]
    rows: list[dict] = []
    srs: list[dict] = []
    seen: dict[str, str] = {}
    it = files
    if progress:
        from radmine._progress import tqdm

        it = tqdm(files, desc="read_dicom", unit="file")
    for f in it:
        kind, row = read_file(f, force=force, max_pixels=max_pixels)
        if kind == "skip":
            quarantine.append({"source": SOURCE, "item": str(f), "reason": row, "kept": False})
            continue
        if kind == "report":
            srs.append(row)
            continue
        first = seen.get(row["image_id"])
        if first is not None:
            quarantine.append(
                {"source": SOURCE, "item": str(f), "reason": f"duplicate SOPInstanceUID (same as {first})", "kept": False}
            )
            continue
        seen[row["image_id"]] = str(f)
        rows.append(row)
    _check_readable(path, files, rows, srs, quarantine)
    images = pd.DataFrame(rows, columns=IMAGE_TABLE_COLUMNS)
    for col in ("series_number", "instance_number", "rows", "columns", "n_frames", "bits_stored"):
        images[col] = images[col].astype("Int64")
    for f in images.loc[images["study_id"].isna(), "path"]:
        quarantine.append({"source": SOURCE, "item": f, "reason": "no StudyInstanceUID: image kept without a report", "kept": True})

    rep_table, report_of_study = _join_reports(images, reports, report_columns, srs, quarantine, encoding)
    images["report_id"] = images["study_id"].map(report_of_study)
    images = images[IMAGE_TABLE_COLUMNS]
    logger.info(  # no path: export folders are often named after a patient
        "read_dicom: %d file(s) -> %d image(s), %d quarantined.",
        len(files), len(images), sum(1 for q in quarantine if not q.get("kept")),
    )
    q = pd.DataFrame(quarantine, columns=QUARANTINE_COLUMNS + ["kept"])
    for df in (rep_table, images, q):
        tidy_strings(df)
    return Corpus(rep_table, images, quarantine=q, name=name or path.name or "dicom")


def _check_readable(path: Path, files: list[Path], rows: list, srs: list, quarantine: list[dict]) -> None:
    """One clear error when nothing under ``path`` could be read because of permissions."""
    if rows or srs:
        return
    denied = [q for q in quarantine if "cannot open" in q["reason"] or "cannot list" in q["reason"]
              or "cannot stat" in q["reason"]]
    if denied and len(denied) == len(quarantine):
        first = denied[0]
        raise ValueError(
            f"read_dicom: nothing under {path} could be read: {len(denied)} file(s)/folder(s) are unreadable, "
            f"e.g. {first['item']} ({first['reason']}). Check the permissions."
        )


STUB_COLUMNS = ["report_id", "patient_id", "study_id", "modality", "text", "accession", "study_date", "report_source"]


def _study_stubs(images: pd.DataFrame) -> pd.DataFrame:
    have = images[images["study_id"].notna()]
    if not len(have):
        return pd.DataFrame(columns=STUB_COLUMNS)
    g = have.groupby("study_id", sort=False)
    out = pd.DataFrame(
        {
            "report_id": list(g.groups),
            "patient_id": g["patient_id"].first().tolist(),
            "study_id": list(g.groups),
            "modality": g["modality"].agg(lambda s: "+".join(sorted({str(x) for x in s.dropna()})) or None).tolist(),
            "text": "",
            "accession": g["accession"].first().tolist(),
            "study_date": g["study_date"].first().tolist(),
            "report_source": None,
        }
    )
    return out


def _add_sr(stubs: pd.DataFrame, srs: list[dict], quarantine: list[dict]) -> pd.DataFrame:
    """Fill the stubs' text from each study's SR; SR studies without images become reports too."""
    if not srs:
        return stubs
    first: dict[str, dict] = {}
    for sr in srs:
        sid = sr["study_id"]
        if sid in first:
            quarantine.append({"source": SOURCE, "item": sr["path"], "kept": False,
                               "reason": f"another structured report of study {sid} was read first ({first[sid]['path']})"})
            continue
        if not sr["text"]:
            quarantine.append({"source": SOURCE, "item": sr["path"], "kept": True,
                               "reason": "structured report without text content; the study keeps an empty report"})
        first[sid] = sr
    stubs = stubs.copy()
    index = {sid: i for i, sid in enumerate(stubs["study_id"])}
    extra = []
    for sid, sr in first.items():
        if sid in index:
            i = stubs.index[index[sid]]
            stubs.loc[i, "text"] = sr["text"]
            stubs.loc[i, "report_source"] = "dicom-sr"
        else:
            extra.append({"report_id": sid, "patient_id": sr["patient_id"], "study_id": sid, "modality": None,
                          "text": sr["text"], "accession": sr["accession"], "study_date": sr["study_date"],
                          "report_source": "dicom-sr"})
    if extra:
        stubs = pd.concat([stubs, pd.DataFrame(extra, columns=STUB_COLUMNS)], ignore_index=True)
    stubs.attrs["sr_path"] = {sid: sr["path"] for sid, sr in first.items()}
    return stubs


def _join_reports(images: pd.DataFrame, reports, report_columns, srs: list[dict], quarantine: list[dict],
                  encoding: str = "utf-8") -> tuple[pd.DataFrame, dict]:
    stubs = _add_sr(_study_stubs(images), srs, quarantine)
    sr_path = stubs.attrs.get("sr_path", {})
    if reports is None:
        return stubs, dict(zip(stubs["study_id"], stubs["report_id"]))
    if isinstance(reports, Corpus):
        rep = reports.reports.copy()
    else:
        from radmine.readers.tables import read_reports

        given = read_reports(reports, columns=report_columns, encoding=encoding)
        rep = given.reports
        if len(given.quarantine):
            quarantine += given.quarantine.to_dict("records")
    by_study = {str(v): r for v, r in zip(rep["study_id"], rep["report_id"]) if v is not None and not pd.isna(v)}
    acc_col = "accession" if "accession" in rep.columns else "study_id"
    by_acc = {str(v): r for v, r in zip(rep[acc_col], rep["report_id"]) if v is not None and not pd.isna(v)}
    report_of_study, n_uid, n_acc = {}, 0, 0
    for sid, acc in zip(stubs["study_id"], stubs["accession"]):
        if sid in by_study:
            report_of_study[sid] = by_study[sid]
            n_uid += 1
        elif acc is not None and not pd.isna(acc) and str(acc) in by_acc:
            report_of_study[sid] = by_acc[str(acc)]
            n_acc += 1
    for sid, rid in report_of_study.items():
        if sid in sr_path:
            quarantine.append({"source": SOURCE, "item": sr_path[sid], "kept": False,
                               "reason": f"structured report not used: its study joined report {rid} of the given reports"})
    unmatched = stubs[~stubs["study_id"].isin(report_of_study)].copy()
    clash = sorted(set(unmatched["report_id"]) & set(rep["report_id"]))
    if clash:
        raise ValueError(
            f"read_dicom: report_id(s) {clash[:5]} of the given reports equal StudyInstanceUIDs of studies "
            f"they do not join; rename them."
        )
    rep = _one_study_key(rep, stubs, report_of_study, acc_col)
    logger.info(
        "read_dicom: %d stud(ies) joined to reports by StudyInstanceUID, %d by accession, %d without a report.",
        n_uid, n_acc, len(unmatched),
    )
    out = pd.concat([rep, unmatched], ignore_index=True, sort=False)
    report_of_study.update(dict(zip(unmatched["study_id"], unmatched["report_id"])))
    return out, report_of_study


def _one_study_key(rep: pd.DataFrame, stubs: pd.DataFrame, report_of_study: dict, acc_col: str) -> pd.DataFrame:
    """Give each joined report the StudyInstanceUID (and accession) of its study, whichever column joined it.

    A report joined by accession kept its own ``study_id`` (often the report
    id); the images carry the UID, so citations looked up in the report's
    study found no image. When several studies share one report, the first
    is its study (logged).
    """
    rep = rep.copy()
    acc_of = dict(zip(stubs["study_id"], stubs["accession"]))
    first_study: dict = {}
    shared: dict = {}
    for sid, rid in report_of_study.items():
        if rid in first_study:
            shared[rid] = shared.get(rid, 1) + 1
            continue
        first_study[rid] = sid
    for rid, n in shared.items():
        logger.info("read_dicom: report %s joins %d studies (shared accession); its study_id is %s.",
                    rid, n, first_study[rid])
    if "accession" not in rep.columns:
        rep["accession"] = rep["study_id"] if acc_col == "study_id" else None
    new_study = rep["report_id"].map(first_study)
    joined = new_study.notna()
    rep.loc[joined, "accession"] = [
        a if a is not None and not pd.isna(a) else acc_of.get(s)
        for a, s in zip(rep.loc[joined, "accession"], new_study[joined])
    ]
    rep.loc[joined, "study_id"] = new_study[joined]
    if "modality" in rep.columns:  # a RIS export without a modality column: the study's images say it
        mod_of = dict(zip(stubs["study_id"], stubs["modality"]))
        missing = joined & rep["modality"].isna()
        rep.loc[missing, "modality"] = new_study[missing].map(mod_of)
    return rep
