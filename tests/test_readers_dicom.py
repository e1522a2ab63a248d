"""radmine.read_dicom on pydicom's real test files, its dicomdirtests DICOMDIR, and bad files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file  # noqa: E402

import radmine  # noqa: E402
from radmine.readers.dicom import plane_from_orientation, read_instance  # noqa: E402


def _file(name):
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"pydicom test file {name} not installed (pydicom-data)")
    return Path(path)


def _dropped(c):
    q = c.quarantine
    return int((~q["kept"].astype(bool)).sum()) if len(q) else 0


def test_plane_from_orientation():
    assert plane_from_orientation([1, 0, 0, 0, 1, 0]) == "axial"
    assert plane_from_orientation([1, 0, 0, 0, 0, -1]) == "coronal"
    assert plane_from_orientation([0, 1, 0, 0, 0, -1]) == "sagittal"
    assert plane_from_orientation([1, 0, 0, 0, 0.7071, 0.7071]) == "oblique"
    assert plane_from_orientation(None) is None
    assert plane_from_orientation([1, 0, 0]) is None


def test_dicomdir_matches_pydicom_fileset():
    from pydicom.fileset import FileSet

    dicomdir = _file("DICOMDIR")
    fs = FileSet(pydicom.dcmread(dicomdir))
    expected = {}
    for inst in fs:
        ds = pydicom.dcmread(inst.path, stop_before_pixels=True)
        expected[str(ds.SOPInstanceUID)] = ds
    c = radmine.read_dicom(dicomdir, progress=False)
    assert c.n_images == len(expected) == 31
    assert len(c.quarantine) == 0
    for row in c.images.itertuples():
        ds = expected[row.image_id]
        assert row.patient_id == ds.PatientID
        assert row.study_id == ds.StudyInstanceUID
        assert row.series_number == int(ds.SeriesNumber)
        assert row.instance_number == int(ds.InstanceNumber)
        assert row.modality == ds.Modality
        assert row.rows == ds.Rows and row.columns == ds.Columns
        assert Path(row.path).is_file()
    # one stub report per study, text "", images point to their study's report
    studies = {ds.StudyInstanceUID for ds in expected.values()}
    assert set(c.reports["study_id"]) == studies
    assert (c.reports["text"] == "").all()
    assert (c.images["report_id"] == c.images["study_id"]).all()
    assert set(c.images["modality"]) == {"CR", "CT", "MR"}
    assert {"axial", "coronal", "sagittal"} <= set(c.images["plane"].dropna())
    assert c.images.loc[c.images["modality"] == "CR", "view"].notna().all()


def test_walk_dicomdirtests_folder_counts_reconcile():
    folder = _file("DICOMDIR").parent
    files = [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")]
    c = radmine.read_dicom(folder, progress=False)
    assert c.n_images + _dropped(c) == len(files)
    reasons = c.quarantine.set_index(c.quarantine["item"].map(lambda p: Path(p).relative_to(folder).as_posix()))["reason"]
    assert reasons["DICOMDIR"].startswith("DICOMDIR (directory index")
    assert reasons["README.txt"].startswith("not a DICOM file")
    # TINY_ALPHA holds header-only CT objects
    tiny = c.quarantine[c.quarantine["item"].str.contains("SE000000")]
    assert len(tiny) and tiny["reason"].str.startswith("no pixel data (CT Image Storage)").all()
    assert c.n_images == 31


@pytest.mark.parametrize(
    "name, modality, n_frames",
    [("CT_small.dcm", "CT", 1), ("MR_small.dcm", "MR", 1), ("RG1_UNCR.dcm", "CR", 1),
     ("emri_small.dcm", "MR", 10), ("US1_UNCR.dcm", "US", 1)],
)
def test_single_real_files(name, modality, n_frames):
    path = _file(name)
    c = radmine.read_dicom(path, progress=False)
    assert c.n_images == 1 and c.n_reports == 1
    row = c.images.iloc[0]
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert row["image_id"] == ds.SOPInstanceUID
    assert row["modality"] == modality and row["n_frames"] == n_frames
    assert row["photometric"] == ds.PhotometricInterpretation
    if "PixelSpacing" in ds:
        assert row["pixel_spacing"] == [float(x) for x in ds.PixelSpacing]


def test_pydicom_data_folders_read_or_quarantined_with_reason():
    """Every file of pydicom's test folders is read or quarantined (reason given), never a crash."""
    for folder in {_file("CT_small.dcm").parent, _file("RG1_UNCR.dcm").parent}:
        files = [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")]
        c = radmine.read_dicom(folder, progress=False)
        n_sr = int((c.reports["report_source"] == "dicom-sr").sum())
        assert c.n_images + _dropped(c) + n_sr == len(files)
        assert c.quarantine["reason"].str.len().gt(10).all()
        assert c.images["image_id"].is_unique
    reasons = {}
    for name in ("MR_truncated.dcm", "README.txt", "rtplan.dcm", "reportsi.dcm", "emri_small_jpeg_2k_lossless_too_short.dcm"):
        row, reason = read_instance(_file(name))
        assert row is None
        reasons[name] = reason
    assert reasons["MR_truncated.dcm"].startswith("truncated DICOM file: pixel data needs 8192 bytes")
    assert reasons["README.txt"].startswith("not a DICOM file")
    assert reasons["rtplan.dcm"].startswith("no pixel data (RT Plan Storage)")
    assert reasons["reportsi.dcm"].startswith("structured report (SR): read as the report text")
    assert reasons["emri_small_jpeg_2k_lossless_too_short.dcm"].startswith("truncated DICOM file")
    # deflated transfer syntax is not mistaken for a truncated file
    row, reason = read_instance(_file("image_dfl.dcm"))
    assert reason is None and row["rows"] == 512


def test_bad_files_quarantined_never_crash(tmp_path):
    ct = _file("CT_small.dcm")
    raw = ct.read_bytes()
    shutil.copy(ct, tmp_path / "good.dcm")
    shutil.copy(_file("MR_small.dcm"), tmp_path / "sub_mr.dcm")
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "empty.dcm").write_bytes(b"")
    (tmp_path / "cut_pixels.dcm").write_bytes(raw[:-1000])
    (tmp_path / "cut_header.dcm").write_bytes(raw[:300])
    shutil.copy(ct, tmp_path / "zz_duplicate.dcm")
    c = radmine.read_dicom(tmp_path, progress=False)
    assert c.n_images == 2
    q = c.quarantine.set_index(c.quarantine["item"].map(lambda p: Path(p).name))["reason"]
    assert q["notes.txt"].startswith("not a DICOM file")
    assert q["empty.dcm"] == "empty file (0 bytes)"
    assert q["cut_pixels.dcm"].startswith("truncated DICOM file: pixel data needs")
    assert q["cut_header.dcm"].startswith("no pixel data")
    assert q["zz_duplicate.dcm"].startswith("duplicate SOPInstanceUID (same as")
    assert c.n_images + _dropped(c) == 7


def test_missing_path_and_bad_dicomdir(tmp_path):
    with pytest.raises(FileNotFoundError, match="read_dicom: path not found"):
        radmine.read_dicom(tmp_path / "nope", progress=False)
    bad = tmp_path / "DICOMDIR"
    bad.write_bytes(b"garbage" * 50)
    with pytest.raises(ValueError, match=r"DICOMDIR: not a readable DICOMDIR"):
        radmine.read_dicom(bad, progress=False)


def test_reports_joined_by_study_uid_and_accession(tmp_path):
    ds = pydicom.dcmread(_file("CT_small.dcm"))
    ds.StudyInstanceUID = "1.2.3.4.100"
    ds.AccessionNumber = "ACC-1"
    ds.SOPInstanceUID = "1.2.3.4.100.1"
    ds.save_as(tmp_path / "a.dcm")
    ds.StudyInstanceUID = "1.2.3.4.200"
    ds.AccessionNumber = "ACC-2"
    ds.SOPInstanceUID = "1.2.3.4.200.1"
    ds.save_as(tmp_path / "b.dcm")
    ds.StudyInstanceUID = "1.2.3.4.300"
    ds.AccessionNumber = "ACC-3"
    ds.SOPInstanceUID = "1.2.3.4.300.1"
    ds.save_as(tmp_path / "c.dcm")
    reports = pd.DataFrame(
        {"report_id": ["R1", "R2", "R9"], "study_id": ["1.2.3.4.100", "S-2", "S-9"],
         "accession": ["X", "ACC-2", "ACC-9"], "text": ["FINDINGS: one.", "FINDINGS: two.", "FINDINGS: nine."]}
    )
    c = radmine.read_dicom(tmp_path, reports=reports, progress=False)
    by_study = dict(zip(c.images["study_id"], c.images["report_id"]))
    assert by_study == {"1.2.3.4.100": "R1", "1.2.3.4.200": "R2", "1.2.3.4.300": "1.2.3.4.300"}
    rep = c.reports.set_index("report_id")
    assert rep.loc["R1", "text"] == "FINDINGS: one."
    assert rep.loc["1.2.3.4.300", "text"] == ""  # stub for the study without a report
    assert "R9" in rep.index  # reports without images are kept
    # the same from a CSV file through read_reports, with a column mapping
    csv = tmp_path / "reports.csv"
    reports.rename(columns={"report_id": "RID", "text": "Body"}).to_csv(csv, index=False)
    os.makedirs(tmp_path / "dcm")
    for f in ("a.dcm", "b.dcm"):
        shutil.move(tmp_path / f, tmp_path / "dcm" / f)
    c2 = radmine.read_dicom(tmp_path / "dcm", reports=csv, report_columns={"RID": "report_id", "Body": "text"},
                            progress=False)
    assert sorted(c2.images["report_id"]) == ["R1", "R2"]


def test_dicom_corpus_round_trip(tmp_path):
    c = radmine.read_dicom(_file("DICOMDIR"), progress=False)
    c.save(tmp_path / "saved")
    back = radmine.Corpus.load(tmp_path / "saved")
    for key in c.tables:
        pd.testing.assert_frame_equal(back.tables[key], c.tables[key], check_dtype=True)
    assert isinstance(back.images["pixel_spacing"].iloc[0], list)


def test_force_reads_raw_datasets_without_preamble():
    path = _file("OT-PAL-8-face.dcm")
    row, reason = read_instance(path)
    assert row is None and reason.startswith("not a DICOM file")
    row, reason = read_instance(path, force=True)
    assert reason is None and row["modality"] == "OT" and row["photometric"] == "PALETTE COLOR"
    row, reason = read_instance(_file("ExplVR_LitEndNoMeta.dcm"), force=True)
    assert row is None and reason.startswith("no pixel data (RT Ion Plan Storage)")
    readme = read_instance(_file("README.txt"), force=True)
    assert readme[0] is None and readme[1]
