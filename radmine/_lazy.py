"""Public names of a package loaded on first use (PEP 562), so importing one module does not import the others."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str,
    namespace: dict[str, Any],
    exports: Mapping[str, str],
    submodules: Mapping[str, str] | None = None,
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a package with lazily imported names.

    Parameters
    ----------
    package : str
        The package's name, for the error message.
    namespace : dict
        The package's ``globals()``: a name is stored there once loaded, so it is looked up once.
    exports : mapping of str to str
        Public name -> the module that defines it.
    submodules : mapping of str to str, optional
        Public name -> a module returned as a whole.

    Returns
    -------
    (__getattr__, __dir__)
        ``__dir__`` lists the package's ``__all__``.
    """
    submodules = dict(submodules or {})

    def __getattr__(name: str) -> Any:
        if name in submodules:
            value = importlib.import_module(submodules[name])
        elif name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return list(namespace["__all__"])

    return __getattr__, __dir__
