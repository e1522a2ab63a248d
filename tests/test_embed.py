"""ImageEmbedder and preprocessing: inputs, order, quarantine, channel modes, resize."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import radmine
from radmine.images.preprocess import preprocess, window_bounds

SPEC = {"image_size": 32, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}


def _embedder(**kw):
    kw.setdefault("image_size", 32)
    kw.setdefault("progress", False)
    kw.setdefault("random_state", 0)
    kw.setdefault("num_workers", 0)
    return radmine.ImageEmbedder("random_cnn", **kw)


def _images(n=5, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.random((20 + 3 * i, 30)) * 255).astype(np.uint8) for i in range(n)]


@pytest.fixture()
def png_folder(tmp_path):
    arrays = _images(6)
    for i, a in enumerate(arrays):
        Image.fromarray(a).save(tmp_path / f"img{i}.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    return tmp_path, arrays


# -- preprocess ---------------------------------------------------------------
def test_preprocess_pad_keeps_aspect_and_centres():
    x = preprocess(np.ones((40, 20), dtype=np.float32), SPEC)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    # 40x20 -> 32x16, padded 8 columns each side with 0
    assert torch.all(x[:, :, :8] == 0) and torch.all(x[:, :, -8:] == 0)
    assert torch.allclose(x[:, :, 8:24], torch.ones(3, 32, 16))


def test_preprocess_stretch_fills_the_square():
    x = preprocess(np.ones((40, 20), dtype=np.float32), SPEC, resize="stretch")
    assert torch.allclose(x, torch.ones(3, 32, 32))


def test_preprocess_uint8_scaling_and_mean_std():
    spec = {"image_size": 4, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
    x = preprocess(np.full((4, 4), 255, dtype=np.uint8), spec)
    assert torch.allclose(x, torch.ones(3, 4, 4))  # (1 - 0.5) / 0.5
    x0 = preprocess(np.zeros((4, 4), dtype=np.uint8), spec)
    assert torch.allclose(x0, -torch.ones(3, 4, 4))


def test_preprocess_percentile_clips_outliers():
    a = np.zeros((10, 10), dtype=np.float32)
    a[:, 5:] = 1.0
    a[0, 0] = 1000.0  # one burned-in bright pixel
    spec = {"image_size": 10, "mean": [0] * 3, "std": [1] * 3}
    auto = preprocess(a, spec)  # min-max: the outlier squashes everything
    pct = preprocess(a, spec, intensity="percentile", percentiles=(1, 98))
    assert float(auto[0, 5, 7]) < 0.01
    assert float(pct[0, 5, 7]) == pytest.approx(1.0)
    assert float(pct[0, 0, 0]) == pytest.approx(1.0)  # clipped


def test_preprocess_ct_windows_from_hu():
    hu = np.array([[-1000.0, 40.0], [400.0, 1300.0]], dtype=np.float32)
    spec = {"image_size": 2, "mean": [0] * 3, "std": [1] * 3}
    x = preprocess(hu, spec, channels="ct_windows")
    (l_lo, l_hi), (s_lo, s_hi), (b_lo, b_hi) = window_bounds()
    for c, (lo, hi) in enumerate([(l_lo, l_hi), (s_lo, s_hi), (b_lo, b_hi)]):
        expect = np.clip((hu - lo) / (hi - lo), 0, 1)
        np.testing.assert_allclose(x[c].numpy(), expect, atol=1e-6)
    assert not torch.allclose(x[0], x[1])


def test_preprocess_ct_windows_falls_back_for_display_images():
    x = preprocess(np.arange(16, dtype=np.uint8).reshape(4, 4) * 10, {"image_size": 4, "mean": [0] * 3, "std": [1] * 3},
                   channels="ct_windows")
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])


def test_preprocess_errors():
    with pytest.raises(ValueError, match="channels"):
        preprocess(np.zeros((4, 4)), SPEC, channels="rgb")
    with pytest.raises(ValueError, match="resize"):
        preprocess(np.zeros((4, 4)), SPEC, resize="crop")
    with pytest.raises(ValueError, match="2-D image"):
        preprocess(np.zeros((2, 4, 4, 4)), SPEC)
    with pytest.raises(ValueError, match="Unknown CT window"):
        window_bounds(["lung", "soft_tissue", "nope"])
    with pytest.raises(ValueError, match="exactly 3"):
        window_bounds(["lung"])


def test_preprocess_rgb_input_to_gray():
    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    rgb[..., 1] = 255
    x = preprocess(rgb, {"image_size": 8, "mean": [0] * 3, "std": [1] * 3})
    assert torch.allclose(x, torch.full((3, 8, 8), 0.587), atol=1e-3)


# -- ImageEmbedder --------------------------------------------------------------
def test_transform_arrays_shape_order_and_determinism():
    imgs = _images(5)
    emb = _embedder(batch_size=2)
    X = emb.transform(imgs)
    assert X.shape == (5, 128 + 64) and X.dtype == np.float32  # features="auto": last map + middle stage
    assert np.isfinite(X).all()
    single = np.vstack([_embedder().transform([a]) for a in imgs[::-1]])[::-1]
    np.testing.assert_allclose(X, single, rtol=1e-5, atol=1e-6)
    assert emb.quarantine_.empty and list(emb.quarantine_.columns) == ["image_id", "path", "reason"]
    # a 3-D stack is n images
    np.testing.assert_allclose(_embedder().transform(np.stack([imgs[0], imgs[0]])), X[[0, 0]], rtol=1e-5, atol=1e-6)


def test_fit_returns_self_and_sets_state():
    emb = _embedder()
    assert emb.fit() is emb
    assert emb.dim_ == 192 and emb.features_ == "last+mid" and emb.input_spec_["image_size"] == 32
    assert "weights" in emb._repr_html_()


def test_paths_dataframe_and_corpus_inputs_with_quarantine(png_folder):
    folder, arrays = png_folder
    ref = _embedder().transform(arrays)
    paths = [str(folder / f"img{i}.png") for i in range(6)]
    emb = _embedder(batch_size=4)
    X = emb.transform(paths + [str(folder / "broken.png"), str(folder / "missing.png")])
    np.testing.assert_allclose(X[:6], ref, rtol=1e-5, atol=1e-6)
    assert np.isnan(X[6:]).all()
    assert emb.quarantine_["path"].tolist() == [str(folder / "broken.png"), str(folder / "missing.png")]
    assert emb.quarantine_["reason"].str.contains("UnidentifiedImageError|FileNotFoundError").all()

    images = pd.DataFrame({"image_id": ["b", "a", "bad"], "report_id": ["r1", "r1", "r1"],
                           "path": ["img1.png", "img0.png", "broken.png"]})
    Xdf = _embedder().transform(images, root=folder)
    np.testing.assert_allclose(Xdf[:2], ref[[1, 0]], rtol=1e-5, atol=1e-6)
    reports = pd.DataFrame({"report_id": ["r1"], "patient_id": ["p"], "study_id": ["s"], "modality": ["CT"],
                            "text": ["FINDINGS: none."]})
    corpus = radmine.Corpus(reports, images, root=folder)
    emb = _embedder()
    Xc = emb.transform(corpus)
    np.testing.assert_allclose(Xc, Xdf, rtol=1e-5, atol=1e-6, equal_nan=True)
    assert emb.quarantine_["image_id"].tolist() == ["bad"]
    frame = _embedder().embed_frame(corpus)
    assert frame.columns[0] == "image_id" and frame.shape == (3, 193)


def test_workers_give_the_same_result(png_folder):
    folder, _ = png_folder
    paths = [str(folder / f"img{i}.png") for i in range(6)] + [str(folder / "broken.png")]
    X0 = _embedder(batch_size=3).transform(paths)
    emb = _embedder(batch_size=3, num_workers=1)
    X1 = emb.transform(paths)
    np.testing.assert_array_equal(X0, X1)
    assert len(emb.quarantine_) == 1


def test_threaded_inline_batches_keep_order_and_reasons(png_folder):
    from radmine.images.embed import ImageDataset, _threaded_batches

    folder, _ = png_folder
    paths = [str(folder / f"img{i}.png") for i in range(6)] + [str(folder / "broken.png")]
    emb = _embedder().fit()
    ds = ImageDataset(paths, emb.input_spec_, emb._preprocess_options())
    serial = list(_threaded_batches(ds, 3, 1))
    threaded = list(_threaded_batches(ds, 3, 2))
    assert [b[0].tolist() for b in threaded] == [[0, 1, 2], [3, 4, 5], [6]]
    for (i0, x0, r0), (i1, x1, r1) in zip(serial, threaded):
        assert torch.equal(i0, i1) and torch.equal(x0, x1) and r0 == r1
    assert all(r == "" for b in threaded[:2] for r in b[2])
    assert threaded[-1][2][0] != ""  # the broken PNG carries its reason


def test_l2_normalize_and_transform_tensors():
    imgs = _images(3)
    emb = _embedder(l2_normalize=True)
    X = emb.transform(imgs)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, rtol=1e-5)
    batch = torch.stack([preprocess(a, emb.input_spec_, crop=emb.crop, intensity=emb.intensity) for a in imgs])
    np.testing.assert_allclose(emb.transform_tensors(batch), X, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"\(n, 3, H, W\)"):
        emb.transform_tensors(torch.zeros(2, 1, 8, 8))


def test_input_errors():
    emb = _embedder()
    with pytest.raises(ValueError, match="image_id"):
        emb.transform(pd.DataFrame({"path": ["x.png"]}))
    with pytest.raises(TypeError, match="images must be"):
        emb.transform(42)
    with pytest.raises(ValueError, match="one 2-D array"):
        emb.transform(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="2 ids for 1 images"):
        emb.transform([np.zeros((4, 4))], ids=["a", "b"])
    with pytest.raises(ValueError, match="'channels' parameter of ImageEmbedder"):
        _embedder(channels="rgb").fit()
    with pytest.raises(ValueError, match="'batch_size' parameter"):
        _embedder(batch_size=0).fit()


def test_dicom_ct_windows_and_replicate():
    pydicom_data = pytest.importorskip("pydicom.data")
    path = pydicom_data.get_testdata_file("CT_small.dcm")
    outs = {}
    for channels in ("replicate", "ct_windows"):
        emb = _embedder(channels=channels)
        outs[channels] = emb.transform([path])
        assert emb.quarantine_.empty
        assert np.isfinite(outs[channels]).all()
    assert not np.allclose(outs["replicate"], outs["ct_windows"])


@pytest.mark.real
def test_pretrained_on_medpix_pngs(medpix_dir):
    files = sorted((medpix_dir / "images").glob("*.png"))[:4]
    emb = radmine.ImageEmbedder(image_size=96, progress=False, num_workers=0)
    X = emb.transform([str(f) for f in files])
    assert X.shape == (4, 1280 + 112) and np.isfinite(X).all()
    assert emb.settings_["weights_id"].startswith("imagenet:")


def test_get_set_params_rebuilds_backbone():
    emb = _embedder().fit()
    params = emb.get_params()
    assert params["backbone"] == "random_cnn" and params["image_size"] == 32
    emb.set_params(image_size=48)
    assert not hasattr(emb, "backbone_")
    assert emb.transform([np.zeros((10, 10), dtype=np.uint8)]).shape == (1, 192)
    assert emb.input_spec_["image_size"] == 48
    with pytest.raises(ValueError, match="Invalid parameter 'nope'"):
        emb.set_params(nope=1)
