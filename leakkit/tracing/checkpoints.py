"""A trace's checkpoints: when to take one, and taking it.

A checkpoint is a full garbage collection followed by every probe, so that cyclic garbage is never
counted as kept; checkpoints decide the verdict. They cost a collection (~1 ms on a small heap, far
more on a big one), so they are taken now and then, between outermost calls only.

Schedule (``every="auto"``): a baseline before the first call, then after calls 1, 2, 4, 8, 16, 32
and 64 while their collections stay under a start-up allowance (0.5 s), then whenever the time
spent in checkpoints stays under ``budget`` (5%) of the time traced so far; and by wall time too
(at most 20 a second, 2% of the run apart, and within ``budget`` of one core), so that a fast
function earns checkpoints within seconds. An int takes a checkpoint every that many calls,
whatever it costs. Each checkpoint also sets ``read_every``: the per-call readings of memory are
taken on every k-th call so that they cost at most 5% of the calls' time (see :meth:`_adapt`).

What leakkit keeps itself (the recorder's buffers, what type summaries leave behind,
tracemalloc's tables) is measured and taken out of every reading.
"""
from __future__ import annotations

import gc
import math
import sys
import threading
import time
from typing import Any

import pandas as pd

from .._compat import settle
from ..probes import containers
from ..probes import process as probes
from ..recording.recorder import Recorder

_STARTUP_ALLOWANCE_S = 0.5
_WALL_MIN_S = 0.05  # wall-time checkpoints: at most 20 a second ...
_WALL_GROWTH = 0.02  # ... and 2% of the run apart (about 50 per tenfold of run time)
_DENSE = (1, 2, 4, 8, 16, 32, 64)
_READ_BUDGET = 0.05  # fraction of a call's time the per-call memory readings may take
_WARMED: list[bool] = []  # a type summary was taken once in this process (its first-use caches are filled)

_perf = time.perf_counter


class Checkpoints:
    """The checkpoint schedule of one trace and its readings, stored in ``recorder``.

    The per-call mechanism (:class:`~leakkit.tracing.calls.CallMeter`) reads and updates the plain
    attributes: ``next_call`` (a checkpoint is due once the recorder holds that many calls; 0 makes
    the next outermost call take one), ``wall_due`` (perf_counter time of the next wall-time one),
    ``origin`` (perf_counter time the recording starts from), ``busy`` (seconds spent inside
    outermost calls) and ``read_every``. ``census`` holds every container's length at the baseline (:func:`leakkit.probes.containers.sizes`):
    the containers that grew since are what the report names as growers.
    """

    def __init__(self, recorder: Recorder, name: str, *, every: int | str, budget: float, summaries: bool,
                 tracemalloc: bool, fds: bool) -> None:
        self.recorder = recorder
        self._name = name
        self._every = every
        self._budget = budget
        self._want_summaries = summaries
        self._tracemalloc = tracemalloc
        self._fds = fds
        self._lock = threading.Lock()
        self._started_tracemalloc = False  # survives reset(): it is the process's tracemalloc, not the schedule
        self._restart()

    def _restart(self) -> None:
        self.next_call = 0
        self.wall_due = math.inf
        self.origin: float | None = None
        self.busy = 0.0
        self.read_every = 1  # read memory on every call until _adapt says otherwise
        self.census: Any = None
        self.baseline_objects: Any = None  # the tracked objects alive at the baseline (by address)
        self._cost = 0.0  # seconds spent in checkpoints, summaries included
        self._summary_cost = 0.0
        self._last_call = -1  # calls finished at the last checkpoint (-1: no baseline yet)
        self._last_cost = 0.0
        self._last_cpu = 0.0
        self._own_blocks = 0  # blocks, traced and allocated bytes that type summaries kept (leakkit's own)
        self._own_bytes = 0
        self._own_allocated = 0

    # -- when -------------------------------------------------------------------------------------
    def maybe(self) -> None:
        """A scheduled checkpoint before an outermost call (skipped while another thread takes one).

        A failure pushes the next one back and is raised for the caller to note: it is leakkit's
        own fault, never the traced call's.
        """
        if not self._lock.acquire(blocking=False):
            return
        try:
            n = len(self.recorder)
            if n < self.next_call or n == self._last_call:
                return
            self._take(n)
            self._schedule(n)
        except Exception:
            self.next_call = 2 * len(self.recorder) + 1
            self.wall_due = math.inf
            raise
        finally:
            self._lock.release()

    def now(self) -> None:
        """A checkpoint now, with a type summary (unless the last one was taken after the same call)."""
        with self._lock:
            n = len(self.recorder)
            if n != self._last_call:
                self._take(n, force_summary=True)
                self._schedule(n)

    def reset(self) -> None:
        """Forget the recording and start the schedule again."""
        with self._lock:
            self.recorder.reset()
            self._restart()

    def stop(self) -> None:
        """Stop tracemalloc if a checkpoint started it."""
        import tracemalloc

        if self._started_tracemalloc and tracemalloc.is_tracing():
            tracemalloc.stop()
        self._started_tracemalloc = False

    def _adapt(self, n: int) -> None:
        """Read memory on every k-th call so that the readings cost <= _READ_BUDGET of the call time.

        ``sys.getallocatedblocks`` walks every pool of every arena: ~1 us in a bare interpreter,
        ~20 us once pandas is imported, ~60 us with a million objects. Reading it twice per call
        would more than double the time of a 50 us function, so past the dense start-up checkpoints
        fast functions get their memory read on a sample of calls (the others have NaN deltas).
        Checkpoints, which decide the verdict, are not affected.
        """
        if self._tracemalloc or self._fds or n < _DENSE[-1]:
            self.read_every = 1
            return
        t = _perf()
        for _ in range(4):
            probes.blocks()
            probes.rss()
        cost = 2 * (_perf() - t) / 4  # two readings per call
        durations = self.recorder.recent_durations(512)
        mean = sum(durations) / len(durations) if len(durations) else 0.0
        if mean <= 0:
            return
        self.read_every = max(1, min(1000, math.ceil(cost / (_READ_BUDGET * mean))))

    def _schedule(self, n: int) -> None:
        self._adapt(n)
        if self._every != "auto":
            self.next_call = n + int(self._every)
            return
        # Wall time too: a fast function (or many threads) may take hours of calls to earn a checkpoint
        # on its own time, and its verdict would stay inconclusive. Spaced so that checkpoints take at
        # most `budget` of one core (their CPU time, not the GIL waits), and further apart as the run
        # grows (a long-running process keeps a bounded number of rows).
        now = _perf()
        self.wall_due = now + max(_WALL_MIN_S, self._last_cpu / self._budget, _WALL_GROWTH * (now - self.origin))
        dense = next((c for c in _DENSE if c > n), None)
        if dense is not None and self._cost - self._summary_cost <= _STARTUP_ALLOWANCE_S:
            self.next_call = dense
            return
        # Budget: the next checkpoint when checkpoints would have cost <= budget of the traced time,
        # relative to the time spent in the traced calls, not wall time: the overhead a user sees is
        # on the function, however rarely it is called
        per_call = max(self.busy, 1e-9) / max(n, 1)
        calls_needed = (self._cost + self._last_cost) / self._budget / per_call - n
        if dense is not None:  # past the allowance, but not yet past the dense schedule
            calls_needed = min(calls_needed, dense - n)
        self.next_call = n + max(1, int(calls_needed))

    # -- what -------------------------------------------------------------------------------------
    def _warm_up(self) -> None:
        """Run every reading once before the baseline, so that their first-use costs are baseline.

        psutil builds its Process object, the fd listing and the smaps reader allocate on first
        use, and the recorder learns this thread's name: done after the baseline, all of that
        would show up as growth at the next checkpoint.
        """
        self._allocated()
        probes.process_memory()
        probes.fds()
        probes.gc_collections()
        self.recorder.warm(self._name, threading.current_thread().name)
        if self._want_summaries and not _WARMED:
            # The first summary in a process fills the type-name table and pandas' and numpy's
            # caches: done here, before the baseline reading, the next summary finds them there.
            _WARMED.append(True)
            try:
                from ..probes.heap import heap_summary

                self.recorder.learn_types(heap_summary(collect=True))
            except Exception:
                pass  # reported by the summary itself
        # last: what the warm-up itself added to containers (re's cache...) is baseline too
        objects = gc.get_objects()
        try:
            self.census = containers.sizes(objects)
            self.baseline_objects = containers.AddressSet(objects)
        finally:
            del objects

    def _take(self, n: int, force_summary: bool = False) -> None:
        import tracemalloc

        start = _perf()
        cpu0 = time.thread_time()
        if self.origin is None:
            self.origin = start
        if self._last_call < 0:
            self._warm_up()
        if self._tracemalloc and not tracemalloc.is_tracing():
            tracemalloc.start()
            self._started_tracemalloc = True
        settle()  # the type cache keeps fresh name strings it caches (a file opened per call read +1 block)
        gc.collect()
        # Read right after a full collection: cyclic garbage is gone and the freelists are empty.
        blocks_now = probes.blocks()
        traced_now = probes.traced_bytes()
        allocated_now = self._allocated()
        blocks_kept = blocks_now - self._own_blocks - self.recorder.own_blocks
        traced_kept = None if traced_now is None else traced_now - self._own_bytes
        allocated_kept = None if allocated_now is None else allocated_now - self._own_allocated
        heap_bytes = None
        if self._want_summaries:
            if force_summary or self._last_call < 0 or self._summary_cost <= self._budget * self.busy:
                heap_bytes = self._summarize(n, blocks_now, traced_now, allocated_now)
        memory = probes.process_memory()
        # the recorder's buffers (~47 B a call) are process memory too, and leakkit's own
        own = self.recorder.footprint()
        rss, uss, pss = ((None if v is None else v - own) for v in (memory.rss, memory.uss, memory.pss))
        row = {"call": n, "t": start - self.origin, "blocks": blocks_kept, "traced_bytes": traced_kept,
               "heap_bytes": heap_bytes, "rss": rss, "uss": uss, "pss": pss,
               "swap": memory.swap, "fds": probes.fds(), "gc_collections": probes.gc_collections(),
               "allocated_bytes": allocated_kept}
        self.recorder.add_checkpoint(row)
        del row, memory
        self._last_call = n
        self._last_cost = _perf() - start
        self._last_cpu = time.thread_time() - cpu0
        self._cost += self._last_cost

    def _allocated(self) -> int | None:
        """Bytes held through pymalloc and malloc, less leakkit's own: the recorder's buffers (they
        grow ~48 bytes a call) and tracemalloc's tables. Read first, before anything here allocates."""
        import tracemalloc

        total = probes.allocated_bytes()
        if total is None:
            return None
        total -= self.recorder.own_heap_bytes()
        if tracemalloc.is_tracing():
            total -= tracemalloc.get_tracemalloc_memory()
        return total

    def _summarize(self, n: int, blocks_before: int, traced_before: int | None,
                   allocated_before: int | None) -> int | None:
        """Take and store a type summary; what it leaves behind is counted as leakkit's, not the calls'.

        A summary keeps a little (new type names in the recorder's table, pandas and numpy caches
        that fill on first use and then come and go by tens of blocks). Measured between two
        collections around it and subtracted from every later reading, so that neither the
        summary at the baseline nor the one ``.report()`` forces at the end reads as growth.
        """
        from ..probes.heap import heap_summary

        s0 = _perf()
        try:
            summary = _without(heap_summary(collect=False), self.recorder.own_objects())
        except Exception as error:  # a summary is extra information: never let it break the call
            import warnings

            from .._errors import ProbeUnavailableWarning

            self._want_summaries = False
            warnings.warn(f"leakkit: probe 'type summary' failed ({type(error).__name__}: {error}); "
                          "carrying on without type summaries", ProbeUnavailableWarning, stacklevel=2)
            return None
        self.recorder.add_summary(n, summary)
        heap_bytes = int(summary["size"].sum())
        del summary
        settle()  # the names the summary looked up are not kept: the next reading starts settled too
        gc.collect()
        self._own_blocks += probes.blocks() - blocks_before
        traced_after = probes.traced_bytes()
        if traced_after is not None and traced_before is not None:
            self._own_bytes += traced_after - traced_before
        allocated_after = self._allocated()
        if allocated_after is not None and allocated_before is not None:
            self._own_allocated += allocated_after - allocated_before
        self._summary_cost += _perf() - s0
        return heap_bytes


def _without(summary: pd.DataFrame, own: list) -> pd.DataFrame:
    """``summary`` minus leakkit's own objects (the recorder's buffers), so they never read as growth."""
    if not own:
        return summary
    from collections import Counter

    counts: Counter = Counter()
    sizes: Counter = Counter()
    names: dict[type, str] = {}
    for kind, size in zip(map(type, own), map(sys.getsizeof, own), strict=False):
        name = names.get(kind)
        if name is None:
            name = names[kind] = probes.type_name(kind)
        counts[name] += 1
        sizes[name] += size
    mask = summary["type"].isin(list(counts))
    if not mask.any():
        return summary
    summary = summary.copy()
    summary.loc[mask, "count"] -= summary.loc[mask, "type"].map(counts).astype("int64")
    summary.loc[mask, "size"] -= summary.loc[mask, "type"].map(sizes).astype("int64")
    return summary
