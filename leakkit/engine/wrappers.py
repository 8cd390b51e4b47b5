"""The counting wrappers bisect puts on target functions, and how they are put back.

A wrapper counts calls and reads the process's RSS (and malloc's bytes in use, when affordable)
around each call of a sync function, charging each call its own share (its callees' growth taken
off): native memory that tracemalloc never sees. Async functions and generators are only counted
(interleaved tasks make per-call memory meaningless). Attributes are written through the base
types, so a module or metaclass that forbids or intercepts ``setattr`` is still patched or left alone.
"""
from __future__ import annotations

import functools
import inspect
import threading
import tracemalloc
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..probes import containers as C
from ..probes import process as probes
from ..probes.malloc import malloc_in_use


@dataclass
class Patch:
    """One attribute we replaced: ``setattr(owner, name, original)`` undoes it."""

    owner: Any
    name: str
    original: Any  # the raw attribute (staticmethod/classmethod objects included)
    replacement: Any  # what we put there: restored only if it is still there


@dataclass
class Stats:
    """Per-function counters the wrappers update (thread-safe enough under the GIL)."""

    name: str
    calls: int = 0
    errors: int = 0
    rss_incl: int = 0
    rss_self: int = 0
    malloc_incl: int = 0
    malloc_self: int = 0


class _Stack(threading.local):
    def __init__(self) -> None:
        self.frames: list[list[int]] = []  # per active call: [children's inclusive rss, malloc]


_stack = _Stack()
_rss = probes.rss
_HAS_MALLOC = malloc_in_use() is not None
_traced = tracemalloc.get_traced_memory
_tracing_own = tracemalloc.get_tracemalloc_memory


def _native() -> int:
    """malloc's bytes in use less what tracemalloc traces (Python's own objects, the large ones
    of which malloc holds) and less tracemalloc's own tables (malloc'd, one entry per traced
    block): what C code called from here allocated itself. A call that returns a big dict it built
    (freed later by its caller) is not charged native memory for it."""
    return (malloc_in_use() or 0) - _traced()[0] - _tracing_own()


_malloc = _native if _HAS_MALLOC else (lambda: 0)
_allowance = [0, 0]  # readings allowed before the readings stop (0: no limit), readings made


def _native_counted() -> int:
    global _malloc
    _allowance[1] += 1
    value = _native()
    if _allowance[1] >= _allowance[0]:
        # the last reading from now on: a call under way sees no change for the rest of it
        _malloc = lambda: value  # noqa: E731
    return value


def malloc_readings(on: bool, allowance: int = 0) -> None:
    """Whether the wrappers read malloc's bytes in use around each call. ``mallinfo2`` walks the
    allocator's free lists: in a big, fragmented heap it costs ~100 us to ~2 ms, which a workload
    making thousands of target calls cannot afford; RSS is still read. ``allowance``: at most that
    many readings (a hypothesis test making thousands of target calls per call: its first call ran
    minutes, before any could tell); past it, each reading gives the last value read, so a call
    under way is charged no half change."""
    global _malloc
    _allowance[:] = [allowance, 0]
    _malloc = (_native_counted if allowance else _native) if on and _HAS_MALLOC else (lambda: 0)


def malloc_readings_cut() -> bool:
    """Whether the readings stopped at their allowance."""
    return bool(_allowance[0]) and _allowance[1] >= _allowance[0]


def malloc_reading_cost() -> float:
    """Seconds one ``mallinfo2`` reading takes here, now (the median of 15)."""
    import time

    if not _HAS_MALLOC:
        return 0.0
    times = []
    for _ in range(15):
        t0 = time.perf_counter()
        malloc_in_use()
        times.append(time.perf_counter() - t0)
    return sorted(times)[7]


def enter() -> tuple[int, int, list[int]]:
    """Before a target call: RSS, native bytes, and the call's frame on this thread's stack."""
    frame = [0, 0]
    _stack.frames.append(frame)
    return (_rss() or 0), (_malloc() or 0), frame


def leave(stats: Stats, r0: int, m0: int, frame: list[int], failed: bool) -> None:
    """After a target call: count it, charge it its own growth and its caller the inclusive one."""
    m1 = _malloc() or 0
    incl = (_rss() or 0) - r0
    mincl = m1 - m0
    frames = _stack.frames
    if frames and frames[-1] is frame:
        frames.pop()
    stats.calls += 1
    stats.errors += failed
    stats.rss_incl += incl
    stats.rss_self += incl - frame[0]
    stats.malloc_incl += mincl
    stats.malloc_self += mincl - frame[1]
    if frames:
        frames[-1][0] += incl
        frames[-1][1] += mincl


def wrap(func: Callable, stats: Stats) -> Callable:
    if inspect.iscoroutinefunction(func):
        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            stats.calls += 1  # interleaved tasks make per-call memory meaningless: count only
            return await func(*args, **kwargs)
        return async_wrapper
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        @functools.wraps(func)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            stats.calls += 1
            return func(*args, **kwargs)
        return gen_wrapper

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        r0, m0, frame = enter()
        failed = True
        try:
            result = func(*args, **kwargs)
            failed = False
            return result
        finally:
            leave(stats, r0, m0, frame, failed)
    return wrapper


WRAPPER_CODES = frozenset({wrap.__code__, *(c for c in wrap.__code__.co_consts if isinstance(c, types.CodeType)),
                           enter.__code__, leave.__code__})


def namespace(owner: Any) -> Any:
    if C.is_a(owner, types.ModuleType):
        return C.instance_dict(owner)
    if C.is_a(owner, type):
        return C.type_dict(owner)
    return None


def set_attribute(owner: Any, attr: str, value: Any) -> None:
    """Write a module's or class's attribute without their own ``__setattr__`` (a metaclass or a
    module class may forbid it, or run code on it)."""
    if C.is_a(owner, types.ModuleType):
        C.instance_dict(owner)[attr] = value
    else:
        type.__setattr__(owner, attr, value)


def patch(owner: Any, attr: str, raw: Any, stats: Stats) -> Patch | None:
    """Replace ``owner.attr`` (whose raw value is ``raw``) by a counting wrapper; None when the
    owner refuses (a C type, a read-only namespace): the line map still attributes its memory."""
    try:
        if C.is_a(raw, staticmethod):
            new: Any = staticmethod(wrap(raw.__func__, stats))
        elif C.is_a(raw, classmethod):
            new = classmethod(wrap(raw.__func__, stats))
        else:
            new = wrap(raw, stats)
        set_attribute(owner, attr, new)
    except Exception:
        return None
    return Patch(owner, attr, raw, new)


def restore(patches: list[Patch]) -> None:
    """Put every replaced attribute back, newest first, whatever happened; an attribute the
    workload itself replaced meanwhile is left as the workload set it."""
    originals = {id(p.replacement): p for p in patches}
    owners = {id(p.owner): p.owner for p in patches}
    while patches:
        patch = patches.pop()
        try:
            space = namespace(patch.owner)
            if space is not None and space.get(patch.name) is patch.replacement:
                set_attribute(patch.owner, patch.name, patch.original)
        except Exception:  # pragma: no cover - an owner that changed beyond repair
            pass
    # A wrapper the workload copied under another name (``helper = replacement``) goes too.
    for owner in owners.values():
        try:
            space = namespace(owner)
            for name, value in list(space.items()) if space is not None else ():
                patch = originals.get(id(value))
                if patch is not None and value is patch.replacement:
                    set_attribute(owner, name, patch.original)
        except Exception:  # pragma: no cover
            pass
