"""Charge each traced allocation to the innermost target function on its stack.

A tracemalloc traceback is read from the most recent frame outwards. The first frame in a target
function's lines names the function whose *own code* allocated the block (``self``); every target
frame on the way out is on its call path (``inclusive``). A block whose first leakkit-or-target
frame is leakkit's own code (not the bridge that calls the workload or a wrapper) is leakkit's
footprint and is never counted as the user's.
"""
from __future__ import annotations

import os
import types
from collections.abc import Iterable

OUTSIDE = "<outside targets>"
OURS = None
_OUTSIDE_RESULT = (OUTSIDE, (), frozenset())

_PACKAGE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "")  # leakkit/


def code_lines(codes: Iterable[types.CodeType]) -> set[tuple[str, int]]:
    """Every (filename, line) of the given code objects and the code nested in them."""
    out: set[tuple[str, int]] = set()
    stack = list(codes)
    while stack:
        code = stack.pop()
        out.update((code.co_filename, line) for _, _, line in code.co_lines() if line is not None)
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return out


class Attributor:
    """Maps raw tracemalloc tracebacks (most recent frame first) to (self, call path, set of the
    functions on it), or None for leakkit's own allocations."""

    def __init__(self, lines: dict[tuple[str, int], str], bridge: set[tuple[str, int]]) -> None:
        self.lines = lines
        self.bridge = bridge
        self._cache: dict[tuple, tuple[str, tuple[str, ...], frozenset] | None] = {}

    def __call__(self, traceback: tuple) -> tuple[str, tuple[str, ...], frozenset] | None:
        hit = self._cache.get(traceback, False)
        if hit is not False:
            return hit
        result = self._attribute(traceback)
        self._cache[traceback] = result
        return result

    def _attribute(self, traceback: tuple) -> tuple[str, tuple[str, ...], frozenset] | None:
        lines = self.lines
        path: list[str] = []
        for frame in traceback:
            name = lines.get(frame)
            if name is not None:
                if not path or path[-1] != name:
                    path.append(name)
            elif not path and frame[0].startswith(_PACKAGE_DIR) and frame not in self.bridge:
                return OURS
        if not path:
            return _OUTSIDE_RESULT
        # the set of functions on the path is precomputed: checkpoints add to each of them
        return path[0], tuple(reversed(path)), frozenset(path)

    def clear(self) -> None:
        self._cache.clear()
