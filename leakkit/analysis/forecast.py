"""Classify a memory timeline's shape, fit its rate with an interval, and find when it reaches a limit.

Why: "it grows" is not actionable; "linear leak, 256 MiB in ~3 h 10 min at 1.2 MiB/min" tells
whether to page someone, raise the limit, or restart nightly. This module is the arithmetic only
(arrays in, numbers out); the :class:`leakkit.reports.forecast.Forecast` users get, with its
text, HTML and plot, is built from it by :func:`leakkit.reports.forecast.forecast`.

The rate is a Theil-Sen slope (the median of pairwise slopes: robust to GC dips and allocator
jumps) with Sen's rank-based interval, widened for autocorrelation: samples of a real process are
serially correlated (a buffer fills over many samples, RSS moves by pages), and an interval that
assumed independent samples would collapse ("16 s to 16 s"). The widening is Hamed and Rao's
variance correction of the Mann-Kendall statistic (:func:`variance_inflation`). The interval is
the uncertainty of the rate given these samples; it does not cover a change of behaviour later.
The time to the limit and its interval come from the rate's interval (:func:`fit_timeline`).

Shapes (checked in this order; ``tolerance`` is max(``tolerance`` option, 1% of the median)):

- ``sawtooth``: two or more sharp drops (> 30% of the range): restarts, buffer flushes, GC.
  The rate is that of the peaks (the upper envelope), which is what meets a limit.
- ``flat``: the whole timeline stays within the tolerance.
- then the warm-up is found from the data (:func:`leakkit.analysis.phases.warmup_end`: the first
  sample from which the rest grows no slower in its second half than in its first), and the rest
  (the *tail*) is judged:
- ``warm-up``: the growth was still slowing down at the end (no straight tail in the last third,
  and the last sixth still rising),
  or, for a series that begins when its process began (a worker forked during the watch), growth
  never yet seen to slow down: its start-up, not over. Not settled yet, neither a leak nor a
  plateau; the rate is the last third's.
- ``plateau``: the tail's rate has an interval reaching zero, or over the whole watch would rise
  less than the tolerance, or its last third grows at < 50% of its rate, a shortfall beyond twice
  the noise (growth that stopped lately: a cache reaching its bound); or a warm-up longer than two
  thirds of the watch that has stopped in its last sixth. The rate is the last third's.
- ``step``: the tail grows in a few jumps (>= 60% of its growth in <= 30% of the intervals): a
  batch or a cache that doubles. The rate is the tail's long-run average.
- ``linear``: the tail grows steadily: a leak. The rate is the tail's slope.

The rate is never fitted on the warm-up: a worker started cold fills its caches at several times
its leak rate, and a line through both forecast the limit 2.4x too soon.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from . import phases
from .growth import theil_sen as _theil_sen

SHAPES = ("linear", "step", "sawtooth", "plateau", "flat", "warm-up")
MIN_SAMPLES = 4


def theil_sen(t: np.ndarray, y: np.ndarray, *, confidence: float = 0.95, max_points: int = 400,
              autocorrelation: bool = False) -> tuple[float, float, float, float]:
    """Slope, intercept and Sen's rank-based interval of the slope (low, high), from the one
    Theil-Sen estimator leakkit has (:func:`leakkit.analysis.theil_sen`).

    ``autocorrelation=True`` widens the interval for serially correlated residuals (see
    :func:`variance_inflation`): samples of a process a fraction of a second apart are not
    independent, and Sen's interval alone would be far too narrow.
    """
    t = np.asarray(t, dtype=float)
    y = np.asarray(y, dtype=float)
    if len(t) > max_points:  # thinned here, so that the correction sees the points the fit uses
        keep = np.unique(np.linspace(0, len(t) - 1, max_points).round().astype(int))
        t, y = t[keep], y[keep]
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    slope, low, high = _theil_sen(t, y, z, max_points=max_points)
    if not math.isfinite(slope):  # fewer than two distinct times
        return 0.0, float(np.median(y)) if len(y) else 0.0, 0.0, 0.0
    intercept = float(np.median(y - slope * t))
    if autocorrelation:
        inflation = variance_inflation(y - (intercept + slope * t))
        if inflation > 1.0:
            _, low, high = _theil_sen(t, y, z * math.sqrt(inflation), max_points=max_points)
    return slope, intercept, low, high


def variance_inflation(residuals: np.ndarray) -> float:
    """How much serial correlation inflates the variance of the Mann-Kendall statistic behind
    Sen's interval (>= 1): Hamed & Rao's (1998) correction, with the residuals' ranks taken as
    AR(1), their lag-k autocorrelation r**k for the lag-1 rank autocorrelation r.

    ``n/n* = 1 + 2 / (n (n-1) (n-2)) * sum_k (n-k) (n-k-1) (n-k-2) r**k``. Negative r (alternating
    residuals) is taken as 0: the interval is never narrowed below Sen's.
    """
    n = len(residuals)
    if n < 8:
        return 1.0
    ranks = np.argsort(np.argsort(residuals, kind="stable"), kind="stable").astype(float)
    ranks -= ranks.mean()
    denominator = float(np.dot(ranks, ranks))
    if denominator <= 0:
        return 1.0
    r = min(max(float(np.dot(ranks[:-1], ranks[1:])) / denominator, 0.0), 0.98)
    if r == 0.0:
        return 1.0
    k = np.arange(1, n - 2, dtype=float)
    weights = (n - k) * (n - k - 1) * (n - k - 2)
    return float(1.0 + 2.0 / (n * (n - 1) * (n - 2)) * np.sum(weights * r**k))


def _segments_peaks(t: np.ndarray, y: np.ndarray, drops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The highest sample of each stretch between sharp drops: the sawtooth's upper envelope."""
    cuts = [0, *(np.flatnonzero(drops) + 1).tolist(), len(y)]
    peaks = [a + int(np.argmax(y[a:b])) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]
    return t[peaks], y[peaks]


def _tail_shape(t: np.ndarray, y: np.ndarray, *, tolerance: float, watched: float) -> str:
    """plateau, step or linear for the straight (post-warm-up) stretch of a timeline that moved.

    Growing: its rate's interval is above zero, and that rate over the whole time ``watched``
    rises more than the tolerance (a tail after a long warm-up is short: its own rise alone would
    call a 1 MiB/min leak watched for 40 s flat).
    """
    duration = t[-1] - t[0]
    slope, _, low, _ = theil_sen(t, y, autocorrelation=True)
    if low <= 0 or slope * max(duration, watched) <= tolerance:
        return "plateau"  # it moved, but is not growing
    last = t >= t[0] + duration * 2 / 3
    if last.sum() >= 3:
        last_slope, *_ = theil_sen(t[last], y[last])
        # stopped lately: slower than half the rate (a leak's own wander stays well within that), by
        # more than the noise could make
        shortfall = (slope - last_slope) * (t[-1] - t[last][0])
        if last_slope < 0.5 * slope and shortfall > 2 * phases.scatter(t.tolist(), y.tolist()):
            return "plateau"
    d = np.diff(y)
    med = float(np.median(d))
    mad = float(np.median(np.abs(d - med))) * 1.4826
    threshold = max(med + 6 * mad, 3 * med, tolerance / 8)
    growth = float(d[d > 0].sum())
    jumps = d > threshold
    if growth > 0 and d[jumps].sum() >= 0.6 * growth and jumps.sum() <= max(1, 0.3 * len(d)):
        return "step"
    return "linear"


def _drops(y: np.ndarray, tolerance: float) -> np.ndarray:
    return np.diff(y) < -max(tolerance, 0.3 * float(np.ptp(y)))


def classify(t: np.ndarray, y: np.ndarray, *, tolerance: float) -> str:
    """The shape name for a timeline (see the module docstring for the rules)."""
    return _phases(t, y, tolerance=tolerance)[0]


def _phases(t: np.ndarray, y: np.ndarray, *, tolerance: float,
            from_start: bool = False) -> tuple[str, phases.WarmupEnd | None]:
    """The shape, and where the warm-up ended (None for a sawtooth or a flat timeline).

    ``from_start``: the series begins when the process began (a worker forked during the watch).
    Its first growth is its start-up; growth never seen to slow down is then a warm-up not over
    yet, never a leak (a worker importing its framework for 3 s read "+172 MiB/min").
    """
    if int(np.sum(_drops(y, tolerance))) >= 2:
        return "sawtooth", None
    span = float(np.percentile(y, 95) - np.percentile(y, 5))
    slope, *_ = theil_sen(t, y)
    if span <= tolerance and abs(slope * (t[-1] - t[0])) <= tolerance:
        return "flat", None
    # a slowdown smaller than an eighth of the tolerance is no warm-up worth the name: a page-sized
    # creep of a smooth USS would otherwise keep a fixed worker "warming up" to the end
    end = phases.warmup_end(t.tolist(), y.tolist(), floor=tolerance / 8)
    if not end.settled:
        # slowing down at every candidate: still warming up, unless it has stopped by the end (a
        # warm-up longer than two thirds of the watch that ended in its last sixth is a plateau)
        last = t >= t[-1] - (t[-1] - t[0]) / 6
        if last.sum() >= 4:
            rise = theil_sen(t[last], y[last])[0] * (t[-1] - t[last][0])
            if rise <= max(tolerance / 8, 2 * phases.scatter(t[last].tolist(), y[last].tolist())):
                return "plateau", phases.WarmupEnd(int(np.argmax(last)), float(t[last][0]), end.excess_bytes, True)
        return "warm-up", end
    shape = _tail_shape(t[end.index:], y[end.index:], tolerance=tolerance, watched=float(t[-1] - t[0]))
    if from_start and end.index == 0 and shape in ("linear", "step"):
        return "warm-up", phases.WarmupEnd(0, float(t[0]), 0.0, False)
    return shape, end


@dataclass(frozen=True)
class TimelineFit:
    """What :func:`fit_timeline` finds: rates in bytes per second, times in seconds from the last sample.

    ``eta_s`` is ``inf`` when the timeline is not on course to reach the limit, ``nan`` without a
    limit. ``current_bytes`` is the fitted value at the last sample, the start of the extrapolation;
    ``fit_t0`` the first time the rate was fitted on; the interval lines of the rate pivot on
    ``pivot`` (time, bytes), the fit's centre, so the start of the extrapolation is uncertain too.
    ``warmup_end_t``: when the warm-up found in the data ended (nan: none found); ``warmup_bytes``
    the growth it held beyond the rate after it.
    """

    shape: str
    rate_bytes_per_s: float
    rate_interval: tuple[float, float]
    eta_s: float
    eta_interval: tuple[float, float]
    current_bytes: float
    fit_t0: float
    pivot: tuple[float, float]
    warmup_end_t: float = math.nan
    warmup_bytes: float = 0.0


def fit_timeline(t: np.ndarray, y: np.ndarray, *, limit_bytes: int | None, tolerance_bytes: float,
                 confidence: float = 0.95, from_start: bool = False) -> TimelineFit:
    """Shape, rate with its interval and time to ``limit_bytes`` with its interval, of a timeline.

    ``t`` (seconds, increasing) and ``y`` (bytes, finite, >= 0): at least :data:`MIN_SAMPLES`
    samples spread over time (the caller checks). ``tolerance_bytes``: growth smaller than this,
    or than 1% of the median, is flat. ``from_start``: the series begins at the process's start
    (see :func:`_phases`). The rate is fitted on the samples the shape says meet a
    limit (see the module docstring).
    """
    tolerance_bytes = max(tolerance_bytes, 0.01 * float(np.median(y)))
    shape, end = _phases(t, y, tolerance=tolerance_bytes, from_start=from_start)
    fit_t, fit_y = t, y
    if shape == "sawtooth":
        peak_t, peak_y = _segments_peaks(t, y, _drops(y, tolerance_bytes))
        if len(peak_t) >= 3:
            fit_t, fit_y = peak_t, peak_y
    elif end is not None:
        fit_t, fit_y = t[end.index:], y[end.index:]  # never the warm-up
        if shape in ("plateau", "warm-up"):  # where it stands now: the last third
            last = fit_t >= fit_t[0] + (fit_t[-1] - fit_t[0]) * 2 / 3
            if last.sum() >= 3:
                fit_t, fit_y = fit_t[last], fit_y[last]
    slope, intercept, low, high = theil_sen(fit_t, fit_y, confidence=confidence, autocorrelation=True)
    current = intercept + slope * t[-1]
    if shape == "sawtooth" and fit_t is t:
        current = float(y.max())

    # the interval lines pivot on the fit's centre, so the start of the extrapolation is uncertain too
    pivot_t = float(np.median(fit_t))
    pivot_y = current + slope * (pivot_t - t[-1])

    def eta_at(rate: float) -> float:
        remaining = limit_bytes - (pivot_y + rate * (t[-1] - pivot_t))
        if remaining <= 0:
            return 0.0
        return remaining / rate if rate > 0 else math.inf

    eta, eta_low, eta_high = math.nan, math.nan, math.nan
    if limit_bytes is not None:
        # flat: within the tolerance over the whole watch, whatever a tiny trend says (a page or two
        # of USS moving would otherwise give "flat: reaches the limit in 27 h")
        growing = slope > 0 and shape != "flat" and not (shape == "plateau" and low <= 0)
        if limit_bytes <= max(current, float(y[-1])):
            eta = eta_low = eta_high = 0.0
        elif not growing:
            eta = eta_low = eta_high = math.inf
        else:
            eta, eta_low, eta_high = eta_at(slope), eta_at(high), eta_at(low)
    return TimelineFit(
        shape=shape,
        rate_bytes_per_s=float(slope),
        rate_interval=(float(low), float(high)),
        eta_s=float(eta),
        eta_interval=(float(eta_low), float(eta_high)),
        current_bytes=float(current),
        fit_t0=float(fit_t[0]),
        pivot=(float(pivot_t), float(pivot_y)),
        warmup_end_t=float(end.t) if end is not None and end.index > 0 else math.nan,
        warmup_bytes=float(end.excess_bytes) if end is not None and end.index > 0 else 0.0,
    )
