"""HierarchicalTopicModel: level-2 ids, known-answer sub-topics, tiny groups, save/load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import radmine

# two level-1 themes, each made of two level-2 word blocks plus shared theme words
THEMES = {
    "heart": ("cardiac silhouette mediastinum".split(),
              ["cardiomegaly enlarged ventricle atrium chamber septal".split(), "valve mitral aortic prosthetic annulus leaflet".split()]),
    "bone": ("osseous skeletal bony".split(),
             ["fracture clavicle humerus callus deformity displaced".split(), "scoliosis kyphosis vertebra osteophyte spondylosis lordosis".split()]),
}
FAST = dict(min_df=2, drop_top=0, min_doc_terms=3, phrases=False, backend="tomotopy")


def nested_texts(n_per=20, n_words=20, seed=0):
    rng = np.random.default_rng(seed)
    texts, l1, l2 = [], [], []
    for a, (shared, subs) in enumerate(THEMES.values()):
        for b, words in enumerate(subs):
            for _ in range(n_per):
                w = list(rng.choice(words, size=n_words - 4)) + list(rng.choice(shared, size=4))
                rng.shuffle(w)
                texts.append(" ".join(w))
                l1.append(a)
                l2.append(2 * a + b)
    return texts, np.array(l1), np.array(l2)


@pytest.fixture(scope="module")
def data():
    return nested_texts()


@pytest.fixture(scope="module")
def hier(data):
    return radmine.HierarchicalTopicModel(2, 2, random_state=0, **FAST).fit(data[0])


def test_level2_ids_and_known_answer(hier, data):
    from sklearn.metrics import adjusted_rand_score

    _, l1, l2 = data
    assert hier.subtopic_ids_ == ["0.0", "0.1", "1.0", "1.1"]
    info = hier.get_document_info()
    assert {"dominant_topic", "probability", "dominant_subtopic", "subtopic_probability"} <= set(info.columns)
    assert adjusted_rand_score(l1, info["dominant_topic"]) == pytest.approx(1.0)
    assert adjusted_rand_score(l2, info["dominant_subtopic"]) == pytest.approx(1.0)
    assert all(s.split(".")[0] == str(t) for s, t in zip(info["dominant_subtopic"], info["dominant_topic"]))


def test_topic_tables_both_levels(hier, data):
    t1 = hier.get_topic_info(level=1)
    t2 = hier.get_topic_info(level=2)
    assert list(t2.columns) == ["topic", "parent", "size", "name", "top_words", "weights"]
    assert t2["topic"].tolist() == hier.subtopic_ids_
    assert t2["name"].is_unique and all(len(n.split(" (")[0].split(" / ")) == 3 for n in t2["name"])
    assert t2.groupby("parent")["size"].sum().tolist() == t1["size"].tolist()
    assert list(hier.get_topic("1.1").columns) == ["word", "weight"]
    assert hier.get_topic(0).equals(hier.level1_.get_topic(0))
    for bad in ("2.0", "0.5", "x", 7):
        with pytest.raises(KeyError, match="Unknown topic"):
            hier.get_topic(bad)
    with pytest.raises(ValueError, match="'level'"):
        hier.get_topic_info(level=3)
    theta2 = hier.transform(data[0][:6], level=2)
    assert theta2.shape == (6, 4)
    np.testing.assert_allclose(theta2.sum(axis=1), 1.0, atol=1e-9)
    assert "0.1" in hier._repr_html_()


def test_tiny_groups_are_not_split(data):
    h = radmine.HierarchicalTopicModel(2, 3, min_group_docs=10_000, random_state=0, **FAST).fit(data[0])
    assert h.subtopic_ids_ == ["0.0", "1.0"]
    assert not h.subtopic_info_["split"].any()
    assert h.subtopic_info_["reason"].str.contains("min_group_docs").all()
    assert h.get_topic("0.0").equals(h.get_topic(0))
    assert set(h.get_document_info()["dominant_subtopic"]) == {"0.0", "1.0"}


def test_image_labels_level2(hier, data):
    texts, _, l2 = data
    n = len(texts)
    reports = pd.DataFrame({"report_id": [f"r{i}" for i in range(n)], "patient_id": "p", "study_id": "s",
                            "modality": "CR", "text": texts})
    images = pd.DataFrame({"image_id": [f"i{i}" for i in range(n)], "report_id": reports["report_id"]})
    corpus = radmine.Corpus(reports, images)
    h = radmine.HierarchicalTopicModel(2, 2, random_state=0, sections=None, **FAST).fit(corpus)
    lab = h.topic_labels_for_images(corpus, level=2)
    assert list(lab.columns) == ["image_id", "report_id", "topic", "probability", "source"]
    info = h.get_document_info()
    assert lab["topic"].tolist() == info["dominant_subtopic"].tolist()
    lab1 = h.topic_labels_for_images(corpus, level=1)
    assert lab1["topic"].tolist() == info["dominant_topic"].tolist()


def test_same_seed_same_hierarchy(data, hier):
    h2 = radmine.HierarchicalTopicModel(2, 2, random_state=0, **FAST).fit(data[0])
    pd.testing.assert_frame_equal(h2.get_topic_info(level=2), hier.get_topic_info(level=2))


def test_save_load(hier, data, tmp_path):
    hier.save(tmp_path / "h")
    h2 = radmine.HierarchicalTopicModel.load(tmp_path / "h")
    assert h2.subtopic_ids_ == hier.subtopic_ids_
    np.testing.assert_allclose(h2.transform(data[0], level=2), hier.transform(data[0], level=2), atol=1e-6)
    pd.testing.assert_frame_equal(h2.get_topic_info(level=2), hier.get_topic_info(level=2))
    assert not list(tmp_path.rglob("*.pkl")) and not list(tmp_path.rglob("*.pickle"))
    with pytest.raises(FileNotFoundError, match="not a saved radmine topic model"):
        radmine.HierarchicalTopicModel.load(tmp_path)


def test_shared_parameters_come_from_topic_model():
    h = radmine.HierarchicalTopicModel(4, 2, backend="tomotopy", alpha=0.1)
    params = h.get_params()
    tm_params = radmine.TopicModel().get_params()
    assert set(tm_params) - {"n_topics"} <= set(params)
    assert params["alpha"] == 0.1 and params["backend"] == "tomotopy" and params["eta"] == tm_params["eta"]
    assert "n_subtopics=2" in repr(h) and "backend='tomotopy'" in repr(h)
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['n_topic'\]"):
        radmine.HierarchicalTopicModel(4, n_topic=3)
