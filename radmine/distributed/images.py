"""Image embeddings spread over Dask workers."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd

from radmine._validation import check_int
from radmine.corpus import Corpus
from radmine.distributed.client import current_client
from radmine.images.embed import QUARANTINE_COLUMNS, ImageEmbedder

__all__ = ["embed_images"]


def _build_embedder(params: dict) -> ImageEmbedder:
    """One task of the graph: the fitted embedder that every chunk task shares (built once, sent to workers)."""
    return ImageEmbedder(**params).fit()


def _embed_chunk(embedder: ImageEmbedder, table: pd.DataFrame, threads: int | None) -> tuple[np.ndarray, pd.DataFrame, int, int]:
    """Embed one chunk with a task-local copy of the shared embedder (cache shards are per call)."""
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    emb = copy.copy(embedder)  # quarantine_/n_computed_ of this chunk only; the backbone is shared
    X = emb.transform(table)
    return X, emb.quarantine_, int(emb.n_computed_), int(emb.n_cached_)


def embed_images(
    embedder: Any,
    images: Any,
    *,
    client: Any = None,
    chunk_size: int = 2048,
    threads_per_task: int | None = 1,
) -> np.ndarray:
    """:meth:`radmine.ImageEmbedder.transform` spread over Dask workers, result in input order.

    The images are cut into contiguous chunks. One task builds an
    ``ImageEmbedder`` with ``embedder``'s parameters; Dask sends it to the
    workers that embed the chunks. All tasks share ``embedder.cache_dir``:
    every call commits its own shard files (``shard-<seq>-<random>``, written
    atomically, index last), so two workers never write the same file and a
    killed run resumes from all committed shards.

    Parameters
    ----------
    embedder : ImageEmbedder
        Its parameters are used (``num_workers`` is forced to 0 and
        ``progress`` to False on the workers: Dask workers are the parallelism).
    images : Corpus, DataFrame (``image_id, path``) or list of paths
    client : distributed.Client, optional
        Default: the current client, else Dask's local scheduler.
    chunk_size : int, default 2048
        Images per task.
    threads_per_task : int, optional
        ``torch.set_num_threads`` inside each task (1 = one core per worker).

    Returns
    -------
    ndarray of float32, shape (n_images, dim)
        NaN rows for unreadable images; ``embedder.quarantine_``,
        ``n_computed_``, ``n_cached_`` are set as by ``transform``.
    """
    import dask

    chunk_size = check_int(chunk_size, "chunk_size", "embed_images", min_value=1)
    if isinstance(images, Corpus):
        table = pd.DataFrame({"image_id": images.images["image_id"].to_numpy(), "path": images.image_paths().to_numpy()})
    elif isinstance(images, pd.DataFrame):
        if not {"image_id", "path"} <= set(images.columns):
            raise ValueError(f"embed_images: an images DataFrame needs columns ['image_id', 'path']; it has {list(images.columns)}.")
        table = images[["image_id", "path"]].reset_index(drop=True)
    elif isinstance(images, (list, tuple, pd.Series)):
        paths = [str(p) for p in images]
        table = pd.DataFrame({"image_id": paths, "path": paths})
    else:
        raise TypeError(f"embed_images: images must be a Corpus, an images DataFrame or a list of paths; got {type(images).__name__}.")
    if not isinstance(embedder, ImageEmbedder):
        raise TypeError(f"embed_images: embedder must be an ImageEmbedder; got {type(embedder).__name__}.")
    params = embedder.get_params(deep=False)
    params.update(num_workers=0, progress=False)
    if params.get("cache_dir") is not None:
        params["cache_dir"] = str(params["cache_dir"])
    if client is None:
        client = current_client()
    chunks = [table.iloc[i : i + chunk_size] for i in range(0, len(table), chunk_size)]
    built = dask.delayed(_build_embedder, pure=True)(params)
    tasks = [dask.delayed(_embed_chunk, pure=False)(built, c, threads_per_task) for c in chunks]
    if client is not None:
        results = client.compute(tasks, sync=True)
    else:
        results = dask.compute(*tasks, scheduler="threads")
    if not hasattr(embedder, "backbone_"):
        embedder.fit()
    if results:
        X = np.concatenate([r[0] for r in results]).astype(np.float32, copy=False)
        qs = [r[1] for r in results if len(r[1])]
        embedder.record_transform(pd.concat(qs, ignore_index=True) if qs else pd.DataFrame(columns=QUARANTINE_COLUMNS),
                                  sum(r[2] for r in results), sum(r[3] for r in results))
    else:
        X = np.zeros((0, embedder.dim_), dtype=np.float32)
        embedder.record_transform(pd.DataFrame(columns=QUARANTINE_COLUMNS), 0, 0)
    return X
