"""`pip install .` ships every data file the package reads (package-data globs in pyproject.toml)."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_data_file_is_in_package_data():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = meta["tool"]["setuptools"]["package-data"]["radmine"]
    pkg = ROOT / "radmine"
    data = [p.relative_to(pkg).as_posix() for p in pkg.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    missing = [d for d in data if not any(fnmatch.fnmatch(d, g) for g in globs)]
    assert not missing, f"not installed by `pip install .`: {missing}; add them to [tool.setuptools.package-data]"
    unused = [g for g in globs if not any(fnmatch.fnmatch(d, g) for d in data)]
    assert not unused, f"package-data globs that match no file: {unused}"


def test_optional_extras_and_spacy_entry_points_are_declared():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert {"models", "hub", "datasets", "plotly", "test"} <= set(meta["optional-dependencies"])
    factories = meta["entry-points"]["spacy_factories"]
    assert factories == {"radmine_sections": "radmine.spacy_components:make_sections",
                         "radmine_labeler": "radmine.spacy_components:make_labeler"}
    torch = next(d for d in meta["dependencies"] if d.startswith("torch"))
    assert "<=2.14.1" in torch
