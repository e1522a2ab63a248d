"""De-identification: PHI found per kind, eponyms and clinical numbers kept, surrogates consistent, DICOM profile."""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import pytest

import radmine
from radmine.deid import PHIDetector
from radmine.deid.reports import Pseudonymizer, shift_date


@pytest.fixture(scope="module")
def detector():
    return PHIDetector()


def _labels(spans):
    return [(s.label, s.text) for s in spans]


# -- one test per PHI kind ------------------------------------------------------------
@pytest.mark.parametrize("text, label, phi", [
    ("Findings discussed with Dr. Jane Smith at the bedside.", "NAME", "Jane Smith"),
    ("PATIENT: DOE, JANE   MRN: 00123456", "NAME", "DOE, JANE"),
    ("Electronically signed by: Robert K. Johnson, MD", "NAME", "Robert K. Johnson"),
    ("Results called to Nurse Ratched.", "NAME", "Ratched"),
    ("Report read back by Alisha Okonkwo-Baptiste, RN.", "NAME", "Alisha Okonkwo-Baptiste"),
    ("Patient name: SMITH^JOHN^A", "NAME", "SMITH^JOHN^A"),
    ("MRN: 00123456", "ID", "00123456"),
    ("Accession #RAD2021-00451", "ID", "RAD2021-00451"),
    ("SSN 123-45-6789 on file.", "ID", "123-45-6789"),
    ("Order number 88812345 placed.", "ID", "88812345"),
    ("Call (555) 201-3344 with questions.", "PHONE", "(555) 201-3344"),
    ("Reading room 555.201.3344 ext. 4410", "PHONE", "555.201.3344 ext. 4410"),
    ("Please page 4-5521 when done.", "PHONE", "4-5521"),
    ("Questions to jane.smith@mercy-health.org please.", "EMAIL", "jane.smith@mercy-health.org"),
    ("Protocol at https://intranet.mercy.org/rad/ct-protocols today.", "URL", "https://intranet.mercy.org/rad/ct-protocols"),
    ("Home: 1234 Maple Avenue, Apt 5B.", "ADDRESS", "1234 Maple Avenue, Apt 5B"),
    ("Lives in Springfield, IL 62704 with family.", "ADDRESS", "Springfield, IL 62704"),
    ("A 93-year-old woman with cough.", "AGE", "93"),
    ("Age: 101. Dyspnea.", "AGE", "101"),
    ("Transferred from Mercy General Hospital for CT.", "HOSPITAL", "Mercy General Hospital"),
    ("Outside films from St. Elsewhere Medical Center reviewed.", "HOSPITAL", "St. Elsewhere Medical Center"),
    ("Location: van der Kint Clinic", "HOSPITAL", "van der Kint Clinic"),
])
def test_each_phi_kind_is_found(detector, text, label, phi):
    found = _labels(detector.find(text))
    assert (label, phi) in found, found


@pytest.mark.parametrize("text", [
    "3/4/2021", "03/04/21", "2021-03-04", "2021/03/04", "20210304", "March 4, 2021", "Mar 4, 2021", "4 March 2021",
    "04-Mar-2021", "4th of March, 2021", "March 2021", "Thursday, March 4, 2021 10:32 AM", "2021-03-04T10:32:00",
    "MAR 04 2021",
])
def test_every_date_format_is_found_and_shifted(detector, text):
    spans = detector.find(f"Compared with the study of {text}, stable.")
    assert [s.label for s in spans] == ["DATE"] and spans[0].text.startswith(text.split(",")[0].split(" ")[0])
    assert text in f"{spans[0].text}" or spans[0].text in text
    shifted = shift_date(spans[0].text, -100)
    assert shifted is not None and shifted != spans[0].text


def test_a_year_alone_and_ages_under_90_stay(detector):
    assert detector.find("Prior surgery in 2015. An 89-year-old man; a 45 yo woman.") == []


# -- what must survive ---------------------------------------------------------------
EPONYMS = [
    "Hodgkin lymphoma", "Non-Hodgkin lymphoma", "Paget disease of bone", "Paget's disease", "Graves disease",
    "Baker cyst", "Baker's cyst", "Kerley B lines", "Hill-Sachs lesion", "Chiari malformation", "Arnold-Chiari malformation",
    "Wilms tumor", "Crohn disease", "Alzheimer disease", "Bankart lesion", "Colles fracture", "Smith fracture",
    "Jones fracture", "Schmorl node", "Morison pouch", "circle of Willis", "Virchow-Robin spaces", "Meckel diverticulum",
    "Budd-Chiari syndrome", "Klatskin tumor", "West Nile virus", "Lyme disease", "Ewing sarcoma", "Kaposi sarcoma",
    "Zenker diverticulum", "Legg-Calve-Perthes disease", "Osgood-Schlatter disease", "Dandy-Walker malformation",
    "Hounsfield units", "Fleischner Society", "Swan-Ganz catheter", "Foley catheter", "Salter-Harris II fracture",
]


@pytest.mark.parametrize("eponym", EPONYMS)
def test_eponyms_survive(detector, eponym):
    text = f"Findings are consistent with {eponym}. Known {eponym} since childhood."
    assert detector.find(text) == [], _labels(detector.find(text))


@pytest.mark.parametrize("text", [
    "See series 3, image 45 and series 601, image 112.",
    "Key image: se 4 im 27. Series 2 image 30-34.",
    "Disc bulge at L4-5 and C5/C6, T12 compression.",
    "Mass measures 3.2 x 4.5 x 2.1 cm; 10 mm nodule.",
    "Imaged on a 1.5 T magnet after 100 mL Omnipaque 350; 20 mCi Tc-99m.",
    "DLP 450 mGy-cm, CTDIvol 12.4 mGy, 120 kVp.",
    "Follow-up in 3 months, 6-12 months per Fleischner.",
    "Heart rate 72 bpm; BP 120/80 mmHg.",
    "No XXXX. Stable XXXX XXXX opacity.",
])
def test_clinical_numbers_and_citations_survive(detector, text):
    assert detector.find(text) == [], _labels(detector.find(text))


def test_dr_before_an_eponym_word_is_still_a_name(detector):
    assert ("NAME", "Paget") in _labels(detector.find("Discussed with Dr. Paget."))


def test_a_name_found_once_is_found_everywhere(detector):
    spans = _labels(detector.find("Discussed with Dr. Ngozi Abernathy-Vance. Abernathy-Vance agreed."))
    assert spans.count(("NAME", "Abernathy-Vance")) == 1 and ("NAME", "Ngozi Abernathy-Vance") in spans


# -- the shortcuts that make the detector fast change nothing -------------------------------
def test_trigger_words_are_read_from_the_rules():
    from radmine.deid import text as T

    assert T._first_words(r"(?:Drs?|Doctor|Mr)\b\.?") == {"dr", "drs", "doctor", "mr"}
    words = T._first_words(T._NAME_LABELS)
    assert {"patient", "referring", "electronically", "signed", "staff", "radiologist", "cc"} <= words
    assert not any(w.startswith("electronically") and w != "electronically" for w in words)  # a word ends at a space
    assert {"mrn", "mr", "acc", "accession", "i", "ssn"} <= T._first_words(T._ID_LABELS)
    with pytest.raises(ValueError, match="no leading words"):
        T._first_words(r"\d+")


DENSE = (
    "PATIENT: DOE, JANE   MRN: 00123456   DOB: 03/14/1931   Acc#: RAD2021-00451\n"
    "Referring physician: Dr. Amadou Okonkwo (555) 201-3344 pager 4-5521. Age: 93.\n"
    "EXAM: CT chest, Thursday, March 4, 2021 10:32 AM. Comparison 2/3/2020 and 4th of March, 2021.\n"
    "FINDINGS: Baker cyst. Hodgkin lymphoma. Series 3, image 45. Nodule 3.2 x 4.5 cm at L4-5.\n"
    "Lives at 1234 Maple Avenue, Apt 5B, Springfield, IL 62704; PO Box 77. Visit https://mercy.org/x.\n"
    "Transferred from St. Elsewhere Medical Center and University Hospital of Leeds on Christmas Day.\n"
    "IMPRESSION: Findings discussed with Nurse Ratched and Jane Roe, RN by telephone on 20210304.\n"
    "SSN 123-45-6789. Order number 88812345. Mail jane.roe@mercy-health.org or +44 20 7946 0958.\n"
    "Electronically signed by: Robert K. Johnson, MD. cc: SMITH^JOHN^A. A ninety-two year old.\n"
)


def test_triggers_skip_only_text_where_no_rule_matches(monkeypatch):
    from radmine.deid import text as T

    texts = [DENSE, DENSE.lower(), DENSE.upper(), DENSE.replace("\n", " "), "Report read back by Alisha Okonkwo-Baptiste, RN.",
             "Home: 1234 Maple Avenue, Apt 5B.", "Location: van der Kint Clinic", "Compared with the study of 04-Mar-2021, stable."]
    fast = PHIDetector(ner=False).find_many(texts)
    assert sum(map(len, fast)) > 40
    # every rule over the whole text: no trigger, no window
    brute = [(label, name, rx, group, None, None, lowered, False)
             for label, name, rx, group, _trigger, _window, lowered, _anchored in T._rules()]
    monkeypatch.setattr(T, "_rules", lambda: brute)
    monkeypatch.setattr(T, "_word_triggers", lambda: {})
    assert PHIDetector(ner=False).find_many(texts) == fast


def test_find_phi_spans_point_into_the_text():
    text = "Dr. Jane Roe (555) 201-3344 on 3/4/2021."
    spans = radmine.find_phi(text)
    assert spans and all(text[s.start:s.end] == s.text for s in spans)
    assert [s.label for s in spans] == ["NAME", "PHONE", "DATE"]
    assert spans[0].source.startswith("name-") and spans[2].source.startswith("date-")
    with pytest.raises(TypeError, match="text must be a str, got int"):
        radmine.find_phi(3)


def test_detector_parameters_are_checked():
    with pytest.raises(ValueError, match=r"'labels' parameter of PHIDetector must be one of"):
        PHIDetector(labels=["NAMES"]).find("x")
    with pytest.raises(TypeError, match=r"'keep' parameter of PHIDetector must be a list of strings"):
        PHIDetector(keep="Acme").find("x")
    only_dates = PHIDetector(labels=["DATE"], ner=False)
    assert _labels(only_dates.find("Dr. Roe on 3/4/2021")) == [("DATE", "3/4/2021")]
    keep = PHIDetector(keep=["Zorblat scanner"], ner=False)
    assert keep.find("Imaged on the Zorblat scanner.") == []


# -- deidentify_reports ----------------------------------------------------------------
@pytest.fixture
def reports():
    return pd.DataFrame({
        "report_id": ["r1", "r2", "r3"],
        "patient_id": ["p1", "p1", "p2"],
        "study_date": ["20210304", "20210404", "20200101"],
        "patient_name": ["DOE^JANE", "DOE^JANE", "ROE^RICHARD"],
        "phone": ["555-201-3344", "555-201-3344", "555-000-1111"],
        "text": [
            "Discussed with Dr. Jane Smith at (555) 201-3344 on 3/4/2021. Paget disease. See series 3, image 45.",
            "Dr. Smith notified on 4/3/2021. MRN 1234567. Prior 3/4/2021.",
            "Discussed with Dr. Jane Smith on 3/4/2021.",
        ],
    })


def test_surrogates_are_consistent_within_a_patient_and_keep_intervals(reports):
    with pytest.warns(UserWarning, match=r"dropped contact column\(s\) \['phone'\]"):
        clean, spans = radmine.deidentify_reports(reports, random_state=0)
    assert "phone" not in clean.columns
    t1, t2, t3 = clean["text"]
    for t in (t1, t2, t3):
        assert "Smith" not in t and "3/4/2021" not in t and "201-3344" not in t
    assert "Paget disease" in t1 and "series 3, image 45" in t1
    fake = re.search(r"Dr\. (\w+ \w+) at", t1).group(1)
    assert f"Dr. {fake.split()[1]} notified" in t2  # "Smith" alone -> the same surrogate family name
    other = re.search(r"Dr\. (\w+ \w+) on", t3).group(1)
    assert other != fake  # another patient, another surrogate
    # one offset per patient: the 30-day interval between the two dates of p1 survives
    dates = [dt.datetime.strptime(d, "%m/%d/%Y") for d in re.findall(r"\d+/\d+/\d{4}", t1 + " " + t2)]
    assert (dates[1] - dates[0]).days == 30 and dates[2] == dates[0]
    shifted = pd.to_datetime(clean["study_date"], format="%Y%m%d")
    assert (shifted[1] - shifted[0]).days == 31
    assert clean["patient_name"][0] == clean["patient_name"][1] != "DOE^JANE" and "^" in clean["patient_name"][0]
    assert clean["patient_id"][0] == clean["patient_id"][1] != "p1"
    # span offsets are offsets of the scrubbed text
    for r in spans.itertuples():
        text = clean.set_index("report_id").loc[r.report_id, r.column]
        assert 0 <= r.start < r.end <= len(text)
    assert set(spans.columns) >= {"report_id", "start", "end", "label"}
    # same key -> same output; another key -> other surrogates
    again, _ = radmine.deidentify_reports(reports.drop(columns="phone"), random_state=0)
    assert again["text"].tolist() == clean["text"].tolist()
    other_key, _ = radmine.deidentify_reports(reports.drop(columns="phone"), key="another secret")
    assert other_key["text"][0] != clean["text"][0]


@pytest.mark.parametrize("method, token", [("mask", "XXXX"), ("tag", "[NAME]")])
def test_mask_and_tag(reports, method, token):
    clean, spans = radmine.deidentify_reports(reports.drop(columns="phone"), method=method, random_state=0)
    assert token in clean["text"][0] and "Smith" not in clean["text"][0]
    r = spans[(spans.report_id == clean.report_id[0]) & (spans.label == "NAME")].iloc[0]
    assert clean["text"][0][r.start:r.end] == token


def test_deidentify_reports_errors(reports):
    with pytest.raises(ValueError, match=r"'method' parameter of deidentify_reports must be one of"):
        radmine.deidentify_reports(reports, method="blur")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['text'\]"):
        radmine.deidentify_reports(reports.drop(columns="text"))
    with pytest.raises(TypeError, match="must be a pandas DataFrame, got list"):
        radmine.deidentify_reports([1, 2])
    with pytest.raises(TypeError, match="'key' parameter of Pseudonymizer must be a str or bytes"):
        Pseudonymizer(key=5)


def test_pseudonyms_keep_uids_uids():
    pz = Pseudonymizer("k")
    assert pz.pseudonym("1.2.840.113619.2.55.3.1234") == pz.uid("1.2.840.113619.2.55.3.1234")
    assert pz.uid("1.2.3.4.5").startswith("2.25.") and len(pz.uid("1.2.3.4.5")) <= 64
    assert pz.pseudonym("MRN001", "patient") == pz.pseudonym("MRN001", "patient") != pz.pseudonym("MRN002", "patient")
    assert -730 <= pz.date_offset("p1") <= -62


# -- DICOM -----------------------------------------------------------------------------
def _dicom(**fields):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for k, v in fields.items():
        setattr(ds, k, v)
    return ds


def test_dicom_basic_profile_shifts_dates_and_remaps_ids_consistently():
    from radmine.deid.dicom import deidentify_dicom

    ds = _dicom(PatientName="DOE^JANE", PatientID="MRN0099887", AccessionNumber="ACC7788", StudyDate="20210304",
                InstitutionName="Mercy General Hospital", PatientBirthDate="19500102", ReferringPhysicianName="ROE^R")
    ds.add_new(0x00091001, "LO", "private secret")
    study = ds.StudyInstanceUID
    pz = Pseudonymizer("k")
    deidentify_dicom(ds, pseudonymizer=pz)
    assert str(ds.PatientName) == "" and str(ds.ReferringPhysicianName) == "" and ds.PatientBirthDate == ""
    assert "InstitutionName" not in ds and 0x00091001 not in ds
    assert ds.PatientID == pz.pseudonym("MRN0099887", "patient") and ds.AccessionNumber == pz.pseudonym("ACC7788", "accession")
    assert ds.StudyInstanceUID == pz.uid(study) == pz.pseudonym(study, "study")
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"  # registered class UIDs stay
    shifted = dt.datetime.strptime(ds.StudyDate, "%Y%m%d") - dt.datetime(2021, 3, 4)
    assert shifted.days == pz.date_offset("MRN0099887")
    assert ds.PatientIdentityRemoved == "YES" and ds.LongitudinalTemporalInformationModified == "MODIFIED"
    with pytest.raises(ValueError, match=r"'dates' parameter of deidentify_dicom must be one of"):
        deidentify_dicom(ds, dates="keep")


@pytest.mark.parametrize("fields, reason", [
    ({"BurnedInAnnotation": "YES"}, "BurnedInAnnotation"),
    ({"Modality": "US"}, "modality US"),
    ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}, "Secondary Capture"),
])
def test_burned_in_images_are_named(fields, reason):
    from radmine.deid.dicom import burned_in_reason

    assert reason in burned_in_reason(_dicom(**fields))
    assert burned_in_reason(_dicom()) is None


def test_deidentify_corpus_quarantines_burned_in_and_rewrites_files(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    src = tmp_path / "DOE_JANE"
    src.mkdir()
    _dicom(PatientName="DOE^JANE", PatientID="MRN0099887", AccessionNumber="ACC7788").save_as(src / "ct.dcm")
    us = _dicom(PatientID="MRN0099887", AccessionNumber="ACC7788", Modality="US")
    us.SOPInstanceUID = us.SOPInstanceUID + ".9"
    us.save_as(src / "us.dcm")
    csv = tmp_path / "ris.csv"
    pd.DataFrame({"accession": ["ACC7788"], "patient_id": ["MRN0099887"], "report_id": ["ACC7788"],
                  "text": ["Discussed with Dr. Jane Smith on 3/4/2021. See series 1, image 1."]}).to_csv(csv, index=False)
    corpus = radmine.read_corpus(src, reports=csv, progress=False)
    clean = radmine.deidentify_corpus(corpus, out=tmp_path / "out", random_state=0)
    assert clean.n_images == 1 and clean.quarantine["reason"].str.contains("modality US").sum() == 1
    assert corpus.n_images == clean.n_images + int((clean.quarantine["source"] == "deid").sum())  # in = out + quarantined
    img = clean.images.iloc[0]
    assert img["report_id"] == clean.reports["report_id"][0] and img["study_id"] == clean.reports["study_id"][0]
    ds = pydicom.dcmread(img["path"])
    assert ds.SOPInstanceUID == img["image_id"] and ds.StudyInstanceUID == img["study_id"]
    assert "DOE" not in img["path"] and str(ds.PatientName) == ""
    assert "Smith" not in clean.reports["text"][0] and "series 1, image 1" in clean.reports["text"][0]
    assert len(clean.tables["phi_spans"]) == 2


def test_radmine_deid_command_and_auto_mode(tmp_path, capsys):
    from radmine.cli import main
    from radmine.deid.corpus import deid_wanted

    src = tmp_path / "export.csv"
    pd.DataFrame({"report_id": ["r1", "r2"], "patient_id": ["MRN77001", "MRN77002"],
                  "text": ["Discussed with Dr. Ingrid Thorvaldsen on 3/4/2021. Baker cyst.",
                           "Patient: Okafor, Amadou. Paget disease. Series 2, image 7."]}).to_csv(src, index=False)
    key = tmp_path / "key.txt"
    key.write_text("site secret\n")
    out = tmp_path / "clean"
    assert main(["deid", str(src), "--out", str(out), "--key-file", str(key)]) == 0
    assert "2 report(s)" in capsys.readouterr().out
    clean = radmine.read_corpus(out)
    joined = " ".join(clean.reports["text"])
    for secret in ("Thorvaldsen", "Ingrid", "Okafor", "Amadou", "3/4/2021", "MRN77001"):
        assert secret not in joined and secret not in (out / "phi_spans.csv").read_text()
    assert "Baker cyst" in joined and "Series 2, image 7" in joined
    assert not deid_wanted("auto", out, clean)  # already de-identified: mine leaves it as it is
    assert deid_wanted("auto", src, radmine.read_corpus(src)) and not deid_wanted("off", src, clean)
    assert not deid_wanted("auto", None, clean)  # the embedded corpus
    with pytest.raises(ValueError, match=r"'deid.enabled' parameter of radmine mine must be one of"):
        deid_wanted("yes", src, clean)
    # the same key gives the same pseudonyms in a later run
    assert main(["deid", str(src), "--out", str(tmp_path / "again"), "--key-file", str(key)]) == 0
    again = radmine.read_corpus(tmp_path / "again")
    assert again.reports["patient_id"].tolist() == clean.reports["patient_id"].tolist()
