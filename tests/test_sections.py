"""Section splitting: heading layouts, synonyms, and words that must not open a section."""

from __future__ import annotations

import pytest

import radmine
from radmine.text.sections import HEADINGS, list_sections, register_heading, split_sections


def names(text, **kw):
    return [s.name for s in split_sections(text, **kw)]


def bodies(text):
    return {s.name: text[s.start : s.end] for s in split_sections(text)}


def test_reader_layout_blocks():
    text = "INDICATION: Cough.\n\nFINDINGS: No mass.\n\nIMPRESSION: Normal."
    secs = split_sections(text)
    assert [s.name for s in secs] == ["indication", "findings", "impression"]
    assert [text[s.start : s.end] for s in secs] == ["Cough.", "No mass.", "Normal."]
    assert [text[s.heading_start : s.start].strip() for s in secs] == [s.heading for s in secs]
    assert secs[1].heading == "FINDINGS:"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Findings: no mass", ["findings"]),
        ("findings: no mass", ["findings"]),
        ("FINDINGS\nNo mass.", ["findings"]),
        ("FINDINGS:\nNo mass.", ["findings"]),
        ("  Impression:  normal", ["impression"]),
        ("CLINICAL HISTORY: cough", ["history"]),
        ("Clinical  History: cough", ["history"]),
        ("REASON FOR EXAM: cough", ["indication"]),
        ("Reason for examination: cough", ["indication"]),
        ("DIFFERENTIAL DIAGNOSIS: abscess", ["differential_diagnosis"]),
        ("Diagnosis: abscess", ["diagnosis"]),
        ("CONCLUSIONS: stable", ["conclusion"]),
        ("COMPARISON: None.", ["comparison"]),
        ("TECHNIQUE: PA and lateral", ["technique"]),
        ("EXAM: CT chest", ["exam"]),
        ("No effusion. IMPRESSION: normal chest.", ["other", "impression"]),
        ("No effusion. Impression: normal chest.", ["other", "impression"]),
    ],
)
def test_heading_forms(text, expected):
    assert names(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "These findings suggest pneumonia.",
        "Findings are stable since the prior exam.",
        "The impression of a mass is not confirmed.",
        "History of smoking.",
        "Comparison is made to the prior study.",
        "no effusion. impression: normal",  # mid-line heading must be capitalised
        "Patient with a history: smoking",  # not at line start, not after a sentence end
    ],
)
def test_words_inside_sentences_do_not_open_sections(text):
    assert names(text) == ["other"]
    (sec,) = split_sections(text)
    assert text[sec.start : sec.end] == text.strip()


def test_preamble_is_other_and_bodies_are_stripped():
    text = "  CT ABDOMEN\n\nFINDINGS:\n\n  Liver normal.  \n\nIMPRESSION:\nNormal.\n"
    b = bodies(text)
    assert b == {"other": "CT ABDOMEN", "findings": "Liver normal.", "impression": "Normal."}


def test_empty_body_and_empty_text():
    text = "FINDINGS:\n\nIMPRESSION: Normal."
    secs = split_sections(text)
    assert secs[0].name == "findings" and secs[0].start == secs[0].end
    assert split_sections("") == []
    assert split_sections("   \n ") == []


def test_type_error():
    with pytest.raises(TypeError, match="text must be a str"):
        split_sections(None)


def test_registry_and_custom_heading():
    table = list_sections()
    assert list(table.columns) == ["section", "heading"]
    assert set(table["section"]) == set(HEADINGS)
    assert ("history", "CLINICAL HISTORY") in set(zip(table.section, table.heading))
    custom = register_heading("findings", "Befund")
    assert names("BEFUND: kein Herd", headings=custom) == ["findings"]
    assert names("BEFUND: kein Herd") == ["other"]  # default registry unchanged
    with pytest.raises(ValueError, match="spellings"):
        register_heading("findings")
    with pytest.raises(ValueError, match="name"):
        register_heading("", "x")


def test_public_name():
    assert radmine.split_sections is split_sections
