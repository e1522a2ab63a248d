"""Replace the PHI of a reports table: surrogates, masks or tags, consistent within a patient.

``surrogate`` writes realistic fakes: the same name of the same patient always
becomes the same fake name (word by word, so "Dr. Jane Smith" and later
"Dr. Smith" stay one person), record numbers and phones keep their shape with
other digits, and every date of a patient moves by one offset (62 to 730 days
back), so intervals between exams survive. ``mask`` writes ``XXXX`` (the token
the public corpora use, which the rest of radmine already handles), ``tag``
writes the label (``[NAME]``).

All choices are keyed hashes (HMAC-SHA256) of the patient and the value under
one secret ``key``: the same key gives the same surrogates and pseudonyms in a
later run (so new exports join the old ones); without the key they cannot be
reversed. Keep the key out of what you share.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Sequence
from typing import Any

import pandas as pd

from radmine.deid.text import LABELS, PHIDetector, PHISpan

logger = logging.getLogger(__name__)

METHODS = ("surrogate", "mask", "tag")
SPAN_COLUMNS = ["report_id", "column", "start", "end", "label", "source", "orig_start", "orig_end"]
#: Id columns pseudonymised by default (a keyed hash, the same in reports, images and DICOM headers).
ID_COLUMNS = ("report_id", "patient_id", "study_id", "accession", "series_uid", "image_id")
#: Columns never scrubbed: short categorical fields radmine needs as they are.
KEEP_COLUMNS = ("modality", "split", "view", "plane", "sex", "body_part", "section", "photometric", "sop_class", "path",
                "transfer_syntax", "source")
# Column names that hold structured PHI, by what to do with them.
_PHI_COLUMN_RULES = [
    ("drop", re.compile(r"(?i)(phone|fax|pager|e-?mail|address|street|city|zip|postal|ssn|social|telecom|insurance)")),
    ("date", re.compile(r"(?i)(^|_)(date|dob|birth|datetime|dt)($|_)|date$|birth")),
    ("name", re.compile(r"(?i)(^|_)(name|patient_name|physician|doctor|radiologist|provider|author|referrer|referring|"
                        r"ordering|attending|signer|reader|technologist)($|_)")),
    ("id", re.compile(r"(?i)(^|_)(mrn|accession|acc|account|encounter|visit|order|uid|id|number|no)($|_)")),
]


@functools.lru_cache(maxsize=1)
def _faker_lists() -> tuple[list[str], list[str], list[str], list[str]]:
    """Surrogate pools ``(given names, family names, cities, street suffixes)`` from Faker's en_US lists."""
    try:
        from faker.providers.address.en_US import Provider as A
        from faker.providers.person.en_US import Provider as P
    except ImportError:  # a small built-in list keeps surrogates working without faker
        lasts = ["Ashdown", "Brightwell", "Corvale", "Dunmore", "Ellery", "Fenwick", "Garrow", "Hollis"]
        return (["Alex", "Casey", "Jordan", "Morgan", "Riley", "Taylor", "Avery", "Quinn"], lasts,
                [f"{last}ville" for last in lasts], ["Street", "Avenue", "Road", "Lane"])
    firsts = sorted(set(P.first_names_male) | set(P.first_names_female))
    lasts = sorted(P.last_names)
    cities = sorted({f"{last}{end}" for last in lasts[:60] for end in ("ville", "ton", "field", "burg")})
    return firsts, lasts, cities, sorted(set(A.street_suffixes))


_UID_RX = re.compile(r"\d+(?:\.\d+){3,}")


class Pseudonymizer:
    """Keyed, consistent pseudonyms, surrogates and date offsets.

    Parameters
    ----------
    key : str or bytes, optional
        The secret. ``None`` derives one from ``random_state`` when that is
        given (reproducible, but anyone who knows the seed can recompute the
        mapping) or else draws a fresh random key (nothing can be re-linked
        later).
    random_state : int, optional
        Seed used only when ``key`` is None.
    """

    def __init__(self, key: str | bytes | None = None, *, random_state: int | None = None) -> None:
        if key is None:
            key = f"radmine-deid-{random_state}" if random_state is not None else secrets.token_hex(32)
        if not isinstance(key, (str, bytes)):
            raise TypeError(f"The 'key' parameter of Pseudonymizer must be a str or bytes. Got {type(key).__name__} instead.")
        self._key = key.encode() if isinstance(key, str) else key

    def _int(self, *parts: Any) -> int:
        msg = "\x1f".join(str(p) for p in parts).encode()
        return int.from_bytes(hmac.new(self._key, msg, hashlib.sha256).digest(), "big")

    def pseudonym(self, value: Any, kind: str = "id") -> Any:
        """A stable pseudonym for an id (``None``/NaN stay missing)."""
        if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
            return value
        if isinstance(value, str) and _UID_RX.fullmatch(value):
            return self.uid(value)
        return f"{kind[:3]}-{self._int('id', kind, value):x}"[:16]

    def uid(self, value: Any) -> Any:
        """A stable DICOM UID (``2.25.<integer>``) for a UID."""
        if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
            return value
        return f"2.25.{self._int('uid', value) >> 130}"

    def date_offset(self, patient: Any) -> int:
        """Days (negative, 62-730) that every date of ``patient`` moves by."""
        return -(62 + self._int("date", patient) % (730 - 62))

    def digits(self, patient: Any, value: str) -> str:
        """``value`` with every digit and letter replaced, punctuation and shape kept."""
        n = self._int("digits", patient, value)
        out = []
        for ch in value:
            n, r = divmod(n, 26) if ch.isalpha() else divmod(n, 10)
            if n == 0:
                n = self._int("digits", patient, value, len(out))
            if ch.isdigit():
                out.append(str(r))
            elif ch.isalpha():
                c = chr(ord("A") + r)
                out.append(c if ch.isupper() else c.lower())
            else:
                out.append(ch)
        return "".join(out)

    def name_word(self, patient: Any, word: str, first_names: frozenset) -> str:
        firsts, lasts, _cities, _streets = _faker_lists()
        pool = firsts if word.capitalize() in first_names else lasts
        fake = pool[self._int("name", patient, word.lower()) % len(pool)]
        if word.isupper() and len(word) > 1:
            return fake.upper()
        return fake

    def pick(self, patient: Any, value: str, pool: Sequence[str], tag: str) -> str:
        return pool[self._int(tag, patient, value) % len(pool)]


# -- dates -------------------------------------------------------------------
_MONTH_NUM = {m.lower(): i for i, m in enumerate(calendar.month_name) if m} | \
             {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m} | {"sept": 9}


def _fmt_month(original: str, month: int) -> str:
    name = calendar.month_name[month] if len(original.rstrip(".")) > 3 else calendar.month_abbr[month]
    if original.isupper():
        name = name.upper()
    return name + ("." if original.endswith(".") else "")


def _year(y: str) -> int:
    y = y.lstrip("'")
    return int(y) + (2000 if int(y) < 50 else 1900) if len(y) == 2 else int(y)


def _yfmt(original: str, year: int) -> str:
    return f"{year % 100:02d}" if len(original.lstrip("'")) == 2 else str(year)


def _pad(original: str, value: int) -> str:
    return f"{value:02d}" if len(original) == 2 else str(value)


def shift_date(text: str, days: int) -> str | None:
    """``text`` (a date in one of the formats :func:`find_phi` knows) moved by ``days``; None if not parseable.

    The format is kept: ``3/4/2021`` -> ``1/2/2020``, ``March 4, 2021`` ->
    ``January 2, 2020``, ``2021-03-04`` -> ``2020-01-02``. Times of day stay.
    """
    delta = dt.timedelta(days=days)
    m = re.fullmatch(r"(\D*?)(\d{4})([/.-])(\d{1,2})\3(\d{1,2})(.*)", text, re.S)  # ISO
    if m:
        try:
            d = dt.date(int(m[2]), int(m[4]), int(m[5])) + delta
        except ValueError:
            return None
        return f"{m[1]}{d.year}{m[3]}{_pad(m[4], d.month)}{m[3]}{_pad(m[5], d.day)}{m[6]}"
    m = re.fullmatch(r"((?:19|20)\d\d)(\d\d)(\d\d)(\d*)", text)  # compact 20210304
    if m:
        try:
            d = dt.date(int(m[1]), int(m[2]), int(m[3])) + delta
        except ValueError:
            return None
        return f"{d.year}{d.month:02d}{d.day:02d}{m[4]}"
    m = re.fullmatch(r"(\D*?)(\d{1,2})([/.-])(\d{1,2})(?:\3('?\d{2,4}))?(.*)", text, re.S)  # m/d/y (or d/m/y)
    if m:
        a, b = int(m[2]), int(m[4])
        month, day, swap = (a, b, False) if a <= 12 else (b, a, True)
        year = _year(m[5]) if m[5] else 2000
        try:
            d = dt.date(year, month, day) + delta
        except ValueError:
            return None
        first, second = (d.day, d.month) if swap else (d.month, d.day)
        out = f"{m[1]}{_pad(m[2], first)}{m[3]}{_pad(m[4], second)}"
        return out + (f"{m[3]}{_yfmt(m[5], d.year)}" if m[5] else "") + m[6]
    m = re.fullmatch(r"([A-Za-z]{3,9}\.?)(,?\s+)((?:19|20)\d\d)", text)  # March 2021
    if m and m[1].lower().rstrip(".") in _MONTH_NUM:
        d = dt.date(int(m[3]), _MONTH_NUM[m[1].lower().rstrip(".")], 15) + delta
        return f"{_fmt_month(m[1], d.month)}{m[2]}{d.year}"
    m = re.fullmatch(r"(\D*?)([A-Za-z]{3,9}\.?)\s+(\d{1,2})(st|nd|rd|th)?(,?\s+)?((?:19|20)\d\d)?(.*)", text, re.S)  # March 4, 2021
    if m and m[2].lower().rstrip(".") in _MONTH_NUM:
        year = int(m[6]) if m[6] else 2000
        try:
            d = dt.date(year, _MONTH_NUM[m[2].lower().rstrip(".")], int(m[3])) + delta
        except ValueError:
            return None
        suffix = _ordinal(d.day) if m[4] else ""
        tail = f"{m[5] or ' '}{d.year}" if m[6] else ""
        return f"{m[1]}{_fmt_month(m[2], d.month)} {d.day}{suffix}{tail}{m[7]}"
    m = re.fullmatch(r"(\D*?)(\d{1,2})(st|nd|rd|th)?(\s+of)?([\s-]+)([A-Za-z]{3,9}\.?)(?:(,?[\s-]+)('?\d{2,4}))?(.*)", text, re.S)  # 4 Mar 2021
    if m and m[6].lower().rstrip(".") in _MONTH_NUM:
        year = _year(m[8]) if m[8] else 2000
        try:
            d = dt.date(year, _MONTH_NUM[m[6].lower().rstrip(".")], int(m[2])) + delta
        except ValueError:
            return None
        out = f"{m[1]}{_pad(m[2], d.day)}{_ordinal(d.day) if m[3] else ''}{m[4] or ''}{m[5]}{_fmt_month(m[6], d.month)}"
        return out + (f"{m[7]}{_yfmt(m[8], d.year)}" if m[8] else "") + m[9]
    return None


def _ordinal(day: int) -> str:
    return "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


# -- replacement ---------------------------------------------------------------
_HOSPITAL_HEADS = ("Hospital", "Medical Center", "Clinic", "Health Center", "Imaging Center", "Infirmary")


def _surrogate(span: PHISpan, patient: Any, pz: Pseudonymizer, first_names: frozenset) -> str:
    text, label = span.text, span.label
    if label == "NAME":
        return re.sub(r"[A-Za-z][A-Za-z'’]+", lambda m: pz.name_word(patient, m.group(0), first_names), text)
    if label == "DATE":
        shifted = shift_date(text, pz.date_offset(patient))
        return shifted if shifted is not None else "XXXX"
    if label in ("ID", "PHONE"):
        return pz.digits(patient, text)
    if label == "AGE":
        return "90"
    firsts, lasts, cities, streets = _faker_lists()
    if label == "EMAIL":
        return f"{pz.pick(patient, text, firsts, 'email').lower()}.{pz.pick(patient, text, lasts, 'email2').lower()}@example.org"
    if label == "URL":
        return "www.example.org"
    if label == "HOSPITAL":
        head = next((h for h in _HOSPITAL_HEADS if h.lower() in text.lower()), "Hospital")
        return f"{pz.pick(patient, text, lasts, 'hospital')} {head}"
    if label == "ADDRESS":
        if re.match(r"\d", text):
            number = pz.digits(patient, re.match(r"\d+", text).group(0))
            return f"{number} {pz.pick(patient, text, lasts, 'street')} {pz.pick(patient, text, streets, 'suffix')}"
        city = pz.pick(patient, text, cities, "city")
        m = re.search(r",\s*([A-Z]{2})\b(\s+\d{5}(?:-\d{4})?)?", text)
        if m:
            return f"{city}, {m[1]}" + (f" {pz.digits(patient, m[2].strip())}" if m[2] else "")
        if re.fullmatch(r"[\d-]+", text):
            return pz.digits(patient, text)
        return city
    return "XXXX"


def replace_spans(text: str, spans: Sequence[PHISpan], method: str, *, patient: Any = None,
                  pseudonymizer: Pseudonymizer | None = None) -> tuple[str, list[tuple[int, int, int, int, str, str]]]:
    """Write ``text`` with its PHI ``spans`` replaced.

    Returns
    -------
    (str, list)
        The new text and, per span, ``(start, end, orig_start, orig_end, label, source)``
        with ``start, end`` in the new text.
    """
    from radmine.deid.text import word_lists

    first_names = word_lists()["first"]
    pz = pseudonymizer or Pseudonymizer()
    parts, rows, pos, shift = [], [], 0, 0
    for sp in sorted(spans, key=lambda s: s.start):
        if sp.start < pos:
            continue
        if method == "mask":
            new = "XXXX"
        elif method == "tag":
            new = f"[{sp.label}]"
        else:
            new = _surrogate(sp, patient, pz, first_names)
        parts.append(text[pos:sp.start])
        start = sp.start + shift
        parts.append(new)
        rows.append((start, start + len(new), sp.start, sp.end, sp.label, sp.source))
        shift += len(new) - (sp.end - sp.start)
        pos = sp.end
    parts.append(text[pos:])
    return "".join(parts), rows


def _column_rule(name: str) -> str | None:
    for action, rx in _PHI_COLUMN_RULES:
        if rx.search(name):
            return action
    return None


def deidentify_reports(
    reports: pd.DataFrame,
    *,
    method: str = "surrogate",
    random_state: int | None = None,
    key: str | bytes | None = None,
    text_columns: Sequence[str] | None = None,
    id_columns: Sequence[str] | None = None,
    detector: PHIDetector | None = None,
    pseudonymizer: Pseudonymizer | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scrub PHI from a reports table.

    Parameters
    ----------
    reports : DataFrame
        One row per report with ``report_id`` and ``text`` (``patient_id``
        keeps surrogates and date offsets per patient; without it each
        report is its own patient). Other columns are handled by name: ids
        (``patient_id, study_id, accession, ...``, ``*_id``, ``mrn``) are
        pseudonymised, dates (``date``, ``study_date``, ``dob``) shifted,
        name columns replaced, contact columns (phone, address, e-mail)
        dropped, and every other text column scrubbed like ``text``.
    method : {"surrogate", "mask", "tag"}, default "surrogate"
        What replaces a PHI span: a realistic fake, ``XXXX`` or ``[LABEL]``.
    random_state : int, optional
        Makes the run reproducible when no ``key`` is given (see
        :class:`Pseudonymizer`; anyone who knows the seed can recompute the
        pseudonyms, so prefer a secret ``key`` for data that leaves).
    key : str or bytes, optional
        Secret behind every pseudonym, surrogate and date offset.
    text_columns : sequence of str, optional
        Free-text columns to scrub (default: ``text``, the section columns and
        every other string column not handled by name).
    id_columns : sequence of str, optional
        Id columns to pseudonymise (default: :data:`ID_COLUMNS` present plus
        id-like column names). Pass ``[]`` to keep ids as they are.
    detector : PHIDetector, optional
        A configured detector (default ``PHIDetector()``).
    pseudonymizer : Pseudonymizer, optional
        Shared with :func:`radmine.deid.deidentify_dicom` so report and image
        ids stay joinable; overrides ``key``/``random_state``.

    Returns
    -------
    (DataFrame, DataFrame)
        The scrubbed reports (same rows and order) and the PHI span table
        ``report_id, column, start, end, label, source, orig_start, orig_end``:
        ``start, end`` are offsets in the scrubbed text (what every later
        table uses), ``orig_*`` in the original; no PHI text is kept.

    Raises
    ------
    ValueError
        If ``method`` is unknown or a required column is missing.
    TypeError
        If ``reports`` is not a DataFrame.

    Examples
    --------
    >>> import pandas as pd, radmine
    >>> df = pd.DataFrame({"report_id": ["r1"], "patient_id": ["p1"],
    ...                    "text": ["Discussed with Dr. Jane Roe on 3/4/2021."]})
    >>> clean, spans = radmine.deidentify_reports(df, method="tag")
    >>> clean["text"][0]
    'Discussed with Dr. [NAME] on [DATE].'
    """
    from radmine._validation import check_option

    if not isinstance(reports, pd.DataFrame):
        raise TypeError(f"deidentify_reports: reports must be a pandas DataFrame, got {type(reports).__name__}.")
    check_option(method, "method", "deidentify_reports", METHODS)
    missing = [c for c in ("report_id", "text") if c not in reports.columns]
    if missing:
        raise ValueError(f"deidentify_reports: reports lacks column(s) {missing}; found {list(reports.columns)}.")
    pz = pseudonymizer or Pseudonymizer(key, random_state=random_state)
    detector = detector or PHIDetector()
    df = reports.copy()
    patients = df["patient_id"] if "patient_id" in df.columns else df["report_id"]
    patients = patients.where(patients.notna(), df["report_id"]).astype(str).tolist()
    handled: dict[str, str] = {}
    for col in df.columns:
        if col == "text":
            continue
        if id_columns is not None:
            if col in id_columns:
                handled[col] = "id"
                continue
        elif col in ID_COLUMNS:
            handled[col] = "id"
            continue
        if col in KEEP_COLUMNS or (text_columns is not None and col in text_columns):
            continue
        rule = _column_rule(col)
        if rule == "id" and id_columns is not None:
            rule = None
        if rule is not None:
            handled[col] = rule
    texts = ["text"] + [c for c in df.columns if c != "text" and c not in handled and c not in KEEP_COLUMNS
                        and (text_columns is None or c in text_columns)
                        and (pd.api.types.is_string_dtype(df[c]) or df[c].dtype == object)]
    if text_columns is not None:
        unknown = [c for c in text_columns if c not in df.columns]
        if unknown:
            raise ValueError(f"deidentify_reports: text_columns {unknown} are not columns of reports; found {list(df.columns)}.")
    rows = []
    new_ids = [pz.pseudonym(r, "report") for r in df["report_id"]] if handled.get("report_id") == "id" else list(df["report_id"])
    for col in texts:
        values = df[col].tolist()
        idx = [i for i, v in enumerate(values) if isinstance(v, str) and v.strip()]
        spans = detector.find_many([values[i] for i in idx])
        out = list(values)
        for i, sp in zip(idx, spans):
            out[i], reps = replace_spans(values[i], sp, method, patient=patients[i], pseudonymizer=pz)
            rows.extend((new_ids[i], col, *r) for r in reps)
        df[col] = pd.Series(out, index=df.index, dtype=df[col].dtype if col == "text" else object)
    dropped = []
    for col, rule in handled.items():
        if rule == "id":
            kind = col.removesuffix("_id") or "id"
            df[col] = [pz.pseudonym(v, kind) for v in df[col]]
        elif rule == "date":
            df[col] = [_shift_cell(v, pz.date_offset(p), method) for v, p in zip(df[col], patients)]
        elif rule == "name":
            df[col] = [v if not isinstance(v, str) or not v.strip() else
                       (replace_spans(v, [PHISpan(0, len(v), "NAME", v, "column")], method, patient=p, pseudonymizer=pz)[0])
                       for v, p in zip(df[col], patients)]
        else:
            dropped.append(col)
    if dropped:
        import warnings

        warnings.warn(f"deidentify_reports: dropped contact column(s) {dropped} (phone, address, e-mail and the like "
                      f"are never needed for mining).", stacklevel=2)
        df = df.drop(columns=dropped)
    spans_df = pd.DataFrame(rows, columns=["report_id", "column", "start", "end", "orig_start", "orig_end", "label", "source"])
    spans_df = spans_df[SPAN_COLUMNS]
    logger.info("deidentify_reports: %d report(s), %d PHI span(s) replaced (%s).", len(df), len(spans_df), method)
    return df, spans_df


def _shift_cell(value: Any, days: int, method: str) -> Any:
    """A date cell (string like ``20210304`` / ``2021-03-04`` / ``3/4/2021``, or a timestamp) moved by ``days``."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return value
    if method != "surrogate":
        return None
    if isinstance(value, (pd.Timestamp, dt.datetime, dt.date)):
        return value + pd.Timedelta(days=days)
    shifted = shift_date(str(value).strip(), days)
    return shifted


__all__ = ["deidentify_reports", "Pseudonymizer", "replace_spans", "shift_date", "METHODS", "SPAN_COLUMNS", "LABELS"]
