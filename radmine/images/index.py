"""Nearest-neighbour image search on faiss: :class:`ImageIndex`.

Exact search (``IndexFlatIP`` / ``IndexFlatL2``) by default; an inverted-file
index (``IndexIVFFlat``) for large sets, trained automatically on the vectors
of the first :meth:`ImageIndex.add` call. Saved as ``index.faiss``
(:func:`faiss.write_index`) + ``meta.json`` (ids and settings): no pickle.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radmine._io import atomic_write_json, warn_if_other_version
from radmine._validation import NotFittedError, check_int, check_option
from radmine.base import BaseEstimator

logger = logging.getLogger(__name__)

METRICS = ("ip", "l2")
INDEX_TYPES = ("flat", "ivf", "auto")
#: ``index_type="auto"`` switches to IVF from this many vectors (first ``add``).
AUTO_IVF_MIN = 50_000
INDEX_FILE = "index.faiss"
META_FILE = "meta.json"
FORMAT_VERSION = 1


def _faiss():
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a dependency
        raise ImportError("ImageIndex needs faiss: pip install faiss-cpu") from exc
    return faiss


class ImageIndex(BaseEstimator):
    """Nearest-neighbour search over image embeddings.

    Parameters
    ----------
    metric : {"ip", "l2"}, default="ip"
        Inner product (cosine similarity for L2-normalised vectors; higher is
        closer) or squared Euclidean distance (lower is closer).
    index_type : {"flat", "ivf", "auto"}, default="flat"
        ``"flat"``: exact search. ``"ivf"``: inverted file with ``nlist``
        cells, trained on the first batch added (approximate; ``nprobe`` cells
        visited per query). ``"auto"``: IVF when the first ``add`` has at
        least 50,000 vectors, else flat.
    nlist : int, optional
        IVF cells; default ``sqrt(n)`` clipped to ``[1, n // 39]``.
    nprobe : int, optional
        IVF cells searched per query; default ``max(1, nlist // 16)``.
    n_threads : int, optional
        faiss OpenMP threads while adding/searching (restored afterwards).
        ``None`` keeps faiss's default (all cores); ``1`` is faster on a
        small, busy machine, where OpenMP threads wait on each other.

    Attributes
    ----------
    index_ : faiss.Index
    ids_ : list
        Image ids in insertion order (row ``i`` of the index is ``ids_[i]``).
    dim_ : int
    kind_ : str
        ``"flat"`` or ``"ivf"`` (what was built).

    Examples
    --------
    >>> import numpy as np, radmine
    >>> X = np.eye(3, dtype="float32")
    >>> index = radmine.ImageIndex().add(X, ["a", "b", "c"])
    >>> ids, scores = index.search(X[:1], k=1)
    >>> ids[0, 0], float(scores[0, 0])
    ('a', 1.0)
    """

    def __init__(
        self,
        metric: str = "ip",
        index_type: str = "flat",
        nlist: int | None = None,
        nprobe: int | None = None,
        n_threads: int | None = None,
    ) -> None:
        self.metric = metric
        self.index_type = index_type
        self.nlist = nlist
        self.nprobe = nprobe
        self.n_threads = n_threads

    def _threads(self):
        """Context manager: faiss OpenMP threads = ``n_threads`` inside, restored on exit."""
        import contextlib

        @contextlib.contextmanager
        def ctx():
            if self.n_threads is None:
                yield
                return
            faiss = _faiss()
            before = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(int(self.n_threads))
            try:
                yield
            finally:
                faiss.omp_set_num_threads(before)

        return ctx()

    # -- building ----------------------------------------------------------
    def _build(self, X: np.ndarray) -> None:
        faiss = _faiss()
        owner = "ImageIndex"
        check_option(self.metric, "metric", owner, METRICS)
        check_option(self.index_type, "index_type", owner, INDEX_TYPES)
        if self.nlist is not None:
            check_int(self.nlist, "nlist", owner, min_value=1)
        if self.nprobe is not None:
            check_int(self.nprobe, "nprobe", owner, min_value=1)
        if self.n_threads is not None:
            check_int(self.n_threads, "n_threads", owner, min_value=1)
        n, dim = X.shape
        kind = self.index_type
        if kind == "auto":
            kind = "ivf" if n >= AUTO_IVF_MIN else "flat"
        faiss_metric = faiss.METRIC_INNER_PRODUCT if self.metric == "ip" else faiss.METRIC_L2
        if kind == "flat":
            index = faiss.IndexFlatIP(dim) if self.metric == "ip" else faiss.IndexFlatL2(dim)
        else:
            nlist = self.nlist or int(math.sqrt(n))
            nlist = max(1, min(nlist, max(1, n // 39)))
            if self.nlist is not None and nlist != self.nlist:
                logger.info("ImageIndex: nlist=%d lowered to %d for %d training vectors.", self.nlist, nlist, n)
            quantizer = faiss.IndexFlatIP(dim) if self.metric == "ip" else faiss.IndexFlatL2(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss_metric)
            with self._threads():
                index.train(X)
            index.nprobe = int(self.nprobe or max(1, nlist // 16))
            self._quantizer = quantizer  # keep the Python object alive alongside the index
        self.index_ = index
        self.ids_ = []
        self.dim_ = int(dim)
        self.kind_ = kind
        self._pos: dict[Any, int] = {}

    def add(self, vectors: Any, ids: Sequence[Any] | None = None) -> ImageIndex:
        """Add vectors (the first call builds, and for IVF trains, the index).

        Parameters
        ----------
        vectors : array-like, shape (n, dim)
            No NaN rows (drop the rows of quarantined images first).
        ids : sequence of length n, optional
            Image ids (unique, hashable); default ``0..n-1`` continuing the count.

        Returns
        -------
        self
        """
        X = self._as_matrix(vectors, "vectors")
        bad = ~np.isfinite(X).all(axis=1)
        if bad.any():
            rows = np.flatnonzero(bad)[:5].tolist()
            raise ValueError(
                f"ImageIndex.add: {int(bad.sum())} row(s) have NaN/inf values (first rows {rows}); drop them "
                f"first, e.g. X[~np.isnan(X).any(axis=1)] (NaN rows are images in ImageEmbedder.quarantine_)."
            )
        if not hasattr(self, "index_"):
            if len(X) == 0:
                raise ValueError("ImageIndex.add: the first add needs at least one vector.")
            self._build(X)
        elif X.shape[1] != self.dim_:
            raise ValueError(f"ImageIndex.add: vectors have {X.shape[1]} dimensions, the index has {self.dim_}.")
        start = len(self.ids_)
        ids = list(range(start, start + len(X))) if ids is None else list(ids)
        if len(ids) != len(X):
            raise ValueError(f"ImageIndex.add: {len(ids)} ids for {len(X)} vectors.")
        dup = [i for i in ids if i in self._pos]
        if dup or len(set(ids)) != len(ids):
            seen = set(self._pos)
            dup = dup or [i for i in ids if i in seen or seen.add(i)]
            raise ValueError(f"ImageIndex.add: ids must be unique; duplicated: {dup[:5]}.")
        with self._threads():
            self.index_.add(X)
        self._direct_map = False
        for j, i in enumerate(ids):
            self._pos[i] = start + j
        self.ids_.extend(ids)
        return self

    @staticmethod
    def _as_matrix(vectors: Any, what: str) -> np.ndarray:
        X = np.asarray(vectors, dtype=np.float32)
        if X.ndim == 1:
            X = X[None, :]
        if X.ndim != 2:
            raise ValueError(f"ImageIndex: {what} must be a 2-D array (n, dim); got shape {X.shape}.")
        return np.ascontiguousarray(X)

    def __len__(self) -> int:
        return len(getattr(self, "ids_", []))

    def _check_fitted(self) -> None:
        if not hasattr(self, "index_"):
            raise NotFittedError("This ImageIndex is empty. Call 'add' with vectors before searching.")

    def vectors(self, ids: Sequence[Any]) -> np.ndarray:
        """Stored vectors of ``ids``, shape ``(len(ids), dim)``; unknown ids raise ``KeyError``."""
        self._check_fitted()
        rows = []
        for i in ids:
            if i not in self._pos:
                raise KeyError(f"ImageIndex: unknown image id {i!r} (the index has {len(self.ids_)} ids).")
            rows.append(self._pos[i])
        if self.kind_ == "ivf" and not getattr(self, "_direct_map", False):
            self.index_.make_direct_map()
            self._direct_map = True
        if not rows:
            return np.zeros((0, self.dim_), dtype=np.float32)
        return np.vstack([self.index_.reconstruct(int(r)) for r in rows]).astype(np.float32)

    # -- searching -----------------------------------------------------------
    def search(self, query: Any, k: int = 10, *, exclude_self: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest images of each query.

        Parameters
        ----------
        query : array-like (m, dim) or (dim,), or a sequence of image ids
            Vectors, or ids already in the index (searched with their stored vector).
        k : int, default=10
        exclude_self : bool, default=True
            For id queries, drop the query image itself from its neighbours.

        Returns
        -------
        ids : ndarray, shape (m, k)
            Neighbour ids, best first (object dtype for non-integer ids);
            ``None`` (or -1 for integer ids) where fewer than ``k`` exist.
        scores : ndarray of float32, shape (m, k)
            Inner products (``metric="ip"``, higher is closer) or squared L2
            distances (``metric="l2"``, lower is closer); NaN where missing.
        """
        self._check_fitted()
        k = check_int(k, "k", "ImageIndex.search", min_value=1)
        Q, self_rows = self._queries(query)
        extra = 1 if (exclude_self and self_rows is not None) else 0
        kk = min(k + extra, len(self.ids_))
        with self._threads():
            D, I = self.index_.search(Q, kk)
        if extra:
            keep_I = np.full((len(Q), k), -1, dtype=np.int64)
            keep_D = np.full((len(Q), k), np.nan, dtype=np.float32)
            for r in range(len(Q)):
                mask = I[r] != self_rows[r]
                if mask.all():  # self not among the results (ties / IVF): drop the last one
                    mask[-1] = False
                row_I, row_D = I[r][mask][:k], D[r][mask][:k]
                keep_I[r, : len(row_I)] = row_I
                keep_D[r, : len(row_D)] = row_D
            I, D = keep_I, keep_D
        elif kk < k:
            I = np.pad(I, ((0, 0), (0, k - kk)), constant_values=-1)
            D = np.pad(D.astype(np.float32), ((0, 0), (0, k - kk)), constant_values=np.nan)
        D = np.where(I < 0, np.nan, D).astype(np.float32)
        return self._labels(I), D

    def _queries(self, query: Any) -> tuple[np.ndarray, list[int] | None]:
        if isinstance(query, np.ndarray) and query.dtype.kind in "fc":
            return self._check_dim(self._as_matrix(query, "query")), None
        if hasattr(query, "detach"):  # torch tensor
            return self._check_dim(self._as_matrix(query.detach().cpu().numpy(), "query")), None
        if isinstance(query, (str, bytes)) or not isinstance(query, (Sequence, np.ndarray, pd.Series, pd.Index)):
            query = [query]
        items = list(query)
        if items and all(
            isinstance(q, (list, tuple, np.ndarray)) or (isinstance(q, (float, np.floating))) for q in items
        ):
            return self._check_dim(self._as_matrix(np.asarray(items, dtype=np.float32), "query")), None
        rows = []
        for q in items:
            if q not in self._pos:
                raise KeyError(f"ImageIndex.search: unknown image id {q!r} (the index has {len(self.ids_)} ids).")
            rows.append(self._pos[q])
        return self.vectors(items), rows

    def _check_dim(self, Q: np.ndarray) -> np.ndarray:
        if Q.shape[1] != self.dim_:
            raise ValueError(f"ImageIndex.search: query has {Q.shape[1]} dimensions, the index has {self.dim_}.")
        return Q

    def _labels(self, I: np.ndarray) -> np.ndarray:
        ints = all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in self.ids_)
        if ints:
            table = np.asarray(self.ids_, dtype=np.int64)
            return np.where(I >= 0, table[np.clip(I, 0, None)], -1)
        table = np.empty(len(self.ids_) + 1, dtype=object)
        table[:-1] = self.ids_
        table[-1] = None
        return table[np.where(I >= 0, I, len(self.ids_))]

    def search_frame(self, query: Any, k: int = 10, *, exclude_self: bool = True) -> pd.DataFrame:
        """:meth:`search` as a long table: ``query, rank, image_id, score`` (rank 1 = nearest).

        ``query`` holds the query id (id queries) or its row position (vector queries).
        """
        ids, scores = self.search(query, k, exclude_self=exclude_self)
        Q, self_rows = self._queries(query)
        if self_rows is not None:
            items = list(query) if not isinstance(query, (str, bytes)) and isinstance(
                query, (Sequence, np.ndarray, pd.Series, pd.Index)
            ) else [query]
        else:
            items = list(range(len(Q)))
        m = ids.shape[0]
        frame = pd.DataFrame(
            {
                "query": np.repeat(np.asarray(items, dtype=object), k),
                "rank": np.tile(np.arange(1, k + 1), m),
                "image_id": ids.reshape(-1),
                "score": scores.reshape(-1),
            }
        )
        valid = ~(pd.isna(frame["image_id"]) | (frame["image_id"].astype(object) == -1))
        return frame[valid].reset_index(drop=True)

    # -- persistence -----------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``index.faiss`` and ``meta.json`` (ids, settings, radmine version) into folder ``path``."""
        import radmine

        self._check_fitted()
        faiss = _faiss()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{INDEX_FILE}.tmp"
        faiss.write_index(self.index_, str(tmp))
        os.replace(tmp, folder / INDEX_FILE)
        ints = all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in self.ids_)
        meta = {
            "format_version": FORMAT_VERSION,
            "radmine_version": radmine.__version__,
            "metric": self.metric,
            "index_type": self.index_type,
            "kind": self.kind_,
            "nlist": self.nlist,
            "nprobe": self.nprobe,
            "n_threads": self.n_threads,
            "dim": self.dim_,
            "id_type": "int" if ints else "str",
            "ids": [int(i) for i in self.ids_] if ints else [str(i) for i in self.ids_],
        }
        if not ints and any(not isinstance(i, str) for i in self.ids_):
            logger.info("ImageIndex.save: non-string ids are stored as strings.")
        atomic_write_json(folder / META_FILE, meta)
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike) -> ImageIndex:
        """Read an index written by :meth:`save`."""
        faiss = _faiss()
        folder = Path(path)
        for name in (INDEX_FILE, META_FILE):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"ImageIndex.load: {folder / name} not found (expected a folder from save()).")
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        warn_if_other_version(meta, "ImageIndex", folder)
        obj = cls(metric=meta["metric"], index_type=meta["index_type"], nlist=meta.get("nlist"),
                  nprobe=meta.get("nprobe"), n_threads=meta.get("n_threads"))
        obj.index_ = faiss.read_index(str(folder / INDEX_FILE))
        obj.ids_ = list(meta["ids"])
        obj.dim_ = int(meta["dim"])
        obj.kind_ = meta["kind"]
        obj._pos = {i: j for j, i in enumerate(obj.ids_)}
        if obj.index_.ntotal != len(obj.ids_):
            raise ValueError(
                f"ImageIndex.load: {folder} holds {obj.index_.ntotal} vectors but {len(obj.ids_)} ids; the files do not match."
            )
        return obj

    def _summary_rows(self) -> dict[str, Any]:
        rows = super()._summary_rows()
        if hasattr(self, "index_"):
            rows.update({"kind_": self.kind_, "n_vectors": len(self.ids_), "dim_": self.dim_})
        return rows
