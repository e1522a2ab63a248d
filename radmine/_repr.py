"""Jupyter-friendly summaries: objects return a short HTML table with a text fallback."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any


def summary_html(title: str, rows: Mapping[str, Any]) -> str:
    """Render a two-column key/value summary as a small HTML table."""
    body = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(str(k))}</th>"
        f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>"
        for k, v in rows.items()
    )
    return f"<div><strong>{html.escape(title)}</strong><table>{body}</table></div>"


def summary_text(title: str, rows: Mapping[str, Any]) -> str:
    """Render the same summary as plain text."""
    width = max((len(str(k)) for k in rows), default=0)
    lines = [title] + [f"  {str(k).ljust(width)} : {v}" for k, v in rows.items()]
    return "\n".join(lines)


def estimator_summary(est: Any) -> dict[str, Any]:
    """Constructor parameters plus fitted state, for estimator reprs."""
    import inspect

    params = {}
    for name in inspect.signature(type(est).__init__).parameters:
        if name in ("self", "args", "kwargs"):
            continue
        if hasattr(est, name):
            params[name] = getattr(est, name)
    fitted = any(k.endswith("_") and not k.startswith("_") for k in vars(est))
    return {"fitted": fitted, **params}


class EstimatorReprMixin:
    """Adds ``__repr__`` and ``_repr_html_`` listing parameters and fitted state."""

    def _summary_rows(self) -> dict[str, Any]:
        return estimator_summary(self)

    def __repr__(self) -> str:
        rows = estimator_summary(self)
        args = ", ".join(f"{k}={v!r}" for k, v in rows.items() if k != "fitted")
        return f"{type(self).__name__}({args})"

    def _repr_html_(self) -> str:
        return summary_html(type(self).__name__, self._summary_rows())
