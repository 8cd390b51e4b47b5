"""One attach session inside the target: what grew between two heap walks, where it was made, what keeps it.

Why here and not in the agent: the agent (:mod:`leakkit.frontends.agent`) is transport; this is
the measurement, and it must hold to three rules in a process that never asked for leakkit:

- **it never stalls the process**: every pass over the heap is a :class:`~.heap_walk.Pacer`-cut
  walk; the only long single calls are ``tracemalloc.stop()`` (in proportion to the traces kept)
  and a reference search's slices, all timed and reported as the longest hold;
- **its memory is bounded and reported**: tracemalloc's own memory is polled while the window
  runs and the window ends early at ``max_trace_bytes``; the walk's tables are measured;
- **it leaves nothing behind**: tracing is stopped if the session started it, every reference it
  took is dropped before it returns; only the modules it imported stay.

The result is a plain dict (JSON-ready): the report is built and written on the client's side
(:mod:`leakkit.reports.attach_report`). Only the standard library and leakkit's numpy-free parts
are imported here.
"""
from __future__ import annotations

import os
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from .attach_sites import Sites, census, scan
from .heap_pacer import Aborted, Pacer
from .heap_referrers import referrers
from .heap_walk import HeapWalk, type_name
from .monitor_snapshot import worth_a_path

FORMAT = 1  # the result's layout; the report loader checks it


@dataclass(frozen=True)
class Options:
    """What one session does; the defaults are the CLI's."""

    duration: float = 30.0  # seconds between the two walks (the client may end it sooner)
    top: int = 15  # rows of the growing types table
    frames: int = 10  # tracemalloc frames kept per allocation
    max_trace_bytes: int = 64 * 1024 * 1024  # tracemalloc's own memory that ends the window early
    samples: int = 64  # instances of each type looked at for sites and paths
    paths_for: int = 3  # growing types whose reference paths are searched
    path_budget_s: float = 10.0  # wall time for all reference searches


def rss() -> int:
    """The process's resident set, from /proc/self/statm (0 where there is none)."""
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _alloc_loop() -> float:
    start = time.thread_time()
    for _ in range(5000):
        a = [None]
        b = {"a": a}
        c = (a, b)
        del a, b, c
    return time.thread_time() - start


def allocation_cost() -> float:
    """CPU seconds of this thread for 15,000 small allocations (best of five): how much tracing slows
    them. Thread time, not wall time: waiting for the GIL while the program runs is not their cost."""
    return min(_alloc_loop() for _ in range(5))


def run(options: Options, *, progress: Callable[[str], None], wait: Callable[[float], str | None],
        check: Callable[[], None]) -> dict[str, Any]:
    """:func:`measure` with a :class:`~.heap_pacer.Pacer` that times the interpreter's own collections
    in this thread apart from leakkit's work, from the first walk to the last reference search."""
    pacer = Pacer(check=check)
    pacer.watch()
    try:
        return measure(options, pacer, progress=progress, wait=wait)
    finally:
        pacer.unwatch()


def measure(options: Options, pacer: Pacer, *, progress: Callable[[str], None],
            wait: Callable[[float], str | None]) -> dict[str, Any]:
    """Measure, then leave. ``wait(s)`` sleeps up to ``s`` seconds and returns a reason to end the
    window early ("enter") or None; the pacer's ``check()`` raises :class:`Aborted` when the client is gone.
    Whatever ends it, tracing started here is stopped and every reference
    is dropped."""
    # imported before the first walk: what they import is not growth (Counter.most_common imports heapq)
    import heapq

    from ..retention import holders, naming

    _ = (heapq.nlargest, holders.raw_traceback, naming.find_roots)
    notes: list[str] = []
    result: dict[str, Any] = {"format": FORMAT, "pid": os.getpid(), "python": sys.version.split()[0],
                              "executable": sys.executable, "argv": list(sys.argv), "options": asdict(options)}
    started = not tracemalloc.is_tracing()
    walk1 = walk2 = None
    sites = Sites(holders.raw_traceback)
    trace_peak = 0
    stop_s = None
    try:
        result["rss_before"] = rss()
        progress("first heap walk (the process keeps running: the walk yields every few ms)")
        walk1 = HeapWalk(pacer).run()
        before = {name: row[:2] for name, row in walk1.summary().items()}
        walks = [_walk_row(walk1)]
        table = census(pacer)
        progress(f"first walk: {walk1.objects} objects in {walk1.seconds:.1f} s; {len(table)} holders noted")
        untraced = allocation_cost()
        if started:
            tracemalloc.start(options.frames)
        else:
            notes.append(f"tracemalloc was already tracing ({tracemalloc.get_traceback_limit()} frames): "
                         "left running; objects it traced before the window count as made in it")
        traced = allocation_cost()
        result["tracing"] = {"started_by_leakkit": started, "frames": tracemalloc.get_traceback_limit(),
                             "untraced_s": untraced, "traced_s": traced,
                             "slowdown": traced / untraced if untraced > 0 else None}
        progress(f"tracing allocations ({tracemalloc.get_traceback_limit()} frames: each allocation "
                 f"{result['tracing']['slowdown'] or 0:.1f}x slower while it runs)")
        result["ended_by"], result["window_s"], trace_peak = _window(options, wait, notes)
        if started:  # everything tracemalloc holds was allocated in the window and is still alive
            result["traced_bytes"] = tracemalloc.get_traced_memory()[0]
        pacer.restart()
        progress(f"window over ({result['ended_by']}, {result['window_s']:.1f} s): reading allocation sites")
        scan(table, sites, pacer, name_of=type_name)
        table.clear()
    finally:
        if started and tracemalloc.is_tracing():
            trace_peak = max(trace_peak, tracemalloc.get_tracemalloc_memory())
            t0 = time.perf_counter()
            tracemalloc.stop()
            stop_s = time.perf_counter() - t0
            pacer.note_hold("tracemalloc.stop()", stop_s)
    try:
        progress("second heap walk")
        walk2 = HeapWalk(pacer, keep=True, previous=walk1.seen, samples=8).run()
        walks.append(_walk_row(walk2))
        walk1.release()
        result["walks"] = walks
        notes.extend(w["cut"] for w in walks if w["cut"])
        growing = grown(before, walk2.summary(), options.top)
        for row in growing:
            row.update(sites.of(row["type"]))
        result["types"] = growing
        progress(f"{len(growing)} growing types; searching what keeps the top ones alive")
        result["paths"] = paths(walk2, growing, options, pacer, naming)
        result["holders"] = holder_paths(walk2, sites, options, pacer, naming)
    finally:
        for walk in (walk1, walk2):
            if walk is not None:
                walk.release()
        sites.release()
    result["rss_after"] = rss()
    result["memory"] = {"tracemalloc_peak": trace_peak, "walk_peak": max(w["own_bytes"] for w in walks)}
    result["gil"] = {"longest_hold_s": pacer.longest_s, "longest_hold_in": pacer.longest_what,
                     "longest_cpu_s": pacer.longest_cpu_s,
                     "pauses": pacer.pauses, "tracemalloc_stop_s": stop_s,
                     "collections": pacer.collections, "longest_collection_s": pacer.longest_collection_s,
                     "longest_collection_generation": pacer.longest_collection_generation}
    result["notes"] = notes
    return result


def _walk_row(walk: HeapWalk) -> dict[str, Any]:
    return {"objects": walk.objects, "seconds": walk.seconds, "own_bytes": walk.nbytes(), "cut": walk.cut}


def _window(options: Options, wait: Callable[[float], str | None], notes: list[str]) -> tuple[str, float, int]:
    """Wait out the window: (what ended it, its length in seconds, tracemalloc's peak memory)."""
    start = time.monotonic()
    peak = 0
    ended_by = "duration"
    while True:
        left = options.duration - (time.monotonic() - start)
        if left <= 0:
            break
        reason = wait(min(0.25, left))
        peak = max(peak, tracemalloc.get_tracemalloc_memory())
        if reason:
            ended_by = reason
            break
        if peak > options.max_trace_bytes:
            ended_by = "memory cap"
            notes.append(f"the window ended early: tracemalloc's own memory reached {peak} bytes "
                         f"(max_trace_bytes {options.max_trace_bytes})")
            break
    return ended_by, time.monotonic() - start, peak


def grown(before: dict[str, list[int]], after: dict[str, list[int]], top: int) -> list[dict[str, Any]]:
    """Types whose count or bytes grew between the walks, most bytes first, ``top`` of them."""
    rows = []
    for name, (count, size, new, new_size) in after.items():
        count0, size0 = before.get(name, (0, 0))
        if count > count0 or size > size0:
            rows.append({"type": name, "count": count, "size": size, "count_delta": count - count0,
                         "size_delta": size - size0, "new": new, "new_size": new_size})
    rows.sort(key=lambda r: (r["size_delta"], r["count_delta"]), reverse=True)
    return rows[:top]


def paths(walk: HeapWalk, growing: list[dict[str, Any]], options: Options, pacer: Pacer,
          naming: Any) -> list[dict[str, str]]:
    """Reference paths from roots to sampled new instances of the growing types worth one, chosen
    as the monitor's snapshot chooses (:func:`.monitor_snapshot.worth_a_path`: the application's
    classes, the byte-heavy types, then the application's classes grown by a few: a slow leak's
    owner in a short window, +2 ``RequestContext`` below a library's +4 ``SplitResult``), two per type."""
    rows = [(r["type"], r["count"], r["size"], r["count_delta"], r["size_delta"]) for r in growing
            if r["new"] > 0 and r["count_delta"] > 0]
    names = {row[0] for row in rows}
    kinds: dict[str, set[type]] = {}
    for kind in walk.totals:
        if type_name(kind) in names:
            kinds.setdefault(type_name(kind), set()).add(kind)
    wanted = worth_a_path(rows, kinds, options.paths_for)
    del kinds
    out: list[dict[str, str]] = []
    if not wanted:
        return out
    index = naming.ModuleIndex()
    deadline = time.perf_counter() + options.path_budget_s
    tracked = walk.tracked
    for name in wanted:
        if time.perf_counter() > deadline:
            out.append({"type": name, "path": None, "note": "not searched: the search's time budget was spent"})
            continue
        found = walk.sampled(name)[:8]
        partial: dict[int, list[Any]] = {}
        ignore = {id(walk), id(tracked), id(found), id(partial), id(walk.totals)}
        try:
            chains = naming.find_roots(found, index, ignore=ignore, deadline=deadline, partial=partial,
                                       referrers=lambda frontier: referrers(frontier, tracked, pacer))
        except Aborted:
            raise
        spelled = []
        for chain in chains.values():
            text = naming.render(chain)
            if text not in spelled:
                spelled.append(text)
        if not spelled and partial:
            spelled = [naming.render_partial(next(iter(partial.values()))) + "  (no root reached)"]
        out.extend({"type": name, "path": text} for text in spelled[:2])
        if not spelled:
            out.append({"type": name, "path": None,
                        "note": "no path from a module global: held from a frame, a C extension or the interpreter"})
        del chains, found, partial
    return out


def holder_paths(walk: HeapWalk, sites: Sites, options: Options, pacer: Pacer, naming: Any) -> list[dict[str, Any]]:
    """The grown holders, the path of the few that grew most spelled from a root (the census's own
    spelling, by position where it went through an object, stays for the others)."""
    rows = [dict(h) for h in sites.holders[:options.top]]
    objs = list(sites.holder_objects)
    if objs:
        tracked = walk.tracked
        chains = naming.find_roots(objs, naming.ModuleIndex(), ignore={id(objs), id(sites.holder_objects)},
                                   deadline=time.perf_counter() + options.path_budget_s / 2,
                                   referrers=lambda frontier: referrers(frontier, tracked, pacer))
        for row, obj in zip(rows, objs, strict=False):
            chain = chains.get(id(obj))
            if chain:
                row["path"] = naming.render(chain)
        del chains
    objs.clear()
    return rows
