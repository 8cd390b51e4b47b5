"""The bytes an object reaches, walked without running any of the objects' code (pympler's
``asizeof``): what a holder keeps in all, for the report, and the referents the walks share.
"""
from __future__ import annotations

import gc
import types
from typing import Any

from ..probes import containers as C
from .budget import as_deadline

NO_WALK = (types.ModuleType, types.FrameType, types.CodeType, type(len), types.BuiltinMethodType)
ATOMS = (int, float, complex, bool, str, bytes, type(None))


def referents(obj: Any) -> list[Any]:
    """What ``obj`` refers to, as the collector sees it; nothing for atoms, modules, frames, code."""
    if C.is_a(obj, NO_WALK) or C.is_a(obj, ATOMS):
        return []
    try:
        return gc.get_referents(obj)
    except Exception:
        return []


def deep_size(obj: Any, *, limit: int = 200_000, deadline: Any = None) -> tuple[int, bool]:
    """Bytes of ``obj`` and everything it reaches (pympler's ``asizeof``, without running any of the
    objects' code); ``(bytes, complete)``: ``complete`` is False when the walk hit ``limit`` objects
    or ``deadline``."""
    seen: set[int] = {id(obj)}
    stack = [obj]
    total = 0
    deadline = as_deadline(deadline) if deadline is not None else None
    steps = 0
    while stack:
        steps += 1
        if len(seen) > limit or (deadline is not None and steps % 512 == 0 and deadline.over()):
            return total, False
        item = stack.pop()
        total += C.shallow_size(item)
        for child in referents(item):
            if id(child) not in seen and not C.is_a(child, NO_WALK + (type, types.FunctionType)):
                seen.add(id(child))
                stack.append(child)
                if len(seen) > limit:  # one container of millions stops the walk here, not after
                    return total, False
    return total, True


__all__ = ["ATOMS", "NO_WALK", "deep_size", "referents"]
