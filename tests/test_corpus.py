"""radmine.corpus: save/load round trip, leak-free splits, concat, validation, summaries."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import radmine
from radmine.corpus import Corpus, concat


def _corpus(prefix="r", n_patients=20, reports_per_patient=3, name="site"):
    rows, imgs, ann = [], [], []
    for p in range(n_patients):
        for k in range(reports_per_patient):
            rid = f"{prefix}{p}_{k}"
            rows.append({"report_id": rid, "patient_id": f"P{prefix}{p}", "study_id": f"S{rid}",
                         "modality": ["CT", "MR", "XR"][k % 3], "text": f"FINDINGS: finding {p}.{k}.",
                         "findings": f"finding {p}.{k}.", "impression": None if k else "ok"})
            imgs.append({"image_id": f"I{rid}", "report_id": rid, "patient_id": f"P{prefix}{p}", "path": f"img/{rid}.png",
                         "series_number": k + 1, "pixel_spacing": [0.5, 0.5] if k else None})
            ann.append({"report_id": rid, "image_id": None, "kind": "mesh_major", "value": "Opacity/lung/left",
                        "term": "Opacity", "qualifiers": ["lung", "left"]})
    images = pd.DataFrame(imgs)
    images["series_number"] = images["series_number"].astype("Int64")
    return Corpus(pd.DataFrame(rows), images, annotations=pd.DataFrame(ann), name=name,
                  quarantine=pd.DataFrame({"source": ["x"], "item": ["f1"], "reason": ["bad"], "kept": [False]}))


def test_save_load_exact_round_trip(tmp_path):
    c = _corpus()
    c.tables["ground_truth"] = pd.DataFrame({"report_id": ["r0_0"], "labels": [["a", "b"]], "score": [0.5]})
    c.tables["topic_words"] = pd.DataFrame({"topic": [0, 1], "word": ["x", "y"]}).set_index("topic")
    out = c.save(tmp_path / "c")
    manifest = json.loads((out / "corpus.json").read_text())
    assert manifest["format"] == "radmine-corpus" and manifest["radmine_version"] == radmine.__version__
    assert manifest["tables"]["reports"]["rows"] == 60
    back = Corpus.load(out)
    assert back.name == "site" and set(back.tables) == set(c.tables)
    for key in c.tables:
        pd.testing.assert_frame_equal(back.tables[key], c.tables[key], check_dtype=True)
    # list cells come back as lists, not numpy arrays
    assert back.annotations["qualifiers"].iloc[0] == ["lung", "left"]
    assert isinstance(back.images["pixel_spacing"].iloc[1], list) and back.images["pixel_spacing"].iloc[0] is None
    assert back.tables["ground_truth"]["labels"].iloc[0] == ["a", "b"]
    assert str(back.images["series_number"].dtype) == "Int64"
    # saving again over the folder is fine and deterministic
    c.save(out)
    pd.testing.assert_frame_equal(Corpus.load(out).reports, c.reports)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"is not a saved radmine corpus: corpus\.json not found"):
        Corpus.load(tmp_path)
    (tmp_path / "corpus.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"corpus\.json: not valid JSON"):
        Corpus.load(tmp_path)
    (tmp_path / "corpus.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match=r"expected format 'radmine-corpus', found 'other'"):
        Corpus.load(tmp_path)
    _corpus().save(tmp_path / "c")
    (tmp_path / "c" / "images.parquet").unlink()
    with pytest.raises(ValueError, match=r"table file 'images\.parquet' listed in corpus\.json is missing"):
        Corpus.load(tmp_path / "c")


def test_split_leak_free_and_deterministic():
    c = _corpus(n_patients=50)
    parts = c.split(by="patient_id", sizes=(0.6, 0.2, 0.2), random_state=3)
    assert list(parts) == ["train", "dev", "test"]
    patients = [set(p.reports["patient_id"]) for p in parts.values()]
    assert not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])
    assert sum(p.n_reports for p in parts.values()) == c.n_reports
    assert [len(p) for p in patients] == [30, 10, 10]
    for p in parts.values():  # every table follows its reports
        assert set(p.images["report_id"]) == set(p.reports["report_id"])
        assert set(p.annotations["report_id"]) == set(p.reports["report_id"])
        assert len(p.quarantine) == 1
    again = c.split(by="patient_id", sizes=(0.6, 0.2, 0.2), random_state=3)
    other = c.split(by="patient_id", sizes=(0.6, 0.2, 0.2), random_state=4)
    assert all(parts[k].reports["report_id"].tolist() == again[k].reports["report_id"].tolist() for k in parts)
    assert any(parts[k].reports["report_id"].tolist() != other[k].reports["report_id"].tolist() for k in parts)
    named = c.split(sizes={"a": 1, "b": 1}, random_state=0)
    assert list(named) == ["a", "b"] and named["a"].n_reports == named["b"].n_reports == 75
    with pytest.raises(ValueError, match=r"'by' must be a reports column; 'mrn' not in"):
        c.split(by="mrn")
    with pytest.raises(ValueError, match=r"sizes must be non-negative and not all zero"):
        c.split(sizes=(0.5, -0.5))


def test_split_by_column_published_splits():
    c = _corpus(n_patients=10)
    rep = c.reports.copy()
    rep["split"] = np.where(rep["patient_id"].isin(["Pr0", "Pr1"]), "dev", "train")
    c.reports = rep
    parts = c.split(column="split")
    assert set(parts) == {"dev", "train"} and parts["dev"].n_reports == 6
    rep.loc[0, "split"] = "dev" if rep.loc[0, "split"] == "train" else "train"
    c.reports = rep
    with pytest.raises(ValueError, match=r"column 'split' puts 1 patient_id group\(s\) in more than one split"):
        c.split(column="split")
    with pytest.raises(ValueError, match=r"column 'fold' not in reports columns"):
        c.split(column="fold")


@pytest.mark.real
def test_split_by_column_medpix(medpix_corpus):
    parts = medpix_corpus.split(by="patient_id", column="split")
    assert {k: v.n_reports for k, v in parts.items()} == {"dev": 67, "train": 535}
    assert not set(parts["dev"].reports["patient_id"]) & set(parts["train"].reports["patient_id"])
    sub = medpix_corpus.split(column="subsplit")
    assert {k: v.n_reports for k, v in sub.items()} == {"train_1": 267, "train_2": 268}


def test_concat_sources_collisions_and_prefix(tmp_path):
    a = _corpus("a", n_patients=3, name="siteA")
    b = _corpus("b", n_patients=2, name="siteB")
    a.root = str(tmp_path / "A")
    m = concat([a, b])
    assert m.name == "siteA+siteB" and m.n_reports == a.n_reports + b.n_reports
    assert m.reports["source"].value_counts().to_dict() == {"siteA": 9, "siteB": 6}
    assert set(m.images["source"]) == {"siteA", "siteB"}
    assert m.quarantine["source"].tolist() == ["siteA:x", "siteB:x"]
    # relative paths of a corpus with a root become absolute
    assert m.images.loc[m.images["source"] == "siteA", "path"].str.startswith(str(tmp_path / "A")).all()
    assert m.images.loc[m.images["source"] == "siteB", "path"].str.startswith("img/").all()

    with pytest.raises(ValueError, match=r"concat: 9 report_id value\(s\) occur in more than one source: 'a0_0' \(siteA and siteA2\).*prefix_ids=True"):
        concat([a, a.copy()])
    same_patient = _corpus("c", n_patients=1, name="siteC")
    rep = same_patient.reports.copy()
    rep["patient_id"] = "Pa0"
    same_patient.reports = rep
    with pytest.raises(ValueError, match=r"patient_id value\(s\) occur in more than one source: 'Pa0'"):
        concat({"A": a, "C": same_patient})
    p = concat({"x": a, "y": a.copy()}, prefix_ids=True, name="both")
    assert p.name == "both" and p.n_reports == 18
    assert p.reports["report_id"].str.match(r"^(x|y):a\d_\d$").all()
    assert p.images["report_id"].isin(p.reports["report_id"]).all()
    assert p.annotations["report_id"].str.startswith(("x:", "y:")).all()
    with pytest.raises(ValueError, match=r"need one unique source name per corpus"):
        concat([a, b], sources=["s", "s"])
    with pytest.raises(ValueError, match="need at least one Corpus"):
        concat([])
    with pytest.raises(TypeError, match=r"item 1 is a DataFrame, expected a radmine\.Corpus"):
        concat([a, a.reports])


def test_validate_errors(tmp_path):
    c = _corpus(n_patients=2)
    rep = c.reports
    with pytest.raises(ValueError, match=r"report_id must be unique; duplicated: \['r0_0'\]"):
        Corpus(pd.concat([rep, rep.head(1)], ignore_index=True))
    with pytest.raises(ValueError, match=r"Corpus\.reports is missing required column\(s\) \['text'\]"):
        Corpus(rep.drop(columns="text"))
    img = c.images
    with pytest.raises(ValueError, match=r"image_id must be unique; duplicated: \['Ir0_0'\]"):
        Corpus(rep, pd.concat([img, img.head(1)], ignore_index=True))
    with pytest.raises(ValueError, match=r"1 image\(s\) refer to a report_id not in reports, e\.g\. \['Iz'\]"):
        Corpus(rep, pd.concat([img, pd.DataFrame({"image_id": ["Iz"], "report_id": ["nope"]})], ignore_index=True))
    with pytest.raises(ValueError, match=r"Corpus\.quarantine is missing required column\(s\) \['reason'\]"):
        c.quarantine = pd.DataFrame({"source": [], "item": []})
    with pytest.raises(TypeError, match="Corpus.images must be a pandas DataFrame, got list"):
        c.images = []
    with pytest.raises(TypeError, match=r"Extra table 'gt' must be a pandas DataFrame, got dict"):
        Corpus(rep, gt={})
    with pytest.raises(KeyError, match=r"Corpus has no table 'nope'"):
        c["nope"]
    c2 = c.copy()
    c2.tables["bad name"] = pd.DataFrame({"a": [1]})
    with pytest.raises(ValueError, match=r"Table name 'bad name' cannot be saved"):
        c2.save(tmp_path / "bad")
    assert not (tmp_path / "bad").exists()  # nothing written


def test_summary_and_html():
    c = _corpus(n_patients=4)
    s = c.summary()
    assert (s["reports"], s["patients"], s["images"]) == (12, 4, 12)
    assert s["modalities"] == {"CT": 4, "MR": 4, "XR": 4}
    assert s["sections (non-empty)"] == {"findings": 12, "impression": 4}
    html = c._repr_html_()
    assert html.startswith("<div>") and "Corpus &#x27;site&#x27;" in html and "<td style='text-align:left'>12</td>" in html
    assert repr(c) == "<Corpus 'site': 12 reports, 4 patients, 12 images>"
    assert "annotations" in str(c)
