"""Cutting leakkit's work inside a process into holds of the GIL of a few milliseconds, and timing
the interpreter's own collections apart from that work.

Why the collections apart: a full collection runs in whichever thread's allocation crosses the
collector's threshold once enough objects were promoted since the last one; in a big process it
lasts 100-250 ms (1.3 M tracked objects on this machine), and the walk's allocations are as likely
as any to be the ones that cross it. That collection is the process's own (it would have run at the
process's next allocations, in another of its threads): it is timed and reported as such, and the
hold it interrupted resumes after it, so that ``longest_cpu_s`` is leakkit's own work. leakkit never
changes the collector's settings in the process (no ``gc.disable``, ``gc.freeze``, thresholds); the
young collections it asks for itself (:func:`young_collection`) count as its work.
"""
from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from typing import Any

HOLD_S = 0.002  # longest the walk works before it lets the process's threads take the GIL
PAUSE_S = 0.0005  # the sleep between holds

_asking: set[int] = set()  # threads inside a collection leakkit asked for


class Aborted(Exception):
    """The work was called off between two slices (the client went away, or a limit was met)."""


def young_collection(generation: int) -> None:
    """``gc.collect(generation)`` asked by leakkit (generation 0 or 1): its time is leakkit's work."""
    me = threading.get_ident()
    _asking.add(me)
    try:
        gc.collect(generation)
    finally:
        _asking.discard(me)


class Pacer:
    """Cuts work into holds of the GIL of about ``hold_s``; ``check`` runs at every pause and may
    raise :class:`Aborted`.

    ``longest_s`` is the longest stretch between two pauses in wall time (what a thread of the
    process may have waited, preemption of a busy machine included); ``longest_cpu_s`` the same
    stretch in this thread's CPU time: the work itself, which is what holds the GIL, whatever the
    machine's load. While :meth:`watch` is on, a collection the interpreter runs in this thread is
    not part of either: ``collections`` counts them, ``longest_collection_s`` (CPU) and
    ``longest_collection_generation`` give the longest.
    """

    def __init__(self, *, hold_s: float = HOLD_S, pause_s: float = PAUSE_S,
                 check: Callable[[], None] | None = None) -> None:
        self.hold_s = hold_s
        self.pause_s = pause_s
        self.check = check
        self.longest_s = 0.0
        self.longest_cpu_s = 0.0
        self.longest_what = ""
        self.pauses = 0
        self.collections = 0
        self.longest_collection_s = 0.0
        self.longest_collection_generation: int | None = None
        self._since = time.perf_counter()
        self._cpu_since = time.thread_time()
        self._watching = 0
        self._thread = 0
        self._gc_began = (0.0, 0.0)
        # made now: installing the hook later must allocate nothing the collector counts (the
        # allocation that crosses its threshold runs the collection before the hook is in)
        self._hook = self._on_collection

    def due(self) -> bool:
        return time.perf_counter() - self._since >= self.hold_s

    def pause(self) -> None:
        self.note_hold("the heap walk")
        time.sleep(self.pause_s)
        self.pauses += 1
        if self.check is not None:
            self.check()
        self.restart()

    def note_hold(self, what: str, seconds: float | None = None) -> None:
        """Record a hold: the time since the last pause, or ``seconds`` one call took in one piece."""
        held = time.perf_counter() - self._since if seconds is None else seconds
        cpu = time.thread_time() - self._cpu_since if seconds is None else seconds
        if held > self.longest_s:
            self.longest_s, self.longest_what = held, what
        self.longest_cpu_s = max(self.longest_cpu_s, cpu)

    def restart(self) -> None:
        """Start counting a hold now (after a wait that did not hold the GIL)."""
        self._since = time.perf_counter()
        self._cpu_since = time.thread_time()

    def watch(self) -> None:
        """Time the interpreter's collections in this thread apart from the work (until :meth:`unwatch`;
        calls nest)."""
        if self._watching == 0:
            self._thread = threading.get_ident()
            gc.callbacks.append(self._hook)
        self._watching += 1

    def unwatch(self) -> None:
        self._watching -= 1
        if self._watching == 0:
            try:
                gc.callbacks.remove(self._hook)
            except ValueError:
                pass

    def _on_collection(self, phase: str, info: dict[str, Any]) -> None:
        me = threading.get_ident()
        if me != self._thread or me in _asking:
            return
        if phase == "start":
            self._gc_began = (time.perf_counter(), time.thread_time())
            return
        wall = time.perf_counter() - self._gc_began[0]
        cpu = time.thread_time() - self._gc_began[1]
        self._since += wall  # the hold goes on after the collection, as if it had not run
        self._cpu_since += cpu
        self.collections += 1
        if cpu > self.longest_collection_s:
            self.longest_collection_s, self.longest_collection_generation = cpu, info.get("generation")
