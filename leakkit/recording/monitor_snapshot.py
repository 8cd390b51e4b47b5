"""When the in-process monitor writes a snapshot report, and what the report says.

Why apart from the sampler thread (:mod:`leakkit.recording.monitor`): sampling must stay cheap and
never stop, while a snapshot is the heavy, rare part (a type summary, reference paths, tracemalloc
sites), every pass over the heap in slices (:mod:`leakkit.recording.monitor_heap`); the rule that
decides when one is due is tested on plain series.

Growth rule (``auto_snapshot``, :func:`growth_confirmed`): over the last ``window`` samples, split
into four quarters, growth is confirmed when each quarter's highest RSS is above the previous
quarter's (sustained, not one jump; a sawtooth whose peaks rise still counts), and the last
quarter's median RSS is at least ``min_growth`` above the first quarter's. After a growth
snapshot, the next one needs a new full window and RSS ``min_growth`` above the RSS at that
snapshot, so a steady leak gives one report per ``min_growth`` of growth, not one per sample.

Snapshot reports are text files next to the recording: ``<name>.snapshot-001.txt``, ... with the
reason, the counters, the types that grew since the previous snapshot (or the start)
from :func:`leakkit.probes.heap.heap_summary`'s object set and names (a ``gc.get_objects()`` type
count if that module is missing), what keeps the newest of them alive, and, if tracemalloc is
tracing, the allocation sites that grew.
"""
from __future__ import annotations

import collections
import datetime
import gc
import os
import statistics
import sys
import time
import tracemalloc
from typing import Any

import pandas as pd

from .. import _compat
from .._errors import InvalidArgumentError
from .._sizes import format_size

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # leakkit/


def growth_confirmed(values: list[float], *, min_growth: float) -> bool:
    """The monitor's growth rule over one window of RSS samples (see the module docstring)."""
    if len(values) < 8:
        return False
    size = len(values) // 4
    quarters = [values[i * size:(i + 1) * size] for i in range(3)] + [values[3 * size:]]
    peaks = [max(q) for q in quarters]
    rising = all(b > a for a, b in zip(peaks, peaks[1:], strict=False))
    return rising and statistics.median(quarters[-1]) - statistics.median(quarters[0]) >= min_growth


def type_summary(objs: list[Any] | None = None) -> pd.DataFrame:
    """type, count, size of the live objects, computed in slices (see :mod:`leakkit.recording.monitor_heap`).

    No full collection first: on a big heap it holds the GIL for a tenth of a second or more,
    which is exactly the stall an always-on monitor must not cause.
    """
    try:
        from . import monitor_heap

        return monitor_heap.type_summary(monitor_heap.objects() if objs is None else objs)
    except ImportError:  # leakkit.probes.heap_scan (numpy) missing: a gc type count, in slices too
        counts: collections.Counter[str] = collections.Counter()
        sizes: collections.Counter[str] = collections.Counter()
        objects = gc.get_objects() if objs is None else objs
        try:
            for start in range(0, len(objects), 4000):
                for obj in objects[start:start + 4000]:
                    name = type(obj).__qualname__
                    counts[name] += 1
                    sizes[name] += sys.getsizeof(obj, 0)
                time.sleep(0.0005)
        finally:
            del objects
        return pd.DataFrame({"type": list(counts), "count": list(counts.values()),
                             "size": [sizes[name] for name in counts]})


def growing_types(before: pd.DataFrame | None, after: pd.DataFrame, top: int) -> pd.DataFrame:
    """The types of ``after`` that grew in count or size since ``before`` (None: the largest), biggest growth first."""
    if before is None:
        return after.sort_values("size", ascending=False).head(top).assign(count_delta=pd.NA, size_delta=pd.NA)
    merged = pd.merge(after.groupby("type")[["count", "size"]].sum(), before.groupby("type")[["count", "size"]].sum(),
                      left_index=True, right_index=True, how="outer", suffixes=("", "_before")).fillna(0)
    merged["count_delta"] = merged["count"] - merged["count_before"]
    merged["size_delta"] = merged["size"] - merged["size_before"]
    grown = merged[(merged["count_delta"] > 0) | (merged["size_delta"] > 0)]
    grown = grown.sort_values(["size_delta", "count_delta"], ascending=False).head(top)
    return grown.reset_index()[["type", "count", "size", "count_delta", "size_delta"]]


def reachable(start: Any, depth: int = 5) -> set[int]:
    """Ids of objects reachable from ``start`` within ``depth`` references: leakkit's own state."""
    seen: set[int] = {id(start)}
    level = [start]
    for _ in range(depth):
        nxt = [o for o in _compat.referents(*level) if id(o) not in seen and not isinstance(o, type)]
        seen.update(map(id, nxt))
        level = nxt
    return seen


def retention_lines(type_names: list[str], objs: list[Any], *, own: set[int], per_type: int = 8,
                     budget_s: float = 1.0) -> list[str]:
    """Reference paths from roots to the newest instances of each growing type (GC-tracked types:
    the others cannot be enumerated without walking the whole heap). ``objs``: the tracked objects
    (``gc.get_objects()``, taken once for the snapshot); ``own``: ids of leakkit's objects, never
    sampled nor walked through. Every pass over the heap is sliced (:mod:`leakkit.recording.monitor_heap`)."""
    from ..probes.heap_scan import type_name
    from ..retention import naming
    from . import monitor_heap

    wanted = set(type_names)
    names: dict[type, str] = {}
    samples: dict[str, list[Any]] = {name: [] for name in type_names}
    done = False
    # the youngest generation first: the newest objects come first
    for start in range(0, len(objs), monitor_heap.SLICE):
        for obj in objs[start:start + monitor_heap.SLICE]:
            kind = type(obj)
            name = names.get(kind)
            if name is None:
                name = names[kind] = type_name(kind)
            if name in wanted and len(samples[name]) < per_type and id(obj) not in own:
                samples[name].append(obj)
                if all(len(v) >= per_type for v in samples.values()):
                    done = True
                    break
        if done:
            break
        monitor_heap.pause()
    lines: list[str] = []
    index = naming.ModuleIndex()
    deadline = time.perf_counter() + budget_s
    for name, found in samples.items():
        if not found or time.perf_counter() > deadline:
            continue
        chains = naming.find_roots(found, index, ignore=own | {id(samples), id(found), id(names), id(objs)},
                                   deadline=deadline, referrers=lambda frontier: monitor_heap.referrers(frontier, objs))
        for chain in list(chains.values())[:2]:
            lines.append(f"  {name}: {naming.render(chain)}")
        del chains
    samples.clear()
    return lines


def header_lines(number: int, reason: str, row: dict[str, Any]) -> list[str]:
    """The first lines of snapshot ``number``: why it was taken, when, and the monitor's counters then."""
    return [
        f"leakkit monitor snapshot {number}: {reason}",
        f"time: {datetime.datetime.fromtimestamp(row['unix_time_s']).isoformat(timespec='seconds')} "
        f"(t = {row['t']:.1f} s), pid {os.getpid()}",
        f"rss: {format_size(row['rss'])}; allocated blocks: {row['allocated_blocks']}; open fds: "
        f"{row['open_fds']}; threads: {row['threads']}; gc collections: {row['gc_collections']}",
    ]


def type_lines(growing: pd.DataFrame, since: str | None, objs: list[Any], owner: Any) -> list[str]:
    """The growing types table (from :func:`growing_types`), then what keeps the newest of them alive.

    ``since``: what the table compares with (None: nothing, it lists the largest types);
    ``objs``: the tracked objects of this snapshot; ``owner``: the monitor, whose reachable state
    (:func:`reachable`) is leakkit's and never sampled.
    """
    lines = [
        "",
        f"growing types since {since}:" if since else "largest types (no earlier summary to compare):",
        growing.to_string(index=False) if len(growing) else "(none)",
    ]
    grown = [t for t, d in zip(growing["type"], growing["count_delta"], strict=True) if not pd.isna(d) and d > 0]
    # the user's own classes first: a growing dict or str is more often a symptom of them
    grown_names = sorted(grown, key=lambda t: "." not in t)[:3]
    if grown_names:
        paths = retention_lines(grown_names, objs, own=reachable(owner) | {id(objs)})
        lines += ["", "what keeps the newest of them alive (reference paths from roots):"]
        lines += paths or ["  (no path to a module global found: held from a frame, a C extension or the interpreter)"]
    return lines


def allocation_traces() -> tracemalloc.Snapshot:
    """tracemalloc's snapshot now, without tracemalloc's and leakkit's own allocations."""
    return tracemalloc.take_snapshot().filter_traces([
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, os.path.join(_PACKAGE, "*")),
    ])


def site_lines(traces: tracemalloc.Snapshot, previous: tracemalloc.Snapshot | None, top: int) -> list[str]:
    """The allocation sites that grew since ``previous`` (None: the largest ones), ``top`` of them."""
    if previous is not None:
        stats = [s for s in traces.compare_to(previous, "lineno") if s.size_diff > 0][:top]
        lines = ["", "growth sites (tracemalloc, since the previous snapshot):"]
    else:
        stats = traces.statistics("lineno")[:top]
        lines = ["", "largest allocation sites (tracemalloc):"]
    return lines + ([f"  {stat}" for stat in stats] or ["  (none)"])


def write_snapshot(csv_path: str, number: int, text: str) -> str:
    """A new ``<stem>.snapshot-NNN.txt`` beside the recording, mode 0600 (it names the user's types and dict keys).

    Created exclusively and never through a link: the name is leakkit's, often in a shared
    directory, and leakkit often runs as root. A number already taken (an earlier run's
    report, or a link someone planted) is skipped, never overwritten. Returns the path.
    """
    from .files import create_new

    stem = os.path.splitext(csv_path)[0]
    for _ in range(10_000):
        path = f"{stem}.snapshot-{number:03d}.txt"
        try:
            fd = create_new(path, "snapshot", mode=0o600)
        except FileExistsError:
            number += 1
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        return path
    raise InvalidArgumentError(f"snapshot: expected a free name {stem}.snapshot-NNN.txt, received 10000 taken")
