"""radmine.read_medpix: a synthetic MedPix folder (known answers, bad inputs) and the real MedPix 2.0."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import radmine


def _case(uid, tac=(), mri=(), **case):
    base = {"Title": f"Title {uid}", "History": "Cough.", "Exam": "N/A", "Findings": "Mass in the lung.",
            "Differential Diagnosis": "Tumor, infection", "Case Diagnosis": "Tumor", "Diagnosis By": "N/A"}
    base.update(case)
    return {"U_id": uid, "TAC": list(tac), "MRI": list(mri), "Case": base,
            "Topic": {"Title": "Topic", "Disease Discussion": "...", "ACR Code": "6.3", "Category": "Neoplasm"}}


def _desc(uid, image, typ="CT", plane="Axial", **extra):
    d = {"Type": typ, "U_id": uid, "image": image,
         "Description": {"ACR Codes": "6.3", "Age": "54", "Caption": f"Caption of {image}.",
                         "Figure Part": None, "Modality": f"{typ} w/contrast (IV)", "Plane": plane, "Sex": "female"},
         "Location": "Lung", "Location Category": "Thorax"}
    d.update(extra)
    return d


def _folder(tmp_path, *, rgb=False, missing=(), splits=True):
    root = tmp_path / "medpix"
    (root / "images").mkdir(parents=True)
    cases = [
        _case("MPX1", tac=["MPX1_a", "MPX1_b"], mri=["MPX1_c"]),
        _case("MPX2", mri=["MPX2_a"], History="", Exam="Normal exam.", Findings=None),
    ]
    descs = [_desc("MPX1", "MPX1_a"), _desc("MPX1", "MPX1_b", plane="Transverse"),
             _desc("MPX1", "MPX1_c", typ="MR", plane="Coronal"),
             _desc("MPX2", "MPX2_a", typ="MR", plane="Multiple or Montage", Location="Brain and Neuro",
                   **{"Location Category": "Head"})]
    (root / "Case_topic.json").write_text(json.dumps(cases, indent=1))
    (root / "Descriptions.json").write_text(json.dumps(descs, indent=1))
    if splits:
        (root / "uid_list.json").write_text(json.dumps({"train": ["MPX1"], "train_1": ["MPX1"], "train_2": [], "dev": ["MPX2"]}))
    rng = np.random.default_rng(0)
    for i, d in enumerate(descs):
        if d["image"] in missing:
            continue
        h, w = (512, 384) if rgb else (256, 192 - i)
        arr = rng.integers(0, 256, size=(h, w, 3) if rgb else (h, w), dtype=np.uint8)
        Image.fromarray(arr, mode="RGB" if rgb else "L").save(root / "images" / f"{d['image']}.png")
    return root


def test_known_answers(tmp_path):
    root = _folder(tmp_path)
    c = radmine.read_medpix(root, progress=False)
    assert c.root == str(root.resolve())
    rep = c.reports.set_index("report_id")
    assert rep.loc["MPX1", "text"] == (
        "HISTORY: Cough.\n\nFINDINGS: Mass in the lung.\n\nDIFFERENTIAL DIAGNOSIS: Tumor, infection\n\nDIAGNOSIS: Tumor"
    )
    assert pd.isna(rep.loc["MPX1", "exam"])  # "N/A" skipped
    assert rep.loc["MPX2", "text"] == "EXAM: Normal exam.\n\nDIFFERENTIAL DIAGNOSIS: Tumor, infection\n\nDIAGNOSIS: Tumor"
    assert rep.loc["MPX1", "modality"] == "CT+MR" and rep.loc["MPX2", "modality"] == "MR"
    assert rep.loc["MPX1", "patient_id"] == rep.loc["MPX1", "study_id"] == "MPX1"
    assert rep.loc["MPX1", "title"] == "Title MPX1"
    assert (rep.loc["MPX1", "acr_code"], rep.loc["MPX1", "category"], rep.loc["MPX1", "topic_title"]) == ("6.3", "Neoplasm", "Topic")
    assert (rep.loc["MPX1", "split"], rep.loc["MPX1", "subsplit"]) == ("train", "train_1")
    assert rep.loc["MPX2", "split"] == "dev" and pd.isna(rep.loc["MPX2", "subsplit"])
    for r in c.reports.itertuples():
        for s in ("history", "exam", "findings", "differential", "diagnosis"):
            v = getattr(r, s)
            assert pd.isna(v) or v in r.text

    img = c.images.set_index("image_id")
    assert img.loc["MPX1_a", "path"] == "images/MPX1_a.png"
    assert c.image_paths().map(lambda p: Path(p).is_file()).all()
    assert img.loc["MPX1_a", "modality"] == "CT" and img.loc["MPX1_c", "modality"] == "MR"
    assert img.loc["MPX1_a", "modality_detail"] == "CT w/contrast (IV)"
    assert img["plane"].tolist() == ["axial", "axial", "coronal", "multiple or montage"]
    assert img.loc["MPX1_b", "plane_detail"] == "Transverse"
    assert img.loc["MPX1_a", "caption"] == "Caption of MPX1_a."
    assert img.loc["MPX1_a", "age"] == 54 and img.loc["MPX1_a", "sex"] == "female"
    assert pd.isna(img.loc["MPX1_a", "figure_part"])
    assert (img.loc["MPX1_a", "location"], img.loc["MPX2_a", "location_category"]) == ("Lung", "Head")
    assert (img.loc["MPX1_a", "width"], img.loc["MPX1_a", "height"], img.loc["MPX1_a", "mode"]) == (192, 256, "L")

    ann = c.annotations
    assert set(ann["kind"]) == {"diagnosis", "acr_code", "category", "location", "location_category"}
    assert ann[(ann["kind"] == "diagnosis")]["value"].tolist() == ["Tumor", "Tumor"]
    assert ann[(ann["kind"] == "location") & (ann["image_id"] == "MPX2_a")]["value"].tolist() == ["Brain and Neuro"]
    assert len(c.quarantine) == 0


def test_original_release_rgb_512(tmp_path):
    c = radmine.read_medpix(_folder(tmp_path, rgb=True), progress=False)
    assert set(c.images["mode"]) == {"RGB"}
    assert c.images["width"].max() == 384 and c.images["height"].max() == 512
    px = radmine.load_pixels(c.image_paths().iloc[0])
    assert px.shape == (512, 384) and px.dtype == np.float32  # RGB -> gray


def test_missing_image_file_kept_and_quarantined(tmp_path):
    c = radmine.read_medpix(_folder(tmp_path, missing={"MPX1_b"}, splits=False), progress=False)
    assert c.n_images == 4
    row = c.images.set_index("image_id").loc["MPX1_b"]
    assert pd.isna(row["path"]) and pd.isna(row["width"])
    q = c.quarantine
    assert q["item"].tolist() == ["MPX1_b"] and q["kept"].tolist() == [True]
    assert q["reason"].iloc[0].startswith("image file missing")
    assert c.reports["split"].isna().all()  # no uid_list.json


def test_unknown_case_and_bad_entries_dropped_with_reason(tmp_path):
    root = _folder(tmp_path)
    descs = json.loads((root / "Descriptions.json").read_text())
    descs += [_desc("MPX99", "MPX99_a"), "not an object", _desc("MPX1", "MPX1_a")]
    (root / "Descriptions.json").write_text(json.dumps(descs))
    cases = json.loads((root / "Case_topic.json").read_text())
    cases += [{"no": "id"}, cases[0]]
    (root / "Case_topic.json").write_text(json.dumps(cases))
    c = radmine.read_medpix(root, progress=False)
    q = c.quarantine.set_index("item")["reason"]
    assert q["Descriptions.json[4] MPX99_a"] == "case 'MPX99' not in Case_topic.json"
    assert q["Descriptions.json[5]"] == "entry is not an object with an 'image' id"
    assert q["Descriptions.json[6] MPX1_a"] == "duplicate image 'MPX1_a'"
    assert q["Case_topic.json[2]"] == "entry is not an object with a U_id"
    assert q["Case_topic.json[3] MPX1"] == "duplicate U_id 'MPX1'"
    dropped = int((~c.quarantine["kept"]).sum())
    assert c.n_images + sum(1 for i in q.index if i.startswith("Descriptions")) == len(descs)
    assert c.n_reports + sum(1 for i in q.index if i.startswith("Case_topic")) == len(cases)
    assert dropped == 5


def test_malformed_and_missing_json(tmp_path):
    root = _folder(tmp_path)
    (root / "Case_topic.json").write_text('[\n {"U_id": "MPX1",\n  "TAC": [}\n]')
    with pytest.raises(ValueError, match=r"Case_topic\.json: malformed JSON at line 3, column 11 \(char \d+\)"):
        radmine.read_medpix(root, progress=False)
    (root / "Case_topic.json").write_text('{"U_id": "MPX1"}')
    with pytest.raises(ValueError, match=r"Case_topic\.json: expected a JSON list of objects, found dict"):
        radmine.read_medpix(root, progress=False)
    (root / "Case_topic.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"Case_topic\.json not found in"):
        radmine.read_medpix(root, progress=False)
    with pytest.raises(FileNotFoundError, match="read_medpix: folder not found"):
        radmine.read_medpix(tmp_path / "nope", progress=False)
    root2 = _folder(tmp_path / "b")
    (root2 / "uid_list.json").write_text(json.dumps({"train": ["MPX1"], "dev": ["MPX1"]}))
    with pytest.raises(ValueError, match=r"uid_list\.json: case 'MPX1' is in both 'train' and 'dev'"):
        radmine.read_medpix(root2, progress=False)
    root3 = _folder(tmp_path / "c")
    (root3 / "Descriptions.json").write_bytes(b'[{"image": "caf\xe9"}]')
    with pytest.raises(ValueError, match=r"Descriptions\.json: not UTF-8 at byte offset 15 \(line 1\)"):
        radmine.read_medpix(root3, progress=False)


@pytest.mark.real
def test_real_medpix_counts(medpix_corpus, medpix_dir):
    c = medpix_corpus
    assert c.n_reports == 602 and c.n_images == 1850
    assert c.images["caption"].notna().all()
    assert len(c.quarantine) == 0
    assert c.reports["split"].value_counts().to_dict() == {"train": 535, "dev": 67}
    assert set(c.reports["subsplit"].dropna()) == {"train_1", "train_2"}
    assert set(c.reports["modality"]) <= {"CT", "MR", "CT+MR"}
    assert set(c.images["modality"]) == {"CT", "MR"}
    assert c.image_paths().map(lambda p: Path(p).is_file()).all()
    assert c.images["width"].max() <= 512 and c.images["mode"].isin(["L", "RGB"]).all()
    # every image belongs to a case, and a case's images are in one split (case = patient here)
    split_of = c.reports.set_index("report_id")["split"]
    assert c.images["report_id"].isin(split_of.index).all()
    for r in c.reports.sample(100, random_state=0).itertuples():
        for s in ("history", "exam", "findings", "differential", "diagnosis"):
            v = getattr(r, s)
            assert pd.isna(v) or v in r.text
    # image counts per case agree with the TAC/MRI lists
    cases = json.loads((medpix_dir / "Case_topic.json").read_text(encoding="utf-8"))
    listed = sum(len(x["TAC"]) + len(x["MRI"]) for x in cases)
    assert listed == c.n_images


@pytest.mark.real
def test_real_medpix_published_split_and_round_trip(medpix_corpus, tmp_path):
    parts = medpix_corpus.split(column="split")
    assert set(parts) == {"train", "dev"}
    assert parts["train"].n_reports == 535 and parts["dev"].n_reports == 67
    assert not set(parts["train"].images["report_id"]) & set(parts["dev"].images["report_id"])
    assert parts["train"].n_images + parts["dev"].n_images == medpix_corpus.n_images
    medpix_corpus.save(tmp_path / "mp")
    back = radmine.Corpus.load(tmp_path / "mp")
    assert back.root == medpix_corpus.root
    for key in medpix_corpus.tables:
        pd.testing.assert_frame_equal(back.tables[key], medpix_corpus.tables[key])
