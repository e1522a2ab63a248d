"""radmine.read_openi: synthetic XML (known answers, bad inputs) and the real IU release."""

from __future__ import annotations

import io
import os
import tarfile

import numpy as np
import pandas as pd
import pytest

import radmine
from radmine.readers.openi import parse_mesh, strip_counter


def _xml(rid, sections, major=(), auto=(), images=(), pad=""):
    abstract = "".join(f'<AbstractText Label="{k}">{v}</AbstractText>' for k, v in sections.items())
    mesh = "".join(f"<major>{m}</major>" for m in major) + "".join(f"<automatic>{a}</automatic>" for a in auto)
    imgs = "".join(
        f'<parentImage id="{iid}"><figureId>F{i + 1}</figureId><caption>{cap}</caption></parentImage>'
        for i, (iid, cap) in enumerate(images)
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><eCitation><uId id="{rid}"/><articleType>XR</articleType>'
        f"<MedlineCitation><Article><Abstract>{abstract}</Abstract></Article></MedlineCitation>"
        f"<MeSH>{mesh}</MeSH>{imgs}<note>{pad}</note></eCitation>"
    ).encode()


def _docs():
    return {
        "ecgen-radiology/1.xml": _xml(
            "CXR1",
            {"COMPARISON": "None.", "INDICATION": "Cough", "FINDINGS": "Lungs are clear.", "IMPRESSION": "No acute disease."},
            major=["normal"], auto=[],
            images=[("CXR1_1_IM-0001-3001", "Chest PA"), ("CXR1_1_IM-0001-4001", "Chest lateral")],
        ),
        "ecgen-radiology/2.xml": _xml(
            "CXR2",
            {"COMPARISON": "", "INDICATION": "Dyspnea", "FINDINGS": "", "IMPRESSION": "Opacity at left base."},
            major=["Opacity/lung/base/left/mild", "Calcinosis/aorta, thoracic"], auto=["opacity"],
            images=[("CXR2_IM-0002-1001", "Chest PA")],
        ),
        "ecgen-radiology/10.xml": _xml("CXR10", {"IMPRESSION": "Stable."}),
    }


def _write_tgz(path, docs):
    with tarfile.open(path, "w:gz") as tf:
        for name, data in docs.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def test_parse_mesh_and_strip_counter():
    assert parse_mesh("Opacity/lung/base/left/mild") == ("Opacity", ["lung", "base", "left", "mild"])
    assert parse_mesh("normal") == ("normal", [])
    assert parse_mesh("Calcinosis/aorta, thoracic") == ("Calcinosis", ["aorta, thoracic"])
    assert strip_counter("CXR1_1_IM-0001-3001") == "CXR1_IM-0001-3001"
    assert strip_counter("CXR1000_IM-0003-2001") == "CXR1000_IM-0003-2001"


def test_tgz_known_answers(tmp_path):
    tgz = tmp_path / "r.tgz"
    _write_tgz(tgz, _docs())
    c = radmine.read_openi(tgz, progress=False)
    rep = c.reports.set_index("report_id")
    assert list(rep.index) == ["CXR1", "CXR2", "CXR10"]  # natural order
    assert rep.loc["CXR1", "text"] == (
        "COMPARISON: None.\n\nINDICATION: Cough\n\nFINDINGS: Lungs are clear.\n\nIMPRESSION: No acute disease."
    )
    assert rep.loc["CXR2", "text"] == "INDICATION: Dyspnea\n\nIMPRESSION: Opacity at left base."
    assert pd.isna(rep.loc["CXR2", "findings"]) and pd.isna(rep.loc["CXR2", "comparison"])
    assert rep.loc["CXR1", "patient_id"] == rep.loc["CXR1", "study_id"] == "CXR1"
    assert (rep["modality"] == "XR").all()
    assert rep.loc["CXR2", "mesh_major"] == ["Opacity/lung/base/left/mild", "Calcinosis/aorta, thoracic"]
    assert rep.loc["CXR2", "mesh_automatic"] == ["opacity"]
    assert rep.loc["CXR10", "mesh_major"] == []
    for r in c.reports.itertuples():  # sections are substrings of the text
        for s in ("comparison", "indication", "findings", "impression"):
            v = getattr(r, s)
            assert pd.isna(v) or v in r.text

    ann = c.annotations
    assert len(ann) == 4
    op = ann[ann["value"] == "Opacity/lung/base/left/mild"].iloc[0]
    assert (op["report_id"], op["kind"], op["term"], op["qualifiers"]) == ("CXR2", "mesh_major", "Opacity", ["lung", "base", "left", "mild"])
    assert ann.loc[ann["kind"] == "mesh_automatic", "term"].tolist() == ["opacity"]

    img = c.images
    assert img["image_id"].tolist() == ["CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001", "CXR2_IM-0002-1001"]
    assert img["caption"].tolist() == ["Chest PA", "Chest lateral", "Chest PA"]
    assert img["figure_id"].tolist() == ["F1", "F2", "F1"]
    assert img["path"].isna().all() and (img["patient_id"] == img["report_id"]).all()
    assert len(c.quarantine) == 0


def test_folder_and_single_file_equal_tgz(tmp_path):
    docs = _docs()
    _write_tgz(tmp_path / "r.tgz", docs)
    for name, data in docs.items():
        (tmp_path / "x" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "x" / name).write_bytes(data)
    a = radmine.read_openi(tmp_path / "r.tgz", progress=False)
    b = radmine.read_openi(tmp_path / "x", progress=False)
    for key in ("images", "annotations"):
        pd.testing.assert_frame_equal(a.tables[key], b.tables[key])
    pd.testing.assert_frame_equal(a.reports.drop(columns="file"), b.reports.drop(columns="file"))
    one = radmine.read_openi(tmp_path / "x" / "ecgen-radiology" / "2.xml", progress=False)
    assert one.reports["report_id"].tolist() == ["CXR2"]


def test_malformed_xml_quarantined_rest_loaded(tmp_path):
    docs = _docs()
    docs["ecgen-radiology/3.xml"] = b"<eCitation><uId id='CXR3'/><MeSH><major>x</MeSH></eCitation>"
    docs["ecgen-radiology/4.xml"] = b"<eCitation><title>no id</title></eCitation>"
    docs["ecgen-radiology/5.xml"] = _xml("CXR1", {"IMPRESSION": "dup"})
    docs["ecgen-radiology/readme.txt"] = b"not xml, ignored"
    _write_tgz(tmp_path / "r.tgz", docs)
    c = radmine.read_openi(tmp_path / "r.tgz", progress=False)
    n_xml = sum(1 for k in docs if k.endswith(".xml"))
    q = c.quarantine.set_index("item")["reason"]
    assert c.n_reports + len(q) == n_xml == 6
    assert q["ecgen-radiology/3.xml"].startswith("malformed XML (mismatched tag: line 1")
    assert q["ecgen-radiology/4.xml"] == "no <uId id=...> report id."
    assert q["ecgen-radiology/5.xml"].startswith("duplicate report_id 'CXR1' (first in ecgen-radiology/1.xml)")
    assert (c.quarantine["source"] == "openi").all()


def test_truncated_tgz_member_quarantined(tmp_path):
    rng = np.random.default_rng(0)
    docs = {f"ecgen-radiology/{i}.xml": _xml(f"CXR{i}", {"IMPRESSION": "ok"}, pad=rng.bytes(6000).hex())
            for i in range(1, 9)}
    full = tmp_path / "full.tgz"
    _write_tgz(full, docs)
    raw = full.read_bytes()
    cut = tmp_path / "cut.tgz"
    cut.write_bytes(raw[: int(len(raw) * 0.6)])
    c = radmine.read_openi(cut, progress=False)
    assert 0 < c.n_reports < 8
    assert len(c.quarantine) == 1
    row = c.quarantine.iloc[0]
    assert "truncated" in row["reason"]
    assert set(c.reports["report_id"]) <= {f"CXR{i}" for i in range(1, 9)}


def test_bad_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="read_openi: path not found"):
        radmine.read_openi(tmp_path / "none.tgz", progress=False)
    (tmp_path / "a.csv").write_text("x")
    with pytest.raises(ValueError, match=r"a\.csv is not an Open-i release"):
        radmine.read_openi(tmp_path / "a.csv", progress=False)
    (tmp_path / "junk.tgz").write_bytes(b"\x1f\x8b" + b"\x00" * 40)
    with pytest.raises(ValueError, match=r"junk\.tgz: not a readable tar archive"):
        radmine.read_openi(tmp_path / "junk.tgz", progress=False)


def test_dicom_table_join_exact_and_counter_removed(tmp_path):
    _write_tgz(tmp_path / "r.tgz", _docs())
    table = pd.DataFrame(
        {
            "imageid": ["CXR1_IM-0001-3001", "CXR2_IM-0002-1001", "CXR9_IM-0009-1001"],
            "Series Number": ["1", "2", "3"],
            "Instance Number": ["1", "1", "1"],
            "View Position": ["PA", "LL", "PA"],
            "Body Part Examined": ["CHEST", "CHEST", "CHEST"],
            "Modality": ["CR", "DX", "CR"],
            "Rows": ["2000", "1800", "10"],
            "Columns": ["2000", "1700", "10"],
            "Patient's Name": ["x", "y", "z"],
        }
    )
    path = tmp_path / "meta.csv.gz"
    table.to_csv(path, index=False, compression="gzip")
    for source in (path, table):
        c = radmine.read_openi(tmp_path / "r.tgz", dicom_table=source, progress=False)
        img = c.images.set_index("image_id")
        assert img.loc["CXR1_1_IM-0001-3001", "dicom_match"] == "counter_removed"
        assert pd.isna(img.loc["CXR1_1_IM-0001-4001", "dicom_match"])
        assert img.loc["CXR2_IM-0002-1001", "dicom_match"] == "exact"
        assert img.loc["CXR2_IM-0002-1001", "view"] == "LL"
        assert img.loc["CXR2_IM-0002-1001", "modality"] == "DX"
        assert img.loc["CXR1_1_IM-0001-4001", "modality"] == "XR"  # unmatched keeps the report's modality
        assert img.loc["CXR1_1_IM-0001-3001", "series_number"] == 1
        assert img.loc["CXR2_IM-0002-1001", "rows"] == 1800
        assert str(img["series_number"].dtype) == "Int64"
        assert "Patient's Name" not in img.columns and "patient_name" not in img.columns
    with pytest.raises(ValueError, match="dicom_table needs an 'imageid' column"):
        radmine.read_openi(tmp_path / "r.tgz", dicom_table=table.drop(columns="imageid"), progress=False)
    with pytest.raises(FileNotFoundError, match="dicom_table not found"):
        radmine.read_openi(tmp_path / "r.tgz", dicom_table=tmp_path / "none.csv", progress=False)


@pytest.mark.real
def test_real_openi_counts(openi_corpus):
    c = openi_corpus
    assert c.n_reports == 3145
    assert c.reports["report_id"].is_unique and c.reports["report_id"].str.match(r"^CXR\d+$").all()
    # nothing dropped; the reports whose every section is empty are kept and listed
    assert not c.quarantine["kept"].eq(False).any()
    empty = c.reports["text"].eq("")
    assert len(c.quarantine) == int(empty.sum()) > 0
    assert c.quarantine["reason"].str.contains("has no text").all()
    assert c.n_images > 3145 and c.images["caption"].notna().mean() > 0.99
    counts = c.images.groupby("report_id").size()
    assert counts.between(1, 5).all()  # 1 to 5 images per report (a few reports have none)
    assert c.images["report_id"].nunique() > 0.95 * c.n_reports
    # every MeSH string is an annotation row with its kind
    n_major = int(c.reports["mesh_major"].map(len).sum())
    n_auto = int(c.reports["mesh_automatic"].map(len).sum())
    kinds = c.annotations["kind"].value_counts()
    assert kinds["mesh_major"] == n_major and kinds["mesh_automatic"] == n_auto
    heads = c.annotations["value"].str.split("/").str[0].str.strip()
    assert (heads == c.annotations["term"]).all()
    # section columns are substrings of text, text starts with a heading
    for r in c.reports.sample(300, random_state=0).itertuples():
        assert r.text == "" or r.text.split(":")[0] in {"COMPARISON", "INDICATION", "FINDINGS", "IMPRESSION"}
        for s in ("comparison", "indication", "findings", "impression"):
            v = getattr(r, s)
            assert pd.isna(v) or f"{s.upper()}: {v}" in r.text
    assert c.reports["impression"].notna().mean() > 0.95
    # DICOM join: nearly all image ids match, a few only after removing the counter
    match = c.images["dicom_match"].value_counts()
    assert match["exact"] / c.n_images > 0.99 and match.get("counter_removed", 0) >= 1
    assert set(c.images["view"].dropna()) >= {"PA", "AP"}


@pytest.mark.real
def test_real_openi_folder_equals_tgz_subset(openi_tgz, openi_corpus, tmp_path):
    with tarfile.open(openi_tgz, "r:gz") as tf:
        members = [m for m in tf.getmembers()[:40] if m.isfile()]
        for m in members:
            out = tmp_path / m.name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(tf.extractfile(m).read())
    c = radmine.read_openi(tmp_path, progress=False)
    ref = openi_corpus.reports.set_index("report_id").loc[c.reports["report_id"]]
    assert (ref["text"].values == c.reports["text"].values).all()
    assert [list(x) for x in ref["mesh_major"]] == c.reports["mesh_major"].tolist()


@pytest.mark.real
def test_real_openi_round_trip(openi_corpus, tmp_path):
    openi_corpus.save(tmp_path / "oi")
    back = radmine.Corpus.load(tmp_path / "oi")
    for key in openi_corpus.tables:
        pd.testing.assert_frame_equal(back.tables[key], openi_corpus.tables[key])
    assert isinstance(back.annotations["qualifiers"].iloc[1], list)
    assert os.path.getsize(tmp_path / "oi" / "reports.parquet") > 0
