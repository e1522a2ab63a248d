"""Find key-image references ("series 3, image 45") in report text.

Radiologists cite the key images that show a finding inside the sentence
that describes it (Shin et al., CVPR 2015). :func:`find_image_references`
returns one :class:`ImageReference` per cited image, with the series (when
written or carried over from earlier in the same sentence) and the span of
the mention.

Forms read (case-insensitive)
-----------------------------
=====================================  ===========================================
``series 3 image 45``                  series 3, image 45 (also ``series 3, image 45``,
                                       ``(series 3, image 45)``, ``series: 3 image: 45``,
                                       ``series #3 image #45``, ``image no. 45``)
``series 3, images 45-47``             45, 46, 47 (``-``, ``to``, ``through``, ``thru``)
``images 1013-78``                     1013..1078 (Shin's abbreviated ranges)
``images 12, 14 and 17``               12, 14, 17 (``,``, ``and``, ``&``, ``or``)
``image 45 of series 3``               also ``on``/``in``/``from series 3``,
                                       ``(image 45, series 3)``, ``image 45 series 3``
``se 3 im 45``, ``ser 3 img 45``       abbreviations ``se``/``ser``, ``im``/``img``/``ims``
``s3 i45``, ``S3/I45``                 joined short form (series and image together)
``series 5/6``, ``series 5:6``         series 5, image 6
``series/image 5/6``, ``se/im 5:6``    series 5, image 6
``(3:45)``, ``(3:45, 4:12)``           series:image pairs in brackets, read only when the
                                       text (the report) names a series/image/key image
``#45``                                image 45 of the series named earlier in the sentence
``key image``                          a bare mention: ``image=None`` (``key image 4``: image 4)
``image 45``                           series carried over from earlier in the sentence,
                                       else ``None``; ``image 45 of 120`` / ``image 45/120``
                                       is image 45; a panel letter (``image 21b``) is dropped
``slice 45``, ``instance 45``          same as ``image``
=====================================  ===========================================

Refused (no reference)
----------------------
``3 images were obtained``, ``2 series of ...``, ``axial images``,
``T2-weighted images``, ``multiple images`` (no number after the word);
sizes (``image 1.6 x 2.3 cm``, ``images 5-7 mm``, a number followed by a unit);
dates (``3/4/2011``, ``series 3/4/2011``); times and citations after a
keyword (``image 3:45``, ``Im 2004:28``); bare pairs without a keyword
(``3/45``, ``(3/4)``, ``(3:45)`` in a report that names no series or image);
``#45`` with no series named earlier in the sentence; a list continuation that
goes down (``images 12 and 3 nodules`` reads only 12) unless the number is
followed by list punctuation.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ImageReference",
    "find_image_references",
    "references_by_sentence",
    "MAX_RANGE",
]

#: Ranges longer than this are not expanded (the two end points are kept).
MAX_RANGE = 1000


class ImageReference(NamedTuple):
    """One cited image.

    Attributes
    ----------
    series : int or None
        Series number (written, or carried over in the sentence); ``None`` if unknown.
    image : int or None
        Image (instance) number; ``None`` only for a bare "key image" mention.
    start, end : int
        Span of the whole mention in the text (shared by the images of a list or range).
    text : str
        ``source[start:end]``.
    form : str
        Which pattern read it: ``"series-image"``, ``"image-series"``,
        ``"image"``, ``"pair"``, ``"slash"``, ``"paren"``, ``"hash"``, ``"key"``.
    """

    series: int | None
    image: int | None
    start: int
    end: int
    text: str
    form: str


_F = re.IGNORECASE
_TRIGGER = re.compile(
    r"""
      (?P<key>\bkey[ \t-]+(?:images?|slices?)\b\.?)
    | (?P<pair>\bs(?P<ps>\d{1,4})\s*[/,]?\s*i(?P<pi>\d{1,5})\b)
    | (?P<ser>\b(?:series|ser|se)\b\.?)
    | (?P<img>\b(?:images?|imgs?|ims?|slices?|instances?)\b\.?)
    | (?P<paren>\(\s*\d{1,4}\s*:\s*\d{1,5}(?:\s*(?:,|;|and|&)\s*\d{1,4}\s*:\s*\d{1,5})*\s*\))
    | (?P<hash>\#\s*\d{1,5}\b)
    """,
    _F | re.VERBOSE,
)
# Fast pre-filters. Each starts with one character class so that the regex engine
# can skip ahead in C; a hit is then read with _TRIGGER.match at that position.
_FAST = re.compile(
    r"[kKsSiI(#](?:(?<=[kKsSiI])(?<!\w\w)(?i:ey|eries|er|e|\d+|mages?|mgs?|ms?|lices?|nstances?)\b"
    r"|(?<=\()\s*\d{1,4}\s*:|(?<=\#)\s*\d)"
)
_CONTEXT = re.compile(r"[kKsSiI](?<!\w\w)(?i:ey|eries|er|e|mages?|mgs?|ms?|lices?)\b")
_PAIR_IN_PAREN = re.compile(r"(\d{1,4})\s*:\s*(\d{1,5})")
# what may sit between a keyword and its number
_NUM = re.compile(r"\s*(?:[:#]\s*|(?:number|num\.?|nos?\.)\s*#?\s*)?(\d{1,5})(?![\d])", _F)
_UNIT = re.compile(
    r"""\s*(?:%|x\s*\d|\u00d7|(?:cm|mm|m|cc|ml|mg|kg|g|hu|mmhg|bpm|mph|years?|yrs?|y/o|yo|months?|mos?|weeks?|wks?
    |days?|d|hours?|hrs?|h|minutes?|mins?|seconds?|secs?|s|times|views?|am|pm|a\.m|p\.m|o'clock|mci|mbq|gy|cgy
    |mm3|cm3|ml/min|percent|degrees?)\b)""",
    _F | re.VERBOSE,
)
_DECIMAL_OR_TIME = re.compile(r"[.:]\d|/\d{1,4}/\d|-\d{1,2}-\d")  # 1.6 / 3:45 / 3/4/2011 / 3-4-11
_DECIMAL_OR_DATE = re.compile(r"\.\d|[/:]\d{1,4}[/:]\d|-\d{1,2}-\d|:\d\d\s*(?:am|pm|a\.m|p\.m)\b", re.IGNORECASE)
_SUFFIX = re.compile(r"[a-h](?![a-z\d])")
_RANGE = re.compile(r"\s*(?:-|\u2013|\u2014|to\b|through\b|thru\b)\s*#?\s*(\d{1,5})(?![\d])", _F)
_LIST = re.compile(r"\s*(?:,\s*(?:and\b|&|or\b)?|and\b|&|or\b)\s*#?\s*(\d{1,5})(?![\d])", _F)
_LIST_END = re.compile(
    r"\s*(?:[,;:)\].]|$|\(|and\b|or\b|&|-|\u2013|to\b|through\b|thru\b|of\b|on\b|in\b|from\b|series\b|se\b|ser\b"
    r"|respectively\b|\n)",
    _F,
)
_TOTAL = re.compile(r"(?:\s*/\s*|\s+of\s+)(\d{1,5})(?![\d/])(?!\s*series)", _F)
_SERIES_AFTER = re.compile(
    r"\s*[,(]?\s*(?:(?:of|on|in|from)\s+(?:the\s+)?)?(?:series|ser|se)\b\.?", _F
)
_IMAGE_AFTER_SERIES = re.compile(
    r"\s*[,;]?\s*(?:and\s+)?(?:(?:on|at)\s+)?(?:key\s+)?(?:images?|imgs?|ims?|slices?|instances?)\b\.?", _F
)
_IMAGE_LABEL_AFTER_SERIES = re.compile(
    r"\s*[/:]\s*(?:images?|imgs?|ims?)\b\.?\s*[:#]?\s*(\d{1,4})\s*[/:]\s*(\d{1,5})(?![\d])", _F
)
_SLASH = re.compile(r"(?:\s*/\s*|:)(\d{1,5})(?![\d])")
_HASH_AFTER_SERIES = re.compile(r"\s*[,;]?\s*(?=#)")


def _bad_follow(text: str, pos: int, endpos: int, *, pair_ok: bool = False) -> bool:
    """Is the number ending at ``pos`` a decimal, time, date or measurement?

    ``pair_ok``: a following ``:N`` or ``/N`` is a series/image pair, not a time.
    """
    bad = _DECIMAL_OR_DATE if pair_ok else _DECIMAL_OR_TIME
    return bool(bad.match(text, pos, endpos) or _UNIT.match(text, pos, endpos))


def _number(text: str, pos: int, endpos: int, pattern=_NUM, *, pair_ok: bool = False):
    """A clean number at ``pos`` (after an optional tag); ``(value, end)`` or ``None``."""
    m = pattern.match(text, pos, endpos)
    if m is None or _bad_follow(text, m.end(1), endpos, pair_ok=pair_ok):
        return None
    end = m.end(1)
    s = _SUFFIX.match(text, end, endpos)
    if s is not None:
        end = s.end()
    return int(m.group(1)), end


def _expand(a: int, b_text: str) -> list[int]:
    b = int(b_text)
    a_text = str(a)
    if b < a and len(b_text) < len(a_text):  # "1013-78" -> 1078
        b = int(a_text[: len(a_text) - len(b_text)] + b_text)
    if b < a or b - a > MAX_RANGE:
        return [a, b] if b != a else [a]
    return list(range(a, b + 1))


def _number_list(text: str, pos: int, endpos: int, *, first_pattern=_NUM):
    """Parse ``45``, ``45-47``, ``12, 14 and 17``, ``1013-78``; return ``(images, end)`` or ``None``."""
    first = _number(text, pos, endpos, first_pattern)
    if first is None:
        return None
    value, end = first
    images = [value]
    r = _RANGE.match(text, end, endpos)
    if r is not None:
        if _bad_follow(text, r.end(1), endpos):
            return None  # "images 5-7 mm": a size range
        images = _expand(value, r.group(1))
        end = r.end(1)
    while True:
        m = _LIST.match(text, end, endpos)
        if m is None or _bad_follow(text, m.end(1), endpos):
            break
        nxt = int(m.group(1))
        nend = m.end(1)
        r = _RANGE.match(text, nend, endpos)
        if r is not None and not _bad_follow(text, r.end(1), endpos):
            items, nend = _expand(nxt, r.group(1)), r.end(1)
        else:
            items = [nxt]
        if nxt <= images[-1] and not _LIST_END.match(text, nend, endpos):
            break  # "images 12 and 3 nodules"
        images.extend(items)
        end = nend
    return images, end


class _Scanner:
    """Reads the references of one sentence (series context does not leave it)."""

    def __init__(self, text: str, start: int, end: int, context: bool | None = None) -> None:
        self.text, self.start, self.endpos = text, start, end
        self.context = context  # does the report name a series/image? (None: look in the sentence)
        self.series: int | None = None
        self.out: list[ImageReference] = []

    def emit(self, series, images, s, e, form):
        span = self.text[s:e]
        for img in images:
            self.out.append(ImageReference(series, img, s, e, span, form))

    def run(self) -> list[ImageReference]:
        text, pos, endpos = self.text, self.start, self.endpos
        has_context = self.context
        while True:
            f = _FAST.search(text, pos, endpos)
            if f is None:
                break
            m = _TRIGGER.match(text, f.start(), endpos)
            if m is None:
                pos = f.end()
                continue
            kind = m.lastgroup
            if kind in ("ps", "pi"):
                kind = "pair"
            if kind == "ser":
                pos = self.series_mention(m)
            elif kind in ("img", "key"):
                pos = self.image_mention(m, key=kind == "key")
            elif kind == "pair":
                if _bad_follow(text, m.end(), endpos):
                    pos = m.end()
                    continue
                self.series = int(m.group("ps"))
                self.emit(self.series, [int(m.group("pi"))], m.start(), m.end(), "pair")
                pos = m.end()
            elif kind == "paren":
                if has_context is None:
                    has_context = _CONTEXT.search(text, self.start, endpos) is not None
                if has_context:
                    for p in _PAIR_IN_PAREN.finditer(m.group("paren")):
                        self.series = int(p.group(1))
                        self.emit(self.series, [int(p.group(2))], m.start(), m.end(), "paren")
                pos = m.end()
            else:  # hash
                pos = m.end()
                if self.series is not None:
                    got = _number_list(text, m.start(), endpos)
                    if got is not None:
                        images, end = got
                        self.emit(self.series, images, m.start(), end, "hash")
                        pos = end
        if any(r.image is not None for r in self.out):  # a bare "key image" adds nothing here
            self.out = [r for r in self.out if r.image is not None]
        return self.out

    def series_mention(self, m) -> int:
        text, endpos = self.text, self.endpos
        after = m.end()
        lab = _IMAGE_LABEL_AFTER_SERIES.match(text, after, endpos)  # "series/image 3/45"
        if lab is not None and not _bad_follow(text, lab.end(2), endpos):
            self.series = int(lab.group(1))
            self.emit(self.series, [int(lab.group(2))], m.start(), lab.end(2), "slash")
            return lab.end(2)
        got = _number(text, after, endpos, pair_ok=True)
        if got is None:
            # "series 3/4/2011" or "2 series of": nothing
            return after
        series, end = got
        sl = _SLASH.match(text, end, endpos)  # "series 5/6"
        if sl is not None and not _bad_follow(text, sl.end(1), endpos):
            self.series = series
            self.emit(series, [int(sl.group(1))], m.start(), sl.end(1), "slash")
            return sl.end(1)
        self.series = series
        im = _IMAGE_AFTER_SERIES.match(text, end, endpos)
        if im is not None:
            got = _number_list(text, im.end(), endpos)
            if got is not None:
                images, iend = got
                self.emit(series, images, m.start(), self._after_total(iend), "series-image")
                return self._after_total(iend)
            return end
        h = _HASH_AFTER_SERIES.match(text, end, endpos)  # "series 3, #45"
        if h is not None:
            got = _number_list(text, h.end(), endpos)
            if got is not None:
                images, iend = got
                self.emit(series, images, m.start(), iend, "series-image")
                return iend
        return end

    def _after_total(self, end: int) -> int:
        t = _TOTAL.match(self.text, end, self.endpos)  # "image 45 of 120", "image 45/120"
        return t.end(1) if t is not None else end

    def image_mention(self, m, *, key: bool) -> int:
        text, endpos = self.text, self.endpos
        got = _number_list(text, m.end(), endpos)
        if got is None:
            if key:
                self.emit(None, [None], m.start(), m.end(), "key")
            return m.end()
        images, end = got
        end = self._after_total(end)
        sa = _SERIES_AFTER.match(text, end, endpos)
        if sa is not None:
            ser = _number(text, sa.end(), endpos)
            if ser is not None and not _SLASH.match(text, ser[1], endpos):
                self.series = ser[0]
                self.emit(ser[0], images, m.start(), ser[1], "image-series")
                return ser[1]
        self.emit(self.series, images, m.start(), end, "key" if key else "image")
        return end


def find_image_references(
    text: str,
    *,
    sentences: Iterable[Sequence[int]] | None = None,
) -> list[ImageReference]:
    """Find every key-image reference in a text.

    Parameters
    ----------
    text : str
        A report (or a sentence).
    sentences : iterable of (start, end), optional
        Sentence spans into ``text``; a series named in a sentence carries
        over to later image numbers of the same sentence only. Default: the
        sentences of :func:`radmine.split_sentences` (rules engine).

    Returns
    -------
    list of ImageReference
        One per cited image, in text order (a range or list gives one per
        image, sharing the mention's span).

    Examples
    --------
    >>> [(r.series, r.image) for r in find_image_references("Mass (series 3, images 45-47).")]
    [(3, 45), (3, 46), (3, 47)]
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}.")
    if not _FAST.search(text):
        return []
    if sentences is None:
        from radmine.text.sentences import split_sentences

        spans = [(s.start, s.end) for s in split_sentences(text)]
    else:
        spans = [(int(s[0]), int(s[1])) for s in sentences]
    out: list[ImageReference] = []
    context = _CONTEXT.search(text) is not None
    for s, e in spans:
        if not 0 <= s <= e <= len(text):
            raise ValueError(f"sentences: span ({s}, {e}) is outside the text (length {len(text)}).")
        out.extend(_Scanner(text, s, e, context).run())
    return out


def references_by_sentence(
    text: str, sentences: Iterable[Sequence[int]]
) -> list[tuple[int, ImageReference]]:
    """References of each sentence, with the series carried over within it.

    Parameters
    ----------
    text : str
        The report.
    sentences : iterable of (start, end)
        Sentence spans into ``text`` (e.g. the ``start, end`` columns of the
        sentences table, or :func:`radmine.split_sentences`).

    Returns
    -------
    list of (int, ImageReference)
        ``(position of the sentence in `sentences`, reference)``, in order.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}.")
    out = []
    hits = [m.start() for m in _FAST.finditer(text)]
    context = bool(hits) and _CONTEXT.search(text) is not None
    n = len(text)
    for i, span in enumerate(sentences):
        s, e = int(span[0]), int(span[1])
        if not 0 <= s <= e <= n:
            raise ValueError(f"sentences: span ({s}, {e}) is outside the text (length {n}).")
        if hits:
            k = bisect.bisect_left(hits, s)
            if k < len(hits) and hits[k] < e:
                out.extend((i, r) for r in _Scanner(text, s, e, context).run())
    return out


# --------------------------------------------------------------------------- table form
#: Columns of the table returned by the function below.
REFERENCE_COLUMNS = ["report_id", "sentence_id", "section", "series", "image", "start", "end", "mention"]


def reference_table(reports: pd.DataFrame, *, engine: Any = "rules", sentences: pd.DataFrame | None = None) -> pd.DataFrame:
    """Written image references of each report sentence, as a table.

    A function of one DataFrame partition (``radmine.distributed.references`` maps it
    over a Dask DataFrame).

    Parameters
    ----------
    reports : DataFrame
        ``report_id, text``.
    engine : str, default "rules"
        Sentence engine (see :func:`radmine.sentence_table`).
    sentences : DataFrame, optional
        Precomputed sentences of these reports.

    Returns
    -------
    DataFrame
        ``report_id, sentence_id, section, series, image, start, end, mention``;
        one row per cited image (``series``/``image`` are ``Int64``, ``start``/``end``
        are offsets of the mention in the report text).
    """
    import numpy as np
    import pandas as pd

    from radmine.text.sentences import sentence_table, sentences_by_report

    if sentences is None:
        sentences = sentence_table(reports, engine=engine)
    texts = dict(zip(reports["report_id"], reports["text"]))
    rows = []
    for rid, sents in sentences_by_report(sentences).items():
        text = texts.get(rid)
        if not isinstance(text, str):
            continue
        for pos, ref in references_by_sentence(text, [(s, e) for _, s, e, _, _ in sents]):
            sid, _, _, _, section = sents[pos]
            rows.append((rid, sid, section, ref.series, ref.image, ref.start, ref.end, ref.text))
    cols = list(zip(*rows)) if rows else [[] for _ in REFERENCE_COLUMNS]
    return pd.DataFrame(
        {
            "report_id": pd.Series(list(cols[0]), dtype=reports["report_id"].dtype),
            "sentence_id": np.asarray(cols[1], dtype=np.int64),
            "section": pd.Series(list(cols[2]), dtype=object),
            "series": pd.array(list(cols[3]), dtype="Int64"),
            "image": pd.array(list(cols[4]), dtype="Int64"),
            "start": np.asarray(cols[5], dtype=np.int64),
            "end": np.asarray(cols[6], dtype=np.int64),
            "mention": pd.Series(list(cols[7]), dtype=object),
        },
        columns=REFERENCE_COLUMNS,
    )
