"""Hostile and broken inputs (issue 17): bombs, oversize members, links and FIFOs, unreadable files,
malformed CSV rows, Dask collections given to in-memory functions. Every item in is an item out or a
quarantine row; nothing reaches the command line as a traceback.

The machine may run the tests as root, for whom ``chmod 000`` hides nothing, so "permission denied"
is simulated by making the exact call the reader makes raise :class:`PermissionError`.
"""

from __future__ import annotations

import builtins
import gzip
import io
import json
import os
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import radmine
from radmine.cli import main
from radmine.readers.limits import get_limits, limits, set_limits

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file  # noqa: E402


def _xml(rid: str, findings: str = "Clear lungs.", images: tuple[str, ...] = ()) -> bytes:
    imgs = "".join(f'<parentImage id="{i}"><caption>c</caption></parentImage>' for i in images)
    return (
        f'<eCitation><uId id="{rid}"/><MedlineCitation><Article><Abstract>'
        f'<AbstractText Label="FINDINGS">{findings}</AbstractText>'
        f'<AbstractText Label="IMPRESSION">{"Normal." if findings else ""}</AbstractText>'
        f"</Abstract></Article></MedlineCitation>{imgs}</eCitation>"
    ).encode()


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def _special(tf: tarfile.TarFile, name: str, kind: bytes, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    tf.addfile(info)


def _png_bomb(path: Path, width: int = 40_000, height: int = 40_000) -> Path:
    """A tiny PNG whose header declares ``width x height`` pixels (1.6 billion by default)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
                     + chunk(b"IEND", b""))
    return path


def _huge_dicom(path: Path) -> Path:
    """MR_small with a header claiming 65535 x 65535 pixels (the pixel data is still 64 x 64)."""
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.Rows = ds.Columns = 65535
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4.5.6.7.8.9"
    ds.save_as(path)
    return path


def _dropped(c) -> int:
    return int((~c.quarantine["kept"].astype(bool)).sum())


# ----------------------------------------------------------------------------- archives
def test_tar_links_fifos_oversize_and_empty_reports_are_quarantined(tmp_path):
    path = tmp_path / "reports.tgz"
    big = _xml("CXR2", "x" * 300_000)
    with tarfile.open(path, "w:gz") as tf:
        _add(tf, "ecgen-radiology/1.xml", _xml("CXR1", images=("CXR1_1_IM-0001-1001",)))
        _add(tf, "ecgen-radiology/2.xml", big)  # over the member limit below
        _special(tf, "ecgen-radiology/3.xml", tarfile.SYMTYPE, "/etc/passwd")
        _special(tf, "ecgen-radiology/4.xml", tarfile.LNKTYPE, "ecgen-radiology/1.xml")
        _special(tf, "ecgen-radiology/5.xml", tarfile.FIFOTYPE)
        _add(tf, "ecgen-radiology/6.xml", _xml("CXR6", findings=""))  # every section empty
        _add(tf, "ecgen-radiology/7.xml", _xml("CXR7"))  # valid members after the oversize one are read
    with limits(max_member_bytes=100_000):
        c = radmine.read_openi(path, progress=False)
    q = c.quarantine.set_index("item")
    assert sorted(c.reports["report_id"]) == ["CXR1", "CXR6", "CXR7"]
    assert q.loc["ecgen-radiology/2.xml", "reason"].startswith("member is 293.")
    assert "over the limit of 97.7 KiB per member" in q.loc["ecgen-radiology/2.xml", "reason"]
    assert q.loc["ecgen-radiology/3.xml -> /etc/passwd", "reason"].startswith("symbolic link member")
    assert q.loc["ecgen-radiology/4.xml -> ecgen-radiology/1.xml", "reason"].startswith("hard link member")
    assert q.loc["ecgen-radiology/5.xml", "reason"].startswith("FIFO member")
    assert q.loc["ecgen-radiology/6.xml", "reason"] == "report CXR6 has no text (every section is empty); kept with text=''"
    assert bool(q.loc["ecgen-radiology/6.xml", "kept"])
    # items in (7 members) == reports out + dropped quarantine rows
    assert c.n_reports + _dropped(c) == 7
    assert get_limits()["max_member_bytes"] == 64 * 2**20  # the context manager restored the default
    # `radmine label` takes the archive too (any SOURCE)
    out = tmp_path / "labels.csv"
    assert main(["label", str(path), "--out", str(out)]) == 0
    assert sorted(pd.read_csv(out, index_col=0).index) == ["CXR1", "CXR2", "CXR6", "CXR7"]  # default 64 MiB limit


def test_folder_with_unreadable_files_and_folders(tmp_path, monkeypatch):
    folder = tmp_path / "xml"
    (folder / "sub").mkdir(parents=True)
    for i in (1, 2, 3):
        (folder / f"{i}.xml").write_bytes(_xml(f"CXR{i}"))
    (folder / "sub" / "4.xml").write_bytes(_xml("CXR4"))
    os.mkfifo(folder / "5.xml")
    denied_file, denied_dir = folder / "2.xml", folder / "sub"
    real_read_bytes, real_scandir = Path.read_bytes, os.scandir

    def read_bytes(self):
        if self == denied_file:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_bytes(self)

    def scandir(p="."):
        if Path(p) == denied_dir:
            raise PermissionError(13, "Permission denied", str(p))
        return real_scandir(p)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    monkeypatch.setattr(os, "scandir", scandir)
    c = radmine.read_openi(folder, progress=False)
    q = c.quarantine.set_index("item")["reason"]
    assert sorted(c.reports["report_id"]) == ["CXR1", "CXR3"]
    assert q["2.xml"] == "cannot read file (Permission denied)"
    assert q["sub"] == "cannot list folder (Permission denied); its files were not read"
    assert q["5.xml"] == "not a regular file (FIFO, socket or device)"


def test_nothing_readable_is_one_error_naming_the_path_and_no_cli_traceback(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "xml"
    folder.mkdir()
    (folder / "1.xml").write_bytes(_xml("CXR1"))
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: (_ for _ in ()).throw(PermissionError(13, "Permission denied", str(self)))
                        if self.suffix == ".xml" else real(self))
    with pytest.raises(ValueError, match=r"read_openi: nothing under .*xml could be read: 1 file\(s\)/folder\(s\) "
                                         r"are unreadable, e\.g\. 1\.xml \(cannot read file \(Permission denied\)\)"):
        radmine.read_openi(folder, progress=False)
    assert main(["info", str(folder)]) == 2
    assert "nothing under" in capsys.readouterr().err
    # any other OSError reaching the CLI is one line naming the path
    monkeypatch.setattr("radmine.readers.read_corpus", lambda *a, **k: (_ for _ in ()).throw(
        PermissionError(13, "Permission denied", "/data/pacs/locked")))
    assert main(["info", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "radmine info: error: cannot access /data/pacs/locked: Permission denied"


def test_dicom_unreadable_subfolder_file_fifo_and_huge_header(tmp_path, monkeypatch):
    folder = tmp_path / "dicom"
    (folder / "locked").mkdir(parents=True)
    for name in ("CT_small.dcm", "MR_small.dcm"):
        (folder / name).write_bytes(Path(get_testdata_file(name)).read_bytes())
    (folder / "locked" / "x.dcm").write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes())
    os.mkfifo(folder / "pipe.dcm")
    _huge_dicom(folder / "huge.dcm")
    denied = folder / "MR_small.dcm"
    real_scandir, real_open = os.scandir, builtins.open

    def scandir(p="."):
        if Path(p) == folder / "locked":
            raise PermissionError(13, "Permission denied", str(p))
        return real_scandir(p)

    def fake_open(file, *args, **kwargs):
        if Path(str(file)) == denied:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr("radmine.readers.dicom.open", fake_open, raising=False)
    assert radmine.readers.detect_kind(folder) == "dicom"  # the FIFO is not opened (it would block)
    c = radmine.read_dicom(folder, progress=False)
    q = c.quarantine.set_index("item")["reason"]
    assert c.n_images == 1
    assert q[str(folder / "locked")] == "cannot list folder (Permission denied); its files were not read"
    assert q[str(denied)] == "cannot open file (Permission denied)"
    assert q[str(folder / "pipe.dcm")] == "not a regular file (FIFO, socket or device)"
    assert q[str(folder / "huge.dcm")].startswith(
        "image too large: 65535 rows x 65535 columns x 1 frame(s) x 1 sample(s) = 4,294,836,225 pixel values, "
        "over the limit of 268,000,000")
    # files in (4 listed; the locked folder's file never seen) == images + dropped rows - the folder row
    assert c.n_images + _dropped(c) - 1 == 4


def test_huge_dicom_header_refused_before_decoding(tmp_path):
    path = _huge_dicom(tmp_path / "huge.dcm")
    with pytest.raises(ValueError, match=r"huge\.dcm: image too large: 65535 rows x 65535 columns .* over the limit"):
        radmine.load_pixels(path)
    with pytest.raises(ValueError, match=r"image too large: 64 rows x 64 columns x 1 frame\(s\) x 1 sample\(s\) = "
                                         r"4,096 pixel values, over the limit of 100"):
        radmine.load_pixels(get_testdata_file("MR_small.dcm"), max_pixels=100)
    with pytest.raises(ValueError, match=r"set_limits: max_image_pixels must be a positive int"):
        set_limits(max_image_pixels=0)
    with pytest.raises(ValueError, match=r"set_limits: unknown limit 'max_pixels'"):
        set_limits(max_pixels=10)


# ----------------------------------------------------------------------------- PNG bombs
def test_png_decompression_bomb_is_a_quarantine_row_everywhere(tmp_path, capsys):
    bomb = _png_bomb(tmp_path / "bomb.png")
    with pytest.raises(ValueError, match=r"bomb\.png: decompression bomb refused by PIL"):
        radmine.load_pixels(bomb)
    # the embedder: a quarantine row and a warning, the other image embedded
    good = tmp_path / "good.png"
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40), dtype=np.uint8)).save(good)
    emb = radmine.ImageEmbedder("random_cnn", image_size=32, progress=False, random_state=0)
    with pytest.warns(UserWarning, match=r"ImageEmbedder\.transform: 1 of 2 images could not be loaded .*"
                                         r"see `\.quarantine_`; most common reason: ValueError: decompression bomb refused by PIL \(1\)"):
        X = emb.transform([bomb, good])
    assert np.isnan(X[0]).all() and np.isfinite(X[1]).all()
    assert emb.quarantine_["path"].tolist() == [str(bomb)]
    # MedPix: the row stays with path=None and a reason; `radmine info` works
    root = tmp_path / "medpix"
    (root / "images").mkdir(parents=True)
    case = {"U_id": "MPX1", "TAC": ["MPX1_a", "MPX1_b"], "MRI": [], "Case": {"Findings": "Mass."}, "Topic": {}}
    descs = [{"U_id": "MPX1", "image": s, "Type": "CT", "Description": {}} for s in ("MPX1_a", "MPX1_b")]
    (root / "Case_topic.json").write_text(json.dumps([case]))
    (root / "Descriptions.json").write_text(json.dumps(descs))
    _png_bomb(root / "images" / "MPX1_a.png")
    Image.open(good).save(root / "images" / "MPX1_b.png")
    c = radmine.read_medpix(root, progress=False)
    assert c.images.set_index("image_id")["path"].isna().tolist() == [True, False]
    q = c.quarantine.set_index("item")
    assert q.loc["images/MPX1_a.png", "reason"].startswith("decompression bomb refused by PIL")
    assert main(["info", str(root)]) == 0
    assert "quarantine           : 1" in capsys.readouterr().out


def test_image_over_the_pixel_limit_is_refused_from_its_header(tmp_path):
    from PIL import Image

    path = tmp_path / "wide.png"
    Image.new("L", (300, 200)).save(path)
    with pytest.raises(ValueError, match=r"wide\.png: image too large: 300 x 200 x 1 band\(s\) = 60,000 pixel values"):
        radmine.load_pixels(path, max_pixels=50_000)


# ----------------------------------------------------------------------------- tables
def test_gzip_table_bomb_is_refused_at_the_limit(tmp_path):
    path = tmp_path / "reports.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("report_id,text\n")
        for i in range(20_000):
            fh.write(f"r{i},{'No acute finding. ' * 10}\n")
    assert path.stat().st_size < 100_000  # inflates to 3.7 MB
    with limits(max_table_bytes=1_000_000):
        with pytest.raises(ValueError, match=r"reports\.csv\.gz: the table is larger than the limit of 976\.6 KiB "
                                             r"after gzip decompression .*set_limits\(max_table_bytes=\.\.\.\)"):
            radmine.read_reports(path)
    assert radmine.read_reports(path).n_reports == 20_000
    # the Open-i DICOM table (handed to pandas) is measured first
    xml = tmp_path / "1.xml"
    xml.write_bytes(_xml("CXR1"))
    with limits(max_table_bytes=1_000_000):
        with pytest.raises(ValueError, match=r"reports\.csv\.gz: the table is larger than the limit of 976\.6 KiB"):
            radmine.read_openi(xml, dicom_table=path, progress=False)


def test_malformed_csv_rows_go_to_quarantine_with_their_line(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text('report_id,text\nr1,No effusion, no pneumothorax.\nr2,Clear.\nr3,"Quoted, fine."\nr4\n')
    with pytest.warns(UserWarning, match=r"export\.csv: 2 row\(s\) have the wrong number of fields and were not read "
                                         r"\(2 read\); first: export\.csv line 2: expected 2 fields"):
        c = radmine.read_reports(path)
    assert c.reports["report_id"].tolist() == ["r2", "r3"]
    assert c.reports["text"].tolist() == ["Clear.", "Quoted, fine."]
    q = c.quarantine.set_index("item")
    assert q.loc["export.csv line 2", "reason"].startswith("expected 2 fields (as in the header), found 3")
    assert q.loc["export.csv line 5", "reason"].startswith("expected 2 fields (as in the header), found 1")
    assert c.n_reports + _dropped(c) == 4


def test_label_cli_on_garbage_does_not_exit_silently(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("report_id,text\nr1,No effusion, no pneumothorax.\nr2,Clear.\n")
    out = tmp_path / "labels.csv"
    assert main(["label", str(path), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "1 row(s) could not be read and were not labelled (first: bad.csv line 2" in err
    assert pd.read_csv(out, index_col=0).index.tolist() == ["r2"]
    assert pd.read_csv(tmp_path / "labels.csv.quarantine.csv")["item"].tolist() == ["bad.csv line 2"]
    only_bad = tmp_path / "only_bad.csv"
    only_bad.write_text("report_id,text\nr1,a,b\n")
    assert main(["label", str(only_bad), "--out", str(tmp_path / "none.csv")]) == 2
    assert "no report could be read (1 row(s) quarantined)" in capsys.readouterr().err
    assert not (tmp_path / "none.csv").exists()


def test_label_streams_in_chunks_and_writes_atomically(tmp_path, monkeypatch, capsys):
    texts = ["FINDINGS: Small left pleural effusion.", "IMPRESSION: No pneumothorax.", "FINDINGS: Cardiomegaly.",
             "IMPRESSION: Possible pneumonia.", "FINDINGS: Clear lungs.", "IMPRESSION: No effusion."]
    df = pd.DataFrame({"ACC": [f"A{i}" for i in range(6)], "BODY": texts})
    src = tmp_path / "ris.csv"
    df.to_csv(src, index=False, encoding="cp1252")
    whole = radmine.label_reports(df.rename(columns={"ACC": "report_id", "BODY": "text"}))
    for out in (tmp_path / "l.csv", tmp_path / "l.parquet"):
        assert main(["label", str(src), "--out", str(out), "--column", "ACC=report_id", "--column", "BODY=text",
                     "--chunksize", "2", "--mentions", str(out.with_suffix(".mentions" + out.suffix))]) == 0
        got = pd.read_parquet(out) if out.suffix == ".parquet" else pd.read_csv(out, index_col=0)
        pd.testing.assert_frame_equal(got.astype(float), whole.astype(float), check_names=False)
    capsys.readouterr()
    # a failure in the third chunk leaves the earlier output untouched and no temporary file
    from radmine.labels.labeler import WeakLabeler

    before = (tmp_path / "l.csv").read_bytes()
    calls = {"n": 0}
    real = WeakLabeler.transform

    def failing(self, reports, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise ValueError("simulated failure in chunk 3")
        return real(self, reports, **kw)

    monkeypatch.setattr(WeakLabeler, "transform", failing)
    assert main(["label", str(src), "--out", str(tmp_path / "l.csv"), "--column", "ACC=report_id",
                 "--column", "BODY=text", "--chunksize", "2"]) == 2
    assert "simulated failure in chunk 3" in capsys.readouterr().err
    assert (tmp_path / "l.csv").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_column_and_encoding_errors_name_the_flag(tmp_path, capsys):
    src = tmp_path / "ris.csv"
    src.write_bytes("ACC,BODY\nA1,Gr\u00f6\u00dfe \u2013 stabil.\n".encode("cp1252"))
    assert main(["label", str(src), "--out", str(tmp_path / "o.csv"), "--column", "ACC"]) == 2
    assert "--column expects THEIRS=ours (e.g. ACC_NO=accession), got 'ACC'" in capsys.readouterr().err
    assert main(["label", str(src), "--out", str(tmp_path / "o.csv"), "--column", "ACC=report_id",
                 "--column", "BODY=text"]) == 2
    assert "Pass the export's encoding" in capsys.readouterr().err
    assert main(["label", str(src), "--out", str(tmp_path / "o.csv"), "--column", "ACC=report_id",
                 "--column", "BODY=text", "--encoding", "cp1252"]) == 0
    with pytest.raises(ValueError, match=r"--reports \(read\.reports_file\) joins reports to a DICOM folder"):
        radmine.readers.read_source(src, reports=src)


# ----------------------------------------------------------------------------- Dask
def test_dask_collections_dispatch_or_name_the_dask_function():
    dd = pytest.importorskip("dask.dataframe")
    df = pd.DataFrame({"report_id": [f"r{i}" for i in range(12)],
                       "text": ["FINDINGS: Small effusion." if i % 2 else "IMPRESSION: No pneumothorax." for i in range(12)]})
    ddf = dd.from_pandas(df, npartitions=3)
    lazy = radmine.label_reports(ddf)
    assert radmine.dask.is_dask_collection(lazy)
    got = lazy.compute().sort_index()
    pd.testing.assert_frame_equal(got, radmine.label_reports(df).sort_index(), check_names=False)
    with pytest.raises(TypeError, match=r"WeakLabeler\.transform works on in-memory tables; got a Dask DataFrame\. "
                                        r"Use radmine\.dask\.label_reports\(ddf, labeler=labeler\)"):
        radmine.WeakLabeler().fit().transform(ddf)
    with pytest.raises(TypeError, match=r"sentence_table .* Use radmine\.dask\.sentences\(ddf\)"):
        radmine.sentence_table(ddf)
    with pytest.raises(TypeError, match=r"read_reports .* Use radmine\.dask\.read_reports_sharded\(paths\)"):
        radmine.read_reports(ddf)
