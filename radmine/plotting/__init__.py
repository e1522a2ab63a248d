"""Plots for radmine pipelines: one module per pipeline, functions returning figures.

Every function returns a :class:`Figure`, a :class:`matplotlib.figure.Figure`
that renders itself inline in Jupyter (no ``%matplotlib`` magic, no pyplot
state) and saves with ``fig.savefig("plot.png")`` or ``.svg``. Estimators call
the same functions from their ``plot_*`` methods (``TopicModel.plot_topics``,
``JointClusterer.plot_clusters``, ...).

Modules
-------
topics      K-selection curve, top-word bars with topic names, topics over time
clusters    montages with names and sizes, cluster sizes, loop convergence, clusters over time
labels      finding prevalence with Wilson intervals, per-finding scores
img2text    Recall@K / rank curves, training curves
interactive plotly versions (``pip install "radmine[plotly]"``)

Examples
--------
>>> import radmine
>>> radmine.plotting.topics.barchart  # doctest: +ELLIPSIS
<function barchart at ...>
"""

from __future__ import annotations

import importlib

from radmine.plotting import clusters, img2text, labels, topics

__all__ = ["Figure", "clusters", "img2text", "interactive", "labels", "topics"]


def __getattr__(name: str):
    if name == "Figure":
        from radmine.plotting._figure import Figure

        return Figure
    if name == "interactive":
        return importlib.import_module("radmine.plotting.interactive")
    raise AttributeError(f"module 'radmine.plotting' has no attribute {name!r}")
