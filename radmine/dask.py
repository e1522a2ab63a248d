"""An alias of :mod:`radmine.distributed`: the same functions under the name ``radmine.dask``.

``import radmine.dask as rd`` and ``rd.label_reports(ddf)`` work; the
recommended import is :mod:`radmine.distributed`.
"""

from __future__ import annotations

from radmine.distributed import __all__, __dir__, __getattr__  # noqa: F401
