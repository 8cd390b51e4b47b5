"""Running a user's workload, sync or async, for ``growth_sites`` and ``heap_vs_native``.

Both take a zero-argument function or async function, call it many times and measure what it
keeps. They share how it is checked (no required arguments, counts that are ints) and how it is
called: async ones on an event loop leakkit owns, on a helper thread when this thread already runs
a loop (Jupyter). The call goes through two known frames (:data:`CALL_FRAMES`), so that a
tracemalloc traceback tells the user's allocations (below them) from leakkit's own.
"""
from __future__ import annotations

import asyncio
import inspect
import os
import threading
from collections.abc import Callable
from typing import Any

from .._errors import WorkloadError, expected


def _run_sync(workload: Callable[[], Any]) -> Any:
    return workload()


def _run_async(loop: asyncio.AbstractEventLoop, workload: Callable[[], Any]) -> Any:
    return loop.run_until_complete(workload())


def _last_line(func: Callable[..., Any]) -> int:
    return max(line for _, _, line in func.__code__.co_lines() if line is not None)


#: The frames (file, line) through which leakkit calls the workload: allocations below them are the user's.
CALL_FRAMES = frozenset({(os.path.abspath(__file__), _last_line(_run_sync)),
                         (os.path.abspath(__file__), _last_line(_run_async))})


def check_count(value: Any, name: str, minimum: int) -> int:
    """``value`` if it is an int >= ``minimum``; else InvalidArgumentError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise expected(f"an int >= {minimum}", name, value)
    return value


def check_workload(workload: Any) -> bool:
    """Whether it is async; raises WorkloadError if it cannot be called without arguments."""
    if not callable(workload):
        raise expected("a zero-argument function or async function", "workload", workload)
    try:
        signature = inspect.signature(workload)
    except (TypeError, ValueError):
        return False
    required = [
        p.name for p in signature.parameters.values()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if required:
        raise WorkloadError(f"workload: expected a function of no arguments, received one that needs {', '.join(required)}")
    return inspect.iscoroutinefunction(workload)


class Caller:
    """Calls the workload; async ones run on an event loop leakkit owns (on a helper thread when
    this thread already runs a loop, as in Jupyter). ``close()`` closes that loop."""

    def __init__(self, workload: Callable[[], Any], is_async: bool) -> None:
        self.workload = workload
        self.loop = asyncio.new_event_loop() if is_async else None

    def __call__(self) -> None:
        if self.loop is None:
            _run_sync(self.workload)
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            _run_async(self.loop, self.workload)
            return
        errors: list[BaseException] = []

        def target() -> None:
            try:
                _run_async(self.loop, self.workload)
            except BaseException as error:  # handed back to the caller's thread
                errors.append(error)

        thread = threading.Thread(target=target, name="leakkit-workload")
        thread.start()
        thread.join()
        if errors:
            raise errors[0]

    def close(self) -> None:
        if self.loop is not None:
            self.loop.close()
