"""Scoring weak labels: per-label precision/recall/F1, and a MeSH reference builder."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from radmine._validation import check_option
from radmine.labels.vocabulary import load_vocabulary

__all__ = ["evaluate_labels", "mesh_reference", "parse_mesh_term", "METRIC_COLUMNS"]

#: columns of the :func:`evaluate_labels` table
METRIC_COLUMNS = ["precision", "recall", "f1", "support", "tp", "fp", "fn"]


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def evaluate_labels(
    pred: pd.DataFrame,
    reference: pd.DataFrame,
    *,
    positive: Any = 1,
    labels: Sequence[str] | None = None,
    min_support: int = 0,
    uncertain: str = "negative",
) -> pd.DataFrame:
    """Per-label precision, recall and F1 of ``pred`` against ``reference``.

    Rows are matched on the index (reports in both tables); a label counts
    a report only where the reference value is not NaN. A prediction is
    positive where it equals ``positive``; NaN (not mentioned) and ``0``
    (negated) are negative; ``-1`` (uncertain) follows ``uncertain``.

    Parameters
    ----------
    pred : DataFrame, shape (n_reports, n_labels)
        Predicted labels (e.g. from :func:`radmine.label_reports`).
    reference : DataFrame, shape (n_reports, n_labels)
        Reference labels (e.g. from :func:`mesh_reference`).
    positive : scalar, default 1
        The value meaning "finding present" in both tables.
    labels : sequence of str, optional
        Labels to score; default the columns both tables share (in
        ``reference`` order).
    min_support : int, default 0
        Drop labels with fewer positive reference reports than this (from
        the table and from the averages).
    uncertain : {"negative", "positive", "ignore"}, default "negative"
        How a ``-1`` prediction is scored: as absent, as present, or left
        out (that report is not counted for that label).

    Returns
    -------
    DataFrame
        Index: the labels, then ``"micro avg"`` and ``"macro avg"``; columns
        ``precision, recall, f1, support, tp, fp, fn``. Micro averages pool
        the counts over labels; macro averages are the unweighted means of
        the per-label scores (their ``support, tp, fp, fn`` are sums). A
        ratio with a zero denominator is 0.0 (scikit-learn's
        ``zero_division=0``).

    Raises
    ------
    TypeError
        If ``pred`` or ``reference`` is not a DataFrame.
    ValueError
        For an unknown ``uncertain`` option, no shared rows, or no labels.
    KeyError
        If a requested label is missing from either table.

    Examples
    --------
    >>> import pandas as pd
    >>> ref = pd.DataFrame({"a": [1, 1, 0, 0]})
    >>> pred = pd.DataFrame({"a": [1, 0, 1, 0]})
    >>> float(evaluate_labels(pred, ref).loc["a", "f1"])
    0.5
    """
    for name, df in (("pred", pred), ("reference", reference)):
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"evaluate_labels: {name} must be a pandas DataFrame, got {type(df).__name__}.")
    check_option(uncertain, "uncertain", "evaluate_labels", ("negative", "positive", "ignore"))
    if isinstance(min_support, bool) or not isinstance(min_support, (int, np.integer)) or min_support < 0:
        raise ValueError(f"evaluate_labels: min_support must be an int >= 0, got {min_support!r}.")
    if labels is None:
        labels = [c for c in reference.columns if c in set(pred.columns)]
        if not labels:
            raise ValueError(
                f"evaluate_labels: pred and reference share no label column; pred has {list(pred.columns)[:10]}, "
                f"reference has {list(reference.columns)[:10]}."
            )
    else:
        labels = list(labels)
        for lab in labels:
            for name, df in (("pred", pred), ("reference", reference)):
                if lab not in df.columns:
                    raise KeyError(f"evaluate_labels: label {lab!r} is not a column of {name}.")
    common = reference.index.intersection(pred.index)
    if len(common) == 0:
        raise ValueError("evaluate_labels: pred and reference share no index values (report ids).")
    ref = reference.loc[common, labels]
    prd = pred.loc[common, labels]
    rows = {}
    for lab in labels:
        r = ref[lab].to_numpy(dtype=object)
        p = prd[lab].to_numpy(dtype=object)
        r_known = ~pd.isna(r)
        p_pos = np.array([v == positive for v in p], dtype=bool)
        p_unc = np.array([(not pd.isna(v)) and v == -1 and v != positive for v in p], dtype=bool)
        use = r_known.copy()
        if uncertain == "positive":
            p_pos |= p_unc
        elif uncertain == "ignore":
            use &= ~p_unc
        r_pos = np.array([v == positive for v in r], dtype=bool) & use
        p_pos &= use
        tp = int((r_pos & p_pos).sum())
        fp = int((~r_pos & p_pos).sum())
        fn = int((r_pos & ~p_pos).sum())
        support = int(r_pos.sum())
        if support < min_support:
            continue
        prec, rec, f1 = _prf(tp, fp, fn)
        rows[lab] = [prec, rec, f1, support, tp, fp, fn]
    out = pd.DataFrame.from_dict(rows, orient="index", columns=METRIC_COLUMNS)
    if len(out):
        tp, fp, fn = int(out.tp.sum()), int(out.fp.sum()), int(out.fn.sum())
        micro = [*_prf(tp, fp, fn), int(out.support.sum()), tp, fp, fn]
        macro = [out.precision.mean(), out.recall.mean(), out.f1.mean(), int(out.support.sum()), tp, fp, fn]
    else:
        micro = macro = [0.0, 0.0, 0.0, 0, 0, 0, 0]
    out.loc["micro avg"] = micro
    out.loc["macro avg"] = macro
    for c in ("support", "tp", "fp", "fn"):
        out[c] = out[c].astype(int)
    out.index.name = "label"
    return out


def parse_mesh_term(term: str) -> tuple[str, tuple[str, ...]]:
    """Split a raw MeSH string ``"Opacity/lung/base/left/mild"`` into head and qualifiers.

    Returns
    -------
    head : str
        Lower-cased, stripped (``"opacity"``).
    qualifiers : tuple of str
        Lower-cased, stripped (``("lung", "base", "left", "mild")``).
    """
    parts = [p.strip().lower() for p in str(term).split("/")]
    return parts[0], tuple(p for p in parts[1:] if p)


def _spec_matches(spec: tuple[str, tuple[str, ...]], head: str, quals: tuple[str, ...]) -> bool:
    return spec[0] == head and all(q in quals for q in spec[1])


def _terms_by_report(obj: Any, field: str) -> pd.Series:
    """Series report_id -> list of raw MeSH strings (or None when not annotated)."""
    from radmine.corpus import Corpus

    if isinstance(obj, Corpus):
        if field in obj.reports.columns:
            obj = obj.reports
        else:
            ann = obj.annotations
            if "kind" not in ann.columns or not (ann["kind"] == field).any():
                raise ValueError(
                    f"mesh_reference: the corpus has no reports column {field!r} and no annotations of kind {field!r}."
                )
            ann = ann[ann["kind"] == field]
            col = "value" if "value" in ann.columns else "term"
            grouped = ann.groupby("report_id", sort=False)[col].agg(list)
            return grouped.reindex(obj.reports["report_id"].to_numpy())
    if isinstance(obj, pd.DataFrame):
        if field not in obj.columns:
            raise ValueError(f"mesh_reference: reports have no column {field!r}; columns are {list(obj.columns)}.")
        s = obj[field]
        if "report_id" in obj.columns:
            s = pd.Series(s.to_numpy(), index=pd.Index(obj["report_id"].to_numpy(), name="report_id"))
        return s
    if isinstance(obj, pd.Series):
        return obj
    raise TypeError(
        f"mesh_reference: expected a Corpus, a reports DataFrame or a Series of term lists; got {type(obj).__name__}."
    )


def mesh_reference(
    corpus_or_reports: Any,
    vocabulary: Any = "chest_xray",
    field: str = "mesh_major",
    *,
    ignore: Iterable[str] = ("No Indexing",),
) -> pd.DataFrame:
    """Reference labels from MeSH-style annotations (Open-i ``<MeSH><major>``).

    Each vocabulary finding lists MeSH specs in its ``mesh`` field: a head
    (``"Cardiomegaly"``) matches every term with that head; a
    ``head/qualifier`` spec (``"Lung/hypoinflation"``) also needs that
    qualifier among the term's qualifiers (any order). The ``kind: normal``
    finding maps to the ``normal`` term, which Open-i uses only for reports
    with no other finding.

    Parameters
    ----------
    corpus_or_reports : Corpus, DataFrame or Series
        A Corpus (its reports column ``field``, else its ``annotations``
        rows of ``kind == field``), a reports table with column ``field``
        holding lists of raw strings like ``"Opacity/lung/base/left/mild"``,
        or such a Series indexed by report id.
    vocabulary : str, path, dict or Vocabulary, default "chest_xray"
    field : str, default "mesh_major"
    ignore : iterable of str, default ("No Indexing",)
        Terms meaning "not annotated": a report with only such terms (or
        none) gets a NaN row.

    Returns
    -------
    DataFrame, shape (n_reports, n_mapped_findings)
        Indexed by ``report_id``; one column per finding with a ``mesh``
        mapping (vocabulary order); 1.0 where a term maps to it, 0.0
        otherwise, NaN for reports without annotations.
    """
    vocab = load_vocabulary(vocabulary)
    mapped = [f for f in vocab.findings if f.mesh]
    if not mapped:
        raise ValueError(f"mesh_reference: vocabulary {vocab.name!r} has no finding with a 'mesh' mapping.")
    specs = [[parse_mesh_term(s) for s in f.mesh] for f in mapped]
    ignore_heads = {parse_mesh_term(t)[0] for t in ignore}
    terms = _terms_by_report(corpus_or_reports, field)
    values = np.zeros((len(terms), len(mapped)))
    for i, lst in enumerate(terms.tolist()):
        if lst is None or (not isinstance(lst, (list, tuple, np.ndarray)) and pd.isna(lst)):
            values[i] = np.nan
            continue
        if isinstance(lst, str):
            lst = [t for t in lst.split(";") if t.strip()]
        parsed = [parse_mesh_term(t) for t in lst]
        parsed = [p for p in parsed if p[0] and p[0] not in ignore_heads]
        if not parsed:
            values[i] = np.nan
            continue
        for j, fs in enumerate(specs):
            if any(_spec_matches(sp, h, q) for sp in fs for h, q in parsed):
                values[i, j] = 1.0
    index = terms.index if terms.index.name else terms.index.rename("report_id")
    out = pd.DataFrame(values, index=index, columns=[f.name for f in mapped])
    out.columns.name = "finding"
    return out
