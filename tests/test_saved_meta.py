"""One reader behind every ``load``: format checks and a warning for another radmine version."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import radmine
from radmine._io import read_saved_meta
from radmine.corpus import Corpus


def _tiny_corpus() -> Corpus:
    reports = pd.DataFrame({"report_id": ["r0", "r1"], "patient_id": ["p0", "p1"], "study_id": ["s0", "s1"],
                            "modality": "CR", "text": ["FINDINGS: Clear lungs.", "FINDINGS: Small effusion."]})
    return Corpus(reports, pd.DataFrame({"image_id": ["i0"], "report_id": ["r0"]}), name="tiny")


def test_read_saved_meta_names_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"is not a saved thing: meta\.json not found"):
        read_saved_meta(tmp_path, "meta.json", "fmt", "thing")
    (tmp_path / "meta.json").write_text("{")
    with pytest.raises(ValueError, match=r"meta\.json: not valid JSON"):
        read_saved_meta(tmp_path, "meta.json", "fmt", "thing")
    (tmp_path / "meta.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match=r"expected format 'fmt', found 'other'"):
        read_saved_meta(tmp_path, "meta.json", "fmt", "thing")
    (tmp_path / "meta.json").write_text(json.dumps({"format": "fmt", "radmine_version": radmine.__version__, "x": 1}))
    assert read_saved_meta(tmp_path, "meta.json", "fmt", "thing")["x"] == 1


def test_a_corpus_saved_by_another_version_loads_with_a_warning(tmp_path):
    out = _tiny_corpus().save(tmp_path / "c")
    manifest = json.loads((out / "corpus.json").read_text())
    manifest["radmine_version"] = "0.0.1"
    (out / "corpus.json").write_text(json.dumps(manifest))
    with pytest.warns(UserWarning, match=r"radmine corpus at .* was saved with radmine 0\.0\.1; this is radmine "):
        back = Corpus.load(out)
    assert list(back.reports["report_id"]) == ["r0", "r1"]


def test_an_index_saved_by_another_version_loads_with_a_warning(tmp_path):
    pytest.importorskip("faiss")
    index = radmine.ImageIndex().add(np.eye(3, dtype=np.float32), ids=["a", "b", "c"])
    folder = index.save(tmp_path / "ix")
    meta_file = next(p for p in folder.iterdir() if p.suffix == ".json")
    meta = json.loads(meta_file.read_text())
    meta["radmine_version"] = "0.0.1"
    meta_file.write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match=r"ImageIndex at .* was saved with radmine 0\.0\.1"):
        back = radmine.ImageIndex.load(folder)
    assert back.ids_ == ["a", "b", "c"]
