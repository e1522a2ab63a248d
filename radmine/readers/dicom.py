"""Read a folder of DICOM files (or a DICOMDIR) into a Corpus: one image row per instance.

Headers are read with :func:`pydicom.dcmread` (``force=False``: files
without the ``DICM`` prefix are not DICOM) and large values deferred, so the
pixel data is never decoded; its declared length is checked against the
file size to catch truncated files. Use :func:`radmine.load_pixels` for the
pixels themselves.
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


def _list_files(path: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if not f.startswith("."):
                files.append(Path(dirpath) / f)
    return files


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


def read_instance(path: str | os.PathLike, *, force: bool = False) -> tuple[dict | None, str | None]:
    """Read one file's header: ``(row, None)`` for an image instance, ``(None, reason)`` otherwise.

    Never raises on bad content; the reason says why the file is not a
    usable image (not DICOM, truncated, no pixel data, ...). pydicom's
    warnings about odd values are silenced (they are logged at DEBUG).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = _read_instance(Path(path), caught, force)
    for w in caught:
        logger.debug("%s: %s", path, w.message)
    return out


def _read_instance(path: Path, caught: list, force: bool) -> tuple[dict | None, str | None]:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        size = path.stat().st_size
    except OSError as err:
        return None, f"cannot stat file ({err})"
    if size == 0:
        return None, "empty file (0 bytes)"
    try:
        ds = pydicom.dcmread(path, force=force, defer_size=1024)
    except InvalidDicomError:
        return None, "not a DICOM file (no 'DICM' prefix after the 128-byte preamble)"
    except (EOFError, OSError) as err:
        return None, f"truncated DICOM file ({type(err).__name__}: {err})"
    except Exception as err:  # noqa: BLE001 - corrupt headers raise many types
        return None, f"unreadable DICOM header ({type(err).__name__}: {err})"
    eof = [str(w.message) for w in caught if "end of file" in str(w.message).lower()]
    meta = getattr(ds, "file_meta", None)
    sop_class = ds.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta is not None else None)
    if str(sop_class or "") == DICOMDIR_SOP_CLASS:
        return None, "DICOMDIR (directory index, not an image instance)"
    pixel = None
    for tag in _PIXEL_TAGS:
        if tag in ds:
            pixel = ds.get_item(tag, keep_deferred=True)
            break
    if pixel is None:
        if eof:
            return None, "truncated DICOM file (end of file reached inside the pixel data)"
        kind = getattr(sop_class, "name", None) or _str(sop_class) or "unknown SOP class"
        return None, f"no pixel data ({kind}): not an image, or the file is truncated before the pixel data"
    tsyntax = meta.get("TransferSyntaxUID") if meta is not None else None
    deflated = str(tsyntax or "") == DEFLATED_TSYNTAX  # offsets refer to the inflated stream
    tell, length = getattr(pixel, "value_tell", None), getattr(pixel, "length", None)
    if not deflated and tell is not None and length is not None and length != 0xFFFFFFFF and tell + length > size:
        return None, f"truncated DICOM file: pixel data needs {length} bytes from offset {tell}, file has {size} bytes"
    if eof:
        return None, "truncated DICOM file (end of file reached inside the pixel data)"
    sop_uid = _str(ds.get("SOPInstanceUID"))
    if sop_uid is None:
        return None, "no SOPInstanceUID (0008,0018)"
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
    return row, None


def read_dicom(
    path: str | os.PathLike,
    *,
    reports: str | os.PathLike | pd.DataFrame | Corpus | None = None,
    report_columns: dict[str, str] | None = None,
    name: str | None = None,
    force: bool = False,
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
        AccessionNumber.
    report_columns : dict, optional
        Column mapping passed to :func:`radmine.read_reports`.
    name : str, optional
        Corpus name (default: the folder name).
    force : bool, default False
        Passed to :func:`pydicom.dcmread`. ``False`` (default) quarantines
        files without the ``DICM`` prefix (raw datasets without file meta
        information, and every non-DICOM file); ``True`` tries to read them
        too (files that still fail, or have no pixel data, are quarantined).
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
        ``reports``: the given reports, plus one stub row (``text=""``) per
        study without one; stub ``report_id`` is the StudyInstanceUID.
        ``quarantine``: every file that is not a usable image instance, with
        the reason (not DICOM, truncated, no pixel data, duplicate
        SOPInstanceUID, ...); ``kept=False`` for dropped files.
        Files in == ``images`` rows + dropped quarantine rows.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``path`` is a DICOMDIR pydicom cannot read, or ``reports`` ids
        collide with study ids.

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
        files = _list_files(path)
    elif _is_dicomdir(path):
        files, missing = _dicomdir_files(path)
        quarantine += missing
    else:
        files = [path]
    rows: list[dict] = []
    seen: dict[str, str] = {}
    it = files
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(files, desc="read_dicom", unit="file")
    for f in it:
        row, reason = read_instance(f, force=force)
        if row is None:
            quarantine.append({"source": SOURCE, "item": str(f), "reason": reason, "kept": False})
            continue
        first = seen.get(row["image_id"])
        if first is not None:
            quarantine.append(
                {"source": SOURCE, "item": str(f), "reason": f"duplicate SOPInstanceUID (same as {first})", "kept": False}
            )
            continue
        seen[row["image_id"]] = str(f)
        rows.append(row)
    images = pd.DataFrame(rows, columns=IMAGE_TABLE_COLUMNS)
    for col in ("series_number", "instance_number", "rows", "columns", "n_frames", "bits_stored"):
        images[col] = images[col].astype("Int64")
    for f in images.loc[images["study_id"].isna(), "path"]:
        quarantine.append({"source": SOURCE, "item": f, "reason": "no StudyInstanceUID: image kept without a report", "kept": True})

    rep_table, report_of_study = _join_reports(images, reports, report_columns)
    images["report_id"] = images["study_id"].map(report_of_study)
    images = images[IMAGE_TABLE_COLUMNS]
    logger.info(
        "read_dicom(%s): %d file(s) -> %d image(s), %d quarantined.",
        path, len(files), len(images), sum(1 for q in quarantine if not q.get("kept")),
    )
    q = pd.DataFrame(quarantine, columns=QUARANTINE_COLUMNS + ["kept"])
    for df in (rep_table, images, q):
        tidy_strings(df)
    return Corpus(rep_table, images, quarantine=q, name=name or path.name or "dicom")


def _study_stubs(images: pd.DataFrame) -> pd.DataFrame:
    have = images[images["study_id"].notna()]
    if not len(have):
        return pd.DataFrame(columns=["report_id", "patient_id", "study_id", "modality", "text", "accession", "study_date"])
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
        }
    )
    return out


def _join_reports(images: pd.DataFrame, reports, report_columns) -> tuple[pd.DataFrame, dict]:
    stubs = _study_stubs(images)
    if reports is None:
        return stubs, dict(zip(stubs["study_id"], stubs["report_id"]))
    if isinstance(reports, Corpus):
        rep = reports.reports.copy()
    else:
        from radmine.readers.tables import read_reports

        rep = read_reports(reports, columns=report_columns).reports
    by_study = {str(v): r for v, r in zip(rep["study_id"], rep["report_id"]) if v is not None}
    acc_col = "accession" if "accession" in rep.columns else "study_id"
    by_acc = {str(v): r for v, r in zip(rep[acc_col], rep["report_id"]) if v is not None and not pd.isna(v)}
    report_of_study, n_uid, n_acc = {}, 0, 0
    for sid, acc in zip(stubs["study_id"], stubs["accession"]):
        if sid in by_study:
            report_of_study[sid] = by_study[sid]
            n_uid += 1
        elif acc is not None and acc in by_acc:
            report_of_study[sid] = by_acc[acc]
            n_acc += 1
    unmatched = stubs[~stubs["study_id"].isin(report_of_study)].copy()
    clash = sorted(set(unmatched["report_id"]) & set(rep["report_id"]))
    if clash:
        raise ValueError(
            f"read_dicom: report_id(s) {clash[:5]} of the given reports equal StudyInstanceUIDs of studies "
            f"they do not join; rename them."
        )
    logger.info(
        "read_dicom: %d stud(ies) joined to reports by StudyInstanceUID, %d by accession, %d without a report.",
        n_uid, n_acc, len(unmatched),
    )
    out = pd.concat([rep, unmatched], ignore_index=True, sort=False)
    report_of_study.update(dict(zip(unmatched["study_id"], unmatched["report_id"])))
    return out, report_of_study
