"""Progress bars for radmine's long loops.

``tqdm.auto`` picks the notebook widget in Jupyter, but where ipywidgets is not
installed it warns ("IProgress not found") on every import, with a path into
the user's environment. radmine's bars use the widget only when a Jupyter
kernel runs *and* ipywidgets is importable, and tqdm's text bar otherwise.
"""

from __future__ import annotations

import importlib.util
import sys


def tqdm_class() -> type:
    """The tqdm class to draw with: ``tqdm.notebook.tqdm`` in a Jupyter kernel with ipywidgets, else ``tqdm.std.tqdm``."""
    from tqdm.std import tqdm as text_bar

    ipython = sys.modules.get("IPython")  # never imported here: a script must not pay for IPython
    shell = getattr(ipython, "get_ipython", lambda: None)() if ipython is not None else None
    if shell is None or "IPKernelApp" not in getattr(shell, "config", {}):
        return text_bar
    if importlib.util.find_spec("ipywidgets") is None:
        return text_bar
    from tqdm.notebook import tqdm as widget_bar

    return widget_bar


def tqdm(*args, **kwargs):
    """A progress bar (same arguments as ``tqdm.tqdm``) of the class :func:`tqdm_class` picks."""
    return tqdm_class()(*args, **kwargs)
