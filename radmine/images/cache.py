"""A resumable on-disk cache of image embeddings, sharded and keyed by image id + settings fingerprint.

Layout under ``cache_dir``::

    <backbone>-<fingerprint>/          one folder per settings fingerprint
        settings.json                  the settings hashed into the fingerprint
        shard-000001-<rand>.npy        float32 (n, dim) embeddings
        shard-000001-<rand>.parquet    key, path, row  (written last: the commit mark)
        quarantine.parquet             key, image_id, path, reason

The fingerprint hashes everything that changes the numbers (backbone name and
weights id, image size, pooling, features, channel mode, resize, intensity
normalisation, crop and its threshold, test-time augmentation, mean/std,
radmine version), so different settings never mix:
they live in different folders. A shard counts only once its ``.parquet``
index exists; both files are written atomically (temp file + rename), so a
run killed at any point leaves only whole shards and resumes after the last
one. Nothing is pickled: ``.npy`` files are read with ``allow_pickle=False``.

Writers commit a shard every ``shard_size`` embeddings or every
:attr:`EmbeddingCache.save_every_seconds` (30 s), whichever comes first (see
:meth:`EmbeddingCache.due`), so a killed run loses at most about 30 s of work
even on a small or slow job.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radmine._io import atomic_write_bytes, atomic_write_json, atomic_write_parquet, fingerprint

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1
QUARANTINE_FILE = "quarantine.parquet"
SETTINGS_FILE = "settings.json"
_SHARD_RE = re.compile(r"^shard-(\d+)-([0-9a-f]+)\.parquet$")


class EmbeddingCache:
    """Sharded, resumable store of embeddings for one settings fingerprint.

    Parameters
    ----------
    cache_dir : str or Path
        Root folder; one sub-folder per settings fingerprint is created in it.
    settings : dict
        JSON-serialisable settings that determine the embeddings.
    name : str, default="emb"
        Readable prefix of the sub-folder (e.g. the backbone name).

    Attributes
    ----------
    folder : Path
        ``cache_dir / f"{name}-{fingerprint}"``.
    fingerprint : str
        16 hex digits hashing ``settings`` and the cache format.
    save_every_seconds : float
        :meth:`due` turns true this long after the last commit (class default 30.0).
    """

    save_every_seconds: float = 30.0

    def __init__(self, cache_dir: str | os.PathLike, settings: dict[str, Any], name: str = "emb") -> None:
        self.settings = {"cache_format": CACHE_FORMAT, **settings}
        self.fingerprint = fingerprint(self.settings)
        safe = re.sub(r"[^A-Za-z0-9_.]+", "_", str(name)).strip("_")[:40] or "emb"
        self.folder = Path(cache_dir) / f"{safe}-{self.fingerprint}"
        self.folder.mkdir(parents=True, exist_ok=True)
        settings_path = self.folder / SETTINGS_FILE
        if not settings_path.exists():
            atomic_write_json(settings_path, self.settings)
        self._index: dict[str, tuple[str, int]] | None = None
        self._arrays: dict[str, np.ndarray] = {}
        self._last_commit = time.monotonic()

    # -- reading --------------------------------------------------------
    def shards(self) -> list[str]:
        """Committed shard stems, in commit order."""
        found = []
        for p in self.folder.iterdir():
            m = _SHARD_RE.match(p.name)
            if m and (self.folder / (p.stem + ".npy")).is_file():
                found.append((int(m.group(1)), p.stem))
        return [stem for _, stem in sorted(found)]

    def _load_index(self) -> dict[str, tuple[str, int]]:
        if self._index is None:
            index: dict[str, tuple[str, int]] = {}
            for stem in self.shards():
                keys = pd.read_parquet(self.folder / f"{stem}.parquet", columns=["key", "row"])
                for key, row in zip(keys["key"].tolist(), keys["row"].tolist()):
                    index.setdefault(key, (stem, int(row)))
            self._index = index
        return self._index

    def _array(self, stem: str) -> np.ndarray:
        if stem not in self._arrays:
            self._arrays[stem] = np.load(self.folder / f"{stem}.npy", allow_pickle=False, mmap_mode="r")
        return self._arrays[stem]

    def keys(self) -> set[str]:
        """Keys with a stored embedding."""
        return set(self._load_index())

    def __len__(self) -> int:
        return len(self._load_index())

    def __contains__(self, key: str) -> bool:
        return key in self._load_index()

    def get(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Stored embeddings for ``keys``.

        Returns
        -------
        found : ndarray of bool, shape (n_keys,)
        vectors : ndarray of float32, shape (n_found, dim)
            Rows for the found keys, in the order of ``keys``.
        """
        index = self._load_index()
        found = np.array([k in index for k in keys], dtype=bool)
        rows = [np.asarray(self._array(index[k][0])[index[k][1]]) for k, f in zip(keys, found) if f]
        if rows:
            return found, np.stack(rows).astype(np.float32, copy=False)
        return found, np.zeros((0, 0), dtype=np.float32)

    def quarantine(self) -> pd.DataFrame:
        """Persisted failures: columns ``key, image_id, path, reason``."""
        path = self.folder / QUARANTINE_FILE
        if path.is_file():
            return pd.read_parquet(path)
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ["key", "image_id", "path", "reason"]})

    # -- writing --------------------------------------------------------
    def due(self, n_pending: int, max_items: int) -> bool:
        """Whether a writer holding ``n_pending`` uncommitted items should commit a shard now.

        True once ``n_pending >= max_items``, or when anything is pending and
        :attr:`save_every_seconds` have passed since the last commit (or since
        the cache was opened).
        """
        if n_pending <= 0:
            return False
        return n_pending >= max_items or time.monotonic() - self._last_commit >= self.save_every_seconds

    def write_shard(self, keys: Sequence[str], paths: Sequence[Any], vectors: np.ndarray) -> str | None:
        """Commit one shard (embeddings first, index last; both atomic). Returns its stem."""
        if len(keys) == 0:
            return None
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape[0] != len(keys):
            raise ValueError(f"write_shard: {len(keys)} keys but {vectors.shape[0]} vectors.")
        existing = [int(_SHARD_RE.match(p.name).group(1)) for p in self.folder.glob("shard-*.parquet") if _SHARD_RE.match(p.name)]
        seq = max(existing, default=0) + 1
        stem = f"shard-{seq:06d}-{uuid.uuid4().hex[:8]}"
        buf = io.BytesIO()
        np.save(buf, vectors, allow_pickle=False)
        atomic_write_bytes(self.folder / f"{stem}.npy", buf.getvalue())
        table = pd.DataFrame(
            {
                "key": [str(k) for k in keys],
                "path": [None if p is None else str(p) for p in paths],
                "row": np.arange(len(keys), dtype=np.int64),
            }
        )
        atomic_write_parquet(table, self.folder / f"{stem}.parquet")
        if self._index is not None:
            for i, k in enumerate(table["key"]):
                self._index.setdefault(k, (stem, i))
        self._last_commit = time.monotonic()
        return stem

    def add_quarantine(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append failures (dicts with ``key, image_id, path, reason``), replacing older rows of the same key."""
        rows = list(rows)
        if not rows:
            return
        new = pd.DataFrame(rows, columns=["key", "image_id", "path", "reason"]).astype(str)
        old = self.quarantine()
        both = pd.concat([old[~old["key"].isin(new["key"])], new], ignore_index=True)
        atomic_write_parquet(both, self.folder / QUARANTINE_FILE)
        self._last_commit = time.monotonic()

    def clear_quarantine(self) -> None:
        """Forget persisted failures so that the next run retries them."""
        path = self.folder / QUARANTINE_FILE
        if path.exists():
            path.unlink()

    def info(self) -> dict[str, Any]:
        """Folder, fingerprint, number of shards / embeddings / quarantined items."""
        return {
            "folder": str(self.folder),
            "fingerprint": self.fingerprint,
            "n_shards": len(self.shards()),
            "n_embeddings": len(self),
            "n_quarantined": len(self.quarantine()),
        }

    def __repr__(self) -> str:
        return f"EmbeddingCache({json.dumps(self.info())})"
