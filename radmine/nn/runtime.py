"""Where and how torch runs: the device, a local seed and the CPU thread count.

* :func:`resolve_device` -- ``"auto"`` / ``"cpu"`` / ``"cuda:N"`` to a ``torch.device``;
* :func:`local_torch_seed` -- a block under ``torch.manual_seed`` that leaves the
  global RNG as it found it (``torch.random.fork_rng``);
* :func:`cpu_threads` -- a block with ``torch.set_num_threads(n)``, restored afterwards.
"""

from __future__ import annotations

import contextlib


def resolve_device(device: str | None):
    """The ``torch.device`` a model runs on.

    Parameters
    ----------
    device : str or None
        ``"auto"`` or None: CUDA when available, else CPU; anything else is
        passed to ``torch.device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``).

    Returns
    -------
    torch.device

    Examples
    --------
    >>> from radmine.nn import resolve_device
    >>> resolve_device("cpu").type
    'cpu'
    """
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"The 'device' parameter must be 'auto', 'cpu', 'cuda' or 'cuda:N'. Got {device!r}.") from None


@contextlib.contextmanager
def local_torch_seed(seed: int, device=None):
    """Run a block under ``torch.manual_seed(seed)`` and restore the global RNG state afterwards.

    Parameters
    ----------
    seed : int
    device : torch.device or str, optional
        A CUDA device whose generator is forked (and seeded) too.

    Examples
    --------
    >>> import torch
    >>> from radmine.nn import local_torch_seed
    >>> with local_torch_seed(0):
    ...     a = torch.rand(2)
    >>> with local_torch_seed(0):
    ...     b = torch.rand(2)
    >>> bool((a == b).all())
    True
    """
    import torch

    devices = []
    if device is not None and getattr(device, "type", str(device)).startswith("cuda") and torch.cuda.is_available():
        devices = [torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def cpu_threads(n: int | None):
    """Run a block with ``torch.set_num_threads(n)`` and restore the previous count.

    Small projection heads on frozen features train many times faster on one
    thread than on several (OpenMP start-up and barriers cost more than the
    matrix products, badly so on a busy machine).

    Parameters
    ----------
    n : int or None
        Threads inside the block (None: leave torch's setting unchanged).
    """
    import torch

    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)
