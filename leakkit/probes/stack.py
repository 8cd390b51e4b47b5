"""Run a call with the frames beneath it out of sight, so tracing it costs the same whoever called.

Under tracemalloc every allocation records its frames, and each frame's line is found by scanning
that frame's line table from the start: the cost of one allocation grows with the size of every
frame on the stack, the caller's included. Beneath a notebook cell, IPython or a test runner there
are 15-35 frames, some large (an event loop's ``_run_once``, IPython's ``run_ast_nodes``, pluggy's
``_multicall``); measured here, bisect's traced calls of one workload took 0.11 s from a file and
0.5-1.0 s from IPython, a notebook or pytest. :func:`call_cut` calls ``fn`` on the same thread with
the thread's frame chain cut beneath it (C, ``_stackcut``): ``fn``'s frame is the bottom one
(its ``f_back`` is None) until it returns, then the frames beneath run on untouched. Code in ``fn``
that walks the stack past ``fn`` (``sys._getframe(n)``, ``inspect.stack()``) sees the stack end
there. Without the C part, ``fn`` is called plainly.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

try:
    from ._stackcut import call_cut as _call_cut
except ImportError:  # not built: a plain call (same answers; tracing costs more beneath a deep stack)
    _call_cut = None

T = TypeVar("T")


def call_cut(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` with the Python frames beneath this call out of sight (see the module's docstring)."""
    if _call_cut is None:
        return fn(*args)
    return _call_cut(fn, *args)


def available() -> bool:
    """Whether the frames beneath are cut (the C part is built)."""
    return _call_cut is not None


__all__ = ["call_cut", "available"]
