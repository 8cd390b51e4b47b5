"""Who refers to an object: ``gc.get_referrers`` over the objects of a heap walk, in slices.

Why apart from the walk (:mod:`leakkit.recording.heap_walk`): the reference paths of an attach
(:func:`leakkit.retention.naming.find_roots`) ask for the referrers of a few objects once per
level, and ``gc.get_referrers`` scans the whole heap in one call. Here each slice of the walk's
objects is tested with one ``gc.get_referents`` call and halved only when it holds a referrer;
a long container is read in slices of its own; the :class:`~leakkit.recording.heap_walk.Pacer`
lets the process run between slices.
"""
from __future__ import annotations

import gc
from typing import Any

from .. import _compat
from .heap_pacer import Pacer
from .heap_tables import Chunks


def referrers(frontier: list[Any], objs: Chunks, pacer: Pacer) -> list[Any]:
    """The objects of ``objs`` that refer to one of ``frontier``: ``gc.get_referrers`` in slices.

    A slice is tested with one ``gc.get_referents`` call and halved only when it holds a referrer
    (as :func:`leakkit.recording.monitor_heap.referrers`, without numpy).
    """
    wanted = {id(o) for o in frontier}
    found: list[Any] = []
    for piece in objs.pieces(512):
        big = [o for o in piece if (type(o) is list or type(o) is tuple or type(o) is dict) and len(o) > 4096]
        if big:  # a long container is read in slices of its own: its referents alone can be millions
            piece = [o for o in piece if not any(o is b for b in big)]
            for obj in big:
                if _refers_in_slices(obj, wanted, pacer):
                    found.append(obj)
        if not wanted.isdisjoint(map(id, _compat.referents(*piece))):
            _compat.narrow_referrers(piece, wanted, found)
        del piece, big
        if pacer.due():
            pacer.pause()
    return found


def _refers_in_slices(obj: Any, wanted: set[int], pacer: Pacer) -> bool:
    items = obj if type(obj) is not dict else None
    if items is None:
        try:
            items = [v for kv in dict.items(obj) for v in kv]
        except RuntimeError:  # changed size while read
            return not wanted.isdisjoint(map(id, gc.get_referents(obj)))
    for start in range(0, len(items), 4096):
        if not wanted.isdisjoint(map(id, items[start:start + 4096])):
            return True
        if pacer.due():
            pacer.pause()
    return False
