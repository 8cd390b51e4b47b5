"""The forecast users read: a memory timeline's shape, rate and time to a limit, as text, HTML and a plot.

Why apart from the arithmetic (:mod:`leakkit.analysis.forecast`, whose docstring gives the shapes
and how the intervals are found): the result object is what front ends print and notebooks show,
and it draws itself with matplotlib, which analysis never imports. :func:`forecast` checks the
frame (a watch or monitor timeline, :mod:`leakkit.recording.timeline`) at the boundary, then
builds a :class:`Forecast` from :func:`leakkit.analysis.forecast.fit_timeline`.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import _checks
from .._errors import expected
from .._sizes import format_duration, format_size, parse_size
from .._text import wrap_lines
from ..analysis import phases
from ..analysis.forecast import MIN_SAMPLES, fit_timeline
from .columns import BYTE_COLUMNS, LABELS, ColumnFit, column_fit, reconcile, unsharing_note
from .series import one_process, pick_limit, series, without_snapshots

_LABELS = LABELS


def format_rate(bytes_per_s: float, signed: bool = False) -> str:
    """'1.2 MiB/min', '+300 KiB/h', '12.0 MiB/s': the unit that gives a readable number."""
    if bytes_per_s is None or not math.isfinite(bytes_per_s):
        return "n/a"
    per_min = bytes_per_s * 60
    if abs(bytes_per_s) >= 10 * 1024**2:
        return f"{format_size(bytes_per_s, signed=signed)}/s"
    if abs(per_min) < 1024 and per_min != 0:
        return f"{format_size(per_min * 60, signed=signed)}/h"
    return f"{format_size(per_min, signed=signed)}/min"



def _precise_duration(seconds: float) -> str:
    """'2 min 58 s', '1 h 4 min', '16.4 s': one step finer than :func:`format_duration`."""
    if not math.isfinite(seconds):
        return "never"
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        minutes, rest = divmod(int(round(seconds)), 60)
        return f"{minutes} min {rest} s"
    return format_duration(seconds)


def duration_range(low: float, high: float) -> str:
    """'3 h 10 min to 3 h 40 min'; ends that would read the same are given one step finer."""
    a, b = format_duration(low), format_duration(high)
    if a == b and math.isfinite(low) and math.isfinite(high):
        a, b = _precise_duration(low), _precise_duration(high)
    return f"{a} to {b}"


@dataclass(frozen=True)
class Forecast:
    """When a memory timeline meets a limit: shape, rate and time to the limit, each with an interval.

    Rates are bytes per second; times are seconds from the last sample (``inf``: not on course to
    reach the limit; ``nan``: no limit given). ``current_bytes`` is the fitted value at the last
    sample, the starting point of the extrapolation. Intervals are Sen's, widened for the
    samples' autocorrelation (:mod:`leakkit.analysis.forecast`).

    ``column`` is the headline (by default ``rss``, what a per-process limit and the OOM killer
    count); ``beside`` holds the other byte columns' shapes and rates, ``notes`` the reason for
    each whose verdict differs. ``warmup_end_s``: when the warm-up found in the data ended (``nan``:
    none), ``warmup_bytes`` what it held; the rate is fitted after it. ``pid``: the process read;
    ``limit_source``: where the limit came from (``"given"``, ``"recorded"``, or the cgroup file).
    """

    shape: str
    column: str
    rate_bytes_per_s: float
    rate_interval: tuple[float, float]
    eta_s: float
    eta_interval: tuple[float, float]
    limit_bytes: int | None
    current_bytes: float
    samples: int
    duration_s: float
    confidence: float = 0.95
    pid: int | None = None
    limit_source: str | None = None
    warmup_end_s: float = math.nan
    warmup_bytes: float = 0.0
    beside: tuple[ColumnFit, ...] = ()
    notes: tuple[str, ...] = ()
    _t: np.ndarray = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    _y: np.ndarray = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    _fit_t0: float = field(default=0.0, repr=False, compare=False)
    _pivot: tuple[float, float] = field(default=(0.0, 0.0), repr=False, compare=False)

    @property
    def label(self) -> str:
        """The shape as a person says it: 'linear leak', 'step growth', ..."""
        return _LABELS[self.shape]

    def __repr__(self) -> str:
        eta = ""
        if self.limit_bytes is not None:
            eta = f", {format_size(self.limit_bytes)} in ~{format_duration(self.eta_s)}" if self.eta_s > 0 \
                else f", at {format_size(self.limit_bytes)}"
        return (f"<Forecast {self.label}: {self.column} {format_rate(self.rate_bytes_per_s, signed=True)}"
                f"{eta}, {self.samples} samples>")

    def _rate_text(self) -> str:
        low, high = self.rate_interval
        return (f"{format_rate(self.rate_bytes_per_s, signed=True)} "
                f"[{format_rate(low, signed=True)}, {format_rate(high, signed=True)}]")

    def _eta_text(self) -> str:
        if self.limit_bytes is None:
            return "no limit given"
        if self.eta_s == 0:
            return f"already at {format_size(self.limit_bytes)} (the limit)"
        if not math.isfinite(self.eta_s):
            return f"not on course to reach {format_size(self.limit_bytes)}"
        low, high = self.eta_interval
        return (f"reaches {format_size(self.limit_bytes)} in ~{format_duration(self.eta_s)} "
                f"({self.confidence:.0%} interval {duration_range(low, high)})")

    def _lines(self) -> list[str]:
        seen = f"now {format_size(self.current_bytes)}; {self.samples} samples over {format_duration(self.duration_s)}"
        who = f"pid {self.pid} " if self.pid is not None else ""
        if self.limit_bytes is None:
            lines = [f"{self.label}: {who}{self.column} {self._rate_text()} (no limit given)", f"  {seen}"]
        else:
            lines = [f"{self.label}: {who}{self.column} {self._eta_text()}", f"  rate {self._rate_text()}; {seen}"]
            if self.limit_source not in (None, "given"):
                lines.append(f"  limit from {self.limit_source}")
        if math.isfinite(self.warmup_end_s):
            lines.append(f"  warm-up: {format_size(self.warmup_bytes, signed=True)} beyond the rate until "
                         f"{format_duration(self.warmup_end_s)} (growth slowing down, then straight); "
                         f"the rate is fitted after it")
        if self.beside:
            lines.append(f"  beside {self.column}{' (what the limit counts)' if self.column == 'rss' else ''}: " + "; ".join(f"{b.column} {b.label} {format_rate(b.rate_bytes_per_s, signed=True)}"
                                                      for b in self.beside))
        lines += [f"  {note}" for note in self.notes]
        if math.isfinite(self.eta_s) and self.duration_s > 0 and self.eta_s > 3 * self.duration_s:
            lines.append(f"  the forecast extrapolates {self.eta_s / self.duration_s:.0f}x the "
                         f"{format_duration(self.duration_s)} watched: a longer watch tells whether the rate holds")
        return lines

    def __str__(self) -> str:
        return wrap_lines(self._lines())

    def _repr_html_(self) -> str:
        rows = [
            ("shape", self.label),
            ("column", self.column),
            ("now", format_size(self.current_bytes)),
            ("rate", f"{self._rate_text()} ({self.confidence:.0%} interval, corrected for autocorrelation)"),
            ("limit", self._eta_text()),
            ("samples", f"{self.samples} over {format_duration(self.duration_s)}"),
        ]
        if math.isfinite(self.warmup_end_s):
            rows.append(("warm-up", f"{format_size(self.warmup_bytes, signed=True)} until "
                                    f"{format_duration(self.warmup_end_s)}; the rate is fitted after it"))
        rows += [(b.column, f"{b.label} {format_rate(b.rate_bytes_per_s, signed=True)}") for b in self.beside]
        rows += [("note", note) for note in self.notes]
        body = "".join(f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>{html.escape(v)}</td></tr>"
                       for k, v in rows)
        return f"<table class='leakkit-forecast'>{body}</table>"

    def plot(self, ax: Any = None) -> Any:
        """Timeline, fitted rate with its interval fan, the limit line and the ETA; returns the Axes.

        The extrapolation is drawn up to the limit only while that stays within three times the
        span watched; past that the limit and the ETA are named in the title, so that the samples
        keep most of the width instead of shrinking to a dot.
        """
        import matplotlib.pyplot as plt

        from .plots import byte_unit

        if ax is None:
            _, ax = plt.subplots(figsize=(8, 4))
        t_end = float(self._t[-1])
        span = max(self.duration_s, 1e-9)
        reach = math.isfinite(self.eta_s) and 0 < self.eta_s <= 3 * span
        horizon = (max(self.eta_s * 1.1, 0.25 * span) if reach else 0.5 * span)
        minutes = (span + horizon) > 600
        scale = 60.0 if minutes else 1.0
        shown = [float(np.min(self._y)), float(np.max(self._y)), self.current_bytes + self.rate_bytes_per_s * horizon]
        if reach and self.limit_bytes is not None:
            shown.append(float(self.limit_bytes))
        name, divisor = byte_unit(shown)
        ax.plot(self._t / scale, self._y / divisor, ".-", lw=1, ms=3, label=f"{self.column} (samples)")
        future = np.linspace(t_end, t_end + horizon, 50)
        fit_t = np.linspace(self._fit_t0, t_end, 2)
        ax.plot(fit_t / scale, (self.current_bytes + self.rate_bytes_per_s * (fit_t - t_end)) / divisor, "-",
                color="C1", lw=1.5, label=f"{self.label}, {format_rate(self.rate_bytes_per_s, signed=True)}")
        ax.plot(future / scale, (self.current_bytes + self.rate_bytes_per_s * (future - t_end)) / divisor, "--",
                color="C1")
        low, high = self.rate_interval
        pivot_t, pivot_y = self._pivot
        ax.fill_between(future / scale, (pivot_y + low * (future - pivot_t)) / divisor,
                        (pivot_y + high * (future - pivot_t)) / divisor, color="C1", alpha=0.15,
                        label=f"{self.confidence:.0%} interval")
        if self.limit_bytes is not None and (reach or self.eta_s == 0):
            ax.axhline(self.limit_bytes / divisor, color="C3", lw=1, label=f"limit {format_size(self.limit_bytes)}")
            if reach:
                ax.axvline((t_end + self.eta_s) / scale, color="C3", ls=":", lw=1,
                           label=f"~{format_duration(self.eta_s)} from now")
        ax.set_xlabel("time (min)" if minutes else "time (s)")
        ax.set_ylabel(f"{self.column} ({name})")
        title = f"{self.label}: {self.column} {self._eta_text().split(' (')[0]}"
        if self.limit_bytes is not None and math.isfinite(self.eta_s) and self.eta_s > 0 and not reach:
            title += " (beyond the plot)"
        ax.set_title(title, fontsize="medium")
        ax.legend(loc="best", fontsize="small")
        ax.grid(alpha=0.3)
        return ax


def _pick_column(frame: pd.DataFrame, column: str | None) -> str:
    if column is not None:
        if column not in frame.columns:
            raise expected(f"a column of the frame ({', '.join(map(str, frame.columns))})", "column", column)
        return column
    for name in ("rss", "uss"):  # rss first: what a per-process limit and the OOM killer count
        if name in frame.columns and frame[name].notna().any():
            return name
    if "rss" in frame.columns:
        return "rss"
    raise expected("a frame with a 'uss' or 'rss' column (from leakkit.watch or leakkit.load)", "frame", list(frame.columns))


def checked_frame(frame: Any, column: Any, tolerance: Any, confidence: Any) -> tuple[pd.DataFrame, str, int]:
    """The checks :func:`forecast` and :func:`~leakkit.forecast_workers` share: the frame as a timeline
    (``t`` in seconds, datetimes converted, readings >= 0: :func:`leakkit._checks.timeline`), the
    headline column, the tolerance in bytes, a confidence in (0, 1)."""
    if not isinstance(frame, pd.DataFrame):
        raise expected("a DataFrame from leakkit.watch or leakkit.load", "frame", frame)
    if "t" not in frame.columns:
        raise expected("a frame with a 't' column (seconds)", "frame", list(frame.columns))
    frame = _checks.timeline(frame, "frame", readings=BYTE_COLUMNS, what="a DataFrame from leakkit.watch or leakkit.load")
    if column is not None and not isinstance(column, str):
        raise expected(f"a column of the frame ({', '.join(map(str, frame.columns))})", "column", column)
    name = _pick_column(frame, column)
    tolerance_bytes = parse_size(tolerance, "tolerance")
    if not isinstance(confidence, float) or not 0 < confidence < 1:
        raise expected("a confidence between 0 and 1, e.g. 0.95", "confidence", confidence)
    return frame, name, tolerance_bytes


@_checks.strict
def forecast(
    frame: pd.DataFrame,
    limit: int | float | str | None = None,
    *,
    column: str | None = None,
    tolerance: int | float | str = "1MiB",
    confidence: float = 0.95,
    pid: int | None = None,
    from_start: bool = False,
) -> Forecast:
    """Classify one process's timeline and estimate when it meets ``limit``.

    The shape (linear, step, sawtooth, plateau, flat, warm-up) and the rate come after the warm-up
    found in the data (:mod:`leakkit.analysis.phases`): caches filling and pages unshared after a
    fork are not fitted as a leak. The headline column is the one the limit counts; the other byte
    columns are given beside it, each difference in verdict with its reason.

    Args:
        frame: a DataFrame with ``t`` (seconds) and byte columns, from watch/load or the monitor.
            Rows of several processes (a ``pid`` column) need ``pid``; a series that mixes
            processes with no pid to tell them apart is refused (MixedProcessesError).
        limit: a size ("256MiB", "1.5 GB", bytes), per process; default the watch's
            ``attrs["limit_bytes"]``, else the cgroup's memory limit recorded with it (a
            container's ``memory.max``). Without one the shape and rate are still given.
        column: the headline byte column; default ``rss`` (what a per-process limit and the
            kernel's OOM killer count) when recorded, else ``uss``.
        tolerance: growth smaller than this (or 1% of the median) is flat.
        confidence: of the rate and ETA intervals.
        pid: the process to forecast, in a frame with rows of several.
        from_start: the series begins when the process began (a worker forked during the watch:
            :func:`leakkit.forecast_workers` says so for each). Growth not yet seen to slow down
            is then its start-up (``warm-up``), never a leak.

    Example::

        result = forecast(load("worker.csv"), "256MiB", pid=4242)
        print(result)      # linear leak: pid 4242 rss reaches 256.0 MiB in ~3 h 10 min (95% interval ...)
        result.plot()
    """
    if not isinstance(frame, pd.DataFrame):
        raise expected("a DataFrame from leakkit.watch or leakkit.load", "frame", frame)
    if "t" not in frame.columns:
        raise expected("a frame with a 't' column (seconds)", "frame", list(frame.columns))
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, (int, np.integer))):
        raise expected("a pid (int)", "pid", pid)
    frame, name, tolerance_bytes = checked_frame(frame, column, tolerance, confidence)
    _checks.flag(from_start, "from_start")
    limit_bytes, limit_source = pick_limit(frame, limit)
    rows = without_snapshots(one_process(frame, None if pid is None else int(pid)))
    t, y = series(rows, name)
    columns = [c for c in BYTE_COLUMNS if c in rows.columns and c != name]
    both = rows[["t", name, *columns]].apply(pd.to_numeric, errors="coerce").sort_values("t")
    complete = both.dropna()
    reclaim_notes: list[str] = []

    def compensated(column: str, t: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """rss or pss with the kernel's reclaim of shared pages added back (when uss says so)."""
        if column not in ("rss", "pss") or "uss" not in complete.columns or len(complete) < MIN_SAMPLES:
            return t, y
        found = phases.reclaim_compensated(complete["t"].tolist(), complete[column].tolist(),
                                           complete["uss"].tolist(), floor=max(tolerance_bytes / 2, 256 * 1024))
        if not found.events:
            return t, y
        total = sum(b for _, b in found.events)
        reclaim_notes.append(f"{column} dropped {format_size(total)} in {len(found.events)} step(s) while uss did not "
                             f"move: the kernel reclaiming shared file pages under memory pressure (they come back "
                             f"when read), added back for the fit")
        return complete["t"].to_numpy(dtype=float), np.asarray(found.values, dtype=float)

    t, y = compensated(name, t, y)
    fit = fit_timeline(t, y, limit_bytes=limit_bytes, tolerance_bytes=tolerance_bytes, confidence=confidence,
                       from_start=from_start)
    headline = column_fit(name, fit)
    beside: list[ColumnFit] = []
    for other in columns:
        data = both[["t", other]].dropna()
        if len(data) >= MIN_SAMPLES and data["t"].iloc[-1] > data["t"].iloc[0] and (data[other] >= 0).all():
            other_t, other_y = compensated(other, data["t"].to_numpy(dtype=float), data[other].to_numpy(dtype=float))
            beside.append(column_fit(other, fit_timeline(
                other_t, other_y, limit_bytes=limit_bytes, tolerance_bytes=tolerance_bytes, confidence=confidence,
                from_start=from_start)))
    aligned = {c: complete[c].to_numpy(dtype=float) for c in ("rss", "uss", "pss") if c in complete.columns}
    aligned_t = complete["t"].to_numpy(dtype=float)
    notes: list[str] = []
    if aligned.keys() >= {"rss", "uss"}:
        headline, beside, notes = reconcile(headline, beside, aligned_t, aligned)
    if name == "rss" and aligned.keys() >= {"rss", "uss"} and math.isfinite(fit.warmup_end_t):
        early = aligned_t <= fit.warmup_end_t  # what the warm-up held: was some of it unsharing?
        note = unsharing_note(aligned_t[early], aligned["rss"][early], aligned["uss"][early], float(aligned_t[0])) \
            if early.sum() >= 4 else None
        if note and not any("copy-on-write" in n for n in notes):
            notes.append(f"in the warm-up, {note}")
    notes += reclaim_notes[:1]
    eta, eta_interval = fit.eta_s, fit.eta_interval
    if headline.shape == "unsharing" and limit_bytes is not None:  # bounded by what is shared: never a limit
        eta, eta_interval = math.inf, (math.inf, math.inf)
    pid_value = int(rows["pid"].iloc[0]) if "pid" in rows.columns and len(rows) else frame.attrs.get("pid")
    return Forecast(
        shape=headline.shape,
        column=name,
        rate_bytes_per_s=fit.rate_bytes_per_s,
        rate_interval=fit.rate_interval,
        eta_s=eta,
        eta_interval=eta_interval,
        limit_bytes=limit_bytes,
        current_bytes=fit.current_bytes,
        samples=len(t),
        duration_s=float(t[-1] - t[0]),
        confidence=confidence,
        pid=pid_value if isinstance(pid_value, (int, np.integer)) and not isinstance(pid_value, bool) else None,
        limit_source=limit_source,
        warmup_end_s=float(fit.warmup_end_t - t[0]) if math.isfinite(fit.warmup_end_t) else math.nan,
        warmup_bytes=fit.warmup_bytes,
        beside=tuple(beside),
        notes=tuple(notes),
        _t=t,
        _y=y,
        _fit_t0=fit.fit_t0,
        _pivot=fit.pivot,
    )
