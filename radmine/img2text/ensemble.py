"""Joining the embeddings of several dual encoders into one.

One rule serves both seed ensembles (``ImageTextModel(n_ensemble=n)``: its
members) and :class:`radmine.ImageTextEnsemble` (separately fitted models):
embeddings are the concatenation of the members' L2-normalised embeddings,
member ``i`` scaled by ``sqrt(w_i / sum(w))``, so that a dot product of two
joined embeddings is the weighted mean of the member cosine similarities.
"""

from __future__ import annotations

import numpy as np


def member_scales(weights, n: int, owner: str = "ImageTextEnsemble") -> np.ndarray:
    """``sqrt(w / sum(w))`` for ``n`` members (``weights`` None: equal).

    Parameters
    ----------
    weights : sequence of float or None
        One non-negative weight per member, with a positive sum.
    n : int
    owner : str
        Named in the error.

    Returns
    -------
    ndarray of shape (n,)

    Examples
    --------
    >>> from radmine.img2text.ensemble import member_scales
    >>> member_scales([1, 3], 2).round(3).tolist()
    [0.5, 0.866]
    """
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"The 'weights' parameter of {owner} must be {n} non-negative "
                         f"numbers with a positive sum; got {weights!r}.")
    return np.sqrt(w / w.sum())


def join_embeddings(parts, weights=None) -> np.ndarray:
    """Concatenate member embeddings ``[(n, d_i), ...]`` scaled by :func:`member_scales`.

    Parameters
    ----------
    parts : list of ndarray of shape (n, d_i)
        Each member's embeddings, rows L2-normalised.
    weights : sequence of float, optional
        Default: equal weights.

    Returns
    -------
    ndarray of shape (n, sum(d_i)), float32
        Rows of unit length when the parts' rows are.
    """
    if len(parts) == 1 and weights is None:
        return np.asarray(parts[0], dtype=np.float32)
    scales = member_scales(weights, len(parts))
    return np.concatenate([s * np.asarray(p) for s, p in zip(scales, parts)], axis=1).astype(np.float32)
