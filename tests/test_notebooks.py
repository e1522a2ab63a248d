"""The example notebooks execute top to bottom, offline (nbclient), with their figures as images."""

from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))


def _figure_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code" and "figure" in c.get("metadata", {}).get("tags", [])]


def _has_image(cell) -> bool:
    return any("image/png" in o.get("data", {}) for o in cell.get("outputs", []))


def _warnings(nb) -> list[str]:
    """stderr outputs that carry a warning (e.g. tqdm's "IProgress not found", with a path of the machine)."""
    return [t for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.get("output_type") == "stream" and o.get("name") == "stderr"
            for t in ["".join(o.get("text", ""))] if "Warning" in t]


def _text_figures(nb) -> list[str]:
    """Outputs that are a figure's text repr instead of the figure (what a bare matplotlib Figure shows)."""
    return [o["data"]["text/plain"] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if "image/png" not in o.get("data", {}) and str(o.get("data", {}).get("text/plain", "")).startswith("<Figure")]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_with_image_outputs(path, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        cell.pop("outputs", None)
        if cell.cell_type == "code":
            cell.outputs = []
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    figures = _figure_cells(nb)
    assert figures, f"{path.name} has no cell tagged 'figure'"
    missing = [c.source.splitlines()[0] for c in figures if not _has_image(c)]
    assert not missing, f"figure cells without an image/png output: {missing}"
    assert not _text_figures(nb)
    assert not _warnings(nb)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_notebook_has_its_figures(path):
    """The notebooks are committed executed, so GitHub and nbviewer show the figures."""
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(path, as_version=4)
    missing = [c.source.splitlines()[0] for c in _figure_cells(nb) if not _has_image(c)]
    assert not missing, f"{path.name}: run `python examples/make_notebooks.py --execute`; no image in {missing}"
    assert not _text_figures(nb)
    assert not _warnings(nb), f"{path.name}: a committed output shows a warning; re-execute the notebooks"
    assert "_paths" not in "".join(c.source for c in nb.cells), "examples use public names only"


def test_notebooks_are_generated_from_the_script():
    import nbformat

    from examples.make_notebooks import NOTEBOOKS as SPEC

    assert {p.name for p in NOTEBOOKS} == set(SPEC)
    for p in NOTEBOOKS:
        nb = nbformat.read(p, as_version=4)
        assert [c.source for c in nb.cells] == [c.source for c in SPEC[p.name]]


class _FakeShell:
    config = {"IPKernelApp": {}}


@pytest.mark.parametrize("kernel, widgets, expected", [(False, True, "std"), (True, False, "std"), (True, True, "notebook")])
def test_progress_bar_picks_the_widget_only_in_a_kernel_with_ipywidgets(monkeypatch, kernel, widgets, expected):
    """Without ipywidgets a Jupyter kernel gets tqdm's text bar, silently (tqdm.auto warns with a local path)."""
    import importlib.util
    import sys
    import types
    import warnings

    from radmine import _progress

    fake = types.ModuleType("IPython")
    fake.get_ipython = (lambda: _FakeShell()) if kernel else (lambda: None)
    monkeypatch.setitem(sys.modules, "IPython", fake)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: (real_find_spec("json") if widgets else None) if name == "ipywidgets"
                        else real_find_spec(name, *a))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cls = _progress.tqdm_class()
    assert cls.__module__ == f"tqdm.{expected}"
    if expected == "std":
        bar = _progress.tqdm(range(3), disable=True)
        assert list(bar) == [0, 1, 2]
