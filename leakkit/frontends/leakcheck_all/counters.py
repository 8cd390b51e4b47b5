"""The cheap readings taken after each repeated run of a test, and leakkit's verdict on each series.

A test's runs are judged on counters that cost next to nothing to read, so a whole suite can be
checked: allocated blocks, traced bytes (when tracemalloc is on), open file descriptors, live
threads and pending asyncio tasks. The readings are kept in preallocated arrays, so that the
harness's own bookkeeping does not grow with the runs it measures.
"""
from __future__ import annotations

import gc
import math
import sys
import threading
from array import array
from typing import Any

BLOCKS_FLOOR = 8  # a few blocks come and go with pytest's own bookkeeping between runs
BYTES_FLOOR = 1024
COUNT_FLOOR = 1  # threads, fds, tasks: one more per run is a leak
MEMORY = ("blocks", "traced_bytes")  # a leak here is confirmed by a bisect
COUNTS = ("threads", "fds", "tasks")  # a leak here needs no confirmation: every run left one more
FLOORS = {"blocks": BLOCKS_FLOOR, "traced_bytes": BYTES_FLOOR, "fds": COUNT_FLOOR, "threads": COUNT_FLOOR,
          "tasks": COUNT_FLOOR}
UNITS = {"blocks": "blocks", "traced_bytes": "bytes", "fds": "fds", "threads": "threads", "tasks": "tasks"}


class Series:
    """Readings per counter in preallocated arrays: appending Python floats would keep a block
    per reading, the harness's own leak."""

    def __init__(self, names: tuple[str, ...], size: int) -> None:
        self.size = size
        self.n = 0
        self._values = {name: array("d", [math.nan]) * size for name in names}

    def add(self, reading: dict[str, float | None]) -> None:
        for name, column in self._values.items():
            value = reading.get(name)
            if value is not None:
                column[self.n] = value
        self.n += 1

    @property
    def x(self) -> list[int]:
        return list(range(self.n))

    @property
    def readings(self) -> dict[str, list[float]]:
        return {name: list(column[: self.n]) for name, column in self._values.items()
                if not any(math.isnan(v) for v in column[: self.n])}


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


def read_counters() -> dict[str, float | None]:
    """The cheap counters, read right after a full collection and with the type attribute cache
    cleared: on 3.10/3.11 it keeps every attribute name it caches (each unpickled class name, each
    ``getattr`` with a new string), up to 4096 of them, which read as a few blocks per run."""
    from ..._compat import settle
    from ...probes import process as probes

    settle()
    gc.collect()
    return {"blocks": probes.blocks(), "traced_bytes": probes.traced_bytes(), "fds": probes.fds(),
            "threads": threading.active_count(), "tasks": _pending_tasks()}


def judge(series: Series) -> dict[str, Any]:
    """leakkit's verdict on each counter's series (leakkit.analysis.classify)."""
    from ...analysis import classify

    verdicts = {}
    x = series.x
    for name, values in series.readings.items():  # a probe that came and went has no series
        verdicts[name] = classify(x, values, floor=FLOORS[name])
    return verdicts
