"""ImageIndex: exact neighbours vs numpy brute force, search by id, IVF, save/load, errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import radmine
from radmine._validation import NotFittedError


def _data(n=300, d=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32)


def _brute(X, Q, metric, k):
    if metric == "ip":
        S = Q @ X.T
        order = np.argsort(-S, axis=1, kind="stable")[:, :k]
    else:
        S = ((Q[:, None, :] - X[None, :, :]) ** 2).sum(-1)
        order = np.argsort(S, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(S, order, axis=1)


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_flat_exact_neighbours(metric):
    X, Q = _data(), _data(20, seed=1)
    ids = [f"img{i}" for i in range(len(X))]
    index = radmine.ImageIndex(metric=metric).add(X, ids)
    got_ids, scores = index.search(Q, k=5)
    order, expect = _brute(X, Q, metric, 5)
    assert got_ids.shape == (20, 5) and scores.dtype == np.float32
    assert (got_ids == np.asarray(ids, dtype=object)[order]).all()
    np.testing.assert_allclose(scores, expect, rtol=1e-4, atol=1e-4)


def test_tiny_known_answer():
    X = np.array([[1, 0], [0, 1], [0.9, 0.1]], dtype=np.float32)
    index = radmine.ImageIndex().add(X, ["x", "y", "z"])
    ids, scores = index.search(np.array([1.0, 0.0]), k=2)
    assert ids.tolist() == [["x", "z"]]
    np.testing.assert_allclose(scores, [[1.0, 0.9]], atol=1e-6)
    # by id: itself excluded by default, included on request
    assert index.search(["x"], k=1)[0].tolist() == [["z"]]
    assert index.search("x", k=1, exclude_self=False)[0].tolist() == [["x"]]
    # k larger than the index: padded with None / NaN
    ids, scores = index.search(["x"], k=4)
    assert ids.tolist() == [["z", "y", None, None]] and np.isnan(scores[0, 2:]).all()


def test_integer_ids_and_incremental_add():
    X = _data(50)
    index = radmine.ImageIndex(metric="l2").add(X[:30]).add(X[30:])
    assert len(index) == 50 and index.ids_[-1] == 49
    ids, _ = index.search(X[45:46], k=1)
    assert ids.dtype == np.int64 and ids[0, 0] == 45
    np.testing.assert_allclose(index.vectors([3, 40]), X[[3, 40]])


def test_ivf_trains_and_matches_exact_with_all_probes():
    X, Q = _data(2000, 16), _data(10, 16, seed=2)
    index = radmine.ImageIndex(index_type="ivf", nlist=16, nprobe=16).add(X)
    assert index.kind_ == "ivf" and index.index_.is_trained
    order, _ = _brute(X, Q, "ip", 3)
    np.testing.assert_array_equal(index.search(Q, k=3)[0], order)
    assert radmine.ImageIndex(index_type="auto").add(X).kind_ == "flat"  # small sets stay exact
    # search by id works on IVF too (direct map)
    assert index.search([5], k=2, exclude_self=False)[0][0, 0] == 5


def test_search_frame_columns():
    X = _data(10)
    index = radmine.ImageIndex().add(X, list("abcdefghij"))
    frame = index.search_frame(["a", "b"], k=3)
    assert list(frame.columns) == ["query", "rank", "image_id", "score"]
    assert frame["rank"].tolist() == [1, 2, 3, 1, 2, 3]
    assert "a" not in set(frame.loc[frame["query"] == "a", "image_id"])
    vec_frame = index.search_frame(X[:2], k=2)
    assert vec_frame["query"].tolist() == [0, 0, 1, 1]
    assert isinstance(vec_frame, pd.DataFrame)


@pytest.mark.parametrize("ids", [None, ["a", "b", "c", "d", "e"]])
def test_save_load_roundtrip(tmp_path, ids):
    X = _data(5)
    index = radmine.ImageIndex(metric="l2").add(X, ids)
    index.save(tmp_path / "idx")
    meta = json.loads((tmp_path / "idx" / "meta.json").read_text())
    assert meta["metric"] == "l2" and meta["radmine_version"] == radmine.__version__
    loaded = radmine.ImageIndex.load(tmp_path / "idx")
    a, sa = index.search(X, k=3)
    b, sb = loaded.search(X, k=3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(sa, sb)
    assert loaded.ids_ == index.ids_
    with pytest.raises(FileNotFoundError, match="meta.json|index.faiss"):
        radmine.ImageIndex.load(tmp_path / "nothing")


def test_errors():
    with pytest.raises(NotFittedError, match="empty"):
        radmine.ImageIndex().search(np.zeros((1, 2)), k=1)
    with pytest.raises(ValueError, match="'metric' parameter"):
        radmine.ImageIndex(metric="cosine").add(np.zeros((2, 2)))
    X = _data(5)
    bad = X.copy()
    bad[2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        radmine.ImageIndex().add(bad)
    index = radmine.ImageIndex().add(X, list("abcde"))
    with pytest.raises(KeyError, match="unknown image id 'zz'"):
        index.search(["zz"], k=1)
    with pytest.raises(ValueError, match="dimensions"):
        index.search(np.zeros((1, 3)), k=1)
    with pytest.raises(ValueError, match="dimensions"):
        index.add(np.zeros((1, 3)), ["f"])
    with pytest.raises(ValueError, match="unique"):
        index.add(X[:1], ["a"])
    with pytest.raises(ValueError, match="2 ids for 1 vectors"):
        index.add(X[:1], ["x", "y"])
    with pytest.raises(ValueError, match="'k' parameter"):
        index.search(X[:1], k=0)


def test_embedder_to_index_end_to_end():
    rng = np.random.default_rng(0)
    imgs = [(rng.random((30, 30)) * 255).astype(np.uint8) for _ in range(6)]
    emb = radmine.ImageEmbedder("random_cnn", image_size=32, l2_normalize=True, progress=False, random_state=0)
    X = emb.transform(imgs + [imgs[2]])
    index = radmine.ImageIndex().add(X, [f"i{j}" for j in range(7)])
    ids, scores = index.search(["i6"], k=1)
    assert ids[0, 0] == "i2" and scores[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_n_threads_is_restored():
    faiss = pytest.importorskip("faiss")
    before = faiss.omp_get_max_threads()
    X = _data(100)
    index = radmine.ImageIndex(n_threads=1).add(X)
    order, _ = _brute(X, X[:3], "ip", 2)
    np.testing.assert_array_equal(index.search(X[:3], k=2)[0], order)
    assert faiss.omp_get_max_threads() == before
    with pytest.raises(ValueError, match="'n_threads' parameter"):
        radmine.ImageIndex(n_threads=0).add(X)
