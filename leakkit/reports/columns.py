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
from dataclasses import dataclass, replace

import numpy as np

from .._sizes import format_size
from ..analysis import phases
from ..analysis.forecast import TimelineFit

LEAK_SHAPES = ("linear", "step")
BYTE_COLUMNS = ("rss", "uss", "pss")
LABELS = {"linear": "linear leak", "step": "step growth", "sawtooth": "sawtooth", "plateau": "plateau",
          "flat": "flat", "warm-up": "still warming up", "unsharing": "copy-on-write unsharing"}


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
    return (f"uss rose {format_size(found.uss_growth)}, rss {format_size(found.rss_growth, signed=True)}: "
            f"{format_size(found.unshared)} of it is pages that were shared with other processes becoming "
            f"private (copy-on-write after a fork), not new memory; it stops when nothing shared is left "
            f"({format_size(found.shared_at_start - found.unshared)} now)")


def sharing_note(t: np.ndarray, rss: np.ndarray, uss: np.ndarray, pss: np.ndarray, start_s: float) -> str | None:
    """A sentence when most of PSS's growth since ``start_s`` is its share of shared pages rising
    (RSS flat, USS not the cause): fewer processes share them, none of it new memory."""
    start = min(_index_at(t, start_s), len(t) - 2)
    if start < 0 or len(t) < 4:
        return None
    found = phases.fewer_sharers(rss.tolist(), uss.tolist(), pss.tolist(), start)
    if found.pss_growth <= 0 or found.share < 0.5 or found.rss_growth > 0.5 * found.pss_growth:
        return None
    return (f"pss rose {format_size(found.pss_growth)} (uss {format_size(found.uss_growth, signed=True)}, rss "
            f"{format_size(found.rss_growth, signed=True)}): {format_size(found.share_growth)} of it is this process's "
            f"share of the pages it shares with others growing as fewer processes share them (others copying them "
            f"on write after a fork, or exiting), not new memory; bounded by what it shares "
            f"({format_size(found.shared_now)} now)")


def _unsharing(fit: ColumnFit, t: np.ndarray, data: dict[str, np.ndarray], rss_leaks: bool) -> str | None:
    """Why a uss or pss growth is unsharing, when it is: rss does not grow, and uss rose by pages
    that were shared, or (pss) the pages still shared are shared by fewer processes."""
    rss, uss, pss = data.get("rss"), data.get("uss"), data.get("pss")
    growing = fit.leaks or fit.shape == "warm-up"  # unsharing converges: it slows down as it goes
    if fit.column not in ("uss", "pss") or not growing or rss_leaks or rss is None or uss is None:
        return None
    start = fit.warmup_end_s if math.isfinite(fit.warmup_end_s) else float(t[0])
    # pss: its share of what it still shares rising explains it before its own unsharing does (a
    # few KiB of uss noise must not stand for megabytes of pss)
    why = sharing_note(t, rss, uss, pss, start) if fit.column == "pss" and pss is not None else None
    return why or unsharing_note(t, rss, uss, start)


def reconcile(headline: ColumnFit, beside: list[ColumnFit], t: np.ndarray,
              data: dict[str, np.ndarray]) -> tuple[ColumnFit, list[ColumnFit], list[str]]:
    """Say which each column shows, and why any verdict differs from the headline's.

    A uss or pss that grows (steadily, or slowing down) while rss does not, by pages that were
    shared becoming private, is copy-on-write unsharing (shape ``unsharing``), not a leak nor a
    warm-up of the process's own, whichever column is the headline.
    Returns the headline and the columns beside it (relabelled so) and the notes.
    """
    everything = [headline, *beside]
    rss_fit = next((f for f in everything if f.column == "rss"), None)
    rss_leaks = rss_fit is not None and rss_fit.leaks
    notes: list[str] = []
    relabelled, unshared, why_first = [], [], None
    for fit in everything:
        why = _unsharing(fit, t, data, rss_leaks) if rss_fit is not None else None
        if why:
            unshared.append(f"{fit.column} {format_rate_short(fit.rate_bytes_per_s)}")
            why_first = why_first or why
            fit = replace(fit, shape="unsharing")
        relabelled.append(fit)
    if unshared:
        notes.append(f"{' and '.join(unshared)} while rss does not grow: copy-on-write unsharing, {why_first}")
    headline, beside = relabelled[0], relabelled[1:]
    for other in beside:
        if other.leaks == headline.leaks:
            continue
        says = f"{other.column} reads {other.label}, {headline.column} {headline.label}"
        if other.column == "pss" and other.leaks:
            why = ("pss grows when fewer processes share its pages (a sibling exited or was recycled) or when "
                   "pages become private")
        elif other.column == "uss" and headline.leaks:
            why = ("the growth is in pages this process shares with others (uss does not rise): files or "
                   "shared memory mapped, or pages of the parent it touches")
        elif other.column == "rss" and other.leaks:
            why = "rss grows in pages shared with other processes"
        else:
            why = "the columns measure different pages"
        notes.append(f"{says}: {why}; the verdict follows {headline.column}, what the limit counts")
    return headline, beside, notes


def format_rate_short(bytes_per_s: float) -> str:
    """'+1.2 MiB/min' (the unit that reads best), for notes."""
    per_min = bytes_per_s * 60
    return f"{format_size(per_min, signed=True)}/min"
