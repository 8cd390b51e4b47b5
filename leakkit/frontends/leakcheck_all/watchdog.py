"""A bisect that overruns its time is cut, and the test reported as such, rather than holding the session.

``leakkit.bisect`` keeps to its ``time_budget``; a suite is where a budget that is not kept costs
most (one bisect sat in its retention search for over ten minutes). The watchdog is a timer
thread: past ``limit`` seconds of wall time it raises :class:`~.runs.Interrupted` into the
threads running the bisect (the caller's, where the workload runs, and leakkit's analysis thread,
named ``leakkit-analysis``), at their next Python instruction; bisect gives back what it changed
on the way out (its ``finally``), and the caller reports the bisect as cut. A thread inside one
long C call (not Python code) gets it only when the call returns.

An interruption can land where nothing propagates it: a garbage collector callback (hypothesis
installs one to time collections) turns it into an "exception ignored" and the bisect runs on (a
hypothesis test's bisect ran 172 s past its 40 s limit so, and pytest's warnings summary gained
a line). While the watched call runs, such an ignored interruption is caught by
``sys.unraisablehook`` (not shown: it is leakkit's, not the program's) and sent again, with the
program's gc callbacks set aside until the call has ended (sent again, it would land in the next
collection's callback again: a collection calls them before any of the program's own code).
"""
from __future__ import annotations

import ctypes
import gc
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ...probes import process as probes
from .runs import Interrupted

T = TypeVar("T")
ANALYSIS_THREAD = "leakkit-analysis"
_POLL_S = 0.25
_RESEND = 20  # an interruption swallowed where nothing propagates it is sent again at most this many times


def _set_async(ident: int, error: Any) -> bool:
    """Raise ``error`` in thread ``ident`` at its next Python instruction (None: clear one pending)."""
    try:
        setter = ctypes.pythonapi.PyThreadState_SetAsyncExc
    except AttributeError:  # pragma: no cover - not CPython
        return False
    setter.argtypes = [ctypes.c_ulong, ctypes.py_object]
    setter.restype = ctypes.c_int
    return setter(ctypes.c_ulong(ident), ctypes.py_object() if error is None else error) == 1


def _raise_in(ident: int) -> bool:
    return _set_async(ident, Interrupted)


class _Drained(Exception):
    """Raised into this thread on purpose and caught at once: see :func:`_clear_here`."""


def _clear_here() -> None:
    """Take back an interruption not delivered yet to this thread, and leave the interpreter as before.

    Clearing one (``PyThreadState_SetAsyncExc(id, NULL)``) still marks the interpreter as having an
    asynchronous exception pending (CPython 3.10-3.11 keep that mark until a thread *receives*
    one; so does an interruption sent to a thread that ended first). The mark keeps the
    interpreter's eval breaker set for the rest of the process: every loop and call takes the slow
    path, and on 3.11 a profile or trace function installed later (bisect's call counter,
    coverage, a profiler) spins forever at the next function entry. So one is sent here and
    received at once, which clears the mark.
    """
    ident = threading.get_ident()
    try:
        _set_async(ident, None)
        if _set_async(ident, _Drained):
            for _ in range(1000):  # a backward jump looks at the eval breaker: received here
                pass
    except _Drained:
        pass


def within(limit: float, func: Callable[[], T], *, memory: int | None = None) -> T:
    """``func()``, interrupted (Interrupted raised) once it has run ``limit`` seconds, or once the
    process has grown by ``memory`` bytes (a workload whose runs pile up: mocks patched over mocks)."""
    caller = threading.get_ident()
    done = threading.Event()
    fired: list[str] = []
    started: set[int] = {t.ident for t in threading.enumerate() if t.ident is not None}
    rss0 = probes.rss() if memory is not None else None
    deadline = time.monotonic() + limit

    def watch() -> None:
        while True:
            left = deadline - time.monotonic()
            if done.wait(min(max(left, 0.0), _POLL_S)):
                return
            rss = probes.rss() if rss0 is not None else None
            if rss is not None and memory is not None and rss - rss0 > memory:
                fired.append(f"it grew the process by {rss - rss0 >> 20} MiB")
                break
            if time.monotonic() >= deadline:
                fired.append("")
                break
        # the analysis thread first when it is at work: the caller is then waiting on it, and gets
        # its error through it. An idle one (blocked in its queue, in C) would take the error only
        # at its next task, and the caller, running the workload, would run on uncut: a hypothesis
        # test's bisect ran for minutes past its limit so.
        analysing = [t.ident for t in threading.enumerate() if t.name == ANALYSIS_THREAD
                     and t.ident is not None and t.ident not in started and getattr(t, "leakkit_busy", True)]
        for ident in analysing:
            _raise_in(ident)
        if not analysing or not done.wait(2.0):
            _raise_in(caller)
        resent = 0
        while resent < _RESEND and not done.wait(_POLL_S):
            if swallowed:
                ident = swallowed.pop()
                swallowed.clear()
                _raise_in(ident)
                resent += 1

    swallowed: list[int] = []
    set_aside: list[Any] = []
    previous_hook = sys.unraisablehook

    def unraisable(info: Any) -> None:
        # an interruption where nothing propagates it (a gc callback): not the program's, sent again
        if info.exc_type is Interrupted or isinstance(info.exc_value, Interrupted):
            if not set_aside and gc.callbacks:
                set_aside.extend(gc.callbacks)
                gc.callbacks.clear()
            swallowed.append(threading.get_ident())
            return
        previous_hook(info)

    sys.unraisablehook = unraisable
    timer = threading.Thread(target=watch, name="leakkit-watchdog", daemon=True)
    timer.start()
    try:
        return func()
    except Interrupted:
        raise Interrupted(fired[0] if fired else "") from None
    except BaseException as error:
        if fired and _from_interruption(error):
            raise Interrupted(fired[0]) from None
        raise
    finally:
        done.set()
        timer.join()
        if sys.unraisablehook is unraisable:
            sys.unraisablehook = previous_hook
        if set_aside:
            gc.callbacks[:0] = [cb for cb in set_aside if cb not in gc.callbacks]
        if fired:  # an interruption that came too late must not land in the caller's next code
            _clear_here()


def _from_interruption(error: Any) -> bool:
    """An error that came out of an interrupted bisect (re-raised, or chained from Interrupted)."""
    seen = 0
    while error is not None and seen < 8:
        if isinstance(error, Interrupted):
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False
