"""The synthetic PACS generator and the embedded corpus it wrote (corpora/synthetic-pacs)."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import radmine
from radmine.datasets import synthetic

TRUTH_TABLES = ["truth_links", "truth_labels", "truth_mentions", "truth_sentences", "truth_images", "truth_topics",
                "dicom_files"]


def _file_hashes(root: Path) -> dict[str, str]:
    out = {}
    for sub in ("images", "dicom"):
        for f in sorted((root / sub).glob("*")):
            out[f"{sub}/{f.name}"] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def small_pair(tmp_path_factory):
    a = radmine.make_synthetic_corpus(10, random_state=3, out_dir=tmp_path_factory.mktemp("a"))
    b = radmine.make_synthetic_corpus(10, random_state=3, out_dir=tmp_path_factory.mktemp("b"))
    return a, b


# -- determinism ---------------------------------------------------------------------------------
def test_same_seed_gives_identical_tables_and_bytes(small_pair):
    a, b = small_pair
    assert a.n_reports == 12 and a.n_images == 48
    assert set(a.tables) == set(b.tables)
    for key in a.tables:
        pd.testing.assert_frame_equal(a.tables[key], b.tables[key], check_exact=True)
    ha, hb = _file_hashes(Path(a.root)), _file_hashes(Path(b.root))
    assert len(ha) == a.n_images + len(a["dicom_files"]) and ha == hb


def test_other_seed_gives_other_corpus(small_pair, tmp_path):
    a, _ = small_pair
    c = radmine.make_synthetic_corpus(10, random_state=4, out_dir=tmp_path)
    assert not a.reports["text"].equals(c.reports["text"])
    assert _file_hashes(Path(a.root)) != _file_hashes(tmp_path)


def test_saved_folder_round_trips(small_pair):
    a, _ = small_pair
    loaded = radmine.Corpus.load(a.root)
    assert loaded.root is None  # the manifest stays location-free; load_embedded sets root
    for key in a.tables:
        pd.testing.assert_frame_equal(a.tables[key], loaded.tables[key])


def test_committed_corpus_equals_fresh_generation(embedded_corpus, tmp_path):
    """Nobody edits corpora/synthetic-pacs by hand: it must be what the generator writes."""
    # every table in full; pixels for every 7th study (+ the DICOM examples) to keep the test fast
    fresh = synthetic._build(120, 0, 128, tmp_path, 5, False, render=lambda i: i % 7 == 0)
    committed = embedded_corpus
    assert set(fresh.tables) == set(committed.tables)
    for key in fresh.tables:
        pd.testing.assert_frame_equal(fresh.tables[key], committed.tables[key], check_exact=True)
    root = Path(committed.root)
    on_disk = {f"images/{f.name}" for f in (root / "images").glob("*.png")}
    assert on_disk == set(committed.images["path"]), "stray or missing PNG files in the committed corpus"
    # PNG bytes may differ between zlib builds: compare decoded pixels
    rendered = sorted(f"images/{f.name}" for f in (tmp_path / "images").glob("*.png"))
    assert len(rendered) >= 80
    for rel in rendered:
        x = np.asarray(Image.open(root / rel), dtype=np.int16)
        y = np.asarray(Image.open(tmp_path / rel), dtype=np.int16)
        assert np.abs(x - y).max() <= 1 and np.mean(x != y) < 0.001, rel
    pydicom = pytest.importorskip("pydicom")
    for rel in committed["dicom_files"]["path"]:
        d1, d2 = pydicom.dcmread(root / rel), pydicom.dcmread(tmp_path / rel)
        assert d1.SOPInstanceUID == d2.SOPInstanceUID
        assert np.abs(d1.pixel_array.astype(int) - d2.pixel_array.astype(int)).max() <= 1


# -- contents ------------------------------------------------------------------------------------
def test_load_embedded_has_real_image_files(embedded_corpus):
    c = embedded_corpus
    assert c.name == "synthetic-pacs"
    assert Path(c.root).is_dir()
    paths = c.image_paths()
    assert paths.map(lambda p: Path(p).is_file()).all()
    assert 500 <= c.n_images <= 700 and 130 <= c.n_reports <= 170
    assert set(TRUTH_TABLES) <= set(c.tables)
    for col in ["image_id", "report_id", "patient_id", "study_id", "path", "modality", "view", "plane",
                "series_number", "instance_number", "caption"]:
        assert col in c.images.columns
    assert c.images["caption"].isna().all()


def test_load_embedded_unknown_name():
    with pytest.raises(KeyError, match="No embedded corpus named 'nope'"):
        radmine.load_embedded("nope")


def test_load_embedded_regenerates_when_folder_missing(monkeypatch, tmp_path):
    import radmine.datasets as ds
    from radmine import _paths

    monkeypatch.setattr(_paths, "embedded_dir", lambda: tmp_path / "no-repo")
    monkeypatch.setenv("RADMINE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(ds._EMBEDDED, "synthetic-pacs", dict(n_patients=4, random_state=0, image_size=64))
    c = radmine.load_embedded()
    assert str(tmp_path / "cache") in c.root
    assert c.image_paths().map(lambda p: Path(p).is_file()).all()
    again = radmine.load_embedded()  # reused from the cache
    pd.testing.assert_frame_equal(c.reports, again.reports)


def test_images_decode_with_lesions_inside(embedded_corpus):
    c = embedded_corpus
    ti = c["truth_images"].set_index("image_id")
    for image_id, path in zip(c.images["image_id"], c.image_paths()):
        with Image.open(path) as im:
            assert im.mode == "L" and im.size == (128, 128)
        row = ti.loc[image_id]
        if row["has_lesion"]:
            assert 0 <= row["lesion_x"] < 128 and 0 <= row["lesion_y"] < 128 and row["lesion_radius"] > 0
        else:
            assert np.isnan(row["lesion_x"])


def test_lesion_is_visible_where_truth_says(embedded_corpus):
    c = embedded_corpus
    ti = c["truth_images"]
    les = ti[ti["has_lesion"] & (ti["lesion_radius"] >= 3)]
    assert len(les) > 100
    paths = dict(zip(c.images["image_id"], c.image_paths()))
    contrast = []
    for _, r in les.iterrows():
        a = np.asarray(Image.open(paths[r["image_id"]]), dtype=float)
        yy, xx = np.mgrid[: a.shape[0], : a.shape[1]]
        d = np.hypot(xx - r["lesion_x"], yy - r["lesion_y"])
        inner = a[d < 0.6 * r["lesion_radius"]].mean()
        ring = a[(d > r["lesion_radius"] + 2) & (d < r["lesion_radius"] + 4)].mean()
        contrast.append(abs(inner - ring))
    assert np.median(contrast) > 20


def test_class_and_theme_balance(embedded_corpus):
    ti, tt = embedded_corpus["truth_images"], embedded_corpus["truth_topics"]
    counts = ti["image_class"].value_counts()
    assert len(counts) == 5 and counts.max() - counts.min() <= 8
    per_class = tt.groupby("image_class")["theme"].value_counts().unstack()
    assert per_class.shape == (5, 11)  # two themes per class + normal, per class
    themed = tt[~tt["is_normal"]].groupby("image_class")["theme"].value_counts()
    assert themed.max() - themed.min() <= 2
    assert 0.15 <= tt["is_normal"].mean() <= 0.25


def test_reports_sections_and_splits(embedded_corpus):
    rep = embedded_corpus.reports
    for _, r in rep.iterrows():
        assert r["text"].startswith(("INDICATION: ", "HISTORY: ", "CLINICAL HISTORY: ", "REASON FOR EXAM: "))
        for col in ("indication", "history", "comparison", "technique", "findings", "impression"):
            if isinstance(r[col], str):
                assert r[col] in r["text"]
        assert "\n\nFINDINGS: " in r["text"] and "\n\nIMPRESSION: " in r["text"]
    assert set(rep["split"]) == {"train", "dev", "test"}
    assert rep.groupby("patient_id")["split"].nunique().max() == 1
    assert rep["text"].str.contains("XXXX").mean() > 0.3
    assert rep["text"].str.contains(r"\d\.\d cm").any()


# -- ground-truth consistency --------------------------------------------------------------------
def test_truth_links_spans_and_resolution(embedded_corpus):
    c = embedded_corpus
    text = c.reports.set_index("report_id")["text"]
    tl = c["truth_links"]
    assert len(tl) > 400
    for _, r in tl.iterrows():
        t = text[r["report_id"]]
        assert r["sentence_start"] <= r["mention_start"] < r["mention_end"] <= r["sentence_end"]
        assert t[r["sentence_start"]:r["sentence_end"]] == r["sentence"]
        assert t[r["mention_start"]:r["mention_end"]] == r["mention"]
        numbers = [int(n) for n in re.findall(r"\d+", r["mention"])]
        if r["form"] in ("range", "range_abbrev", "range_inline", "carried_range"):
            assert numbers[-2] <= r["instance"] <= numbers[-1]
        else:
            assert r["instance"] in numbers
        if r["series_from"] == "mention":
            assert str(r["series"]) in r["mention"]
    img = c.images.set_index("image_id")
    res = tl[tl["resolved"]]
    assert res["image_id"].notna().all()
    linked = img.loc[res["image_id"]]
    assert (linked["report_id"].to_numpy() == res["report_id"].to_numpy()).all()
    assert (linked["series_number"].to_numpy() == res["series"].to_numpy()).all()
    assert (linked["instance_number"].to_numpy() == res["instance"].to_numpy()).all()
    unres = tl[~tl["resolved"]]
    assert unres["image_id"].isna().all() and 0.05 < len(unres) / len(tl) < 0.3
    keys = set(zip(c.images["report_id"], c.images["series_number"], c.images["instance_number"]))
    assert not any((r, s, i) in keys for r, s, i in zip(unres["report_id"], unres["series"], unres["instance"]))
    # every citation style of the brief occurs
    forms = set(tl["form"])
    assert {"paren", "inline", "abbrev", "of", "colon", "range", "list_inline", "carried"} <= forms
    assert {"mention", "sentence", "previous_sentence"} == set(tl["series_from"])


def test_truth_sentences_mentions_labels(embedded_corpus):
    c = embedded_corpus
    text = c.reports.set_index("report_id")["text"]
    ts, tm, tlab = c["truth_sentences"], c["truth_mentions"], c["truth_labels"]
    for _, r in ts.iterrows():
        assert text[r["report_id"]][r["start"]:r["end"]] == r["text"]
    for _, r in tm.iterrows():
        assert text[r["report_id"]][r["start"]:r["end"]] == r["mention"]
    assert set(tm["status"]) == {"positive", "negated", "uncertain"}
    assert set(tlab["label"]) == {1, 0, -1}
    # labels are the mention statuses aggregated (positive > uncertain > negated)
    agg = tm.assign(v=tm["status"].map({"positive": 2, "uncertain": 1, "negated": 0})).groupby(
        ["report_id", "finding"])["v"].max().map({2: 1, 1: -1, 0: 0})
    lab = tlab[tlab["finding"] != "normal"].set_index(["report_id", "finding"])["label"]
    pd.testing.assert_series_equal(agg.sort_index(), lab.sort_index(), check_names=False)
    normal = set(tlab.loc[tlab["finding"] == "normal", "report_id"])
    assert normal == set(c["truth_topics"].loc[lambda d: d["is_normal"], "report_id"])


def test_dicom_examples(embedded_corpus):
    pydicom = pytest.importorskip("pydicom")
    c = embedded_corpus
    df = c["dicom_files"]
    assert set(df["modality"]) == {"CT", "MR", "CR"}
    assert "MONOCHROME1" in set(df["photometric_interpretation"])
    for _, r in df.iterrows():
        ds = pydicom.dcmread(Path(c.root) / r["path"])
        assert ds.Rows == 128 and ds.Modality == r["modality"]
        img = c.images.set_index("image_id").loc[r["image_id"]]
        assert ds.SeriesNumber == img["series_number"] and ds.InstanceNumber == img["instance_number"]
        if ds.Modality == "CT":
            hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
            assert hu.min() < -900 and hu.max() > 300  # air and bone in Hounsfield units


# -- argument checks -----------------------------------------------------------------------------
def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="'n_patients' parameter of make_synthetic_corpus must be an int >= 1"):
        radmine.make_synthetic_corpus(0, out_dir=tmp_path)
    with pytest.raises(TypeError, match="'image_size' parameter of make_synthetic_corpus must be an int"):
        radmine.make_synthetic_corpus(2, image_size="big", out_dir=tmp_path)
    with pytest.raises(TypeError, match="'random_state' parameter of make_synthetic_corpus"):
        radmine.make_synthetic_corpus(2, random_state="x", out_dir=tmp_path)
    with pytest.raises(ValueError, match="must be >= 0"):
        radmine.make_synthetic_corpus(2, random_state=-1, out_dir=tmp_path)


def test_regenerate_refuses_foreign_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="is not a saved corpus"):
        synthetic.regenerate_embedded(tmp_path)


def test_png_writer_is_plain_grayscale():
    a = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 4).astype(np.uint8)
    back = np.asarray(Image.open(io.BytesIO(synthetic._png_bytes(a))))
    assert back.dtype == np.uint8 and (back == a).all()
