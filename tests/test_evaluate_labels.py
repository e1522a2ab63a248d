"""evaluate_labels against hand-computed scores, and the MeSH reference builder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import radmine
from radmine.labels.evaluate import METRIC_COLUMNS, evaluate_labels, mesh_reference, parse_mesh_term

NAN = np.nan


@pytest.fixture
def tables():
    idx = pd.Index(["a", "b", "c", "d", "e"], name="report_id")
    ref = pd.DataFrame({"x": [1, 1, 1, 0, 0], "y": [0, 1, 0, 0, NAN]}, index=idx)
    pred = pd.DataFrame({"x": [1, 0, -1, 1, NAN], "y": [1, 1, NAN, 0, 1]}, index=idx)
    return pred, ref


def test_hand_computed(tables):
    pred, ref = tables
    ev = evaluate_labels(pred, ref)
    assert list(ev.columns) == METRIC_COLUMNS
    assert list(ev.index) == ["x", "y", "micro avg", "macro avg"]
    # x: tp=1 (a), fp=1 (d), fn=2 (b, c: uncertain counts as absent) -> P=1/2, R=1/3, F1=0.4
    assert ev.loc["x", ["tp", "fp", "fn", "support"]].tolist() == [1, 1, 2, 3]
    assert ev.loc["x", "precision"] == pytest.approx(0.5)
    assert ev.loc["x", "recall"] == pytest.approx(1 / 3)
    assert ev.loc["x", "f1"] == pytest.approx(0.4)
    # y: row e has no reference -> skipped; tp=1 (b), fp=1 (a), fn=0 -> P=0.5, R=1, F1=2/3
    assert ev.loc["y", ["tp", "fp", "fn", "support"]].tolist() == [1, 1, 0, 1]
    assert ev.loc["y", "f1"] == pytest.approx(2 / 3)
    # micro: tp=2, fp=2, fn=2 -> 0.5 / 0.5 / 0.5 ; macro F1 = (0.4 + 2/3) / 2
    assert ev.loc["micro avg", ["precision", "recall", "f1"]].tolist() == pytest.approx([0.5, 0.5, 0.5])
    assert ev.loc["macro avg", "f1"] == pytest.approx((0.4 + 2 / 3) / 2)
    assert ev.loc["macro avg", "precision"] == pytest.approx(0.5)


def test_matches_sklearn(tables):
    from sklearn.metrics import f1_score, precision_score, recall_score

    pred, ref = tables
    ev = evaluate_labels(pred, ref, labels=["x"])
    y_true = (ref["x"] == 1).to_numpy()
    y_pred = (pred["x"] == 1).to_numpy()
    assert ev.loc["x", "f1"] == pytest.approx(f1_score(y_true, y_pred))
    assert ev.loc["x", "precision"] == pytest.approx(precision_score(y_true, y_pred))
    assert ev.loc["x", "recall"] == pytest.approx(recall_score(y_true, y_pred))


def test_uncertain_options(tables):
    pred, ref = tables
    pos = evaluate_labels(pred, ref, uncertain="positive")
    assert pos.loc["x", ["tp", "fp", "fn"]].tolist() == [2, 1, 1]  # c now a hit
    ign = evaluate_labels(pred, ref, uncertain="ignore")
    assert ign.loc["x", ["tp", "fp", "fn", "support"]].tolist() == [1, 1, 1, 2]  # c left out
    with pytest.raises(ValueError, match="'uncertain' parameter of evaluate_labels must be one of"):
        evaluate_labels(pred, ref, uncertain="maybe")


def test_min_support_labels_and_alignment(tables):
    pred, ref = tables
    ev = evaluate_labels(pred, ref, min_support=2)
    assert list(ev.index) == ["x", "micro avg", "macro avg"]
    assert ev.loc["micro avg", "f1"] == pytest.approx(0.4)
    # rows are matched by index, not position
    shuffled = evaluate_labels(pred.iloc[::-1], ref)
    pd.testing.assert_frame_equal(shuffled, evaluate_labels(pred, ref))
    # only shared rows count
    part = evaluate_labels(pred.loc[["a", "b"]], ref)
    assert part.loc["x", ["tp", "fn"]].tolist() == [1, 1]
    assert list(evaluate_labels(pred, ref, labels=["y"]).index) == ["y", "micro avg", "macro avg"]


def test_zero_division_and_positive_value():
    ref = pd.DataFrame({"x": ["yes", "no"]})
    pred = pd.DataFrame({"x": ["no", "no"]})
    ev = evaluate_labels(pred, ref, positive="yes")
    assert ev.loc["x", ["precision", "recall", "f1"]].tolist() == [0.0, 0.0, 0.0]
    assert ev.loc["x", "support"] == 1


def test_errors(tables):
    pred, ref = tables
    with pytest.raises(TypeError, match="pred must be a pandas DataFrame"):
        evaluate_labels([1], ref)
    with pytest.raises(KeyError, match="label 'z' is not a column of pred"):
        evaluate_labels(pred, ref, labels=["z"])
    with pytest.raises(ValueError, match="share no label column"):
        evaluate_labels(pred.rename(columns=str.upper), ref)
    with pytest.raises(ValueError, match="share no index values"):
        evaluate_labels(pred.set_axis(list("vwxyz")), ref)
    with pytest.raises(ValueError, match="min_support must be an int >= 0"):
        evaluate_labels(pred, ref, min_support=-1)


VOCAB = {
    "name": "m",
    "findings": [
        {"name": "normal", "kind": "normal", "mesh": ["normal"]},
        {"name": "opacity", "terms": ["opacity"], "mesh": ["Opacity"]},
        {"name": "hypoinflation", "terms": ["low lung volumes"], "mesh": ["Lung/hypoinflation"]},
        {"name": "cardiomegaly", "terms": ["cardiomegaly"], "mesh": ["Cardiomegaly", "Cardiac Shadow/enlarged"]},
        {"name": "unmapped", "terms": ["thing"]},
    ],
}


def test_parse_mesh_term():
    assert parse_mesh_term("Opacity/lung/base/left/mild") == ("opacity", ("lung", "base", "left", "mild"))
    assert parse_mesh_term(" normal ") == ("normal", ())


def test_mesh_reference_from_reports_table():
    reports = pd.DataFrame(
        {
            "report_id": ["r1", "r2", "r3", "r4", "r5"],
            "mesh_major": [
                ["normal"],
                ["Opacity/lung/base/left/mild", "Lung/hypoinflation"],
                ["Lung/hyperdistention", "Cardiac Shadow/enlarged"],
                ["No Indexing"],
                [],
            ],
        }
    )
    ref = mesh_reference(reports, VOCAB)
    assert list(ref.columns) == ["normal", "opacity", "hypoinflation", "cardiomegaly"]
    assert ref.index.name == "report_id"
    assert ref.loc["r1"].tolist() == [1, 0, 0, 0]
    assert ref.loc["r2"].tolist() == [0, 1, 1, 0]
    assert ref.loc["r3"].tolist() == [0, 0, 0, 1]  # hyperdistention is not hypoinflation
    assert ref.loc["r4"].isna().all() and ref.loc["r5"].isna().all()


def test_mesh_reference_from_corpus_annotations_and_series():
    rep = pd.DataFrame({"report_id": ["r1", "r2"], "patient_id": ["p1", "p2"], "study_id": ["s1", "s2"],
                        "modality": "CR", "text": ["a", "b"]})
    ann = pd.DataFrame({"report_id": ["r1", "r1"], "image_id": None, "kind": "mesh_major",
                        "value": ["Cardiomegaly/mild", "Opacity/lung"], "term": ["Cardiomegaly", "Opacity"],
                        "qualifiers": [["mild"], ["lung"]]})
    corpus = radmine.Corpus(rep, annotations=ann)
    ref = mesh_reference(corpus, VOCAB)
    assert ref.loc["r1", ["opacity", "cardiomegaly"]].tolist() == [1, 1]
    assert ref.loc["r2"].isna().all()
    s = pd.Series([["normal"]], index=pd.Index(["q"], name="report_id"))
    assert mesh_reference(s, VOCAB).loc["q", "normal"] == 1


def test_mesh_reference_errors():
    with pytest.raises(ValueError, match="no column 'mesh_major'"):
        mesh_reference(pd.DataFrame({"report_id": [1]}), VOCAB)
    with pytest.raises(ValueError, match="no finding with a 'mesh' mapping"):
        mesh_reference(pd.Series([["x"]]), {"name": "n", "findings": [{"name": "a", "terms": ["a"]}]})
    with pytest.raises(TypeError, match="expected a Corpus"):
        mesh_reference([["normal"]], VOCAB)


@pytest.mark.real
def test_real_openi_reference_and_score(openi_corpus):
    ref = mesh_reference(openi_corpus)
    assert len(ref) == openi_corpus.n_reports
    assert ref["no_finding"].sum() > 900
    pred = radmine.label_reports(openi_corpus)
    ev = evaluate_labels(pred, ref, min_support=30)
    assert ev.loc["micro avg", "f1"] > 0.85
