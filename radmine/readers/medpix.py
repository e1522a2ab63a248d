"""Read MedPix 2.0 (``Case_topic.json``, ``Descriptions.json``, ``images/``, ``uid_list.json``).

One report per case (the case's history, exam, findings, differential and
diagnosis), one image row per described key image with its caption,
modality, plane and location, and the published case-level ``train``/``dev``
splits. Works on the original release (RGB PNGs up to 512 px) and on
reduced copies (grayscale, <= 256 px): the reader only reads PNG headers
(``width``, ``height``, ``mode``); :func:`radmine.load_pixels` converts RGB
to gray.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from radmine.corpus import QUARANTINE_COLUMNS, Corpus
from radmine.readers.tables import tidy_strings

logger = logging.getLogger(__name__)

SOURCE = "medpix"
#: Case field -> (report column, text heading), in text order.
CASE_SECTIONS = [
    ("History", "history", "HISTORY"),
    ("Exam", "exam", "EXAM"),
    ("Findings", "findings", "FINDINGS"),
    ("Differential Diagnosis", "differential", "DIFFERENTIAL DIAGNOSIS"),
    ("Case Diagnosis", "diagnosis", "DIAGNOSIS"),
]
EMPTY_VALUES = {"", "n/a", "na", "none", "null"}
REPORT_TABLE_COLUMNS = [
    "report_id", "patient_id", "study_id", "modality", "text", "title",
    "history", "exam", "findings", "differential", "diagnosis",
    "topic_title", "acr_code", "category", "split", "subsplit",
]
IMAGE_TABLE_COLUMNS = [
    "image_id", "report_id", "patient_id", "study_id", "path", "modality", "modality_detail",
    "view", "plane", "plane_detail", "series_number", "instance_number", "caption", "age", "sex",
    "acr_codes", "location", "location_category", "figure_part", "width", "height", "mode",
]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_PLANES = {"axial": "axial", "transverse": "axial", "coronal": "coronal", "sagittal": "sagittal"}


def _q(item: str, reason: str, *, kept: bool) -> dict:
    return {"source": SOURCE, "item": item, "reason": reason, "kept": kept}


def _clean(v: Any) -> str | None:
    """A stripped string, or None for empty / "N/A"-like values and non-strings."""
    if v is None:
        return None
    if not isinstance(v, str):
        v = str(v)
    s = v.strip()
    return None if s.lower() in EMPTY_VALUES else s


def load_json(path: Path) -> Any:
    """``json.load`` with a ``ValueError`` naming the file and the position on malformed input.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        On malformed JSON or undecodable bytes.
    """
    if not path.is_file():
        raise FileNotFoundError(f"read_medpix: {path.name} not found in {path.parent}.")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ValueError(f"read_medpix: cannot read {path} ({err.strerror or type(err).__name__}).") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ValueError(f"{path}: not UTF-8 at byte offset {err.start} (line {line}): {err.reason}.") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path}: malformed JSON at line {err.lineno}, column {err.colno} (char {err.pos}): {err.msg}."
        ) from None


def _image_files(folder: Path) -> tuple[dict[str, str], str | None]:
    """stem -> file name for the image files in ``folder`` (png preferred over jpg), and why it could not be listed."""
    out: dict[str, str] = {}
    if not folder.is_dir():
        return out, None
    try:
        with os.scandir(folder) as it:
            names = sorted(e.name for e in it if e.is_file())
    except OSError as err:
        logger.warning("read_medpix: cannot list %s (%s); every image row keeps path=None.", folder, err.strerror)
        return out, f"cannot list {folder.name}/ ({err.strerror or type(err).__name__})"
    for n in names:
        stem, suf = os.path.splitext(n)
        if suf.lower() in IMAGE_SUFFIXES and (stem not in out or suf.lower() == ".png"):
            out[stem] = n
    return out, None


def _png_header(path: Path, limit: int) -> tuple[int | None, int | None, str | None, str | None]:
    """(width, height, mode, error) from the image header, without decoding pixels.

    Images over ``limit`` pixel values, and those PIL refuses as
    decompression bombs, give an error (the row is kept with ``path=None``).
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    from radmine.pixels import too_many_pixels

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit below decides
            with Image.open(path) as im:
                n = im.width * im.height * len(im.getbands())
                if n > limit:
                    return None, None, None, too_many_pixels(n, limit, f"{im.width} x {im.height} x {len(im.getbands())} band(s)")
                return im.width, im.height, im.mode, None
    except Image.DecompressionBombError as err:
        return None, None, None, f"decompression bomb refused by PIL ({err})"
    except PermissionError as err:
        return None, None, None, f"cannot read image file ({err.strerror})"
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        return None, None, None, f"unreadable image header ({type(err).__name__}: {err})"


def read_medpix(
    path: str | os.PathLike,
    *,
    name: str = "medpix-2.0",
    image_sizes: bool = True,
    max_pixels: int | None = None,
    progress: bool = True,
) -> Corpus:
    """Read a MedPix 2.0 folder.

    Parameters
    ----------
    path : str or Path
        The folder with ``Case_topic.json`` and ``Descriptions.json``, and
        optionally ``images/`` and ``uid_list.json`` (the published splits).
    name : str, default "medpix-2.0"
        Corpus name.
    image_sizes : bool, default True
        Read each image's header for ``width``, ``height`` and ``mode``
        (``"L"`` for the shared grayscale copy, ``"RGB"`` for the original
        release). About 1 s for the 1,850 images.
    max_pixels : int, optional
        Images whose header declares more pixel values are listed in the
        quarantine and kept with ``path=None`` (as are decompression bombs).
        Default: ``max_image_pixels`` of :func:`radmine.readers.limits.get_limits`.
    progress : bool, default True
        Show a tqdm progress bar over the images.

    Returns
    -------
    Corpus
        ``root`` is the folder; image ``path`` values are relative to it
        (``images/<stem>.png``).

        ``reports`` (one per case): ``report_id = patient_id = study_id =
        U_id`` (one case per patient), ``modality`` (``"CT"``, ``"MR"`` or
        ``"CT+MR"`` from the case's TAC/MRI image lists), ``title``, ``text``
        as ``"HISTORY: ...\\n\\nEXAM: ...\\n\\nFINDINGS: ...\\n\\nDIFFERENTIAL
        DIAGNOSIS: ...\\n\\nDIAGNOSIS: ..."`` blocks ("N/A"/empty skipped),
        the section columns ``history, exam, findings, differential,
        diagnosis``, ``topic_title``, ``acr_code``, ``category``, ``split``
        (``"train"``/``"dev"`` from ``uid_list.json``, None when absent) and
        ``subsplit`` (``"train_1"``/``"train_2"``).

        ``images`` (one per ``Descriptions.json`` entry): ``image_id`` (file
        stem), ``report_id``, ``path``, ``modality`` (CT/MR),
        ``modality_detail`` (e.g. ``"CT w/contrast (IV)"``), ``plane``
        (axial/coronal/sagittal, else the lower-cased original),
        ``plane_detail`` (original), ``caption``, ``age`` (Int64), ``sex``,
        ``acr_codes``, ``location``, ``location_category``, ``figure_part``,
        ``width``, ``height``, ``mode``.

        ``annotations``: ``kind`` ``diagnosis``, ``acr_code``, ``category``
        (per case) and ``location``, ``location_category``, ``acr_code`` (per
        image, with ``image_id``).

        ``quarantine``: malformed case/image entries and images of unknown
        cases (dropped, ``kept=False``); image files missing or unreadable
        (``kept=True``: the row stays with ``path=None``). Entries in ==
        rows out + dropped quarantine rows.

    Raises
    ------
    FileNotFoundError
        If the folder or ``Case_topic.json`` / ``Descriptions.json`` is missing.
    ValueError
        On malformed JSON (naming the file, line, column and character), or
        a JSON file whose top level is not a list / an object as expected.
    """
    from radmine.readers.limits import resolve

    limit = resolve("max_image_pixels", max_pixels)
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"read_medpix: folder not found: {root}")
    cases = load_json(root / "Case_topic.json")
    descs = load_json(root / "Descriptions.json")
    for fname, obj in (("Case_topic.json", cases), ("Descriptions.json", descs)):
        if not isinstance(obj, list):
            raise ValueError(f"{root / fname}: expected a JSON list of objects, found {type(obj).__name__}.")
    split_of, subsplit_of = _read_splits(root / "uid_list.json")

    quarantine: list[dict] = []
    reports, annotations, case_lists = [], [], {}
    for i, case in enumerate(cases):
        item = f"Case_topic.json[{i}]"
        if not isinstance(case, dict) or not _clean(case.get("U_id")):
            quarantine.append(_q(item, "entry is not an object with a U_id", kept=False))
            continue
        uid = _clean(case["U_id"])
        if uid in case_lists:
            quarantine.append(_q(f"{item} {uid}", f"duplicate U_id {uid!r}", kept=False))
            continue
        c = case.get("Case") if isinstance(case.get("Case"), dict) else {}
        t = case.get("Topic") if isinstance(case.get("Topic"), dict) else {}
        tac = [x for x in (case.get("TAC") or []) if isinstance(x, str)]
        mri = [x for x in (case.get("MRI") or []) if isinstance(x, str)]
        case_lists[uid] = (set(tac), set(mri))
        sections = {col: _clean(c.get(field)) for field, col, _ in CASE_SECTIONS}
        text = "\n\n".join(f"{head}: {sections[col]}" for _, col, head in CASE_SECTIONS if sections[col])
        modality = "+".join(m for m, ids in (("CT", tac), ("MR", mri)) if ids) or None
        row = {
            "report_id": uid,
            "patient_id": uid,
            "study_id": uid,
            "modality": modality,
            "text": text,
            "title": _clean(c.get("Title")),
            **sections,
            "topic_title": _clean(t.get("Title")),
            "acr_code": _clean(t.get("ACR Code")),
            "category": _clean(t.get("Category")),
            "split": split_of.get(uid),
            "subsplit": subsplit_of.get(uid),
        }
        reports.append(row)
        for kind, value in (("diagnosis", row["diagnosis"]), ("acr_code", row["acr_code"]), ("category", row["category"])):
            if value:
                annotations.append({"report_id": uid, "image_id": None, "kind": kind, "value": value, "term": value, "qualifiers": []})

    files, folder_error = _image_files(root / "images")
    images, seen = [], set()
    it = enumerate(descs)
    if progress:
        from radmine._progress import tqdm

        it = tqdm(it, total=len(descs), desc="read_medpix", unit="image")
    for i, d in it:
        item = f"Descriptions.json[{i}]"
        if not isinstance(d, dict) or not _clean(d.get("image")):
            quarantine.append(_q(item, "entry is not an object with an 'image' id", kept=False))
            continue
        stem = _clean(d["image"])
        uid = _clean(d.get("U_id"))
        if uid not in case_lists:
            quarantine.append(_q(f"{item} {stem}", f"case {uid!r} not in Case_topic.json", kept=False))
            continue
        if stem in seen:
            quarantine.append(_q(f"{item} {stem}", f"duplicate image {stem!r}", kept=False))
            continue
        seen.add(stem)
        desc = d.get("Description") if isinstance(d.get("Description"), dict) else {}
        fname = files.get(stem)
        rel = f"images/{fname}" if fname else None
        width = height = mode = None
        if rel is None:
            why = folder_error or "image file missing"
            quarantine.append(_q(stem, f"{why}; row kept with path=None", kept=True))
        elif image_sizes:
            width, height, mode, err = _png_header(root / rel, limit)
            if err:
                quarantine.append(_q(rel, f"{err}; row kept with path=None", kept=True))
                rel = None
        plane_detail = _clean(desc.get("Plane"))
        pkey = (plane_detail or "").lower()
        age = _clean(desc.get("Age"))
        images.append(
            {
                "image_id": stem,
                "report_id": uid,
                "patient_id": uid,
                "study_id": uid,
                "path": rel,
                "modality": _clean(d.get("Type")),
                "modality_detail": _clean(desc.get("Modality")),
                "view": None,
                "plane": _PLANES.get(pkey, pkey or None),
                "plane_detail": plane_detail,
                "series_number": None,
                "instance_number": None,
                "caption": _clean(desc.get("Caption")),
                "age": int(age) if age is not None and age.isdigit() else None,
                "sex": _clean(desc.get("Sex")),
                "acr_codes": _clean(desc.get("ACR Codes")),
                "location": _clean(d.get("Location")),
                "location_category": _clean(d.get("Location Category")),
                "figure_part": _clean(desc.get("Figure Part")),
                "width": width,
                "height": height,
                "mode": mode,
            }
        )
        for kind, value in (("location", d.get("Location")), ("location_category", d.get("Location Category")),
                            ("acr_code", desc.get("ACR Codes"))):
            value = _clean(value)
            if value:
                annotations.append({"report_id": uid, "image_id": stem, "kind": kind, "value": value, "term": value, "qualifiers": []})

    listed = {s for tac, mri in case_lists.values() for s in tac | mri}
    undescribed = listed - seen
    if undescribed:
        logger.info("read_medpix: %d image id(s) listed in cases have no Descriptions.json entry.", len(undescribed))
    rep = pd.DataFrame(reports, columns=REPORT_TABLE_COLUMNS)
    img = pd.DataFrame(images, columns=IMAGE_TABLE_COLUMNS)
    for col in ("series_number", "instance_number", "age", "width", "height"):
        img[col] = img[col].astype("Int64")
    ann = pd.DataFrame(annotations, columns=["report_id", "image_id", "kind", "value", "term", "qualifiers"])
    q = pd.DataFrame(quarantine, columns=QUARANTINE_COLUMNS + ["kept"])
    logger.info(
        "read_medpix(%s): %d case(s) -> %d report(s); %d image entr(ies) -> %d image(s); %d quarantine row(s).",
        root, len(cases), len(rep), len(descs), len(img), len(q),
    )
    for df in (rep, img, ann, q):
        tidy_strings(df)
    return Corpus(rep, img, annotations=ann, quarantine=q, name=name, root=str(root.resolve()))


def _read_splits(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    if not path.is_file():
        logger.info("read_medpix: no %s; reports get split=None.", path.name)
        return {}, {}
    obj = load_json(path)
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object of split name -> list of U_id, found {type(obj).__name__}.")
    split_of, subsplit_of = {}, {}
    for key, ids in obj.items():
        if not isinstance(ids, list):
            raise ValueError(f"{path}: split {key!r} must be a list of U_id, found {type(ids).__name__}.")
        main, _, sub = str(key).partition("_")
        for uid in ids:
            uid = str(uid).strip()
            if sub:
                subsplit_of[uid] = str(key)
                split_of.setdefault(uid, main)
            else:
                prev = split_of.get(uid)
                if prev is not None and prev != key:
                    raise ValueError(f"{path}: case {uid!r} is in both {prev!r} and {key!r}.")
                split_of[uid] = str(key)
    return split_of, subsplit_of
