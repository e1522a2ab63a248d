"""radmine.read_reports (CSV / TSV / JSONL / JSON / parquet / DataFrame) and read_corpus dispatch."""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pandas as pd
import pytest

import radmine
from radmine.readers import detect_kind


def _export():
    return pd.DataFrame(
        {
            "Accession": ["A1", "A2", "A3"],
            "MRN": ["007", "007", "042"],
            "ReportText": ["FINDINGS: Clear lungs.", "FINDINGS: Small effusion.", "IMPRESSION: Normal."],
            "Modality": ["CR", "CT", "CR"],
        }
    )


def test_csv_with_column_mapping_keeps_leading_zeros(tmp_path):
    path = tmp_path / "export.csv"
    _export().to_csv(path, index=False)
    c = radmine.read_reports(
        path, columns={"Accession": "report_id", "MRN": "patient_id", "ReportText": "text", "Modality": "modality"}
    )
    rep = c.reports
    assert list(rep.columns[:5]) == ["report_id", "patient_id", "study_id", "modality", "text"]
    assert rep["patient_id"].tolist() == ["007", "007", "042"]
    assert rep["study_id"].tolist() == ["A1", "A2", "A3"]  # defaults to report_id
    assert rep["text"].tolist() == _export()["ReportText"].tolist()
    assert c.name == "export" and len(c.quarantine) == 0
    assert c.split(by="patient_id", sizes=(0.5, 0.5), random_state=0)  # patients usable for splits


def test_id_column_also_mapped_to_study_and_tsv_gz(tmp_path):
    path = tmp_path / "export.tsv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        _export().to_csv(fh, sep="\t", index=False)
    c = radmine.read_reports(path, columns={"Accession": "study_id", "MRN": "patient_id"},
                             id_column="Accession", text_column="ReportText")
    assert c.reports["report_id"].tolist() == c.reports["study_id"].tolist() == ["A1", "A2", "A3"]
    assert c.reports["modality"].isna().all()
    assert "Modality" in c.reports.columns


def test_missing_required_columns_names_source_and_available(tmp_path):
    path = tmp_path / "export.csv"
    _export().to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"export\.csv.*missing required column\(s\) \['report_id', 'text'\].*"
                                         r"available columns: \['Accession', 'MRN', 'ReportText', 'Modality'\]"):
        radmine.read_reports(path)
    with pytest.raises(ValueError, match=r"missing required column\(s\) \['text'\]"):
        radmine.read_reports(_export(), id_column="Accession")
    with pytest.raises(ValueError, match=r"column 'Body' \(for text\) not found; available columns"):
        radmine.read_reports(_export(), id_column="Accession", text_column="Body")
    with pytest.raises(ValueError, match=r"names source column\(s\) \['Nope'\] that are not in the table"):
        radmine.read_reports(_export(), columns={"Nope": "text"}, id_column="Accession")


def test_non_utf8_csv_reports_byte_offset_and_line(tmp_path):
    path = tmp_path / "latin.csv"
    body = "report_id,text\nr1,Clear lungs.\nr2,Caf\xe9 sign.\n".encode("latin-1")
    path.write_bytes(body)
    offset = body.index(b"\xe9")
    with pytest.raises(ValueError, match=rf"latin\.csv: cannot decode as utf-8 at byte offset {offset} \(line 3, column 7\)"):
        radmine.read_reports(path)
    c = radmine.read_reports(path, encoding="latin-1")
    assert c.reports["text"].tolist() == ["Clear lungs.", "Caf\xe9 sign."]


def test_jsonl_non_string_text_kept_as_none_and_counted(tmp_path):
    path = tmp_path / "reports.jsonl"
    rows = [{"id": 1, "text": "FINDINGS: ok."}, {"id": 2, "text": 5}, {"id": 3, "text": None}, {"id": 4.0, "text": "x"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    c = radmine.read_reports(path, id_column="id")
    assert c.reports["report_id"].tolist() == ["1", "2", "3", "4"]
    assert c.reports["text"].tolist()[:1] == ["FINDINGS: ok."]
    assert c.reports["text"].isna().tolist() == [False, True, True, False]
    q = c.quarantine
    assert q["item"].tolist() == ["2", "3"] and q["kept"].all()
    assert q["reason"].tolist() == ["text is not a string (int); kept with text=None", "text is missing; kept with text=None"]


def test_malformed_jsonl_and_json_name_the_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"report_id": "a", "text": "x"}\n{"report_id": "b", "text": \n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 2: not valid JSON"):
        radmine.read_reports(bad)
    badj = tmp_path / "bad.json"
    badj.write_text('[{"report_id": "a",\n "text": "x"},\n {oops}]', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.json: not valid JSON .* at line 3, column 3"):
        radmine.read_reports(badj)
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"reports": [{"report_id": "a", "text": "x"}]}), encoding="utf-8")
    assert radmine.read_reports(good).n_reports == 1


def test_parquet_and_sections_only_build_text(tmp_path):
    df = pd.DataFrame({"report_id": ["r1", "r2"], "findings": ["Clear.", None], "impression": ["Normal.", "Effusion."]})
    path = tmp_path / "r.parquet"
    df.to_parquet(path)
    c = radmine.read_reports(path)
    assert c.reports["text"].tolist() == ["FINDINGS: Clear.\n\nIMPRESSION: Normal.", "IMPRESSION: Effusion."]
    for rep in c.reports.itertuples():  # sections are substrings of text
        for s in ("findings", "impression"):
            v = getattr(rep, s)
            assert v is None or pd.isna(v) or v in rep.text


def test_duplicate_and_missing_ids(tmp_path):
    df = pd.DataFrame({"report_id": ["a", "b", "a"], "text": ["x", "y", "z"]})
    with pytest.raises(ValueError, match=r"report_id must be unique; 1 id\(s\) repeat, e\.g\. \['a'\] \(rows \[0, 2\]\)"):
        radmine.read_reports(df)
    df = pd.DataFrame({"report_id": ["a", None], "text": ["x", "y"]})
    with pytest.raises(ValueError, match=r"1 row\(s\) have no report_id, e\.g\. rows \[1\]"):
        radmine.read_reports(df)


def test_images_table(tmp_path):
    img = pd.DataFrame({"ImageUID": ["i1", "i2"], "Accession": ["A1", "A3"], "File": ["a.png", "b.png"]})
    c = radmine.read_reports(_export(), id_column="Accession", text_column="ReportText", images=img,
                             image_columns={"ImageUID": "image_id", "Accession": "report_id", "File": "path"},
                             root=tmp_path)
    assert c.n_images == 2
    assert c.image_paths().tolist() == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    with pytest.raises(ValueError, match=r"images=images DataFrame.*missing required column\(s\) \['image_id', 'report_id'\]"):
        radmine.read_reports(_export(), id_column="Accession", text_column="ReportText", images=img)
    bad = img.assign(Accession=["A1", "ZZ"])
    with pytest.raises(ValueError, match=r"refer to a report_id not in reports"):
        radmine.read_reports(_export(), id_column="Accession", text_column="ReportText", images=bad,
                             image_columns={"ImageUID": "image_id", "Accession": "report_id"})


def test_bad_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="file not found"):
        radmine.read_reports(tmp_path / "none.csv")
    odd = tmp_path / "reports.xlsx"
    odd.write_bytes(b"PK\x03\x04")
    with pytest.raises(ValueError, match=r"unknown table kind '\.xlsx'"):
        radmine.read_reports(odd)
    with pytest.raises(TypeError, match="source must be a file path or a pandas DataFrame"):
        radmine.read_reports(["a", "b"])
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match=r"empty\.csv: the file is empty"):
        radmine.read_reports(empty)


def test_read_corpus_dispatch(tmp_path):
    from pydicom.data import get_testdata_file

    csv = tmp_path / "t.csv"
    pd.DataFrame({"report_id": ["a"], "text": ["FINDINGS: x."]}).to_csv(csv, index=False)
    assert detect_kind(csv) == "table"
    c = radmine.read_corpus(csv)
    assert c.n_reports == 1
    c.save(tmp_path / "saved")
    assert detect_kind(tmp_path / "saved") == "corpus"
    pd.testing.assert_frame_equal(radmine.read_corpus(tmp_path / "saved").reports, c.reports)

    dcm_dir = tmp_path / "dcm"
    dcm_dir.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), dcm_dir / "IM0001")  # no suffix: sniffed by 'DICM'
    assert detect_kind(dcm_dir) == "dicom"
    assert radmine.read_corpus(dcm_dir, progress=False).n_images == 1

    xml_dir = tmp_path / "xml"
    xml_dir.mkdir()
    (xml_dir / "1.xml").write_text('<eCitation><uId id="CXR1"/></eCitation>')
    assert detect_kind(xml_dir) == "openi"
    assert radmine.read_corpus(xml_dir, progress=False).reports["report_id"].tolist() == ["CXR1"]

    junk = tmp_path / "blob.bin"
    junk.write_bytes(np.arange(300, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match=r"cannot tell what .*blob\.bin is; expected a saved radmine corpus"):
        radmine.read_corpus(junk)
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(ValueError, match=r"cannot tell what .*emptydir is"):
        radmine.read_corpus(tmp_path / "emptydir")
    with pytest.raises(FileNotFoundError, match="path not found"):
        radmine.read_corpus(tmp_path / "nothing")


@pytest.mark.real
def test_read_corpus_real(openi_tgz, medpix_dir):
    assert detect_kind(openi_tgz) == "openi"
    assert detect_kind(medpix_dir) == "medpix"
