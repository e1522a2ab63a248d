"""Weak labels from report text: vocabulary matches + negation/uncertainty + sections.

Label values follow the CheXpert convention:

====  =====================================================
1     positive: at least one positive mention
-1    uncertain: no positive mention, at least one uncertain
0     negated: only negated mentions
NaN   not mentioned (or no usable text)
====  =====================================================

Aggregation across the mentions of one finding in one report is therefore
*positive beats uncertain beats negated*, as in CheXpert.

The vocabulary's ``kind: normal`` entry (``no_finding`` in the built-in
``chest_xray`` vocabulary) is derived, not matched: it is ``1`` when the report
has usable text and no finding that ``blocks_normal`` is positive (nor
uncertain, with ``uncertain_blocks_normal=True``), and ``0`` otherwise. Its
phrases ("normal chest", "no acute cardiopulmonary disease") are still
recorded in the mentions table, so :meth:`WeakLabeler.explain` shows them.

Section awareness: only sentences in ``sections`` count (by default
``findings``, ``impression`` and ``conclusion``); indication, history and
comparison mentions are ignored. A report without any section heading (all
its text in section ``"other"``) uses all its text.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from radmine._validation import check_is_fitted
from radmine.base import BaseEstimator
from radmine.labels.vocabulary import Finding, Vocabulary, auto_vocabulary, load_vocabulary
from radmine.text.negation import NegationDetector, classify_span, trie_regex

logger = logging.getLogger(__name__)

__all__ = ["WeakLabeler", "label_reports", "MENTION_COLUMNS", "STATUS_VALUES"]

#: columns of the long mentions table
MENTION_COLUMNS = ["report_id", "sentence_id", "section", "start", "end", "finding", "status", "trigger", "matched"]
#: status -> label value
STATUS_VALUES = {"positive": 1.0, "uncertain": -1.0, "negated": 0.0}
_RANK = {"negated": 1, "uncertain": 2, "positive": 3}
_OTHER = "other"


def _phrase_regex(phrase: str) -> str:
    words = phrase.strip().split()
    parts = [re.escape(w).replace(r"\-", "[-\\s]?") for w in words]
    body = r"[\s-]+".join(parts)
    if words[-1][-1:].isalpha():
        body += r"(?:e?s)?"
    left = r"(?<![\w])" if words[0][:1].isalnum() else ""
    right = r"(?![\w])" if words[-1][-1:].isalnum() else ""
    return f"{left}{body}{right}"


def _abbrev_regex(abbrev: str) -> str:
    return rf"(?-i:(?<![\w]){re.escape(abbrev.strip())}(?![\w]))"


def _finding_alternatives(f: Finding) -> list[str]:
    alts = [_phrase_regex(t) for t in (*f.terms, *f.synonyms)]
    alts += [_abbrev_regex(a) for a in f.abbreviations]
    alts += [f"(?:{p})" for p in f.patterns]
    return alts


def _exclusion_regex(f: Finding) -> re.Pattern | None:
    if not f.exclusions:
        return None
    alts = [e[3:] if e.startswith("re:") else _phrase_regex(e) for e in f.exclusions]
    return re.compile("|".join(f"(?:{a})" for a in alts), re.IGNORECASE)


class _Matcher:
    """All vocabulary terms in one compiled pattern, plus per-finding lookups."""

    def __init__(self, vocab: Vocabulary) -> None:
        self.findings = vocab.findings
        self.full: list[re.Pattern] = []
        literal: set[str] = set()
        abbrevs: set[str] = set()
        patterns: list[str] = []
        for f in vocab.findings:
            fa = _finding_alternatives(f)
            self.full.append(re.compile("|".join(f"(?:{a})" for a in fa), re.IGNORECASE) if fa else None)
            literal.update(" ".join(t.split()) for t in (*f.terms, *f.synonyms))
            abbrevs.update(a.strip() for a in f.abbreviations)
            patterns.extend(f.patterns)
        # one trie-shaped pattern for the literal terms (longest match first), then the
        # raw patterns and the case-sensitive abbreviations
        alts = []
        if patterns:
            alts.append("(?<!\\w)(?i:" + "|".join(f"(?:{p})" for p in dict.fromkeys(patterns)) + ")")
        if literal:
            trie = trie_regex(sorted(literal), space=r"[\s-]+", hyphen=r"[\s-]?")
            alts.append(rf"(?<!\w)(?:{trie})(?:e?s)?(?!\w)")
        # terms and patterns: scanned on lower-cased text (fast path); abbreviations:
        # case-sensitive, a separate scan of the original text
        self.master = re.compile("|".join(alts)) if alts else None
        self.master_ci = re.compile("|".join(alts), re.IGNORECASE) if alts else None
        self.abbrev = None
        if abbrevs:
            body = "|".join(re.escape(a) for a in sorted(abbrevs, key=lambda a: (-len(a), a)))
            self.abbrev = re.compile(rf"(?<!\w)(?:{body})(?!\w)")
        self.exclusions = [_exclusion_regex(f) for f in vocab.findings]
        self._cache: dict[str, tuple[int, ...]] = {}

    def finditer(self, text: str) -> list[tuple[int, int]]:
        """Spans of every vocabulary match in ``text`` (terms/patterns, then abbreviations)."""
        out = []
        if self.master is not None:
            it = self.master.finditer(text.lower()) if text.isascii() else self.master_ci.finditer(text)
            out = [m.span() for m in it]
        if self.abbrev is not None:
            extra = [m.span() for m in self.abbrev.finditer(text)]
            if extra:
                out = sorted(out + [sp for sp in extra if not any(a < sp[1] and sp[0] < b for a, b in out)])
        return out

    def lookup(self, matched: str) -> tuple[int, ...]:
        hit = self._cache.get(matched)
        if hit is None:
            hit = tuple(i for i, p in enumerate(self.full) if p is not None and p.fullmatch(matched))
            if len(self._cache) < 200_000:
                self._cache[matched] = hit
        return hit


def _as_reports(reports: Any) -> tuple[pd.DataFrame, pd.Index, pd.DataFrame | None]:
    """Normalise input to (reports table with report_id/text, output index, sentences or None)."""
    from radmine.corpus import Corpus

    from radmine._validation import reject_dask

    reject_dask(reports, "WeakLabeler.transform", "radmine.dask.label_reports(ddf, labeler=labeler)")
    sentences = None
    if isinstance(reports, Corpus):
        sentences = reports.sentences if len(reports.sentences) else None
        reports = reports.reports
    if isinstance(reports, pd.DataFrame):
        if "text" not in reports.columns:
            raise ValueError(f"reports must have a 'text' column; it has {list(reports.columns)}.")
        if "report_id" in reports.columns:
            ids = reports["report_id"]
            if ids.duplicated().any():
                dup = ids[ids.duplicated()].iloc[:5].tolist()
                raise ValueError(f"reports.report_id must be unique; duplicated: {dup}.")
            index = pd.Index(ids.to_numpy(), name="report_id")
            table = pd.DataFrame({"report_id": ids.to_numpy(), "text": reports["text"].to_numpy()})
        else:
            index = reports.index
            table = pd.DataFrame({"report_id": _ids_for(index), "text": reports["text"].to_numpy()})
            sentences = None
        return table, index, sentences
    if isinstance(reports, pd.Series):
        index = reports.index
        values = reports.to_numpy()
    elif isinstance(reports, str):
        raise TypeError("reports must be a DataFrame, a Series or a list of strings, not a single str; wrap it in a list.")
    elif isinstance(reports, Iterable):
        values = list(reports)
        index = pd.RangeIndex(len(values))
    else:
        raise TypeError(
            f"reports must be a Corpus, a reports DataFrame, a Series or a list of strings; got {type(reports).__name__}."
        )
    table = pd.DataFrame({"report_id": _ids_for(index), "text": pd.Series(values, dtype=object).to_numpy()})
    return table, index, None


def _ids_for(index: pd.Index) -> np.ndarray:
    """Report ids for inputs without ``report_id``: the index when unique, positions otherwise."""
    if index.is_unique:
        return index.to_numpy()
    return np.arange(len(index))


class WeakLabeler(BaseEstimator):
    """Rule-based weak labeller: vocabulary terms, negation/uncertainty scopes, sections.

    Parameters
    ----------
    vocabulary : str, path, dict or Vocabulary, default "auto"
        See :func:`radmine.load_vocabulary` (built-ins: ``"chest_xray"``,
        ``"ct_mr"``). ``"auto"`` picks one of them in :meth:`fit` from the
        reports' ``modality`` (:func:`radmine.labels.vocabulary.auto_vocabulary`:
        ``"chest_xray"`` for radiographs or unknown modality, ``"ct_mr"``
        otherwise), the same rule as ``radmine label`` and ``radmine mine``.
    sections : sequence of str, default ("findings", "impression", "conclusion")
        Sections whose sentences count. Reports without headings use all text.
    negation : NegationDetector, optional
        A configured detector (default cues otherwise).
    uncertain_blocks_normal : bool, default False
        Whether an uncertain finding rules out the ``normal`` label (CheXpert
        does; the Open-i MeSH annotators mostly do not annotate hedged findings).
    engine : str, default "rules"
        Sentence engine for :func:`radmine.sentence_table` when the input has
        no sentences table.

    Attributes
    ----------
    vocabulary_ : Vocabulary
    labels_ : list of str
        Label columns (finding names, vocabulary order).
    mentions_ : DataFrame
        After :meth:`transform`: every mention, columns
        ``report_id, sentence_id, section, start, end, finding, status, trigger,
        matched`` (``start``/``end`` are offsets into the report text).
    n_empty_ : int
        After :meth:`transform`: reports with no usable text (NaN rows).

    Examples
    --------
    >>> lab = WeakLabeler().fit()
    >>> y = lab.transform(["FINDINGS: No pneumothorax. Small left pleural effusion."])
    >>> int(y.loc[0, "pleural_effusion"]), int(y.loc[0, "pneumothorax"])
    (1, 0)
    """

    def __init__(
        self,
        vocabulary: Any = "auto",
        *,
        sections: Sequence[str] = ("findings", "impression", "conclusion"),
        negation: NegationDetector | None = None,
        uncertain_blocks_normal: bool = False,
        engine: Any = "rules",
    ) -> None:
        self.vocabulary = vocabulary
        self.sections = sections
        self.negation = negation
        self.uncertain_blocks_normal = uncertain_blocks_normal
        self.engine = engine

    def fit(self, X: Any = None, y: Any = None) -> WeakLabeler:
        """Load the vocabulary and compile the patterns (no learning); returns ``self``.

        ``X`` (optional: a Corpus or reports table) only serves ``vocabulary="auto"``.
        """
        if isinstance(self.sections, str) or not all(isinstance(s, str) for s in self.sections):
            raise TypeError(f"The 'sections' parameter of WeakLabeler must be a sequence of str; got {self.sections!r}.")
        if self.negation is not None and not isinstance(self.negation, NegationDetector):
            raise TypeError(
                f"The 'negation' parameter of WeakLabeler must be a NegationDetector; got {type(self.negation).__name__}."
            )
        auto = isinstance(self.vocabulary, str) and self.vocabulary == "auto"
        self.vocabulary_ = load_vocabulary(auto_vocabulary(X) if auto else self.vocabulary)
        self.labels_ = self.vocabulary_.names
        self._matcher = _Matcher(self.vocabulary_)
        self._detector = self.negation if self.negation is not None else NegationDetector()
        self._detector.compile()
        return self

    def fit_transform(self, X: Any, y: Any = None) -> pd.DataFrame:
        return self.fit(X).transform(X)

    # ------------------------------------------------------------------ core
    def _sentences(self, table: pd.DataFrame, sentences: pd.DataFrame | None) -> pd.DataFrame:
        if sentences is None:
            from radmine.text.sentences import sentence_table

            ok = table["text"].map(lambda t: isinstance(t, str) and bool(t.strip())).astype(bool)
            sentences = sentence_table(table[ok], engine=self.engine)
        else:
            sentences = sentences[sentences["report_id"].isin(set(table["report_id"]))]
        keep = set(self.sections)
        sec = sentences["section"].to_numpy()
        in_keep = np.isin(sec, list(keep))
        # reports whose sentences are all "other" (no headings): use all their text
        has_heading = pd.Series(sec != _OTHER).groupby(sentences["report_id"].to_numpy()).any()
        no_heading = set(has_heading.index[~has_heading.to_numpy()])
        use = in_keep | (sentences["report_id"].isin(no_heading).to_numpy() & (sec == _OTHER))
        return sentences[use]

    def transform(self, reports: Any, *, sentences: pd.DataFrame | None = None) -> pd.DataFrame:
        """Label reports.

        Parameters
        ----------
        reports : Corpus, DataFrame, Series or list of str
            A reports table (``report_id`` + ``text``; a Corpus's
            ``sentences`` table is used when filled) or report texts.
        sentences : DataFrame, optional
            A precomputed sentences table for ``reports`` (saves splitting).

        Returns
        -------
        DataFrame, shape (n_reports, n_findings)
            Indexed by ``report_id`` for a reports table, like the input
            otherwise; values 1 / 0 / -1 / NaN (float).
        """
        check_is_fitted(self, "labels_")
        table, index, corpus_sentences = _as_reports(reports)
        if sentences is None:
            sentences = corpus_sentences
        n = len(table)
        texts = table["text"].tolist()
        valid = np.array([isinstance(t, str) and bool(t.strip()) for t in texts], dtype=bool)
        sents = self._sentences(table, sentences)
        pos_of = {rid: i for i, rid in enumerate(table["report_id"].tolist())}
        labels = self._label_sentences(sents, pos_of, n)
        has_text = np.zeros(n, dtype=bool)
        if len(sents):
            has_text[np.fromiter((pos_of[r] for r in sents["report_id"].unique()), dtype=np.int64)] = True
        has_text &= valid
        self.n_empty_ = int((~has_text).sum())
        if self.n_empty_:
            logger.warning("WeakLabeler: %d of %d report(s) have no usable text; their labels are NaN.", self.n_empty_, n)
        labels[~has_text, :] = np.nan
        self._last_ids = set(table["report_id"].tolist())
        out = pd.DataFrame(labels, index=index, columns=self.labels_)
        out.columns.name = "finding"
        return out

    def _label_sentences(self, sents: pd.DataFrame, pos_of: dict, n: int) -> np.ndarray:
        matcher, det = self._matcher, self._detector
        findings = self.vocabulary_.findings
        normal_idx = next((i for i, f in enumerate(findings) if f.kind == "normal"), None)
        best = np.zeros((n, len(findings)), dtype=np.int8)  # 0 none, 1 neg, 2 unc, 3 pos
        rows: list[tuple] = []
        if len(sents):
            it = zip(
                sents["report_id"].tolist(),
                sents["sentence_id"].tolist(),
                sents["section"].tolist(),
                sents["start"].tolist(),
                sents["text"].tolist(),
            )
            lookup, excl, finditer = matcher.lookup, matcher.exclusions, matcher.finditer
            for rid, sid, sec, s0, text in it:
                spans = finditer(text)
                if not spans:
                    continue
                scopes = None
                r = pos_of[rid]
                for a, b in spans:
                    matched = text[a:b]
                    hits = lookup(matched)
                    if not hits:
                        continue
                    for fi in hits:
                        ex = excl[fi]
                        if ex is not None and any(e.start() < b and a < e.end() for e in ex.finditer(text)):
                            continue
                        if fi == normal_idx:
                            status, trig = "positive", None
                        else:
                            if scopes is None:
                                scopes = det.scopes(text)
                            status, trig = classify_span(scopes, a, b)
                        rank = _RANK[status]
                        if rank > best[r, fi]:
                            best[r, fi] = rank
                        rows.append((rid, sid, sec, s0 + a, s0 + b, findings[fi].name, status, trig, matched))
        self.mentions_ = pd.DataFrame(rows, columns=MENTION_COLUMNS)
        values = np.array([np.nan, 0.0, -1.0, 1.0])[best]
        if normal_idx is not None:
            blocking = [i for i, f in enumerate(findings) if f.blocks_normal and f.kind != "normal"]
            if blocking:
                sub = best[:, blocking]
                blocked = (sub == 3).any(axis=1)
                if self.uncertain_blocks_normal:
                    blocked |= (sub == 2).any(axis=1)
            else:
                blocked = np.zeros(n, dtype=bool)
            values[:, normal_idx] = np.where(blocked, 0.0, 1.0)
        return values

    # ------------------------------------------------------------------ inspection
    def explain(self, report_id: Any) -> pd.DataFrame:
        """The mentions behind one report's labels (from the last :meth:`transform`).

        Parameters
        ----------
        report_id : hashable
            A report id of the last transformed input (its position for a
            list of texts).

        Returns
        -------
        DataFrame
            Rows of :attr:`mentions_` for that report (columns
            :data:`MENTION_COLUMNS`).

        Raises
        ------
        KeyError
            If ``report_id`` was not in the last input.
        """
        check_is_fitted(self, "mentions_")
        known = getattr(self, "_last_ids", None)
        m = self.mentions_
        rows = m[m["report_id"] == report_id]
        if known is not None and report_id not in known:
            raise KeyError(f"WeakLabeler.explain: unknown report_id {report_id!r} (not in the last transform's input).")
        return rows.reset_index(drop=True)

    def _summary_rows(self) -> dict[str, Any]:
        rows = super()._summary_rows()
        if hasattr(self, "labels_"):
            rows["n_labels"] = len(self.labels_)
        if hasattr(self, "mentions_"):
            rows["n_mentions"] = len(self.mentions_)
            rows["n_empty"] = self.n_empty_
        return rows


def label_reports(
    reports: Any,
    vocabulary: Any = "auto",
    *,
    sections: Sequence[str] = ("findings", "impression", "conclusion"),
    negation: NegationDetector | None = None,
    uncertain_blocks_normal: bool = False,
    sentences: pd.DataFrame | None = None,
    return_mentions: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Weak labels for reports (one column per finding; 1 / 0 / -1 / NaN).

    A shortcut for ``WeakLabeler(vocabulary, ...).fit(reports).transform(reports)``.

    Parameters
    ----------
    reports : Corpus, DataFrame, Series, list of str or dask DataFrame
        Reports table (``report_id``, ``text``) or report texts. A Dask
        DataFrame is labelled lazily by :func:`radmine.distributed.label_reports`
        (the result is a Dask DataFrame; ``.compute()`` it).
    vocabulary : str, path, dict or Vocabulary, default "auto"
        See :class:`WeakLabeler`.
    sections, negation, uncertain_blocks_normal
        See :class:`WeakLabeler`.
    sentences : DataFrame, optional
        Precomputed sentences table.
    return_mentions : bool, default False
        Also return the long mentions table.

    Returns
    -------
    labels : DataFrame, shape (n_reports, n_findings)
    mentions : DataFrame
        Only with ``return_mentions=True``; see :attr:`WeakLabeler.mentions_`.

    Examples
    --------
    >>> y = label_reports(["IMPRESSION: Possible right lower lobe pneumonia."])
    >>> int(y.loc[0, "pneumonia"])
    -1
    """
    from radmine._validation import is_dask_collection

    if is_dask_collection(reports):  # lazy, partition by partition
        from radmine.distributed import text as rdask

        if sentences is not None:
            raise TypeError("label_reports: sentences= is not supported with a Dask collection; leave it out.")
        return rdask.label_reports(reports, vocabulary, sections=sections, negation=negation,
                                   uncertain_blocks_normal=uncertain_blocks_normal, return_mentions=return_mentions)
    lab = WeakLabeler(vocabulary, sections=sections, negation=negation, uncertain_blocks_normal=uncertain_blocks_normal)
    out = lab.fit(reports).transform(reports, sentences=sentences)
    if return_mentions:
        return out, lab.mentions_
    return out


def label_partition(reports: pd.DataFrame, labeler: WeakLabeler) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Labels and mentions of one block of reports with a fitted labeller (left unchanged).

    The function that :func:`radmine.distributed.text.label_reports` maps over
    the partitions of a Dask DataFrame; an empty block gives empty tables with
    the right columns and dtypes.

    Parameters
    ----------
    reports : DataFrame
        ``report_id, text``.
    labeler : WeakLabeler
        Fitted; a shallow copy labels the block, so ``labeler.mentions_`` is untouched.

    Returns
    -------
    labels : DataFrame
        As :meth:`WeakLabeler.transform`.
    mentions : DataFrame
        As :attr:`WeakLabeler.mentions_`.
    """
    import copy

    lab = copy.copy(labeler)  # worker-local: mentions_ of this block only
    if not len(reports):
        # WeakLabeler.transform does not take an empty table: label one blank row and keep none
        dummy = reports.reindex([0])
        dummy["report_id"] = pd.Series(["_"], dtype=object).astype(reports["report_id"].dtype, errors="ignore") \
            if reports["report_id"].dtype == object or pd.api.types.is_string_dtype(reports["report_id"]) else 0
        dummy["text"] = ""
        out = lab.transform(dummy[["report_id", "text"]]).iloc[:0]
        return out, lab.mentions_.iloc[:0]
    out = lab.transform(reports)
    return out, lab.mentions_
