"""Run leakkit's own work under tracemalloc on a shallow stack.

While tracemalloc traces, every allocation records the caller's frames, and each frame's line
number is found by scanning its code's line table from the start (``PyCode_Addr2Line``): the cost
of one allocation grows with the size of every function on the stack. Under a test runner or a
notebook, the stack beneath ``bisect`` is dozens of large frames, and leakkit's analysis (reading
every trace, looking up the tracebacks of a heavy run's survivors) allocates a great deal: measured
on a plotting workload, an ``id()`` cost 10-20 us there against about 1 us on a fresh thread's
stack. The analysis runs on a thread of its own while the caller waits, so its cost does not depend
on who called bisect. The workload itself always runs on the caller's thread.

The thread is started before tracing starts and kept for the run: a thread started while tracing
would leave the interpreter's thread bookkeeping (``threading._active``'s table) traced as
allocations of nobody's code, read as growth outside the targets.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Worker:
    """One thread that runs the calls it is given, one at a time, while the caller waits."""

    def __init__(self) -> None:
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._results: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = threading.Thread(target=self._loop, name="leakkit-analysis",
                                                                 daemon=True)
        self._thread.leakkit_busy = False  # type: ignore[attr-defined]  # idle: a watchdog leaves it be
        try:
            self._thread.start()
        except RuntimeError:  # no thread to be had (interpreter shutting down, a thread limit)
            self._thread = None

    @property
    def native_id(self) -> int | None:
        """The thread's id in the OS (its scheduler statistics count against the budget's clock)."""
        return self._thread.native_id if self._thread is not None else None

    def _loop(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            me = threading.current_thread()
            me.leakkit_busy = True  # type: ignore[attr-defined]  # read by a watchdog (leakcheck_all)
            try:
                self._results.put((True, task[0](*task[1])))
            except BaseException as error:  # re-raised in the caller's thread
                self._results.put((False, error))
            task = None  # nothing of the call stays referenced from this frame
            me.leakkit_busy = False  # type: ignore[attr-defined]

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the worker's thread; its result, or its exception re-raised here."""
        if self._thread is None or not self._thread.is_alive():
            return fn(*args)
        self._tasks.put((fn, args))
        del args
        ok, value = self._results.get()
        if ok:
            return value
        try:
            raise value
        finally:
            value = None

    def close(self) -> None:
        if self._thread is not None:
            self._tasks.put(None)
            self._thread.join()
            self._thread = None
