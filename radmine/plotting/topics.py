"""Plots for topic models: the K-selection curve, top-word bars and topics over time.

Every function returns a :class:`radmine.plotting.Figure` (a matplotlib Figure
that renders inline in Jupyter and saves with ``fig.savefig("x.png")`` / ``.svg``);
no pyplot global state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from radmine.plotting._figure import new_figure

_LABELS = {
    "perplexity": "held-out perplexity (lower is better)",
    "c_v": "c_v coherence",
    "c_npmi": "c_npmi coherence",
    "u_mass": "u_mass coherence",
    "fit_seconds": "fit time (s)",
}
#: Report columns read as the report date, in this order.
DATE_COLUMNS = ("date", "study_date")


def selection_curve(df: pd.DataFrame, measures: Sequence[str] | None = None, *, chosen: int | None = None):
    """K-selection curve: one panel per measure against the number of topics.

    Parameters
    ----------
    df : DataFrame
        Output of :func:`radmine.select_n_topics` (``n_topics`` plus measure columns).
    measures : sequence of str, optional
        Columns to plot (default: every measure column with values).
    chosen : int, optional
        A number of topics to mark with a vertical line (e.g. the one selected).

    Returns
    -------
    radmine.plotting.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"n_topics": [5, 10, 20], "c_npmi": [0.02, 0.05, 0.04]})
    >>> fig = selection_curve(df, chosen=10)
    >>> len(fig.axes)
    1
    """
    if not isinstance(df, pd.DataFrame) or "n_topics" not in df.columns:
        raise ValueError("selection_curve: df must be the DataFrame from select_n_topics (with an 'n_topics' column).")
    if measures is None:
        measures = [m for m in ("perplexity", "c_v", "c_npmi", "u_mass", "fit_seconds") if m in df.columns and df[m].notna().any()]
    missing = [m for m in measures if m not in df.columns]
    if missing:
        raise ValueError(f"selection_curve: columns {missing} are not in df (it has {list(df.columns)}).")
    if not measures:
        raise ValueError("selection_curve: df has no measure column with values.")
    fig = new_figure(figsize=(3.2 * len(measures), 3.0))
    axes = fig.subplots(1, len(measures), squeeze=False)[0]
    d = df.sort_values("n_topics")
    for ax, m in zip(axes, measures):
        ax.plot(d["n_topics"], d[m], marker="o")
        if chosen is not None:
            ax.axvline(chosen, color="#e45756", linestyle="--", linewidth=1, label=f"K = {chosen}")
            ax.legend(fontsize=7)
        ax.set_xlabel("number of topics")
        ax.set_title(_LABELS.get(m, m), fontsize=9)
        ax.grid(alpha=0.3)
    return fig


def topic_info_of(model: Any, level: int | None) -> pd.DataFrame:
    """``get_topic_info()`` of a TopicModel, or of a HierarchicalTopicModel at ``level`` (default 1)."""
    if hasattr(model, "level1_"):
        return model.get_topic_info(level=level or 1)
    if level not in (None, 1):
        raise ValueError(f"barchart: level={level!r} needs a HierarchicalTopicModel; {type(model).__name__} has one level.")
    return model.get_topic_info()


def barchart(model: Any, topics: Sequence[Any] | None = None, n_words: int = 8, *, ncols: int = 4, level: int | None = None,
             max_topics: int = 40):
    """Horizontal bars of each topic's top words and their p(word | topic), titled with the topic's name and size.

    Parameters
    ----------
    model : TopicModel or HierarchicalTopicModel (fitted)
    topics : sequence of topic ids, optional
        Default: every level-1 topic (or every sub-topic with ``level=2``), at most ``max_topics``.
    n_words : int, default 8
    ncols : int, default 4
    level : {1, 2}, optional
        For a hierarchical model, which level to draw when ``topics`` is None.
    max_topics : int, default 40

    Returns
    -------
    radmine.plotting.Figure

    Raises
    ------
    KeyError
        A topic id the model does not have.
    """
    from radmine._validation import check_int

    n_words = check_int(n_words, "n_words", "barchart", min_value=1)
    info = topic_info_of(model, level)
    if topics is None:
        topics = info["topic"].tolist()[:max_topics]
    topics = list(topics)
    if not topics:
        raise ValueError("barchart: no topics to draw.")
    names = dict(zip(info["topic"], info["name"]))
    sizes = dict(zip(info["topic"], info["size"]))
    tables = [(t, model.get_topic(t, n_words)) for t in topics]  # KeyError for unknown ids
    ncols = max(1, min(ncols, len(tables)))
    nrows = int(np.ceil(len(tables) / ncols))
    fig = new_figure(figsize=(3.2 * ncols, 0.25 * n_words * nrows + 0.7 * nrows))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, (t, tab) in zip(axes, tables):
        ax.barh(range(len(tab)), tab["weight"].to_numpy(), color="#4c78a8")
        ax.set_yticks(range(len(tab)))
        ax.set_yticklabels(tab["word"].tolist(), fontsize=8)
        ax.invert_yaxis()
        name = names.get(t, f"Topic {t}")
        size = sizes.get(t)
        ax.set_title(name if size is None else f"{name}\n({int(size)} documents)", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    for ax in axes[len(tables):]:
        ax.set_visible(False)
    return fig


def report_dates(source: Any) -> pd.Series:
    """Report dates as a datetime Series indexed by ``report_id``.

    Parameters
    ----------
    source : Corpus, DataFrame or Series
        A Corpus (its ``reports`` table), a reports DataFrame with ``report_id``
        and a ``date`` / ``study_date`` column, or a Series of dates indexed by
        ``report_id``.

    Raises
    ------
    ValueError
        No date column, or no value parses as a date.
    """
    if isinstance(source, pd.Series):
        dates = source
    else:
        reports = getattr(source, "reports", source)
        if not isinstance(reports, pd.DataFrame) or "report_id" not in reports.columns:
            raise TypeError(f"report_dates: expected a Corpus, a reports DataFrame or a Series; got {type(source).__name__}.")
        col = next((c for c in DATE_COLUMNS if c in reports.columns), None)
        if col is None:
            raise ValueError(f"report_dates: the reports have no date column (looked for {list(DATE_COLUMNS)}; "
                             f"found {list(reports.columns)}).")
        dates = pd.Series(reports[col].to_numpy(), index=reports["report_id"].to_numpy())
    parsed = pd.to_datetime(dates, errors="coerce", format="mixed")
    if parsed.notna().sum() == 0:
        raise ValueError("report_dates: no value parses as a date.")
    return parsed


def share_over_time(assignments: pd.Series, dates: pd.Series, *, freq: str = "YS", top: int = 8) -> pd.DataFrame:
    """Share of documents per group (topic or cluster) in each period.

    Parameters
    ----------
    assignments : Series
        Group of each document, indexed by ``report_id`` (repeats allowed).
    dates : Series
        Datetimes indexed by ``report_id`` (:func:`report_dates`).
    freq : str, default "YS"
        pandas period start alias: ``"YS"`` years, ``"QS"`` quarters, ``"MS"`` months.
    top : int, default 8
        The ``top`` most frequent groups are kept; the rest become ``"other"``.

    Returns
    -------
    DataFrame
        Index: period start; columns: groups; values: share of that period's documents.
    """
    d = pd.DataFrame({"group": assignments.to_numpy(), "date": dates.reindex(assignments.index).to_numpy()}).dropna()
    if d.empty:
        raise ValueError("share_over_time: no document has both a group and a date (check that the ids match).")
    keep = d["group"].value_counts().index[:top]
    d["group"] = d["group"].where(d["group"].isin(keep), "other")
    d["period"] = d["date"].dt.to_period(freq.rstrip("S") or "Y").dt.start_time
    table = pd.crosstab(d["period"], d["group"], normalize="index")
    return table


def over_time_figure(table: pd.DataFrame, title: str, names: dict | None = None):
    """Stacked shares over time (rows: periods, columns: topics or clusters) as a Figure."""
    fig = new_figure(figsize=(8, 3.4))
    ax = fig.subplots()
    x = table.index
    labels = [str((names or {}).get(c, c)) for c in table.columns]
    ax.stackplot(x, table.to_numpy().T, labels=labels, alpha=0.85)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of documents")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig


def over_time(model: Any, dates: Any, *, freq: str = "YS", top: int = 8):
    """Share of each topic among the documents of each period (stacked areas).

    Parameters
    ----------
    model : TopicModel or HierarchicalTopicModel (fitted)
    dates : Corpus, DataFrame or Series
        Where the report dates are (see :func:`report_dates`).
    freq : str, default "YS"
        Period: ``"YS"`` years, ``"QS"`` quarters, ``"MS"`` months.
    top : int, default 8
        Topics shown; the others are summed as ``"other"``.

    Returns
    -------
    radmine.plotting.Figure
    """
    info = model.get_document_info()
    info = info[info["dominant_topic"] >= 0] if info["dominant_topic"].dtype.kind in "iu" else info
    assign = pd.Series(info["dominant_topic"].to_numpy(), index=info["report_id"].to_numpy())
    table = share_over_time(assign, report_dates(dates), freq=freq, top=top)
    names = dict(zip(*topic_info_of(model, None)[["topic", "name"]].T.to_numpy()))
    return over_time_figure(table, "topics over time", names)
