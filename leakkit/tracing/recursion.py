"""Room in the recursion limit for a traced recursion, which adds a wrapper frame at each level.

Why: traced, a function that recursed 900 levels deep untraced would hit ``RecursionError``
sooner, and tracing must not change what the traced program does. A ``Trace.__call__`` level costs
2 units of the limit before 3.12 (the slot call and its frame) and 1 from 3.12 on (C calls are
counted apart). While a traced function recurses, the limit is raised by what its wrappers take,
so it reaches the depth it reaches untraced; it is back to the user's limit when the last
recursion in progress ends (the lift is the deepest one of them).
"""
from __future__ import annotations

import sys
import threading

_UNITS = 2 if sys.version_info < (3, 12) else 1  # units of the recursion limit one wrapper level takes
_LIFT = [0, 0]  # units added to the limit, traced recursions in progress
_LIFT_LOCK = threading.Lock()


def lift(depth: int) -> None:
    """Entering a traced call at nesting ``depth`` >= 1: make room for the wrappers above it."""
    units = (depth + 1) * _UNITS
    if depth != 1 and units <= _LIFT[0]:
        return
    with _LIFT_LOCK:
        if depth == 1:
            _LIFT[1] += 1
        if units > _LIFT[0]:
            try:
                sys.setrecursionlimit(sys.getrecursionlimit() + units - _LIFT[0])
                _LIFT[0] = units
            except Exception:  # pragma: no cover - an interpreter that refuses: the old behaviour
                pass


def drop(depth: int) -> None:
    """Leaving a traced call at ``depth``: the limit comes back when the last recursion ends."""
    if depth != 1:
        return
    with _LIFT_LOCK:
        _LIFT[1] = max(0, _LIFT[1] - 1)
        if _LIFT[1] == 0 and _LIFT[0]:
            try:
                sys.setrecursionlimit(sys.getrecursionlimit() - _LIFT[0])
                _LIFT[0] = 0
            except Exception:  # too deep to lower right now (RecursionError): the next recursion's end does
                pass
