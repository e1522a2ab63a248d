"""Jupyter-friendly summaries: objects return a short HTML table with a text fallback.

Estimators get theirs from :class:`radmine.base.BaseEstimator`.
"""

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

