"""Small shared helpers for parameter checking and fitted-state checks.

Error messages follow scikit-learn's style: they name the parameter, the
class (or function), what is allowed and what was given.
"""

from __future__ import annotations

import warnings

from collections.abc import Iterable
from typing import Any

from sklearn.exceptions import NotFittedError as _SklearnNotFittedError


class NotFittedError(_SklearnNotFittedError):
    """Raised when a method that needs a fitted estimator is called before ``fit``.

    A :class:`sklearn.exceptions.NotFittedError` (so also a ``ValueError`` and an
    ``AttributeError``): scikit-learn's tools and ``except`` clauses recognise it.
    """


def check_is_fitted(estimator: Any, attributes: str | Iterable[str] | None = None) -> None:
    """Raise :class:`NotFittedError` unless ``estimator`` has learned attributes.

    Parameters
    ----------
    estimator : object
        The estimator to check.
    attributes : str or iterable of str, optional
        Names that must exist. By default any public attribute ending in ``_``.
    """
    if attributes is None:
        fitted = any(k.endswith("_") and not k.startswith("_") for k in vars(estimator))
    else:
        if isinstance(attributes, str):
            attributes = [attributes]
        fitted = all(hasattr(estimator, a) for a in attributes)
    if not fitted:
        name = type(estimator).__name__
        raise NotFittedError(
            f"This {name} instance is not fitted yet. Call 'fit' with appropriate "
            f"arguments before using this method."
        )


def check_option(value: Any, name: str, owner: str, allowed: Iterable[Any]) -> Any:
    """Check that ``value`` is one of ``allowed``; raise a ``ValueError`` otherwise."""
    allowed = list(allowed)
    if value not in allowed:
        shown = "{" + ", ".join(repr(a) for a in allowed) + "}"
        raise ValueError(
            f"The {name!r} parameter of {owner} must be one of {shown}. Got {value!r} instead."
        )
    return value


def check_int(value: Any, name: str, owner: str, *, min_value: int | None = None) -> int:
    """Check that ``value`` is an int (not bool), optionally ``>= min_value``."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"The {name!r} parameter of {owner} must be an int. Got {value!r} "
            f"of type {type(value).__name__} instead."
        )
    if min_value is not None and value < min_value:
        raise ValueError(
            f"The {name!r} parameter of {owner} must be an int >= {min_value}. Got {value!r} instead."
        )
    return int(value)


def check_columns(df: Any, required: Iterable[str], what: str) -> None:
    """Raise ``ValueError`` naming the missing columns of table ``what``."""
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(
            f"{what} is missing required column(s) {missing}; it has {list(df.columns)}."
        )


def check_random_state(random_state: Any):
    """Turn ``None``/int/Generator into a ``numpy.random.Generator`` (never seeds globally)."""
    import numpy as np

    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return np.random.default_rng(random_state)
    raise TypeError(
        f"random_state must be None, an int or a numpy Generator. Got {type(random_state).__name__}."
    )


def is_dask_collection(x: Any) -> bool:
    """Whether ``x`` is a Dask collection (DataFrame, Series, Bag, Delayed, ...)."""
    try:
        from dask import is_dask_collection as dask_is_collection
    except ImportError:  # pragma: no cover - dask is a dependency
        return False
    return bool(dask_is_collection(x))


def reject_dask(x: Any, where: str, use: str) -> None:
    """Raise ``TypeError`` when ``x`` is a Dask collection, naming the :mod:`radmine.distributed` function to use.

    Iterating a Dask DataFrame yields its column names, so an in-memory
    function given one silently returns nonsense instead of failing.
    """
    if is_dask_collection(x):
        raise TypeError(
            f"{where} works on in-memory tables; got a Dask {type(x).__name__}. Use {use} for Dask "
            f"collections (or call .compute() first for small data)."
        )


def renamed_keyword(value: Any, old_value: Any, new: str, old: str, owner: str, *, stacklevel: int = 3) -> Any:
    """The value of keyword ``new``, or of its deprecated alias ``old`` (with a ``FutureWarning``).

    Parameters
    ----------
    value : object
        What the caller passed as ``new`` (None when not given).
    old_value : object
        What the caller passed as ``old`` (None when not given).
    new, old : str
        The keyword names, shown in the warning and the error.
    owner : str
        The method, e.g. ``"JointClusterer.fit"``.

    Returns
    -------
    object
        ``value``, or ``old_value`` when only the old keyword was given.

    Raises
    ------
    TypeError
        Both keywords were given.
    """
    if old_value is None:
        return value
    if value is not None:
        raise TypeError(f"{owner}: pass '{new}' only (not also its deprecated alias '{old}').")
    warnings.warn(f"{owner}: the '{old}' keyword is deprecated; use '{new}' (same values).",
                  FutureWarning, stacklevel=stacklevel)
    return old_value
