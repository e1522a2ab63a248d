"""Plots for topic models: the K-selection curve and top-word bar charts.

Every function returns a :class:`matplotlib.figure.Figure` (no pyplot global state).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

_LABELS = {
    "perplexity": "held-out perplexity (lower is better)",
    "c_v": "c_v coherence",
    "c_npmi": "c_npmi coherence",
    "u_mass": "u_mass coherence",
    "fit_seconds": "fit time (s)",
}


def selection_curve(df: pd.DataFrame, measures: Sequence[str] | None = None):
    """One panel per measure against the number of topics.

    Parameters
    ----------
    df : DataFrame
        Output of :func:`radmine.select_n_topics` (``n_topics`` plus measure columns).
    measures : sequence of str, optional
        Columns to plot (default: every measure column with values).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    if not isinstance(df, pd.DataFrame) or "n_topics" not in df.columns:
        raise ValueError("selection_curve: df must be the DataFrame from select_n_topics (with an 'n_topics' column).")
    if measures is None:
        measures = [m for m in ("perplexity", "c_v", "c_npmi", "u_mass", "fit_seconds") if m in df.columns and df[m].notna().any()]
    missing = [m for m in measures if m not in df.columns]
    if missing:
        raise ValueError(f"selection_curve: columns {missing} are not in df (it has {list(df.columns)}).")
    if not measures:
        raise ValueError("selection_curve: df has no measure column with values.")
    fig = Figure(figsize=(3.2 * len(measures), 3.0), layout="constrained")
    axes = fig.subplots(1, len(measures), squeeze=False)[0]
    d = df.sort_values("n_topics")
    for ax, m in zip(axes, measures):
        ax.plot(d["n_topics"], d[m], marker="o")
        ax.set_xlabel("number of topics")
        ax.set_title(_LABELS.get(m, m), fontsize=9)
        ax.grid(alpha=0.3)
    return fig


def barchart(model: Any, topics: Sequence[Any] | None = None, n_words: int = 8, *, ncols: int = 4, level: int | None = None):
    """Horizontal bars of each topic's top words and their p(word | topic).

    Parameters
    ----------
    model : TopicModel or HierarchicalTopicModel (fitted)
    topics : sequence of topic ids, optional
        Default: every level-1 topic (or every sub-topic with ``level=2``), at most 40.
    n_words : int, default 8
    ncols : int, default 4
    level : {1, 2}, optional
        For a hierarchical model, which level to draw when ``topics`` is None.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    if topics is None:
        info = model.get_topic_info(level=level or 1) if level is not None or hasattr(model, "level1_") else model.get_topic_info()
        topics = info["topic"].tolist()[:40]
    topics = list(topics)
    if not topics:
        raise ValueError("barchart: no topics to draw.")
    tables = [(t, model.get_topic(t, n_words)) for t in topics]
    ncols = max(1, min(ncols, len(tables)))
    nrows = int(np.ceil(len(tables) / ncols))
    fig = Figure(figsize=(3.0 * ncols, 0.25 * n_words * nrows + 0.6 * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, (t, tab) in zip(axes, tables):
        ax.barh(range(len(tab)), tab["weight"].to_numpy(), color="#4c78a8")
        ax.set_yticks(range(len(tab)))
        ax.set_yticklabels(tab["word"].tolist(), fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"Topic {t}", fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    for ax in axes[len(tables):]:
        ax.set_visible(False)
    return fig
