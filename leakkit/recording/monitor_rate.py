"""The monitor's live judgement of its own memory: a growth rate with its interval, and a verdict.

Why here, in plain Python: the monitor runs inside a production worker, where importing numpy
would cost more memory (~20 MiB) than the whole monitor may (2 MiB), and the sampler thread cannot
reach the analysis layer. The arithmetic is the one :mod:`leakkit.analysis.forecast` uses (a
Theil-Sen slope, Sen's rank interval widened for serial correlation by Hamed and Rao's correction),
on a bounded history, so each judgement costs about a millisecond and is made every few samples.

The history (:class:`History`): raw samples are gathered into bins (the median of each bin, robust
to the spikes of a request in flight), at two scales: a fine ring of ``2 * BINS`` bins of
``sustain / BINS`` seconds (the last two ``sustain`` windows) and a coarse log of the whole life,
whose bins double in length whenever it has ``2 * BINS`` of them (a slow leak needs hours to show).

The rule (:func:`judge`), on the last ``sustain`` seconds at each scale (the fine window, and the
coarse history's last half when it spans more than twice ``sustain``), split in thirds:

- ``leak``: growth goes on steadily: the rate's lower bound and each third's lower bound are
  above zero, the last third grows at least half as fast as the first and as the whole window
  (growth that slows down is a warm-up: a worker's start-up, flat, then a rise, then nearly
  flat, has a slow first third too), and the window grew by at least ``min_growth``. Either
  scale may say so.
- ``warming up``: the window grows (its rate's lower bound above zero, by at least half
  ``min_growth``) but not yet for a whole window, or slowing down.
- ``plateau``: the last window is flat but the history before it grew by ``min_growth`` or more.
- ``flat``: neither; ``unknown``: fewer than 8 bins so far.

What this rule cannot know: a cache that fills at a steady pace for a whole ``sustain`` window
looks like a leak until it stops; the snapshot's reference paths name its holder and its bound.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

BINS = 30  # bins per sustain window
MIN_BINS = 8
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Judgement:
    """The verdict on a history and the rate behind it (bytes/s; None until known)."""

    verdict: str
    rate: float | None = None
    low: float | None = None
    high: float | None = None
    window_s: float | None = None


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


def _inflation(residuals: list[float]) -> float:
    """Hamed and Rao's variance inflation of the Mann-Kendall statistic for AR(1) ranks (>= 1)."""
    n = len(residuals)
    if n < 8:
        return 1.0
    order = sorted(range(n), key=residuals.__getitem__)
    ranks = [0.0] * n
    for rank, index in enumerate(order):
        ranks[index] = float(rank)
    mean = (n - 1) / 2.0
    ranks = [r - mean for r in ranks]
    denominator = sum(r * r for r in ranks)
    if denominator <= 0:
        return 1.0
    r = min(max(sum(a * b for a, b in zip(ranks, ranks[1:], strict=False)) / denominator, 0.0), 0.98)
    if r == 0.0:
        return 1.0
    total = sum((n - k) * (n - k - 1) * (n - k - 2) * r ** k for k in range(1, n - 2))
    return 1.0 + 2.0 * total / (n * (n - 1) * (n - 2))


def theil_sen(t: list[float], y: list[float], z: float = Z95) -> tuple[float, float, float]:
    """Slope and its ~95% interval (low, high), the interval widened for serial correlation.

    ``(nan, nan, nan)`` under 3 points. Quadratic in the points: callers pass at most ~60.
    """
    n = len(t)
    if n < 3:
        return math.nan, math.nan, math.nan
    slopes = sorted((y[j] - y[i]) / (t[j] - t[i]) for i in range(n) for j in range(i + 1, n) if t[j] != t[i])
    m = len(slopes)
    if m == 0:
        return math.nan, math.nan, math.nan
    slope = _median(slopes)
    intercept = _median([b - slope * a for a, b in zip(t, y, strict=True)])
    inflation = _inflation([b - intercept - slope * a for a, b in zip(t, y, strict=True)])
    c = z * math.sqrt(n * (n - 1) * (2 * n + 5) / 18.0 * inflation)
    low = slopes[min(max(int(math.floor((m - c) / 2.0)), 0), m - 1)]
    high = slopes[min(max(int(math.ceil((m + c) / 2.0)), 0), m - 1)]
    return slope, low, high


class _Bins:
    """Medians of consecutive bins of ``width`` seconds, the last ``keep`` of them (None: all,
    doubling the width whenever there are ``2 * BINS``)."""

    def __init__(self, width: float, keep: int | None) -> None:
        self.width = width
        self.keep = keep
        self.t: list[float] = []
        self.y: list[float] = []
        self._start: float | None = None
        self._pending_t: list[float] = []
        self._pending_y: list[float] = []
        self.closed = 0

    def add(self, t: float, y: float) -> None:
        if self._start is None:
            self._start = t
        if self._pending_t and t - self._start >= self.width:
            self._close()
            self._start = t
        self._pending_t.append(t)
        self._pending_y.append(y)

    def _close(self) -> None:
        self.closed += 1
        self.t.append(_median(self._pending_t))
        self.y.append(_median(self._pending_y))
        self._pending_t.clear()
        self._pending_y.clear()
        if self.keep is not None and len(self.t) > self.keep:
            del self.t[0], self.y[0]
        elif self.keep is None and len(self.t) >= 2 * BINS:  # merge pairs: the bins double
            self.t = [(a + b) / 2 for a, b in zip(self.t[::2], self.t[1::2], strict=False)]
            self.y = [(a + b) / 2 for a, b in zip(self.y[::2], self.y[1::2], strict=False)]
            self.width *= 2


class History:
    """A bounded history of one memory column at two scales (see the module docstring)."""

    def __init__(self, sustain: float) -> None:
        self.sustain = float(sustain)
        self.fine = _Bins(self.sustain / BINS, keep=2 * BINS)
        self.coarse = _Bins(self.sustain / BINS, keep=None)
        self.samples = 0

    @property
    def bins(self) -> int:
        """Fine bins closed so far: a judgement changes only when this does."""
        return self.fine.closed

    def add(self, t: float, y: float) -> None:
        self.samples += 1
        self.fine.add(t, y)
        self.coarse.add(t, y)


def _window(t: list[float], y: list[float], span: float) -> tuple[list[float], list[float]]:
    if not t:
        return [], []
    start = t[-1] - span
    first = next((i for i, v in enumerate(t) if v >= start), len(t))
    return t[first:], y[first:]


def _sustained(t: list[float], y: list[float], min_growth: float) -> tuple[bool, tuple[float, float, float]]:
    fit = theil_sen(t, y)
    rate, low, _ = fit
    if not (low > 0 and rate * (t[-1] - t[0]) >= min_growth):
        return False, fit
    third = len(t) // 3
    parts = [(t[:third], y[:third]), (t[third:2 * third], y[third:2 * third]), (t[2 * third:], y[2 * third:])]
    fits = [theil_sen(a, b) for a, b in parts]
    steady = all(f[1] > 0 for f in fits) and fits[2][0] >= 0.5 * max(fits[0][0], rate)
    return steady, fit


def judge(history: History, min_growth: float) -> Judgement:
    """The verdict on ``history`` (see the module docstring); ``min_growth`` in bytes."""
    fine_t, fine_y = history.fine.t, history.fine.y
    if len(fine_t) < MIN_BINS:
        return Judgement("unknown")
    span = history.sustain
    t, y = _window(fine_t, fine_y, span)
    if len(t) < MIN_BINS:
        t, y = fine_t[-MIN_BINS:], fine_y[-MIN_BINS:]
    full = t[-1] - t[0] >= 0.9 * span * (BINS - 1) / BINS
    leak, (rate, low, high) = _sustained(t, y, min_growth) if full else (False, theil_sen(t, y))
    window_s = t[-1] - t[0]
    coarse_t, coarse_y = history.coarse.t, history.coarse.y
    if not leak and len(coarse_t) >= 2 * MIN_BINS and coarse_t[-1] - coarse_t[0] > 2 * span:
        long_t, long_y = _window(coarse_t, coarse_y, (coarse_t[-1] - coarse_t[0]) / 2)
        if len(long_t) >= MIN_BINS:
            slow, fit = _sustained(long_t, long_y, min_growth)
            if slow:
                leak, (rate, low, high), window_s = True, fit, long_t[-1] - long_t[0]
    if math.isnan(rate):
        return Judgement("unknown")
    if leak:
        return Judgement("leak", rate, low, high, window_s)
    if low > 0 and rate * window_s >= min_growth / 2:
        return Judgement("warming up", rate, low, high, window_s)
    if _median(y[-3:]) - min(coarse_y or fine_y) >= min_growth:  # it grew once, and stopped
        return Judgement("plateau", rate, low, high, window_s)
    return Judgement("flat", rate, low, high, window_s)


def judge_timeline(t: list[float], y: list[float], *, sustain: float = 300.0, min_growth: float = 1 << 20) -> Judgement:
    """The monitor's verdict replayed on a recorded series (``t`` seconds, ``y`` bytes): what the
    monitor said at the last sample (read from a recording, a worker's ``rss - snapshot_rss``)."""
    history = History(sustain)
    for a, b in zip(t, y, strict=True):
        history.add(float(a), float(b))
    return judge(history, min_growth)
