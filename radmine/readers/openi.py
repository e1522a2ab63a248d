"""Read the Open-i Indiana University chest X-ray release (``NLMCXR_reports.tgz``).

Each report is one ``ecgen-radiology/<n>.xml`` file with ``<AbstractText
Label="COMPARISON|INDICATION|FINDINGS|IMPRESSION">`` sections, ``<MeSH>``
``<major>``/``<automatic>`` terms and ``<parentImage id=...>`` image records
with captions. The archive is read member by member (nothing is extracted
to disk). The optional DICOM header table (``nlmcxr_dicom_metadata.csv.gz``)
adds series/instance numbers, view position, body part, modality and size.
"""

from __future__ import annotations

import logging
import os
import re
import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from radmine.corpus import QUARANTINE_COLUMNS, Corpus
from radmine.readers.tables import tidy_strings

logger = logging.getLogger(__name__)

SOURCE = "openi"
#: XML section labels, in text order, and their column names.
SECTIONS = [("COMPARISON", "comparison"), ("INDICATION", "indication"), ("FINDINGS", "findings"), ("IMPRESSION", "impression")]
REPORT_TABLE_COLUMNS = [
    "report_id", "patient_id", "study_id", "modality", "text",
    "comparison", "indication", "findings", "impression", "mesh_major", "mesh_automatic", "file",
]
IMAGE_TABLE_COLUMNS = [
    "image_id", "report_id", "patient_id", "study_id", "path", "modality", "view", "plane",
    "series_number", "instance_number", "caption", "figure_id",
]
#: DICOM table column -> images column.
DICOM_FIELDS = {
    "Series Number": "series_number",
    "Instance Number": "instance_number",
    "View Position": "view",
    "Body Part Examined": "body_part",
    "Modality": "modality",
    "Rows": "rows",
    "Columns": "columns",
    "Photometric Interpretation": "photometric",
}
_COUNTER = re.compile(r"^(CXR\d+)_\d+_(IM-.*)$")
_NUM = re.compile(r"(\d+)")


def _q(item: str, reason: str, *, kept: bool = False) -> dict:
    return {"source": SOURCE, "item": item, "reason": reason, "kept": kept}


def _natural_key(s: str) -> list:
    return [int(t) if t.isdigit() else t for t in _NUM.split(str(s))]


def parse_mesh(value: str) -> tuple[str, list[str]]:
    """Split a MeSH-style term into its head and qualifiers.

    Examples
    --------
    >>> parse_mesh("Opacity/lung/base/left/mild")
    ('Opacity', ['lung', 'base', 'left', 'mild'])
    >>> parse_mesh("Calcinosis/aorta, thoracic")
    ('Calcinosis', ['aorta, thoracic'])
    """
    parts = [p.strip() for p in str(value).split("/")]
    return parts[0], [p for p in parts[1:] if p]


def strip_counter(image_id: str) -> str:
    """``CXR1_1_IM-0001-3001`` -> ``CXR1_IM-0001-3001`` (the DICOM table's id form)."""
    return _COUNTER.sub(r"\1_\2", image_id)


def _text(el) -> str | None:
    if el is None:
        return None
    s = "".join(el.itertext()).strip()
    return s or None


def parse_report_xml(data: bytes | str, item: str = "<xml>") -> dict[str, Any]:
    """Parse one Open-i report XML into ``{"report": row, "images": [...], "annotations": [...]}``.

    Raises
    ------
    ValueError
        If the XML is malformed (with line and column) or has no ``<uId id=...>``.
    """
    try:
        root = ET.fromstring(data)
    except ET.ParseError as err:
        raise ValueError(f"{item}: malformed XML ({err}).") from None
    uid = root.find("uId")
    rid = uid.get("id") if uid is not None else None
    if not rid:
        raise ValueError(f"{item}: no <uId id=...> report id.")
    rid = rid.strip()
    sections: dict[str, str | None] = {col: None for _, col in SECTIONS}
    for el in root.iter("AbstractText"):
        label = (el.get("Label") or "").strip().upper()
        for heading, col in SECTIONS:
            if label == heading:
                sections[col] = _text(el)
    blocks = [f"{h}: {sections[c]}" for h, c in SECTIONS if sections[c]]
    text = "\n\n".join(blocks)
    art = (root.findtext("articleType") or "XR").strip() or "XR"
    mesh = root.find("MeSH")
    major = [s for s in (_text(e) for e in (mesh.findall("major") if mesh is not None else [])) if s]
    auto = [s for s in (_text(e) for e in (mesh.findall("automatic") if mesh is not None else [])) if s]
    report = {
        "report_id": rid,
        "patient_id": rid,
        "study_id": rid,
        "modality": art,
        "text": text,
        **sections,
        "mesh_major": major,
        "mesh_automatic": auto,
        "file": item,
    }
    annotations = []
    for kind, values in (("mesh_major", major), ("mesh_automatic", auto)):
        for v in values:
            term, quals = parse_mesh(v)
            annotations.append(
                {"report_id": rid, "image_id": None, "kind": kind, "value": v, "term": term, "qualifiers": quals}
            )
    images = []
    for pi in root.findall("parentImage"):
        iid = (pi.get("id") or "").strip()
        images.append(
            {
                "image_id": iid or None,
                "report_id": rid,
                "patient_id": rid,
                "study_id": rid,
                "path": None,
                "modality": art,
                "view": None,
                "plane": None,
                "series_number": None,
                "instance_number": None,
                "caption": _text(pi.find("caption")),
                "figure_id": _text(pi.find("figureId")),
            }
        )
    return {"report": report, "images": images, "annotations": annotations}


_SPECIAL_MEMBERS = (
    ("issym", "symbolic link member (links are not followed)"),
    ("islnk", "hard link member (links are not followed)"),
    ("isfifo", "FIFO member (not a regular file)"),
    ("ischr", "character device member (not a regular file)"),
    ("isblk", "block device member (not a regular file)"),
)


def _too_big(size: int, limit: int) -> str:
    from radmine.readers.limits import mib

    return (
        f"member is {mib(size)} uncompressed, over the limit of {mib(limit)} per member; not read "
        f"(raise it with radmine.readers.limits.set_limits(max_member_bytes=...) or the [read] setting max_member_mb)"
    )


def _iter_tgz(path: Path, quarantine: list[dict], limit: int) -> Iterator[tuple[str, bytes]]:
    """Stream the archive's ``.xml`` members; everything that is not read becomes a quarantine row.

    Members are read one at a time (memory stays under ``limit`` bytes);
    links, FIFOs and devices are not followed; a member over ``limit`` is
    skipped without inflating it into memory, and reading goes on with the
    next member. A truncated or corrupt stream ends the read (the members
    after it cannot be reached) with a quarantine row saying so.
    """
    try:
        tf = tarfile.open(path, "r|*")  # stream mode: no seeking, one member in memory at a time
    except PermissionError as err:
        raise ValueError(f"read_openi: cannot open {path} ({err.strerror}).") from None
    except (tarfile.TarError, OSError, EOFError) as err:
        raise ValueError(f"{path}: not a readable tar archive ({type(err).__name__}: {err}).") from None
    with tf:
        n = 0
        while True:
            try:
                member = tf.next()
            except (tarfile.TarError, OSError, EOFError, Exception) as err:  # noqa: BLE001 - zlib.error too
                quarantine.append(
                    {"source": SOURCE, "item": f"{path.name} (after {n} members)",
                     "reason": f"archive truncated or corrupt; members after this point are unreadable "
                               f"({type(err).__name__}: {err})", "kept": False}
                )
                return
            if member is None:
                return
            n += 1
            if member.isdir():
                continue
            special = next((why for test, why in _SPECIAL_MEMBERS if getattr(member, test)()), None)
            if special is not None:
                target = f" -> {member.linkname}" if member.linkname else ""
                quarantine.append(_q(f"{member.name}{target}", special, kept=False))
                continue
            if not member.isfile() or not member.name.lower().endswith(".xml"):
                continue
            if member.size > limit:
                quarantine.append(_q(member.name, _too_big(member.size, limit), kept=False))
                continue
            try:
                fh = tf.extractfile(member)
                data = fh.read(limit + 1) if fh is not None else b""
            except MemoryError:
                quarantine.append(_q(member.name, "out of memory while reading this member; not read", kept=False))
                continue
            except Exception as err:  # noqa: BLE001 - truncated gzip stream raises several types
                quarantine.append(
                    {"source": SOURCE, "item": member.name,
                     "reason": f"truncated archive member ({type(err).__name__}: {err}); the members after it "
                               f"cannot be read", "kept": False}
                )
                return
            if len(data) != member.size:
                quarantine.append(
                    {"source": SOURCE, "item": member.name,
                     "reason": f"truncated archive member (read {len(data)} of {member.size} bytes); the members "
                               f"after it cannot be read", "kept": False}
                )
                return
            yield member.name, data


def _iter_folder(path: Path, quarantine: list[dict], limit: int) -> Iterator[tuple[str, bytes]]:
    """The folder's ``*.xml`` files (recursively, natural order); unreadable files and folders become quarantine rows."""

    def unreadable_dir(err: OSError) -> None:
        quarantine.append(_q(str(Path(err.filename).relative_to(path)) if err.filename else str(path),
                             f"cannot list folder ({err.strerror or type(err).__name__}); its files were not read",
                             kept=False))

    files = []
    for dirpath, dirnames, filenames in os.walk(path, onerror=unreadable_dir):
        dirnames.sort()
        files += [Path(dirpath) / f for f in filenames if f.lower().endswith(".xml")]
    for p in sorted(files, key=lambda p: _natural_key(str(p))):
        rel = str(p.relative_to(path))
        try:
            if p.is_symlink() and not p.exists():
                quarantine.append(_q(rel, "broken symbolic link", kept=False))
                continue
            if not p.is_file():
                quarantine.append(_q(rel, "not a regular file (FIFO, socket or device)", kept=False))
                continue
            size = p.stat().st_size
            if size > limit:
                quarantine.append(_q(rel, _too_big(size, limit), kept=False))
                continue
            data = p.read_bytes()
        except OSError as err:
            quarantine.append(_q(rel, f"cannot read file ({err.strerror or type(err).__name__})", kept=False))
            continue
        yield rel, data


def read_openi(
    path: str | os.PathLike,
    *,
    dicom_table: str | os.PathLike | pd.DataFrame | None = None,
    name: str = "openi-iu",
    max_member_bytes: int | None = None,
    progress: bool = True,
) -> Corpus:
    """Read the Open-i IU chest X-ray reports (the ``.tgz``, a folder of XML, or one XML file).

    Parameters
    ----------
    path : str or Path
        ``NLMCXR_reports.tgz`` (members are read straight from the archive),
        a folder holding the extracted ``*.xml`` files (searched
        recursively), or a single report XML.
    dicom_table : str, Path or DataFrame, optional
        ``nlmcxr_dicom_metadata.csv.gz`` (or the same table as a DataFrame,
        with an ``imageid`` column). When given, image rows get
        ``series_number, instance_number, view, body_part, modality, rows,
        columns, photometric`` and ``dicom_match``.
    name : str, default "openi-iu"
        Corpus name.
    max_member_bytes : int, optional
        XML files (archive members) larger than this are quarantined
        without being read. Default: ``max_member_bytes`` of
        :func:`radmine.readers.limits.get_limits` (64 MiB).
    progress : bool, default True
        Show a tqdm progress bar.

    Returns
    -------
    Corpus
        ``reports`` (one per XML): ``report_id`` (e.g. ``"CXR1"``),
        ``patient_id`` and ``study_id`` (= ``report_id``: one report per
        patient in this release), ``modality`` (``"XR"``), ``text`` built as
        ``"HEADING: body"`` blocks (COMPARISON, INDICATION, FINDINGS,
        IMPRESSION; empty sections skipped; blank line between), the section
        columns ``comparison, indication, findings, impression`` (None when
        empty), ``mesh_major``/``mesh_automatic`` (lists of raw strings) and
        ``file`` (the archive member).
        ``images``: one row per ``parentImage`` (``image_id``, ``report_id``,
        ``patient_id``, ``caption``, ``figure_id``, ``path=None``: the
        release has no image files; ``modality`` ``"XR"`` or the DICOM value).
        ``annotations``: one row per MeSH term, ``kind`` ``mesh_major`` /
        ``mesh_automatic``, ``value`` the raw string, ``term`` its head,
        ``qualifiers`` the rest (e.g. ``["lung", "base", "left", "mild"]``).
        ``quarantine``: malformed XML files, duplicate ids, truncated archive
        members, files and members over the size limit, unreadable files
        and folders, link / FIFO / device members (``kept=False``), and
        reports whose text is empty (``kept=True``), with the reason (XML
        files and special members in == reports + dropped quarantine rows).

    Raises
    ------
    FileNotFoundError
        If ``path`` (or ``dicom_table``) does not exist.
    ValueError
        If ``path`` is neither a tar archive, a folder nor an XML file,
        cannot be opened, is a folder none of whose XML files can be read
        (naming the first), or the DICOM table has no ``imageid`` column.

    Examples
    --------
    >>> import radmine
    >>> corpus = radmine.read_openi("NLMCXR_reports.tgz", progress=False)  # doctest: +SKIP
    >>> corpus.reports.loc[0, "text"].split(":")[0]  # doctest: +SKIP
    'COMPARISON'
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"read_openi: path not found: {path}")
    from radmine.readers.limits import resolve

    limit = resolve("max_member_bytes", max_member_bytes)
    quarantine: list[dict] = []
    if path.is_dir():
        items: Iterator[tuple[str, bytes]] = _iter_folder(path, quarantine, limit)
    elif path.suffix.lower() == ".xml":
        try:
            items = iter([(path.name, path.read_bytes())])
        except OSError as err:
            raise ValueError(f"read_openi: cannot read {path} ({err.strerror or type(err).__name__}).") from None
    elif path.name.lower().endswith((".tgz", ".tar.gz", ".tar")) or _is_tar(path):
        items = _iter_tgz(path, quarantine, limit)
    else:
        raise ValueError(
            f"read_openi: {path} is not an Open-i release: expected the .tgz archive, a folder of report "
            f"XML files, or one .xml file."
        )
    if progress:
        from radmine._progress import tqdm

        items = tqdm(items, desc="read_openi", unit="report")
    reports, images, annotations = [], [], []
    seen_reports: dict[str, str] = {}
    seen_images: set[str] = set()
    n_xml = 0
    for item, data in items:
        n_xml += 1
        try:
            parsed = parse_report_xml(data, item)
        except ValueError as err:
            quarantine.append(_q(item, str(err).removeprefix(f"{item}: "), kept=False))
            continue
        rid = parsed["report"]["report_id"]
        if rid in seen_reports:
            quarantine.append(
                {"source": SOURCE, "item": item, "reason": f"duplicate report_id {rid!r} (first in {seen_reports[rid]})", "kept": False}
            )
            continue
        seen_reports[rid] = item
        if not parsed["report"]["text"]:
            quarantine.append(_q(item, f"report {rid} has no text (every section is empty); kept with text=''",
                                 kept=True))
        reports.append(parsed["report"])
        annotations += parsed["annotations"]
        for im in parsed["images"]:
            if im["image_id"] is None:
                quarantine.append(_q(f"{item} parentImage", "parentImage without id", kept=False))
            elif im["image_id"] in seen_images:
                quarantine.append(
                    {"source": SOURCE, "item": f"{item} {im['image_id']}", "reason": "duplicate parentImage id", "kept": False}
                )
            else:
                seen_images.add(im["image_id"])
                images.append(im)
    order = {rid: i for i, rid in enumerate(sorted(seen_reports, key=_natural_key))}
    rep = pd.DataFrame(reports, columns=REPORT_TABLE_COLUMNS)
    rep = rep.sort_values("report_id", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    img = pd.DataFrame(images, columns=IMAGE_TABLE_COLUMNS)
    img = img.sort_values("report_id", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    ann = pd.DataFrame(annotations, columns=["report_id", "image_id", "kind", "value", "term", "qualifiers"])
    ann = ann.sort_values("report_id", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    if dicom_table is not None:
        img = join_dicom_table(img, dicom_table)
    else:
        for col in ("series_number", "instance_number"):
            img[col] = img[col].astype("Int64")
    dropped = n_xml - len(rep)
    if not len(rep) and quarantine and all(q["reason"].startswith(("cannot read", "cannot list")) for q in quarantine):
        raise ValueError(
            f"read_openi: nothing under {path} could be read: {len(quarantine)} file(s)/folder(s) are unreadable, "
            f"e.g. {quarantine[0]['item']} ({quarantine[0]['reason']}). Check the permissions."
        )
    logger.info(
        "read_openi(%s): %d XML file(s) -> %d report(s), %d image(s), %d MeSH annotation(s); %d quarantined.",
        path.name, n_xml, len(rep), len(img), len(ann), dropped,
    )
    q = pd.DataFrame(quarantine, columns=QUARANTINE_COLUMNS + ["kept"])
    for df in (rep, img, ann, q):
        tidy_strings(df)
    return Corpus(rep, img, annotations=ann, quarantine=q, name=name)


def _read_dicom_table(table: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    if isinstance(table, pd.DataFrame):
        df = table
    else:
        p = Path(table)
        if not p.is_file():
            raise FileNotFoundError(f"read_openi: dicom_table not found: {p}")
        from radmine.readers.tables import check_table_size

        check_table_size(p)  # a small .csv.gz can inflate to gigabytes
        wanted = ["imageid", *DICOM_FIELDS]
        try:
            df = pd.read_csv(p, usecols=lambda c: c in wanted, dtype=str, keep_default_na=False, na_values=[""])
        except (UnicodeDecodeError, pd.errors.ParserError, OSError, EOFError, MemoryError) as err:
            raise ValueError(f"read_openi: cannot read dicom_table {p} ({type(err).__name__}: {err}).") from None
    if "imageid" not in df.columns:
        raise ValueError(
            f"read_openi: dicom_table needs an 'imageid' column (e.g. 'CXR1000_IM-0003-2001'); "
            f"it has {list(df.columns)[:20]}."
        )
    return df


def join_dicom_table(images: pd.DataFrame, table: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    """Add DICOM header fields to Open-i image rows.

    Ids are matched as they are, then with the extra counter removed
    (``CXR1_1_IM-0001-3001`` -> ``CXR1_IM-0001-3001``). Column
    ``dicom_match`` records ``"exact"``, ``"counter_removed"`` or None.

    Parameters
    ----------
    images : DataFrame
        Open-i image rows (``image_id`` column).
    table : str, Path or DataFrame
        The DICOM metadata table (``imageid`` column).

    Returns
    -------
    DataFrame
        ``images`` with ``series_number, instance_number`` (Int64), ``view``,
        ``body_part``, ``modality``, ``rows``, ``columns`` (Int64),
        ``photometric`` and ``dicom_match``.
    """
    df = _read_dicom_table(table)
    df = df.drop_duplicates("imageid").set_index("imageid")
    fields = {k: v for k, v in DICOM_FIELDS.items() if k in df.columns}
    out = images.copy()
    exact = out["image_id"].isin(df.index)
    alt = out["image_id"].map(strip_counter)
    stripped = ~exact & alt.isin(df.index)
    key = out["image_id"].where(exact, alt.where(stripped))
    out["dicom_match"] = pd.Series(
        ["exact" if e else "counter_removed" if s else None for e, s in zip(exact, stripped)], index=out.index
    )
    for src, col in fields.items():
        vals = key.map(df[src])
        if col in ("series_number", "instance_number", "rows", "columns"):
            vals = pd.to_numeric(vals, errors="coerce").astype("Int64")
        elif col == "modality":
            vals = vals.where(vals.notna(), out["modality"])
        out[col] = vals
    for col in ("series_number", "instance_number"):
        out[col] = out[col].astype("Int64")
    n_exact, n_strip = int(exact.sum()), int(stripped.sum())
    logger.info(
        "read_openi: DICOM table matched %d of %d image(s) (%d exact, %d after removing the counter); %d unmatched.",
        n_exact + n_strip, len(out), n_exact, n_strip, len(out) - n_exact - n_strip,
    )
    return out


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError as err:
        raise ValueError(f"read_openi: cannot read {path} ({err.strerror or type(err).__name__}).") from None
