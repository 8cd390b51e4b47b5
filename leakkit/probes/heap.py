"""Per-type heap summaries (pympler's ``summarize(muppy.get_objects())``, computed in bulk) and their diffs.

The object set and the type names are pympler's, so rows compare one to one with
``pympler.summary.summarize(pympler.muppy.get_objects())``:

* every object the GC tracks, except frames (pympler drops whatever
  ``isinstance(o, types.FrameType)`` is true for, and dead weak proxies, on which it raises);
* plus the direct referents of those objects that the GC does not track (str, int, float,
  bytes, tuples and dicts of atoms, ...), one level deep, frames included;
* each object once (by id), sized with ``sys.getsizeof`` (shallow, GC header included).

One difference, on 3.10 only: there an instance's attributes live in a separate ``__dict__``,
which the GC does not track while it holds only untracked values (a ``bytearray`` buffer), so
pympler, one level deep, never sees those values. They are counted here, as the instance's own
referents, which is what 3.11+ visit them as: the same objects are counted on every version.

Type names follow ``pympler.summary._repr`` at its default verbosity: ``str(type)`` without
addresses, ``<class 'x.Y'>`` unwrapped to ``x.Y`` (``dict``, ``__main__.Foo``; a metaclass
repr such as ``<enum 'Color'>`` is kept as is), and per-object names for functions
(``function (name)``), modules (``module(name)``) and frames (``frame (codename: name)``).

How the heap is scanned (in C, or in bulk calls where the extension is not built):
:mod:`leakkit.probes.heap_scan`.
"""
from __future__ import annotations

import gc
from typing import Any

import numpy as np
import pandas as pd

from .. import _checks
from .._errors import expected
from .heap_scan import PER_OBJECT_NAMES, heap_objects, summarize, table_from_scan

try:  # the C scan (leakkit/probes/_heapscan.c); heap_scan's bulk-builtins path gives the same table
    from . import _heapscan
except ImportError:  # not built (no compiler at install): the pure-Python path
    _heapscan = None

__all__ = ["heap_summary", "summary_diff"]

SUMMARY_COLUMNS = ("type", "count", "size")
DIFF_COLUMNS = ("type", "count", "size", "count_delta", "size_delta")


@_checks.strict
def heap_summary(objects: list[Any] | tuple[Any, ...] | None = None, *, collect: bool = True) -> pd.DataFrame:
    """Objects per type with their total shallow size: pympler's heap summary, 10x faster.

    Same object set and type names as
    ``pympler.summary.summarize(pympler.muppy.get_objects())`` (see the module docstring),
    so counts and sizes agree per type with pympler's when taken on the same heap.

    Args:
        objects: summarize these objects instead of the whole heap, each element as given
            (like ``summary.summarize(objects)``: no referents added, no de-duplication).
        collect: run ``gc.collect()`` first, as muppy does, so garbage cycles are not
            counted. Whole heap only.

    Returns:
        DataFrame with columns ``type`` (str), ``count`` (int64, objects) and ``size``
        (int64, bytes, summed ``sys.getsizeof``), one row per type name, sorted by ``size``
        descending.

    Example:
        >>> table = heap_summary()
        >>> table.head(3)  # doctest: +SKIP
           type   count      size
        0   str  101234  10812345
        1  dict   20345   4567890
        2  code   12345   2345678
    """
    if objects is not None and not isinstance(objects, (list, tuple)):
        raise expected("a list or tuple of objects, or None for the whole heap", "objects", objects)
    if not isinstance(collect, bool):
        raise expected("True or False", "collect", collect)
    if objects is not None:
        return summarize(list(objects))
    if collect:
        gc.collect()
    enabled = gc.isenabled()
    # With the GC off no collection runs mid-summary (a gen-2 pass over a big heap costs as
    # much as the summary), and no object changes from tracked to untracked under us.
    gc.disable()
    objs = None
    try:
        if _heapscan is not None:
            objs = gc.get_objects()
            return table_from_scan(_heapscan.scan(objs, tuple(PER_OBJECT_NAMES)))
        objs = heap_objects()
        return summarize(objs)
    finally:
        # The list holds every object in the process: drop it before our frame can outlive us.
        del objs
        if enabled:
            gc.enable()


@_checks.strict
def summary_diff(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """What changed between two heap summaries, biggest absolute size change first.

    Like ``tracemalloc.Snapshot.compare_to``: a type only in ``before`` shows ``count`` and
    ``size`` 0 with negative deltas; types whose count and size are unchanged are dropped.

    Args:
        before: an earlier ``heap_summary()``.
        after: a later ``heap_summary()``.

    Returns:
        DataFrame with columns ``type`` (str), ``count`` and ``size`` (int64, the values in
        ``after``; size in bytes), ``count_delta`` and ``size_delta`` (int64, after minus
        before), sorted by absolute ``size_delta`` descending, then absolute ``count_delta``.

    Example:
        >>> before = heap_summary()
        >>> cache = [bytearray(100) for _ in range(5000)]
        >>> summary_diff(before, heap_summary()).head(2)  # doctest: +SKIP
                type  count    size  count_delta  size_delta
        0  bytearray   5123  786543         5000      785000
        1       list    456   98765            1       40056
    """
    for name, table in (("before", before), ("after", after)):
        if not isinstance(table, pd.DataFrame) or not set(SUMMARY_COLUMNS) <= set(table.columns):
            raise expected("a heap_summary() DataFrame with columns type, count, size", name, table)
        _checks.frame(table, name, numeric=("count", "size"), what="a heap_summary() DataFrame")
    old = before.groupby("type", sort=False)[["count", "size"]].sum()
    new = after.groupby("type", sort=False)[["count", "size"]].sum()
    both = new.merge(old, how="outer", left_index=True, right_index=True, suffixes=("", "_before"))
    both = both.fillna(0).astype(np.int64)
    out = pd.DataFrame(
        {
            "type": both.index.astype(str),
            "count": both["count"].to_numpy(),
            "size": both["size"].to_numpy(),
            "count_delta": (both["count"] - both["count_before"]).to_numpy(),
            "size_delta": (both["size"] - both["size_before"]).to_numpy(),
        }
    )
    out = out[(out["count_delta"] != 0) | (out["size_delta"] != 0)]
    order = np.lexsort((out["type"].to_numpy(), -out["count_delta"].abs().to_numpy(), -out["size_delta"].abs().to_numpy()))
    return out.iloc[order].reset_index(drop=True)

