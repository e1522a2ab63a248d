"""Resumable embedding cache: kill + resume, no recomputation, settings never mix, quarantine persisted."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import radmine
from radmine.images.cache import EmbeddingCache


class Killed(RuntimeError):
    pass


def _embedder(cache_dir=None, **kw):
    kw.setdefault("image_size", 32)
    return radmine.ImageEmbedder(
        "random_cnn", batch_size=4, shard_size=4, num_workers=0, progress=False, random_state=0,
        cache_dir=cache_dir, **kw,
    )


def _count_forward(emb, fail_after=None):
    """Wrap the backbone's forward: count calls, optionally raise after ``fail_after`` calls."""
    emb.fit()
    calls = {"n": 0}
    original = emb.backbone_.forward

    def forward(x):
        if fail_after is not None and calls["n"] >= fail_after:
            raise Killed("simulated kill")
        calls["n"] += 1
        return original(x)

    emb.backbone_.forward = forward
    return calls


@pytest.fixture()
def pngs(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "imgs"
    folder.mkdir()
    paths = []
    for i in range(18):
        p = folder / f"im{i:02d}.png"
        Image.fromarray((rng.random((24, 20 + i)) * 255).astype(np.uint8)).save(p)
        paths.append(str(p))
    return paths


def test_killed_run_resumes_to_the_same_array(pngs, tmp_path):
    reference = _embedder().transform(pngs)  # uninterrupted, no cache

    cache_dir = tmp_path / "cache"
    first = _embedder(cache_dir)
    calls = _count_forward(first, fail_after=3)
    with pytest.raises(Killed):
        first.transform(pngs)
    assert calls["n"] == 3
    assert len(first.cache().shards()) == 3  # three committed shards of 4 images

    second = _embedder(cache_dir)
    calls = _count_forward(second)
    resumed = second.transform(pngs)
    assert calls["n"] == 2  # only the 6 missing images (2 batches of 4/2) were computed
    assert second.n_cached_ == 12 and second.n_computed_ == 6
    np.testing.assert_array_equal(resumed, reference)

    third = _embedder(cache_dir)
    calls = _count_forward(third)
    again = third.transform(pngs)
    assert calls["n"] == 0 and third.n_cached_ == 18
    np.testing.assert_array_equal(again, reference)
    assert not list(cache_dir.rglob("*.tmp"))


def test_different_settings_never_mix(pngs, tmp_path):
    cache_dir = tmp_path / "cache"
    avg = _embedder(cache_dir)
    X_avg = avg.transform(pngs[:5])
    mx = _embedder(cache_dir, pooling="max")
    calls = _count_forward(mx)
    X_max = mx.transform(pngs[:5])
    assert calls["n"] == 2  # nothing reused from the 'avg' folder
    assert not np.allclose(X_avg, X_max)
    assert avg.cache().folder != mx.cache().folder
    assert len(list(cache_dir.iterdir())) == 2
    stretch = _embedder(cache_dir, resize="stretch")
    assert stretch.cache().fingerprint not in {avg.cache().fingerprint, mx.cache().fingerprint}
    # a new subset reuses what exists and computes only the new ids
    more = _embedder(cache_dir)
    calls = _count_forward(more)
    X_more = more.transform(pngs[3:9])
    assert more.n_cached_ == 2 and more.n_computed_ == 4 and calls["n"] == 1
    np.testing.assert_array_equal(X_more[:2], X_avg[3:5])


def test_quarantine_is_persisted(pngs, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    cache_dir = tmp_path / "cache"
    items = pngs[:3] + [str(bad)]
    first = _embedder(cache_dir)
    X1 = first.transform(items)
    assert np.isnan(X1[3]).all() and np.isfinite(X1[:3]).all()
    assert first.quarantine_["path"].tolist() == [str(bad)]
    second = _embedder(cache_dir)
    calls = _count_forward(second)
    X2 = second.transform(items)
    assert calls["n"] == 0
    np.testing.assert_array_equal(X1, X2)
    assert second.quarantine_["path"].tolist() == [str(bad)]
    cache = second.cache()
    assert len(cache.quarantine()) == 1
    cache.clear_quarantine()
    assert cache.quarantine().empty


def test_cache_api_and_errors(tmp_path):
    cache = EmbeddingCache(tmp_path, {"a": 1}, name="x y")
    assert cache.folder.name.startswith("x_y-")
    assert cache.write_shard([], [], np.zeros((0, 2))) is None
    cache.write_shard(["k1", "k2"], [None, "p"], np.array([[1, 2], [3, 4]], dtype=np.float32))
    found, vecs = EmbeddingCache(tmp_path, {"a": 1}, name="x y").get(["k2", "nope", "k1"])
    assert found.tolist() == [True, False, True]
    np.testing.assert_array_equal(vecs, [[3, 4], [1, 2]])
    assert "k1" in cache and len(cache) == 2 and cache.info()["n_shards"] == 1
    with pytest.raises(ValueError, match="2 keys but 1 vectors"):
        cache.write_shard(["a", "b"], [None, None], np.zeros((1, 2)))
    with pytest.raises(ValueError, match="no cache_dir"):
        _embedder().cache()
    # an uncommitted shard (npy without its parquet index) is ignored
    (cache.folder / "shard-000009-deadbeef.npy").write_bytes(b"partial")
    assert len(EmbeddingCache(tmp_path, {"a": 1}, name="x y").shards()) == 1
