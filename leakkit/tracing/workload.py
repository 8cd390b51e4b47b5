"""Running a user's workload, sync or async, for ``growth_sites`` and ``heap_vs_native``.

Both take a zero-argument function or async function, call it many times and measure what it
keeps. They share how it is checked and how it is called. Checked: no required arguments, and
something that does its work when called: a generator function, an async generator function, or a
function that returns a coroutine (``lambda: handle(request)`` with an ``async def handle``) would
only make an object whose body never runs, and every verdict would read "clean"; they are refused
with what to write instead (:func:`check_workload` before the first call, :func:`check_result`
after each). Called: async ones on an event loop leakkit owns, on a helper thread when this thread already runs
a loop (Jupyter). The call goes through two known frames (:data:`CALL_FRAMES`), so that a
tracemalloc traceback tells the user's allocations (below them) from leakkit's own.
"""
from __future__ import annotations

import asyncio
import inspect
import os
import threading
import types
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


MAX_CALLS = 10_000_000  # calls (or loops, sites): more would take days and gigabytes of readings
MAX_LOOPS = 100_000
MAX_FRAMES = 1000  # tracemalloc traceback depth (bisect's nframe: the same bound)


#: What a sync workload must not return: made by calling code whose body has not run yet.
LAZY_RESULTS = (types.CoroutineType, types.GeneratorType, types.AsyncGeneratorType)


def _name(workload: Any) -> str:
    return str(getattr(workload, "__qualname__", None) or getattr(workload, "__name__", None) or type(workload).__name__)


def check_workload(workload: Any) -> bool:
    """Whether it is async; raises WorkloadError if it cannot be called without arguments, or is a
    generator or async generator function (calling it would run none of its body)."""
    if not callable(workload):
        raise expected("a zero-argument function or async function", "workload", workload)
    call = getattr(type(workload), "__call__", None)  # noqa: B004 - an object whose __call__ is a generator or async
    if inspect.isgeneratorfunction(workload) or (not inspect.isroutine(workload) and inspect.isgeneratorfunction(call)):
        raise WorkloadError(f"workload: expected a function that does its work when called, received the generator "
                            f"function {_name(workload)}: calling it only makes a generator, whose body never runs "
                            f"(wrap it: lambda: list({_name(workload)}()))")
    if inspect.isasyncgenfunction(workload) or (not inspect.isroutine(workload) and inspect.isasyncgenfunction(call)):
        raise WorkloadError(f"workload: expected a function that does its work when called, received the async "
                            f"generator function {_name(workload)}: calling it only makes an async generator, whose "
                            f"body never runs (wrap it: async def work(): [x async for x in {_name(workload)}()])")
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
    return inspect.iscoroutinefunction(workload) or (not inspect.isroutine(workload) and inspect.iscoroutinefunction(call))


def check_result(result: Any, workload: Any) -> None:
    """Refuse what a sync workload returned if it is a coroutine, generator or async generator: the
    work it stands for never ran (the coroutine is closed, so no "never awaited" warning follows)."""
    if type(result) in LAZY_RESULTS:
        kind = {types.CoroutineType: "a coroutine", types.GeneratorType: "a generator",
                types.AsyncGeneratorType: "an async generator"}[type(result)]
        if type(result) is types.CoroutineType:
            result.close()
        fix = ("pass an async function itself: async def work(): await ..." if kind == "a coroutine"
               else "consume it in the workload: lambda: list(...)")
        raise WorkloadError(f"workload: expected a function that does its work when called, received "
                            f"{_name(workload)}, which returned {kind} whose body never ran ({fix})")


def run_error(error: BaseException, where: str) -> WorkloadError:
    """The workload raised (an Exception, or GeneratorExit or SystemExit, which are not the
    measurement's to end): a WorkloadError that says so, chained to it."""
    if isinstance(error, SystemExit):
        what = f"called sys.exit({error.code!r})"
    else:
        what = f"raised {type(error).__name__}" + (f": {error}" if str(error) else "")
    wrapped = WorkloadError(f"workload: {what} in {where}; expected a workload that returns")
    wrapped.__cause__ = error
    return wrapped


class Caller:
    """Calls the workload; async ones run on an event loop leakkit owns (on a helper thread when
    this thread already runs a loop, as in Jupyter). ``close()`` closes that loop."""

    def __init__(self, workload: Callable[[], Any], is_async: bool) -> None:
        self.workload = workload
        self.loop = asyncio.new_event_loop() if is_async else None

    def __call__(self) -> None:
        if self.loop is None:
            result = _run_sync(self.workload)
            if type(result) in LAZY_RESULTS:
                check_result(result, self.workload)
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
