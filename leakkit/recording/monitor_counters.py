"""The in-process monitor's sample: this process's cheap counters, about 0.1 ms a reading.

Why apart from the sampler thread (:mod:`leakkit.recording.monitor`): a sample is taken every
``interval`` for the life of a production worker, so each reading is the cheapest there is, and
none walks the heap or runs a collection: RSS from one ``pread`` of ``/proc/self/statm`` kept
open (psutil where there is no /proc), the open descriptors from listing ``/proc/self/fd``,
``sys.getallocatedblocks()``, the collector's counts, tracemalloc's total when it traces.
"""
from __future__ import annotations

import gc
import os
import sys
import threading
import time
import tracemalloc

import psutil


class Counters:
    """The cheap readings, with the /proc file kept open so a sample's RSS costs one pread."""

    def __init__(self) -> None:
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        try:
            self._statm: int | None = os.open("/proc/self/statm", os.O_RDONLY)
        except OSError:
            self._statm = None
        self._process = psutil.Process()
        self._fd_dir = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else None

    def rss(self) -> int:
        if self._statm is not None:
            return int(os.pread(self._statm, 128, 0).split()[1]) * self._page
        return self._process.memory_info().rss

    def open_fds(self) -> int:
        if self._fd_dir is not None:
            return len(os.listdir(self._fd_dir)) - 1  # listdir's own descriptor
        try:
            return self._process.num_fds()
        except (AttributeError, psutil.Error):
            return -1

    def sample(self, start: float, cpu_s: float) -> dict[str, float]:
        """One row of the monitor's CSV (:data:`leakkit.recording.monitor.COLUMNS`); ``start``: the
        monitor's start (``time.monotonic()``), ``cpu_s``: the CPU time its thread has used so far."""
        counts = gc.get_count()
        traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None
        return {
            "t": time.monotonic() - start,
            "unix_time_s": time.time(),
            "rss": self.rss(),
            "allocated_blocks": sys.getallocatedblocks(),
            "gc0": counts[0], "gc1": counts[1], "gc2": counts[2],
            "gc_collections": sum(s["collections"] for s in gc.get_stats()),
            "open_fds": self.open_fds(),
            "threads": threading.active_count(),
            "traced_bytes": traced,
            "monitor_cpu_s": cpu_s,
        }

    def close(self) -> None:
        if self._statm is not None:
            os.close(self._statm)
            self._statm = None
