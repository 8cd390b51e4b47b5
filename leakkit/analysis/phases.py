"""Warm-up, copy-on-write unsharing and sustained growth in a memory series: plain Python over lists.

Why plain Python (no numpy, no pandas): the same rules must run where those cannot be imported,
in the monitor inside a server's worker, whose memory they would inflate by tens of MiB. Each
function takes lists (or any sequences) of floats: times in seconds, memory in bytes, sorted by
time; they cost milliseconds for a few hundred samples (series are thinned to
:data:`MAX_POINTS`). :mod:`leakkit.analysis.forecast` builds its shapes on them.

The three things a worker's memory does after it starts, which a forecast must not confuse:

- **warm-up** (:func:`warmup_end`): growth that slows down and stops: caches filling to their
  bound, lazy imports, first-use allocations, pools opening. Its end is found from the data, never
  a fixed skip: it is the first sample from which the rest of the series grows no slower in its
  second half than in its first (the first half's excess growth over the second half's rate is
  within noise). Past that sample the series is a straight line (flat, or a leak).
- **copy-on-write unsharing** (:func:`unsharing`): after ``fork()`` a worker shares its pages with
  the master; each page it writes (a reference count, a collection walking the objects) becomes
  private. Its private memory (USS) rises while its resident memory (RSS) does not: no new memory,
  only pages changing hands, bounded by what was shared. Workers forked together do it together:
  they step at the same moment and converge (:func:`common_steps`).
- **sustained growth** (:func:`sustained_growth`): growth that goes on after the warm-up ends,
  at a rate whose whole interval is above zero and beyond the noise: a leak.

And one thing the kernel does to them all at once: under memory pressure it reclaims clean
shared file pages, and every process's RSS drops together (:func:`reclaim_compensated`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

MAX_POINTS = 120       # a series is thinned to this many evenly spaced samples for the rules
MIN_TAIL = 8           # samples a straight tail needs at least
MAX_WARMUP_SHARE = 2 / 3  # a warm-up longer than this share of the series is "not settled yet"
NOISE_FACTOR = 2.0     # deceleration or growth within this many residual scales is noise
RELATIVE_SLOWDOWN = 0.35  # a first half rising < 1.35x the second half's pace is a leak's own wander


def median(values: Sequence[float]) -> float:
    """The median of a non-empty sequence."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return math.nan
    middle = n // 2
    return float(ordered[middle]) if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2.0


def thin(t: Sequence[float], y: Sequence[float], max_points: int = MAX_POINTS) -> tuple[list[float], list[float]]:
    """At most ``max_points`` evenly spaced samples (first and last kept)."""
    n = len(t)
    if n <= max_points:
        return list(t), list(y)
    keep = sorted({round(i * (n - 1) / (max_points - 1)) for i in range(max_points)})
    return [t[i] for i in keep], [y[i] for i in keep]


def slope(t: Sequence[float], y: Sequence[float], max_points: int = MAX_POINTS) -> float:
    """Theil-Sen slope (the median of pairwise slopes), robust to collection dips and allocator jumps;
    0.0 for fewer than two distinct times."""
    ts, ys = thin(t, y, max_points)
    slopes = [(ys[j] - ys[i]) / (ts[j] - ts[i])
              for i in range(len(ts)) for j in range(i + 1, len(ts)) if ts[j] > ts[i]]
    return median(slopes) if slopes else 0.0


def line(t: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Theil-Sen slope and intercept (the median of ``y - slope * t``)."""
    b = slope(t, y)
    return b, median([yi - b * ti for ti, yi in zip(t, y, strict=False)])


def scatter(t: Sequence[float], y: Sequence[float]) -> float:
    """Robust scale of the residuals around the series' Theil-Sen line (1.4826 MAD), bytes."""
    b, a = line(t, y)
    residuals = [yi - (a + b * ti) for ti, yi in zip(t, y, strict=False)]
    centre = median(residuals)
    return 1.4826 * median([abs(r - centre) for r in residuals])


@dataclass(frozen=True)
class WarmupEnd:
    """Where a series' warm-up ends: ``index`` into the series given (0: no warm-up), its time,
    the growth it held (bytes above the straight tail's line at the start), and whether the rest
    is settled (False: the growth was still slowing down at the end of the series)."""


    index: int
    t: float
    excess_bytes: float
    settled: bool


def level(t: Sequence[float], y: Sequence[float], at: float, width: float) -> float:
    """The series' level around time ``at``: the median of the samples within ``width`` of it
    (at least the three nearest), so a collection dip or a one-sample spike does not move it."""
    near = [yi for ti, yi in zip(t, y, strict=False) if abs(ti - at) <= width]
    if len(near) < 3:
        nearest = sorted(range(len(t)), key=lambda i: abs(t[i] - at))[:3]
        near = [y[i] for i in nearest]
    return median(near)


def _deceleration(t: Sequence[float], y: Sequence[float]) -> tuple[float, float, float]:
    """How much more the first half of a series rose than its second half's pace would give over
    the same time (bytes); the noise that excess is judged against (the residual scatter); and the
    second half's rise scaled to the first half's span.

    Rises are between levels (:func:`level`) at the start, the middle and the end, not slopes: a
    Theil-Sen slope of a half ignores a warm-up that fills only part of it.
    """
    span = t[-1] - t[0]
    width = span / 12
    start, middle, end = t[0] + width / 2, (t[0] + t[-1]) / 2, t[-1] - width / 2
    first = level(t, y, middle, width) - level(t, y, start, width / 2)
    second = (level(t, y, end, width / 2) - level(t, y, middle, width)) * (middle - start) / (end - middle)
    return first - second, NOISE_FACTOR * scatter(t, y), second


def _slowing(t: Sequence[float], y: Sequence[float], floor: float) -> bool:
    excess, noise, pace = _deceleration(t, y)
    return excess > max(floor, noise, RELATIVE_SLOWDOWN * max(pace, 0.0))


def warmup_end(t: Sequence[float], y: Sequence[float], *, floor: float = 0.0) -> WarmupEnd:
    """The first sample from which the rest of the series is straight: no slower in its second half.

    Candidates run from the first sample to the one at :data:`MAX_WARMUP_SHARE` of the span (the
    rest keeping at least :data:`MIN_TAIL` samples). At each, the rest is split in two halves by
    time; it is still slowing down when the first half rose more than the second half's pace gives
    over the same time by more than ``max(floor, 2 * residual scatter, 0.35 x that pace)`` (a leak's
    rate wanders with its load: a first half within 1.35x the second is not a slowdown). The
    warm-up ends at the first candidate that is not slowing down. A series still slowing down at
    every candidate is not settled: the index is the last candidate.

    Args:
        t, y: times (s, increasing) and bytes.
        floor: deceleration smaller than this many bytes is noise (e.g. a few pages).
    """
    ts, ys = thin(t, y, MAX_POINTS * 2)
    n = len(ts)
    if n < 2 * MIN_TAIL:
        return WarmupEnd(0, float(t[0]) if len(t) else math.nan, 0.0, True)
    last_start = ts[0] + (ts[-1] - ts[0]) * MAX_WARMUP_SHARE
    candidates = [k for k in range(n - MIN_TAIL) if ts[k] <= last_start]
    step = max(1, len(candidates) // 40)  # ~40 candidates: each costs two Theil-Sen fits
    chosen, settled = candidates[-1], False
    for k in candidates[::step]:
        if not _slowing(ts[k:], ys[k:], floor):
            chosen, settled = k, True
            break
    if chosen > 0 and step > 1 and settled:  # refine within the last stride
        for k in range(max(0, chosen - step + 1), chosen):
            if not _slowing(ts[k:], ys[k:], floor):
                chosen = k
                break
    start_t = ts[chosen]
    index = next(i for i, ti in enumerate(t) if ti >= start_t)
    b, a = line(ts[chosen:], ys[chosen:])
    excess = max(0.0, (a + b * ts[0]) - ys[0]) if chosen else 0.0
    return WarmupEnd(index, float(start_t), float(excess), settled)


@dataclass(frozen=True)
class Sustained:
    """Growth after the warm-up: the rate (bytes/s), the growth it makes over the tail, the noise
    it was judged against, and the verdict ``growing`` (goes on beyond noise) or not."""

    rate: float
    growth: float
    noise: float
    growing: bool


def sustained_growth(t: Sequence[float], y: Sequence[float], *, floor: float = 0.0) -> Sustained:
    """Whether a (post-warm-up) series keeps growing: its Theil-Sen rise over its span exceeds
    ``max(floor, 2 * residual scatter)``, and so does its second half's (growth that goes on to
    the end, not a step early in the tail)."""
    ts, ys = thin(t, y)
    if len(ts) < 4 or ts[-1] <= ts[0]:
        return Sustained(0.0, 0.0, 0.0, False)
    rate = slope(ts, ys)
    growth = rate * (ts[-1] - ts[0])
    noise = NOISE_FACTOR * scatter(ts, ys)
    middle = (ts[0] + ts[-1]) / 2
    late = [i for i, ti in enumerate(ts) if ti >= middle]
    late_rate = slope([ts[i] for i in late], [ys[i] for i in late]) if len(late) >= 3 else rate
    growing = growth > max(floor, noise) and late_rate > 0.25 * rate
    return Sustained(float(rate), float(growth), float(noise), growing)


@dataclass(frozen=True)
class Unsharing:
    """Private memory that was shared memory: between two samples, USS rose by ``uss_growth``
    while RSS rose by ``rss_growth``; ``unshared`` of it (``uss_growth - rss_growth``, at most what
    was shared at the start) came from pages that stopped being shared with the master."""

    uss_growth: float
    rss_growth: float
    unshared: float
    shared_at_start: float

    @property
    def share(self) -> float:
        """The part of the USS growth that is unsharing (0 to 1)."""
        return self.unshared / self.uss_growth if self.uss_growth > 0 else 0.0


def _around(values: Sequence[float], i: int) -> float:
    """The median of sample ``i`` and its two neighbours (missing ones skipped): a single
    collection dip does not decide where a series stood."""
    window = [v for v in values[max(0, i - 1):i + 2] if v == v]
    return median(window) if window else math.nan


def unsharing(rss: Sequence[float], uss: Sequence[float], start: int = 0, end: int | None = None) -> Unsharing:
    """How much of a worker's USS growth between samples ``start`` and ``end`` (default: the last)
    is copy-on-write unsharing: USS rising while RSS stays where it was.

    Uses medians of three samples at each end (a single collection dip does not decide).
    """
    end = len(rss) - 1 if end is None else end
    at = _around
    du = at(uss, end) - at(uss, start)
    dr = at(rss, end) - at(rss, start)
    shared = at(rss, start) - at(uss, start)
    unshared = min(max(0.0, du - max(dr, 0.0)), max(0.0, shared)) if du > 0 else 0.0
    return Unsharing(float(du), float(dr), float(unshared), float(shared))


@dataclass(frozen=True)
class Sharing:
    """A process's PSS growth between two samples and the part of it that is its share of pages
    it shares with others (``pss - uss``) rising: fewer processes share those pages."""

    pss_growth: float
    uss_growth: float
    rss_growth: float
    share_growth: float
    shared_now: float

    @property
    def share(self) -> float:
        """The part of the PSS growth that is the shared pages' share rising (0 to 1)."""
        return min(1.0, max(0.0, self.share_growth / self.pss_growth)) if self.pss_growth > 0 else 0.0


def fewer_sharers(rss: Sequence[float], uss: Sequence[float], pss: Sequence[float], start: int = 0,
                  end: int | None = None) -> Sharing:
    """How much of a process's PSS growth between samples ``start`` and ``end`` is not its own:
    its private pages (USS) did not grow by it, its mapped pages (RSS) did not either, and what
    rose is its share of the pages it still shares, as siblings copy them on write or exit (a
    preloaded master's PSS rises while its workers unshare). Medians of three samples at each end.
    """
    end = len(rss) - 1 if end is None else end
    at = _around
    dp = at(pss, end) - at(pss, start)
    du = at(uss, end) - at(uss, start)
    dr = at(rss, end) - at(rss, start)
    share = (at(pss, end) - at(uss, end)) - (at(pss, start) - at(uss, start))
    return Sharing(float(dp), float(du), float(dr), float(share), float(at(rss, end) - at(uss, end)))


def steps(t: Sequence[float], y: Sequence[float], *, floor: float) -> list[tuple[float, float]]:
    """Sharp rises of one series: (time, bytes) of each sample-to-sample rise above ``floor`` and
    above six robust spreads of the rises."""
    d = [y[i + 1] - y[i] for i in range(len(y) - 1)]
    if not d:
        return []
    centre = median(d)
    spread = 1.4826 * median([abs(x - centre) for x in d])
    threshold = max(floor, centre + 6 * spread)
    return [(float(t[i + 1]), float(d[i])) for i in range(len(d)) if d[i] > threshold]


def common_steps(series: dict[int, tuple[Sequence[float], Sequence[float]]], *, floor: float,
                 within: float) -> list[tuple[float, list[int]]]:
    """Moments when several processes stepped up together (within ``within`` seconds of each other):
    the signature of workers forked together unsharing their pages after the same event.

    ``series`` maps a pid to its (t, y), times on one clock (e.g. Unix seconds). Returns
    (time, pids) for each moment at least two of them stepped by more than ``floor`` bytes.
    """
    events = sorted((when, pid) for pid, (t, y) in series.items() for when, _ in steps(t, y, floor=floor))
    moments: list[tuple[float, list[int]]] = []
    for when, pid in events:
        if moments and when - moments[-1][0] <= within:
            if pid not in moments[-1][1]:
                moments[-1][1].append(pid)
        else:
            moments.append((when, [pid]))
    return [(when, pids) for when, pids in moments if len(pids) >= 2]


@dataclass(frozen=True)
class Reclaimed:
    """A series with the kernel's reclaim of shared pages added back: ``values``, and the moments
    (time, bytes) it dropped them while the private memory did not move."""

    values: list[float]
    events: list[tuple[float, float]]


def reclaim_compensated(t: Sequence[float], total: Sequence[float], private: Sequence[float], *,
                        floor: float) -> Reclaimed:
    """``total`` (rss or pss) with the sharp drops of its shared part that its private part (uss)
    did not share added back, until they are read in again.

    Why: under memory pressure the kernel drops clean pages of shared files (libraries, mapped
    code) from every process at once; RSS falls by MiBs and climbs back as they are touched again.
    That is neither the process freeing memory (a sawtooth) nor growth, and a forecast that fitted
    it read a leaking server's workers as a sawtooth not on course. A drop counts when the shared
    part (total - private) falls by more than ``floor`` and six robust spreads of its steps while
    private memory does not fall with it (unsharing moves shared to private: that is not a drop).
    """
    n = len(total)
    shared = [total[i] - private[i] for i in range(n)]
    steps = [shared[i + 1] - shared[i] for i in range(n - 1)]
    if not steps:
        return Reclaimed(list(total), [])
    centre = median(steps)
    spread = 1.4826 * median([abs(s - centre) for s in steps])
    threshold = max(floor, 6 * spread)
    added, values, events = 0.0, [float(total[0])], []
    for i, step in enumerate(steps):
        moved = private[i + 1] - private[i]
        if step < -threshold and moved > -0.5 * abs(step) and moved < 0.5 * abs(step):
            added -= step  # dropped by the kernel: add it back
            events.append((float(t[i + 1]), float(-step)))
        elif step > threshold and added > 0 and abs(moved) < 0.5 * step:
            added = max(0.0, added - step)  # read in again
        values.append(float(total[i + 1]) + added)
    return Reclaimed(values, events)
