"""DICOM header de-identification: the PS3.15 Annex E Basic Application Level Confidentiality Profile.

The profile's table (attribute -> action) ships as data in
``data/dicom_basic_profile.json``. On top of the basic profile, radmine applies
two of the standard's options so that report <-> study joins survive:

* **Retain Longitudinal Temporal Information with Modified Dates**
  (``dates="shift"``): every date of a patient moves by the same keyed offset
  as the dates in that patient's reports (intervals are kept); ``"remove"``
  applies the profile's actions instead.
* **Consistent pseudonyms** (``ids="pseudonymize"``): ``PatientID``,
  ``AccessionNumber`` and ``StudyID`` get the same keyed pseudonyms as the
  report table's ``patient_id`` / ``accession`` columns, and every UID is
  replaced by a keyed ``2.25.<n>`` UID (the same input UID always maps to the
  same output UID), so series, studies and references stay intact.

Attributes the table does not list follow their value representation:
private tags, curves and overlays are removed; person names (PN) are emptied;
other UIDs (except registered class and transfer-syntax UIDs) are remapped;
free text (LO, LT, SH, ST, UT, UC) is removed unless it is on the profile's
keep list (``clean_descriptors=True`` scrubs descriptions such as
``SeriesDescription`` with :func:`radmine.find_phi` instead).

**Burned-in text.** Pixels are never inspected. An image is quarantined (not
de-identified, not copied) when ``BurnedInAnnotation`` is ``YES``, or when its
modality (US, OT, SC, XC, DOC, ES) or SOP class (ultrasound, secondary
capture, encapsulated documents, video) is one known for burned-in text --
whatever its ``BurnedInAnnotation`` says, because devices of these kinds set
it unreliably. ``burned_in="keep"`` turns the rule off for sites that have
checked their pixels.
"""

from __future__ import annotations

import functools
import json
import logging
from importlib import resources
from typing import Any

from radmine.deid.reports import Pseudonymizer, shift_date

logger = logging.getLogger(__name__)

#: Modalities whose images often carry burned-in patient text.
BURNED_IN_MODALITIES = frozenset({"US", "OT", "SC", "XC", "DOC", "ES", "IVUS", "VIDEO"})
#: SOP class UID prefixes known for burned-in text (ultrasound, secondary capture, documents, video, VL).
BURNED_IN_SOP_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.6.",  # ultrasound image / enhanced US volume
    "1.2.840.10008.5.1.4.1.1.3.1",  # ultrasound multi-frame
    "1.2.840.10008.5.1.4.1.1.7",  # secondary capture (all kinds)
    "1.2.840.10008.5.1.4.1.1.104.",  # encapsulated PDF / CDA
    "1.2.840.10008.5.1.4.1.1.77.1.",  # visible light (endoscopy, photographs, video)
)
_TEXT_VRS = {"LO", "LT", "SH", "ST", "UT", "UC", "AE"}
_DATE_VRS = {"DA", "DT"}
_DESCRIPTORS = ("SeriesDescription", "StudyDescription", "ProtocolName", "ImageComments",
                "RequestedProcedureDescription", "PerformedProcedureStepDescription")
_ID_KEYWORDS = {"PatientID": "patient", "AccessionNumber": "accession", "StudyID": "study_number",
                "OtherPatientIDs": "patient"}


@functools.lru_cache(maxsize=1)
def basic_profile() -> dict:
    """The shipped PS3.15 Annex E table: ``{"actions": {keyword: D|Z|X|K|U}, "keep": [...], ...}``."""
    raw = resources.files("radmine.deid").joinpath("data", "dicom_basic_profile.json").read_text(encoding="utf-8")
    return json.loads(raw)


def burned_in_reason(ds) -> str | None:
    """Why ``ds`` may carry burned-in text (the quarantine reason), or None.

    Parameters
    ----------
    ds : pydicom.Dataset

    Returns
    -------
    str or None
    """
    flag = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    if flag == "YES":
        return "burned-in annotation: BurnedInAnnotation (0028,0301) is YES"
    sop = str(ds.get("SOPClassUID", "") or "")
    if any(sop == p.rstrip(".") or sop.startswith(p) for p in BURNED_IN_SOP_CLASSES):
        name = getattr(ds.get("SOPClassUID"), "name", sop)
        return f"possible burned-in text: SOP class {name} is known to carry it"
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if modality in BURNED_IN_MODALITIES:
        return f"possible burned-in text: modality {modality} is known to carry it"
    return None


def _is_registered_uid(value: str) -> bool:
    from pydicom.uid import UID

    try:
        return bool(UID(value).is_valid) and UID(value).name != value
    except Exception:  # noqa: BLE001
        return False


def _shift_da(value: str, days: int) -> str:
    """Shift a DA (``YYYYMMDD``) or DT (``YYYYMMDDHHMMSS...``) value."""
    value = str(value).strip()
    if len(value) >= 8 and value[:8].isdigit():
        shifted = shift_date(value[:8], days)
        if shifted is not None:
            return shifted + value[8:]
    return ""


def deidentify_dicom(
    ds,
    *,
    pseudonymizer: Pseudonymizer | None = None,
    key: str | bytes | None = None,
    random_state: int | None = None,
    dates: str = "shift",
    ids: str = "pseudonymize",
    clean_descriptors: bool = False,
    detector=None,
):
    """De-identify one DICOM dataset in place by the basic profile (see the module docstring).

    Parameters
    ----------
    ds : pydicom.Dataset
    pseudonymizer : Pseudonymizer, optional
        Share one with :func:`radmine.deidentify_reports` so ids, UIDs and date
        offsets agree between headers and reports (overrides ``key``).
    key, random_state
        See :class:`~radmine.deid.reports.Pseudonymizer`.
    dates : {"shift", "remove"}, default "shift"
        Keep dates moved by the patient's offset, or apply the profile's action.
    ids : {"pseudonymize", "remove"}, default "pseudonymize"
        Keyed pseudonyms for PatientID / AccessionNumber / StudyID and keyed
        UIDs, or the profile's empty values (UIDs are always replaced).
    clean_descriptors : bool, default False
        Scrub descriptions (``SeriesDescription``, ``StudyDescription``, ...)
        with :func:`radmine.find_phi` instead of removing them.
    detector : PHIDetector, optional
        Used with ``clean_descriptors``.

    Returns
    -------
    pydicom.Dataset
        ``ds``, with ``PatientIdentityRemoved = YES`` and
        ``DeidentificationMethod`` set.

    Raises
    ------
    ValueError
        If ``dates`` or ``ids`` is not an allowed value.
    """
    from pydicom.dataset import Dataset

    from radmine._validation import check_option

    check_option(dates, "dates", "deidentify_dicom", ("shift", "remove"))
    check_option(ids, "ids", "deidentify_dicom", ("pseudonymize", "remove"))
    if not isinstance(ds, Dataset):
        raise TypeError(f"deidentify_dicom: ds must be a pydicom Dataset, got {type(ds).__name__}.")
    pz = pseudonymizer or Pseudonymizer(key, random_state=random_state)
    profile = basic_profile()
    actions, keep = profile["actions"], set(profile["keep"])
    patient = str(ds.get("PatientID", "") or "")
    offset = pz.date_offset(patient)
    if clean_descriptors and detector is None:
        from radmine.deid.text import PHIDetector

        detector = PHIDetector()
    ds.remove_private_tags()
    for tag in [t for t in ds.keys() if (t.group & 0xFF00) in (0x5000, 0x6000)]:  # curves and overlays
        del ds[tag]

    def visit(dataset, elem):
        kw, vr = elem.keyword, elem.VR
        if kw in keep:
            return
        if kw in _ID_KEYWORDS and ids == "pseudonymize":
            if elem.value not in (None, ""):
                elem.value = pz.pseudonym(str(elem.value), _ID_KEYWORDS[kw])
            return
        if vr == "UI":
            value = str(elem.value or "")
            if value and (actions.get(kw) == "U" or not _is_registered_uid(value)):
                elem.value = pz.uid(value)
            return
        if kw in ("PatientBirthDate", "PatientBirthTime"):
            elem.value = ""  # never kept, not even shifted
            return
        if vr in _DATE_VRS and dates == "shift" and elem.value not in (None, ""):
            if elem.VM > 1:
                elem.value = [_shift_da(v, offset) for v in elem.value]
            else:
                elem.value = _shift_da(elem.value, offset)
            return
        if vr == "TM" and dates == "shift":
            return  # a time of day without its date identifies no one
        action = actions.get(kw)
        if clean_descriptors and kw in _DESCRIPTORS and isinstance(elem.value, str):
            spans = detector.find(elem.value)
            from radmine.deid.reports import replace_spans

            elem.value = replace_spans(elem.value, spans, "mask", patient=patient, pseudonymizer=pz)[0]
            return
        if action == "X":
            del dataset[elem.tag]
        elif action in ("Z", "D"):
            if vr == "SQ":
                elem.value = []
            elif vr == "PN":
                elem.value = "ANONYMIZED" if action == "D" else ""
            elif vr in ("DA", "DT", "TM"):
                elem.value = ""
            elif vr in _TEXT_VRS or vr in ("CS", "AS", "PN"):
                elem.value = "ANONYMIZED" if action == "D" and vr not in ("CS", "AS") else ""
            else:
                elem.value = None
        elif action == "K":
            return
        elif vr == "PN":
            elem.value = ""
        elif vr in _TEXT_VRS:
            del dataset[elem.tag]

    meta = getattr(ds, "file_meta", None)
    if meta is not None and "MediaStorageSOPInstanceUID" in meta:
        meta.MediaStorageSOPInstanceUID = pz.uid(str(meta.MediaStorageSOPInstanceUID))
    ds.walk(visit)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "radmine PS3.15 E basic profile" + (" + modified dates" if dates == "shift" else "")
    if dates == "shift":
        ds.LongitudinalTemporalInformationModified = "MODIFIED"
    return ds


def deidentify_dicom_file(src, dst, *, pseudonymizer: Pseudonymizer, burned_in: str = "quarantine",
                          **kwargs: Any) -> tuple[str | None, str | None]:
    """Read ``src``, de-identify it and write ``dst``.

    Returns
    -------
    (str or None, str or None)
        The new SOPInstanceUID (None if not written) and the quarantine reason
        (None if written).
    """
    import pydicom

    from radmine._io import atomic_open

    try:
        ds = pydicom.dcmread(str(src))
    except Exception as err:  # noqa: BLE001 - any unreadable file is quarantined, not fatal
        return None, f"unreadable DICOM file ({type(err).__name__})"
    if burned_in == "quarantine":
        reason = burned_in_reason(ds)
        if reason is not None:
            return None, reason
    deidentify_dicom(ds, pseudonymizer=pseudonymizer, **kwargs)
    with atomic_open(dst, "wb") as fh:
        ds.save_as(fh, enforce_file_format=False)
    return str(ds.get("SOPInstanceUID", "")), None
