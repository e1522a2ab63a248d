"""Atomic file writes, output hashes and fingerprints shared by resumable jobs.

Every writer here writes to a temporary file in the target's folder
(``.<name>.<random>.tmp``), flushes and ``fsync``-s it, then renames it over
the target with :func:`os.replace` and ``fsync``-s the folder: a reader sees
the old file or the new one, never a part. Temporary files are created with
mode ``0o666`` minus the process umask, the mode a plain :func:`open` gives.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

#: Suffix of every temporary file or folder the writers below create.
TMP_SUFFIX = ".tmp"


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. a platform without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder: the rename is done, only less durable
        return
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on a clean exit it replaces ``path``.

    Parameters
    ----------
    path : str or PathLike
        The final file.
    mode : {"wb", "w"}
        Binary or text.
    **kwargs
        Passed to :func:`open` (e.g. ``encoding="utf-8"``, ``newline=""``).

    Yields
    ------
    file object
        Write to it; if the block raises, the temporary file is removed and
        ``path`` is left as it was.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open: mode must be 'wb' or 'w', got {mode!r}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    # O_EXCL + 0o666: the kernel applies the umask, as for a plain open()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder + fsync + rename)."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str))


def atomic_write_parquet(df, path: str | os.PathLike, **kwargs: Any) -> None:
    """Write a DataFrame to parquet atomically (``index=False`` unless given)."""
    kwargs.setdefault("index", False)
    with atomic_open(path, "wb") as fh:
        df.to_parquet(fh, **kwargs)


def atomic_write_csv(df, path: str | os.PathLike, **kwargs: Any) -> None:
    """Write a DataFrame to CSV atomically (``DataFrame.to_csv`` keywords)."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        df.to_csv(fh, **kwargs)


def atomic_write_npy(path: str | os.PathLike, array) -> None:
    """Write a numpy array to ``.npy`` atomically (never pickled)."""
    import numpy as np

    with atomic_open(path, "wb") as fh:
        np.save(fh, np.asarray(array), allow_pickle=False)


def atomic_save_figure(fig, path: str | os.PathLike, **kwargs: Any) -> None:
    """``fig.savefig`` to ``path`` atomically; the format follows the suffix unless given."""
    kwargs.setdefault("format", Path(path).suffix.lstrip(".") or "png")
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, **kwargs)


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Build a folder under a temporary name; on a clean exit it replaces ``path``.

    Yields
    ------
    Path
        The temporary folder to write into (e.g. ``model.save(tmp)``). An
        existing ``path`` is removed only once the new folder is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    tmp.mkdir(mode=0o777)
    try:
        yield tmp
        for root, _, files in os.walk(tmp):
            for name in files:
                _fsync_file(Path(root) / name)
        if path.exists():
            old = _tmp_name(path)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_tmp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete every ``*.tmp`` file or folder under ``folder`` (left by a killed writer).

    Only call this while no other process writes to ``folder``.

    Returns
    -------
    list of Path
        What was removed.
    """
    removed = []
    for root, dirs, files in os.walk(folder):
        for name in [d for d in dirs if d.endswith(TMP_SUFFIX)]:
            p = Path(root) / name
            shutil.rmtree(p, ignore_errors=True)
            dirs.remove(name)
            removed.append(p)
        for name in files:
            if name.endswith(TMP_SUFFIX):
                p = Path(root) / name
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                removed.append(p)
    return removed


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex), read in blocks."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def fingerprint(obj: Any) -> str:
    """A stable short hash of a JSON-serialisable object (settings, ids, ...)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def fingerprint_frame(df) -> str:
    """A stable hash of a DataFrame's content (values, columns and index)."""
    import pandas as pd

    h = hashlib.sha256()
    h.update(json.dumps([str(c) for c in df.columns]).encode())
    if len(df):
        h.update(pd.util.hash_pandas_object(df.astype(str), index=True).values.tobytes())
    return h.hexdigest()[:16]


def warn_if_other_version(meta: dict, what: str, path: Any, *, stacklevel: int = 3) -> None:
    """Warn (``UserWarning``) when ``meta["radmine_version"]`` is not this radmine's version.

    The object still loads; results may differ from those of the version that saved it.
    """
    import warnings

    import radmine

    saved = meta.get("radmine_version")
    if saved != radmine.__version__:
        warnings.warn(f"{what} at {path} was saved with radmine {saved}; this is radmine {radmine.__version__}.",
                      stacklevel=stacklevel)


def read_saved_meta(path: str | os.PathLike, filename: str, fmt: str, what: str) -> dict:
    """The JSON metadata ``path/filename`` of a saved object, checked to have ``"format": fmt``.

    The one reader behind radmine's ``load`` methods (models, corpora, embedders).

    Parameters
    ----------
    path : str or Path
        The saved folder.
    filename : str
        Its JSON file (``"model.json"``, ``"corpus.json"``, ...).
    fmt : str
        The expected ``format`` value.
    what : str
        What the folder should hold, for messages (``"radmine topic model"``).

    Returns
    -------
    dict

    Raises
    ------
    FileNotFoundError
        ``"<path> is not a saved <what>: <filename> not found."``
    ValueError
        Not JSON, or another format.
    """
    meta_path = Path(path) / filename
    if not meta_path.is_file():
        raise FileNotFoundError(f"{path} is not a saved {what}: {filename} not found.")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{meta_path}: not valid JSON ({err}).") from None
    if meta.get("format") != fmt:
        raise ValueError(f"{meta_path}: expected format {fmt!r}, found {meta.get('format')!r}.")
    warn_if_other_version(meta, what, path, stacklevel=4)
    return meta
