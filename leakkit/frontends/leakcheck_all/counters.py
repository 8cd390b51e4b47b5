"""The cheap readings taken after each repeated run of a test, the screen, and leakkit's verdicts.

A test's runs are judged on counters that cost next to nothing to read (~0.2 ms a reading with the
heap frozen), so a whole suite can be checked: allocated blocks (pymalloc), malloc's bytes in use
(objects over 512 bytes, buffers), traced bytes (when tracemalloc is on), open file descriptors,
live threads and pending asyncio tasks. The readings are kept in preallocated arrays, so that the
harness's own bookkeeping does not grow with the runs it measures.

Two steps, the second only for suspects. :func:`screen` is CPython's ``regrtest -R`` rule on a
few runs: a counter is suspect when *every* run raised it. :func:`judge` is leakkit's verdict
(:func:`leakkit.analysis.classify`) on the longer series a suspect then gets: warm-up caches,
cycles and growth that stops are not leaks.
"""
from __future__ import annotations

import gc
import math
import sys
import threading
from array import array
from typing import Any

from ..._compat import settle

# imported with the plugin, not at a test's first verdict: what importing numpy adds to the process
# (modules, their caches) would land between a suspect's runs and read as growth held elsewhere
from ...analysis import classify
from ...probes import malloc
from ...probes import process as probes

BLOCKS_FLOOR = 8  # over a series' tail: a few blocks come and go between runs
BYTES_FLOOR = 1024
MALLOC_FLOOR = 4096  # malloc rounds and keeps free chunks: a few KiB move between runs
COUNT_FLOOR = 1  # threads, fds, tasks: one more per run is a leak
MEMORY = ("blocks", "malloc_bytes", "traced_bytes")  # a leak here is confirmed by a bisect
COUNTS = ("threads", "fds", "tasks")  # confirmed by the longer series alone: every run left one more
FLOORS = {"blocks": BLOCKS_FLOOR, "malloc_bytes": MALLOC_FLOOR, "traced_bytes": BYTES_FLOOR,
          "fds": COUNT_FLOOR, "threads": COUNT_FLOOR, "tasks": COUNT_FLOOR}
# what one run must add, in every screened run, for the counter to be suspect
STEPS = {"blocks": 1, "malloc_bytes": 256, "traced_bytes": 64, "fds": 1, "threads": 1, "tasks": 1}
EXCURSION = 3  # readings a passing excursion of memory (another thread's work at a reading) lasts, at most
UNITS = {"blocks": "blocks", "malloc_bytes": "bytes", "traced_bytes": "bytes", "fds": "fds",
         "threads": "threads", "tasks": "tasks"}


class Series:
    """Readings per counter in preallocated arrays: appending Python floats would keep a block
    per reading, the harness's own leak."""

    def __init__(self, names: tuple[str, ...], size: int) -> None:
        self.size = size
        self.n = 0
        self._values = {name: array("d", [math.nan]) * size for name in names}

    def add(self, reading: dict[str, float | None]) -> None:
        if self.n >= self.size:
            raise IndexError(f"Series: room for {self.size} readings")
        for name, column in self._values.items():
            value = reading.get(name)
            column[self.n] = math.nan if value is None else value
        self.n += 1

    def replace_last(self, reading: dict[str, float | None]) -> None:
        """Read again what the last reading read (leakkit's own work since then taken out)."""
        self.n -= 1
        self.add(reading)

    @property
    def x(self) -> list[int]:
        return list(range(self.n))

    @property
    def readings(self) -> dict[str, list[float]]:
        return {name: list(column[: self.n]) for name, column in self._values.items()
                if not any(math.isnan(v) for v in column[: self.n])}

    def last_steps(self, name: str, k: int) -> list[float]:
        """The last ``k`` run-to-run changes of counter ``name`` (fewer when there are fewer)."""
        column = self._values[name]
        start = max(self.n - k - 1, 0)
        values = list(column[start: self.n])
        return [b - a for a, b in zip(values, values[1:], strict=False)]


def _pending_tasks() -> int | None:
    """Asyncio tasks not done yet, from asyncio's own registry (no import of asyncio if unused)."""
    tasks = sys.modules.get("asyncio.tasks")
    if tasks is None:
        return None
    count = 0
    for name in ("_all_tasks", "_scheduled_tasks", "_eager_tasks"):  # 3.10-3.11; 3.12+
        registry = getattr(tasks, name, None)
        if registry is None:
            continue
        try:
            count += sum(1 for task in list(registry) if not task.done())
        except Exception:
            continue
    return count


def read_counters(malloc_too: bool = True) -> dict[str, float | None]:
    """The cheap counters, read right after a full collection and with the type attribute cache
    cleared: on 3.10/3.11 it keeps every attribute name it caches (each unpickled class name, each
    ``getattr`` with a new string), up to 4096 of them, which read as a few blocks per run.

    ``malloc_too=False`` leaves out malloc's count, the one reading that is not cheap everywhere:
    ``mallinfo2`` walks every free chunk of every arena, 0.1 ms on a young heap and up to 4 ms on
    one a bisect has fragmented (attrs: 24 s of a 27 s screen's readings)."""
    settle()
    gc.collect()
    return {"blocks": probes.blocks(), "malloc_bytes": malloc.malloc_in_use() if malloc_too else None,
            "traced_bytes": probes.traced_bytes(), "fds": probes.fds(), "threads": threading.active_count(),
            "tasks": _pending_tasks()}


def still_rising(series: Series, name: str) -> bool:
    """Whether every run so far raised counter ``name`` by its step: once one has not, the screen
    cannot suspect it, and its readings can stop (the rule needs every run)."""
    steps = series.last_steps(name, series.n - 1)
    return all(not math.isnan(d) and d >= STEPS[name] for d in steps)


def screen(series: Series, runs: int, names: tuple[str, ...] = tuple(FLOORS)) -> list[str]:
    """The counters (of ``names``) that every one of the last ``runs`` runs raised by at least their
    step (the rule of CPython's ``regrtest -R``): the suspects, for a longer series to judge."""
    suspects = []
    for name in names:
        steps = series.last_steps(name, runs)
        if len(steps) == runs and all(not math.isnan(d) and d >= STEPS[name] for d in steps):
            suspects.append(name)
    return suspects


def judge(series: Series, names: list[str] | None = None) -> dict[str, Any]:
    """leakkit's verdict on each counter's series (leakkit.analysis.classify), or on ``names`` only."""
    verdicts = {}
    x = series.x
    for name, values in series.readings.items():  # a probe that came and went has no series
        if names is None or name in names:
            verdicts[name] = classify(x, settled(values) if name in MEMORY else values, floor=FLOORS[name])
    return verdicts


def settled(values: list[float], k: int = EXCURSION) -> list[float]:
    """Each reading as the least of it and the ``k - 1`` before it: what the runs left, not what a
    thread pool held at that moment (aiofiles: a work item's +50 blocks at one reading in a few
    dozen, after a test's +2; in the tail, the leak read as growth that had not gone on)."""
    return [min(values[max(i - k + 1, 0): i + 1]) for i in range(len(values))]
