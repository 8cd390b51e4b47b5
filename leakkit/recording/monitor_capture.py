"""One monitor snapshot, in two halves: what grew while it watched, where it was allocated, what keeps it.

Why two halves: a single look at a heap says what is big, not what grows, and tracemalloc only
knows where an object was allocated if it traced the allocation. :meth:`Capture.begin` collects
the cyclic garbage, takes a first type summary and starts tracemalloc (unless something already
traces); :meth:`Capture.finish`, ``duration`` later (the monitor's ``trace_window``), collects
again, takes the second summary, and names what grew in between: the growing types, where their
newest instances were allocated, the reference path that keeps them, the allocation sites that
grew. Then tracemalloc stops (if the capture started it) and its traces are freed.

Costs, said in the report: each collection holds the GIL for its whole length (the application's
threads wait; the figure is printed), every other pass is sliced
(:mod:`leakkit.recording.monitor_heap`); while tracemalloc traces, the application's allocations
cost more and each live traced block ~100 bytes more. leakkit's own objects (the monitor's state,
this capture, the summaries) are never counted nor sampled.
"""
from __future__ import annotations

import gc
import time
import tracemalloc
from typing import Any

from .._sizes import format_size
from . import monitor_heap
from .monitor_snapshot import (
    allocation_traces,
    growing_types,
    reachable,
    retention_lines,
    site_lines,
    table_lines,
    worth_a_path,
)

FRAMES = 8  # tracemalloc frames per allocation: enough to climb out of a library to the application


FULL_COLLECTION_MAX = 100_000  # objects in the oldest generation up to which a snapshot collects it too


def collect() -> tuple[int, float, bool]:
    """The young generations, and the oldest too while it holds at most :data:`FULL_COLLECTION_MAX`
    objects: (unreachable objects found, longest hold of the GIL in ms, whether the oldest was collected).

    A full collection holds the GIL for its whole length (~0.3 us an object: 30 ms at 100 k
    objects, 200-500 ms at 600 k on a loaded machine), and the application's requests wait. Beyond
    the bound the snapshot says so: cycles that reached the oldest generation are left to the
    application's own collections, and may read as growth of their types.
    """
    start = time.perf_counter()
    found = gc.collect(1)
    held = time.perf_counter() - start
    full = len(gc.get_objects(generation=2)) <= FULL_COLLECTION_MAX
    if full:
        start = time.perf_counter()
        found += gc.collect(2)
        held = max(held, time.perf_counter() - start)
    return found, held * 1000.0, full


class Capture:
    """A snapshot under way: :meth:`begin` now, :meth:`finish` later (from any thread, once)."""

    def __init__(self, owner: Any, reason: str, previous: dict[str, list[int]] | None) -> None:
        self.owner = owner
        self.reason = reason
        self.previous = previous  # the last snapshot's summary: what an instant snapshot compares with
        self.before: dict[str, list[int]] | None = None
        self.traces_before: tracemalloc.Snapshot | None = None
        self.started_tracing = False
        self.garbage: list[tuple[int, float, bool]] = []
        self.began = time.monotonic()
        self.duration = 0.0
        self.traced_at_begin: int | None = None
        self.extended: list[str] = []  # why the window was watched longer, in words (the report's lines)

    def begin(self, duration: float, trace: bool) -> None:
        """Collect, summarize, start tracing: what grows from now until :meth:`finish` is the answer."""
        self.duration = duration
        self.garbage.append(collect())
        if duration > 0:
            self.before = self.summary()
            if trace and not tracemalloc.is_tracing():
                tracemalloc.start(FRAMES)
                self.started_tracing = True
            elif tracemalloc.is_tracing():
                self.traces_before = allocation_traces()
            if tracemalloc.is_tracing():
                self.traced_at_begin = tracemalloc.get_traced_memory()[0]
        self.began = time.monotonic()

    def traced_growth(self) -> int | None:
        """What the traced Python allocations grew by since :meth:`begin` (None: nothing traces)."""
        if self.traced_at_begin is None or not tracemalloc.is_tracing():
            return None
        return tracemalloc.get_traced_memory()[0] - self.traced_at_begin

    def extend(self, expected: float, quarter: float = 0.25) -> bool:
        """Whether to watch one more window: what was traced since :meth:`begin` is under a quarter
        of ``expected`` (the bytes the monitor's rate predicts over the time watched so far).

        Why: a worker's share of the traffic moves (a pre-fork server's accept queue, an event
        loop's connections), and a window in which the leaking code did not run names nothing that
        grows; the process grew before and will again. The caller bounds how often it extends.
        """
        growth = self.traced_growth()
        if growth is None or expected <= 0 or growth >= quarter * expected:
            return False
        watched = time.monotonic() - self.began
        self.extended.append(f"{watched:.1f} s watched: the traced Python heap grew by {format_size(growth, signed=True)}, "
                             f"under a quarter of the ~{format_size(expected)} the growth rate predicts; watched on")
        return True

    def summary(self) -> dict[str, list[int]]:
        """A type summary of the heap now, leakkit's own objects left out."""
        objs = monitor_heap.objects()
        try:
            return monitor_heap.type_summary(objs, reachable(self.owner) | {id(objs)})
        finally:
            del objs

    def finish(self, top: int) -> tuple[list[str], dict[str, list[int]]]:
        """The report's body and the summary taken now (the next instant snapshot compares with it)."""
        if self.duration > 0:
            self.garbage.append(collect())
            if self.extended:  # the time it watched in all, not the window it began with
                self.duration = round(time.monotonic() - self.began, 1)
        lines: list[str] = []
        sites: list[str] = []
        try:
            if tracemalloc.is_tracing():  # what was allocated and is still alive, while tracemalloc knows it
                since = (f"in the {self.duration:g} s this snapshot traced" if self.started_tracing
                         else "since the snapshot began" if self.traces_before is not None else "while traced")
                traces = allocation_traces()
                sites = site_lines(traces, None if self.started_tracing else self.traces_before, top, since)
                del traces
            objs = monitor_heap.objects()
            try:
                own = reachable(self.owner) | {id(objs)}
                after = monitor_heap.type_summary(objs, own)
                before = self.before if self.before is not None else self.previous
                window = (f"in the {self.duration:g} s this snapshot watched" if self.before is not None
                          else "since the previous snapshot" if before is not None else None)
                found = sum(n for n, _, _ in self.garbage)
                worst = max(ms for _, ms, _ in self.garbage)
                whole = all(full for _, _, full in self.garbage)
                lines += [f"cyclic garbage collected first: {found} objects (longest collection {worst:.0f} ms, the "
                          "application's threads waited meanwhile)" + ("" if whole else
                          f"; the oldest generation holds over {FULL_COLLECTION_MAX} objects and was left to the "
                          "application's own collections: cycles there may read as growth"), ""]
                if self.extended:
                    lines += ["the window was extended, the leak idle in it:", *(f"  {line}" for line in self.extended)]
                    growth = self.traced_growth()
                    if growth is not None:
                        lines.append(f"  {self.duration:.1f} s watched in all: the traced Python heap grew by "
                                     f"{format_size(growth, signed=True)}")
                    lines.append("")
                rows = growing_types(before, after, top)
                lines += [f"types that grew {window}:" if window else "largest types (nothing earlier to compare):"]
                lines += table_lines(rows)
                grown = worth_a_path(rows, after.kinds)
                if grown:
                    lines += ["", "where the newest of them were allocated and what keeps them alive:"]
                    lines += retention_lines(grown, after.kinds, objs, sampled=self.stop_tracing,
                                             own=own | {id(after)} | ({id(before)} if before else set()))
            finally:
                del objs
        finally:
            self.close()
        return lines + sites, after

    def stop_tracing(self) -> None:
        """Stop tracemalloc if this capture started it (its traces are freed)."""
        if self.started_tracing:
            self.started_tracing = False
            if tracemalloc.is_tracing():
                tracemalloc.stop()

    def close(self) -> None:
        """Stop what this capture started (tracemalloc) and drop its state; safe twice."""
        self.stop_tracing()
        self.before = None
        self.traces_before = None
        self.previous = None
