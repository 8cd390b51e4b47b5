"""The time and memory a bisect may spend, held by every phase (calls, checkpoints, the search).

**Time** is counted as the time the run would take on an idle machine: the process's CPU time, plus
the time the workload spent waiting (sleeping, on I/O), but not the time it waited for a CPU that
other processes held. On Linux that is the wall time less the time the calling thread and the
analysis thread sat runnable on the scheduler's queue (``/proc/self/task/TID/schedstat``), and
never less than the CPU time; where schedstat cannot be read, the CPU time or a third of the wall
time, whichever is more. A loaded machine slows the wall clock, not the work: a budget read from
the wall clock would cut the search short on a busy machine and not on an idle one.

**Memory**: what leakkit's own analysis adds to the process (RSS growth since the analysis began)
is capped at :data:`MEMORY_CAP` or a quarter of the process's RSS when the analysis began, whichever
is more. A walk that would go past it (a mock that makes objects as it is looked at, a proxy, a
graph of millions of objects) stops like one out of time, and says so.

A :class:`Deadline` is a point on that clock and the memory cap: :meth:`Deadline.over` is what a
loop checks (cheap: the schedstat and RSS readings are refreshed at most every few milliseconds).
"""
from __future__ import annotations

import os
import threading
import time

MEMORY_CAP = 256 << 20  # bytes the analysis may add to the process's RSS, at least
_MEMORY_SHARE = 0.25  # ... or this share of the process's RSS when the analysis began
_REFRESH_S = 0.02  # wall seconds between two schedstat or RSS readings
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _queued_s(tid: int) -> float | None:
    """Seconds thread ``tid`` has spent runnable but waiting for a CPU, or None if unknown."""
    try:
        with open(f"/proc/self/task/{tid}/schedstat", "rb") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


class Clock:
    """Elapsed seconds of a run, as its budget counts them (see the module's docstring)."""

    def __init__(self) -> None:
        self.threads = [threading.get_native_id()]
        self.queued0 = {tid: _queued_s(tid) for tid in self.threads}
        self.cpu0 = time.process_time()
        self.wall0 = time.perf_counter()
        self.waited = 0.0  # seconds the run waited beyond its CPU time (the workload's sleep, its I/O)
        self.next_refresh = 0.0
        self.schedstat = self.queued0[self.threads[0]] is not None

    def add_thread(self, tid: int | None) -> None:
        """Count a thread of leakkit's own (the analysis thread) whose queueing is not the run's."""
        if tid is not None and tid not in self.queued0:
            self.threads.append(tid)
            self.queued0[tid] = _queued_s(tid) or 0.0

    def elapsed(self) -> float:
        cpu = time.process_time() - self.cpu0
        now = time.perf_counter()
        if now >= self.next_refresh:
            self.next_refresh = now + _REFRESH_S
            wall = now - self.wall0
            if self.schedstat:
                queued = 0.0
                for tid in self.threads:
                    q = _queued_s(tid)
                    if q is not None:  # a thread that ended keeps its last count out
                        queued += q - (self.queued0[tid] or 0.0)
                self.waited = max(wall - queued - cpu, 0.0)
            else:
                self.waited = max(wall / 3 - cpu, 0.0)
        return cpu + self.waited


class Deadline:
    """A point on a run's :class:`Clock` and a cap on what the analysis adds to RSS."""

    def __init__(self, clock: Clock, at: float, *, memory_base: int | None = None, memory_cap: int | None = None,
                 reason: list[str] | None = None) -> None:
        self.clock = clock
        self.at = at
        self.memory_base = memory_base
        self.memory_cap = memory_cap
        self.reason = reason if reason is not None else []  # shared: why a deadline was hit, once
        self._next = 0.0
        self._hit = False

    def left(self) -> float:
        return self.at - self.clock.elapsed()

    def over(self) -> bool:
        """Whether the time is up or the analysis grew the process past its memory cap."""
        if self._hit:
            return True
        if self.clock.elapsed() >= self.at:
            self._hit = True
        elif self.memory_cap is not None:
            now = time.perf_counter()
            if now >= self._next:
                self._next = now + _REFRESH_S
                grown = _rss() - (self.memory_base or 0)
                if grown > self.memory_cap:
                    self._hit = True
                    if not any("memory" in r for r in self.reason):
                        self.reason.append(f"the search's memory cap ({self.memory_cap >> 20} MiB over the process's "
                                           f"RSS when the analysis began; it had added {grown >> 20} MiB)")
        return self._hit

    def sooner(self, share: float) -> Deadline:
        """A deadline ``share`` of the way from now to this one (same clock, same memory cap)."""
        now = self.clock.elapsed()
        return Deadline(self.clock, now + max(self.at - now, 0.0) * share, memory_base=self.memory_base,
                        memory_cap=self.memory_cap, reason=self.reason)


class WallDeadline:
    """A plain ``time.perf_counter()`` deadline with the :class:`Deadline` interface (the monitor's)."""

    def __init__(self, at: float) -> None:
        self.at = at

    def left(self) -> float:
        return self.at - time.perf_counter()

    def over(self) -> bool:
        return time.perf_counter() > self.at

    def sooner(self, share: float) -> WallDeadline:
        now = time.perf_counter()
        return WallDeadline(now + max(self.at - now, 0.0) * share)


def as_deadline(deadline: float | Deadline | WallDeadline) -> Deadline | WallDeadline:
    """A deadline object from a ``time.perf_counter()`` value, or the object itself."""
    return WallDeadline(deadline) if isinstance(deadline, (int, float)) else deadline


def analysis_deadline(clock: Clock, at: float) -> Deadline:
    """The analysis's deadline: ``at`` on ``clock``, with the memory cap measured from now."""
    base = _rss()
    return Deadline(clock, at, memory_base=base, memory_cap=max(MEMORY_CAP, int(_MEMORY_SHARE * base)))


__all__ = ["MEMORY_CAP", "Clock", "Deadline", "WallDeadline", "as_deadline", "analysis_deadline"]
