"""Run leakkit's own work under tracemalloc on a shallow stack.

While tracemalloc traces, every allocation records the caller's frames, and each frame's line
number is found by scanning its code's line table from the start (``PyCode_Addr2Line``): the cost
of one allocation grows with the size of every function on the stack. Under a test runner or a
notebook, the stack beneath ``bisect`` is dozens of large frames, and leakkit's analysis (reading
every trace, looking up the tracebacks of a heavy run's survivors) allocates a great deal: measured
on a plotting workload, an ``id()`` cost 10-20 us there against about 1 us on a fresh thread's
stack. The analysis runs on a thread of its own while the caller waits, so its cost does not depend
on who called bisect. The workload itself always runs on the caller's thread.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def call(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on a fresh thread, waited for; its result, or its exception re-raised here."""
    box: list[Any] = []

    def target() -> None:
        try:
            box.append((True, fn(*args)))
        except BaseException as error:  # re-raised in the caller's thread
            box.append((False, error))

    try:
        thread = threading.Thread(target=target, name="leakkit-analysis", daemon=True)
        thread.start()
    except RuntimeError:  # no thread to be had (interpreter shutting down, a thread limit)
        return fn(*args)
    thread.join()
    ok, value = box.pop()
    if ok:
        return value
    try:
        raise value
    finally:
        value = None
