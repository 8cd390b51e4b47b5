"""What a monitor snapshot report says, written as plain text beside the recording.

Why apart from the sampler thread (:mod:`leakkit.recording.monitor`): sampling must stay cheap and
never stop, while a snapshot is the heavy, rare part (a type summary, reference paths, allocation
sites), every pass over the heap in slices (:mod:`leakkit.recording.monitor_heap`); when a snapshot
is taken and what it measures is :mod:`leakkit.recording.monitor_capture`.

A report, ``<name>.snapshot-001.txt``, ...: the reason, the monitor's status then (rate, verdict,
time to the limit), the cyclic garbage collected first, the types that grew between the two type
summaries of the snapshot (or since the previous snapshot), for each of the top growing types
where its newest instances were allocated (tracemalloc, when it traced them) and the reference
path that keeps them alive, then the allocation sites that grew. Plain Python throughout: no
numpy, no pandas in a worker.
"""
from __future__ import annotations

import collections
import contextlib
import datetime
import os
import sys
import sysconfig
import time
import tracemalloc
from typing import Any

from .. import _compat
from .._errors import InvalidArgumentError
from .._sizes import format_duration, format_size

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # leakkit/

Row = tuple[str, int, int, int | None, int | None]  # type, count, size, count_delta, size_delta


def growing_types(before: dict[str, list[int]] | None, after: dict[str, list[int]], top: int) -> list[Row]:
    """The types of ``after`` that grew in count or size since ``before`` (None: the largest), biggest growth first."""
    if before is None:
        rows = sorted(after.items(), key=lambda item: -item[1][1])[:top]
        return [(name, count, size, None, None) for name, (count, size) in rows]
    grown = []
    for name, (count, size) in after.items():
        old_count, old_size = before.get(name, (0, 0))
        if count > old_count or size > old_size:
            grown.append((name, count, size, count - old_count, size - old_size))
    grown.sort(key=lambda row: (-(row[4] or 0), -(row[3] or 0)))
    return grown[:top]


def table_lines(rows: list[Row]) -> list[str]:
    """The growing types as an aligned text table."""
    if not rows:
        return ["  (none)"]
    cells = [("type", "count", "size", "+count", "+size")]
    cells += [(name, str(count), format_size(size), "" if dc is None else f"{dc:+d}",
               "" if ds is None else format_size(ds, signed=True)) for name, count, size, dc, ds in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(5)]
    return ["  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
            for row in cells]


_CONTAINERS = (dict, list, set, frozenset, tuple, collections.deque)


def reachable(start: Any) -> set[int]:
    """Ids of leakkit's own state: ``start`` and what it refers to through builtin containers and
    leakkit's own objects (never through a function, a module, a thread or a user's object, which
    are leaves: a listener's globals are the application's)."""
    seen: set[int] = {id(start)}
    level = [start]
    while level:
        nxt = [o for o in _compat.referents(*level) if id(o) not in seen]
        seen.update(map(id, nxt))
        level = [o for o in nxt if _ours_to_follow(o)]
    return seen


def _ours_to_follow(obj: Any) -> bool:
    kind = type(obj)
    if kind in _CONTAINERS:
        return True
    module = vars(kind).get("__module__")
    return isinstance(module, str) and module.startswith("leakkit.") and not isinstance(obj, type)


def _own_file(filename: str) -> bool:
    return filename.startswith(_PACKAGE) or filename == tracemalloc.__file__


def site_of(obj: Any, frames: int = 3) -> str | None:
    """Where tracemalloc saw ``obj`` allocated: its innermost frames outside leakkit, or None."""
    traceback = tracemalloc.get_object_traceback(obj)
    if traceback is None:
        return None
    kept = [f"{frame.filename}:{frame.lineno}" for frame in reversed(traceback) if not _own_file(frame.filename)]
    return " <- ".join(kept[:frames]) if kept else None


def _traced(obj: Any) -> bool:
    """Allocated while tracemalloc traced: the object, or (3.11, where tracemalloc cannot find an
    object with inline attributes) what it holds."""
    return tracemalloc.get_object_traceback(obj) is not None or any(
        tracemalloc.get_object_traceback(ref) is not None for ref in _compat.referents(obj))


def retention_lines(type_names: list[str], kinds: dict[str, set[type]], objs: list[Any], *, own: set[int],
                    per_type: int = 8, budget_s: float = 2.0, sampled: Any = None) -> list[str]:
    """For each growing type: where its newest instances were allocated (when traced) and the
    reference paths from roots that keep them. ``kinds``: the types of each name (from the
    summary); ``objs``: the tracked objects of this snapshot; ``own``: ids of leakkit's objects,
    never sampled nor walked through. The search shares ``budget_s`` of CPU among the types.
    ``sampled()`` is called once the instances and their sites are known: tracemalloc can stop
    then (under it, every allocation of the search costs several times more)."""
    from ..retention import naming
    from . import monitor_heap

    traced = tracemalloc.is_tracing()
    wanted = {kind for name in type_names for kind in kinds.get(name, ())}
    samples = monitor_heap.instances(objs, wanted, own=own, per_type=per_type, prefer=_traced if traced else None)
    sites = {name: collections.Counter(site for kind in kinds.get(name, ()) for obj in samples.get(kind, ())[:per_type]
                                       if (site := site_of(obj)))
             for name in type_names} if traced else {}
    contents = {name: collections.Counter(site for kind in kinds.get(name, ()) for obj in samples.get(kind, ())[:per_type]
                                          for site in {site_of(ref) for ref in _compat.referents(obj)} if site)
                for name in type_names if not sites.get(name)} if traced else {}
    if sampled is not None:
        sampled()
    lines: list[str] = []
    index = naming.ModuleIndex()
    # the budget is this thread's CPU time: on a busy machine the wall clock runs on while the
    # application (and everything else) has the processor, and a wall budget found nothing
    end = time.thread_time() + budget_s
    for position, name in enumerate(type_names):
        found = [obj for kind in kinds.get(name, ()) for obj in samples.get(kind, ())][:per_type]
        if not found:
            continue
        if sites.get(name):
            site, hits = sites[name].most_common(1)[0]
            lines.append(f"  {name}: allocated at {site} ({hits} of {len(found)} newest sampled)")
        elif traced and contents.get(name):  # 3.11: tracemalloc finds no object with inline attributes
            site, hits = contents[name].most_common(1)[0]
            lines.append(f"  {name}: its contents allocated at {site} (in {hits} of {len(found)} newest sampled)")
        now = time.thread_time()
        share = (end - now) / (len(type_names) - position)

        def referrers(frontier: list[Any], stop: float = now + share) -> list[Any]:
            return monitor_heap.referrers(frontier, objs, stop, clock=time.thread_time) if time.thread_time() < stop else []

        ignore = own | {id(samples), id(found), id(objs)} | {id(kept) for kept in samples.values()}
        chains = naming.find_roots(found, index, ignore=ignore,
                                   deadline=time.perf_counter() + 60 * budget_s, referrers=referrers)
        paths = list(dict.fromkeys(naming.render(chain) for chain in chains.values()))
        for path in paths[:2]:
            lines.append(f"  {name}: kept by {path}")
        if not paths:
            lines.append(f"  {name}: no path from a module global found in {max(share, 0):.1f} s of CPU (held from a "
                         "frame, a C extension or the interpreter, or deeper)")
        del chains, found
    samples.clear()
    return lines


def worth_a_path(rows: list[Row], kinds: dict[str, set[type]], most: int = 3) -> list[str]:
    """The growing types whose reference paths are worth searching, the likeliest first: the
    application's own classes grown by 10 objects or more (its modules are outside the standard
    library and site-packages), then builtin and library types grown by 5% of the growth in bytes
    or more, biggest first (23 more ints are noise; a growing bytes is often the leak's payload),
    then the application's classes grown by 2 to 9 (a slow leak in a short window: the owner of a
    growing payload; one object more is a request in flight)."""
    total = sum(max(0, row[4] or 0) for row in rows)
    mine = [row for row in rows if row[3] is not None and row[3] >= 2
            and any(_application(kind) for kind in kinds.get(row[0], ()))]
    own = [row[0] for row in mine if row[3] >= 10]
    big = [row[0] for row in rows if row[3] is not None and row[0] not in own
           and (row[4] or 0) >= max(1, 0.05 * total)]
    few = [row[0] for row in mine if row[0] not in own and row[0] not in big]
    return (own + big + few)[:most]


def _application(kind: type) -> bool:
    """Whether ``kind`` is defined by the application: a module file outside the interpreter's
    library and site-packages."""
    name = vars(kind).get("__module__")
    if name == "__main__":  # the script, ``python -c``, the REPL, a notebook
        return True
    module = sys.modules.get(name) if isinstance(name, str) else None
    path = getattr(module, "__file__", None)
    if not isinstance(path, str):
        return False
    path = os.path.realpath(path)
    roots = {os.path.realpath(p) for p in (sysconfig.get_paths().get("stdlib"), sysconfig.get_paths().get("purelib"),
                                            sysconfig.get_paths().get("platlib")) if p}
    return not path.startswith(_PACKAGE) and not any(path.startswith(root + os.sep) for root in roots) \
        and "site-packages" not in path


def allocation_traces() -> tracemalloc.Snapshot:
    """tracemalloc's snapshot now, without tracemalloc's and leakkit's own allocations."""
    return tracemalloc.take_snapshot().filter_traces([
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, os.path.join(_PACKAGE, "*")),
    ])


def site_lines(traces: tracemalloc.Snapshot, previous: tracemalloc.Snapshot | None, top: int,
               since: str) -> list[str]:
    """The allocation sites that grew since ``previous`` (None: all of ``traces``, what was
    allocated since tracing began and is still alive), ``top`` of them."""
    if previous is not None:
        stats = [s for s in traces.compare_to(previous, "lineno") if s.size_diff > 0][:top]
    else:
        stats = traces.statistics("lineno")[:top]
    return ["", f"allocation sites that grew {since} (tracemalloc):"] + ([f"  {stat}" for stat in stats] or ["  (none)"])


def status_lines(status: dict[str, Any]) -> list[str]:
    """The monitor's judgement when the snapshot was taken, in words."""
    rate = status.get("rate_bytes_per_s")
    if rate is None:
        judged = f"verdict: {status['verdict']}"
    else:
        judged = (f"verdict: {status['verdict']}: {status['column']} {format_size(rate * 60, signed=True)}/min "
                  f"(95% interval {format_size(status['rate_low_bytes_per_s'] * 60, signed=True)} to "
                  f"{format_size(status['rate_high_bytes_per_s'] * 60, signed=True)}/min)")
    limit = status.get("limit_bytes")
    if limit:
        eta = status.get("seconds_to_limit")
        judged += f"; limit {format_size(limit)}" + (f", reached in ~{format_duration(eta)}" if eta is not None else "")
    return [judged]


def header_lines(number: int, reason: str, row: dict[str, Any], status: dict[str, Any]) -> list[str]:
    """The first lines of snapshot ``number``: why, when, which process, the counters and the verdict then."""
    who = ", ".join(f"{k} {status[k]}" for k in ("role", "service", "version") if status.get(k))
    return [
        f"leakkit monitor snapshot {number}: {reason}",
        f"time: {datetime.datetime.fromtimestamp(row['unix_time_s']).isoformat(timespec='seconds')} "
        f"(t = {row['t']:.1f} s), pid {os.getpid()}" + (f" ({who})" if who else ""),
        f"rss: {format_size(row['rss'])}; uss: {format_size(row['uss'])}; pss: {format_size(row['pss'])}; "
        f"python heap: {format_size(row['python_heap'])}; allocated blocks: {row['allocated_blocks']}; "
        f"open fds: {row['open_fds']}; threads: {row['threads']}",
        *status_lines(status),
    ]


def write_snapshot(csv_path: str, number: int, text: str) -> str:
    """A new ``<stem>.snapshot-NNN.txt`` beside the recording, mode 0600 (it names the user's types and dict keys).

    Created exclusively and never through a link: the name is leakkit's, often in a shared
    directory, and leakkit often runs as root. A number already taken (an earlier run's
    report, or a link someone planted) is skipped, never overwritten. The name is reserved empty,
    then the text replaces it whole (:func:`~leakkit.recording.files.saving`): a full disk leaves
    no empty or half report behind (the reserved name is removed) and raises SaveError. Returns the path.
    """
    from .files import create_new, saving

    stem = os.path.splitext(csv_path)[0]
    for _ in range(10_000):
        path = f"{stem}.snapshot-{number:03d}.txt"
        try:
            fd = create_new(path, "snapshot", mode=0o600)
        except FileExistsError:
            number += 1
            continue
        os.close(fd)
        try:
            with saving(path, "snapshot", picked=True, mode=0o600) as handle:
                handle.write(text)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(path)  # the empty file this call reserved, nobody else's
            raise
        return path
    raise InvalidArgumentError(f"snapshot: expected a free name {stem}.snapshot-NNN.txt, received 10000 taken")
