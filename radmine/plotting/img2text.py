"""Plots for image <-> text retrieval: Recall@K curves, rank distributions and training curves.

Every function returns a :class:`radmine.plotting.Figure` (renders inline in
Jupyter, saves to PNG/SVG).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from radmine.plotting._figure import new_figure

_DIRECTIONS = ("image_to_text", "text_to_image")


def recall_table(image_emb, text_emb, text_to_image=None, *, max_k: int | None = None) -> pd.DataFrame:
    """Recall@K for every K in ``1..max_k``, both directions (:func:`radmine.recall_at_k`).

    Parameters
    ----------
    image_emb : array (n_images, dim)
    text_emb : array (n_texts, dim)
    text_to_image : array of int (n_texts,), optional
        Image row of each text (default: the diagonal).
    max_k : int, optional
        Default: ``min(n_images, 100)``.

    Returns
    -------
    DataFrame
        ``k, image_to_text, text_to_image`` (recall at each k).
    """
    from radmine._validation import check_int
    from radmine.img2text.metrics import recall_at_k

    n = len(image_emb)
    max_k = min(n, 100) if max_k is None else check_int(max_k, "max_k", "recall_table", min_value=1)
    ks = list(range(1, max(1, max_k) + 1))
    res = recall_at_k(image_emb, text_emb, ks, text_to_image=text_to_image)
    return pd.DataFrame({"k": ks, **{d: [res[f"{d}_R@{k}"] for k in ks] for d in _DIRECTIONS}})


def recall_curve(curves, *, title: str | None = None, log_k: bool = True):
    """Recall@K against K (the rank curve: share of queries whose match ranks within K), one panel per direction.

    Parameters
    ----------
    curves : DataFrame or dict of str -> DataFrame
        :func:`recall_table` output, or several of them by name (one line each,
        e.g. ``{"model": ..., "chance": ...}``).
    title : str, optional
    log_k : bool, default True
        Log-scaled K axis.

    Returns
    -------
    radmine.plotting.Figure

    Examples
    --------
    >>> import numpy as np
    >>> e = np.eye(4, dtype="float32")
    >>> fig = recall_curve(recall_table(e, e))
    >>> [ax.get_title() for ax in fig.axes]
    ['image -> text', 'text -> image']
    """
    if isinstance(curves, pd.DataFrame):
        curves = {"": curves}
    if not isinstance(curves, Mapping) or not curves:
        raise TypeError("recall_curve: curves must be a recall_table DataFrame or a non-empty dict of them.")
    fig = new_figure(figsize=(8, 3.2))
    axes = fig.subplots(1, 2)
    for ax, d in zip(axes, _DIRECTIONS):
        for name, t in curves.items():
            missing = {"k", d} - set(t.columns)
            if missing:
                raise ValueError(f"recall_curve: table {name!r} lacks columns {sorted(missing)} (use recall_table).")
            ax.plot(t["k"], t[d], "-", label=name or None)
            for k in (1, 5, 10):
                if k in set(t["k"]):
                    v = float(t.loc[t["k"] == k, d].iloc[0])
                    ax.plot([k], [v], "o", color=ax.lines[-1].get_color(), markersize=3)
                    ax.annotate(f"R@{k} {v:.2f}", (k, v), textcoords="offset points", xytext=(3, -9), fontsize=6)
        if log_k:
            ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("K")
        ax.set_ylabel("Recall@K")
        ax.set_title(d.replace("_to_", " -> "), fontsize=9)
        ax.grid(alpha=0.3)
        if any(curves):
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def model_recall_table(model, corpus, split: str | None = "dev", *, max_k: int | None = None,
                       image_features: pd.DataFrame | None = None) -> pd.DataFrame:
    """:func:`recall_table` of a fitted :class:`~radmine.ImageTextModel` on a corpus split (as ``model.score`` pairs them)."""
    img, txt, text_to_image = model.retrieval_inputs(corpus, split, image_features=image_features)
    return recall_table(img, txt, text_to_image, max_k=max_k)


def training_history(model):
    """Training curves of an :class:`~radmine.ImageTextModel`: every numeric column of ``history_`` per epoch.

    Returns
    -------
    radmine.plotting.Figure
    """
    from radmine._validation import check_is_fitted

    check_is_fitted(model, "history_")
    h = model.history_
    cols = [c for c in h.columns if c not in ("epoch", "seconds") and pd.api.types.is_numeric_dtype(h[c]) and h[c].notna().any()]
    losses = [c for c in cols if "loss" in c]
    others = [c for c in cols if c not in losses]
    panels = [p for p in (losses, others) if p]
    if not panels:
        raise ValueError("training_history: history_ has no numeric column with values.")
    fig = new_figure(figsize=(4 * len(panels), 3))
    axes = np.atleast_1d(fig.subplots(1, len(panels), squeeze=False)[0])
    for ax, group in zip(axes, panels):
        for c in group:
            ax.plot(h["epoch"], h[c], marker=".", label=c)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    best = getattr(model, "best_epoch_", None)
    if best is not None:
        for ax in axes:
            ax.axvline(best, color="gray", linestyle=":", linewidth=1)
    return fig
