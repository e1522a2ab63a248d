"""Exports: CheXpert label columns, Hugging Face datasets that load back, Label Studio tasks."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import radmine
from radmine.exports import CHEXPERT_COLUMNS, label_studio_config, labels_to_chexpert, to_label_studio

REPORTS = [
    "FINDINGS: No pneumothorax. Possible small left pleural effusion. The heart is enlarged.",
    "IMPRESSION: No acute cardiopulmonary abnormality.",
    "FINDINGS: Healed right rib fracture. Pacemaker in place.",
]


def test_chexpert_columns_and_values():
    labels = radmine.label_reports(REPORTS, vocabulary="chest_xray")
    c = labels_to_chexpert(labels)
    assert list(c.columns) == CHEXPERT_COLUMNS and len(CHEXPERT_COLUMNS) == 14
    assert c.index.equals(labels.index)
    assert set(np.unique(c.to_numpy()[~np.isnan(c.to_numpy())])) <= {1.0, 0.0, -1.0}
    row0 = c.iloc[0]
    assert (row0["Pneumothorax"], row0["Pleural Effusion"], row0["Cardiomegaly"], row0["No Finding"]) == (0, -1, 1, 0)
    assert np.isnan(row0["Edema"])  # not mentioned -> blank
    assert c.iloc[1]["No Finding"] == 1
    assert (c.iloc[2]["Fracture"], c.iloc[2]["Support Devices"]) == (1, 1)
    csv = c.to_csv(index=False).splitlines()
    assert csv[0].split(",") == CHEXPERT_COLUMNS
    assert csv[1].split(",")[5] == ""  # Edema is blank in the file


def test_chexpert_errors_and_blank_fill():
    ct = radmine.label_reports(["FINDINGS: Liver cyst."], vocabulary="ct_mr")
    with pytest.raises(ValueError, match="no column for the CheXpert observations"):
        labels_to_chexpert(ct)
    assert labels_to_chexpert(ct, missing="blank").shape == (1, 14)
    with pytest.raises(ValueError, match="expected 1, 0, -1 or blank"):
        labels_to_chexpert(pd.DataFrame({"edema": [2]}), missing="blank")
    with pytest.raises(TypeError, match="must be the DataFrame"):
        labels_to_chexpert([1, 0])
    with pytest.raises(ValueError, match="'missing' parameter"):
        labels_to_chexpert(ct, missing="zero")


def test_chexpert_accepts_chexpert_named_columns():
    y = pd.DataFrame({"Pleural Effusion": [1.0], "Edema": [-1.0]})
    c = labels_to_chexpert(y, missing="blank")
    assert (c.loc[0, "Pleural Effusion"], c.loc[0, "Edema"]) == (1.0, -1.0)


def _tiny_corpus(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    reports = pd.DataFrame({"report_id": ["r0", "r1", "r2"], "patient_id": ["p0", "p1", "p2"],
                            "study_id": ["s0", "s1", "s2"], "modality": "CR", "text": REPORTS,
                            "findings": ["No pneumothorax.", None, "Healed right rib fracture."],
                            "split": ["train", "train", "dev"]})
    rows = []
    for i, rid in enumerate(["r0", "r0", "r2", "r1"]):
        Image.fromarray((rng.random((12, 10)) * 255).astype(np.uint8)).save(tmp_path / f"im{i}.png")
        rows.append({"image_id": f"i{i}", "report_id": rid, "path": f"im{i}.png", "caption": f"figure {i}"})
    rows.append({"image_id": "i_missing", "report_id": "r1", "path": "gone.png", "caption": None})
    corpus = radmine.Corpus(reports, pd.DataFrame(rows), root=tmp_path)
    corpus.links = pd.DataFrame({"image_id": ["i0", "i2"], "report_id": ["r0", "r2"], "sentence_id": [1, 0],
                                 "sentence": ["Possible small left pleural effusion.", "Healed right rib fracture."]})
    return corpus


def test_hf_dataset_loads_back(tmp_path):
    datasets = pytest.importorskip("datasets")
    corpus = _tiny_corpus(tmp_path)
    labels = radmine.label_reports(corpus.reports, vocabulary="chest_xray")
    with pytest.warns(UserWarning, match="1 of 5 image"):
        ds = corpus.to_hf_dataset(labels)
    assert len(ds) == len(corpus.images)  # items in = rows out
    assert isinstance(ds.features["image"], datasets.Image)
    with pytest.warns(UserWarning, match="could not be read"):
        by_report = corpus.to_hf_dataset(labels, unit="report")
    assert by_report["report_id"] == ["r0", "r1", "r2"] and [len(x) for x in by_report["images"]] == [2, 1, 1]
    ds.save_to_disk(str(tmp_path / "ds"))
    original = np.asarray(__import__("PIL.Image").Image.open(tmp_path / "im0.png"))
    (tmp_path / "im0.png").unlink()  # the saved dataset carries the image bytes, not a link to the file
    back = datasets.load_from_disk(str(tmp_path / "ds"))
    assert back.column_names[:5] == ["image_id", "report_id", "image", "caption", "sentences"]
    assert {"text", "findings", "split", "pleural_effusion"} <= set(back.column_names)
    row = back[0]
    assert np.array_equal(np.asarray(row["image"]), original)
    assert row["sentences"] == ["Possible small left pleural effusion."]
    assert (row["pleural_effusion"], row["pneumothorax"], row["edema"]) == (-1, 0, None)
    assert back[4]["image"] is None
    with pytest.raises(ValueError, match="'unit' parameter"):
        corpus.to_hf_dataset(unit="study")
    with pytest.raises(ValueError, match="not in the corpus"):
        corpus.to_hf_dataset(labels.rename(index={"r0": "zz"}))


def test_label_studio_tasks(tmp_path):
    corpus = _tiny_corpus(tmp_path)
    labels = radmine.label_reports(corpus.reports, vocabulary="chest_xray")
    tasks = to_label_studio(corpus, labels, tmp_path / "out" / "tasks.json")
    assert [t["data"]["image_id"] for t in tasks] == ["i0", "i2"]  # key images only
    t0 = tasks[0]
    assert t0["data"]["image"] == "/data/local-files/?d=im0.png"
    assert t0["data"]["sentences"] == "Possible small left pleural effusion."
    result = {r["from_name"]: r["value"]["choices"] for r in t0["predictions"][0]["result"]}
    assert "cardiomegaly" in result["present"] and result["uncertain"] == ["pleural_effusion"]
    assert json.loads((tmp_path / "out" / "tasks.json").read_text()) == tasks
    config = (tmp_path / "out" / "tasks.config.xml").read_text()
    assert '<Image name="image" value="$image"' in config and '<Choice value="pleural_effusion"/>' in config
    assert config == label_studio_config(list(labels.columns))
    every = to_label_studio(corpus, key_images_only=False, image_url="https://pacs.example/")
    assert len(every) == 5 and every[1]["data"]["image"] == "https://pacs.example/im1.png"
    corpus.links = corpus.links.iloc[:0]
    with pytest.raises(ValueError, match="no key-image links"):
        to_label_studio(corpus)
