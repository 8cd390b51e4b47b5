"""Verdicts from a series of retained-memory readings: leak, plateau, clean or inconclusive.

The rule combines three anchors (docs/method.md, "Verdicts from series, not from two points"):

* CPython's refleak hunter (``-R``): after warm-up, a leak is growth in *every* later interval.
  Taken literally this misses intermittent leaks, so it is one signal among three here.
* Swoole Tracker's "growth times": how many intervals the value grew (``growth_times``).
* scalene's Laplace rule of succession: ``(grew + 1) / (intervals + 2)`` as the probability that
  the next interval grows too (``laplace``).

The decision itself rests on the trend of the *tail* (the second half of the series): a Theil-Sen
slope with Sen's rank-based confidence interval, robust to the lumpy steps of dict and list
resizes and to one-off outliers. ``leak`` needs the tail's interval to exclude zero and the growth
to go on to the last reading; ``plateau`` is growth early on that stopped (or growth held by a
container with a known bound); ``clean`` is no growth beyond noise; anything else is
``inconclusive``, with an estimate of how many more calls would decide.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

VERDICTS = ("leak", "plateau", "clean", "inconclusive")
_EXCURSION = 4  # readings: how long a passing excursion lasts, at most


@dataclass(frozen=True)
class Growth:
    """The verdict on one series, with the numbers that justify it (units of the series per call)."""

    verdict: str
    rate: float  # Theil-Sen slope of the tail, units per call
    rate_low: float  # lower end of the ~95% interval
    rate_high: float
    total: float  # last reading minus first reading
    growth_times: int  # intervals (of the whole series) that grew beyond noise
    intervals: int
    laplace: float  # (tail intervals that grew + 1) / (tail intervals + 2)
    noise: float  # robust spread of one interval's change, units
    calls_to_decide: int | None = None  # for inconclusive: more calls that would likely decide
    reason: str = ""
    extra: dict = field(default_factory=dict, compare=False)

    def __str__(self) -> str:
        return (f"{self.verdict}: {self.rate:+.3g}/call [{self.rate_low:+.3g}, {self.rate_high:+.3g}], "
                f"grew in {self.growth_times}/{self.intervals} intervals ({self.reason})")


def theil_sen(x: Sequence[float], y: Sequence[float], z: float = 1.96, *, max_points: int = 400
              ) -> tuple[float, float, float]:
    """Theil-Sen slope and Sen's rank-based interval (z=1.96: ~95%); (nan, nan, nan) under 2 points.

    Series longer than ``max_points`` are thinned to that many evenly spaced readings: the median
    of ~80 k pairwise slopes is as good as that of millions, and costs milliseconds.
    """
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    if len(xs) > max_points:
        keep = np.unique(np.linspace(0, len(xs) - 1, max_points).round().astype(int))
        xs, ys = xs[keep], ys[keep]
    n = len(xs)
    if n < 2:
        return math.nan, math.nan, math.nan
    i, j = np.triu_indices(n, k=1)
    dx = xs[j] - xs[i]
    keep = dx != 0
    slopes = np.sort((ys[j] - ys[i])[keep] / dx[keep])
    m = len(slopes)
    if m == 0:
        return math.nan, math.nan, math.nan
    slope = float(_median(slopes))
    var_s = n * (n - 1) * (2 * n + 5) / 18.0
    c = z * math.sqrt(var_s)
    lo = int(math.floor((m - c) / 2.0))
    hi = int(math.ceil((m + c) / 2.0))
    low = float(slopes[min(max(lo, 0), m - 1)])
    high = float(slopes[min(max(hi, 0), m - 1)])
    return slope, low, high


def _median(values: Any) -> float:
    """Median by sorting: np.median goes through numpy's masked-array check, which keeps a few
    strings alive per call (numpy's footprint would read as leakkit's)."""
    a = np.sort(np.asarray(values, dtype=float), axis=None)
    n = len(a)
    if n == 0:
        return math.nan
    mid = n // 2
    return float(a[mid]) if n % 2 else float((a[mid - 1] + a[mid]) / 2.0)


def _noise(d: np.ndarray) -> float:
    """Robust spread: 1.4826 * median absolute deviation."""
    if len(d) < 2:
        return 0.0
    return float(1.4826 * _median(np.abs(d - _median(d))))


def classify(
    x: Sequence[float],
    y: Sequence[float],
    *,
    floor: float = 0.0,
    bound_reached: bool | None = None,
    bound_calls_left: float | None = None,
    min_points: int = 4,
) -> Growth:
    """Classify a retained-memory series ``y`` read after calls ``x`` (after garbage collection).

    Args:
        x: call numbers of the readings, increasing.
        y: retained amount at each reading (bytes, blocks, ...).
        floor: growth (in y units, over the tail) below which nothing is called growth, e.g. a
            few blocks of allocator noise. Scaled up by the series' own noise.
        bound_reached / bound_calls_left: when what holds the growth is a container with a
            known bound (``deque(maxlen)``, ``lru_cache(maxsize)``): whether it is full, and how
            many more calls it needs to fill. Growth held by a bounded container is never a leak.
        min_points: fewer readings than this give ``inconclusive``.
    """
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    ok = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[ok], ys[ok]
    n = len(xs)
    if n < min_points:
        return Growth("inconclusive", math.nan, math.nan, math.nan, math.nan, 0, max(n - 1, 0), math.nan,
                      math.nan, calls_to_decide=None, reason=f"{n} readings; at least {min_points} needed")
    d = np.diff(ys)
    all_slope, all_low, all_high = theil_sen(xs, ys)
    # Noise: robust spread of the readings around the overall trend (safe with uneven spacing),
    # one or two single jumps flattened first: a container's one resize in the middle of a steady
    # growth (kilobytes at one reading) tilts the trend and read as noise that hid the growth.
    even = np.asarray(_without_jumps([float(v) for v in ys]))
    even_slope = theil_sen(xs, even)[0]
    resid = even - (_median(even - even_slope * xs) + even_slope * xs)
    noise = _noise(resid)
    # An interval "grew" when it rose by more than the series' downward jitter: a monotone series
    # has none, so a slow steady leak counts every interval; a noisy flat one needs a real rise.
    # A drop that lands no lower than one of the few readings before it ends an excursion (a
    # thread pool's work item alive at a reading or three): not jitter. Counted, one +52/-48
    # excursion in 511 readings of a steady +2 blocks a run made every step read as flat, and
    # the leak as growth that stopped.
    undone = (d < 0) & (ys[1:] >= _least_before(ys[:-1], _EXCURSION))
    drops = d[(d < 0) & ~undone]
    jitter = float(np.sqrt(np.mean(drops ** 2))) if len(drops) else 0.0
    tol = max(floor / 64.0, jitter, 1e-12)
    growth_times = int((d > tol).sum())
    intervals = len(d)
    start = (n - 1) // 2
    if n - start < 3:
        start = n - 3
    tail_x, tail_y = xs[start:], ys[start:]
    slope, low, high = theil_sen(tail_x, tail_y)
    tail_d = np.diff(tail_y)
    laplace = (int((tail_d > tol).sum()) + 1) / (len(tail_d) + 2)
    total = float(ys[-1] - ys[0])
    span_tail = float(tail_x[-1] - tail_x[0])
    tail_rise = float(tail_y[-1] - tail_y[0])
    needed = max(floor, 3.0 * noise)
    early_rise = float(np.max(ys[: start + 1]) - ys[0])
    peak = float(np.max(ys))
    still_rising = ys[-1] >= peak - max(needed, 0.5 * abs(tail_rise))
    common = dict(rate=slope, rate_low=low, rate_high=high, total=total, growth_times=growth_times,
                  intervals=intervals, laplace=laplace, noise=noise,
                  extra={"slope_all": all_slope, "slope_all_low": all_low, "slope_all_high": all_high,
                         "tail_rise": tail_rise, "needed": needed,
                         # the readings the rate is fitted to: from this call on, this many
                         "tail_from": float(tail_x[0]), "tail_readings": len(tail_x)})
    tail_grows = tail_rise > needed and (
        (math.isfinite(low) and low > 0)
        # intermittent growth: steps with flat stretches between them tie the tail's slopes at
        # zero, so accept a tail that keeps a third of the (significant) overall rate
        or (math.isfinite(all_low) and all_low > 0 and tail_rise >= all_slope * span_tail / 3.0)
    )
    # Growth that stopped near the end: a trailing run of flat intervals longer than any flat run
    # seen while it grew (an intermittent leak has flat runs too, but they end).
    flat = d <= tol
    trailing = 0
    for is_flat in flat[::-1]:
        if not is_flat:
            break
        trailing += 1
    longest_before = 0
    run = 0
    grown = False
    for is_flat in flat[: len(flat) - trailing]:
        if not is_flat:
            grown = True
            run = 0
        elif grown:
            run += 1
            longest_before = max(longest_before, run)
    stopped = grown and trailing >= max(3, 2 * longest_before + 1)
    # ... or, with uneven spacing (trace's 1, 2, 4, ... 64 schedule), a trailing flat stretch
    # longer in *calls* than any flat stretch while it grew and a quarter of the run
    if not stopped and grown and trailing:
        trailing_calls = float(xs[-1] - xs[n - 1 - trailing])
        longest_calls = 0.0
        start_flat = None
        for i, is_flat in enumerate(flat[: len(flat) - trailing]):
            if is_flat and start_flat is None:
                start_flat = i
            elif not is_flat and start_flat is not None:
                longest_calls = max(longest_calls, float(xs[i] - xs[start_flat]))
                start_flat = None
        rate_before = theil_sen(xs[: n - trailing], ys[: n - trailing])[0]
        stopped = (trailing_calls >= 2 * longest_calls + 1 and trailing_calls >= 0.25 * float(xs[-1] - xs[0])
                   and math.isfinite(rate_before) and rate_before * trailing_calls > needed)
    # ... or a last quarter that rose by less than a quarter of what the earlier rate predicts
    # (medians of two readings at each end, so one noisy reading does not decide). The earlier
    # rate is read with its single jumps flattened: a list's buffer reallocated once (kilobytes
    # at one reading, its old block untraced) dragged the Theil-Sen slope of a steady +104 B a
    # call to ~1 KiB a call, and the steady growth after it read as a stop.
    q = max(3, n // 4)
    if not stopped and n - q >= 3:
        seg_x, seg_y = xs[-q:], ys[-q:]
        before_slope = theil_sen(xs[: n - q + 1], _without_jumps([float(v) for v in ys[: n - q + 1]]))[0]
        seg_rise = float(_median(seg_y[-2:]) - _median(seg_y[:2]))
        seg_span = float(np.mean(seg_x[-2:]) - np.mean(seg_x[:2]))
        if math.isfinite(before_slope) and before_slope > 0 and seg_span > 0:
            stopped = seg_rise <= 0.25 * before_slope * seg_span
    common["extra"]["trailing_flat"] = trailing
    if tail_grows and still_rising and stopped and bound_reached is None:
        if trailing:
            why = f"flat for the last {float(xs[-1] - xs[n - 1 - trailing]):.0f} calls"
        else:
            why = "the last readings rose by a quarter of the earlier rate or less"
        return Growth("plateau", reason=f"growth that stopped: {why}", **common)
    if tail_grows and still_rising:
        if bound_reached is not None:
            if bound_reached:
                return Growth("plateau", reason="growth held by a container that reached its bound", **common)
            left = None if bound_calls_left is None else int(math.ceil(bound_calls_left))
            return Growth("inconclusive", calls_to_decide=left,
                          reason="growth held by a bounded container that is still filling", **common)
        return Growth("leak", reason="sustained growth to the last reading", **common)
    rise = max(early_rise, total)
    if bound_reached is not None and rise > needed:
        return Growth("plateau", reason="growth held by a bounded container", **common)
    if rise > needed and (tail_rise <= max(needed, 0.25 * rise) or (stopped and not tail_grows)):
        # growth over and done within the first calls is a warm-up (first-use caches, lazy
        # initialisation), not a container that filled during the run
        grew_at = np.flatnonzero(d > max(tol, 0.1 * rise))
        warm_until = float(xs[0]) + max(4.0, 0.1 * float(xs[-1] - xs[0]))
        if len(d) and (float(d[0]) >= 0.8 * rise or (len(grew_at) and float(xs[grew_at[-1] + 1]) <= warm_until)):
            return Growth("clean", reason="a warm-up in the first calls, then flat", **common)
        # ... and steps after the warm-up that add up to less than the floor are not growth
        # either (3.10 allocates a function's opcache once, after its 1024th call)
        after = [float(y) for x_, y in zip(xs, ys, strict=True) if float(x_) >= warm_until]
        if after and float(ys[0]) <= after[0] and max(after) - after[0] <= needed and \
                after[0] - float(ys[0]) >= 0.5 * rise:
            return Growth("clean", reason="a warm-up in the first calls, then steps within noise", **common)
        return Growth("plateau", reason="growth that stopped", **common)
    if rise <= needed and tail_rise <= needed:
        return Growth("clean", reason="no growth beyond noise", **common)
    if total < -needed and tail_rise <= needed:
        return Growth("clean", reason="shrinking", **common)
    # Undecided: growth in the tail that is not yet significant.
    per_call = slope if math.isfinite(slope) and slope > 0 else (all_slope if all_slope > 0 else math.nan)
    needed = max(needed, tol)
    left = None
    if math.isfinite(per_call) and per_call > 0:
        span = float(xs[-1] - xs[0])
        # calls for the tail to rise clearly above noise, and at least as long again as now
        left = int(max(needed / per_call, span, 10))
    return Growth("inconclusive", calls_to_decide=left, reason="growth not yet distinguishable from noise", **common)


def _without_jumps(ys: list[float], most: int = 2) -> list[float]:
    """``ys`` with its (at most ``most``) single jumps flattened to the typical step: a container
    resizing its table (a dict doubling, a list's over-allocation) adds kilobytes at one reading of
    a growth of bytes per call, and read in one half only it looks like a slope that slows down."""
    steps = [b - a for a, b in zip(ys, ys[1:], strict=False)]
    if len(steps) < 6:
        return ys
    typical = sorted(abs(d) for d in steps)[len(steps) // 2]
    if typical <= 0:
        return ys
    for _ in range(most):
        k = max(range(len(steps)), key=lambda j: steps[j])
        if steps[k] <= 4 * typical:
            break
        steps[k] = typical
    out = [ys[0]]
    for d in steps:
        out.append(out[-1] + d)
    return out


def slowing_down(x: Sequence[float], y: Sequence[float], *, ratio: float = 0.5, clearly: bool = True) -> bool:
    """Growth whose second half rises at under ``ratio`` times the first half's rate: a cache
    filling up, not a leak. ``clearly`` also asks the second half's upper bound to be below the
    first half's estimate (for a verdict; without it, a hint that running on would tell)."""
    xs, ys = list(x), list(y)
    n = len(xs)
    if n < 8:
        return False
    # The first quarter is left out: free lists (dicts, lists, tuples) fill during the first calls,
    # and what comes from them is not a new allocation tracemalloc sees, so a steady leak reads
    # as slowing down over its first few readings.
    quarter, half = n // 4, n // 2
    ys = _without_jumps(ys)
    first = theil_sen(xs[quarter: half + 1], ys[quarter: half + 1])[0]
    second, _, second_high = theil_sen(xs[half:], ys[half:])
    if not (math.isfinite(first) and first > 0 and math.isfinite(second)):
        return False
    if ratio * first <= second:
        return False
    return second_high < first if clearly else True


def _least_before(ys: np.ndarray, span: int) -> np.ndarray:
    """For each reading, the least of the ``span`` readings before it (+inf for the first):
    vectorised, as :func:`classify` runs on every series a watch or a trace records."""
    least = np.full(len(ys), np.inf)
    for shift in range(1, span + 1):
        if shift < len(ys):
            least[shift:] = np.minimum(least[shift:], ys[:-shift])
    return least
