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
from dataclasses import replace
from typing import Any

from .growth import Growth, classify, slowing_down


def holder_series(made: Mapping[str, float], series: Mapping[str, Sequence[float]],
                  placed: Mapping[str, float], length: int) -> list[float]:
    """A holder's kept bytes at each checkpoint (from the first): each function's growth since the
    first checkpoint times the share of it found under the holder (``made[f]`` of the
    ``max(growth, placed[f])`` bytes of ``f``'s that the search placed in some holder)."""
    out = [0.0] * length
    for name, mine in made.items():
        values = series.get(name)
        if not values or mine <= 0:
            continue
        grew = values[-1] - values[0]
        denominator = max(grew, placed.get(name, 0.0), float(mine))
        share = mine / denominator
        for i in range(min(length, len(values))):
            out[i] += share * (values[i] - values[0])
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


__all__ = ["grower_verdict", "holder_series"]
