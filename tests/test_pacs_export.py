"""A PACS-like hospital export through ``radmine mine`` from the command line (issue 17).

The fixture is built here from the files of ``pydicom-data``: one image of
every transfer syntax that package holds (CT, MR, CR, NM, single- and
multi-frame), re-identified into four studies; one study reported only by a
DICOM Structured Report made with pydicom; a cp1252 RIS CSV with hospital
column names whose StudyInstanceUID column is empty (joined by accession
only), citing every image as "(series N, image 1)"; and one RIS report
without images.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pydicom = pytest.importorskip("pydicom")
pytest.importorskip("pydicom.data")

from pydicom.data import get_testdata_file  # noqa: E402
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, generate_uid  # noqa: E402

import radmine  # noqa: E402
from radmine.cli import main  # noqa: E402

#: accession -> (patient, files); one file per transfer syntax at least, multi-frame ones included.
STUDIES = {
    "ACC1001": ("MRN-0001", ["CT_small.dcm", "693_J2KR.dcm", "693_J2KI.dcm", "image_dfl.dcm"]),
    "ACC1002": ("MRN-0002", ["MR_small_implicit.dcm", "MR_small_bigendian.dcm", "emri_small_big_endian.dcm",
                             "MR_small_jpeg_ls_lossless.dcm", "emri_small_jpeg_ls_lossless.dcm", "MR_small_RLE.dcm",
                             "emri_small_RLE.dcm", "MR_small_jp2klossless.dcm", "emri_small.dcm"]),
    "ACC1003": ("MRN-0001", ["RG3_J2KI.dcm", "JPEG-LL.dcm", "JPGExtended.dcm", "JPEGLSNearLossless_16.dcm",
                             "SC_rgb_jpeg_dcmtk.dcm"]),
}
SR_STUDY = ("ACC2001", "MRN-0003", ["MR_small.dcm"])
FINDINGS = ["Subpleural nodule", "Small effusion", "Mild atelectasis", "Calcified granuloma", "Stable scarring",
            "Focal opacity", "Degenerative change", "Small cyst", "Normal appearance"]
FAST = ["--set", "embed.backbone='random_cnn'", "--set", "embed.image_size=32", "--set", "cluster.n_rounds=1",
        "--set", "cluster.finetune=false", "--set", "img2text.epochs=1", "--set", "topics.n_topics=2",
        "--set", "topics.n_subtopics=0", "--set", "topics.passes=1", "--set", "report.n_examples=2",
        # de-identification stays on; the secondary-capture test images of pydicom-data carry no burned-in text
        "--set", "deid.burned_in='keep'"]


def _code(meaning: str, value: str = "1") -> Dataset:
    c = Dataset()
    c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, "99RADMINE", meaning
    return c


def _item(value_type: str, name: str, relation: str = "CONTAINS", **values) -> Dataset:
    it = Dataset()
    it.RelationshipType = relation
    it.ValueType = value_type
    it.ConceptNameCodeSequence = [_code(name)]
    if value_type == "CONTAINER":
        it.ContinuityOfContent = "SEPARATE"
    for key, value in values.items():
        setattr(it, key, value)
    return it


def make_sr(path: Path, *, study_uid: str, patient: str, accession: str) -> Path:
    """A Basic Text SR: findings (TEXT + NUM), an impression (CODE), observer context (skipped)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(path)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID, ds.StudyInstanceUID, ds.AccessionNumber = "SR", patient, study_uid, accession
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[str(path), "series"])
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = [_code("MR Brain Report")]
    ds.ContinuityOfContent = "SEPARATE"
    mv = Dataset()
    mv.NumericValue = "8"
    mv.MeasurementUnitsCodeSequence = [_code("mm", "mm")]
    diameter = _item("NUM", "Diameter", **{"MeasuredValueSequence": [mv]})
    ds.ContentSequence = [
        _item("PNAME", "Recording Observer", relation="HAS OBS CONTEXT", PersonName="Doe^Jane"),
        _item("CONTAINER", "Findings", ContentSequence=[
            _item("TEXT", "Finding", TextValue="Small white matter lesion in the left frontal lobe (series 1, image 1)"),
            diameter,
        ]),
        _item("CONTAINER", "Impression", ContentSequence=[
            _item("CODE", "Diagnosis", ConceptCodeSequence=[_code("Nonspecific white matter lesion")]),
        ]),
    ]
    ds.save_as(path, enforce_file_format=True)
    return path


def _reidentify(src: str, dst: Path, *, patient: str, study_uid: str, accession: str, series: int) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(get_testdata_file(src))
    uid = generate_uid(entropy_srcs=[str(dst)])
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.PatientID, ds.StudyInstanceUID, ds.AccessionNumber = patient, study_uid, accession
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[str(dst), "series"])
    ds.SeriesNumber, ds.InstanceNumber = series, 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(dst)
    return {"image_id": uid, "file": src, "transfer_syntax": str(ds.file_meta.TransferSyntaxUID),
            "frames": int(ds.get("NumberOfFrames", 1) or 1), "modality": str(ds.get("Modality", ""))}


def transfer_syntaxes_in_pydicom_data() -> set[str]:
    """Every transfer syntax of a pydicom-data image file (files pydicom cannot parse skipped)."""
    found = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the two folders get_testdata_files searches (calling it costs ~10 s of hashing)
        folders = {Path(get_testdata_file("CT_small.dcm")).parent, Path(get_testdata_file("RG1_UNCR.dcm")).parent}
        for f in sorted(p for folder in folders for p in folder.rglob("*.dcm")):
            try:
                ds = pydicom.dcmread(f, stop_before_pixels=True)
            except Exception:  # noqa: BLE001 - the package holds deliberately broken files
                continue
            ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
            if ts is not None and ds.get("Rows") and ds.get("Columns"):  # an image (its header says so)
                found.add(str(ts))
    return found


@pytest.fixture(scope="module")
def pacs_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("pacs")
    dicom = root / "dicom"
    images, ris = [], []
    for accession, (patient, files) in STUDIES.items():
        study_uid = generate_uid(entropy_srcs=[accession])
        folder = dicom / patient / accession
        folder.mkdir(parents=True)
        sentences = []
        for k, name in enumerate(files, start=1):
            row = _reidentify(name, folder / f"IM{k:04d}.dcm", patient=patient, study_uid=study_uid,
                              accession=accession, series=k)
            images.append({**row, "accession": accession, "series": k})
            sentences.append(f"{FINDINGS[(k - 1) % len(FINDINGS)]} \u2013 see (series {k}, image 1).")
        ris.append({"Accession No": accession, "Patient MRN": patient, "Study UID": "",
                    "Befundtext": "FINDINGS: " + " ".join(sentences) + "\n\nIMPRESSION: Befund unver\u00e4ndert, "
                                  "Gr\u00f6\u00dfe stabil.",
                    "Exam Date": "20240105"})
    accession, patient, files = SR_STUDY
    study_uid = generate_uid(entropy_srcs=[accession])
    folder = dicom / patient / accession
    folder.mkdir(parents=True)
    row = _reidentify(files[0], folder / "IM0001.dcm", patient=patient, study_uid=study_uid, accession=accession, series=1)
    images.append({**row, "accession": accession, "series": 1})
    make_sr(folder / "SR0001.dcm", study_uid=study_uid, patient=patient, accession=accession)
    ris.append({"Accession No": "ACC9999", "Patient MRN": "MRN-0004", "Study UID": "",
                "Befundtext": "FINDINGS: Outside study \u2013 images not sent. No acute finding.", "Exam Date": "20240106"})
    csv_path = root / "ris_export.csv"
    pd.DataFrame(ris).to_csv(csv_path, index=False, encoding="cp1252")
    return {"root": root, "dicom": dicom, "ris": csv_path, "images": pd.DataFrame(images), "sr_study": study_uid}


COLUMNS = ["--column", "Accession No=accession", "--column", "Patient MRN=patient_id", "--column", "Study UID=study_id",
           "--column", "Befundtext=text", "--column", "Exam Date=study_date"]


def test_fixture_holds_every_transfer_syntax_of_pydicom_data(pacs_export):
    have = set(pacs_export["images"]["transfer_syntax"])
    missing = transfer_syntaxes_in_pydicom_data() - have
    assert not missing, f"add a pydicom-data file with transfer syntax(es) {sorted(missing)} to STUDIES"
    img = pacs_export["images"]
    assert {"CT", "MR", "CR"} <= set(img["modality"])
    assert (img["frames"] > 1).sum() >= 3


def test_every_transfer_syntax_decodes(pacs_export):
    """Each image decodes to finite [0, 1] pixels (all frames of the multi-frame ones)."""
    by_uid = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: p for p in pacs_export["dicom"].rglob("IM*.dcm")}
    for row in pacs_export["images"].itertuples():
        arr = radmine.load_pixels(by_uid[row.image_id])
        expected_ndim = 3 if row.frames > 1 else 2
        assert arr.ndim == expected_ndim, row.file
        assert np.isfinite(arr).all() and arr.min() >= 0.0 and arr.max() <= 1.0, row.file
        assert arr.max() > arr.min(), f"{row.file} ({row.transfer_syntax}) decoded to a constant image"


def test_read_dicom_joins_by_accession_with_one_study_key_and_reads_the_sr(pacs_export):
    corpus = radmine.read_dicom(
        pacs_export["dicom"], reports=pacs_export["ris"], encoding="cp1252", progress=False,
        report_columns={"Accession No": "accession", "Patient MRN": "patient_id", "Study UID": "study_id",
                        "Befundtext": "text", "Exam Date": "study_date"},
    )
    rep = corpus.reports.set_index("report_id")
    assert corpus.n_images == len(pacs_export["images"])
    # the RIS reports took the StudyInstanceUID of the study their accession joined
    img_study = corpus.images.groupby("report_id")["study_id"].first()
    for accession in STUDIES:
        assert rep.loc[accession, "study_id"] == img_study[accession]
        assert rep.loc[accession, "accession"] == accession
    assert "Gr\u00f6\u00dfe" in rep.loc["ACC1001", "text"]
    # the report without images is kept; the SR became the report of its study
    assert "ACC9999" in rep.index and "ACC9999" not in set(corpus.images["report_id"])
    sr = rep.loc[pacs_export["sr_study"]]
    assert sr["report_source"] == "dicom-sr"
    assert sr["text"] == (
        "FINDINGS: Small white matter lesion in the left frontal lobe (series 1, image 1). Diameter: 8 mm."
        "\n\nIMPRESSION: Diagnosis: Nonspecific white matter lesion."
    )
    assert "Doe" not in sr["text"]  # observer context is not report text
    assert not corpus.quarantine["kept"].eq(False).any()
    links = radmine.link_key_images(corpus)
    cited = links[links["method"] != "fallback"] if "method" in links else links
    assert len(cited) == len(pacs_export["images"]) and cited["resolved"].astype(bool).all()


def test_mine_cli_hospital_export_to_report(pacs_export, capsys):
    out = pacs_export["root"] / "out"
    rc = main(["mine", str(pacs_export["dicom"]), "--out", str(out), "--reports", str(pacs_export["ris"]),
               "--encoding", "cp1252", *COLUMNS, "--no-progress", *FAST])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "could not be decoded" not in html and "image not available" not in html
    # every image decoded and embedded
    X = np.load(out / "embed" / "embeddings.npy")
    ids = pd.read_parquet(out / "embed" / "image_ids.parquet")
    assert len(ids) == len(pacs_export["images"]) and np.isfinite(X).all()
    # every citation linked, the SR's included (ids are pseudonyms after de-identification)
    links = pd.read_parquet(out / "text" / "links.parquet")
    cited = links[links["method"] != "fallback"] if "method" in links else links
    assert len(cited) == cited["image_id"].nunique() == len(pacs_export["images"])
    assert cited["resolved"].astype(bool).all()
    assert set(cited["image_id"]) == set(ids["image_id"])
    corpus = radmine.Corpus.load(out / "corpus")
    assert corpus.n_reports == len(STUDIES) + 2  # three RIS reports with images, the SR, the report without images


def test_mine_cli_without_encoding_names_the_flag(pacs_export, capsys):
    rc = main(["mine", str(pacs_export["dicom"]), "--out", str(pacs_export["root"] / "out-utf8"),
               "--reports", str(pacs_export["ris"]), *COLUMNS, "--no-progress", "--steps", "deid,read"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "cannot decode as utf-8" in err and "--encoding" in err


def test_label_cli_reads_the_dicom_export(pacs_export, tmp_path, capsys):
    out = tmp_path / "labels.csv"
    rc = main(["label", str(pacs_export["dicom"]), "--out", str(out), "--vocabulary", "ct_mr",
               "--reports", str(pacs_export["ris"]), "--encoding", "cp1252", *COLUMNS])
    assert rc == 0, capsys.readouterr().err
    labels = pd.read_csv(out, index_col=0)
    assert set(labels.index) >= set(STUDIES) | {"ACC9999"}
