"""WeakLabeler / label_reports: known-answer reports, sections, normal, bad input, mentions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import radmine
from radmine._validation import NotFittedError
from radmine.labels.labeler import MENTION_COLUMNS, WeakLabeler, label_reports

REPORTS = pd.DataFrame(
    {
        "report_id": ["r1", "r2", "r3", "r4", "r5", "r6"],
        "text": [
            "INDICATION: Pneumonia?\n\nFINDINGS: No pneumothorax or effusion. Mild cardiomegaly.\n\n"
            "IMPRESSION: Possible right lower lobe pneumonia.",
            "FINDINGS: The heart size is normal. The lungs are clear.\n\nIMPRESSION: No acute cardiopulmonary disease.",
            "Calcified granuloma in the right upper lobe. No pleural effusion.",  # no headings: all text used
            "",
            None,
            "HISTORY: Cardiomegaly, effusion.\n\nCOMPARISON: None.",  # nothing in the counted sections
        ],
    }
)


@pytest.fixture(scope="module")
def labeled():
    lab = WeakLabeler().fit()
    return lab, lab.transform(REPORTS)


def test_values_and_index(labeled):
    lab, y = labeled
    assert list(y.index) == ["r1", "r2", "r3", "r4", "r5", "r6"] and y.index.name == "report_id"
    assert list(y.columns) == lab.labels_ == radmine.load_vocabulary("chest_xray").names
    r1 = y.loc["r1"]
    assert r1["pneumothorax"] == 0 and r1["pleural_effusion"] == 0
    assert r1["cardiomegaly"] == 1
    assert r1["pneumonia"] == -1  # the indication mention does not count
    assert r1["no_finding"] == 0
    assert np.isnan(r1["atelectasis"])
    assert y.loc["r2", "no_finding"] == 1
    assert y.loc["r3", "calcified_granuloma"] == 1
    assert y.loc["r3", "pleural_effusion"] == 0
    assert np.isnan(y.loc["r3", "calcinosis"])  # "calcified granuloma" is one finding, not two
    assert set(np.unique(y.to_numpy()[~np.isnan(y.to_numpy())])) <= {-1.0, 0.0, 1.0}


def test_empty_and_missing_reports_are_nan_rows_and_counted(labeled, caplog):
    lab, y = labeled
    for rid in ("r4", "r5", "r6"):
        assert y.loc[rid].isna().all(), rid
    assert lab.n_empty_ == 3
    with caplog.at_level("WARNING", logger="radmine.labels.labeler"):
        WeakLabeler().fit().transform(["", 3.5, "FINDINGS: No effusion."])
    assert "2 of 3 report(s) have no usable text" in caplog.text


def test_aggregation_positive_beats_uncertain_beats_negated():
    texts = [
        "FINDINGS: No effusion. Small left effusion.",
        "FINDINGS: No effusion. Possible right effusion.",
        "FINDINGS: No effusion. No pneumothorax, no effusion.",
    ]
    y = label_reports(texts)
    assert y["pleural_effusion"].tolist() == [1.0, -1.0, 0.0]


def test_mentions_table_offsets(labeled):
    lab, _ = labeled
    m = lab.mentions_
    assert list(m.columns) == MENTION_COLUMNS
    text = REPORTS.set_index("report_id")["text"]
    for row in m.itertuples():
        assert text[row.report_id][row.start : row.end] == row.matched
    assert not ((m.report_id == "r1") & (m.section == "indication")).any()
    expl = lab.explain("r1")
    assert set(expl.finding) >= {"pneumothorax", "pleural_effusion", "cardiomegaly", "pneumonia"}
    row = expl[expl.finding == "pneumonia"].iloc[0]
    assert row.status == "uncertain" and row.trigger.lower() == "possible" and row.section == "impression"
    with pytest.raises(KeyError, match="unknown report_id 'nope'"):
        lab.explain("nope")


def test_return_mentions_and_list_or_series_input():
    texts = ["IMPRESSION: Right pneumothorax.", "IMPRESSION: No pneumothorax."]
    y, m = label_reports(texts, return_mentions=True)
    assert list(y.index) == [0, 1] and y["pneumothorax"].tolist() == [1.0, 0.0]
    assert set(m.report_id) == {0, 1}
    s = pd.Series(texts, index=["a", "b"])
    ys = label_reports(s)
    assert list(ys.index) == ["a", "b"] and ys.loc["b", "pneumothorax"] == 0
    df = pd.DataFrame({"text": texts}, index=[10, 20])
    assert list(label_reports(df).index) == [10, 20]


def test_normal_phrases_and_uncertain_blocking():
    texts = ["IMPRESSION: No acute cardiopulmonary abnormality. Possible small nodule."]
    assert label_reports(texts).loc[0, "no_finding"] == 1
    assert label_reports(texts, uncertain_blocks_normal=True).loc[0, "no_finding"] == 0
    lab = WeakLabeler().fit()
    lab.transform(texts)
    assert (lab.mentions_.finding == "no_finding").any()


def test_custom_vocabulary_dict_and_exclusions_and_abbreviations():
    vocab = {
        "name": "tiny",
        "findings": [
            {"name": "effusion", "terms": ["effusion"], "exclusions": ["pericardial effusion"]},
            {"name": "copd", "abbreviations": ["COPD"]},
            {"name": "widening", "patterns": [r"mediastinum\s+is\s+widened"]},
        ],
    }
    y = label_reports(["Pericardial effusion. copd not mentioned in capitals. The mediastinum is widened.",
                       "Pleural effusion. COPD."], vocab)
    assert list(y.columns) == ["effusion", "copd", "widening"]
    assert np.isnan(y.loc[0, "effusion"]) and np.isnan(y.loc[0, "copd"]) and y.loc[0, "widening"] == 1
    assert y.loc[1, "effusion"] == 1 and y.loc[1, "copd"] == 1


def test_sections_parameter_and_precomputed_sentences():
    from radmine.text.sentences import sentence_table

    rep = REPORTS.iloc[:1]
    y = label_reports(rep, sections=("indication",))
    assert y.loc["r1", "pneumonia"] == 1 and np.isnan(y.loc["r1", "cardiomegaly"])
    sents = sentence_table(rep)
    y2 = WeakLabeler().fit().transform(rep, sentences=sents)
    pd.testing.assert_frame_equal(y2, label_reports(rep))


def test_corpus_input():
    rep = REPORTS.assign(patient_id=REPORTS.report_id, study_id=REPORTS.report_id, modality="CR")
    corpus = radmine.Corpus(rep)
    y = label_reports(corpus)
    assert list(y.index) == list(REPORTS.report_id)


def test_errors():
    with pytest.raises(NotFittedError):
        WeakLabeler().transform(["x"])
    with pytest.raises(NotFittedError):
        WeakLabeler().explain("x")
    with pytest.raises(TypeError, match="not a single str"):
        label_reports("No effusion.")
    with pytest.raises(TypeError, match="reports must be"):
        label_reports(3)
    with pytest.raises(ValueError, match="must have a 'text' column"):
        label_reports(pd.DataFrame({"report_id": [1]}))
    with pytest.raises(ValueError, match="report_id must be unique"):
        label_reports(pd.DataFrame({"report_id": [1, 1], "text": ["a", "b"]}))
    with pytest.raises(TypeError, match="'sections' parameter"):
        WeakLabeler(sections="findings").fit()
    with pytest.raises(TypeError, match="'negation' parameter"):
        WeakLabeler(negation="negex").fit()
    with pytest.raises(KeyError, match="No built-in vocabulary"):
        WeakLabeler("nope").fit()


def test_custom_negation_detector():
    from radmine.text.negation import NegationDetector

    det = NegationDetector(extra_triggers={"pre_negation": ["ruled out for"]})
    y = label_reports(["FINDINGS: Ruled out for pneumothorax."], negation=det)
    assert y.loc[0, "pneumothorax"] == 0


def test_repr_and_fit_returns_self():
    lab = WeakLabeler()
    assert lab.fit() is lab
    assert "WeakLabeler(" in repr(lab) and "n_labels" in lab._repr_html_()


@pytest.mark.real
def test_real_openi_every_report_labeled(openi_corpus):
    y = label_reports(openi_corpus)
    assert len(y) == openi_corpus.n_reports
    assert y["no_finding"].notna().mean() > 0.95


@pytest.mark.real
def test_real_medpix_ct_mr(medpix_corpus):
    lab = WeakLabeler("ct_mr").fit()
    y = lab.transform(medpix_corpus)
    assert len(y) == medpix_corpus.n_reports
    assert (y["mass"] == 1).sum() > 50
