"""What each checkpoint of a bisect run reads, kept as series (one value per checkpoint).

A traced checkpoint reads every live traced block after a collection and charges it to the
innermost target function on its stack (its own code, ``self``), to every target on its call path
(``incl``), to its path and to the line that allocated it; with it the process's RSS and what
malloc holds beyond Python's traced blocks. A heavy run's untraced calls are read more cheaply:
allocated blocks, RSS and malloc after a collection.
"""
from __future__ import annotations

import gc
import math
import sys
import tracemalloc
from array import array
from collections import defaultdict
from typing import Any

from .. import _compat
from ..probes import process as probes
from ..probes.malloc import malloc_in_use

_UNSEEN = object()


class Readings:
    """The series of one run. Traced ones: ``x`` (calls at each checkpoint), ``total`` and
    ``total_blocks`` (traced bytes and blocks charged to the user's code), ``rss``, ``native``
    (RSS beyond traced memory), ``native_malloc`` (malloc in use beyond large traced blocks), and
    per function or path the tables below. Untraced (heavy runs): ``cheap_*``."""

    def __init__(self) -> None:
        self.x = array("d")
        self.total = array("d")
        self.total_blocks = array("d")
        self.rss = array("d")
        self.native = array("d")
        self.native_malloc = array("d")
        self.self_bytes: dict[str, array] = {}
        self.self_blocks: dict[str, array] = {}
        self.incl_bytes: dict[str, array] = {}
        self.path_bytes: dict[tuple, array] = {}
        self.site_bytes: dict[tuple[str, str], array] = {}  # (function, "file:line")
        self.rss_self: dict[str, array] = {}
        self.malloc_self: dict[str, array] = {}
        self.cheap_x = array("d")
        self.cheap_blocks = array("d")
        self.cheap_rss = array("d")
        self.cheap_malloc = array("d")
        self.site_of: dict[tuple, tuple[str, str] | None] = {}  # traceback -> (target, its line), memo

    def reset_traced(self) -> None:
        """Forget the traced series (a heavy run's probe call)."""
        for name in ("x", "total", "total_blocks", "rss", "native", "native_malloc"):
            setattr(self, name, array("d"))
        for table in (self.self_bytes, self.self_blocks, self.incl_bytes, self.path_bytes, self.site_bytes,
                      self.rss_self, self.malloc_self):
            table.clear()

    def read_cheap(self, n: int) -> None:
        """After ``n`` untraced calls: allocated blocks, RSS, malloc, after a collection."""
        _compat.settle()
        gc.collect()
        self.cheap_x.append(n)
        self.cheap_blocks.append(sys.getallocatedblocks())
        self.cheap_rss.append(probes.rss() or 0)
        in_use = malloc_in_use()
        self.cheap_malloc.append(math.nan if in_use is None else in_use)

    def read_traces(self, n: int, attribute: Any, lines: dict, stats: dict) -> None:
        """After ``n`` measured calls: every trace charged by ``attribute`` (an
        :class:`~leakkit.analysis.attribution.Attributor`), and the wrappers' ``stats`` per target."""
        _compat.settle()  # 3.10/3.11: attribute names the type cache keeps are not the workload's
        gc.collect()
        traces = tracemalloc._get_traces()
        self_b: dict[str, int] = defaultdict(int)
        self_n: dict[str, int] = defaultdict(int)
        incl: dict[str, int] = defaultdict(int)
        paths: dict[tuple, int] = defaultdict(int)
        sites: dict[tuple[str, str], int] = defaultdict(int)
        site_of = self.site_of
        total = blocks = large = 0
        for tb, size, count, big in group_traces(traces):
            large += big  # over pymalloc's limit: these bytes came from malloc
            who = attribute(tb)
            if who is None:
                continue
            name, path, on_path = who
            total += size
            blocks += count
            self_b[name] += size
            self_n[name] += count
            if path:
                for fn in on_path:
                    incl[fn] += size
                paths[path] += size
                site = site_of.get(tb, _UNSEEN)
                if site is _UNSEEN:  # the same tracebacks come back at every checkpoint
                    frame = next((f for f in tb if lines.get(f) == name), None)
                    site = site_of[tb] = None if frame is None else (name, f"{frame[0]}:{frame[1]}")
                if site is not None:
                    sites[site] += size
        del traces
        k = len(self.x)
        self.x.append(n)
        self.total.append(total)
        self.total_blocks.append(blocks)
        rss = probes.rss() or 0
        self.rss.append(rss)
        own = tracemalloc.get_tracemalloc_memory()
        self.native.append(rss - own - tracemalloc.get_traced_memory()[0])
        in_use = malloc_in_use()
        self.native_malloc.append(math.nan if in_use is None else in_use - large - own)
        for table, values in ((self.self_bytes, self_b), (self.self_blocks, self_n), (self.incl_bytes, incl),
                              (self.path_bytes, paths), (self.site_bytes, sites)):
            for key in values.keys() | table.keys():
                series = table.get(key)
                if series is None:
                    series = table[key] = array("d", [0.0] * k)
                series.append(values.get(key, 0))
        for name, st in stats.items():
            for table, value in ((self.rss_self, st.rss_self), (self.malloc_self, st.malloc_self)):
                series = table.get(name)
                if series is None:
                    series = table[name] = array("d", [0.0] * k)
                series.append(value)

    def top_sites(self) -> dict[str, str]:
        """Per function, the source line whose kept bytes grew most over the run."""
        best: dict[str, tuple[float, str]] = {}
        for (name, site), series in self.site_bytes.items():
            growth = series[-1] - series[0] if len(series) else 0.0
            if name not in best or growth > best[name][0]:
                best[name] = (growth, site)
        return {name: site for name, (growth, site) in best.items() if growth > 0}


def group_python(traces: list) -> list[tuple[tuple, int, int, int]]:
    """(traceback, bytes, blocks, bytes in blocks over 512 B) per distinct traceback."""
    groups: dict[int, list] = {}
    for trace in traces:
        tb = trace[2]
        size = trace[1]
        group = groups.get(id(tb))  # traces sharing a traceback share one tuple in a snapshot
        if group is None:
            group = groups[id(tb)] = [tb, 0, 0, 0]
        group[1] += size
        group[2] += 1
        if size > 512:
            group[3] += size
    return [tuple(g) for g in groups.values()]


try:  # grouping in C: no allocation per live block while tracemalloc traces every allocation
    from ..probes._heapscan import group_traces
except ImportError:
    group_traces = group_python
