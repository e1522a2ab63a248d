"""End to end: a PHI-laden PACS/RIS export through ``radmine mine``; nothing injected may reach the output folder."""

from __future__ import annotations

import copy
import logging
import re

import pandas as pd
import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file  # noqa: E402

from radmine.cli import main  # noqa: E402

from .conftest import FAST_MINE  # noqa: E402

FIRST = ["Jane", "Amadou", "Ingrid", "Tobias", "Rosalind", "Kenji", "Olufemi", "Marisol", "Henrik", "Priya", "Dmitri", "Sunniva"]
LAST = ["Pemberton", "Okonkwo", "Vasquez-Laird", "Thorvaldsen", "Achterberg", "Nakashima", "Abernathy", "Delacroix",
        "Quarshie", "Lindqvist", "Szymanski", "Haverkamp"]
BODY = [
    "Stable {size} cm nodule in the right upper lobe, see series 1, image 1. No effusion.",
    "Hepatic lesion measuring {size} cm (series 1, image 1), likely hemangioma. Kidneys normal.",
    "Mass in the pancreatic head {size} cm, see series 1, image 1. Baker cyst behind the knee incidentally noted.",
    "Nodular opacity of {size} cm in the left lower lobe on series 1, image 1. Paget disease of the pelvis.",
]


def _export(root):
    """A DICOM folder (CT key images, one ultrasound) named after patients, and a RIS table full of PHI."""
    dcm = root / "PACS_EXPORT_PEMBERTON_JANE"  # export folders are often named after a patient
    rows, secrets = [], set()
    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for i in range(12):
        first, last = FIRST[i], LAST[i]
        mrn, acc = f"MRN{4410020 + i}", f"ACC{9923400 + i}"
        folder = dcm / f"{last.upper()}_{first.upper()}_{mrn}"
        folder.mkdir(parents=True)
        ds = copy.deepcopy(base)
        ds.PatientName, ds.PatientID, ds.AccessionNumber = f"{last.upper()}^{first.upper()}", mrn, acc
        ds.StudyInstanceUID = f"1.2.826.0.1.3680043.8.498.{100 + i}"
        ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.8.498.{100 + i}.1"
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.{100 + i}.1.1"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesNumber, ds.InstanceNumber = 1, 1
        ds.StudyDate, ds.InstitutionName = "20210304", "Mercy Ridgeview Hospital"
        ds.ReferringPhysicianName = "HAVERKAMP^SUNNIVA"
        ds.save_as(folder / "IM0001.dcm")
        if i % 4 == 0:  # an ultrasound of the same study: must be quarantined (burned-in text)
            us = copy.deepcopy(ds)
            us.Modality, us.SOPInstanceUID = "US", ds.SOPInstanceUID + ".9"
            us.file_meta.MediaStorageSOPInstanceUID = us.SOPInstanceUID
            us.InstanceNumber = 2
            us.save_as(folder / "US0001.dcm")
        phone, email = f"(555) 201-{3300 + i}", f"{first.lower()}.{last.lower()}@ridgeview-health.org"
        text = (f"PATIENT: {last.upper()}, {first.upper()}  MRN: {mrn}  DOB: 0{1 + i % 9}/1{i % 9}/1948\n"
                f"EXAM: CT chest. Comparison 3/4/2020 from Mercy Ridgeview Hospital.\n"
                f"FINDINGS: {BODY[i % 4].format(size=1.1 + i / 10)} The patient is a 9{i % 10}-year-old.\n"
                f"IMPRESSION: Findings discussed with Dr. {FIRST[(i + 3) % 12]} {LAST[(i + 3) % 12]} at {phone} on 3/4/2021. "
                f"Questions: {email}.\nElectronically signed by: {FIRST[(i + 5) % 12]} {LAST[(i + 5) % 12]}, MD")
        rows.append({"AccessionNumber": acc, "MRN": mrn, "PatientName": f"{last}, {first}", "Phone": phone,
                     "ReportText": text})
        secrets.update({first, last, mrn, acc, phone, email, str(4410020 + i), str(9923400 + i)})
    secrets.update({dcm.name, "Mercy Ridgeview", "3/4/2021", "3/4/2020", "20210304", "1.2.826.0.1.3680043.8.498"})
    ris = root / "ris_export.csv"
    pd.DataFrame(rows).to_csv(ris, index=False)
    return dcm, ris, secrets


def _strings_of(path):
    """Everything a reader of ``path`` could see: decoded tables and headers, and the raw bytes."""
    raw = path.read_bytes()
    yield raw.decode("latin-1")
    if path.suffix == ".parquet":
        yield pd.read_parquet(path).to_csv()
    elif path.suffix == ".dcm":
        yield str(pydicom.dcmread(path))


@pytest.mark.slow
def test_phi_export_through_mine_leaves_no_identifier(tmp_path, caplog):
    dcm, ris, secrets = _export(tmp_path / "in")
    out = tmp_path / "out"
    caplog.set_level(logging.DEBUG)
    args = ["-v", "mine", str(dcm), "--reports", str(ris), "--out", str(out), "--no-progress",
            "--column", "AccessionNumber=accession", "--column", "MRN=patient_id", "--column", "ReportText=text",
            "--column", "PatientName=patient_name", "--column", "Phone=phone"]
    for key, value in FAST_MINE.items():
        args += ["--set", f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}"]
    args += ["--set", 'deid.key="a test secret"']
    assert main(args) == 0
    (out / "run.log").write_text(caplog.text)  # the logs are part of what leaves
    leaks = []
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) > 10 and (out / "report.html").is_file()
    for path in files:
        for text in _strings_of(path):
            leaks += [(str(path.relative_to(out)), s) for s in secrets if s in text]
    assert not leaks, sorted(set(leaks))[:20]
    assert "a test secret" not in (out / "config.json").read_text()
    # what had to survive: eponyms, citations and the report <-> image joins
    from radmine import Corpus

    corpus = Corpus.load(out / "corpus")
    assert corpus.n_reports == 12 and corpus.n_images == 12  # 3 ultrasound images quarantined
    assert set(corpus.images["report_id"]) == set(corpus.reports["report_id"])
    assert corpus.reports["text"].str.contains("Baker cyst").sum() == 3
    assert corpus.reports["text"].str.contains("series 1, image 1").all()
    q = pd.read_csv(out / "quarantine.csv")
    assert q["reason"].str.contains("modality US").sum() == 3
    links = pd.read_parquet(out / "text" / "links.parquet")
    assert links["resolved"].astype(bool).sum() >= 10
    # offsets of every later table are offsets of the scrubbed text
    sentences = pd.read_parquet(out / "text" / "sentences.parquet")
    text_of = corpus.reports.set_index("report_id")["text"]
    assert all(text_of[r.report_id][r.start:r.end] == r.text for r in sentences.itertuples())
    spans = pd.read_parquet(out / "deid" / "phi_spans.parquet")
    assert {"NAME", "ID", "DATE", "PHONE", "EMAIL", "AGE", "HOSPITAL"} <= set(spans["label"])
    html = (out / "report.html").read_text()
    assert not re.search(r"(?<![\w.])/(?:tmp|home|data|work)/", html)  # no absolute file paths in the HTML report
    # de-identification is a step of its own, first, and the only one that reads SOURCE
    import json

    manifest = json.loads((out / "manifest.json").read_text())
    assert json.loads((out / "config.json").read_text())["run"]["steps"][:2] == ["deid", "read"]
    assert manifest["steps"]["deid"]["info"]["method"] == "surrogate"
    assert manifest["steps"]["deid"]["info"]["images_quarantined"] == 3
    assert manifest["steps"]["read"]["info"]["deid"] == "surrogate"
    assert "not recorded" in manifest["source"]
    assert "<b>deid</b>" in html or ">deid<" in html
    describe = pd.read_parquet(out / "img2text" / "describe.parquet")
    assert len(describe) and not describe["path"].str.startswith("/").any()  # relative to the output folder
    assert all((out / p).is_file() for p in describe["path"])
