"""Count target calls by code object, wherever the function is called from.

Wrapping a module's or class's attribute misses every call made through a reference taken
before: Flask keeps the view functions it registered, a decorator keeps the function it wraps, a
registry or a callback list keeps what was registered, ``from mod import f`` binds its own name.
Those views read "not called" while they ran thousands of times. Every such call still runs the
function's code object, so calls are counted there:

* CPython 3.12+: ``sys.monitoring``, with ``PY_START`` and ``PY_RETURN`` turned on for the
  targets' code objects only (``set_local_events``): other code runs unmonitored.
  ``PY_UNWIND`` (a call ended by an exception) cannot be local: it is global and its callback
  returns at once for other code.
* CPython 3.10 and 3.11: a profile function written in C (``leakkit.probes._containerscan``) on
  every thread and every thread started during the run, calling back only for the targets' code;
  every other call costs it one lookup in an address table (measured in
  tests/test_bisect_counting.py).

Each callback does what a wrapper did (:mod:`leakkit.engine.wrappers`): counts the call and reads
RSS and malloc around it, charging each call its own share. Generators and coroutines are counted
once per call (their first start), with no reading: interleaved steps make per-call memory
meaningless. When neither way is available (another tool holds the profile function, no C part),
bisect falls back to the wrappers.
"""
from __future__ import annotations

import sys
import threading
import types
from collections.abc import Callable
from typing import Any

from . import wrappers
from .wrappers import Stats

_GENERATOR = 0x20 | 0x80 | 0x200  # CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR
_TOOL_IDS = (4, 3, 5, 2)  # sys.monitoring tools leakkit may take, the unnamed ones first

try:
    from ..probes import _containerscan as _C
except ImportError:  # pragma: no cover - the C part not built
    _C = None


class _Stack(threading.local):
    def __init__(self) -> None:
        self.calls: list[tuple[int, int, int, list[int]]] = []  # (index, rss, malloc, children)


class CodeCounter:
    """Counts calls of the given code objects into their :class:`Stats` (see the module's docstring)."""

    def __init__(self, codes: list[types.CodeType], stats: list[Stats]) -> None:
        self.codes = list(codes)
        self.stats = list(stats)
        self.generator = [bool(code.co_flags & _GENERATOR) for code in self.codes]
        self.by_id = {id(code): i for i, code in enumerate(self.codes)}
        self.stack = _Stack()
        self.tool: int | None = None
        self.profiling = False
        self.threads_left = 0  # threads that had a profile function of their own: not counted

    # -- the two callbacks --------------------------------------------------------------------
    def on_call(self, i: int, first: bool = True) -> None:
        if self.generator[i]:
            if first:
                self.stats[i].calls += 1
            return
        r0, m0, frame = wrappers.enter()
        self.stack.calls.append((i, r0, m0, frame))

    def on_return(self, i: int, failed: bool = False) -> None:
        if self.generator[i]:
            return
        calls = self.stack.calls
        while calls:  # a frame whose return was not seen (a thread that died) is dropped
            j, r0, m0, frame = calls.pop()
            if j == i:
                wrappers.leave(self.stats[i], r0, m0, frame, failed)
                return

    # -- installing ---------------------------------------------------------------------------
    def start(self) -> bool:
        """Start counting; False when no way is available here (the caller then wraps attributes)."""
        if not self.codes:
            return False
        monitoring = getattr(sys, "monitoring", None)
        if monitoring is not None:
            return self._start_monitoring(monitoring)
        if _C is None or not hasattr(_C, "count_start") or sys.getprofile() is not None:
            return False
        installed, self.threads_left = _C.count_start(tuple(self.codes), self.on_call, self.on_return)
        threading.setprofile(_C.count_thread)
        self.profiling = True
        return installed > 0

    def _start_monitoring(self, monitoring: Any) -> bool:
        for tool in _TOOL_IDS:
            if monitoring.get_tool(tool) is None:
                try:
                    monitoring.use_tool_id(tool, "leakkit")
                except ValueError:  # taken meanwhile
                    continue
                self.tool = tool
                break
        else:
            return False
        events = monitoring.events
        by_id, on_call, on_return = self.by_id, self.on_call, self.on_return

        def started(code: types.CodeType, offset: int) -> None:
            i = by_id.get(id(code))
            if i is not None:
                on_call(i)

        def returned(code: types.CodeType, offset: int, value: Any) -> None:
            i = by_id.get(id(code))
            if i is not None:
                on_return(i)

        def unwound(code: types.CodeType, offset: int, error: BaseException) -> None:
            i = by_id.get(id(code))
            if i is not None:
                on_return(i, True)

        monitoring.register_callback(self.tool, events.PY_START, started)
        monitoring.register_callback(self.tool, events.PY_RETURN, returned)
        monitoring.register_callback(self.tool, events.PY_UNWIND, unwound)
        for code in self.codes:
            monitoring.set_local_events(self.tool, code, events.PY_START | events.PY_RETURN)
        monitoring.set_events(self.tool, events.PY_UNWIND)
        return True

    def stop(self) -> None:
        """Stop counting, whatever happened; idempotent."""
        if self.tool is not None:
            monitoring = sys.monitoring
            try:
                monitoring.set_events(self.tool, 0)
                for code in self.codes:
                    monitoring.set_local_events(self.tool, code, 0)
                for event in (monitoring.events.PY_START, monitoring.events.PY_RETURN, monitoring.events.PY_UNWIND):
                    monitoring.register_callback(self.tool, event, None)
            finally:
                monitoring.free_tool_id(self.tool)
                self.tool = None
        if self.profiling:
            self.profiling = False
            threading.setprofile(None)
            _C.count_stop()
        self.stack = _Stack()


def counter_for(functions: dict[str, Callable], stats: dict[str, Stats]) -> CodeCounter:
    """A counter for the Python functions among ``functions`` (qualified name -> function), one
    code object each (a code shared by several names is counted under the first)."""
    codes: list[types.CodeType] = []
    counted: list[Stats] = []
    seen: set[int] = set()
    for name, func in functions.items():
        code = func.__code__ if isinstance(func, types.FunctionType) else None
        if code is None or id(code) in seen:
            continue
        seen.add(id(code))
        codes.append(code)
        counted.append(stats.setdefault(name, Stats(name)))
    return CodeCounter(codes, counted)
