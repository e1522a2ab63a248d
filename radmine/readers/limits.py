"""Size limits that keep a hostile or corrupt file from exhausting memory.

Every reader and the pixel loader check these before they inflate or decode
anything: an archive member, a gzip-compressed table, a DICOM image (its
header's ``Rows x Columns x frames x samples``) or a PNG/JPEG (its header's
width x height). An item over a limit becomes a quarantine row (or, for a
single file read on its own, a ``ValueError``) whose reason names the limit
and how to raise it.

=======================  ===================  ==========================================
limit                    default              what it caps
=======================  ===================  ==========================================
``max_member_bytes``     64 MiB               one archive member (an Open-i report XML)
``max_table_bytes``      4 GiB                a table file after gzip decompression
``max_image_pixels``     268,000,000          pixel values of one image, all frames
=======================  ===================  ==========================================

Change them for the whole process with :func:`set_limits` (``radmine mine``
does this from the ``[read]`` settings ``max_member_mb``,
``max_table_mb`` and ``max_image_megapixels``), or pass the matching keyword
to one reader call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["LIMITS", "get_limits", "set_limits", "limits", "limits_from_config"]

#: The limits in force (read them with :func:`get_limits`, change them with :func:`set_limits`).
LIMITS: dict[str, int] = {
    "max_member_bytes": 64 * 2**20,
    "max_table_bytes": 4 * 2**30,
    "max_image_pixels": 268_000_000,
}
DEFAULTS = dict(LIMITS)


def get_limits() -> dict[str, int]:
    """The size limits in force, as a new dict.

    Examples
    --------
    >>> from radmine.readers.limits import get_limits
    >>> get_limits()["max_image_pixels"]
    268000000
    """
    return dict(LIMITS)


def _check(name: str, value) -> int:
    if name not in DEFAULTS:
        raise ValueError(f"set_limits: unknown limit {name!r}; expected one of {sorted(DEFAULTS)}.")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"set_limits: {name} must be a positive int (bytes or pixels); got {value!r}.")
    return int(value)


def set_limits(**values: int | None) -> dict[str, int]:
    """Change size limits for the whole process; ``None`` restores a limit's default.

    Parameters
    ----------
    **values : int or None
        ``max_member_bytes``, ``max_table_bytes``, ``max_image_pixels``.

    Returns
    -------
    dict
        The limits before the change (pass them back to restore).

    Raises
    ------
    ValueError
        For an unknown name or a value that is not a positive int.
    """
    before = get_limits()
    new = {}
    for k, v in values.items():
        if k not in DEFAULTS:
            raise ValueError(f"set_limits: unknown limit {k!r}; expected one of {sorted(DEFAULTS)}.")
        new[k] = DEFAULTS[k] if v is None else _check(k, v)
    LIMITS.update(new)
    return before


@contextmanager
def limits(**values: int | None) -> Iterator[dict[str, int]]:
    """Context manager: :func:`set_limits` inside the block, the previous limits after it.

    Examples
    --------
    >>> from radmine.readers.limits import limits, get_limits
    >>> with limits(max_image_pixels=1000):
    ...     get_limits()["max_image_pixels"]
    1000
    """
    before = set_limits(**values)
    try:
        yield get_limits()
    finally:
        LIMITS.update(before)


def resolve(name: str, value: int | None) -> int:
    """``value`` checked, or the limit in force when ``value`` is None."""
    return LIMITS[name] if value is None else _check(name, value)


def mib(n: int) -> str:
    """A byte count as a short human string (``'64 MiB'``)."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            v = n / size
            return f"{v:.0f} {unit}" if v == int(v) else f"{v:.1f} {unit}"
    return f"{n} bytes"


def limits_from_config(read: dict) -> dict[str, int]:
    """The limits named by a ``[read]`` config section (``max_member_mb``, ``max_table_mb``,
    ``max_image_megapixels``; 0 = the default), as :func:`set_limits` keywords."""
    out = {}
    for key, name, unit in (("max_member_mb", "max_member_bytes", 2**20), ("max_table_mb", "max_table_bytes", 2**20),
                            ("max_image_megapixels", "max_image_pixels", 10**6)):
        value = read.get(key, 0)
        out[name] = int(value * unit) if value else None
    return out
