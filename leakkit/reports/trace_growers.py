"""A trace's growers: the containers that grew during it, told apart by what bounds them.

When a trace's memory rises, the containers longer than at its baseline are found and measured
(:func:`leakkit.retention.grown.grown_holders`). What containers with an enforced bound gained
(an ``lru_cache`` still filling, a hand-bounded dict whose code evicts) is growth that stops;
what is left is the leak. A filling cache never hides a leak beside it, and growth that bounded
containers explain is not called one (docs/method.md, "Every grower on its own").

``growers`` columns (a :class:`~leakkit.reports.trace_report.TraceReport`'s ``growers``):
``holder``, ``root``, ``verdict`` (``leak``: nothing bounds it and the trace's memory keeps
growing; ``filling``: a bound something enforces, not reached yet; ``plateau``: at its bound;
``inconclusive``), ``bytes_per_call`` (what its new entries reach, per call of the trace: an
average, no interval), ``entries_before``, ``entries``, ``kept_bytes``, ``bound``, ``bound_kind``
(``implementation``, ``code``, ``declared``: see :class:`leakkit.retention.paths.Bound`),
``maxsize``, ``calls_to_fill``.
"""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from .._sizes import format_size

COLUMNS = ["holder", "root", "verdict", "bytes_per_call", "entries_before", "entries", "kept_bytes", "bound",
           "bound_kind", "maxsize", "calls_to_fill"]
EXPLAINED = 0.75  # bounded containers explain the growth when they hold this share of it and nothing else grows
# Their objects are measured by size (sys.getsizeof); the growth, by what the allocators hand out,
# which rounds each block up and adds the containers' own tables: 1.2-1.35x as much here.
ALLOCATOR = 1.3
LOOSE_FLOOR = 4096  # bytes a container nothing bounds must gain over the trace to count against the bounded ones


def judge(growers: list[Any], verdict: str, total: float, span: float) -> tuple[str, str, pd.DataFrame, int | None]:
    """(verdict, why, growers frame, calls to fill) from the growers of a trace whose verdict
    would be ``verdict`` over ``span`` calls in which it kept ``total`` bytes (or blocks)."""
    span = max(span, 1.0)
    bounded = [g for g in growers if g.bound is not None]
    # a few modules imported or names interned during the trace are not what could be a leak
    free = [g for g in growers if g.bound is None and g.bytes >= max(LOOSE_FLOOR, 0.1 * total)]
    # a full container lets an old entry go for each it gains: only what it grew by is kept
    held = sum(g.bytes * (g.added / g.new_len if g.bound.full and g.new_len > 0 else 1.0) for g in bounded)
    loose = sum(g.bytes for g in free)
    left = [(g, _calls_to_fill(g, span)) for g in bounded if not g.bound.full]
    fill = max((n for _, n in left if n is not None), default=None)
    why = ""
    unexplained = total - ALLOCATOR * held  # a few KiB a small run keeps beside its caches are noise, not a leak
    if bounded and total > 0 and unexplained <= max((1 - EXPLAINED) * total, LOOSE_FLOOR) and \
            loose < (1 - EXPLAINED) * total:
        verdict = "inconclusive" if left else "plateau"
        why = _names(bounded)
    elif bounded and verdict == "leak":
        why = "beside it, containers with a bound that stop growing (not the leak): " + _names(bounded)
    rows = [{"holder": g.path, "root": g.root,
             "verdict": ("plateau" if g.bound.full else "filling") if g.bound is not None else
             ("leak" if verdict == "leak" else "inconclusive"),
             "bytes_per_call": g.bytes / span, "entries_before": g.old_len, "entries": g.new_len,
             "kept_bytes": g.bytes, "bound": str(g.bound or g.declared or ""),
             "bound_kind": (g.bound or g.declared).how if (g.bound or g.declared) is not None else None,
             "maxsize": float((g.bound or g.declared).maxsize) if (g.bound or g.declared) is not None else math.nan,
             "calls_to_fill": float(_calls_to_fill(g, span) or math.nan) if g.bound is not None else math.nan}
            for g in growers]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    if len(frame):
        order = {"leak": 0, "filling": 1, "inconclusive": 2, "plateau": 3}
        frame["_rank"] = frame["verdict"].map(order)
        frame = frame.sort_values(["_rank", "bytes_per_call"], ascending=[True, False]).drop(columns="_rank")
    return verdict, why, frame.reset_index(drop=True), fill if verdict == "inconclusive" else None


def _names(growers: list[Any]) -> str:
    names = ", ".join(f"{g.path} ({g.bound})" for g in growers[:2])
    return names + (f" and {len(growers) - 2} more" if len(growers) > 2 else "") + " (see growers)"


def _calls_to_fill(g: Any, span: float) -> int | None:
    per_call = g.added / span
    if g.bound is None or per_call <= 0:
        return None
    return max(int(math.ceil((g.bound.maxsize - g.bound.size) / per_call)), 0)


def lines(frame: pd.DataFrame) -> list[str]:
    """The growers, each with its own rate per call, the leak first."""
    if not len(frame):
        return []
    out = ["  growers (containers that grew, each with what its new entries hold per call):"]
    for row in frame.head(6).itertuples():
        what = {"leak": "LEAK"}.get(row.verdict, row.verdict)
        bound = f"; {row.bound}" if row.bound else "; nothing bounds it"
        fill = f": about {int(row.calls_to_fill)} more calls fill it" if math.isfinite(row.calls_to_fill) else ""
        out.append(f"    {what:12s} {row.holder}  {format_size(row.bytes_per_call, signed=True)}/call "
                   f"({row.entries_before} -> {row.entries} entries{bound}{fill})")
    return out


__all__ = ["COLUMNS", "judge", "lines"]
