"""Batches and hold-out splits that keep a case (patient / report) together.

* :func:`group_batches` -- shuffled batches in which no group occurs twice, so a
  contrastive loss never treats a second image or sentence of the same case as
  a negative;
* :func:`split_by_group` -- a hold-out mask of about a fraction of the groups.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def group_batches(groups: Sequence, batch_size: int, rng: np.random.Generator, *, min_size: int = 2) -> list[np.ndarray]:
    """Shuffle rows into batches in which no group occurs twice.

    Greedy: rows in a random order fill the open batch unless their group is
    already in it; skipped rows wait for the next batch. Every row lands in
    exactly one batch, except that batches smaller than ``min_size`` (a case
    with more rows than there are other cases) are dropped.

    Parameters
    ----------
    groups : sequence of hashable, length n_rows
        Case / patient of each row.
    batch_size : int
    rng : numpy Generator
    min_size : int, default 2
        Smallest batch kept.

    Returns
    -------
    list of int ndarray
        Row indices per batch.

    Examples
    --------
    >>> import numpy as np
    >>> from radmine.nn import group_batches
    >>> [sorted(b.tolist()) for b in group_batches(["a", "a", "b"], 2, np.random.default_rng(0), min_size=1)]
    [[0, 2], [1]]
    """
    groups = np.asarray(groups)
    _, codes = np.unique(groups.astype(str), return_inverse=True)
    pending = list(rng.permutation(len(groups)))
    batches = []
    while pending:
        batch, seen, rest = [], set(), []
        for i in pending:
            if len(batch) < batch_size and codes[i] not in seen:
                batch.append(i)
                seen.add(codes[i])
            else:
                rest.append(i)
        pending = rest
        if len(batch) >= min_size:
            batches.append(np.asarray(batch, dtype=np.int64))
    return batches


def split_by_group(groups: Sequence, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of rows held out: about ``fraction`` of the groups, never a split group.

    At least one group is held out and at least one kept when there are two
    or more groups and ``fraction > 0``.

    Parameters
    ----------
    groups : sequence of hashable, length n_rows
    fraction : float
        Share of the groups held out (0: none).
    rng : numpy Generator

    Returns
    -------
    bool ndarray of shape (n_rows,)
    """
    groups = np.asarray(groups).astype(str)
    uniq = np.unique(groups)
    if len(uniq) < 2 or fraction <= 0:
        return np.zeros(len(groups), dtype=bool)
    n_held = int(np.clip(round(fraction * len(uniq)), 1, len(uniq) - 1))
    held = set(rng.permutation(uniq)[:n_held].tolist())
    return np.array([g in held for g in groups])
