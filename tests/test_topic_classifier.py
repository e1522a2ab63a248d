"""TopicImageClassifier: topic labels -> image classifier, held out by case."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import radmine
from radmine._validation import NotFittedError
from radmine.corpus import Corpus


def make_labelled(n_cases=90, per_case=3, n_topics=5, dim=16, seed=0):
    """Images whose features sit near their topic's centroid; several images per case."""
    rng = np.random.default_rng(seed)
    cent = rng.normal(size=(n_topics, dim)) * 2
    reports, images, feats, labels = [], [], {}, []
    for c in range(n_cases):
        t = int(rng.integers(n_topics))
        rid = f"r{c}"
        reports.append({"report_id": rid, "patient_id": f"p{c // 2}", "study_id": rid, "modality": "CT",
                        "text": "x", "split": "train" if c < 70 else "dev"})
        for j in range(per_case):
            iid = f"{rid}_{j}"
            images.append({"image_id": iid, "report_id": rid, "path": None})
            feats[iid] = cent[t] + rng.normal(size=dim)
            labels.append({"image_id": iid, "topic": t if c % 17 else -1, "probability": 0.9})
    F = pd.DataFrame.from_dict(feats, orient="index")
    F.index.name = "image_id"
    return Corpus(pd.DataFrame(reports), pd.DataFrame(images)), F, pd.DataFrame(labels)


FAST = dict(epochs=25, lr=1e-2, random_state=0, progress=False, ks=(1, 2))


def test_classifier_learns_topics_and_holds_out_cases():
    corpus, F, labels = make_labelled()
    clf = radmine.TopicImageClassifier(**FAST).fit(corpus, labels=labels, image_features=F)
    lab = clf.labels_
    assert set(lab["role"]) == {"train", "dev", "test"}
    assert (lab.groupby("group")["role"].nunique() == 1).all()  # a patient is never split
    assert "-1" not in set(lab["topic"])  # images without a topic are left out
    assert not set(lab["image_id"]) & set(corpus.images.image_id[corpus.images.report_id.isin(
        corpus.reports.report_id[corpus.reports.split == "dev"])])  # only the train split is used
    held = clf.score()
    assert held["top1_accuracy"] > max(0.6, 2 * clf.train_majority_)
    assert held["top2_accuracy"] >= held["top1_accuracy"]
    dev = clf.score_labels(corpus.subset(corpus.reports.report_id[corpus.reports.split == "dev"]), labels, image_features=F)
    assert dev["top1_accuracy"] > 0.6 and dev["n_classes"] == 5
    proba = clf.predict_proba(image_features=F.iloc[:4].to_numpy())
    assert proba.shape == (4, 5) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert list(clf.predict(image_features=F.iloc[:4].to_numpy())) == list(clf.classes_[proba.argmax(1)])
    with pytest.warns(FutureWarning, match="TopicImageClassifier.predict_proba: the 'features' keyword is deprecated"):
        np.testing.assert_array_equal(clf.predict_proba(features=F.iloc[:4].to_numpy()), proba)
    with pytest.warns(FutureWarning, match="use 'image_features'"):
        clf.predict(features=F.iloc[:4].to_numpy())
    h = clf.history_
    assert list(h.columns) == ["epoch", "train_loss", "dev_loss", "dev_top1", "dev_top2", "dev_score", "seconds"]


def test_classifier_resumes(tmp_path):
    corpus, F, labels = make_labelled()
    kw = dict(FAST, patience=None)
    straight = radmine.TopicImageClassifier(**{**kw, "epochs": 3}).fit(corpus, labels=labels, image_features=F)
    radmine.TopicImageClassifier(**{**kw, "epochs": 2}, checkpoint_dir=tmp_path).fit(corpus, labels=labels, image_features=F)
    resumed = radmine.TopicImageClassifier(**{**kw, "epochs": 3}, checkpoint_dir=tmp_path).fit(
        corpus, labels=labels, image_features=F)
    assert resumed.resumed_from_ == 2 and resumed.history_["epoch"].tolist() == [1, 2, 3]
    x = F.iloc[:5].to_numpy()
    np.testing.assert_allclose(resumed.predict_proba(image_features=x), straight.predict_proba(image_features=x), atol=1e-6)


def test_classifier_bad_params():
    corpus, F, labels = make_labelled()
    cases = [
        (dict(level="paragraph"), ValueError, "'level' parameter"),
        (dict(n_topics=1), ValueError, "'n_topics' parameter"),
        (dict(test_size=1.5), ValueError, "'test_size' parameter"),
        (dict(ks=()), ValueError, "'ks' parameter"),
        (dict(topic_model="lda"), TypeError, "topic_labels_for_images"),
    ]
    for params, err, match in cases:
        with pytest.raises(err, match=match):
            radmine.TopicImageClassifier(**{**FAST, **params}).fit(corpus, labels=labels, image_features=F)
    with pytest.raises(ValueError, match="missing column"):
        radmine.TopicImageClassifier(**FAST).fit(corpus, labels=labels.drop(columns="topic"), image_features=F)
    with pytest.raises(ValueError, match="only 1 topic"):
        radmine.TopicImageClassifier(**FAST).fit(corpus, labels=labels.assign(topic=3), image_features=F)
    with pytest.raises(NotFittedError):
        radmine.TopicImageClassifier().predict(image_features=F.to_numpy())


def test_classifier_with_topic_model_on_embedded(embedded_corpus):
    """Wiring with a real TopicModel: fitted on the train split, labels every image, scores another split."""
    corpus = embedded_corpus.copy()
    rng = np.random.default_rng(0)
    F = pd.DataFrame(rng.normal(size=(len(corpus.images), 8)), index=pd.Index(corpus.images["image_id"], name="image_id"))
    tm = radmine.TopicModel(n_topics=3, passes=2, random_state=0)
    clf = radmine.TopicImageClassifier(topic_model=tm, epochs=3, random_state=0, progress=False)
    clf.fit(corpus, image_features=F)
    assert clf.topic_model_ is tm and len(clf.classes_) >= 2
    other = sorted(set(corpus.reports["split"]) - {"train"})[0]
    res = clf.score(corpus, split=other, image_features=F)
    assert set(res) == {"top1_accuracy", "top5_accuracy", "n_images", "n_classes"} and res["n_images"] > 0
