"""The earlier name of :mod:`radmine.distributed`: the same functions, for code written against it.

``import radmine.dask as rd`` and ``rd.label_reports(ddf)`` keep working; new
code imports :mod:`radmine.distributed`.
"""

from __future__ import annotations

from radmine.distributed import __all__, __dir__, __getattr__  # noqa: F401
