"""Exports to the formats other tools read: CheXpert label files, Hugging Face datasets, Label Studio tasks.

* :func:`labels_to_chexpert` -- weak labels as the 14 CheXpert observation
  columns (1 positive, 0 negative, -1 uncertain, blank not mentioned), the
  layout CheXpert-trained models and the CheXpert/CheXbert labelers use.
* :func:`to_hf_dataset` (also ``Corpus.to_hf_dataset()``) -- a
  :class:`datasets.Dataset` with one row per image (or per report): the image
  as a ``datasets.Image`` feature, the report text, the linked sentences and
  the weak labels. Needs the optional ``datasets`` package
  (``pip install "radmine[datasets]"``).
* :func:`to_label_studio` -- Label Studio tasks of the key images with their
  linked sentences and the weak labels as pre-annotations for review, plus
  :func:`label_studio_config`, the matching labeling interface.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

__all__ = ["CHEXPERT_COLUMNS", "labels_to_chexpert", "to_hf_dataset", "to_label_studio", "label_studio_config"]

#: The 14 CheXpert observations, in CheXpert's column order.
CHEXPERT_COLUMNS = [
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture",
    "Support Devices",
]
_PIL_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def _snake(name: str) -> str:
    return name.lower().replace(" ", "_")


def _check_labels(labels: Any, owner: str) -> pd.DataFrame:
    if not isinstance(labels, pd.DataFrame):
        raise TypeError(f"{owner}: labels must be the DataFrame of radmine.label_reports (1/0/-1/NaN); "
                        f"got {type(labels).__name__}.")
    values = labels.apply(pd.to_numeric, errors="coerce")
    bad = ~(values.isin([1, 0, -1]) | values.isna())
    if bad.to_numpy().any():
        col = values.columns[bad.any().to_numpy()][0]
        row = values.index[bad[col].to_numpy()][0]
        raise ValueError(f"{owner}: labels[{col!r}] at row {row!r} is {labels.loc[row, col]!r}; "
                         "expected 1, 0, -1 or blank.")
    return values


def labels_to_chexpert(labels: pd.DataFrame, *, missing: str = "error") -> pd.DataFrame:
    """Weak labels as the 14 CheXpert columns.

    Parameters
    ----------
    labels : DataFrame (n_reports, n_findings)
        Output of :func:`radmine.label_reports` / :meth:`WeakLabeler.transform`
        with the ``"chest_xray"`` vocabulary (its first 14 findings are the
        CheXpert observations, named ``no_finding`` ... ``support_devices``).
        Columns may also carry the CheXpert names themselves.
    missing : {"error", "blank"}, default "error"
        What to do when an observation has no column: raise, or leave it blank.

    Returns
    -------
    DataFrame (n_reports, 14)
        Columns :data:`CHEXPERT_COLUMNS` in CheXpert order, same index as
        ``labels``; values 1.0 / 0.0 / -1.0 and NaN for blank (written as an
        empty field by ``to_csv``).

    Raises
    ------
    ValueError
        A value other than 1/0/-1/blank, or (``missing="error"``) CheXpert
        observations without a column.

    Examples
    --------
    >>> import radmine
    >>> y = radmine.label_reports(["IMPRESSION: No pneumothorax. Possible effusion."])
    >>> c = labels_to_chexpert(y)
    >>> c[["Pneumothorax", "Pleural Effusion"]].iloc[0].tolist()
    [0.0, -1.0]
    >>> c.to_csv(index=False).splitlines()[1].split(",")[:3]   # blanks stay blank
    ['1.0', '', '']
    """
    from radmine._validation import check_option

    check_option(missing, "missing", "labels_to_chexpert", ["error", "blank"])
    values = _check_labels(labels, "labels_to_chexpert")
    by_name = {_snake(str(c)): c for c in values.columns}
    found = {col: by_name.get(_snake(col)) for col in CHEXPERT_COLUMNS}
    absent = [col for col, src in found.items() if src is None]
    if absent and missing == "error":
        raise ValueError(f"labels_to_chexpert: no column for the CheXpert observations {absent} "
                         f"(expected {[_snake(a) for a in absent]}; label with vocabulary='chest_xray', "
                         "or pass missing='blank').")
    out = pd.DataFrame({col: (values[src].astype(float) if src is not None else np.nan) for col, src in found.items()},
                       index=values.index)
    out.columns.name = None
    return out


# ---------------------------------------------------------------- Hugging Face datasets
def _image_cell(path: Any, max_side: int | None) -> tuple[Any, str | None]:
    """A ``datasets.Image`` value for one file: its path (PNG/JPEG...) or PNG bytes of a decoded DICOM."""
    if path is None or (isinstance(path, float) and np.isnan(path)):
        return None, "no image file"
    p = Path(str(path))
    if not p.is_file():
        return None, f"file not found: {p}"
    if p.suffix.lower() in _PIL_SUFFIXES:
        return str(p), None
    try:
        import io

        from PIL import Image

        from radmine.pixels import load_pixels

        arr = np.asarray(load_pixels(str(p), frame=0 if p.suffix.lower() == ".dcm" else None))
        if arr.ndim == 3:
            arr = arr[arr.shape[0] // 2]
        img = Image.fromarray((np.clip(arr, 0, 1) * 255).astype(np.uint8))
        if max_side and max(img.size) > max_side:
            img.thumbnail((max_side, max_side))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return {"bytes": buf.getvalue(), "path": None}, None
    except Exception as err:  # noqa: BLE001 -- any decoder failure becomes a quarantine reason
        return None, f"{type(err).__name__}: {err}"


def _linked_sentences(corpus) -> dict[str, list[str]]:
    links = corpus.links
    if links is None or not len(links) or "sentence" not in links.columns:
        return {}
    out: dict[str, list[str]] = {}
    for iid, s in zip(links["image_id"].astype(str), links["sentence"]):
        if isinstance(s, str) and s.strip() and s not in out.setdefault(iid, []):
            out[iid].append(s)
    return out


def to_hf_dataset(corpus, labels: pd.DataFrame | None = None, *, unit: str = "image", sections: Sequence[str] = (
        "findings", "impression"), max_side: int | None = 1024):
    """A Hugging Face :class:`datasets.Dataset` of a corpus: images, reports, links and weak labels.

    Parameters
    ----------
    corpus : Corpus
    labels : DataFrame, optional
        Weak labels indexed by ``report_id`` (:func:`radmine.label_reports`);
        one ``int8`` column per finding (1 / 0 / -1; blank = None).
    unit : {"image", "report"}, default "image"
        One row per image (``image`` is a ``datasets.Image``), or one row per
        report (``images`` is a list of ``datasets.Image``).
    sections : sequence of str, default ("findings", "impression")
        Report section columns copied when present.
    max_side : int, optional
        DICOM images are decoded (middle frame) and stored as PNG, downscaled
        to this side; PNG/JPEG files are referenced as they are.

    Returns
    -------
    datasets.Dataset
        Columns (unit="image"): ``image_id, report_id, image, caption,
        sentences`` (linked sentences), ``text``, the ``sections``,
        ``modality``, ``split`` (when the reports have one) and the label
        columns. Images that cannot be read get ``image=None`` and a warning
        naming how many (``items in = rows out``); the reasons are in
        ``dataset.info.description``.

    Examples
    --------
    >>> ds = radmine.load_embedded().to_hf_dataset()            # doctest: +SKIP
    >>> ds.save_to_disk("pacs-ds"); datasets.load_from_disk("pacs-ds")[0]["image"]  # doctest: +SKIP
    """
    from radmine._validation import check_option

    check_option(unit, "unit", "to_hf_dataset", ["image", "report"])
    try:
        import datasets
    except ImportError:
        raise ImportError('to_hf_dataset needs the datasets package: pip install "radmine[datasets]"') from None
    reports = corpus.reports.copy()
    reports["report_id"] = reports["report_id"].astype(str)
    keep_cols = ["report_id", "text", "modality"] + [s for s in sections if s in reports.columns]
    keep_cols += [c for c in ("split",) if c in reports.columns]
    rep = reports[keep_cols].set_index("report_id")
    label_cols: list[str] = []
    if labels is not None:
        values = _check_labels(labels, "to_hf_dataset")
        values.index = values.index.astype(str)
        unknown = sorted(set(values.index) - set(rep.index))
        if unknown:
            raise ValueError(f"to_hf_dataset: labels has report ids that are not in the corpus, e.g. {unknown[:3]}.")
        label_cols = [str(c) for c in values.columns]
        values.columns = label_cols
    images = corpus.images.copy()
    images["image_id"] = images["image_id"].astype(str)
    images["report_id"] = images["report_id"].astype(str)
    images["_path"] = corpus.image_paths().to_numpy() if len(images) else []
    linked = _linked_sentences(corpus)
    reasons: list[str] = []
    cells = []
    for iid, p in zip(images["image_id"], images["_path"]):
        cell, why = _image_cell(p, max_side)
        cells.append(cell)
        if why is not None:
            reasons.append(f"{iid}: {why}")
    cell_of = dict(zip(images["image_id"], cells))

    def text(v):
        return None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)

    features = {}
    if unit == "image":
        data: dict[str, list] = {"image_id": images["image_id"].tolist(), "report_id": images["report_id"].tolist(),
                                 "image": cells,
                                 "caption": [text(c) for c in images.get("caption", pd.Series([None] * len(images)))],
                                 "sentences": [linked.get(i, []) for i in images["image_id"]]}
        features.update(image_id=datasets.Value("string"), report_id=datasets.Value("string"), image=datasets.Image(),
                        caption=datasets.Value("string"), sentences=datasets.Sequence(datasets.Value("string")))
        row_reports = images["report_id"]
    else:
        grouped = images.groupby("report_id", sort=False)
        data = {"report_id": rep.index.tolist(),
                "image_ids": [grouped.get_group(r)["image_id"].tolist() if r in grouped.groups else [] for r in rep.index],
                "images": [[cell_of[i] for i in grouped.get_group(r)["image_id"] if cell_of[i] is not None]
                           if r in grouped.groups else [] for r in rep.index],
                "sentences": [[s for i in (grouped.get_group(r)["image_id"] if r in grouped.groups else [])
                               for s in linked.get(i, [])] for r in rep.index]}
        features.update(report_id=datasets.Value("string"), image_ids=datasets.Sequence(datasets.Value("string")),
                        images=datasets.Sequence(datasets.Image()), sentences=datasets.Sequence(datasets.Value("string")))
        row_reports = pd.Series(rep.index)
    for col in keep_cols[1:]:
        data[col] = [text(v) for v in rep[col].reindex(row_reports).tolist()]
        features[col] = datasets.Value("string")
    for col in label_cols:
        v = values[col].reindex(row_reports).to_numpy()
        data[col] = [None if np.isnan(x) else int(x) for x in v]
        features[col] = datasets.Value("int8")
    if reasons:
        warnings.warn(f"to_hf_dataset: {len(reasons)} of {len(images)} image(s) could not be read and have image=None "
                      f"(first: {reasons[0]}).", stacklevel=2)
    features = datasets.Features(features)
    info = datasets.DatasetInfo(description=f"radmine corpus {getattr(corpus, 'name', '')!r}; unreadable images: "
                                            + json.dumps(reasons[:100]), features=features)
    return datasets.Dataset.from_dict(data, features=features, info=info)


# ---------------------------------------------------------------- Label Studio
def label_studio_config(findings: Sequence[str]) -> str:
    """Label Studio labeling interface for the tasks of :func:`to_label_studio`.

    The image, its linked sentences, and one choice group per status
    (present / uncertain) over the findings, pre-filled from the weak labels.
    """
    choices = "".join(f'<Choice value="{f}"/>' for f in findings)
    return (
        "<View>\n"
        '  <Image name="image" value="$image" zoom="true"/>\n'
        '  <Header value="Linked sentences"/>\n  <Text name="sentences" value="$sentences"/>\n'
        '  <Header value="Findings present"/>\n'
        f'  <Choices name="present" toName="image" choice="multiple" showInline="true">{choices}</Choices>\n'
        '  <Header value="Findings uncertain"/>\n'
        f'  <Choices name="uncertain" toName="image" choice="multiple" showInline="true">{choices}</Choices>\n'
        "</View>\n"
    )


def to_label_studio(corpus, labels: pd.DataFrame | None = None, path: str | Path | None = None, *,
                    image_url: str = "/data/local-files/?d=", key_images_only: bool = True,
                    model_version: str = "radmine-weak-labels") -> list[dict]:
    """Label Studio tasks: key images with their linked sentences and the weak labels as pre-annotations.

    Parameters
    ----------
    corpus : Corpus
        With ``links`` (:func:`radmine.link_key_images`) when ``key_images_only``.
    labels : DataFrame, optional
        Weak labels indexed by ``report_id``; findings at 1 pre-fill the
        ``present`` choices, at -1 the ``uncertain`` choices.
    path : str or Path, optional
        Also write the tasks as JSON (import file) and the labeling interface
        next to it (``<stem>.config.xml``).
    image_url : str, default "/data/local-files/?d="
        Prefix of each image's path relative to the corpus root: Label
        Studio's local-files URL (set ``LOCAL_FILES_SERVING_ENABLED=true`` and
        ``LOCAL_FILES_DOCUMENT_ROOT`` to the corpus root), or e.g. an
        ``https://`` / ``s3://`` prefix where the images are served.
    key_images_only : bool, default True
        Only images that have a link to a report sentence.
    model_version : str
        Shown in Label Studio as the source of the predictions.

    Returns
    -------
    list of dict
        One task per image: ``data`` (``image, image_id, report_id,
        sentences, report``) and ``predictions`` (weak labels).

    Raises
    ------
    ValueError
        ``key_images_only`` on a corpus without links.
    """
    images = corpus.images
    linked = _linked_sentences(corpus)
    if key_images_only:
        if not linked:
            raise ValueError("to_label_studio: the corpus has no key-image links; run radmine.link_key_images(corpus) "
                             "first or pass key_images_only=False.")
        images = images[images["image_id"].astype(str).isin(set(linked))]
    values = _check_labels(labels, "to_label_studio") if labels is not None else None
    if values is not None:
        values.index = values.index.astype(str)
    root = Path(corpus.root) if getattr(corpus, "root", None) is not None else None
    paths = corpus.image_paths().reindex(images.index) if len(images) else pd.Series(dtype=object)
    texts = corpus.reports.assign(report_id=corpus.reports["report_id"].astype(str)).set_index("report_id")["text"]
    tasks = []
    for (_, im), p in zip(images.iterrows(), paths):
        iid, rid = str(im["image_id"]), str(im["report_id"])
        rel = im.get("path")
        if root is not None and p is not None:
            try:
                rel = str(Path(p).resolve().relative_to(root.resolve()))
            except ValueError:
                rel = str(p)
        task = {"data": {"image": f"{image_url}{rel}" if rel is not None else None, "image_id": iid, "report_id": rid,
                         "sentences": "\n".join(linked.get(iid, [])) or (im.get("caption") or ""),
                         "report": str(texts.get(rid, ""))}}
        if values is not None and rid in values.index:
            row = values.loc[rid]
            result = []
            for name, status in (("present", 1), ("uncertain", -1)):
                chosen = [str(f) for f, v in row.items() if v == status]
                if chosen:
                    result.append({"from_name": name, "to_name": "image", "type": "choices",
                                   "value": {"choices": chosen}})
            task["predictions"] = [{"model_version": model_version, "result": result}]
        tasks.append(task)
    if path is not None:
        from radmine._io import atomic_write_text

        path = Path(path)
        atomic_write_text(path, json.dumps(tasks, indent=1, ensure_ascii=False))
        findings = [str(c) for c in values.columns] if values is not None else []
        atomic_write_text(path.with_name(path.stem + ".config.xml"), label_studio_config(findings))
    return tasks
