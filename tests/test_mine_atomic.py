"""The atomic writers, the output lock and the embedding cache's save schedule behind ``radmine mine``."""

from __future__ import annotations

import os
import stat

import numpy as np
import pandas as pd
import pytest

from radmine import _io
from radmine.images.cache import EmbeddingCache
from radmine.pipeline.runner import OutputLockedError, output_lock


@pytest.fixture()
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_every_writer_follows_the_umask(tmp_path, umask_027):
    df = pd.DataFrame({"a": [1, 2]})
    _io.atomic_write_parquet(df, tmp_path / "t.parquet")
    _io.atomic_write_csv(df, tmp_path / "t.csv", index=False)
    _io.atomic_write_json(tmp_path / "t.json", {"a": 1})
    _io.atomic_write_npy(tmp_path / "t.npy", np.ones(3))
    with _io.atomic_folder(tmp_path / "model") as d:
        (d / "w.bin").write_bytes(b"1")
    for name in ("t.parquet", "t.csv", "t.json", "t.npy", "model/w.bin"):
        assert _mode(tmp_path / name) == 0o640, name
    assert _mode(tmp_path / "model") == 0o750
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t.parquet"), df)
    np.testing.assert_array_equal(np.load(tmp_path / "t.npy"), np.ones(3))


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with _io.atomic_open(target, "w") as fh:
            fh.write("half of the new")
            raise RuntimeError("disk full")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "old.bin").write_bytes(b"old")
    with pytest.raises(RuntimeError, match="killed"):
        with _io.atomic_folder(tmp_path / "model") as d:
            (d / "new.bin").write_bytes(b"new")
            raise RuntimeError("killed")
    assert [p.name for p in (tmp_path / "model").iterdir()] == ["old.bin"]
    with _io.atomic_folder(tmp_path / "model") as d:
        (d / "new.bin").write_bytes(b"new")
    assert [p.name for p in (tmp_path / "model").iterdir()] == ["new.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "table.csv"]
    with pytest.raises(ValueError, match="mode must be 'wb' or 'w'"):
        with _io.atomic_open(target, "a"):
            pass


def test_leftover_temporaries_are_removed(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / ".x.parquet.1f.tmp").write_bytes(b"half")
    (tmp_path / ".model.2e.tmp").mkdir()
    (tmp_path / "keep.parquet").write_bytes(b"whole")
    removed = _io.remove_tmp_files(tmp_path)
    assert sorted(p.name for p in removed) == [".model.2e.tmp", ".x.parquet.1f.tmp"]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["a", "keep.parquet"]


def test_output_lock_is_exclusive_and_released(tmp_path):
    with output_lock(tmp_path / "out"):
        with pytest.raises(OutputLockedError, match=r"is in use by another radmine mine \(pid \d+ on .+, since "):
            with output_lock(tmp_path / "out"):
                pass
    with output_lock(tmp_path / "out"):  # released on exit
        pass


def test_embedding_cache_commits_by_count_and_by_time(tmp_path, monkeypatch):
    import radmine.images.cache as cache_mod

    now = [1000.0]
    monkeypatch.setattr(cache_mod.time, "monotonic", lambda: now[0])
    cache = EmbeddingCache(tmp_path, {"backbone": "x"})
    assert not cache.due(0, 1024) and not cache.due(10, 1024)
    assert cache.due(1024, 1024)  # by count
    now[0] += 29.0
    assert not cache.due(10, 1024)
    now[0] += 1.5
    assert cache.due(10, 1024)  # by time: 30 s after the cache was opened
    cache.write_shard(["a"], [None], np.ones((1, 2)))
    assert not cache.due(10, 1024)  # the clock restarts at each commit
    now[0] += 31.0
    assert cache.due(1, 1024)
