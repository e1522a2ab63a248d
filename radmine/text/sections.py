"""Split a free-text radiology report into its sections.

A heading is recognised when it is

* at the start of a line (or of the text), any case, followed by a colon
  (``"FINDINGS: ..."``, ``"Impression:"``, ``"clinical history:"``);
* alone on its line, any case, with or without a colon (``"FINDINGS"`` on its
  own line, the body on the next lines);
* inside a line, after the end of a sentence, capitalised and followed by a
  colon (``"... no effusion. IMPRESSION: normal chest."``).

Anything else is body text, so ``"These findings suggest ..."`` or a line
starting ``"Findings are stable"`` never opens a section. Text that is not
under a known heading (before the first heading, or a report with no heading
at all) is section ``"other"``.

The heading registry maps every spelling to a lower-case canonical name;
:func:`list_sections` shows it and :func:`register_heading` returns an
extended copy for users with house-specific headings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import NamedTuple

import pandas as pd

__all__ = ["Section", "split_sections", "list_sections", "HEADINGS", "OTHER"]

#: Section name for text outside any known heading.
OTHER = "other"

#: canonical name -> spellings (case-insensitive; spaces match any run of blanks)
HEADINGS: Mapping[str, tuple[str, ...]] = {
    "findings": ("findings", "finding", "observations", "report", "findings and impression"),
    "impression": ("impression", "impressions", "opinion", "interpretation", "summary"),
    "conclusion": ("conclusion", "conclusions"),
    "indication": (
        "indication",
        "indications",
        "clinical indication",
        "clinical indications",
        "reason for exam",
        "reason for examination",
        "reason for study",
        "reason for referral",
        "reason",
    ),
    "history": (
        "history",
        "clinical history",
        "clinical information",
        "clinical data",
        "clinical details",
        "patient history",
        "medical history",
        "hx",
    ),
    "comparison": ("comparison", "comparisons", "comparison study", "comparison studies", "prior studies", "priors"),
    "technique": ("technique", "techniques", "procedure", "protocol", "contrast"),
    "exam": ("exam", "examination", "study", "exam type", "type of exam", "procedure performed"),
    "differential_diagnosis": ("differential diagnosis", "differential diagnoses", "differential", "ddx"),
    "diagnosis": ("diagnosis", "case diagnosis", "final diagnosis", "diagnoses"),
    "recommendation": ("recommendation", "recommendations", "follow-up", "follow up"),
    "discussion": ("discussion", "disease discussion"),
    "addendum": ("addendum",),
    "title": ("title",),
}


class Section(NamedTuple):
    """One section of a report.

    Attributes
    ----------
    name : str
        Lower-case canonical name (``"findings"``, ``"impression"``, ...,
        ``"other"`` for text outside any known heading).
    heading : str or None
        The heading as written, colon included (``"FINDINGS:"``); ``None`` for ``"other"``.
    heading_start : int
        Offset of the heading in the text (== ``start`` for ``"other"``).
    start, end : int
        Body span: ``text[start:end]`` is the section body, stripped of
        surrounding whitespace (``start == end`` for an empty body).
    """

    name: str
    heading: str | None
    heading_start: int
    start: int
    end: int


def list_sections(headings: Mapping[str, tuple[str, ...]] | None = None) -> pd.DataFrame:
    """The heading registry as a table.

    Parameters
    ----------
    headings : mapping, optional
        A registry like :data:`HEADINGS` (default: that one).

    Returns
    -------
    DataFrame
        Columns ``section`` (canonical name) and ``heading`` (one spelling
        per row, upper case), sorted by section.
    """
    headings = HEADINGS if headings is None else headings
    rows = [(name, sp.upper()) for name, spellings in headings.items() for sp in spellings]
    return pd.DataFrame(rows, columns=["section", "heading"]).sort_values(["section", "heading"], ignore_index=True)


def register_heading(name: str, *spellings: str, headings: Mapping[str, tuple[str, ...]] | None = None) -> dict:
    """Return a copy of a heading registry with extra spellings for ``name``.

    Parameters
    ----------
    name : str
        Canonical section name (lower case, e.g. ``"findings"`` or a new one).
    *spellings : str
        Headings that should map to ``name`` (case-insensitive).
    headings : mapping, optional
        The registry to extend (default :data:`HEADINGS`).

    Returns
    -------
    dict
        A new registry; pass it to :func:`split_sections` as ``headings=``.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name must be a non-empty string, got {name!r}.")
    bad = [s for s in spellings if not isinstance(s, str) or not s.strip()]
    if bad or not spellings:
        raise ValueError(f"spellings must be one or more non-empty strings, got {spellings!r}.")
    out = {k: tuple(v) for k, v in (HEADINGS if headings is None else headings).items()}
    out[name] = tuple(dict.fromkeys(out.get(name, ()) + tuple(s.strip().lower() for s in spellings)))
    return out


def _freeze(headings: Mapping[str, tuple[str, ...]]) -> tuple:
    return tuple((k, tuple(v)) for k, v in headings.items())


@lru_cache(maxsize=8)
def _compile(frozen: tuple) -> tuple[re.Pattern, dict[str, str], frozenset]:
    lookup: dict[str, str] = {}
    for name, spellings in frozen:
        for sp in spellings:
            lookup[" ".join(sp.lower().split())] = name
    alts = sorted(lookup, key=len, reverse=True)
    words = "|".join(r"[ \t]+".join(re.escape(w) for w in a.split()) for a in alts)
    # a heading word, then an optional colon, then (for "alone on its line") the end of the line
    pattern = re.compile(rf"(?P<w>{words})[ \t]*(?P<colon>:)?(?P<eol>[ \t]*(?:\r?\n|$))?", re.IGNORECASE)
    first = frozenset(c for a in alts for c in (a[0].lower(), a[0].upper()))
    return pattern, lookup, first


# where a heading may start: the text start, a line start, or after a sentence end (mid-line)
_STARTS = re.compile(r"[\n.!?;)](?:(?<=\n)[ \t]*|(?<=[.!?;)])[ \t]+)")


@lru_cache(maxsize=1)
def _compile_default():
    return _compile(_freeze(HEADINGS))


def split_sections(text: str, *, headings: Mapping[str, tuple[str, ...]] | None = None) -> list[Section]:
    """Split a report into sections.

    Parameters
    ----------
    text : str
        The full report text.
    headings : mapping, optional
        Heading registry (canonical name -> spellings); default :data:`HEADINGS`.

    Returns
    -------
    list of Section
        In text order. Text before the first heading (when not blank) is a
        section named ``"other"``; a report with no heading is one ``"other"``
        section; an empty text gives ``[]``. Bodies exclude the heading and
        surrounding whitespace, so ``text[s.start:s.end]`` is the body.

    Raises
    ------
    TypeError
        If ``text`` is not a string.

    Examples
    --------
    >>> [(s.name, s.start, s.end) for s in split_sections("FINDINGS: No mass.\\n\\nIMPRESSION: Normal.")]
    [('findings', 10, 18), ('impression', 32, 39)]
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}.")
    pattern, lookup, first = _compile_default() if headings is None else _compile(_freeze(headings))
    found = []
    n = len(text)
    lead = 0
    while lead < n and text[lead] in " \t":
        lead += 1
    candidates = [(lead, True)]
    candidates.extend((m.end(), m.group()[0] == "\n") for m in _STARTS.finditer(text))
    last_end = -1
    for pos, line_start in candidates:
        if pos >= n or pos < last_end or text[pos] not in first:
            continue
        m = pattern.match(text, pos)
        if m is None:
            continue
        word = m.group("w")
        if m.group("colon") is not None:
            if not line_start and not word[0].isupper():  # mid-line headings must be capitalised
                continue
            heading_end = m.end("colon")
        elif line_start and m.group("eol") is not None:  # alone on its line
            heading_end = m.end("w")
        else:
            continue
        if pos + len(word) < n and (text[pos + len(word)].isalnum()):
            continue  # "Findings" must be a whole word ("Findingsx")
        name = lookup[" ".join(word.lower().split())]
        found.append((name, text[pos:heading_end], pos, heading_end))
        last_end = heading_end
    out: list[Section] = []
    first_heading = found[0][2] if found else n
    s, e = _strip(text, 0, first_heading)
    if s < e:
        out.append(Section(OTHER, None, s, s, e))
    for i, (name, heading, hs, he) in enumerate(found):
        nxt = found[i + 1][2] if i + 1 < len(found) else n
        s, e = _strip(text, he, nxt)
        out.append(Section(name, heading.rstrip(), hs, s, e))
    return out


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink ``[start, end)`` to exclude surrounding whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
