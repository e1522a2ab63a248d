"""Tests for radmine.JointClusterer and its loop pieces (known answers on blobs and tiny images)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

import radmine
from radmine._validation import NotFittedError
from radmine.cluster import loop


# ----------------------------------------------------------------------------- data
def blobs(n=400, centers=4, d=24, std=1.0, seed=0):
    X, y = make_blobs(n, n_features=d, centers=centers, cluster_std=std, random_state=seed)
    return X.astype(np.float32), y


def pattern_images(n_per=16, size=32, seed=0):
    """Four image classes with different textures: disk, fine checkerboard, flat gray, coarse bars; noisy."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, y = [], []
    for c in range(4):
        for _ in range(n_per):
            if c == 0:
                r = rng.uniform(0.2, 0.3) * size
                im = (((xx - size / 2) ** 2 + (yy - size / 2) ** 2) < r**2).astype(float)
            elif c == 1:
                im = (((xx // 2) + (yy // 2)) % 2).astype(float)
            elif c == 2:
                im = np.full((size, size), rng.uniform(0.4, 0.6))
            else:
                im = (((xx + rng.integers(8)) // 8) % 2).astype(float)
            im = np.clip(im + rng.normal(0, 0.08, im.shape), 0, 1)
            images.append((im * 255).astype(np.uint8))
            y.append(c)
    return images, np.array(y)


def small_loop(**kw):
    """The paper's loop (whole random CNN fine-tuned on pixels, one epoch per round), tiny."""
    params = dict(n_clusters=4, backbone="random_cnn", pretrained=False, image_size=32, n_rounds=3, pca_dim=8,
                  finetune=True, finetune_mode="backbone", finetune_epochs=1,
                  whiten=False,
                  batch_size=32, lr=1e-3, merge=False, min_cluster_size=2, progress=False, random_state=0,
                  device="cpu", tol=0.0)
    params.update(kw)
    return radmine.JointClusterer(**params)


# ----------------------------------------------------------------------------- loop pieces
def test_reseed_empty_splits_largest_cluster():
    Z, _ = blobs(120, centers=3, d=8)
    labels = np.zeros(len(Z), dtype=np.int64)
    labels[:10] = 1  # clusters 2 and 3 are empty
    new, centers, n = loop.reseed_empty(Z, labels, 4, seed=0)
    counts = np.bincount(new, minlength=4)
    assert n == 2
    assert (counts > 0).all()
    assert centers.shape == (4, Z.shape[1])
    # images of the small cluster were not touched (the largest was split)
    assert (new[:10] == 1).all()


def test_reseed_empty_nothing_to_do():
    Z, y = blobs(60, centers=3, d=4)
    new, _, n = loop.reseed_empty(Z, y, 3)
    assert n == 0 and np.array_equal(new, y)


def test_match_labels_undoes_a_permutation_and_adds_fresh_ids():
    prev = np.array([0, 0, 1, 1, 2, 2, 7, 7])
    perm = {0: 5, 1: 3, 2: 0, 7: 1}
    new = np.array([perm[v] for v in prev])
    assert np.array_equal(loop.match_labels(prev, new), prev)
    split = new.copy()
    split[1] = 9  # one more cluster than before: gets an id above max(prev)
    out = loop.match_labels(prev, split)
    assert out[1] == 8 and np.array_equal(np.delete(out, 1), np.delete(prev, 1))


def test_refine_rim_merges_split_blobs():
    X, y = blobs(500, centers=4, d=16, std=1.0, seed=1)
    Z = loop.FeatureReducer(None).fit_transform(X)  # centred + L2 normalised
    labels, centers = loop.kmeans(Z, 10, seed=0)
    merged, n_merged = loop.refine_merge(Z, labels, centers, reg=1.0)
    assert n_merged > 0
    assert len(np.unique(merged)) < 10
    assert loop.nmi(y, merged) > loop.nmi(y, labels)


def test_dissolve_small_and_merge_close():
    Z, y = blobs(200, centers=2, d=4, std=0.5)
    labels = y.copy()
    labels[:3] = 2  # a 3-image cluster
    out, n = loop.dissolve_small(Z, labels, 5)
    assert n == 1 and len(np.unique(out)) == 2
    assert loop.nmi(y, out) == pytest.approx(1.0)
    same, n0 = loop.merge_close(Z, y, threshold=1e-6)
    assert n0 == 0 and loop.nmi(y, same) == pytest.approx(1.0)
    one, n1 = loop.merge_close(Z, y, threshold=1e6)
    assert n1 == 1 and len(np.unique(one)) == 1


def test_purity_and_nmi_known_values():
    assert loop.purity([0, 0, 1, 1], [5, 5, 6, 6]) == 1.0
    assert loop.purity([0, 1, 0, 1], [5, 5, 5, 5]) == 0.5
    assert loop.nmi([0, 0, 1, 1], [1, 1, 0, 0]) == pytest.approx(1.0)


def test_kmeans_faiss_and_sklearn_agree_on_easy_blobs():
    X, y = blobs(300, centers=3, d=8, std=0.5)
    a, ca = loop.kmeans(X, 3, seed=0)
    b, cb = loop.kmeans(X, 3, seed=0, engine="sklearn")
    assert loop.nmi(y, a) == pytest.approx(1.0) and loop.nmi(y, b) == pytest.approx(1.0)
    assert ca.shape == cb.shape == (3, 8)
    with pytest.raises(ValueError, match="larger than the number of samples"):
        loop.kmeans(X[:2], 3)


# ----------------------------------------------------------------------------- estimator on features
def test_one_shot_on_blobs_recovers_classes():
    X, y = blobs()
    jc = radmine.JointClusterer(n_clusters=4, finetune=False, pca_dim=None, merge=False, progress=False,
                                random_state=0)
    assert jc.fit(None, image_features=X, y_true=y) is jc
    assert loop.nmi(y, jc.labels_) == pytest.approx(1.0)
    assert jc.n_clusters_ == 4 and jc.cluster_centers_.shape == (4, X.shape[1])
    assert jc.features_.shape == X.shape
    assert np.allclose(np.linalg.norm(jc.features_, axis=1), 1.0, atol=1e-5)
    h = jc.history_
    assert list(h["round"]) == [0]
    for col in ["n_clusters", "nmi_prev", "purity_prev", "nmi_true", "ami_true", "purity_true", "size_min",
                "size_median", "size_max", "n_empty_reseeded", "n_merged", "finetune_loss", "val_acc", "seconds"]:
        assert col in h.columns
    assert h.loc[0, "nmi_true"] == pytest.approx(1.0)
    assert np.isnan(h.loc[0, "nmi_prev"])


def test_merge_lowers_cluster_count_towards_truth():
    X, y = blobs(600, centers=4, d=32, std=1.5, seed=2)
    base = radmine.JointClusterer(n_clusters=10, finetune=False, pca_dim=16, merge=False, n_neighbors=None, progress=False,
                                  random_state=0).fit(None, image_features=X)
    rim = radmine.JointClusterer(n_clusters=10, finetune=False, pca_dim=16, merge=True, merge_reg=1.0, n_neighbors=None,
                                 progress=False, random_state=0).fit(None, image_features=X)
    assert base.n_clusters_ == 10
    assert rim.n_clusters_ < 10 and rim.history_.loc[0, "n_merged"] == 10 - rim.n_clusters_
    assert loop.nmi(y, rim.labels_) > loop.nmi(y, base.labels_)


def test_predict_features_matches_training_assignment():
    X, y = blobs(seed=3)
    jc = radmine.JointClusterer(n_clusters=4, finetune=False, merge=False, pca_dim=8, progress=False,
                                random_state=0).fit(None, image_features=X)
    pred = jc.predict(image_features=X)
    assert np.mean(pred == jc.labels_) >= 0.99
    X2, _ = make_blobs(20, n_features=X.shape[1], centers=4, cluster_std=1.0, random_state=3)
    assert set(jc.predict(image_features=X2)) <= set(jc.clusters_)
    with pytest.raises(ValueError, match=rf"expected features of shape \(n, {X.shape[1]}\).*got \(20, 3\)"):
        jc.predict(image_features=X2[:, :3])
    X2[4] = np.nan
    with pytest.raises(ValueError, match=r"1 row\(s\) of the features are NaN or infinite \(first: row 4\)"):
        jc.predict(image_features=X2)


def test_hierarchical_ids_and_predict():
    X, y = blobs(400, centers=3, d=16)
    jc = radmine.JointClusterer(n_clusters=3, finetune=False, merge=False, n_subclusters=3, pca_dim=8,
                                progress=False, random_state=0).fit(None, image_features=X)
    assert jc.labels_.dtype == object
    tops = np.array([int(s.split(".")[0]) for s in jc.labels_])
    assert np.array_equal(tops, jc.labels_level1_)
    assert {s.split(".")[1] for s in jc.labels_} <= {"0", "1", "2"}
    assert np.mean(jc.predict(image_features=X) == jc.labels_) >= 0.95
    assert len(jc.members(jc.labels_[0])) > 0
    assert len(jc.members(int(jc.labels_level1_[0]))) >= len(jc.members(jc.labels_[0]))


def test_errors():
    X, y = blobs(50)
    with pytest.raises(NotFittedError):
        radmine.JointClusterer().predict(image_features=X)
    with pytest.raises(ValueError, match="n_clusters"):
        radmine.JointClusterer(n_clusters=80, finetune=False, progress=False).fit(None, image_features=X)
    with pytest.raises(ValueError, match="images .* or 'image_features'"):
        radmine.JointClusterer(finetune=False).fit(None)
    with pytest.raises(ValueError, match="fine-tuning the backbone needs the images"):
        radmine.JointClusterer(n_clusters=3, finetune=True, finetune_mode="backbone").fit(None, image_features=X)
    with pytest.raises(ValueError, match="'merge' parameter"):
        radmine.JointClusterer(merge="nope").fit(None, image_features=X)
    with pytest.raises(ValueError, match="'dev_fraction' parameter of JointClusterer must be a float in \\[0, 1\\)"):
        radmine.JointClusterer(dev_fraction=1.5).fit(None, image_features=X)
    with pytest.warns(FutureWarning, match="'holdout' parameter of JointClusterer is deprecated"), \
            pytest.raises(ValueError, match="'holdout' parameter of JointClusterer must be a float"):
        radmine.JointClusterer(holdout=1.5).fit(None, image_features=X)
    with pytest.raises(ValueError, match="'device' parameter"):
        radmine.JointClusterer(device="tpu", finetune=False).fit(None, image_features=X)
    with pytest.raises(TypeError, match="'n_rounds' parameter"):
        radmine.JointClusterer(n_rounds=2.5).fit(None, image_features=X)
    with pytest.raises(TypeError, match="'backbone' parameter"):
        radmine.JointClusterer(backbone=3).fit(None, image_features=X)
    with pytest.raises(ValueError, match="features must be 2-D"):
        radmine.JointClusterer(finetune=False).fit(None, image_features=X[0])
    with pytest.raises(ValueError, match="y_true has"):
        radmine.JointClusterer(n_clusters=2, finetune=False, progress=False).fit(None, image_features=X, y_true=y[:3])
    jc = radmine.JointClusterer(n_clusters=3, finetune=False, progress=False, random_state=0).fit(None, image_features=X)
    with pytest.raises(ValueError, match="exactly one"):
        jc.predict()
    with pytest.raises(ValueError, match="fitted on features"):
        jc.predict(images=[np.zeros((8, 8))])
    with pytest.raises(ValueError, match="needs a Corpus"):
        jc.get_cluster_info()
    with pytest.raises(KeyError, match="Unknown cluster"):
        jc.members(99)
    with pytest.raises(TypeError, match="images must be"):
        radmine.JointClusterer(finetune=False).fit(42, image_features=X)


# ----------------------------------------------------------------------------- the loop on images
def test_loop_on_images_recovers_classes_and_keeps_ids(tmp_path):
    images, y = pattern_images()
    jc = small_loop(checkpoint_dir=tmp_path / "ck").fit(images, y_true=y)
    h = jc.history_
    assert len(h) == 3 and list(h["round"]) == [0, 1, 2]
    assert h["finetune_loss"].iloc[:-1].notna().all() and np.isnan(h["finetune_loss"].iloc[-1])
    assert h["val_acc"].iloc[:-1].between(0, 1).all()
    assert h["nmi_prev"].iloc[1:].notna().all()
    assert loop.nmi(y, jc.labels_) >= 0.9
    # ids keep meaning: raw agreement between consecutive rounds equals the best agreement under any renaming
    a = pd.read_parquet(tmp_path / "ck" / "round_00" / "assignments.parquet")["label"].to_numpy()
    b = pd.read_parquet(tmp_path / "ck" / "round_01" / "assignments.parquet")["label"].to_numpy()
    from scipy.optimize import linear_sum_assignment

    cont = pd.crosstab(b, a).to_numpy()
    r, c = linear_sum_assignment(-cont)
    assert np.mean(a == b) == pytest.approx(cont[r, c].sum() / len(a))
    # predict on the training images with the final backbone
    assert np.mean(jc.predict(images) == jc.labels_) >= 0.9
    assert jc.backbone_ is not None and jc.image_ids_.tolist() == list(range(len(images)))
    assert jc.quarantine_.empty
    # checkpoint files
    d = tmp_path / "ck" / "round_01"
    assert (d / "backbone.safetensors").is_file() and (d / "state.safetensors").is_file()
    state = json.loads((d / "state.json").read_text())
    assert state["round"] == 1 and "radmine_version" in state


def test_resume_after_simulated_stop(tmp_path, monkeypatch):
    images, y = pattern_images(n_per=10)
    full = small_loop(tol=0.0).fit(images)

    calls = {"n": 0}
    real = loop.finetune

    def stopping(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated stop")
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "finetune", stopping)
    with pytest.raises(KeyboardInterrupt):
        small_loop(checkpoint_dir=tmp_path).fit(images)
    monkeypatch.setattr(loop, "finetune", real)
    assert (tmp_path / "round_00" / "state.json").is_file()
    assert not (tmp_path / "round_01" / "state.json").exists()

    resumed = small_loop(checkpoint_dir=tmp_path).fit(images)
    assert resumed.resumed_from_ == 0
    assert len(resumed.history_) == len(full.history_)
    assert np.array_equal(resumed.labels_, full.labels_)
    # a finished run is restored without any work
    again = small_loop(checkpoint_dir=tmp_path).fit(images)
    assert again.resumed_from_ == len(full.history_) - 1
    assert np.array_equal(again.labels_, full.labels_)
    assert np.mean(again.predict(images) == again.labels_) >= 0.9
    with pytest.raises(ValueError, match="other settings"):
        small_loop(checkpoint_dir=tmp_path, n_clusters=3).fit(images)


def test_unreadable_images_are_quarantined(tmp_path):
    from PIL import Image

    images, _ = pattern_images(n_per=4)
    paths = []
    for i, im in enumerate(images):
        p = tmp_path / f"im{i}.png"
        Image.fromarray(im).save(p)
        paths.append(str(p))
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    jc = small_loop(n_rounds=1, finetune=False).fit(paths + [str(bad), str(tmp_path / "missing.png")])
    assert len(jc.labels_) == len(paths)
    assert set(jc.quarantine_["item"]) == {str(bad), str(tmp_path / "missing.png")}
    assert list(jc.quarantine_.columns) == ["source", "item", "reason"]


def test_plots(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure
    from PIL import Image

    images, y = pattern_images(n_per=6)
    jc = small_loop(n_rounds=2).fit(images, y_true=y)
    fig = jc.plot_history()
    assert isinstance(fig, Figure) and len(fig.axes) >= 3

    # montages need a corpus with image files and report text
    rows = []
    for i, im in enumerate(images):
        Image.fromarray(im).save(tmp_path / f"im{i}.png")
        rows.append({"image_id": f"i{i}", "report_id": f"r{i}", "path": f"im{i}.png",
                     "caption": ["disk round", "checker fine", "flat gray", "bars stripes"][y[i]]})
    reports = pd.DataFrame({"report_id": [r["report_id"] for r in rows], "patient_id": "p", "study_id": "s",
                            "modality": "CT", "text": "x"})
    corpus = radmine.Corpus(reports, pd.DataFrame(rows), root=tmp_path)
    X = np.eye(4)[y] * 10 + np.random.default_rng(0).normal(0, 0.1, (len(y), 4))
    jc2 = radmine.JointClusterer(n_clusters=4, finetune=False, pca_dim=None, merge=False, min_cluster_size=1,
                                 progress=False, random_state=0).fit(corpus, image_features=X)
    c = jc2.clusters_[0]
    fig = jc2.plot_cluster(c, n=4)
    assert isinstance(fig, Figure)
    assert fig._suptitle is not None and f"Cluster {c}" in fig._suptitle.get_text()
    from radmine.plotting.clusters import montages

    fig = montages(jc2, n=3)
    assert isinstance(fig, Figure) and len(fig.axes) == 4 * 3
    with pytest.raises(KeyError, match="Unknown cluster"):
        jc2.plot_cluster(99)


# ----------------------------------------------------------------------------- embedded corpus
@pytest.mark.slow
def test_embedded_corpus_image_classes_recovered(embedded_corpus):
    corpus = embedded_corpus
    if "truth_images" not in corpus.tables:
        pytest.skip("embedded corpus has no truth_images table yet")
    truth = corpus["truth_images"].set_index("image_id").loc[corpus.images["image_id"], "image_class"]
    k = truth.nunique()
    jc = radmine.JointClusterer(n_clusters=k, backbone="random_cnn", pretrained=False, image_size=64, n_rounds=2,
                                pca_dim=8, whiten=True, merge=False, batch_size=32, progress=False, random_state=0,
                                device="cpu")
    jc.fit(corpus, y_true=truth.to_numpy())
    assert loop.nmi(truth.to_numpy(), jc.labels_) >= 0.9
    assert jc.history_["nmi_true"].min() >= 0.9
    info = jc.get_cluster_info()
    assert info["size"].sum() == len(corpus.images)
    assert (info["name"].str.len() > 0).all()


def test_adapter_mode_from_features_and_resume(tmp_path):
    X, y = blobs(300, centers=3, d=16, std=2.0)
    kw = dict(n_clusters=3, finetune=True, finetune_mode="adapter", n_rounds=3, tol=0.0, pca_dim=8, merge=False, batch_size=64,
              lr=1e-3, progress=False, random_state=0)
    jc = radmine.JointClusterer(**kw).fit(None, image_features=X, y_true=y)
    assert len(jc.history_) == 3 and jc.adapter_ is not None and jc.backbone_ is None
    assert loop.nmi(y, jc.labels_) >= 0.95
    assert np.mean(jc.predict(image_features=X) == jc.labels_) >= 0.95
    first = radmine.JointClusterer(checkpoint_dir=tmp_path, **kw).fit(None, image_features=X)
    again = radmine.JointClusterer(checkpoint_dir=tmp_path, **kw).fit(None, image_features=X)
    assert again.resumed_from_ == 2 and np.array_equal(again.labels_, first.labels_)
    assert np.array_equal(first.labels_, jc.labels_)


@pytest.mark.parametrize("mode", ["adapter", "backbone"])
def test_without_the_loop_nothing_is_trained_and_no_weights_are_saved(tmp_path, mode):
    """finetune=False: no identity adapter, no copy of the frozen CNN on disk; the loaded model predicts the same."""
    X, _ = blobs(120, centers=3, d=16)
    jc = radmine.JointClusterer(n_clusters=3, finetune=False, finetune_mode=mode, pca_dim=8, merge=False,
                                progress=False, random_state=0).fit(None, image_features=X)
    assert jc.adapter_ is None
    jc.save(tmp_path / "f")
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["clusterer.json", "history.parquet",
                                                                   "state.safetensors"]
    back = radmine.JointClusterer.load(tmp_path / "f")
    np.testing.assert_array_equal(back.predict(image_features=X), jc.predict(image_features=X))
    images, _ = pattern_images(n_per=6)
    on_pixels = small_loop(finetune=False, finetune_mode=mode, n_rounds=1, n_clusters=3).fit(images)
    assert on_pixels.adapter_ is None
    on_pixels.save(tmp_path / "p")
    assert [p.name for p in (tmp_path / "p").glob("*.safetensors")] == ["state.safetensors"]
    back = radmine.JointClusterer.load(tmp_path / "p")
    np.testing.assert_array_equal(back.predict(images), on_pixels.predict(images))


def test_features_keyword_is_a_deprecated_alias_of_image_features():
    X, _ = blobs(n=120, centers=3, d=8)
    kw = dict(n_clusters=3, finetune=False, progress=False, random_state=0)
    new = radmine.JointClusterer(**kw).fit(None, image_features=X)
    with pytest.warns(FutureWarning, match="'features' keyword is deprecated; use 'image_features'"):
        old = radmine.JointClusterer(**kw).fit(None, features=X)
    np.testing.assert_array_equal(new.labels_, old.labels_)
    with pytest.warns(FutureWarning, match="JointClusterer.predict: the 'features' keyword"):
        np.testing.assert_array_equal(old.predict(features=X), new.predict(image_features=X))
    with pytest.raises(TypeError, match="pass 'image_features' only"):
        new.predict(image_features=X, features=X)
