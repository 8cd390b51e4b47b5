"""A watch's readings as fleet recordings: every watched process's row, through a FleetWriter.

Why: ``leakkit fleet`` answers from the hive-partitioned Parquet the monitor writes inside
workers; a server nobody may change (no monitor in its workers) is watched from outside instead,
and its workers must land in the same layout, so one query spans both (``source = 'watch'``).

The numbers are the watch's own, the same wherever they appear: each row is one process's line
of the per-worker table (:func:`leakkit.reports.workers.forecast_workers` on the samples so far,
the table ``leakkit watch`` draws and prints at the end): ``rss_bytes``, ``pss_bytes``,
``uss_bytes`` and ``swap_bytes`` of its last sample (``unix_time_s`` is that sample's time),
``rate_bytes_per_s`` and its interval (of the headline column, RSS, after its warm-up),
``seconds_to_limit`` (from that sample; null where the table says "not on course"),
``limit_bytes`` (per process). ``verdict`` is the monitor's vocabulary where the two agree: ``leak``
for the shapes the table counts as leaking (linear or step growth), ``warming up``, ``plateau``,
``flat``, ``unknown`` (too few samples to judge); the watch's other shapes by their own name
(``sawtooth``, ``unsharing``). What a watch cannot read from outside is null: ``python_heap_bytes``,
``snapshots``. ``started_unix_s`` is the process's start.

Cost: the table is computed at most once per ``writer.every`` seconds and never more often than
20 times its own last cost (as the live table), so it spends at most ~5% of the watch's time;
the last one, when the watch ends, is written whatever the spacing (the table the summary prints).
"""
from __future__ import annotations

import math
import time
from typing import Any

import pandas as pd

from ..probes.cgroup import memory_limit
from ..recording.export.fleet_writer import FleetWriter
from ..recording.timeline import COLUMNS
from ..recording.tree import Tree
from .columns import LEAK_SHAPES
from .workers import WorkerForecasts, forecast_workers

#: The watch's shapes in the monitor's words (a leak shape is "leak"; the rest keep their own name).
VERDICTS = {"warm-up": "warming up", "plateau": "plateau", "flat": "flat"}


def verdict_of(shape: str | None) -> str:
    """A watch forecast's shape as the fleet's ``verdict`` (None: too few samples, ``unknown``)."""
    if not shape:
        return "unknown"
    return "leak" if shape in LEAK_SHAPES else VERDICTS.get(shape, shape)


def _value(value: Any) -> float | None:
    """A table cell as a number, None where it is NaN or infinite (null in the file)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def statuses(report: WorkerForecasts, frame: pd.DataFrame, tree: Tree) -> list[dict[str, Any]]:
    """One fleet row per process of the table: its figures as the table shows them."""
    last = frame.groupby("pid", sort=False).tail(1).set_index("pid")
    out = []
    for row in report.table.itertuples(index=False):
        pid = int(row.pid)
        result = report.forecasts.get(pid)
        reading = last.loc[pid]
        out.append({
            "pid": pid, "role": row.role, "unix_time_s": float(reading["unix_time_s"]), "t_s": float(reading["t"]),
            "started_unix_s": tree.created.get(pid),
            "rss_bytes": _value(row.rss), "pss_bytes": _value(row.pss), "uss_bytes": _value(row.uss),
            "swap_bytes": _value(reading["swap"]), "python_heap_bytes": None,
            "rate_bytes_per_s": _value(row.rate_bytes_per_s), "rate_low_bytes_per_s": _value(row.rate_low),
            "rate_high_bytes_per_s": _value(row.rate_high),
            "verdict": verdict_of(result.shape if result is not None else None),
            "limit_bytes": report.limit_bytes, "seconds_to_limit": _value(row.eta_s), "snapshots": None,
            "ended": pid in tree.ended,
        })
    return out


class FleetFeed:
    """Takes each sample of a watch (its ``_on_sample``) and writes the processes' rows when due.

    ``rows``: the list the samples are kept in when another consumer (the live table) keeps them
    already; the feed then only reads it.
    """

    def __init__(self, writer: FleetWriter, *, limit: Any, interval: float, rows: list[tuple] | None = None) -> None:
        self.writer = writer
        self.limit = limit
        self.interval = interval
        self.rows: list[tuple] = [] if rows is None else rows
        self._own_rows = rows is None
        self.cost = 0.0
        self.last = -math.inf
        self.attrs: dict[str, Any] = {"interval": interval}
        self.tree: Tree | None = None
        self.done: dict[int, float] = {}  # pid -> when first seen, for the processes whose last row is written

    def update(self, sample: list[tuple], tree: Tree) -> None:
        """Called by the watch with each sample's rows; writes the table's rows when due."""
        if self._own_rows:
            self.rows.extend(sample)
        if self.tree is None:
            cgroup = memory_limit(tree.root.pid)
            self.attrs.update(cgroup_limit_bytes=cgroup.limit_bytes if cgroup else None,
                              cgroup_limit_source=cgroup.source if cgroup else None)
        self.tree = tree
        now = time.monotonic()
        if now - self.last >= max(self.writer.every, 20 * self.cost):
            self.write()

    def write(self, final: bool = False) -> None:
        """Compute the table on the samples so far and hand each process's row to the writer."""
        if self.tree is None or not self.rows:
            return
        started = time.perf_counter()
        frame = pd.DataFrame(self.rows, columns=COLUMNS)
        frame.attrs.update(self.attrs, ended=dict(self.tree.ended), created=dict(self.tree.created))
        try:
            report = forecast_workers(frame, self.limit)
        except Exception:  # noqa: BLE001 - a process gone mid-way: the next sample's table
            return
        finally:
            self.cost = time.perf_counter() - started
            self.last = time.monotonic()
        seen = self.tree.first_seen
        for status in statuses(report, frame, self.tree):
            pid, ended = status.pop("pid"), status.pop("ended")
            if pid in self.done and self.done[pid] == seen.get(pid):  # written; a reused pid is another process
                continue
            self.writer.add({"pid": pid, **status}, force=final or ended)
            if ended:  # its series is over: its last row is written, its file closed
                self.writer.forget(pid)
                self.done[pid] = seen.get(pid, math.nan)

    def close(self) -> None:
        """The table at the end of the watch, written whole, then the writer closed."""
        try:
            self.write(final=True)
        finally:
            self.writer.close()


def writer_for(fleet: Any) -> FleetWriter:
    """``fleet=`` as a FleetWriter of a watch: a folder gets one (``source="watch"``); a writer is used as given."""
    from .._errors import expected

    if isinstance(fleet, FleetWriter):
        if fleet.source != "watch":
            raise expected('a FleetWriter made with source="watch" (its files say who wrote them)', "fleet",
                           fleet)
        return fleet
    if isinstance(fleet, str) or hasattr(fleet, "__fspath__"):
        return FleetWriter(fleet, source="watch")
    raise expected("a folder (str or path) or a FleetWriter(..., source='watch')", "fleet", fleet)
