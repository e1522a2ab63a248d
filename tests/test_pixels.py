"""radmine.pixels: DICOM LUTs, CT windows, MONOCHROME1, multi-frame, colour, PNG/JPEG, bad files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file  # noqa: E402

from radmine.pixels import WINDOWS, list_windows, load_pixels  # noqa: E402


def _file(name):
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"pydicom test file {name} not installed (pydicom-data)")
    return path


def test_list_windows_registry():
    w = list_windows()
    assert list(w.columns) == ["window", "center", "width", "lower", "upper", "use"]
    got = w.set_index("window")
    assert got.loc["lung", ["center", "width"]].tolist() == [-600.0, 1500.0]
    assert got.loc["bone", ["center", "width"]].tolist() == [400.0, 1800.0]
    assert got.loc["brain", ["center", "width"]].tolist() == [40.0, 80.0]
    assert got.loc["mediastinum", "width"] == got.loc["soft_tissue", "width"] == 400.0
    assert (got["upper"] - got["lower"] == got["width"]).all()
    assert set(WINDOWS) == set(got.index)


def test_named_ct_window_matches_manual_formula():
    path = _file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    for name, (c, w, _) in WINDOWS.items():
        expected = np.clip((hu - (c - w / 2)) / w, 0, 1)
        got = load_pixels(path, window=name)
        assert got.dtype == np.float32 and got.shape == hu.shape
        np.testing.assert_allclose(got, expected, atol=1e-6, err_msg=name)
    # an explicit (center, width) pair is the same as the named window
    np.testing.assert_array_equal(load_pixels(path, window=(-600, 1500)), load_pixels(path, window="lung"))
    # raw: rescaled HU, unscaled
    np.testing.assert_allclose(load_pixels(path, window="raw"), hu, atol=1e-3)


def test_unknown_window_lists_the_windows():
    with pytest.raises(ValueError, match=r"Unknown window 'lungs'.*'bone'.*'lung'"):
        load_pixels(_file("CT_small.dcm"), window="lungs")
    with pytest.raises(ValueError, match="width > 0"):
        load_pixels(_file("CT_small.dcm"), window=(40, 0))
    with pytest.raises(TypeError, match="window must be"):
        load_pixels(_file("CT_small.dcm"), window=3.5)


def test_file_window_voi_linear():
    path = _file("MR_small.dcm")
    ds = pydicom.dcmread(path)
    c, w = float(ds.WindowCenter), float(ds.WindowWidth)
    x = ds.pixel_array.astype(float) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    expected = np.clip((x - (c - 0.5)) / (w - 1) + 0.5, 0, 1)  # DICOM LINEAR window
    got = load_pixels(path)
    np.testing.assert_allclose(got, expected, atol=2e-4)
    # voi_lut=False: min-max scaling instead
    mm = load_pixels(path, voi_lut=False)
    assert mm.min() == 0.0 and mm.max() == 1.0
    np.testing.assert_allclose(mm, (x - x.min()) / (x.max() - x.min()), atol=1e-6)


def test_voi_lut_sequence_scaled_to_unit_range():
    got = load_pixels(_file("vlut_04.dcm"))
    assert got.shape == (512, 512)
    assert 0.0 <= got.min() and got.max() <= 1.0 and got.max() > got.min()


def test_monochrome1_inverted():
    path = _file("RG1_UNCR.dcm")
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    inverted = load_pixels(ds)
    ds2 = pydicom.dcmread(path)
    ds2.PhotometricInterpretation = "MONOCHROME2"
    plain = load_pixels(ds2)
    np.testing.assert_allclose(inverted, 1.0 - plain, atol=1e-6)


def test_multiframe_all_frames_and_one_frame():
    path = _file("emri_small.dcm")
    allf = load_pixels(path, window="raw")
    assert allf.shape == (10, 64, 64)
    np.testing.assert_array_equal(load_pixels(path, window="raw", frame=3), allf[3])
    np.testing.assert_array_equal(load_pixels(path, window="raw", frame=-1), allf[9])
    scaled = load_pixels(path)
    assert scaled.shape == (10, 64, 64) and scaled.min() == 0.0 and scaled.max() == 1.0
    with pytest.raises(ValueError, match=r"frame 10 out of range; the image has 10 frame"):
        load_pixels(path, frame=10)
    with pytest.raises(TypeError, match="frame must be an int"):
        load_pixels(path, frame=1.5)


def test_rgb_dicom_to_gray_luma():
    path = _file("US1_UNCR.dcm")
    ds = pydicom.dcmread(path)
    rgb = ds.pixel_array.astype(float)
    expected = (rgb @ np.array([0.299, 0.587, 0.114])) / 255.0
    got = load_pixels(path)
    assert got.shape == rgb.shape[:2]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_palette_colour_to_gray():
    got = load_pixels(_file("OBXXXX1A.dcm"))
    assert got.ndim == 2 and 0.0 <= got.min() and got.max() <= 1.0


def test_dataset_source_without_filename():
    ds = pydicom.dcmread(_file("CT_small.dcm"))
    ds.filename = None
    got = load_pixels(ds, window="lung")
    assert got.shape == (128, 128)


def test_truncated_dicom_names_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"MR_truncated\.dcm: cannot decode pixel data"):
        load_pixels(_file("MR_truncated.dcm"))
    raw = open(_file("CT_small.dcm"), "rb").read()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"cut\.dcm"):
        load_pixels(cut)


def test_non_image_dicom_and_non_dicom(tmp_path):
    with pytest.raises(ValueError, match=r"no pixel data \(SOP class Basic Text SR Storage\)"):
        load_pixels(_file("reportsi.dcm"))
    txt = tmp_path / "notes.dcm"
    txt.write_text("not an image at all\n")
    with pytest.raises(ValueError, match=r"notes\.dcm: neither a DICOM file nor an image"):
        load_pixels(txt)
    with pytest.raises(FileNotFoundError, match="missing.dcm"):
        load_pixels(tmp_path / "missing.dcm")
    with pytest.raises(TypeError, match="source must be a path"):
        load_pixels(42)


def test_png_gray_rgb_16bit(tmp_path):
    rng = np.random.default_rng(0)
    g = rng.integers(0, 256, size=(20, 30), dtype=np.uint8)
    Image.fromarray(g, mode="L").save(tmp_path / "g.png")
    np.testing.assert_allclose(load_pixels(tmp_path / "g.png"), g / 255.0, atol=1e-7)
    # window is ignored for PNG (already display values)
    np.testing.assert_array_equal(load_pixels(tmp_path / "g.png", window="lung"), load_pixels(tmp_path / "g.png"))

    rgb = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "c.png")
    expected = np.asarray(Image.fromarray(rgb).convert("L"), dtype=float) / 255.0
    got = load_pixels(tmp_path / "c.png")
    assert got.shape == (20, 30)
    np.testing.assert_allclose(got, expected, atol=1e-7)

    g16 = rng.integers(0, 65536, size=(10, 12), dtype=np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    np.testing.assert_allclose(load_pixels(tmp_path / "g16.png"), g16 / 65535.0, atol=1e-6)

    Image.fromarray(rgb, mode="RGB").save(tmp_path / "c.jpg", quality=95)
    j = load_pixels(tmp_path / "c.jpg")
    assert j.shape == (20, 30) and j.dtype == np.float32 and 0 <= j.min() and j.max() <= 1


def test_truncated_png_names_the_file(tmp_path):
    g = np.random.default_rng(1).integers(0, 256, size=(64, 64), dtype=np.uint8)
    Image.fromarray(g, mode="L").save(tmp_path / "full.png")
    raw = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"cut\.png: cannot decode image"):
        load_pixels(tmp_path / "cut.png")
    (tmp_path / "junk.png").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match=r"junk\.png: not an image"):
        load_pixels(tmp_path / "junk.png")


@pytest.mark.real
def test_medpix_png_gray_and_original_rgb(medpix_dir, tmp_path):
    src = sorted((medpix_dir / "images").glob("*.png"))[0]
    gray = load_pixels(src)
    assert gray.ndim == 2 and max(gray.shape) <= 256 and gray.dtype == np.float32
    assert 0.0 <= gray.min() and gray.max() <= 1.0
    # the original release stores RGB PNGs: same picture, gray after conversion
    rgb = tmp_path / "rgb.png"
    with Image.open(src) as im:
        im.convert("RGB").save(rgb)
    np.testing.assert_allclose(load_pixels(rgb), gray, atol=1.5 / 255)


@pytest.mark.parametrize(
    "compressed, uncompressed",
    [("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"), ("MR_small_RLE.dcm", "MR_small.dcm"),
     ("MR_small_jp2klossless.dcm", "MR_small.dcm"), ("emri_small_jpeg_ls_lossless.dcm", "emri_small.dcm"),
     ("emri_small_RLE.dcm", "emri_small.dcm"), ("693_J2KR.dcm", "693_UNCR.dcm"), ("RG3_J2KR.dcm", "RG3_UNCR.dcm")],
)
def test_lossless_compressed_decodes_to_the_uncompressed_pixels(compressed, uncompressed):
    """JPEG-LS, RLE and JPEG 2000 lossless (single- and multi-frame, MR/CT/CR) give the uncompressed picture."""
    a, b = load_pixels(_file(compressed)), load_pixels(_file(uncompressed))
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_undecodable_pixels_name_the_transfer_syntax_and_missing_plugin(monkeypatch):
    # JPEG-lossy.dcm is a deliberately broken 12-bit JPEG Extended file in pydicom-data
    with pytest.raises(ValueError, match=r"JPEG-lossy\.dcm: cannot decode pixel data \(RuntimeError: .*\); the file may "
                                         r"be truncated, corrupt, or need a decoder plugin for JPEG Extended"):
        load_pixels(_file("JPEG-lossy.dcm"))

    class NoPlugin:
        is_available = False
        missing_dependencies = ["pylibjpeg - requires pylibjpeg>=2.0 and pylibjpeg-libjpeg>=2.1"]

    monkeypatch.setattr("pydicom.pixels.decoders.base.get_decoder", lambda uid: NoPlugin())
    with pytest.raises(ValueError, match=r"no decoder available; missing: pylibjpeg - requires .*; install radmine's "
                                         r"dependencies: pylibjpeg, pylibjpeg-libjpeg"):
        load_pixels(_file("JPEG-lossy.dcm"))


def test_downscale_area_average():
    from radmine.pixels import downscale

    a = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_allclose(downscale(a, 2), [[2.5, 4.5], [10.5, 12.5]])
    assert downscale(a, 8) is not None and downscale(a, 8).shape == (4, 4)
    with pytest.raises(ValueError, match=r"downscale: expected a 2-D image, got shape \(2, 4, 4\)"):
        downscale(np.zeros((2, 4, 4)), 2)
