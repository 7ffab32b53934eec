"""Names a package re-exports, imported on first use (a module ``__getattr__``, PEP 562).

The packages that use it (``pipeline``, ``pipeline.audio``, ``pipeline.quality``) keep their
import light: PyAV, numpy and the local server load only when a name that needs them is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(
    package: str, where: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """A ``__getattr__`` for ``package``: ``where`` maps a name to the module defining it;
    a name once imported is put in ``namespace`` so later look-ups skip the function."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
