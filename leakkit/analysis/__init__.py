"""Pure analysis over recorded series: verdicts, rates, attribution. No measurement happens here.

Names load on first use (PEP 562): :mod:`leakkit.analysis.phases` is plain Python and must import
without numpy (the monitor in a server's worker uses it), which importing :mod:`.growth` here
eagerly would defeat.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - for type checkers and the docs
    from .growth import Growth, classify, slowing_down, theil_sen

__all__ = ["Growth", "classify", "slowing_down", "theil_sen"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import growth

        return getattr(growth, name)
    raise AttributeError(f"module 'leakkit.analysis' has no attribute {name!r}")
