"""The fleet report: which hosts and workers grow, since when, how fast, who meets a limit first,
and whether a version started it; as text, HTML, DataFrames and plots.

Why apart from the queries (:mod:`leakkit.analysis.fleet`): the answers are DataFrames any
notebook can take further; this is what people read, with every rate and time formatted as the
watch and forecast reports format theirs, and the SQL that produced it kept beside (``.sql``).
"""
from __future__ import annotations

import html
import math
import os
import re
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .. import _checks
from .._errors import expected
from .._sizes import format_duration, format_size
from ..analysis import fleet as _queries
from ..analysis.fleet import FleetTables
from .forecast import format_rate
from .html import figure_html

_UNITS = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "d": 86400}


def seconds(value: Any, name: str) -> float | None:
    """A duration: seconds as a number, or text like '90s', '30min', '6h', '2d'; None stays None."""
    if value is None:
        return None
    if not isinstance(value, str):
        return _checks.seconds(value, name)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|sec|min|m|h|d)\s*", value) if isinstance(value, str) else None
    if match is None or float(match.group(1)) <= 0:
        raise expected("a positive duration (seconds, or '90s', '30min', '6h', '2d')", name, value)
    return float(match.group(1)) * _UNITS[match.group(2)]


def _clock(unix_s: float | None) -> str:
    if unix_s is None or not math.isfinite(unix_s):
        return "n/a"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(unix_s))


def _rate(row: Any) -> str:
    rate = row.rate_bytes_per_s
    if rate is None or not math.isfinite(rate):
        return f"n/a (average {format_rate(row.average_bytes_per_s, signed=True)})"
    low, high = row.rate_low_bytes_per_s, row.rate_high_bytes_per_s
    bounds = (f" [{format_rate(low, signed=True)}, {format_rate(high, signed=True)}]"
              if low is not None and high is not None and math.isfinite(low) and math.isfinite(high) else "")
    return f"{format_rate(rate, signed=True)}{bounds}"


def _table(frame: pd.DataFrame, columns: list[tuple[str, Any]]) -> list[str]:
    rows = [[head for head, _f in columns]] + [[str(f(r)) for _h, f in columns] for r in frame.itertuples()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


@dataclass
class FleetReport:
    """The answers of :func:`fleet`. DataFrames: :attr:`workers` (one row per process life),
    :attr:`leaking`, :attr:`hosts`, :attr:`rates`, :attr:`versions`, :attr:`closest`; columns in
    :func:`leakkit.analysis.fleet.query`. :attr:`sql` is what DuckDB ran."""

    tables: FleetTables
    top: int = 10

    @property
    def workers(self) -> pd.DataFrame:
        return self.tables.workers

    @property
    def leaking(self) -> pd.DataFrame:
        """The live workers whose last verdict is a leak, fastest first."""
        w = self.workers
        return w[w["leaking"].astype(bool) & w["alive"].astype(bool)].reset_index(drop=True)

    hosts = property(lambda self: self.tables.hosts, doc="One row per host: workers, leaking, memory, fastest rate.")
    rates = property(lambda self: self.tables.rates, doc="Growth-rate quantiles of live workers, per service.")
    versions = property(lambda self: self.tables.versions, doc="Per service and version: workers, leaking, rates.")
    closest = property(lambda self: self.tables.closest, doc="Live workers with the shortest time to their limit.")

    @property
    def sql(self) -> str:
        """The statements DuckDB ran, in order."""
        return ";\n\n".join(self.tables.statements) + ";\n"

    def version_onsets(self) -> list[tuple[str, str]]:
        """(service, version) pairs where leaks start: the first version of a service with leaking
        workers, after one without any (what a deploy started)."""
        found = []
        for service, group in self.versions.groupby("service", sort=True):
            before_clean = False
            for row in group.sort_values("first_started_s").itertuples():
                if row.leaking and before_clean:
                    found.append((str(service), str(row.version)))
                    break
                before_clean = before_clean or row.leaking == 0
        return found

    # -- text ----------------------------------------------------------------------------------
    def __str__(self) -> str:
        t, w = self.tables, self.workers
        alive = w[w["alive"].astype(bool)]
        span = (t.last_s - float(w["first_s"].min())) if t.last_s is not None and len(w) else 0.0
        lines = [f"leakkit fleet: {t.path} (memory: {t.column}, else rss)",
                 f"{len(w):,} worker(s) ({len(alive):,} alive) on {w['host'].nunique():,} host(s), "
                 f"{w['service'].nunique():,} service(s); samples up to {_clock(t.last_s)} "
                 f"({format_duration(span)}{'' if t.start_s is None else ' window'})"]
        leaking = self.leaking
        if len(leaking):
            hosts = leaking["host"].nunique()
            lines.append(f"LEAKING: {len(leaking):,} worker(s) on {hosts:,} host(s) (verdict leak at their last sample)")
            lines += _table(leaking.head(self.top), [
                ("host", lambda r: r.host), ("service", lambda r: r.service), ("pid", lambda r: r.pid),
                ("version", lambda r: r.version), (t.column, lambda r: format_size(r.memory_bytes)),
                ("rate [95% interval]", _rate), ("leak since", lambda r: _clock(r.leak_since_s)),
                ("to limit", lambda r: format_duration(r.seconds_to_limit) if r.seconds_to_limit == r.seconds_to_limit
                 else "n/a")])
            if len(leaking) > self.top:
                lines.append(f"  ... and {len(leaking) - self.top:,} more (report.leaking)")
        else:
            lines.append("no worker leaking (no live worker's last verdict is a leak)")
        if len(self.closest):
            lines.append("closest to their limit:")
            lines += _table(self.closest.head(5), [
                ("host", lambda r: r.host), ("pid", lambda r: r.pid), (t.column, lambda r: format_size(r.memory_bytes)),
                ("limit", lambda r: format_size(r.limit_bytes)), ("in", lambda r: format_duration(r.seconds_to_limit)),
                ("verdict", lambda r: r.verdict)])
        for r in self.rates[self.rates["workers"] > 0].itertuples():
            lines.append(f"growth rate of {r.workers} live {r.service} worker(s): median {format_rate(r.p50_bytes_per_s, True)}, "
                         f"p90 {format_rate(r.p90_bytes_per_s, True)}, p99 {format_rate(r.p99_bytes_per_s, True)}, "
                         f"max {format_rate(r.max_bytes_per_s, True)}")
        onsets = set(self.version_onsets())
        lines.append("by version (first started):")
        for r in self.versions.itertuples():
            mark = "  <- leaks start with this version" if (r.service, r.version) in onsets else ""
            lines.append(f"  {r.service} {r.version} ({_clock(r.first_started_s)}): {r.workers} worker(s), "
                         f"{r.leaking} leaking, median {format_rate(r.median_rate_bytes_per_s, True)}{mark}")
        hot = self.hosts[self.hosts["leaking"] > 0]
        if len(hot):
            shown = ", ".join(f"{h.host} ({h.leaking} of {h.workers})" for h in hot.head(self.top).itertuples())
            lines.append(f"hosts with leaking workers: {shown}{' ...' if len(hot) > self.top else ''}")
        lines.append(f"DuckDB answered in {t.seconds:.2f} s; the SQL: report.sql (leakkit fleet --sql)")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        parts = [f"<pre>{html.escape(str(self))}</pre>", figure_html(self, size=(7, 3.5))]
        if len(self.leaking):
            parts.append(self.leaking.head(self.top).to_html(index=False, max_cols=12))
        return "<div>" + "".join(parts) + "</div>"

    # -- plots ----------------------------------------------------------------------------------
    def plot(self, ax: Any = None, *, workers: int = 5) -> Any:
        """Memory over time of the fastest-growing live workers (leaking first), with their labels."""
        import matplotlib.pyplot as plt

        ax = ax if ax is not None else plt.subplots(figsize=(8, 4))[1]
        w = self.workers
        pick = w[w["alive"].astype(bool)].head(workers)
        frame = _queries.series(self.tables, pick)
        for row in pick.itertuples():  # fastest first, as the table lists them
            rows = frame[(frame["host"] == row.host) & (frame["service"] == row.service) & (frame["pid"] == row.pid)
                         & (frame["started_unix_s"] == row.started_unix_s)]
            label = f"{row.host} pid {row.pid} {row.version or ''} ({row.verdict})"
            ax.plot(pd.to_datetime(rows["unix_time_s"], unit="s"), rows["memory_bytes"] / 2**20, label=label)
        ax.set_ylabel(f"{self.tables.column} (MiB)")
        ax.set_title("fastest-growing workers")
        if len(frame):
            ax.legend(fontsize="small")
        return ax

    def plot_rates(self, ax: Any = None) -> Any:
        """Histogram of the live workers' growth rates (MiB/h), leaking workers apart."""
        import matplotlib.pyplot as plt

        ax = ax if ax is not None else plt.subplots(figsize=(6, 3))[1]
        w = self.workers[self.workers["alive"].astype(bool)]
        rates = w["rate_bytes_per_s"].astype(float) * 3600 / 2**20
        leak = w["leaking"].astype(bool)
        ax.hist([rates[~leak].dropna(), rates[leak].dropna()], bins=30, stacked=True, label=["not leaking", "leaking"])
        ax.set_xlabel("growth rate (MiB/h)")
        ax.set_ylabel("workers")
        ax.legend(fontsize="small")
        return ax

    def plot_versions(self, ax: Any = None) -> Any:
        """Share of leaking workers per version, in the order versions first started."""
        import matplotlib.pyplot as plt

        ax = ax if ax is not None else plt.subplots(figsize=(6, 3))[1]
        v = self.versions
        labels = [f"{s} {ver}" for s, ver in zip(v["service"], v["version"], strict=True)]
        ax.bar(labels, v["leaking"] / v["workers"].clip(lower=1))
        ax.set_ylabel("leaking share")
        ax.set_ylim(0, 1)
        return ax


@_checks.strict
def fleet(path: str | os.PathLike, *, column: str = "rss", since: Any = None, stale: Any = "5min",
          top: int = 10) -> FleetReport:
    """Ask the fleet's recordings (hive-partitioned Parquet from the monitor or a watch) which
    workers grow, since when, how fast, which meet their limit first, and by version.

    Args:
        path: the layout's root (``host=*/service=*/pid=*/*.parquet`` below it), or a glob.
        column: the memory shown: ``"rss"`` (default: the monitor's headline, what its rate, verdict
            and limit read), ``"pss"`` or ``"uss"`` (rows without it use rss).
        since: only the last part of the recordings ("6h", seconds), counted back from the newest sample.
        stale: a worker whose last sample is older than this before the newest one has ended.
        top: rows shown per table.

    Example::

        report = leakkit.fleet("/var/lib/leakkit/fleet", since="24h")
        print(report)            # leaking workers, closest to their limit, rates, versions, hosts
        report.leaking           # a DataFrame; report.sql is what DuckDB ran
    """
    tables = _queries.query(path, column=column, since_s=seconds(since, "since"),
                            stale_s=seconds(stale, "stale") or 300.0, top=top)
    return FleetReport(tables, top)
