"""Plots for weak labels: prevalence of each finding with its uncertainty, and label quality.

Every function returns a :class:`radmine.plotting.Figure` (renders inline in
Jupyter, saves to PNG/SVG).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from radmine.plotting._figure import new_figure


def wilson_interval(k, n, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a binomial proportion ``k / n`` (arrays allowed).

    Returns
    -------
    low, high : arrays of float
        NaN where ``n == 0``.

    Examples
    --------
    >>> low, high = wilson_interval(5, 10)
    >>> round(float(low), 3), round(float(high), 3)
    (0.237, 0.763)
    """
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return centre - half, centre + half


def prevalence_table(labels: pd.DataFrame, *, z: float = 1.96) -> pd.DataFrame:
    """Per finding: counts of 1 / -1 / 0 / blank and the positive rate with a Wilson interval.

    Parameters
    ----------
    labels : DataFrame (n_reports, n_findings)
        Values 1 / 0 / -1 / NaN, as :func:`radmine.label_reports` returns them.
    z : float, default 1.96
        Normal quantile of the interval (1.96: 95 %).

    Returns
    -------
    DataFrame
        One row per finding, most prevalent first: ``finding, n_reports,
        positive, uncertain, negative, blank, prevalence, low, high,
        prevalence_with_uncertain`` (positive or uncertain over all reports).
    """
    if not isinstance(labels, pd.DataFrame):
        raise TypeError(f"prevalence_table: labels must be a DataFrame of 1/0/-1/NaN; got {type(labels).__name__}.")
    values = labels.apply(pd.to_numeric, errors="coerce")
    bad = ~(values.isin([1, 0, -1]) | values.isna())
    if bad.to_numpy().any():
        col = values.columns[bad.any().to_numpy()][0]
        raise ValueError(f"prevalence_table: column {col!r} holds values other than 1, 0, -1 and blank.")
    n = len(values)
    pos = (values == 1).sum()
    unc = (values == -1).sum()
    neg = (values == 0).sum()
    low, high = wilson_interval(pos.to_numpy(), n, z)
    out = pd.DataFrame({
        "finding": values.columns.astype(str), "n_reports": n, "positive": pos.to_numpy(), "uncertain": unc.to_numpy(),
        "negative": neg.to_numpy(), "blank": (n - pos - unc - neg).to_numpy(),
        "prevalence": pos.to_numpy() / max(n, 1), "low": low, "high": high,
        "prevalence_with_uncertain": (pos + unc).to_numpy() / max(n, 1),
    })
    return out.sort_values(["prevalence", "finding"], ascending=[False, True], kind="stable").reset_index(drop=True)


def prevalence(labels: pd.DataFrame, *, top: int = 30, z: float = 1.96):
    """Horizontal bars of each finding's positive rate with its 95 % Wilson interval;
    a lighter bar extends to the rate when uncertain mentions (-1) count as positive.

    Parameters
    ----------
    labels : DataFrame (n_reports, n_findings)
        Values 1 / 0 / -1 / NaN.
    top : int, default 30
        Most prevalent findings shown (counting uncertain ones too).

    Returns
    -------
    radmine.plotting.Figure
    """
    table = prevalence_table(labels, z=z)
    table = table.sort_values("prevalence_with_uncertain", ascending=False, kind="stable").head(top)
    table = table[::-1]
    fig = new_figure(figsize=(7, 0.26 * len(table) + 1.0))
    ax = fig.subplots()
    y = np.arange(len(table))
    ax.barh(y, table["prevalence_with_uncertain"], color="#f2cf5b", label="positive or uncertain (-1)")
    ax.barh(y, table["prevalence"], color="#4c78a8", label="positive (1)")
    err = np.vstack([table["prevalence"] - table["low"], table["high"] - table["prevalence"]])
    ax.errorbar(table["prevalence"], y, xerr=err, fmt="none", ecolor="black", elinewidth=0.8, capsize=2,
                label="95% interval")
    ax.set_yticks(y)
    ax.set_yticklabels(table["finding"], fontsize=7)
    ax.set_xlabel(f"share of {int(table['n_reports'].iloc[0]) if len(table) else 0} reports")
    ax.set_title("weak-label prevalence", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def scores(table: pd.DataFrame, *, metric: str = "f1"):
    """Per-finding bars of one metric from :func:`radmine.evaluate_labels`.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`radmine.evaluate_labels` (a ``finding`` column or index
        and the metric column).
    metric : str, default "f1"

    Returns
    -------
    radmine.plotting.Figure
    """
    t = table.reset_index() if "finding" not in table.columns else table
    if metric not in t.columns:
        raise ValueError(f"scores: metric {metric!r} is not a column of the table (it has {list(t.columns)}).")
    t = t.dropna(subset=[metric])
    fig = new_figure(figsize=(7, 0.26 * len(t) + 1.0))
    ax = fig.subplots()
    name = "finding" if "finding" in t.columns else t.columns[0]
    ax.barh(np.arange(len(t)), t[metric], color="#54a24b")
    ax.set_yticks(np.arange(len(t)))
    ax.set_yticklabels(t[name].astype(str), fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_title(f"{metric} per finding", fontsize=9)
    return fig
