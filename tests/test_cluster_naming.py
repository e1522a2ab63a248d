"""Naming clusters from report text: known answers on a tiny synthetic corpus."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import radmine
from radmine.cluster import naming


def tiny_corpus(with_links=True):
    reports = pd.DataFrame({
        "report_id": ["r1", "r2", "r3"],
        "patient_id": ["p1", "p2", "p3"],
        "study_id": ["s1", "s2", "s3"],
        "modality": ["MR", "CT", "CT"],
        "text": ["FINDINGS: brain t2 white matter lesion.", "FINDINGS: liver mass.", "FINDINGS: liver cyst."],
        "findings": ["brain t2 white matter lesion.", "liver mass.", None],
    })
    images = pd.DataFrame({
        "image_id": ["i1", "i2", "i3", "i4", "i5", "i6"],
        "report_id": ["r1", "r1", "r1", "r2", "r2", "r3"],
        "path": [None] * 6,
        # i1 has a caption but also a link (the link wins); i3 has no caption (report findings)
        "caption": ["brain flair", "Axial T2 image shows the brain white matter", None,
                    "liver enhancement mass", "liver lesion arrow", None],
    })
    links = pd.DataFrame({
        "image_id": ["i1", "i1"],
        "report_id": ["r1", "r1"],
        "sentence_id": [0, 1],
        "sentence": ["brain t2 hyperintense white matter", "brain again"],
    }) if with_links else None
    annotations = pd.DataFrame({
        "report_id": ["r1", "r2", "r3", "r2"],
        "image_id": [None, None, None, "i4"],
        "kind": ["location", "location", "location", "diagnosis"],
        "value": ["Brain and Neuro", "Gastrointestinal", "Gastrointestinal", "Hepatoma"],
    })
    return radmine.Corpus(reports, images, links=links, annotations=annotations)


def test_image_texts_precedence():
    c = tiny_corpus()
    t = naming.image_texts(c, ["i1", "i2", "i3", "i6", "nope"])
    assert t["i1"] == "brain t2 hyperintense white matter brain again"  # linked sentences
    assert t["i2"].startswith("Axial T2")  # caption
    assert t["i3"] == "brain t2 white matter lesion."  # report findings
    assert t["i6"] == "FINDINGS: liver cyst."  # no findings -> report text
    assert t["nope"] == ""


def test_describe_clusters_words_counts_and_annotations():
    c = tiny_corpus()
    labels = np.array([0, 0, 0, 1, 1, 1])
    info = naming.describe_clusters(c, c.images["image_id"], labels, n_words=5)
    assert list(info.columns) == ["cluster", "size", "name", "top_words", "distinctive_words", "top_annotations"]
    brain = info.set_index("cluster").loc[0]
    liver = info.set_index("cluster").loc[1]
    assert brain["size"] == 3 and liver["size"] == 3
    # brain: i1 "brain" x2, i2 x1, i3 x1 = 4; "white" 3, "t2" 3
    assert dict(brain["top_words"])["brain"] == 4
    assert dict(brain["top_words"])["t2"] == 3
    assert brain["top_words"][0] == ("brain", 4)
    assert dict(liver["top_words"])["liver"] == 3
    # stop words and radiology fillers are gone
    words = {w for w, _ in brain["top_words"]} | {w for w, _ in liver["top_words"]}
    assert not words & {"the", "shows", "image", "arrow"}
    assert brain["name"].split(" / ")[0] == "brain"
    assert liver["name"].split(" / ")[0] == "liver"
    assert all(z > 0 for _, z in brain["distinctive_words"])
    assert "liver" not in {w for w, _ in brain["distinctive_words"]}
    # annotations: report-level rows count once per image; image-level ones per image
    assert dict(brain["top_annotations"]) == {"location: Brain and Neuro": 3}
    assert dict(liver["top_annotations"]) == {"location: Gastrointestinal": 3, "diagnosis: Hepatoma": 1}


def test_log_odds_prefers_words_specific_to_a_group():
    counts = np.array([[10, 10, 0], [10, 0, 10]])
    z = naming.log_odds_z(counts)
    assert z[0, 1] > 0 > z[0, 2]
    assert abs(z[0, 0]) < 1e-9  # shared word: no preference
    assert z[1, 2] == pytest.approx(z[0, 1])


def test_stop_words_options_and_format():
    assert "the" in naming.stop_word_list("english")
    assert "arrow" in naming.stop_word_list("radiology") and "arrow" not in naming.stop_word_list("english")
    assert naming.stop_word_list(["Foo"]) == ["foo"]
    with pytest.raises(ValueError, match="stop_words"):
        naming.stop_word_list("klingon")
    assert naming.format_words([("liver", 524), ("abdomen", 337)]) == "liver 524, abdomen 337"


def test_cluster_info_through_the_estimator():
    c = tiny_corpus(with_links=False)
    # features that separate the brain images (first three) from the liver ones
    X = np.array([[1, 0], [1.1, 0], [0.9, 0.1], [0, 1], [0.1, 1.1], [0, 0.9]], dtype=np.float32) * 10
    jc = radmine.JointClusterer(n_clusters=2, finetune=False, pca_dim=None, merge=False, min_cluster_size=1,
                                progress=False, random_state=0)
    jc.fit(c.images, image_features=X)
    info = jc.get_cluster_info(c, n_words=3, n_nearest=2)
    assert list(info.columns) == ["cluster", "size", "name", "top_words", "distinctive_words", "top_annotations",
                                  "nearest_image_ids"]
    by_first = {row.nearest_image_ids[0][:2]: row for row in info.itertuples()}
    names = sorted(r.name.split(" / ")[0] for r in info.itertuples())
    assert names == ["brain", "liver"]
    assert all(len(r.nearest_image_ids) == 2 for r in info.itertuples())
    brain_row = info[info["name"].str.startswith("brain")].iloc[0]
    assert set(brain_row["nearest_image_ids"]) <= {"i1", "i2", "i3"}
    assert by_first
    with pytest.raises(ValueError, match="level"):
        jc.get_cluster_info(c, level=3)
    with pytest.raises(ValueError, match="hierarchical"):
        jc.get_cluster_info(c, level=2)


def test_deprecated_names_warn_and_give_the_same_results():
    from sklearn.base import clone

    c = tiny_corpus(with_links=False)
    X = np.array([[1, 0], [1.1, 0], [0.9, 0.1], [0, 1], [0.1, 1.1], [0, 0.9]], dtype=np.float32) * 10
    kw = dict(n_clusters=2, pca_dim=None, merge=False, min_cluster_size=1, n_rounds=2, progress=False,
              random_state=0, device="cpu")
    jc = radmine.JointClusterer(dev_fraction=0.2, **kw).fit(c.images, image_features=X)
    old = radmine.JointClusterer(holdout=0.2, **kw)
    assert clone(old).get_params()["holdout"] == 0.2  # the old name survives clone / get_params
    with pytest.warns(FutureWarning, match="'holdout' parameter of JointClusterer is deprecated; use 'dev_fraction'"):
        old.fit(c.images, image_features=X)
    np.testing.assert_array_equal(old.labels_, jc.labels_)
    np.testing.assert_array_equal(old.history_["val_loss"], jc.history_["val_loss"])
    with pytest.warns(FutureWarning, match="cluster_info is deprecated; use JointClusterer.get_cluster_info"):
        info = jc.cluster_info(c, n_words=3)
    pd.testing.assert_frame_equal(info, jc.get_cluster_info(c, n_words=3))
