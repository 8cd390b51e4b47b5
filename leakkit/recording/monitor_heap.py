"""Heap work for the always-on monitor, in slices that let the application run between them.

Why: the monitor's snapshots ran a full ``gc.collect()``, a one-call heap summary and one
``gc.get_referrers`` per step of a reference path, each holding the GIL for the length of the
heap: requests of the application waited up to a quarter of a second (issue 12: worst stall 47
-> 253 ms at ``interval=0.1``). Here every pass over the heap goes :data:`SLICE` objects at a
time, and the thread sleeps briefly between slices, so that no single hold of the GIL lasts more
than a few milliseconds. What is left in one piece: ``gc.get_objects()`` itself (a list of the
tracked objects, ~1 ms per 30 k here) and, when tracemalloc is on, its snapshot.

The summary has :func:`leakkit.probes.heap.heap_summary`'s object set and names (tracked objects but
frames, and their untracked referents, each once), taken without a collection first and while the
application runs: a snapshot of a moving heap, for comparing one snapshot with the next.
"""
from __future__ import annotations

import gc
import time
import types
from itertools import filterfalse
from typing import Any

import numpy as np
import pandas as pd

from .. import _compat

SLICE = 2000  # objects per hold of the GIL (1-3 ms of work on a busy heap)
PAUSE_S = 0.0005  # the sleep between slices: the application's threads take the GIL meanwhile


def pause() -> None:
    time.sleep(PAUSE_S)


def objects() -> list[Any]:
    """The GC-tracked objects (one call; the list leaves itself out)."""
    return gc.get_objects()


def type_summary(objs: list[Any]) -> pd.DataFrame:
    """``type``, ``count``, ``size`` of ``objs`` (but frames) and their untracked referents, in slices."""
    from ..probes.heap_scan import (
        SEPARATE_INSTANCE_DICTS,
        summary_rows,
        summary_table,
        untracked_instance_dicts,
    )

    totals: dict[str, list[int]] = {}
    untracked: list[Any] = []
    ids: list[np.ndarray] = []
    frame_type = types.FrameType

    def add(piece: list[Any]) -> None:
        if piece:
            for name, count, size in zip(*summary_rows(piece), strict=True):
                row = totals.get(name)
                if row is None:
                    totals[name] = [count, size]
                else:
                    row[0] += count
                    row[1] += size

    try:
        for start in range(0, len(objs), SLICE):
            piece = [o for o in objs[start:start + SLICE] if type(o) is not frame_type]
            refs = _compat.referents(*piece)
            if SEPARATE_INSTANCE_DICTS:  # 3.10: as heap_summary counts them (see heap_scan.py)
                refs.extend(gc.get_referents(*untracked_instance_dicts(piece)))
            found = list(filterfalse(gc.is_tracked, refs))
            del refs
            untracked.extend(found)
            ids.append(np.fromiter(map(id, found), dtype=np.uint64, count=len(found)))
            add(piece)
            del piece, found
            pause()
        if ids:
            first = np.unique(np.concatenate(ids), return_index=True)[1]
            ids.clear()
            first.sort()
            for start in range(0, len(first), SLICE):
                add([untracked[i] for i in first[start:start + SLICE].tolist()])
                pause()
    finally:
        untracked.clear()
    names = list(totals)
    return summary_table(names, [totals[n][0] for n in names], [totals[n][1] for n in names])


def referrers(frontier: list[Any], objs: list[Any]) -> list[Any]:
    """The objects of ``objs`` that refer to one of ``frontier``: ``gc.get_referrers`` in slices.

    Each slice is tested with one ``gc.get_referents`` call; only a slice that holds a referrer
    is halved until the referrers are found, so the cost is about one pass over the heap's
    references, cut in pieces.
    """
    wanted = {id(o) for o in frontier}
    found: list[Any] = []
    for start in range(0, len(objs), SLICE):
        piece = objs[start:start + SLICE]
        if not wanted.isdisjoint(map(id, _compat.referents(*piece))):
            _narrow(piece, wanted, found)
        del piece
        pause()
    return found


def _narrow(piece: list[Any], wanted: set[int], found: list[Any]) -> None:
    if len(piece) <= 8:
        found.extend(o for o in piece if not wanted.isdisjoint(map(id, _compat.referents(o))))
        return
    half = len(piece) // 2
    for part in (piece[:half], piece[half:]):
        if not wanted.isdisjoint(map(id, _compat.referents(*part))):
            _narrow(part, wanted, found)
