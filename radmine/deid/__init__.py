"""De-identification: find and replace PHI in report text and DICOM headers.

================================  ==============================================================
:func:`find_phi`                  PHI spans of one text (rules, dictionaries, spaCy NER)
:class:`PHIDetector`              the detector behind it, for batches and custom keep-lists
:func:`deidentify_reports`        scrubbed reports table + PHI span table (surrogate/mask/tag)
:func:`deidentify_corpus`         a whole :class:`~radmine.Corpus`: reports, ids, dates, DICOM
:func:`deidentify_dicom`          one DICOM dataset by the PS3.15 Annex E basic profile
================================  ==============================================================
"""

from radmine.deid.text import LABELS, PHIDetector, PHISpan, find_phi

__all__ = ["LABELS", "PHIDetector", "PHISpan", "find_phi", "deidentify_reports", "deidentify_corpus",
           "deidentify_dicom", "Pseudonymizer"]


def __getattr__(name):
    if name in ("deidentify_reports", "Pseudonymizer"):
        from radmine.deid import reports

        return getattr(reports, name)
    if name == "deidentify_corpus":
        from radmine.deid.corpus import deidentify_corpus

        return deidentify_corpus
    if name == "deidentify_dicom":
        from radmine.deid.dicom import deidentify_dicom

        return deidentify_dicom
    raise AttributeError(f"module 'radmine.deid' has no attribute {name!r}")
