"""Link key images to the report sentences that describe them (Shin et al., CVPR 2015).

:func:`link_key_images` fills the corpus's ``links`` table. Each row says
which text belongs to an image and how that was found (``method``):

``"reference"``
    The report cites the image ("... mass (series 3, image 45)."): the row
    holds the citing sentence and its neighbours. References are resolved to
    image rows by (study, series number, instance number); unresolved ones
    are kept with ``resolved=False``, ``image_id=None`` and a ``reason``.
``"caption"``
    The image has its own caption (MedPix): ``sentence`` is the caption,
    ``sentence_id = -1``.
``"report"``
    The images belong to the whole report (Open-i chest X-rays):
    ``sentence`` is the report's FINDINGS and IMPRESSION sentences joined,
    ``sentence_id = -1``; one row per image.

Only images of reports with no *resolved* reference get ``caption``/``report``
rows (see ``fallback``): in a report whose references resolve, uncited
images are not key images and get no row; a report whose references cannot
be resolved (MedPix findings saying "Image 2" without instance numbers)
keeps its unresolved reference rows and its images still get caption rows.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd

from radmine._validation import check_columns, check_int, check_option
from radmine.corpus import LINK_COLUMNS
from radmine.text.references import references_by_sentence
from radmine.text.sentences import sentence_table, sentences_by_report

logger = logging.getLogger(__name__)

__all__ = ["link_key_images", "link_partition", "images_by_study", "study_of_report", "is_present",
           "LINK_TABLE_COLUMNS", "REPORT_LEVEL_SOURCES"]

#: Columns of the returned table: the contract columns, then ``section`` and ``mention``.
LINK_TABLE_COLUMNS = LINK_COLUMNS + ["section", "mention"]
#: Sources whose images belong to the whole report (their captions describe the exam, not a finding).
REPORT_LEVEL_SOURCES = ("openi",)
#: Sections joined into the text of a ``method="report"`` link.
REPORT_TEXT_SECTIONS = ("findings", "impression", "conclusion")
_NOT_FINDINGS = {"indication", "history", "comparison", "technique", "exam", "title", "reason"}


def link_key_images(
    corpus,
    context: int = 1,
    *,
    fallback: str = "auto",
    engine: Any = "rules",
    progress: bool = False,
) -> pd.DataFrame:
    """Link every key image to its text; set and return ``corpus.links``.

    Parameters
    ----------
    corpus : Corpus
        Needs ``reports`` (``report_id, text``) and ``images`` (``image_id,
        report_id``; ``series_number, instance_number`` to resolve written
        references, ``study_id`` to resolve within a study, ``caption`` for
        caption links). ``corpus.sentences`` is used when filled, else
        computed with :func:`radmine.sentence_table` and stored on the corpus.
    context : int, default 1
        Neighbouring sentences kept on each side: ``prev_sentence`` /
        ``next_sentence`` join the ``context`` sentences before / after the
        citing sentence (within the report); ``0`` keeps none.
    fallback : {"auto", "caption", "report", "none"}, default "auto"
        Links for images of reports with no resolved reference. ``"auto"``: reports
        of a report-level source (``reports.source`` or the corpus name
        starting with one of :data:`REPORT_LEVEL_SOURCES`, i.e. Open-i) get
        ``"report"`` rows; other images get ``"caption"`` rows when they
        have a caption, else ``"report"`` rows. ``"none"``: references only.
    engine : str or spacy Language, default "rules"
        Sentence engine, used only when ``corpus.sentences`` is empty.
    progress : bool, default False
        Show progress bars.

    Returns
    -------
    DataFrame
        The links table, also set as ``corpus.links`` (the corpus is changed
        in place). Columns ``image_id, report_id, sentence_id, sentence,
        prev_sentence, next_sentence, series, instance, resolved, reason,
        method`` then ``section`` (of the citing sentence) and ``mention``
        (the reference as written). ``series``/``instance`` are ``Int64``;
        ``image_id`` is ``None`` for unresolved references; ``reason`` says
        how a reference was resolved when it needed an inference, or why it
        was not, else ``None``. An image cited by several sentences has one
        row per sentence.

    Raises
    ------
    TypeError
        If ``corpus`` is not a Corpus.
    ValueError
        Bad ``context``/``fallback``, or missing columns.
    """
    from radmine.corpus import Corpus

    if not isinstance(corpus, Corpus):
        raise TypeError(f"corpus must be a radmine Corpus, got {type(corpus).__name__}.")
    context = check_int(context, "context", "link_key_images", min_value=0)
    check_option(fallback, "fallback", "link_key_images", ["auto", "caption", "report", "none"])
    reports, images = corpus.reports, corpus.images
    check_columns(reports, ["report_id", "text"], "corpus.reports")
    check_columns(images, ["image_id", "report_id"], "corpus.images")

    sentences = corpus.sentences
    if len(sentences) == 0:
        sentences = sentence_table(reports, engine=engine, progress=progress)
        corpus.sentences = sentences
    check_columns(sentences, ["report_id", "sentence_id", "start", "end", "text"], "corpus.sentences")

    texts = dict(zip(reports["report_id"], reports["text"]))
    report_study = study_of_report(reports)
    resolver = _Resolver(images, report_study)
    by_report = sentences_by_report(sentences)
    sources = _report_sources(corpus)

    rows: list[tuple] = []
    cited_reports: set = set()
    iterator = by_report.items()
    if progress:
        from radmine._progress import tqdm

        iterator = tqdm(iterator, total=len(by_report), desc="links", unit="report")
    for rid, sents in iterator:
        text = texts.get(rid)
        if not isinstance(text, str) or not sents:
            continue
        spans = [(s, e) for _, s, e, _, _ in sents]
        refs = references_by_sentence(text, spans)
        if not refs:
            continue
        seen = set()
        for pos, ref in refs:
            sid, _, _, stext, section = sents[pos]
            key = (pos, ref.series, ref.image)
            if key in seen:
                continue
            seen.add(key)
            prev_s, next_s = _neighbours(sents, pos, context)
            for image_id, series, instance, resolved, reason in resolver.resolve(rid, ref.series, ref.image):
                if resolved:
                    cited_reports.add(rid)
                rows.append(
                    (image_id, rid, sid, stext, prev_s, next_s, series, instance, resolved, reason,
                     "reference", section, ref.text)
                )

    if fallback != "none" and len(images):
        rows.extend(_fallback_rows(images, by_report, texts, cited_reports, sources, fallback))

    links = _frame(rows, reports["report_id"].dtype)
    corpus.links = links
    n_ref = int((links["method"] == "reference").sum())
    logger.info(
        "link_key_images: %d links (%d from references, %d resolved)",
        len(links),
        n_ref,
        int(links.loc[links["method"] == "reference", "resolved"].sum()),
    )
    return links


# --------------------------------------------------------------------------- helpers
def study_of_report(reports: pd.DataFrame) -> dict:
    """``report_id -> study``: the report's ``study_id`` when present, else the report id itself."""
    if "study_id" in reports.columns:
        return {r: (s if is_present(s) else r) for r, s in zip(reports["report_id"], reports["study_id"])}
    return {r: r for r in reports["report_id"]}


def is_present(v) -> bool:
    """Whether a cell holds a value (not None, NaN, NA or NaT)."""
    return v is not None and not (isinstance(v, float) and np.isnan(v)) and v is not pd.NA and v is not pd.NaT


def _as_int(v):
    if not is_present(v):
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _neighbours(sents: list, pos: int, k: int) -> tuple[str | None, str | None]:
    if k == 0:
        return None, None
    before = [x[3] for x in sents[max(0, pos - k) : pos]]
    after = [x[3] for x in sents[pos + 1 : pos + 1 + k]]
    return (" ".join(before) or None), (" ".join(after) or None)


def _report_sources(corpus) -> dict:
    reports = corpus.reports
    if "source" in reports.columns:
        return dict(zip(reports["report_id"], reports["source"].astype(str)))
    return defaultdict(lambda: str(corpus.name))


def _is_report_level(source: str) -> bool:
    s = str(source).lower()
    return any(s.startswith(p) for p in REPORT_LEVEL_SOURCES)


class _Resolver:
    """(study, series, instance) -> image rows."""

    def __init__(self, images: pd.DataFrame, study_of_report: dict) -> None:
        self.study_of_report = study_of_report
        self.by_key: dict = defaultdict(list)  # (study, series, instance) -> [image_id]
        self.series_of: dict = defaultdict(set)  # (study, instance) -> {series}
        self.n_images: dict = defaultdict(list)  # study -> [(image_id, series, instance)]
        self.has_numbers = False
        if not len(images):
            return
        studies = images["study_id"] if "study_id" in images.columns else pd.Series([None] * len(images), index=images.index)
        series = images["series_number"] if "series_number" in images.columns else pd.Series([None] * len(images), index=images.index)
        inst = images["instance_number"] if "instance_number" in images.columns else pd.Series([None] * len(images), index=images.index)
        for image_id, rid, study, se, ins in zip(images["image_id"], images["report_id"], studies, series, inst):
            st = study if is_present(study) else study_of_report.get(rid, rid)
            se, ins = _as_int(se), _as_int(ins)
            self.n_images[st].append((image_id, se, ins))
            if ins is not None:
                self.has_numbers = True
                self.by_key[(st, se, ins)].append(image_id)
                self.series_of[(st, ins)].add(se)

    def resolve(self, rid, series: int | None, image: int | None):
        """Yield ``(image_id, series, instance, resolved, reason)``."""
        study = self.study_of_report.get(rid, rid)
        if image is None:  # bare "key image"
            imgs = self.n_images.get(study, [])
            if len(imgs) == 1:
                iid, se, ins = imgs[0]
                yield iid, se, ins, True, "key image without a number; the study has one image"
            else:
                yield None, series, None, False, f"key image without a number; study {study} has {len(imgs)} images"
            return
        if not self.has_numbers:
            yield None, series, image, False, "the images have no series/instance numbers"
            return
        if series is not None:
            ids = self.by_key.get((study, series, image), [])
            if not ids:
                yield None, series, image, False, f"no image with series {series} instance {image} in study {study}"
                return
            note = None if len(ids) == 1 else f"{len(ids)} images share series {series} instance {image}"
            for iid in ids:
                yield iid, series, image, True, note
            return
        candidates = sorted(self.series_of.get((study, image), set()), key=lambda s: (s is None, s))
        if not candidates:
            yield None, None, image, False, f"no image with instance {image} in study {study}"
        elif len(candidates) > 1:
            yield None, None, image, False, (
                f"series not written and instance {image} is in series {candidates} of study {study}"
            )
        else:
            se = candidates[0]
            for iid in self.by_key[(study, se, image)]:
                yield iid, se, image, True, f"series not written; {se} is the only series with instance {image}"


def _report_text(sents: list, text: str | None) -> str | None:
    chosen = [t for _, _, _, t, sec in sents if sec in REPORT_TEXT_SECTIONS]
    if not chosen:
        chosen = [t for _, _, _, t, sec in sents if sec not in _NOT_FINDINGS]
    if chosen:
        return " ".join(chosen)
    return text.strip() or None if isinstance(text, str) else None


def _fallback_rows(images, by_report, texts, cited_reports, sources, fallback) -> list[tuple]:
    rows = []
    captions = images["caption"] if "caption" in images.columns else pd.Series([None] * len(images), index=images.index)
    series = images["series_number"] if "series_number" in images.columns else pd.Series([None] * len(images), index=images.index)
    inst = images["instance_number"] if "instance_number" in images.columns else pd.Series([None] * len(images), index=images.index)
    report_text_cache: dict = {}
    for image_id, rid, cap, se, ins in zip(images["image_id"], images["report_id"], captions, series, inst):
        if not is_present(rid) or rid in cited_reports:
            continue
        has_caption = isinstance(cap, str) and cap.strip() != ""
        if fallback == "caption":
            method = "caption" if has_caption else None
        elif fallback == "report":
            method = "report"
        else:  # auto
            method = "report" if _is_report_level(sources[rid]) or not has_caption else "caption"
        if method is None:
            continue
        if method == "caption":
            rows.append(
                (image_id, rid, -1, cap.strip(), None, None, _as_int(se), _as_int(ins), True,
                 None, "caption", "caption", None)
            )
        else:
            if rid not in report_text_cache:
                report_text_cache[rid] = _report_text(by_report.get(rid, []), texts.get(rid))
            body = report_text_cache[rid]
            if body is None:
                rows.append(
                    (image_id, rid, -1, None, None, None, _as_int(se), _as_int(ins), False,
                     "the report has no text", "report", None, None)
                )
            else:
                rows.append(
                    (image_id, rid, -1, body, None, None, _as_int(se), _as_int(ins), True,
                     None, "report", "report", None)
                )
    return rows


def _frame(rows: list[tuple], rid_dtype) -> pd.DataFrame:
    cols = list(zip(*rows)) if rows else [[] for _ in LINK_TABLE_COLUMNS]
    data = dict(zip(LINK_TABLE_COLUMNS, cols))
    out = pd.DataFrame(
        {
            "image_id": pd.Series(list(data["image_id"]), dtype=object),
            "report_id": pd.Series(list(data["report_id"]), dtype=rid_dtype),
            "sentence_id": np.asarray(data["sentence_id"], dtype=np.int64),
            "sentence": pd.Series(list(data["sentence"]), dtype=object),
            "prev_sentence": pd.Series(list(data["prev_sentence"]), dtype=object),
            "next_sentence": pd.Series(list(data["next_sentence"]), dtype=object),
            "series": pd.array(list(data["series"]), dtype="Int64"),
            "instance": pd.array(list(data["instance"]), dtype="Int64"),
            "resolved": np.asarray(data["resolved"], dtype=bool),
            "reason": pd.Series(list(data["reason"]), dtype=object),
            "method": pd.Series(list(data["method"]), dtype=object),
            "section": pd.Series(list(data["section"]), dtype=object),
            "mention": pd.Series(list(data["mention"]), dtype=object),
        },
        columns=LINK_TABLE_COLUMNS,
    )
    return out


def images_by_study(images: pd.DataFrame, reports_study: dict) -> pd.DataFrame:
    """Images with a ``_study`` column: their ``study_id``, or their report's study as the linker resolves it.

    Parameters
    ----------
    images : DataFrame
        A corpus's images table (``image_id, report_id``, ``study_id`` when present).
    reports_study : dict
        :func:`study_of_report` of all reports.

    Returns
    -------
    DataFrame
        A copy of ``images`` with the extra column, the input of :func:`link_partition`.
    """
    imgs = images.copy()
    st = imgs["study_id"] if "study_id" in imgs.columns else pd.Series([None] * len(imgs), index=imgs.index)
    imgs["_study"] = [s if is_present(s) else reports_study.get(r, r) for s, r in zip(st, imgs["report_id"])]
    imgs["_study"] = imgs["_study"].astype(object)
    return imgs


def link_partition(reports: pd.DataFrame, images: pd.DataFrame, context: int, fallback: str, engine: Any, name: str,
                   sentences: pd.DataFrame | None = None) -> pd.DataFrame:
    """:func:`link_key_images` on one block of reports, with every image their studies hold.

    The function that :func:`radmine.distributed.text.links` maps over the
    partitions of a Dask DataFrame of reports: references resolve across the
    reports of one study exactly as on the whole table.

    Parameters
    ----------
    reports : DataFrame
        One partition of the reports table.
    images : DataFrame
        :func:`images_by_study` of the whole images table.
    context, fallback, engine
        See :func:`link_key_images`.
    name : str
        The corpus name (the source when reports have no ``source`` column).
    sentences : DataFrame, optional
        The sentences of these reports.

    Returns
    -------
    DataFrame
        The links of these reports (:data:`LINK_TABLE_COLUMNS`).
    """
    from radmine.corpus import Corpus

    if not len(reports):
        return _frame([], reports["report_id"].dtype)[LINK_TABLE_COLUMNS]
    rids = set(reports["report_id"])
    wanted = set(study_of_report(reports).values())
    imgs = images[images["_study"].isin(wanted)]
    own = imgs["report_id"].isin(rids)
    imgs = imgs.copy()
    # images of another partition's report in the same study: citable, but no fallback rows and no orphan check
    imgs.loc[~own, "report_id"] = None
    imgs["study_id"] = imgs["_study"]
    imgs = imgs.drop(columns="_study")
    corpus = Corpus(reports, imgs, sentences=sentences, name=name)
    return link_key_images(corpus, context=context, fallback=fallback, engine=engine)
