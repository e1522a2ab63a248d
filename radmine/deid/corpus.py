"""De-identify a whole :class:`~radmine.Corpus`: report text, ids, dates, image headers and files.

This is what ``radmine deid`` and the ``deid`` part of ``radmine mine`` run.
One :class:`~radmine.deid.reports.Pseudonymizer` serves every table and every
DICOM header, so a report still joins its study, an image its report, and a
patient's dates keep their intervals.
"""

from __future__ import annotations

import logging
import re
import shutil
import warnings
from pathlib import Path

import pandas as pd

from radmine.corpus import Corpus
from radmine.deid.reports import SPAN_COLUMNS, Pseudonymizer, deidentify_reports, replace_spans
from radmine.deid.text import PHIDetector

logger = logging.getLogger(__name__)

#: Corpus names of the public, already de-identified corpora (``deid = "auto"`` leaves them as they are).
PUBLIC_CORPORA = ("openi", "medpix", "synthetic", "embedded")
#: Name of the table a de-identified corpus carries (offsets and labels, no PHI text).
SPANS_TABLE = "phi_spans"
_PATH_RX = re.compile(r"(?:[A-Za-z]:)?[\\/][^\s'\"]+")


def is_deidentified(corpus: Corpus) -> bool:
    """Whether ``corpus`` came out of :func:`deidentify_corpus` (it carries the PHI span table)."""
    return SPANS_TABLE in corpus.tables


def deidentify_corpus(
    corpus: Corpus,
    *,
    out: str | Path | None = None,
    method: str = "surrogate",
    key: str | bytes | None = None,
    random_state: int | None = None,
    burned_in: str = "quarantine",
    dates: str = "shift",
    detector: PHIDetector | None = None,
) -> Corpus:
    """A de-identified copy of ``corpus``.

    Parameters
    ----------
    corpus : Corpus
    out : str or Path, optional
        Folder for the de-identified image files (``out/images/``): DICOM
        files re-written by the PS3.15 Annex E basic profile (see
        :mod:`radmine.deid.dicom`), other image files re-encoded without their
        metadata. The ``path`` column then points there. Without ``out`` the
        image paths are dropped (with a warning), since folder and file names
        of exports often carry names or MRNs.
    method : {"surrogate", "mask", "tag"}, default "surrogate"
        See :func:`radmine.deidentify_reports`.
    key, random_state
        See :class:`~radmine.deid.reports.Pseudonymizer`.
    burned_in : {"quarantine", "keep"}, default "quarantine"
        Quarantine DICOM images that may carry burned-in text (see
        :func:`radmine.deid.dicom.burned_in_reason`).
    dates : {"shift", "remove"}, default "shift"
        DICOM dates moved by the patient's offset, or removed.
    detector : PHIDetector, optional

    Returns
    -------
    Corpus
        Scrubbed reports, pseudonymised ids in every table, de-identified
        image files, quarantine rows for the images left out (items in =
        images out + quarantined), and the ``phi_spans`` table
        (``report_id, column, start, end, label, source, orig_start, orig_end``).

    Raises
    ------
    ValueError
        If ``method``, ``burned_in`` or ``dates`` is not an allowed value.
    """
    from radmine._validation import check_option

    check_option(burned_in, "burned_in", "deidentify_corpus", ("quarantine", "keep"))
    check_option(dates, "dates", "deidentify_corpus", ("shift", "remove"))
    if not isinstance(corpus, Corpus):
        raise TypeError(f"deidentify_corpus: corpus must be a radmine Corpus, got {type(corpus).__name__}.")
    pz = Pseudonymizer(key, random_state=random_state)
    detector = detector or PHIDetector()
    reports, spans = deidentify_reports(corpus.reports, method=method, pseudonymizer=pz, detector=detector)
    images, img_spans, quarantine = _images(corpus, pz, detector, method, out, burned_in, dates)
    spans = pd.concat([spans, img_spans], ignore_index=True) if len(img_spans) else spans
    old_q = corpus.quarantine.copy()
    if len(old_q):  # source quarantine rows name files and ids: pseudonymise them, strip paths from reasons
        old_q["item"] = [pz.pseudonym(str(v), "item") for v in old_q["item"]]
        old_q["reason"] = [_PATH_RX.sub("<path>", str(v)) for v in old_q["reason"]]
    q = pd.concat([old_q, quarantine], ignore_index=True) if len(quarantine) else old_q
    annotations = corpus.annotations.copy()
    for col in ("report_id", "image_id"):
        if col in annotations.columns:
            annotations[col] = [pz.pseudonym(v, col.removesuffix("_id")) for v in annotations[col]]
    for col in ("value", "term"):
        if col in annotations.columns and len(annotations):
            texts = annotations[col].tolist()
            found = detector.find_many([t if isinstance(t, str) else "" for t in texts])
            annotations[col] = [replace_spans(t, f, method, pseudonymizer=pz)[0] if isinstance(t, str) else t
                                for t, f in zip(texts, found)]
    extra = {k: v for k, v in corpus.tables.items() if k not in ("reports", "images", "sentences", "links", "annotations", "quarantine")}
    if extra:
        warnings.warn(f"deidentify_corpus: left out extra table(s) {sorted(extra)}: radmine cannot tell which of "
                      f"their columns hold PHI.", stacklevel=2)
    name = corpus.name if any(p in corpus.name.lower() for p in PUBLIC_CORPORA) else "deidentified"
    result = Corpus(reports, images, annotations=annotations, quarantine=q, name=name, root=None,
                    **{SPANS_TABLE: spans[SPAN_COLUMNS]})
    logger.info("deidentify_corpus: %d report(s), %d image(s) kept, %d image(s) quarantined, %d PHI span(s).",
                result.n_reports, result.n_images, len(quarantine), len(spans))
    return result


def _images(corpus: Corpus, pz: Pseudonymizer, detector: PHIDetector, method: str, out, burned_in: str, dates: str):
    from radmine.deid.dicom import deidentify_dicom_file

    images = corpus.images
    empty_spans = pd.DataFrame(columns=SPAN_COLUMNS)
    empty_q = pd.DataFrame(columns=["source", "item", "reason", "kept"])
    if not len(images):
        return images.copy(), empty_spans, empty_q
    # columns by name (ids, dates, names, contact) and captions/descriptions as text
    tmp = images.rename(columns={"caption": "text"}) if "caption" in images.columns else images.assign(text="")
    tmp = tmp.rename(columns={"image_id": "report_id", "report_id": "parent_report_id"})
    scrubbed, spans = deidentify_reports(tmp, method=method, pseudonymizer=pz, detector=detector,
                                         id_columns=["report_id", "parent_report_id", "patient_id", "study_id",
                                                     "accession", "series_uid"])
    scrubbed = scrubbed.rename(columns={"report_id": "image_id", "parent_report_id": "report_id"})
    # the image pseudonym must be the one DICOM gets (a UID stays a UID); report ids match the reports table
    scrubbed["image_id"] = [pz.pseudonym(v, "image") for v in images["image_id"]]
    scrubbed["report_id"] = [pz.pseudonym(v, "report") for v in images["report_id"]]
    if "caption" in images.columns:
        scrubbed = scrubbed.rename(columns={"text": "caption"})
        spans = spans.assign(column="caption")
        spans["report_id"] = spans["report_id"].map(dict(zip(scrubbed["image_id"], scrubbed["report_id"])))
    else:
        scrubbed = scrubbed.drop(columns=["text"])
        spans = spans.iloc[:0]
    q_rows = []
    if "path" in images.columns:
        paths = corpus.image_paths() if hasattr(corpus, "image_paths") else images["path"]
        new_paths = []
        keep = []
        if out is None:
            warnings.warn("deidentify_corpus: image paths dropped (pass out= to write de-identified image copies); "
                          "folder and file names of exports often carry names or MRNs.", stacklevel=3)
        folder = Path(out) / "images" if out is not None else None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        for new_id, src in zip(scrubbed["image_id"], paths):
            if src is None or (isinstance(src, float) and src != src) or folder is None:
                new_paths.append(None)
                keep.append(True)
                continue
            src = Path(str(src))
            safe = re.sub(r"[^A-Za-z0-9.-]", "_", str(new_id))
            if _is_dicom(src):
                dst = folder / f"{safe}.dcm"
                uid, reason = deidentify_dicom_file(src, dst, pseudonymizer=pz, burned_in=burned_in, dates=dates)
                if reason is not None:
                    q_rows.append({"source": "deid", "item": str(new_id), "reason": reason, "kept": False})
                    keep.append(False)
                    new_paths.append(None)
                    continue
                new_paths.append(str(dst.resolve()))
            elif src.is_file():
                dst = folder / f"{safe}{src.suffix.lower()}"
                _copy_image(src, dst)
                new_paths.append(str(dst.resolve()))
            else:
                new_paths.append(None)
            keep.append(True)
        scrubbed["path"] = new_paths
        scrubbed = scrubbed[keep].reset_index(drop=True)
    return scrubbed, spans, pd.DataFrame(q_rows, columns=["source", "item", "reason", "kept"])


def _is_dicom(path: Path) -> bool:
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _copy_image(src: Path, dst: Path) -> None:
    """Copy an image file, re-encoding PNG/JPEG/TIFF without metadata (text chunks, EXIF)."""
    try:
        from PIL import Image

        with Image.open(src) as img:
            img.load()
            clean = Image.new(img.mode, img.size)
            clean.putdata(list(img.getdata())) if img.mode == "P" else clean.paste(img)
            if img.mode == "P" and img.getpalette():
                clean.putpalette(img.getpalette())
            clean.save(dst, format=img.format or "PNG")
    except Exception:  # noqa: BLE001 - not an image PIL reads: copy the bytes
        shutil.copyfile(src, dst)


def write_deidentified(source, out: str | Path, *, method: str = "surrogate", key: str | bytes | None = None,
                       random_state: int | None = None, burned_in: str = "quarantine", progress: bool = False,
                       **read_kwargs) -> Corpus:
    """Read ``source`` (anything :func:`radmine.read_corpus` accepts), de-identify it and save it to ``out``.

    ``read_kwargs`` go to :func:`radmine.readers.read_source` (``reports=``,
    ``columns=``, ``encoding=``).

    ``out`` then holds a saved corpus (``corpus.json`` + tables), the
    de-identified images in ``out/images/`` and the PHI span table
    ``out/phi_spans.csv`` (offsets and labels only). ``radmine mine out``
    mines it without de-identifying again.

    Returns
    -------
    Corpus
    """
    from radmine.readers import read_source

    out = Path(out)
    corpus = read_source(source, progress=progress, **read_kwargs)
    clean = deidentify_corpus(corpus, out=out, method=method, key=key, random_state=random_state, burned_in=burned_in)
    clean.save(out)
    clean.tables[SPANS_TABLE].to_csv(out / "phi_spans.csv", index=False)
    return clean


def deid_wanted(enabled: str, source, corpus: Corpus) -> bool:
    """Whether ``radmine mine`` de-identifies this corpus (``[deid] enabled``); see :func:`deid_decision`."""
    return deid_decision(enabled, source, corpus)[0]


def deid_decision(enabled: str, source, corpus: Corpus) -> tuple[bool, str]:
    """Whether ``radmine mine`` de-identifies this corpus (``[deid] enabled``), and why.

    ``"auto"`` is on for user data -- a DICOM folder or a CSV/TSV/JSONL/parquet
    export, or a saved corpus that did not come out of :func:`deidentify_corpus`
    -- and off for the public corpora (Open-i, MedPix, already de-identified,
    whose ``XXXX`` tokens radmine handles as they are) and the embedded
    synthetic corpus. ``"on"`` and ``"off"`` force it.

    Returns
    -------
    (bool, str)
        Whether to de-identify, and the reason in a few words (shown in the
        report when the ``deid`` step is skipped).

    Raises
    ------
    ValueError
        If ``enabled`` is not "auto", "on" or "off".
    """
    from radmine._validation import check_option

    check_option(enabled, "deid.enabled", "radmine mine", ("auto", "on", "off"))
    if enabled != "auto":
        return (True, "[deid] enabled = on") if enabled == "on" else (False, "[deid] enabled = off")
    if source is None:
        return False, "public corpus, already de-identified (the embedded synthetic corpus)"
    if is_deidentified(corpus):
        return False, "already de-identified (a corpus written by radmine deid)"
    from radmine.readers import detect_kind

    kind = detect_kind(source)
    if kind in ("openi", "medpix") or (kind == "corpus" and any(p in corpus.name.lower() for p in PUBLIC_CORPORA)):
        return False, "public corpus, already de-identified"
    return True, "user data"
