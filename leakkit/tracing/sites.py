"""Rank allocation sites by how their retained memory grows, loop after loop (tracemalloc).

Why growth and not size: the biggest site at the end of a run is often a cache or a rotating
buffer; a leak is the site that keeps growing. Like Swoole Tracker's "growth times", each site
gets how many loops it grew in and by how much, and sites are ranked by that.

Method: run the workload ``calls_per_loop`` times per loop; after each loop collect cyclic
garbage and take a tracemalloc snapshot, reduced at once to bytes per site (the innermost frame,
``file:line``). The first loop is warm-up (imports, caches, interned strings) and serves only as
the baseline. Allocations that are leakkit's own (a leakkit frame more recent than the call into
the workload, tracemalloc's own snapshot objects) are left out, and so, unless ``threads=True``,
are those of other threads (a complete traceback that never passes through the workload call).

``GrowthSites.frame`` columns, one row per growing site, best first:

- ``site``: ``file:line`` of the innermost frame (the allocating line).
- ``file``, ``line``: the same, split.
- ``growth_times``: in how many of the ``loops - 1`` measured loops the site's bytes grew.
- ``growth_loops``: ``loops - 1``, the denominator of ``growth_times``.
- ``growth_bytes``: retained bytes at the end minus after the warm-up loop.
- ``bytes_per_loop``: ``growth_bytes / growth_loops``.
- ``bytes_per_call``: ``bytes_per_loop / calls_per_loop`` (comparable with trace's and bisect's rates).
- ``final_bytes``, ``final_blocks``: retained at the end.
- ``traceback``: the biggest traceback at that site, oldest frame first, one ``file:line`` per line.
"""
from __future__ import annotations

import gc
import html
import linecache
import os
import sys
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from .. import _checks
from .._errors import WorkloadError, check_options
from .._sizes import format_size
from .._text import wrap_lines
from .workload import CALL_FRAMES, MAX_CALLS, MAX_FRAMES, MAX_LOOPS, Caller, check_workload, run_error

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # leakkit/
_TRACEMALLOC_FILE = os.path.abspath(tracemalloc.__file__)


def is_own(frames: list[tuple[str, int]]) -> bool:
    """True when an allocation is leakkit's: walking from the allocating frame outwards, a leakkit
    frame (or tracemalloc's module) comes before the call into the workload."""
    for filename, lineno in frames:
        if (filename, lineno) in CALL_FRAMES:
            return False
        if filename.startswith(_PACKAGE) or filename == _TRACEMALLOC_FILE:
            return True
    return False


def _outside(traceback: tracemalloc.Traceback, frames: list[tuple[str, int]]) -> bool:
    """True for a complete traceback that never passes through the call into the workload: another
    thread's stack (a notebook kernel's, a progress bar's). Truncated ones get the benefit of the doubt."""
    total = traceback.total_nframe
    complete = total is None or total <= len(frames)
    return complete and not any(frame in CALL_FRAMES for frame in frames)


def _reduce(snapshot: tracemalloc.Snapshot, threads: bool) -> dict[tuple[str, int], tuple[int, int, tracemalloc.Traceback, int]]:
    """Per innermost frame: bytes, blocks, and the biggest traceback (with its size)."""
    sites: dict[tuple[str, int], tuple[int, int, tracemalloc.Traceback, int]] = {}
    for stat in snapshot.statistics("traceback"):
        frames = [(frame.filename, frame.lineno) for frame in reversed(stat.traceback)]
        if not frames or is_own(frames) or (not threads and _outside(stat.traceback, frames)):
            continue
        key = frames[0]
        size, count, best, best_size = sites.get(key, (0, 0, stat.traceback, -1))
        if stat.size > best_size:
            best, best_size = stat.traceback, stat.size
        sites[key] = (size + stat.size, count + stat.count, best, best_size)
    return sites


@dataclass(frozen=True)
class GrowthSites:
    """Allocation sites ranked by growth across loops; ``frame`` (see the module docstring) and
    ``series`` (index ``loop``, one column per ranked site, retained bytes after each loop)."""

    frame: pd.DataFrame
    series: pd.DataFrame
    loops: int
    calls_per_loop: int
    nframes: int

    def __str__(self) -> str:
        measured = self.loops - 1
        head = (f"growth sites: {self.loops} loops x {self.calls_per_loop} call(s), first loop left out, "
                f"{self.nframes} frames")
        if self.frame.empty:
            return head + "\nno site grew"
        per = "per call" if self.calls_per_loop > 1 else "per loop"
        lines = [head, f"{'#':>3}  {'grew':>6}  {'growth':>11}  {per:>11}  {'final':>10}  site"]
        for rank, row in enumerate(self.frame.itertuples(index=False), start=1):
            rate = row.bytes_per_call if self.calls_per_loop > 1 else row.bytes_per_loop
            lines.append(
                f"{rank:>3}  {row.growth_times:>3}/{measured:<2}  {format_size(row.growth_bytes, signed=True):>11}  "
                f"{format_size(rate, signed=True):>11}  {format_size(row.final_bytes):>10}  {row.site}"
            )
            source = linecache.getline(row.file, row.line).strip()
            if source:
                lines.append(f"{'':>7}{source}")
            for frame_line in row.traceback.splitlines()[-4:][::-1][1:]:
                lines.append(f"{'':>7}<- {frame_line}")
        return wrap_lines(lines)

    def _repr_html_(self) -> str:
        measured = self.loops - 1
        rows = "".join(
            f"<tr><td>{rank}</td><td>{row.growth_times}/{measured}</td><td>{format_size(row.growth_bytes, signed=True)}</td>"
            f"<td>{format_size(row.bytes_per_loop, signed=True)}</td><td>{format_size(row.bytes_per_call, signed=True)}</td>"
            f"<td>{format_size(row.final_bytes)}</td>"
            f"<td><details><summary><code>{html.escape(row.site)}</code></summary><pre>{html.escape(row.traceback)}</pre>"
            f"</details></td></tr>"
            for rank, row in enumerate(self.frame.itertuples(index=False), start=1)
        )
        return (f"<p>growth sites: {self.loops} loops x {self.calls_per_loop} call(s), first loop left out</p>"
                "<table><tr><th>#</th><th>grew</th><th>growth</th><th>per loop</th><th>per call</th><th>final</th>"
                "<th>site</th></tr>"
                f"{rows}</table>")

    def __repr__(self) -> str:
        top = "" if self.frame.empty else f", top {_short_site(self.frame['site'].iloc[0])}"
        return f"<GrowthSites {len(self.frame)} growing sites over {self.loops} loops{top}>"

    def plot(self, ax: Any = None) -> Any:
        """Growth of each ranked site since the warm-up loop, on a log scale; returns the Axes.

        A log scale, because the top site often grows a thousand times faster than the fifth: on a
        linear axis every other line would lie flat at zero. Loops where a site had not grown yet
        (zero or less) are left out of its line.
        """
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        from ..reports.plots import axes, size_tick

        if ax is None:
            _, ax = plt.subplots(figsize=(9, 4), layout="constrained")  # room for the legend on the right
        ax = axes(ax)
        grown = self.series - self.series.iloc[0] if len(self.series) else self.series
        for site in grown.columns:
            values = grown[site].astype(float).where(grown[site] > 0)
            ax.plot(grown.index, values, marker=".", label=_short_site(site))
        if grown.size and (grown > 0).to_numpy().any():
            ax.set_yscale("log", base=2)
            ax.yaxis.set_major_locator(LogLocator(base=2, numticks=8))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: size_tick(value)))
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("loop")
        ax.set_ylabel("grown since loop 0 (log)")
        ax.set_title(f"growth sites: {self.loops} loops x {self.calls_per_loop} call(s)")
        if len(grown.columns):
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", title="site")
        ax.grid(alpha=0.3)
        return ax


def _short_site(site: str) -> str:
    """'.../lib/python3.11/asyncio/events.py:80' -> 'asyncio/events.py:80' for a legend."""
    path, _, line = str(site).rpartition(":")
    parts = path.replace("\\", "/").split("/")
    return f"{'/'.join(parts[-2:]) if len(parts) > 1 else path}:{line}"


@_checks.strict
def growth_sites(
    workload: Callable[[], Any],
    *,
    loops: int = 10,
    calls_per_loop: int = 1,
    nframes: int = 25,
    top: int = 10,
    threads: bool = False,
    progress: bool | None = None,
    **unknown: Any,
) -> GrowthSites:
    """Run ``workload`` in loops and rank the allocation sites whose retained memory grows.

    Args:
        workload: a zero-argument function or async function (one request, tick or message).
            Async ones run on an event loop leakkit creates and closes.
        loops: loops to run; the first is warm-up and only the baseline (>= 3).
        calls_per_loop: workload calls per loop (more calls make small leaks visible).
        nframes: traceback depth when leakkit starts tracemalloc; if tracemalloc is already
            tracing, its depth is kept and it is left running.
        top: how many sites to keep.
        threads: also count allocations whose (complete) traceback does not pass through the
            call into the workload: threads the workload starts, but also every other thread of
            the process (a notebook kernel's), which is why it is off by default.
        progress: a tqdm bar over the loops; None shows it only on a terminal.

    Example::

        sites = growth_sites(handle_one_request, loops=12, calls_per_loop=20)
        print(sites)            # the site that grew 11/11 loops first
        sites.frame.head()
    """
    check_options("growth_sites", unknown,
                  frozenset({"loops", "calls_per_loop", "nframes", "top", "threads", "progress"}))
    is_async = check_workload(workload)
    loops = _checks.integer(loops, "loops", minimum=3, maximum=MAX_LOOPS)
    calls_per_loop = _checks.integer(calls_per_loop, "calls_per_loop", minimum=1, maximum=MAX_CALLS)
    nframes = _checks.integer(nframes, "nframes", minimum=1, maximum=MAX_FRAMES)
    top = _checks.integer(top, "top", minimum=1, maximum=MAX_CALLS)
    _checks.flag(threads, "threads")
    _checks.optional_flag(progress, "progress")

    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start(nframes)
    depth = tracemalloc.get_traceback_limit()
    caller = Caller(workload, is_async)
    readings: list[dict[tuple[str, int], tuple[int, int, tracemalloc.Traceback, int]]] = []
    try:
        # no tqdm object unless shown: a disabled one still starts tqdm's monitor thread for good
        shown = progress if progress is not None else sys.stderr.isatty()
        for loop in tqdm(range(loops), desc="growth sites", unit="loop") if shown else range(loops):
            for _ in range(calls_per_loop):
                try:
                    caller()
                except WorkloadError:
                    raise
                except (Exception, GeneratorExit, SystemExit) as error:  # not Ctrl-C: that is the user's
                    raise run_error(error, f"loop {loop}") from error
            gc.collect()
            snapshot = tracemalloc.take_snapshot()
            readings.append(_reduce(snapshot, threads))
            del snapshot
    finally:
        caller.close()
        if started:
            tracemalloc.stop()
    try:
        return _rank(readings, loops=loops, calls_per_loop=calls_per_loop, nframes=depth, top=top)
    finally:
        del readings


def _format(traceback: tracemalloc.Traceback) -> str:
    """Oldest frame first, from the user's side of the call into the workload (leakkit's frames cut)."""
    frames = [(frame.filename, frame.lineno) for frame in traceback]
    calls = [i for i, frame in enumerate(frames) if frame in CALL_FRAMES]
    if calls:
        frames = frames[calls[-1] + 1:]
    return "\n".join(f"{filename}:{lineno}" for filename, lineno in frames)


def _rank(readings: list[dict], *, loops: int, calls_per_loop: int, nframes: int, top: int) -> GrowthSites:
    keys = set().union(*readings)
    rows = []
    for key in keys:
        sizes = [reading.get(key, (0, 0, None, 0))[0] for reading in readings]
        growth = sizes[-1] - sizes[0]
        times = sum(1 for a, b in zip(sizes, sizes[1:], strict=False) if b > a)
        if growth <= 0 or times == 0:
            continue
        final = readings[-1].get(key)
        traceback = final[2] if final else next(r[key][2] for r in reversed(readings) if key in r)
        rows.append({
            "site": f"{key[0]}:{key[1]}",
            "file": key[0],
            "line": key[1],
            "growth_times": times,
            "growth_loops": loops - 1,
            "growth_bytes": growth,
            "bytes_per_loop": growth / (loops - 1),
            "bytes_per_call": growth / (loops - 1) / calls_per_loop,
            "final_bytes": sizes[-1],
            "final_blocks": final[1] if final else 0,
            "traceback": _format(traceback),
            "_sizes": sizes,
        })
    rows.sort(key=lambda row: (-row["growth_times"], -row["growth_bytes"], row["site"]))
    rows = rows[:top]
    columns = ["site", "file", "line", "growth_times", "growth_loops", "growth_bytes", "bytes_per_loop",
               "bytes_per_call", "final_bytes", "final_blocks", "traceback"]
    frame = pd.DataFrame([{c: row[c] for c in columns} for row in rows], columns=columns)
    series = pd.DataFrame({row["site"]: row["_sizes"] for row in rows}, index=pd.RangeIndex(loops, name="loop"))
    return GrowthSites(frame=frame, series=series, loops=loops, calls_per_loop=calls_per_loop, nframes=nframes)
