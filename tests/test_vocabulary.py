"""Vocabularies are data: loading, validation errors naming file and entry, round trips."""

from __future__ import annotations

import json

import pytest

import radmine
from radmine.labels.vocabulary import Vocabulary, load_vocabulary

MINI = {
    "name": "mini",
    "description": "two findings",
    "version": 2,
    "findings": [
        {"name": "effusion", "label": "Pleural Effusion", "terms": ["pleural effusion"], "synonyms": ["effusion"],
         "abbreviations": ["PE"], "exclusions": ["pericardial effusion"], "mesh": ["Pleural Effusion"]},
        {"name": "widening", "patterns": ["mediastinum\\s+is\\s+widened"], "blocks_normal": False},
        {"name": "normal", "kind": "normal", "terms": ["normal chest"], "mesh": ["normal"]},
    ],
}


def test_builtins_load_and_are_listed():
    names = radmine.list_vocabularies()
    assert {"chest_xray", "ct_mr"} <= set(names)
    cxr = radmine.load_vocabulary("chest_xray")
    chexpert = ["no_finding", "enlarged_cardiomediastinum", "cardiomegaly", "lung_opacity", "lung_lesion", "edema",
                "consolidation", "pneumonia", "atelectasis", "pneumothorax", "pleural_effusion", "pleural_other",
                "fracture", "support_devices"]
    assert set(chexpert) <= set(cxr.names)
    assert cxr.normal.name == "no_finding"
    for mesh_finding in ["calcified_granuloma", "calcinosis", "airspace_disease", "nodule", "scoliosis", "emphysema",
                         "hiatal_hernia", "hyperinflation", "degenerative_spine", "scarring"]:
        assert cxr[mesh_finding].mesh, mesh_finding
    ct = load_vocabulary("ct_mr")
    assert {"mass", "hemorrhage", "infarct", "edema", "cyst", "fracture", "abscess", "lymphadenopathy",
            "metastasis", "hydrocephalus"} <= set(ct.names)


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_round_trip_files(tmp_path, suffix):
    vocab = load_vocabulary(MINI)
    path = vocab.save(tmp_path / f"mini{suffix}")
    again = load_vocabulary(path)
    assert again.to_dict() == vocab.to_dict()
    assert again.findings == vocab.findings
    assert again.to_dict()["findings"][0]["exclusions"] == ["pericardial effusion"]
    assert load_vocabulary(again.to_dict()).to_dict() == vocab.to_dict()
    assert load_vocabulary(again) is again


def test_to_frame_and_getitem():
    vocab = load_vocabulary(MINI)
    df = vocab.to_frame()
    assert list(df.columns) == ["name", "label", "kind", "n_terms", "mesh"]
    assert df.set_index("name").loc["effusion", "n_terms"] == 3
    assert vocab["widening"].blocks_normal is False
    with pytest.raises(KeyError, match="no finding 'nope'"):
        vocab["nope"]
    assert "mini" in repr(vocab) and len(vocab) == 3


def _bad(**changes):
    data = json.loads(json.dumps(MINI))
    data["findings"][0].update(changes)
    return data


@pytest.mark.parametrize(
    "data,match",
    [
        (_bad(synonym=["x"]), r"entry 'effusion': unknown key\(s\) \['synonym'\]"),
        (_bad(terms="effusion"), r"entry 'effusion': 'terms' must be a list of non-empty strings"),
        (_bad(terms=["ok", ""]), r"'terms' must be a list of non-empty strings"),
        (_bad(kind="disease"), r"'kind' must be one of"),
        (_bad(blocks_normal="yes"), r"'blocks_normal' must be true or false"),
        (_bad(label=3), r"'label' must be a string"),
        (_bad(patterns=["(unclosed"]), r"entry 'effusion', patterns: '\(unclosed' is not a valid regular expression"),
        (_bad(exclusions=["re:[bad"]), r"exclusions: '\[bad' is not a valid regular expression"),
        (_bad(name=""), r"findings\[0\]: 'name' must be a non-empty string"),
        ({"name": "x", "findings": []}, r"'findings' is empty"),
        ({"name": "x"}, r"missing required key 'findings'"),
        ({"name": "x", "findings": [], "extra": 1}, r"unknown top-level key\(s\) \['extra'\]"),
        ({"name": 3, "findings": [{"name": "a", "terms": ["a"]}]}, r"key 'name' must be str"),
        ({"name": "x", "findings": [{"name": "a"}]}, r"entry 'a': needs at least one of"),
        ({"name": "x", "findings": [{"name": "a", "terms": ["a"]}, {"name": "a", "terms": ["b"]}]}, r"duplicate"),
        ({"name": "x", "findings": ["a"]}, r"each entry must be a mapping"),
    ],
)
def test_validation_errors(data, match):
    with pytest.raises(ValueError, match=match):
        load_vocabulary(data)


def test_error_names_the_file_and_entry(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nfindings:\n  - name: cardiomegaly\n    terms: [cardiomegaly]\n    meshes: [Cardiomegaly]\n")
    with pytest.raises(ValueError, match=r"mine\.yaml.*entry 'cardiomegaly': unknown key\(s\) \['meshes'\]"):
        load_vocabulary(path)
    bad_json = tmp_path / "broken.json"
    bad_json.write_text("{not json")
    with pytest.raises(ValueError, match=r"broken\.json.*could not be parsed"):
        load_vocabulary(bad_json)
    txt = tmp_path / "vocab.txt"
    txt.write_text("x")
    with pytest.raises(ValueError, match=r"must end in \.json, \.yaml or \.yml"):
        load_vocabulary(txt)


def test_unknown_name_path_and_type(tmp_path):
    with pytest.raises(KeyError, match="No built-in vocabulary 'nope'"):
        load_vocabulary("nope")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_vocabulary(tmp_path / "missing.json")
    with pytest.raises(TypeError, match="vocabulary must be"):
        load_vocabulary(3)
    lst = tmp_path / "list.json"
    lst.write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a mapping"):
        load_vocabulary(lst)
    with pytest.raises(ValueError, match="must end in"):
        load_vocabulary(MINI).save(tmp_path / "x.txt")


def test_vocabulary_class_is_exported_through_loader():
    assert isinstance(radmine.load_vocabulary(MINI), Vocabulary)
