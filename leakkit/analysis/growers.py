"""Every grower on its own: a holder's share of the kept memory at each checkpoint, its own rate
per call and its own verdict, so that a leak beside a cache that fills reads apart from it.

A bisect run reads, at each checkpoint, the bytes each function's own code made that are still
alive; the retention search says, at the end, how many of the bytes each function made sit under
each holder's new entries. A holder's series is the sum over the functions of that function's
series times the holder's share of it: its rate is the same Theil-Sen slope, with the same
interval, as every other rate (docs/method.md, "Every grower on its own").

A holder's verdict: ``filling`` while a bound something enforces is not reached yet (with the
calls that would fill it), ``plateau`` once it is, else the verdict of its own series: ``leak``,
``plateau``, ``inconclusive`` (growth slowing down is not called a leak) or ``clean``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .growth import Growth, classify, slowing_down


def holder_series(made: Mapping[str, float], series: Mapping[str, Sequence[float]],
                  placed: Mapping[str, float], length: int) -> list[float]:
    """A holder's kept bytes at each checkpoint (from the first): each function's growth since the
    first checkpoint times the share of it found under the holder: ``made[f]`` of the bytes of
    ``f``'s the search placed in some holder (``placed[f]``), when those are most of its growth
    (sizes by ``sys.getsizeof`` read 0.7-0.9x what tracemalloc traces), else of its growth."""
    out = [0.0] * length
    for name, mine in made.items():
        values = series.get(name)
        if not values or mine <= 0:
            continue
        grew = values[-1] - values[0]
        found = max(placed.get(name, 0.0), float(mine))
        denominator = found if found >= 0.5 * grew else grew
        share = mine / denominator
        for i in range(min(length, len(values))):
            out[i] += share * (values[i] - values[0])
    # Past its look-up budget the search charges what it finds under an entry to the entry's own
    # maker: the makers' split can be wrong where their sum is not. The series keeps its makers'
    # shape and reaches what was found under the holder, never more than its makers kept in all.
    found = float(sum(v for v in made.values() if v > 0))
    makers = sum(max(series[n][-1] - series[n][0], 0.0) for n in made if series.get(n))
    target = min(found, makers)
    if out and out[-1] > 0 and target > out[-1]:
        scale = target / out[-1]
        out = [v * scale for v in out]
    return out


def grower_verdict(x: Sequence[float], series: Sequence[float], *, floor: float, bound: Any = None,
                   added: int = 0, calls: int = 0) -> tuple[str, Growth, str, int | None]:
    """(verdict, growth, why, calls to fill or to decide) of one holder's series.

    ``bound``: a :class:`leakkit.retention.paths.Bound` something enforces (None when nothing
    does: a declared one is not passed here); ``added``: entries the holder gained over ``calls``.
    """
    g = classify(x, series, floor=floor)
    if bound is not None:
        if bound.full:
            # at its bound it loses an entry for each it gains: it keeps nothing more per call (its
            # share of its makers' growth counts what its new entries hold, not what it let go)
            g = replace(g, rate=0.0, rate_low=math.nan, rate_high=math.nan)
            return "plateau", g, f"full, at its bound: {bound}", None
        per_call = added / calls if calls > 0 and added > 0 else 0.0
        left = int(math.ceil((bound.maxsize - bound.size) / per_call)) if per_call > 0 else None
        fill = f": about {left} more calls fill it" if left is not None else ""
        return "filling", g, f"still filling its bound: {bound}{fill}", left
    if g.verdict == "leak" and slowing_down(x, series):
        return "inconclusive", g, "growth slowing down (a cache still filling?)", 4 * max(calls, 1)
    return g.verdict, g, g.reason, g.calls_to_decide


@dataclass
class Grower:
    """One holder that grew, judged on its own series."""

    holder: Any  # the engine's HolderRecord
    growth: Growth
    verdict: str  # leak, filling, plateau, inconclusive, clean
    why: str
    left: int | None  # calls to fill its bound, or to decide


def growers_of(holders: list[Any], x: Sequence[float], self_bytes: Mapping[str, Sequence[float]], calls: int,
               total_bytes: Sequence[float], *, floor: float) -> dict[int, Grower]:
    """Every holder that is not a side structure (weak references), by ``id``, with its own rate and
    verdict; a few objects under a container that grew, and a container inside another grower's
    new entries (which that one counts), are not growers of their own."""
    placed: dict[str, float] = {}
    for h in holders:
        for name, made in h.made.items():
            placed[name] = placed.get(name, 0.0) + made
    grew = (total_bytes[-1] - total_bytes[0]) if len(total_bytes) else 0.0
    real = [h for h in holders if h.side is None]
    out: dict[int, Grower] = {}
    seen: set[str] = set()
    for h in real:
        if h.kept_bytes <= 0 or h.holder in seen or (h.kept_bytes < min(1024, 0.02 * grew) and h.bound is None):
            continue
        if any(o.holder != h.holder and h.holder.startswith(o.holder) and h.holder[len(o.holder):][:1] in "[."
               for o in real):
            continue
        seen.add(h.holder)
        series = holder_series(h.made, self_bytes, placed, len(x))
        verdict, g, why, left = grower_verdict(x, series, floor=floor, bound=h.bound, added=h.new_len - h.old_len,
                                               calls=calls)
        if h.declared is not None and h.bound is None:
            why = f"{why}; {h.declared}"
        out[id(h)] = Grower(h, g, verdict, why, left)
    return out


__all__ = ["Grower", "grower_verdict", "growers_of", "holder_series"]
