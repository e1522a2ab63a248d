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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_notebook_has_its_figures(path):
    """The notebooks are committed executed, so GitHub and nbviewer show the figures."""
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(path, as_version=4)
    missing = [c.source.splitlines()[0] for c in _figure_cells(nb) if not _has_image(c)]
    assert not missing, f"{path.name}: run `python examples/make_notebooks.py --execute`; no image in {missing}"
    assert not _text_figures(nb)
    assert "_paths" not in "".join(c.source for c in nb.cells), "examples use public names only"


def test_notebooks_are_generated_from_the_script():
    import nbformat

    from examples.make_notebooks import NOTEBOOKS as SPEC

    assert {p.name for p in NOTEBOOKS} == set(SPEC)
    for p in NOTEBOOKS:
        nb = nbformat.read(p, as_version=4)
        assert [c.source for c in nb.cells] == [c.source for c in SPEC[p.name]]
