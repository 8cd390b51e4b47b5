"""Why a timeline's columns (rss, uss, pss) may read differently, said in words beside the headline.

Why: the three columns of one process measure different things, and after a fork they part
ways: a worker's USS rises while its RSS stays flat as the pages it shares with the master
become private (copy-on-write); its PSS moves when a sibling exits (fewer processes share the
pages). A report that printed "linear leak" for one column and "flat" for another, with no word
on why, is what misled the field case. The headline column is the one a limit counts (RSS: a
per-process limit and the kernel's OOM killer); the others are given beside it, and any verdict
that differs from the headline's comes with the reason.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._sizes import format_size
from ..analysis import phases
from ..analysis.forecast import TimelineFit

LEAK_SHAPES = ("linear", "step")
BYTE_COLUMNS = ("rss", "uss", "pss")
LABELS = {"linear": "linear leak", "step": "step growth", "sawtooth": "sawtooth", "plateau": "plateau",
          "flat": "flat", "warm-up": "still warming up"}


@dataclass(frozen=True)
class ColumnFit:
    """The shape and rate of one column beside the headline (bytes/s, with its interval)."""

    column: str
    shape: str
    rate_bytes_per_s: float
    rate_interval: tuple[float, float]
    warmup_end_s: float

    @property
    def label(self) -> str:
        return LABELS[self.shape]

    @property
    def leaks(self) -> bool:
        return self.shape in LEAK_SHAPES


def column_fit(column: str, fit: TimelineFit) -> ColumnFit:
    return ColumnFit(column, fit.shape, fit.rate_bytes_per_s, fit.rate_interval, fit.warmup_end_t)


def _index_at(t: np.ndarray, when: float) -> int:
    return int(np.searchsorted(t, when)) if math.isfinite(when) else 0


def unsharing_note(t: np.ndarray, rss: np.ndarray, uss: np.ndarray, start_s: float) -> str | None:
    """A sentence when most of USS's growth since ``start_s`` is copy-on-write unsharing (RSS flat)."""
    start = min(_index_at(t, start_s), len(t) - 2)
    if start < 0 or len(t) < 4:
        return None
    found = phases.unsharing(rss.tolist(), uss.tolist(), start)
    if found.uss_growth <= 0 or found.share < 0.5:
        return None
    return (f"uss rose {format_size(found.uss_growth)} while rss moved {format_size(found.rss_growth, signed=True)}: "
            f"{format_size(found.unshared)} of it is pages shared with the parent becoming private "
            f"(copy-on-write after the fork), not new memory")


def reconcile(headline: ColumnFit, beside: list[ColumnFit], t: np.ndarray, data: dict[str, np.ndarray]) -> list[str]:
    """A reason for each column whose verdict (leak or not) differs from the headline's."""
    notes: list[str] = []
    rss, uss = data.get("rss"), data.get("uss")
    for other in beside:
        if other.leaks == headline.leaks:
            continue
        says = f"{other.column} reads {other.label}, {headline.column} {headline.label}"
        why = ""
        if other.column in ("uss", "pss") and other.leaks and rss is not None and uss is not None:
            start = other.warmup_end_s if math.isfinite(other.warmup_end_s) else float(t[0])
            why = unsharing_note(t, rss, uss, start) or ""
            if not why and other.column == "pss":
                why = ("pss grows when fewer processes share its pages (a sibling exited or was "
                       "recycled) or when pages become private")
        elif other.column == "uss" and headline.leaks:
            why = ("the growth is in pages this process shares with others (uss does not rise): "
                   "files or shared memory mapped, or pages of the parent it touches")
        elif other.column == "rss" and other.leaks:
            why = "rss grows in pages shared with other processes"
        notes.append(f"{says}: {why or 'the columns measure different pages'}; the verdict follows "
                     f"{headline.column}, what the limit counts")
    return notes
