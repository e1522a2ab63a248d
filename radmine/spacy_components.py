"""spaCy pipeline components: radmine's sections and weak labels inside any ``nlp`` pipeline.

After ``pip install radmine`` the components are registered through spaCy's
``spacy_factories`` entry points, so ``import spacy`` is enough::

    import spacy
    nlp = spacy.blank("en")
    nlp.add_pipe("radmine_sections")
    nlp.add_pipe("radmine_labeler", config={"vocabulary": "chest_xray"})
    doc = nlp("FINDINGS: No pneumothorax. Possible small left pleural effusion.")
    [(e.text, e.label_, e._.is_negated, e._.is_uncertain) for e in doc.ents]
    doc._.labels   # {"pneumothorax": 0, "pleural_effusion": -1, ...} as label_reports gives them

``radmine_sections``
    ``doc.spans["sections"]`` (one span per section body, labelled with the
    canonical section name, e.g. ``"findings"``), ``doc._.sections`` (the same
    list) and ``token._.section`` / ``span._.section`` (the name of the section
    the token or span starts in; ``"other"`` before the first heading). With
    ``sentences=True`` (default) it also sets sentence starts as radmine's
    rules do (headings start sentences).
``radmine_labeler``
    Finding mentions as entities on ``doc.ents`` (label = finding name) with
    ``ent._.is_negated`` and ``ent._.is_uncertain`` (the attribute names that
    medspaCy's ConText and negspacy users know), every mention (overlaps
    included) in ``doc.spans["radmine_findings"]`` with ``span._.finding_status``
    (``"positive"``, ``"negated"``, ``"uncertain"``), and ``doc._.labels``: one
    value per vocabulary finding, 1 / 0 / -1 / ``None`` (blank) -- the row
    :func:`radmine.label_reports` gives for the same text. Entities that other
    components already set (e.g. medspaCy's target matcher) are kept; radmine's
    mentions that overlap them stay in the span group only.

Labels are computed by :class:`radmine.WeakLabeler` on the document's text, so
they equal :func:`radmine.label_reports` with the same settings; ``nlp.pipe``
labels a batch of documents in one call.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc, Span, Token
from spacy.util import filter_spans

SECTIONS_KEY = "sections"
FINDINGS_KEY = "radmine_findings"
_OTHER = "other"


def _section_of(obj) -> str:
    doc = obj.doc
    start = obj.idx if isinstance(obj, Token) else obj.start_char
    for span in doc.spans.get(SECTIONS_KEY, []):
        if span.start_char <= start < span.end_char:
            return span.label_
    return _OTHER


def register_extensions() -> None:
    """Register the ``._.`` attributes the components set (idempotent; existing ones, e.g. medspaCy's, are kept)."""
    for cls, name, kwargs in [
        (Span, "is_negated", {"default": False}),
        (Span, "is_uncertain", {"default": False}),
        (Span, "finding_status", {"default": None}),
        (Span, "section", {"getter": _section_of}),
        (Token, "section", {"getter": _section_of}),
        (Doc, "sections", {"default": None}),
        (Doc, "labels", {"default": None}),
    ]:
        if not cls.has_extension(name):
            cls.set_extension(name, **kwargs)


class SectionsComponent:
    """The ``radmine_sections`` pipe: section spans (and sentence starts) from radmine's heading rules.

    Parameters
    ----------
    sentences : bool, default True
        Also set sentence boundaries as :func:`radmine.split_sentences` does.
    """

    def __init__(self, nlp: Language, name: str = "radmine_sections", *, sentences: bool = True) -> None:
        self.name = name
        self.sentences = bool(sentences)
        register_extensions()

    def __call__(self, doc: Doc) -> Doc:
        from radmine.text.sections import split_sections

        sections = split_sections(doc.text)
        spans = []
        for sec in sections:
            span = doc.char_span(sec.start, sec.end, label=sec.name, alignment_mode="expand")
            if span is not None and len(span):
                spans.append(span)
        doc.spans[SECTIONS_KEY] = spans
        doc._.sections = list(spans)
        if self.sentences and len(doc) and not doc.has_annotation("DEP"):  # a parser's sentences win
            _set_sentence_starts(doc, sections)
        return doc


def _set_sentence_starts(doc: Doc, sections) -> None:
    """Sentence starts as :func:`radmine.split_sentences` finds them (headings start sentences), set in one
    array write (setting ``token.is_sent_start`` one token at a time is quadratic in spaCy)."""
    import bisect

    import numpy as np
    from spacy.attrs import SENT_START

    from radmine.text.sentences import rule_sentence_spans

    text = doc.text
    starts = set()
    for sec in sections:
        starts.update((sec.heading_start, sec.start))
        starts.update(a for a, _ in rule_sentence_spans(text, sec.start, sec.end))
    idx = doc.to_array("IDX").tolist()
    flags = np.full((len(doc), 1), -1, dtype=np.int64)
    flags[0, 0] = 1
    for c in starts:
        k = bisect.bisect_right(idx, c) - 1
        if k >= 0 and idx[k] != c and k + 1 < len(idx):
            k += 1  # a boundary inside a token moves to the next token
        flags[max(k, 0), 0] = 1
    doc.from_array([SENT_START], flags.astype(np.uint64))  # -1 (not a start) wraps, as spaCy expects


class LabelerComponent:
    """The ``radmine_labeler`` pipe: weak-label finding mentions as entities, and ``doc._.labels``.

    Parameters
    ----------
    vocabulary : str or dict, default "chest_xray"
        A built-in vocabulary name (:func:`radmine.list_vocabularies`), a
        JSON/YAML path or a vocabulary dict (see :func:`radmine.load_vocabulary`).
    sections : list of str, default ["findings", "impression", "conclusion"]
        Sections whose sentences count (as :class:`radmine.WeakLabeler`).
    uncertain_blocks_normal : bool, default False
    """

    def __init__(self, nlp: Language, name: str = "radmine_labeler", *, vocabulary: Any = "chest_xray",
                 sections: Sequence[str] = ("findings", "impression", "conclusion"),
                 uncertain_blocks_normal: bool = False) -> None:
        from radmine.labels.labeler import WeakLabeler

        self.name = name
        self.labeler = WeakLabeler(vocabulary, sections=tuple(sections),
                                   uncertain_blocks_normal=bool(uncertain_blocks_normal)).fit()
        register_extensions()

    @property
    def labels(self) -> list[str]:
        """The finding names (entity labels) this component can set."""
        return list(self.labeler.labels_)

    def __call__(self, doc: Doc) -> Doc:
        return next(iter(self.pipe([doc])))

    def pipe(self, stream: Iterable[Doc], batch_size: int = 256) -> Iterator[Doc]:
        batch: list[Doc] = []
        for doc in stream:
            batch.append(doc)
            if len(batch) >= batch_size:
                yield from self._label(batch)
                batch = []
        if batch:
            yield from self._label(batch)

    def _label(self, docs: list[Doc]) -> list[Doc]:
        import numpy as np

        labels = self.labeler.transform([d.text for d in docs])
        names = [str(c) for c in labels.columns]
        values = labels.to_numpy(dtype=float)
        m = self.labeler.mentions_
        by_doc: dict[int, list[tuple]] = {}
        for row in zip(m["report_id"].tolist(), m["start"].tolist(), m["end"].tolist(), m["finding"].tolist(),
                       m["status"].tolist()):
            by_doc.setdefault(row[0], []).append(row[1:])
        for i, doc in enumerate(docs):
            doc._.labels = {f: (None if np.isnan(v) else int(v)) for f, v in zip(names, values[i].tolist())}
            spans = []
            for start, end, finding, status in by_doc.get(i, ()):
                span = doc.char_span(int(start), int(end), label=finding, alignment_mode="expand")
                if span is None:
                    continue
                # extension values are keyed by offsets and label, so the entity made from this span sees them
                span._.finding_status = status
                span._.is_negated = status == "negated"
                span._.is_uncertain = status == "uncertain"
                spans.append(span)
            doc.spans[FINDINGS_KEY] = spans
            if not spans:
                continue
            existing = list(doc.ents)
            taken = {t for e in existing for t in range(e.start, e.end)}
            free = [sp for sp in filter_spans(spans) if not any(t in taken for t in range(sp.start, sp.end))]
            doc.ents = sorted(existing + free, key=lambda sp: sp.start)
        return docs


@Language.factory("radmine_sections", default_config={"sentences": True})
def make_sections(nlp: Language, name: str, sentences: bool) -> SectionsComponent:
    """spaCy factory of :class:`SectionsComponent` (``nlp.add_pipe("radmine_sections")``)."""
    return SectionsComponent(nlp, name, sentences=sentences)


@Language.factory("radmine_labeler", default_config={"vocabulary": "chest_xray",
                                                     "sections": ["findings", "impression", "conclusion"],
                                                     "uncertain_blocks_normal": False})
def make_labeler(nlp: Language, name: str, vocabulary: Any, sections: list[str],
                 uncertain_blocks_normal: bool) -> LabelerComponent:
    """spaCy factory of :class:`LabelerComponent` (``nlp.add_pipe("radmine_labeler", config={...})``)."""
    return LabelerComponent(nlp, name, vocabulary=vocabulary, sections=sections,
                            uncertain_blocks_normal=uncertain_blocks_normal)
