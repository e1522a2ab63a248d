"""The one base class of radmine's estimators, and the random-state helpers they share.

Every estimator (:class:`~radmine.topics.model.TopicModel`,
:class:`~radmine.labels.labeler.WeakLabeler`,
:class:`~radmine.images.embed.ImageEmbedder`, ...) subclasses :class:`BaseEstimator`,
which is scikit-learn's :class:`sklearn.base.BaseEstimator` with radmine's short
summaries. So ``sklearn.base.clone``, ``get_params(deep=True)``, ``set_params``,
``Pipeline``, ``GridSearchCV`` and ``cross_val_score`` work on all of them, provided
the estimator keeps scikit-learn's contract:

- ``__init__`` takes parameters only (keyword parameters after the first one or
  two) and stores each unchanged under its own name; no validation there;
- validation happens in ``fit``, which returns ``self``;
- learned state ends in ``_`` (``topics_``, ``labels_``); methods that need it
  raise :class:`sklearn.exceptions.NotFittedError` (through
  :func:`radmine._validation.check_is_fitted`) before ``fit``.

``tests/test_estimator_api.py`` runs the same checks over every estimator.

Random state: :func:`check_random_state` (a :class:`numpy.random.Generator`),
:func:`seed_int` (an int seed for libraries that take one, such as gensim and
tomotopy) and :func:`derived_seed` (a reproducible int seed per step of a
training run). None of them seeds a global generator.

Examples
--------
>>> from sklearn.base import clone
>>> import radmine
>>> lab = radmine.WeakLabeler("chest_xray", uncertain_blocks_normal=True)
>>> clone(lab).get_params()["uncertain_blocks_normal"]
True
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator as _SklearnBaseEstimator

from radmine._repr import summary_html
from radmine._validation import check_random_state

__all__ = ["BaseEstimator", "check_random_state", "derived_seed", "estimator_summary", "seed_int"]


def estimator_summary(est: Any) -> dict[str, Any]:
    """Whether ``est`` is fitted, then its constructor parameters and their values.

    Parameters
    ----------
    est : object
        An estimator whose ``__init__`` stores its parameters unchanged.

    Returns
    -------
    dict
        ``{"fitted": bool, <parameter>: <value>, ...}`` in signature order.
    """
    params = {}
    for name in inspect.signature(type(est).__init__).parameters:
        if name in ("self", "args", "kwargs"):
            continue
        if hasattr(est, name):
            params[name] = getattr(est, name)
    fitted = any(k.endswith("_") and not k.startswith("_") for k in vars(est))
    return {"fitted": fitted, **params}


class BaseEstimator(_SklearnBaseEstimator):
    """scikit-learn's estimator base with radmine's summaries.

    ``repr`` lists every constructor parameter (``TopicModel(n_topics=20,
    unit='report', ...)``); Jupyter shows a short table: fitted or not, then the
    parameters. Subclasses extend the table by overriding ``_summary_rows`` or
    replace it (a fitted :class:`~radmine.topics.model.TopicModel` shows its topics)
    by overriding ``_repr_html_``.
    """

    def _summary_rows(self) -> dict[str, Any]:
        return estimator_summary(self)

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:  # noqa: N803 - scikit-learn's signature
        rows = estimator_summary(self)
        args = ", ".join(f"{k}={v!r}" for k, v in rows.items() if k != "fitted")
        return f"{type(self).__name__}({args})"

    # scikit-learn makes _repr_html_ a property that shows its pipeline diagram; radmine
    # shows its own summary table, always.
    def _repr_html_(self) -> str:  # type: ignore[override]
        return summary_html(type(self).__name__, self._summary_rows())

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        return {"text/plain": repr(self), "text/html": self._repr_html_()}


def seed_int(random_state: Any) -> int | None:
    """An int seed for libraries that take one (gensim, tomotopy), or None.

    Parameters
    ----------
    random_state : None, int or numpy.random.Generator
        A Generator is advanced by one draw.

    Returns
    -------
    int or None
        None for None (the library's own random start).

    Raises
    ------
    TypeError
        For any other type.
    """
    if random_state is None:
        return None
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return int(random_state)
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**31 - 1))
    raise TypeError(f"random_state must be None, an int or a numpy Generator; got {type(random_state).__name__}.")


def derived_seed(random_state: Any, offset: int = 0) -> int:
    """A non-negative int seed for one step of a run: ``random_state`` (None -> 0) mixed with ``offset``.

    Parameters
    ----------
    random_state : None or int
    offset : int, default 0
        Distinguishes the steps (shuffling, initialisation, epoch ``k``, ...).

    Returns
    -------
    int
        In ``[0, 2**31 - 1)``; the same inputs always give the same seed.
    """
    base = 0 if random_state is None else int(random_state)
    return (base * 1_000_003 + offset) % (2**31 - 1)
