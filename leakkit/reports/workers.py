"""Every process of a watched server, each forecast on its own: one row per worker, the master apart.

Why: a server's memory limit is per process (a worker over it is killed, or the kernel's OOM
killer picks the biggest), so a forecast of the master and its workers summed is no one's.
:func:`forecast_workers` reads a watch's long table (:mod:`leakkit.recording.timeline`), splits
it by pid (a recycled or respawned worker is a new pid, a series of its own) and forecasts each
with :func:`leakkit.reports.forecast.forecast`: the same numbers as a forecast of that pid alone.
It also finds the moments several workers stepped up together (copy-on-write unsharing after the
fork, :func:`leakkit.analysis.phases.common_steps`) and the server's total (the sum of PSS)
against a cgroup limit, which counts every process in the container together.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .. import _checks
from .._errors import InvalidArgumentError, expected, printable
from .._sizes import format_duration, format_size, parse_size
from .._text import wrap_lines
from ..analysis import phases
from .columns import LEAK_SHAPES
from .forecast import Forecast, checked_frame, duration_range, forecast, format_rate
from .series import pick_limit

TABLE_COLUMNS = ["pid", "role", "ppid", "first_s", "last_s", "age_s", "ended", "rss", "pss", "uss", "shared", "private",
                 "column", "shape", "rate_bytes_per_s", "rate_low", "rate_high", "eta_s", "eta_low", "eta_high",
                 "warmup_end_s", "leak", "note"]


@dataclass(frozen=True)
class WorkerForecasts:
    """A forecast per process of a watched tree.

    ``table``: one row per pid (columns :data:`TABLE_COLUMNS`: ``first_s``/``last_s`` its first and
    last sample (s), ``age_s`` its age at the last (since it started, where the watch saw its start
    time; else since its first sample), bytes at its last sample, ``shared``
    = rss - uss, ``private`` = uss; the headline column's shape, rate (bytes/s) and interval, time
    to the limit (s from its last sample, ``inf``: not on course), warm-up end, ``leak``, and a
    ``note`` when the series is too short to judge). ``forecasts``: pid -> :class:`Forecast`.
    ``together``: (seconds, pids) of moments several workers stepped up at once. ``limit_bytes`` is
    per process; ``limit_source`` says where it came from.
    """

    table: pd.DataFrame
    forecasts: dict[int, Forecast]
    limit_bytes: int | None
    limit_source: str | None
    together: list[tuple[float, list[int]]] = field(default_factory=list)
    total_pss: Forecast | None = None
    duration_s: float = 0.0

    @property
    def leaking(self) -> list[int]:
        """Pids whose forecast is a leak (linear or step growth)."""
        return [int(p) for p in self.table.loc[self.table["leak"], "pid"]]

    def _row_text(self, row: pd.Series) -> str:
        age = format_duration(row["age_s"])
        cells = [f"{row['pid']:>7}", f"{row['role']:<6}", f"{age:>9}"]
        cells += [f"{format_size(row[c]):>9}" for c in ("rss", "pss", "uss", "shared")]
        if isinstance(row["note"], str) and row["note"]:
            return "  ".join(cells + [row["note"]])
        rate = rate_cell(row["rate_bytes_per_s"], row["rate_low"], row["rate_high"])
        if self.limit_bytes is None:
            eta = "no limit"
        elif row["eta_s"] == 0:
            eta = "at the limit"
        elif not math.isfinite(row["eta_s"]):
            eta = "not on course"
        else:
            eta = f"~{format_duration(row['eta_s'])} ({duration_range(row['eta_low'], row['eta_high'])})"
        ended = " (exited)" if row["ended"] else ""
        return "  ".join(cells + [f"{rate:<26}", f"{eta:<30}", f"{row['shape']}{ended}"])

    def lines(self) -> list[str]:
        """The report as lines: a header, one line per worker, the master apart, then notes."""
        limit = (f"limit {format_size(self.limit_bytes)} per process ({self.limit_source})"
                 if self.limit_bytes is not None else "no limit given")
        workers = self.table[self.table["role"] != "master"]
        lines = [f"{len(workers)} worker(s) over {format_duration(self.duration_s)}; {limit}; rates of "
                 f"{self.table['column'].replace('', pd.NA).dropna().iloc[0] if self.table['column'].any() else 'rss'} "
                 f"(what the limit counts) after each one's warm-up, with their 95% interval"]
        head = ["    pid", "role  ", "      age"] + [f"{c:>9}" for c in ("rss", "pss", "uss", "shared")]
        lines.append("  ".join(head + [f"{'rate [95% interval]':<26}", f"{'time to the limit':<30}", "verdict"]))
        lines += [self._row_text(row) for _, row in workers.iterrows()]
        for _, row in self.table[self.table["role"] == "master"].iterrows():
            lines.append(self._row_text(row) + "  (the master: forks the workers, listed apart)")
        return lines

    def notes(self) -> list[str]:
        """What the table needs said: who leaks, workers stepping together, columns that differ, the total."""
        leaking = self.leaking
        notes = [f"leaking: {', '.join(map(str, leaking))}" if leaking else "no process leaks"]
        for when, pids in self.together:
            notes.append(f"at {format_duration(when)} workers {', '.join(map(str, pids))} stepped up together "
                         f"(pages shared with the master becoming private after the fork, when rss stayed flat)")
        for pid, result in self.forecasts.items():
            notes += [f"{pid}: {note}" for note in result.notes]
        if self.total_pss is not None:
            notes.append(f"the whole tree (sum of pss, close to what a container's cgroup counts): "
                         f"{self.total_pss.label} {format_rate(self.total_pss.rate_bytes_per_s, signed=True)}, "
                         f"{self.total_pss._eta_text()}")
            if self.total_pss.shape in LEAK_SHAPES and any(
                    b.shape == "unsharing" for f in self.forecasts.values() for b in f.beside):
                notes.append("  the total grows as processes copy the pages they shared: real memory for a "
                             "container's limit, bounded by what is still shared")
        return notes

    def __str__(self) -> str:
        table = "\n".join(printable(line).rstrip() for line in self.lines())
        return table + "\n" + wrap_lines(printable(note) for note in self.notes())

    def _repr_html_(self) -> str:
        shown = self.table.copy()
        for column in ("rss", "pss", "uss", "shared", "private"):
            shown[column] = shown[column].map(format_size)
        for column in ("rate_bytes_per_s", "rate_low", "rate_high"):
            shown[column] = shown[column].map(lambda v: format_rate(v, signed=True))
        for column in ("eta_s", "eta_low", "eta_high", "first_s", "last_s", "age_s", "warmup_end_s"):
            shown[column] = shown[column].map(format_duration)
        caption = html.escape(self.lines()[0])
        notes = "".join(f"<li>{html.escape(note)}</li>" for note in self.notes())
        return f"<p>{caption}</p>{shown.to_html(index=False)}<ul>{notes}</ul>"

    def plot(self, ax: Any = None, column: str | None = None) -> Any:
        """Each process's headline column over time, one line per pid; returns the Axes."""
        import matplotlib.pyplot as plt

        from .plots import byte_unit

        if ax is None:
            _, ax = plt.subplots(figsize=(8, 4))
        column = column or (next(iter(self.forecasts.values())).column if self.forecasts else "rss")
        values = [float(v) for f in self.forecasts.values() for v in (f._y.min(), f._y.max())] or [1.0]
        name, divisor = byte_unit(values)
        for pid, result in self.forecasts.items():
            ax.plot(result._t, result._y / divisor, lw=1, label=f"{pid} {result.label}")
        if self.limit_bytes is not None and max(values) > 0.5 * self.limit_bytes:
            ax.axhline(self.limit_bytes / divisor, color="C3", lw=1, label=f"limit {format_size(self.limit_bytes)}")
        ax.set_xlabel("time (s)")
        ax.set_ylabel(f"{column} ({name})")
        ax.set_title(f"{len(self.forecasts)} processes; leaking: {', '.join(map(str, self.leaking)) or 'none'}",
                     fontsize="medium")
        ax.legend(loc="best", fontsize="small")
        ax.grid(alpha=0.3)
        return ax


def rate_cell(rate: float, low: float, high: float) -> str:
    """'+1.25 [+1.10, +1.42] MiB/min': a rate and its interval in the rate's unit."""
    text = format_rate(rate, signed=True)
    if not all(math.isfinite(v) for v in (rate, low, high)):
        return text
    widest = format_rate(max(abs(rate), abs(low), abs(high)))  # the unit that reads best for all three
    if " " not in widest:
        return text
    _, unit = widest.split(" ", 1)
    size, _, per = unit.partition("/")
    scale = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4}.get(size)
    seconds = {"s": 1, "min": 60, "h": 3600}.get(per)
    if scale is None or seconds is None:
        return text
    return f"{rate * seconds / scale:+.2f} [{low * seconds / scale:+.2f}, {high * seconds / scale:+.2f}] {unit}"


def _row(pid: int, rows: pd.DataFrame, result: Forecast | None, note: str, ended: bool,
         created: float | None = None) -> dict[str, Any]:
    last = rows.iloc[-1]
    rss, uss, pss = (float(last.get(c, math.nan)) for c in ("rss", "uss", "pss"))
    nan = math.nan
    return {
        "pid": pid, "role": str(last.get("role", "worker")), "ppid": int(last.get("ppid", 0) or 0),
        "first_s": float(rows["t"].iloc[0]), "last_s": float(rows["t"].iloc[-1]), "ended": ended,
        "age_s": (float(last["unix_time_s"]) - created if created is not None and "unix_time_s" in rows.columns
                  else float(rows["t"].iloc[-1] - rows["t"].iloc[0])),
        "rss": rss, "pss": pss, "uss": uss, "shared": rss - uss, "private": uss,
        "column": result.column if result else "", "shape": result.label if result else "",
        "rate_bytes_per_s": result.rate_bytes_per_s if result else nan,
        "rate_low": result.rate_interval[0] if result else nan, "rate_high": result.rate_interval[1] if result else nan,
        "eta_s": result.eta_s if result else nan, "eta_low": result.eta_interval[0] if result else nan,
        "eta_high": result.eta_interval[1] if result else nan,
        "warmup_end_s": result.warmup_end_s if result else nan,
        "leak": bool(result is not None and result.shape in LEAK_SHAPES), "note": note,
    }


@_checks.strict
def forecast_workers(
    frame: pd.DataFrame,
    limit: int | float | str | None = None,
    *,
    column: str | None = None,
    tolerance: int | float | str = "1MiB",
    confidence: float = 0.95,
) -> WorkerForecasts:
    """Forecast every process of a watch (a server's master and workers), each on its own series.

    Args:
        frame: a long table with a ``pid`` column (from :func:`leakkit.watch` or
            :func:`leakkit.load_watch`); a frame of one process without one is taken as that process.
        limit: per process ("256MiB"); default the watch's, else its cgroup's (a container's).
        column, tolerance, confidence: as :func:`leakkit.forecast` (the headline: ``rss``).

    Returns a :class:`WorkerForecasts`: ``str()`` is the table a person reads, ``.table`` the
    DataFrame, ``.forecasts[pid]`` each process's :class:`Forecast`, ``.leaking`` the pids that leak.

    Example::

        frame = leakkit.watch(master_pid, duration=120)
        print(leakkit.forecast_workers(frame, "512MiB"))
    """
    if not isinstance(frame, pd.DataFrame):
        raise expected("a DataFrame from leakkit.watch or leakkit.load_watch", "frame", frame)
    frame, _name, _tolerance = checked_frame(frame, column, tolerance, confidence)  # t in seconds, readings >= 0
    if "pid" not in frame.columns:
        one = forecast(frame, limit, column=column, tolerance=tolerance, confidence=confidence)
        frame = frame.assign(pid=one.pid or 0, role="master")
    limit_bytes, source = pick_limit(frame, limit)
    ended = frame.attrs.get("ended") or {}  # a loaded file has none: a series stopping early has ended
    created = frame.attrs.get("created") or {}
    interval = float(frame.attrs.get("interval") or 1.0)
    last_t = float(frame["t"].max()) if len(frame) else 0.0
    first_t = float(frame["t"].min()) if len(frame) else 0.0
    rows, forecasts = [], {}
    order = frame.groupby("pid", sort=False)["t"].min().sort_values().index
    for pid in order:
        own = frame[frame["pid"] == pid].sort_values("t")
        pid = int(pid)
        try:
            # forked during the watch: its series starts at its start-up, which must be seen to end
            born = float(own["t"].iloc[0]) > first_t + 1.5 * interval
            result = forecast(own, limit, column=column, tolerance=tolerance, confidence=confidence, from_start=born)
            forecasts[pid] = result
            note = ""
        except InvalidArgumentError as error:
            result, note = None, f"too few samples to judge ({len(own)})" if "samples" in str(error) else str(error)
        gone = pid in ended or str(pid) in ended or float(own["t"].iloc[-1]) < last_t - 2 * interval
        rows.append(_row(pid, own, result, note, gone, created.get(pid, created.get(str(pid)))))
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    workers = {pid: f for pid, f in forecasts.items() if table.loc[table["pid"] == pid, "role"].iloc[0] != "master"}
    floor = max(256 * 1024.0, parse_size(tolerance, "tolerance") / 4)
    series = {pid: (f._t.tolist(), _column(frame, pid, "uss")) for pid, f in workers.items()}
    series = {pid: (t, y) for pid, (t, y) in series.items() if len(y) == len(t)}
    together = phases.common_steps(series, floor=floor, within=2.0 * float(frame.attrs.get("interval") or 1.0))
    total = _total(frame, limit_bytes=limit_bytes if source and source.startswith("cgroup") else None,
                   tolerance=tolerance, confidence=confidence)
    duration = float(frame["t"].max() - frame["t"].min()) if len(frame) else 0.0
    return WorkerForecasts(table, forecasts, limit_bytes, source, together, total, duration)


def _column(frame: pd.DataFrame, pid: int, column: str) -> list[float]:
    if column not in frame.columns:
        return []
    values = frame.loc[frame["pid"] == pid].sort_values("t")[["t", column]].dropna()
    return values[column].astype(float).tolist()


def _total(frame: pd.DataFrame, *, limit_bytes: int | None, tolerance: Any, confidence: float) -> Forecast | None:
    """The tree's total memory per sample (the sum of PSS), forecast against the cgroup's limit."""
    if "pss" not in frame.columns or frame["pid"].nunique() < 2:
        return None
    summed = frame.groupby("t")["pss"].agg(["sum", "count"])
    summed = summed[summed["count"] > 0]
    if len(summed) < 4:
        return None
    total = pd.DataFrame({"t": summed.index.to_numpy(dtype=float), "pss": summed["sum"].to_numpy(dtype=float)})
    try:
        return forecast(total, limit_bytes, column="pss", tolerance=tolerance, confidence=confidence)
    except InvalidArgumentError:
        return None

