"""Preprocessing / pooling options of ImageEmbedder: content crop, percentiles, last+mid features, hflip TTA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import radmine
from radmine.images.backbones import build_backbone, pool_features
from radmine.images.preprocess import _open3, content_bbox, fast_percentiles, preprocess

SPEC = {"image_size": 32, "mean": [0.0] * 3, "std": [1.0] * 3}


def _embedder(**kw):
    kw.setdefault("image_size", 32)
    kw.setdefault("progress", False)
    kw.setdefault("random_state", 0)
    kw.setdefault("num_workers", 0)
    return radmine.ImageEmbedder("random_cnn", **kw)


def _body_with_text():
    """A 100x120 black image: a bright 'body' at rows 20:70, cols 30:100 and a 1-px 'text' line at row 90."""
    a = np.zeros((100, 120), dtype=np.uint8)
    a[20:70, 30:100] = 180
    a[40:50, 50:60] = 60  # darker structure inside the body
    a[90, 5:60:2] = 255  # dotted burned-in text in the margin
    return a


# -- crop ---------------------------------------------------------------------------
def test_content_bbox_finds_the_body_and_ignores_text():
    a = _body_with_text()
    assert content_bbox(a, "content", margin=0.0) == (20, 70, 30, 100)
    # "bbox" keeps every bright pixel, the text line included
    assert content_bbox(a, "bbox", margin=0.0) == (20, 91, 5, 100)
    assert content_bbox(a, "none") == (0, 100, 0, 120)
    # the margin is a fraction of the longer side, clipped at the image border
    assert content_bbox(a, "content", margin=0.25) == (0, 100, 0, 120)
    assert content_bbox(a, "content", margin=0.05) == (14, 76, 24, 106)


def test_content_bbox_falls_back_to_the_whole_image():
    blank = np.zeros((50, 60), dtype=np.uint8)
    assert content_bbox(blank, "content") == (0, 50, 0, 60)
    speck = blank.copy()
    speck[10:18, 10:18] = 255  # 64 px: 2% of the area, under min_fraction=5%
    assert content_bbox(speck, "content", margin=0.0) == (0, 50, 0, 60)
    assert content_bbox(speck, "bbox", margin=0.0, min_fraction=0.0) == (10, 18, 10, 18)
    tiny = blank.copy()
    tiny[0, 0] = 255  # under 1% of the pixels: below the 99th percentile, no foreground at all
    assert content_bbox(tiny, "bbox", margin=0.0, min_fraction=0.0) == (0, 50, 0, 60)


def test_content_bbox_on_float_and_large_images():
    a = _body_with_text().astype(np.float32) / 255.0
    assert content_bbox(a, "content", margin=0.0) == (20, 70, 30, 100)
    big = np.kron(_body_with_text(), np.ones((4, 4), dtype=np.uint8))  # 400x480: found on a subsample
    top, bottom, left, right = content_bbox(big, "content", margin=0.0)
    assert abs(top - 80) <= 4 and abs(bottom - 280) <= 4 and abs(left - 120) <= 4 and abs(right - 400) <= 4


def test_open3_matches_scipy():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(0)
    for _ in range(10):
        m = rng.random((23, 31)) > 0.35
        expected = ndimage.binary_opening(m, structure=np.ones((3, 3), dtype=bool))
        np.testing.assert_array_equal(_open3(m), expected)


def test_preprocess_crop_fills_the_frame():
    a = np.zeros((64, 64), dtype=np.uint8)
    a[0:16, 0:32] = 255  # content in a corner: 16 x 32
    spec = {"image_size": 32, "mean": [0.0] * 3, "std": [1.0] * 3}
    x = preprocess(a, spec, crop="content", intensity="auto")
    # cropped to 16x32 (margin 1 px at the bottom/right), padded to 32x32: the middle rows are content
    assert torch.all(x[:, 12:20, 2:30] == 1.0)
    assert torch.all(x[:, :6] == 0.0) and torch.all(x[:, -6:] == 0.0)
    full = preprocess(a, spec, crop="none", intensity="auto")
    assert float(full.mean()) < float(x.mean())
    with pytest.raises(ValueError, match="'crop' parameter"):
        preprocess(a, spec, crop="body")


# -- intensity ----------------------------------------------------------------------
def test_fast_percentiles_match_numpy():
    rng = np.random.default_rng(1)
    u8 = rng.integers(0, 256, size=(60, 70)).astype(np.uint8)
    for q in (0.5, 1.0, 50.0, 99.0, 99.5):
        (got,) = fast_percentiles(u8, [q], integer=True)
        assert abs(got - np.percentile(u8, q)) <= 1.0
    f = rng.normal(size=(50, 40)).astype(np.float32)
    np.testing.assert_allclose(fast_percentiles(f, [1.0, 99.0]), np.percentile(f, [1.0, 99.0]), rtol=1e-6)


def test_percentile_intensity_clips_outliers():
    a = np.full((20, 20), 100, dtype=np.uint8)
    a[5:15, 5:15] = 200
    a[0, 0] = 255  # one hot pixel (burned-in text) must not set the white point
    x = preprocess(a, {"image_size": 20, "mean": [0.0] * 3, "std": [1.0] * 3}, intensity="percentile")
    assert float(x[0, 10, 10]) == pytest.approx(1.0) and float(x[0, 2, 10]) == pytest.approx(0.0)


# -- features="last+mid" ------------------------------------------------------------
def test_last_plus_mid_concatenates_unit_parts():
    last = build_backbone("random_cnn", pretrained=False, random_state=0, image_size=32)
    both = build_backbone("random_cnn", pretrained=False, random_state=0, image_size=32, features="last+mid")
    assert (last.dim, both.dim) == (128, 192)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        a, b = last(x), both(x)
        mid, top = both.feature_maps(x)
    assert b.shape == (3, 192) and mid.shape[1] == 64
    np.testing.assert_allclose(b[:, :128], a / a.norm(dim=1, keepdim=True), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b[:, 128:].norm(dim=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(pool_features(mid, top, "avg", "last"), a, rtol=1e-5, atol=1e-6)


def test_efficientnet_last_plus_mid_shapes():
    pytest.importorskip("efficientnet_lite_pytorch")
    m = build_backbone("efficientnet_lite0", pretrained=False, random_state=0, image_size=64, features="last+mid")
    with torch.inference_mode():
        mid, last = m.feature_maps(torch.zeros(2, 3, 64, 64))
        out = m(torch.zeros(2, 3, 64, 64))
    assert m.dim == 1392 and out.shape == (2, 1392)
    assert mid.shape == (2, 112, 4, 4) and last.shape == (2, 1280, 2, 2)


def test_features_option_validation():
    with pytest.raises(ValueError, match="'features' parameter of build_backbone"):
        build_backbone("random_cnn", pretrained=False, random_state=0, features="mid")
    with pytest.raises(ValueError, match="'features' parameter of build_backbone"):
        build_backbone("hf:some/model", features="last+mid")  # checked before anything is loaded
    with pytest.raises(ValueError, match="'features' parameter of ImageEmbedder"):
        radmine.ImageEmbedder("hf:some/model", features="last+mid").fit()
    with pytest.raises(ValueError, match="features"):
        _embedder(features="both").fit()
    assert _embedder(features="last").fit().dim_ == 128
    assert _embedder().fit().features_ == "last+mid"


# -- tta ----------------------------------------------------------------------------
def test_hflip_tta_averages_the_mirror():
    rng = np.random.default_rng(2)
    a = (rng.random((30, 30)) * 255).astype(np.uint8)
    plain = _embedder(crop="none")
    both = plain.transform([a, a[:, ::-1].copy()])
    tta = _embedder(crop="none", tta="hflip").transform([a])
    np.testing.assert_allclose(tta[0], both.mean(axis=0), rtol=1e-4, atol=1e-5)
    sym = np.hstack([a[:, :15], a[:, :15][:, ::-1]])  # left-right symmetric: TTA changes nothing
    np.testing.assert_allclose(_embedder(crop="none", tta="hflip").transform([sym]), plain.transform([sym]),
                               rtol=1e-4, atol=1e-5)


def test_option_validation_errors():
    with pytest.raises(ValueError, match="crop"):
        _embedder(crop="body").fit()
    with pytest.raises(ValueError, match="tta"):
        _embedder(tta="vflip").fit()
    with pytest.raises(ValueError, match="crop_threshold"):
        _embedder(crop_threshold=1.5).fit()


# -- cache fingerprint -------------------------------------------------------------
@pytest.mark.parametrize(
    "change",
    [{"crop": "none"}, {"crop": "bbox"}, {"crop_threshold": 0.2}, {"tta": "hflip"}, {"features": "last"},
     {"intensity": "auto"}, {"resize": "stretch"}, {"pooling": "gem"}],
)
def test_cache_fingerprint_changes_with_each_option(tmp_path, change):
    base = _embedder(cache_dir=tmp_path).cache().folder
    assert _embedder(cache_dir=tmp_path).cache().folder == base
    assert _embedder(cache_dir=tmp_path, **change).cache().folder != base


def test_new_defaults_are_documented_in_get_params():
    params = _embedder().get_params()
    assert params["crop"] == "content" and params["intensity"] == "percentile"
    assert params["features"] == "auto" and params["tta"] == "none" and params["resize"] == "pad"
