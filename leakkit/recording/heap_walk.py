"""A walk of the heap from its roots that lets the process run between slices: the attach agent's eyes.

Why not ``gc.get_objects()`` as the monitor does: that one call holds the GIL for the length of the
heap (15-45 ms for 700 k tracked objects on this machine, more for larger heaps), which is the
stall a process that never asked for leakkit must not see. Here every step is a bounded piece of
C work (one ``gc.get_referents`` over a slice of objects, a slice of a long container: see
:mod:`.heap_slices`), and a :class:`~.heap_pacer.Pacer` sleeps between pieces so that no hold of
the GIL lasts more than about :data:`~.heap_pacer.HOLD_S`; it records the longest hold it saw,
which the report gives, and times apart the interpreter's own collections that happen to run in
the walk's thread.

What is walked: objects reachable from the roots code can name (the loaded modules, every frame of
every thread with its local variables where they can be read without a change (3.10, 3.13:
:func:`running_locals`), ``gc.garbage``). Objects only C code holds (a registry inside an extension, a
reference leaked by a missing ``Py_DECREF``) and cyclic garbage not collected yet are not reached,
so a cycle waiting for the collector never reads as growth; leakkit's own modules
and threads are never walked, so nothing of leakkit counts. Each object is counted once: a set of
ids would cost ~60 bytes an object, so the ids seen are kept as one bit per 16-byte slot of each
4 KiB page touched (a few MB for millions of objects, :class:`~.heap_tables.Seen`), the memory
the report gives as the walk's.

Names and shallow sizes are those of :func:`leakkit.probes.heap.heap_summary` (``module.Qualname``,
``sys.getsizeof`` without running a ``__sizeof__`` written in Python). Only the standard library
is imported: the walk runs inside a process that did not choose to load numpy or pandas.
"""
from __future__ import annotations

import gc
import sys
import threading
import time
import types
from collections.abc import Callable, Iterable
from typing import Any

from .. import _compat
from .heap_pacer import Pacer
from .heap_slices import LONG, length_of, slices
from .heap_tables import Chunks, Seen

CHECK_EVERY = 256  # objects between two looks at the clock
PIECE = 512  # objects given to one gc.get_referents
PIECE_REFS = 20_000  # at most about this many references handed out by one gc.get_referents
_TYPE_QUALNAME = type.__dict__["__qualname__"]
_TYPE_MODULE = type.__dict__["__module__"]
_HAVE_GC = 1 << 14
_PREHEADER_FLAGS = (0 if sys.version_info < (3, 11) else 1 << 4) | (0 if sys.version_info < (3, 12) else 1 << 3)
_POINTER = 8 if sys.maxsize > 2**32 else 4


def type_name(kind: type) -> str:
    """``module.Qualname`` (``Qualname`` for builtins), read from the type's own slots: no metaclass code runs."""
    try:
        module = _TYPE_MODULE.__get__(kind, type)
        qualname = _TYPE_QUALNAME.__get__(kind, type)
    except Exception:
        return "?"
    if not isinstance(qualname, str):
        return "?"
    return qualname if module == "builtins" or not isinstance(module, str) else f"{module}.{qualname}"


def _sizer(kind: type) -> Callable[[Any], int]:
    """``sys.getsizeof`` for instances of ``kind`` without running a ``__sizeof__`` written in Python."""
    extra = 2 * _POINTER if kind.__flags__ & _HAVE_GC else 0
    if kind.__flags__ & _PREHEADER_FLAGS and not issubclass(kind, type):
        extra += 2 * _POINTER
    for base in kind.__mro__:
        method = vars(base).get("__sizeof__")
        if method is not None:
            if type(method) is types.MethodDescriptorType:
                return lambda obj, m=method, e=extra: m(obj) + e
            break
    basic = object.__dict__["__sizeof__"]
    return lambda obj, m=basic, e=extra: m(obj) + e


_PACKAGE = __file__.rsplit("/", 2)[0] + "/"  # .../leakkit/


def own_objects() -> set[int]:
    """Ids leakkit must never walk into: its modules, every frame of its threads, and its own
    frames in any other thread (a walk run from a user's thread leaves that thread's frames in)."""
    skip = {id(m) for name, m in list(sys.modules.items()) if name == "leakkit" or name.startswith("leakkit.")}
    ours = {t.ident for t in threading.enumerate() if t.name.startswith("leakkit")}
    for ident, frame in sys._current_frames().items():
        while frame is not None:
            if ident in ours or frame.f_code.co_filename.startswith(_PACKAGE):
                skip.add(id(frame))
            frame = frame.f_back
    return skip


def roots(skip: set[int]) -> list[Any]:
    """Where the walk starts: the loaded modules and every frame of every thread (3.11+ frames do
    not lead to the frame that called them). Not the young generations: what they hold that no
    root reaches is garbage not collected yet, which is not growth."""
    frames = []
    for frame in sys._current_frames().values():
        while frame is not None:
            if id(frame) not in skip:
                frames.append(frame)
            frame = frame.f_back
    modules = [m for m in list(sys.modules.values()) if m is not None and id(m) not in skip]
    return modules + frames + running_locals(frames) + list(gc.garbage)


def running_locals(frames: list[Any]) -> list[Any]:
    """What the running functions' local variables refer to, where it can be read without a change.

    From 3.11 a frame that is running shows the collector nothing of its locals; 3.13's
    ``f_locals`` is a view of them (PEP 667); 3.11 and 3.12's would copy them into a dict kept
    in the frame until it returns (holding values the function later drops), so there they are
    not read, and what only a running function's locals refer to is not counted. 3.10's frames
    show their locals to the collector.
    """
    if sys.version_info < (3, 13):
        return []
    found: list[Any] = []
    for frame in frames:
        try:
            found.extend(frame.f_locals.values())
        except Exception:
            continue
    return found


class HeapWalk:
    """One walk: ``totals`` {type: [count, shallow bytes]}; ``tracked`` the GC-tracked objects
    reached (kept only when asked: the referrer search of the reference paths needs them)."""

    def __init__(self, pacer: Pacer, *, keep: bool = False, max_pages: int = 4_000_000,
                 previous: Seen | None = None, samples: int = 0) -> None:
        self.pacer = pacer
        self.keep = keep
        self.previous = previous
        self.samples = samples
        self.seen: Seen | None = None
        self.max_pages = max_pages
        self.totals: dict[type, list[int]] = {}
        self.tracked = Chunks()
        self.objects = 0
        self.cut: str | None = None
        self.seen_bytes = 0
        self.seconds = 0.0

    def run(self) -> HeapWalk:
        self.pacer.watch()
        try:
            return self._run()
        finally:
            self.pacer.unwatch()

    def _run(self) -> HeapWalk:
        start = time.perf_counter()
        skip = own_objects()
        seen = Seen()
        stack = Chunks()
        skip.update(map(id, (self, self.totals, self.tracked, self.tracked.chunks, seen, seen.shards, *seen.shards,
                             stack, stack.chunks, skip)))
        for address in skip:
            seen.add(address)
        self._take(roots(skip), seen, stack)
        notes: list[str] = []
        self._drain(stack, seen, notes)
        self.seen_bytes = seen.nbytes()
        if seen.pages >= self.max_pages:
            notes.append(f"the walk stopped at {self.max_pages} pages of ids ({self.seen_bytes} bytes of its own)")
        self.cut = "; ".join(notes) or None
        self.seen = seen  # what the next walk calls old; dropped by release()
        stack.clear(self._turn)
        self.seconds = time.perf_counter() - start
        return self

    def _turn(self) -> None:
        if self.pacer.due():
            self.pacer.pause()

    def _drain(self, stack: Chunks, seen: Seen, notes: list[str]) -> None:
        pacer = self.pacer
        lengths: dict[type, Callable[[Any], int] | None] = {}
        while stack and seen.pages < self.max_pages:
            piece: list[Any] = []
            longs: list[Any] = []
            refs = 0
            while stack and len(piece) < PIECE and refs < PIECE_REFS:
                obj = stack.pop()
                kind = type(obj)
                length = lengths.get(kind, len)
                if length is len:
                    length = lengths[kind] = length_of(kind)
                size = length(obj) if length is not None else 1
                if size > LONG:
                    longs.append(obj)
                else:
                    piece.append(obj)
                    refs += size
            if piece:
                self._take(_compat.referents(*piece), seen, stack)
                del piece
            for long in longs:  # a container too long for one call: a slice at a time
                for part in slices(long, type(long), notes):
                    self._take(part, seen, stack)
                    del part
                    if pacer.due():
                        pacer.pause()
            del longs
            if pacer.due():
                pacer.pause()

    def _take(self, found: Iterable[Any], seen: Seen, stack: Chunks) -> None:
        """Count what was not seen yet; queue the tracked ones to walk their referents."""
        totals = self.totals
        keep = self.tracked if self.keep else None
        is_tracked = gc.is_tracked
        frame_type = types.FrameType
        pacer = self.pacer
        previous = self.previous
        n = 0
        for obj in found:
            n += 1
            if n % CHECK_EVERY == 0 and pacer.due():
                pacer.pause()
            if not seen.add(id(obj)):
                continue
            kind = type(obj)
            if kind is not frame_type:
                row = totals.get(kind)
                if row is None:
                    row = totals[kind] = [0, 0, _sizer(kind), 0, 0, [], type_name(kind).startswith("leakkit.")]
                if row[6]:  # an object of leakkit's own (a monitor a user keeps): neither counted nor walked
                    continue
                try:
                    size = row[2](obj)
                except Exception:
                    size = 0
                row[0] += 1
                row[1] += size
                self.objects += 1
                if previous is not None and not previous.has(id(obj)):  # not there at the last walk: new
                    row[3] += 1
                    row[4] += size
                    if len(row[5]) < self.samples:
                        row[5].append(obj)
            if is_tracked(obj) or kind is frame_type:  # a running frame is not tracked, yet holds its locals
                stack.append(obj)
                if keep is not None and kind is not frame_type:
                    keep.append(obj)

    def summary(self) -> dict[str, list[int]]:
        """{type name: [count, shallow bytes, count not met by the previous walk, their bytes]}; types
        of the same name add up."""
        out: dict[str, list[int]] = {}
        for kind, row in self.totals.items():
            if row[6]:
                continue
            total = out.setdefault(type_name(kind), [0, 0, 0, 0])
            for i, j in enumerate((0, 1, 3, 4)):
                total[i] += row[j]
        return out

    def sampled(self, name: str) -> list[Any]:
        """Instances of the types called ``name`` the previous walk did not meet (``samples`` a type at most)."""
        return [obj for kind, row in self.totals.items() if type_name(kind) == name for obj in row[5]]

    def release(self) -> None:
        """Drop every reference the walk holds (a piece at a time: the tables of a big heap are big)."""
        self.tracked.clear(self._turn)
        for row in self.totals.values():
            row[5].clear()
        self.totals.clear()
        if self.seen is not None:
            self.seen.clear(self._turn)
            self.seen = None

    def nbytes(self) -> int:
        """The walk's own memory now: its tables, the tracked list, the samples (pointers; the
        objects are the process's), and the id table at its largest."""
        rows = sum(sys.getsizeof(row) + sys.getsizeof(row[5]) for row in self.totals.values())
        return self.seen_bytes + sys.getsizeof(self.totals) + rows + self.tracked.nbytes()
