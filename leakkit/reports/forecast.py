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

from .._errors import InvalidArgumentError, expected
from .._sizes import format_duration, format_size, parse_size
from .._text import wrap_lines
from ..analysis.forecast import MIN_SAMPLES, fit_timeline

_LABELS = {"linear": "linear leak", "step": "step growth", "sawtooth": "sawtooth", "plateau": "plateau", "flat": "flat"}


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
        if self.limit_bytes is None:
            lines = [f"{self.label}: {self.column} {self._rate_text()} (no limit given)", f"  {seen}"]
        else:
            lines = [f"{self.label}: {self.column} {self._eta_text()}", f"  rate {self._rate_text()}; {seen}"]
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
    if "uss" in frame.columns and frame["uss"].notna().sum() >= max(1, len(frame) // 2):
        return "uss"  # not a monitor's recording, which reads USS every 10 s: its headline is rss
    if "rss" in frame.columns:
        return "rss"
    raise expected("a frame with a 'uss' or 'rss' column (from leakkit.watch or leakkit.load)", "frame", list(frame.columns))


def forecast(
    frame: pd.DataFrame,
    limit: int | float | str | None = None,
    *,
    column: str | None = None,
    tolerance: int | float | str = "1MiB",
    confidence: float = 0.95,
) -> Forecast:
    """Classify a timeline (linear, step, sawtooth, plateau, flat) and estimate when it meets ``limit``.

    Args:
        frame: a DataFrame with ``t`` (seconds) and byte columns, from watch/load or the monitor.
        limit: a size ("256MiB", "1.5 GB", bytes); default ``frame.attrs["limit_bytes"]``. Without
            one the shape and rate are still given.
        column: the byte column; default ``uss`` if present with values, else ``rss``.
        tolerance: growth smaller than this (or 1% of the median) is flat.
        confidence: of the rate and ETA intervals.

    Example::

        result = forecast(load("worker.csv"), "256MiB")
        print(result)      # linear leak: uss reaches 256.0 MiB in ~3 h 10 min (95% interval ...)
        result.plot()
    """
    if not isinstance(frame, pd.DataFrame):
        raise expected("a DataFrame from leakkit.watch or leakkit.load", "frame", frame)
    if "t" not in frame.columns:
        raise expected("a frame with a 't' column (seconds)", "frame", list(frame.columns))
    name = _pick_column(frame, column)
    if limit is None:
        limit = frame.attrs.get("limit_bytes")
    limit_bytes = parse_size(limit, "limit") if limit is not None else None
    tolerance_bytes = parse_size(tolerance, "tolerance")
    if not isinstance(confidence, float) or not 0 < confidence < 1:
        raise expected("a confidence between 0 and 1, e.g. 0.95", "confidence", confidence)
    data = frame[["t", name]].apply(pd.to_numeric, errors="coerce").dropna().sort_values("t")
    bad = ~np.isfinite(data.to_numpy(dtype=float)).all(axis=1) | (data[name].to_numpy(dtype=float) < 0)
    if bad.any():  # an inf or negative reading is a broken probe, not memory: "now inf GiB" helps nobody
        row = data[bad].iloc[0]
        raise InvalidArgumentError(f"frame: expected finite times and byte counts >= 0 in 't' and {name!r}, "
                                   f"received t={row['t']!r}, {name}={row[name]!r} ({int(bad.sum())} such rows)")
    if len(data) < MIN_SAMPLES or data["t"].iloc[-1] <= data["t"].iloc[0]:
        raise InvalidArgumentError(
            f"frame: expected at least {MIN_SAMPLES} samples of {name!r} spread over time, received {len(data)}"
        )
    t = data["t"].to_numpy(dtype=float)
    y = data[name].to_numpy(dtype=float)
    own = f"snapshot_{name}"  # a monitor recording: what leakkit's snapshots added is not the application's
    if own in frame.columns:
        y = y - pd.to_numeric(frame.loc[data.index, own], errors="coerce").fillna(0).to_numpy(dtype=float)
    fit = fit_timeline(t, y, limit_bytes=limit_bytes, tolerance_bytes=tolerance_bytes, confidence=confidence)
    return Forecast(
        shape=fit.shape,
        column=name,
        rate_bytes_per_s=fit.rate_bytes_per_s,
        rate_interval=fit.rate_interval,
        eta_s=fit.eta_s,
        eta_interval=fit.eta_interval,
        limit_bytes=limit_bytes,
        current_bytes=fit.current_bytes,
        samples=len(t),
        duration_s=float(t[-1] - t[0]),
        confidence=confidence,
        _t=t,
        _y=y,
        _fit_t0=fit.fit_t0,
        _pivot=fit.pivot,
    )

