"""Heap work for the always-on monitor's snapshots, in slices that let the application run between them.

Why: a snapshot runs inside a serving worker. Every pass over the heap here goes :data:`SLICE`
objects at a time and sleeps briefly between slices, so no single hold of the GIL lasts more
than a few milliseconds (what is left in one piece: ``gc.get_objects()`` itself, ~1 ms per 30 k
objects, the collection that starts a snapshot, and tracemalloc's snapshot). And it is plain
Python: numpy and pandas would add ~100 MiB to a worker of ~30 MiB, the very process whose
memory is being judged.

The type summary counts what :func:`leakkit.probes.heap.heap_summary` counts (the GC-tracked
objects but frames, and their untracked referents, each once; names as pympler gives them), with
sizes from each type's own C ``__sizeof__`` plus the GC header (a ``__sizeof__`` written in
Python is never run: such instances count their basic size). The objects whose ids are in
``own`` (leakkit's state) are left out, with what only they refer to.
"""
from __future__ import annotations

import gc
import sys
import time
import types
from itertools import filterfalse
from typing import Any

from .. import _compat

SLICE = 2000  # objects per hold of the GIL (1-3 ms of work on a busy heap)
_GC_FLAG = 1 << 14  # Py_TPFLAGS_HAVE_GC
_HEADER = 2 * tuple.__itemsize__  # PyGC_Head: two pointers


def pause() -> None:
    """Let go of the GIL between slices: a thread of the application waiting for it takes it now.

    ``sleep(0)``, not a timed sleep: on a loaded machine a 0.5 ms sleep returned after up to tens
    of milliseconds, and a snapshot takes hundreds of slices (a snapshot measured 20 s that way).
    """
    time.sleep(0)


def objects() -> list[Any]:
    """The GC-tracked objects (one call; the list leaves itself out)."""
    return gc.get_objects()


def type_name(kind: type) -> str:
    """pympler's name for a type: "<class 'x.Y'>" -> "x.Y" (as heap summaries give it)."""
    text = type.__repr__(kind)
    return text[8:-2] if text.startswith("<class '") and text.endswith("'>") else text


def _python_sizeof(kind: type) -> bool:
    """Whether instances of ``kind`` get their size from a ``__sizeof__`` written in Python (never run)."""
    method = next((vars(base)["__sizeof__"] for base in kind.__mro__ if "__sizeof__" in vars(base)), None)
    return isinstance(method, types.FunctionType)


class Summary(dict):
    """``{type name: [count, size]}``; ``kinds`` maps each name to the types of that name."""

    def __init__(self) -> None:
        super().__init__()
        self.kinds: dict[str, set[type]] = {}


def type_summary(objs: list[Any], own: set[int]) -> Summary:
    """``{type name: [count, size]}`` of ``objs`` (but frames and ``own``) and their untracked referents."""
    rows: dict[type, list[int]] = {}
    seen: set[int] = set()  # untracked referents already counted
    frame_type = types.FrameType
    getsizeof = sys.getsizeof
    header = _HEADER

    def add(piece: list[Any]) -> None:
        for obj in piece:
            kind = type(obj)
            row = rows.get(kind)
            if row is None:
                row = rows[kind] = [0, 0, _python_sizeof(kind), header if kind.__flags__ & _GC_FLAG else 0]
            row[0] += 1
            row[1] += object.__sizeof__(obj) + row[3] if row[2] else getsizeof(obj, 0)

    try:
        for start in range(0, len(objs), SLICE):
            piece = [o for o in objs[start:start + SLICE] if type(o) is not frame_type and id(o) not in own]
            add(piece)
            refs = list(filterfalse(gc.is_tracked, _compat.referents(*piece)))
            # an untracked dict holds only untracked values, counted with it: on 3.10 an instance's
            # attributes live in such a dict (3.11+ visit them as the instance's own referents)
            refs += filterfalse(gc.is_tracked, _compat.referents(*[r for r in refs if type(r) is dict]))
            fresh = dict(zip(map(id, refs), refs, strict=True))
            del refs, piece
            new = fresh.keys() - seen - own
            seen.update(new)
            add([fresh[key] for key in new])
            del fresh, new
            pause()
    finally:
        seen.clear()
    summary = Summary()
    for kind, (count, size, _, _) in rows.items():
        name = type_name(kind)
        total = summary.get(name)
        if total is None:
            summary[name] = [count, size]
            summary.kinds[name] = {kind}
        else:
            total[0] += count
            total[1] += size
            summary.kinds[name].add(kind)
    rows.clear()
    return summary


def referrers(frontier: list[Any], objs: list[Any], deadline: float = float("inf"),
              clock: Any = time.perf_counter) -> list[Any]:
    """The objects of ``objs`` that refer to one of ``frontier``: ``gc.get_referrers`` in slices.

    Each slice is tested with one ``gc.get_referents`` call; only a slice that holds a referrer
    is halved until the referrers are found, so the cost is about one pass over the heap's
    references, cut in pieces.
    """
    wanted = {id(o) for o in frontier}
    found: list[Any] = []
    for start in range(0, len(objs), SLICE):
        if clock() > deadline:  # the caller's budget: what was found so far
            break
        piece = objs[start:start + SLICE]
        if not wanted.isdisjoint(map(id, _compat.referents(*piece))):
            _compat.narrow_referrers(piece, wanted, found)
        del piece
        pause()
    return found


def instances(objs: list[Any], wanted: set[type], *, own: set[int], per_type: int,
              prefer: Any = None) -> dict[type, list[Any]]:
    """Up to ``per_type`` instances of each type in ``wanted``, the newest first: from the end of
    ``objs`` (the collector appends new objects), with the untracked objects they refer to (bytes,
    str, bytearray are never tracked), those ``prefer(obj)`` is true for first (those tracemalloc
    saw allocated since the snapshot began)."""
    found: dict[type, list[Any]] = {kind: [] for kind in wanted}
    later: dict[type, list[Any]] = {kind: [] for kind in wanted}
    seen: set[int] = set()
    untracked = [kind for kind in wanted if not kind.__flags__ & _GC_FLAG]

    def offer(piece: list[Any]) -> None:
        for obj in piece:
            if id(obj) in own or id(obj) in seen:
                continue
            seen.add(id(obj))
            kind = type(obj)
            if prefer is None or prefer(obj):
                if len(found[kind]) < per_type:
                    found[kind].append(obj)
            elif len(later[kind]) < per_type:
                later[kind].append(obj)

    try:
        for stop in range(len(objs), 0, -SLICE):
            piece = objs[max(0, stop - SLICE):stop]
            piece.reverse()
            offer([o for o in piece if type(o) in wanted])
            if untracked:
                refs = [r for r in _compat.referents(*piece) if not gc.is_tracked(r)]
                refs += _compat.referents(*[r for r in refs if type(r) is dict])  # as type_summary counts them
                offer([r for r in refs if type(r) in wanted])
                del refs
            del piece
            if all(len(v) >= per_type for v in found.values()):
                break
            pause()
        for kind, extra in later.items():
            found[kind].extend(extra[:per_type - len(found[kind])])
    finally:
        later.clear()
        seen.clear()
    return found
