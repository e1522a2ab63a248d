"""Interactive (hover, zoom) versions of the main plots, with plotly (``pip install "radmine[plotly]"``).

Each function takes the same inputs as its matplotlib twin and returns a
:class:`plotly.graph_objects.Figure`, which Jupyter renders interactively and
``fig.write_html("plot.html")`` saves as a self-contained page.
"""

from __future__ import annotations

from typing import Any

import pandas as pd


def _go():
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise ImportError('radmine.plotting.interactive needs plotly: pip install "radmine[plotly]"') from None
    return go


def topic_barchart(model: Any, topics=None, n_words: int = 8, *, max_topics: int = 12):
    """Top words per topic (one bar group per topic, named), hover for p(word | topic).

    See :func:`radmine.plotting.topics.barchart`.
    """
    go = _go()
    from plotly.subplots import make_subplots

    from radmine.plotting.topics import topic_info_of

    info = topic_info_of(model, None)
    topics = list(info["topic"])[:max_topics] if topics is None else list(topics)
    names = dict(zip(info["topic"], info["name"]))
    ncols = min(3, len(topics))
    nrows = -(-len(topics) // ncols)
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=[str(names.get(t, t)) for t in topics])
    for i, t in enumerate(topics):
        tab = model.get_topic(t, n_words)
        fig.add_trace(go.Bar(x=tab["weight"], y=tab["word"], orientation="h", name=str(names.get(t, t)),
                             hovertemplate="%{y}: %{x:.4f}<extra></extra>"), row=i // ncols + 1, col=i % ncols + 1)
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(showlegend=False, height=220 * nrows, title="topics: top words")
    return fig


def prevalence(labels: pd.DataFrame, *, top: int = 30):
    """Finding prevalence with 95 % Wilson intervals; hover shows the counts. See :func:`radmine.plotting.labels.prevalence`."""
    go = _go()
    from radmine.plotting.labels import prevalence_table

    t = prevalence_table(labels).sort_values("prevalence_with_uncertain", ascending=False).head(top)
    fig = go.Figure()
    fig.add_trace(go.Bar(x=t["prevalence_with_uncertain"], y=t["finding"], orientation="h",
                         name="positive or uncertain", marker_color="#f2cf5b"))
    fig.add_trace(go.Bar(x=t["prevalence"], y=t["finding"], orientation="h", name="positive", marker_color="#4c78a8",
                         error_x={"type": "data", "symmetric": False, "array": t["high"] - t["prevalence"],
                                  "arrayminus": t["prevalence"] - t["low"]},
                         customdata=t[["positive", "uncertain", "negative", "blank"]].to_numpy(),
                         hovertemplate="%{y}: %{x:.3f}<br>1: %{customdata[0]}, -1: %{customdata[1]}, "
                                       "0: %{customdata[2]}, blank: %{customdata[3]}<extra></extra>"))
    fig.update_layout(barmode="overlay", yaxis={"autorange": "reversed"}, height=24 * len(t) + 120,
                      xaxis_title="share of reports", title="weak-label prevalence")
    return fig


def recall_curve(curves):
    """Recall@K against K for each direction (and each named table). See :func:`radmine.plotting.img2text.recall_curve`."""
    go = _go()
    from plotly.subplots import make_subplots

    if isinstance(curves, pd.DataFrame):
        curves = {"model": curves}
    fig = make_subplots(rows=1, cols=2, subplot_titles=["image -> text", "text -> image"])
    for col, d in enumerate(("image_to_text", "text_to_image"), start=1):
        for name, t in curves.items():
            fig.add_trace(go.Scatter(x=t["k"], y=t[d], mode="lines", name=f"{name} {d.replace('_to_', '->')}",
                                     hovertemplate="R@%{x}: %{y:.3f}<extra></extra>"), row=1, col=col)
    fig.update_xaxes(type="log", title="K")
    fig.update_yaxes(range=[0, 1.02], title="Recall@K")
    return fig
