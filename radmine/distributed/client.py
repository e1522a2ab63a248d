"""The Dask client and the few graph helpers every distributed pipeline uses.

Nothing here knows a pipeline: :func:`map_partitions` maps a pipeline's own
public function of one pandas partition, :func:`shared` puts an object (a
fitted labeller, a topic model, the images table) in the graph once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd

from radmine._validation import check_int, is_dask_collection

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_PARTITION_SIZE", "as_dask_frame", "compute", "current_client", "from_pandas", "get_client",
           "is_dask_collection", "iter_computed", "map_partitions", "shared"]

#: Rows per partition used by :func:`from_pandas` when neither ``npartitions`` nor ``partition_size`` is given.
DEFAULT_PARTITION_SIZE = 2000


def get_client(
    address_or_local: Any = "local",
    n_workers: int = 2,
    threads_per_worker: int = 1,
    memory_limit: str | int | None = "auto",
    *,
    processes: bool = True,
    **cluster_kwargs: Any,
):
    """A ``distributed.Client``: a new local cluster for ``"local"``, else a connection.

    Parameters
    ----------
    address_or_local : str or distributed.Client, default "local"
        ``"local"`` starts a :class:`distributed.LocalCluster` on this machine,
        owned by the client (``client.close()`` closes both); a scheduler
        address (``"tcp://host:8786"``) connects to a running cluster; a
        ``Client`` is returned as it is.
    n_workers, threads_per_worker : int
        Local cluster only: worker processes and threads per worker. radmine's
        partition functions are pure Python (GIL-bound), so scale with
        processes, one thread each.
    memory_limit : str or int, default "auto"
        Local cluster only: per-worker memory limit (``"2GiB"``, bytes, or
        ``"auto"`` = machine memory / workers).
    processes : bool, default True
        Local cluster only: workers are processes (``False``: threads in this
        process, handy for debugging).
    **cluster_kwargs
        Passed to ``LocalCluster``.

    Returns
    -------
    distributed.Client
        Close it (``client.close()``) when done, or use it as a context manager.

    Raises
    ------
    TypeError
        If ``address_or_local`` is not a str or Client.
    ValueError
        Bad ``n_workers``/``threads_per_worker``.
    """
    from distributed import Client

    if isinstance(address_or_local, Client):
        return address_or_local
    if not isinstance(address_or_local, str) or not address_or_local:
        raise TypeError(
            f"get_client: address_or_local must be 'local', a scheduler address or a Client; got {address_or_local!r}."
        )
    if address_or_local == "local":
        n_workers = check_int(n_workers, "n_workers", "get_client", min_value=1)
        threads_per_worker = check_int(threads_per_worker, "threads_per_worker", "get_client", min_value=1)
        cluster_kwargs.setdefault("dashboard_address", None)
        # a Client given no address starts a LocalCluster with these arguments and closes it in close()
        client = Client(n_workers=n_workers, threads_per_worker=threads_per_worker, memory_limit=memory_limit,
                        processes=processes, **cluster_kwargs)
        logger.info("Started a local Dask cluster: %d workers x %d threads", n_workers, threads_per_worker)
        return client
    return Client(address_or_local)


def current_client():
    """The current ``distributed.Client``, or None (then Dask's local scheduler runs the graphs)."""
    try:
        from distributed import get_client as distributed_client

        return distributed_client()
    except (ImportError, ValueError):
        return None


def compute(*collections: Any, client: Any = None) -> Any:
    """Compute Dask collections together (shared tasks run once) on ``client`` or the default scheduler.

    Returns one result for one collection, else a tuple.
    """
    import dask

    if client is not None:
        out = client.compute(list(collections), sync=True)
        return out[0] if len(collections) == 1 else tuple(out)
    out = dask.compute(*collections)
    return out[0] if len(collections) == 1 else out


def from_pandas(df: pd.DataFrame, npartitions: int | None = None, *, partition_size: int | None = None):
    """A Dask DataFrame of ``df`` in contiguous row blocks (order kept, dtypes kept).

    Parameters
    ----------
    df : DataFrame
    npartitions : int, optional
        Number of partitions.
    partition_size : int, optional
        Rows per partition (default :data:`DEFAULT_PARTITION_SIZE` when
        ``npartitions`` is not given).

    Returns
    -------
    dask.dataframe.DataFrame
    """
    import dask
    import dask.dataframe as dd

    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"from_pandas: df must be a pandas DataFrame, got {type(df).__name__}.")
    if npartitions is None:
        size = check_int(partition_size or DEFAULT_PARTITION_SIZE, "partition_size", "from_pandas", min_value=1)
        npartitions = max(1, math.ceil(len(df) / size))
    npartitions = check_int(npartitions, "npartitions", "from_pandas", min_value=1)
    with dask.config.set({"dataframe.convert-string": False}):
        return dd.from_pandas(df, npartitions=npartitions, sort=False)


def as_dask_frame(x: Any, name: str = "reports"):
    """``x`` as a Dask DataFrame (a pandas one is cut by :func:`from_pandas`)."""
    if isinstance(x, pd.DataFrame):
        return from_pandas(x)
    import dask.dataframe as dd

    if isinstance(x, dd.DataFrame):
        return x
    raise TypeError(f"{name} must be a dask or pandas DataFrame; got {type(x).__name__}.")


def shared(obj: Any):
    """Wrap ``obj`` so that it enters the graph once (not once per partition)."""
    import dask

    return dask.delayed(obj, pure=True, traverse=False)


def _concrete(a: Any) -> Any:
    from dask.delayed import Delayed

    if isinstance(a, Delayed):
        return a.compute(scheduler="sync")
    return a


def map_partitions(ddf, func, *args, **kwargs):
    """``ddf.map_partitions(func, ...)`` with ``meta`` = ``func`` on an empty partition.

    ``func`` is a pipeline's pandas function of one partition; its output on
    the empty partition gives Dask the result's columns and dtypes.
    """
    import dask

    meta = func(ddf._meta.copy(), *[_concrete(a) for a in args], **kwargs)
    with dask.config.set({"dataframe.convert-string": False}):
        return ddf.map_partitions(func, *args, meta=meta, align_dataframes=False, **kwargs)


def iter_computed(tasks: Sequence[Any], client: Any, max_in_flight: int) -> Iterator[Any]:
    """Results of delayed ``tasks`` in order, with at most ``max_in_flight`` running/held at once."""
    if client is None:
        for t in tasks:
            yield t.compute()
        return
    futures: list = []
    it = iter(tasks)
    for t in it:
        futures.append(client.compute(t))
        if len(futures) >= max_in_flight:
            break
    while futures:
        f = futures.pop(0)
        nxt = next(it, None)
        if nxt is not None:
            futures.append(client.compute(nxt))
        yield f.result()
        f.release()
