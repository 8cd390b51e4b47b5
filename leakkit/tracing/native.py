"""Tell whether growth is Python objects, native memory, or memory the allocator keeps.

Why: tracemalloc and the object-level tools see only the Python heap; a C extension or ctypes
leak shows as RSS growing while the traced heap is flat, and freed memory that glibc's malloc
keeps (fragmentation: one live block pins a heap top) looks like a leak from outside but is not
one. ``malloc_trim(0)`` asks glibc to return free memory: what it gives back was retention.

Verdicts (``tolerance`` bytes decide what counts as growth), from :func:`classify_growth`:

- ``python``: the traced Python heap grew, and accounts for at least half of the process growth
  that ``malloc_trim`` did not give back.
- ``native``: the process kept growing after ``malloc_trim``, beyond what the Python heap explains
  (C extensions, ctypes, or no ``malloc_trim`` to tell retention apart).
- ``allocator retention``: the process grew but ``malloc_trim`` gave it back.
- ``clean``: neither the process nor the heap grew.

``HeapNativeReport.readings`` columns, one row per reading (``call`` 0 is the baseline after
warm-up; the last row is after a garbage collection; with ``trim``, a row ``call = -1`` follows
``malloc_trim``): ``call``, ``traced_bytes`` (tracemalloc's traced Python heap), ``rss`` (bytes),
``tracemalloc_bytes`` (tracemalloc's own memory, taken out of the process growth),
``malloc_bytes`` (bytes malloc has handed out, glibc ``mallinfo2``; NaN elsewhere: it sees a native
leak that reuses memory the process already holds, which RSS does not).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import html
import math
import platform
import tracemalloc
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import psutil

from .. import _checks
from .._errors import WorkloadError, expected
from .._sizes import format_size
from .._text import wrap_lines
from ..probes.malloc import malloc_in_use
from .workload import MAX_CALLS, Caller, check_workload, run_error

VERDICTS = ("python", "native", "allocator retention", "clean")


def _libc_malloc_trim() -> Callable[[int], int] | None:
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _libc_malloc_trim()


def _rss() -> int:
    return psutil.Process().memory_info().rss


@_checks.strict
def malloc_trim() -> int | None:
    """Ask glibc to return free heap memory to the system; the RSS bytes it gave back (None without glibc)."""
    if _MALLOC_TRIM is None:
        return None
    before = _rss()
    _MALLOC_TRIM(0)
    return before - _rss()


def classify_growth(*, heap_bytes: float, process_bytes: float, trimmed_bytes: float | None, tolerance_bytes: float) -> str:
    """The verdict for one measurement (see the module docstring); pure, so it is testable on numbers."""
    kept = process_bytes - (trimmed_bytes or 0)
    if heap_bytes > tolerance_bytes and heap_bytes >= 0.5 * kept:
        return "python"
    if kept - max(heap_bytes, 0) > tolerance_bytes:
        return "native"
    if process_bytes > tolerance_bytes:
        return "allocator retention"
    return "clean"


@dataclass(frozen=True)
class HeapNativeReport:
    """Where a workload's growth went: the Python heap, native memory, or the allocator's free lists."""

    verdict: str
    calls: int
    heap_bytes: int
    process_bytes: int
    trimmed_bytes: int | None
    tolerance_bytes: int
    readings: pd.DataFrame
    malloc_live_bytes: int | None = None  # live malloc'd bytes gained beyond the Python heap

    @property
    def native_bytes(self) -> int:
        """Process growth that neither the Python heap nor ``malloc_trim`` explains (or, if more,
        the live bytes malloc gained beyond the Python heap)."""
        by_rss = max(0, int(self.process_bytes - (self.trimmed_bytes or 0) - max(self.heap_bytes, 0)))
        return max(by_rss, self.malloc_live_bytes or 0) if self.verdict == "native" else by_rss

    @property
    def heap_bytes_per_call(self) -> float:
        """What each call kept in the Python heap (tracemalloc, after GC): growth over the calls / calls."""
        return self.heap_bytes / max(self.calls, 1)

    @property
    def native_bytes_per_call(self) -> float:
        """:attr:`native_bytes` per call."""
        return self.native_bytes / max(self.calls, 1)

    @property
    def process_bytes_per_call(self) -> float:
        """Process growth (RSS less tracemalloc's own memory) per call, before ``malloc_trim``."""
        return self.process_bytes / max(self.calls, 1)

    def __repr__(self) -> str:
        return (f"<HeapNativeReport {self.verdict}: Python heap {format_size(self.heap_bytes_per_call, signed=True)}/call, "
                f"native {format_size(self.native_bytes_per_call, signed=True)}/call, {self.calls} calls>")

    def _rows(self) -> list[tuple[str, str]]:
        trimmed = "unavailable" if self.trimmed_bytes is None else format_size(self.trimmed_bytes)
        return [
            ("verdict", f"{self.verdict}: {_MEANING[self.verdict]}"),
            ("Python heap kept per call", f"{format_size(self.heap_bytes_per_call, signed=True)} "
                                          f"({format_size(self.heap_bytes, signed=True)} over {self.calls} calls, "
                                          "tracemalloc after GC)"),
            ("native kept per call", f"{format_size(self.native_bytes_per_call, signed=True)} "
                                     f"({format_size(self.native_bytes, signed=True)} over {self.calls} calls)"),
            ("process growth", f"{format_size(self.process_bytes, signed=True)} over {self.calls} calls "
                               "(RSS, tracemalloc's own memory taken out)"),
            ("given back by malloc_trim", trimmed),
        ]

    def __str__(self) -> str:
        rows = self._rows()
        width = max(len(k) for k, _ in rows[1:])
        return wrap_lines([f"heap vs native: {rows[0][1]}"] + [f"  {k + ':':{width + 1}s} {v}" for k, v in rows[1:]])

    def _repr_html_(self) -> str:
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
                       f"{html.escape(v)}</td></tr>" for k, v in self._rows())
        return f"<table class='leakkit-heap-native'>{body}</table>"

    def plot(self, ax: Any = None) -> Any:
        """Process and Python-heap growth since the baseline at each call (and after trim); returns the Axes."""
        from ..reports.plots import axes, byte_unit

        ax = axes(ax)
        calls = self.readings[self.readings["call"] >= 0]
        base = calls.iloc[0]
        process = calls["rss"] - calls["tracemalloc_bytes"] - base["rss"] + base["tracemalloc_bytes"]
        heap = calls["traced_bytes"] - base["traced_bytes"]
        name, divisor = byte_unit(list(process) + list(heap))
        # the legend carries the text's figures: growth over the calls, and per call
        ax.plot(calls["call"], process / divisor, ".-",
                label=f"process (RSS): {format_size(self.process_bytes, signed=True)}, "
                      f"{format_size(self.process_bytes_per_call, signed=True)}/call")
        ax.plot(calls["call"], heap / divisor, ".-",
                label=f"Python heap (traced): {format_size(self.heap_bytes, signed=True)}, "
                      f"{format_size(self.heap_bytes_per_call, signed=True)}/call")
        if self.trimmed_bytes is not None:
            last = calls["call"].iloc[-1]
            ax.plot([last], [(self.process_bytes - self.trimmed_bytes) / divisor], "v", color="C3",
                    label="after malloc_trim")
        ax.set_xlabel("call")
        ax.set_ylabel(f"growth since the baseline ({name})")
        ax.set_title(f"heap vs native: {self.verdict}")
        ax.legend(loc="best", fontsize="small")
        ax.grid(alpha=0.3)
        return ax


_MEANING = {
    "python": "what the calls kept is Python objects",
    "native": "the calls kept memory outside the Python heap (C extensions, ctypes)",
    "allocator retention": "the process grew, but malloc_trim gave the memory back: freed memory the allocator kept",
    "clean": "neither the process nor the Python heap grew",
}


_COLUMNS = ["call", "traced_bytes", "rss", "tracemalloc_bytes", "malloc_bytes"]


class _Readings:
    """Readings in arrays sized before the baseline: storing one allocates nothing the traced heap
    would count as the workload's (a dict per reading did: ~300 bytes a call)."""

    def __init__(self, rows: int) -> None:
        self.columns = [array("d", [math.nan]) * rows for _ in _COLUMNS]
        self.n = 0

    def take(self, call: int) -> None:
        in_use = malloc_in_use()
        values = (call, tracemalloc.get_traced_memory()[0], _rss(), tracemalloc.get_tracemalloc_memory(),
                  math.nan if in_use is None else in_use)
        for column, value in zip(self.columns, values, strict=True):
            column[self.n] = value
        self.n += 1

    def row(self, index: int) -> dict[str, float]:
        return {name: column[index] for name, column in zip(_COLUMNS, self.columns, strict=True)}

    def frame(self) -> pd.DataFrame:
        frame = pd.DataFrame({name: list(column[: self.n]) for name, column in zip(_COLUMNS, self.columns, strict=True)})
        return frame.astype({"call": "int64"})


@_checks.strict
def heap_vs_native(
    workload: Callable[[], Any],
    *,
    calls: int = 20,
    warmup: int = 1,
    trim: bool = True,
    tolerance: int | float | str = "1MiB",
) -> HeapNativeReport:
    """Run ``workload`` and tell whether what it keeps is Python objects, native memory, or allocator retention.

    Compares the traced Python heap (tracemalloc; started for the run if it is off, with one
    frame, and left running if it was on) with the process's RSS, then calls ``malloc_trim(0)``
    (glibc) and reports how many bytes it gave back.

    Args:
        workload: a zero-argument function or async function.
        calls: measured calls after the warm-up.
        warmup: calls before the baseline (first-call caches and imports are not growth).
        trim: try ``malloc_trim(0)`` after the last call.
        tolerance: growth below this is noise.

    Example::

        report = heap_vs_native(lambda: lib.handle(message), calls=50)
        print(report)   # heap vs native: native: ...; native kept per call: +1.0 MiB (+50.0 MiB over 50 calls)
    """
    is_async = check_workload(workload)
    calls = _checks.integer(calls, "calls", minimum=1, maximum=MAX_CALLS)
    warmup = _checks.integer(warmup, "warmup", minimum=0, maximum=MAX_CALLS)
    _checks.flag(trim, "trim")
    tolerance_bytes = _checks.size(tolerance, "tolerance")
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start(1)
    caller = Caller(workload, is_async)
    table = _Readings(calls + 2)
    try:
        def call(index: int) -> None:
            try:
                caller()
            except WorkloadError:
                raise
            except (Exception, GeneratorExit, SystemExit) as error:  # not Ctrl-C: that is the user's
                raise run_error(error, f"call {index}") from error

        for index in range(warmup):
            call(index)
        gc.collect()
        table.take(0)
        for index in range(1, calls + 1):
            call(index)
            if index == calls:
                gc.collect()  # only here: a full collection per call would dominate the run
            table.take(index)
        trimmed = None
        if trim:
            trimmed = malloc_trim()
            if trimmed is not None:
                table.take(-1)
    finally:
        caller.close()
        if started:
            tracemalloc.stop()
    readings = table.frame()
    first, last = table.row(0), table.row(calls)
    heap = last["traced_bytes"] - first["traced_bytes"]
    process = (last["rss"] - first["rss"]) - (last["tracemalloc_bytes"] - first["tracemalloc_bytes"])
    verdict = classify_growth(heap_bytes=heap, process_bytes=process, trimmed_bytes=trimmed, tolerance_bytes=tolerance_bytes)
    # malloc's own count of live bytes sees a native leak into memory the process already held
    # (RSS flat), and malloc_trim cannot give live bytes back: growth beyond the Python heap there
    # is native whatever RSS did.
    live = (last["malloc_bytes"] - first["malloc_bytes"]) - heap \
        - (last["tracemalloc_bytes"] - first["tracemalloc_bytes"])
    if live == live and live > tolerance_bytes and verdict != "python":
        verdict = "native"
    return HeapNativeReport(verdict=verdict, calls=calls, heap_bytes=int(heap), process_bytes=int(process),
                            trimmed_bytes=trimmed, tolerance_bytes=tolerance_bytes, readings=readings,
                            malloc_live_bytes=int(live) if live == live else None)


@_checks.strict
def classify_readings(
    frame: pd.DataFrame,
    *,
    heap_column: str = "traced_bytes",
    process_column: str | None = None,
    trimmed_bytes: int | None = None,
    tolerance: int | float | str = "1MiB",
) -> str:
    """The verdict from a series of readings (e.g. ``trace(...).checkpoints`` or a monitor CSV).

    Growth of each column is its Theil-Sen slope per row times the number of rows, robust to a
    GC dip or an allocator jump. ``process_column`` defaults to ``uss`` if present, else ``rss``.
    """
    from ..analysis.forecast import theil_sen

    frame = _checks.frame(frame, "frame", what="a DataFrame of readings")
    if process_column is None:
        process_column = "uss" if "uss" in frame.columns and frame["uss"].notna().any() else "rss"
    for option, name in (("heap_column", heap_column), ("process_column", process_column)):
        if not isinstance(name, str) or name not in frame.columns:
            raise expected(f"a column of the frame ({', '.join(map(str, frame.columns))})", option, name)
    _checks.frame(frame, "frame", numeric=[heap_column, process_column], readings=[heap_column, process_column],
                  what="a DataFrame of readings")
    if trimmed_bytes is not None:
        trimmed_bytes = _checks.integer(trimmed_bytes, "trimmed_bytes", minimum=0)
    tolerance_bytes = _checks.size(tolerance, "tolerance")
    data = frame[[heap_column, process_column]].dropna()
    if len(data) < 3:
        raise expected("at least 3 readings", "frame", f"{len(data)} rows")
    x = np.arange(len(data), dtype=float)
    growth = {name: theil_sen(x, data[name].to_numpy(dtype=float))[0] * (len(data) - 1)
              for name in (heap_column, process_column)}
    return classify_growth(heap_bytes=growth[heap_column], process_bytes=growth[process_column],
                           trimmed_bytes=trimmed_bytes, tolerance_bytes=tolerance_bytes)
