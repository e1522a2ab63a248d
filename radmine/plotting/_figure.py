"""The Figure every radmine plot returns: a matplotlib Figure that shows itself in Jupyter.

A bare :class:`matplotlib.figure.Figure` made without pyplot prints as
``<Figure size 1200x780 with 12 Axes>`` in a fresh kernel, because the inline
backend only registers its display hook once pyplot is imported. This subclass
adds ``_repr_png_`` (and ``_repr_svg_`` on request), so a figure returned by a
cell renders as an image with no ``%matplotlib`` magic and no pyplot state.
"""

from __future__ import annotations

import io

from matplotlib.figure import Figure as _MplFigure


class Figure(_MplFigure):
    """A :class:`matplotlib.figure.Figure` that renders inline in Jupyter.

    Use it like any matplotlib Figure (``fig.savefig("plot.svg")``,
    ``fig.axes``); the only additions are the rich-display hooks IPython reads.

    Attributes
    ----------
    repr_format : {"png", "svg"}
        What Jupyter is given: PNG (default, small and always rendered) or SVG
        (vector; set ``fig.repr_format = "svg"``).
    repr_dpi : int
        Resolution of the PNG shown in Jupyter (default 100).
    """

    repr_format = "png"
    repr_dpi = 100

    def _render(self, fmt: str) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format=fmt, dpi=self.repr_dpi, bbox_inches="tight")
        return buf.getvalue()

    def _repr_png_(self) -> bytes | None:
        return self._render("png") if self.repr_format == "png" else None

    def _repr_svg_(self) -> str | None:
        return self._render("svg").decode("utf-8") if self.repr_format == "svg" else None

    def to_png(self) -> bytes:
        """The figure as PNG bytes (e.g. for an HTML report or a Label Studio task)."""
        return self._render("png")


def new_figure(**kwargs) -> Figure:
    """A :class:`Figure` with constrained layout unless ``layout`` is given."""
    if "constrained_layout" not in kwargs:
        kwargs.setdefault("layout", "constrained")
    return Figure(**kwargs)
