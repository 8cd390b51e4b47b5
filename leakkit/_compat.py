"""What differs between the CPythons leakkit supports (3.10-3.13), in one place.

* **gc.get_referents on a module** (3.12.0-3.12.5, CPython gh-122695): ``_asyncio``'s module
  traverse visits its free list of future iterators; ``gc.get_referents`` hands those freed
  objects out as live ones, dropping the result frees them a second time, the free list becomes
  a cycle and the next ``gc.collect()`` never returns. :func:`referents` never passes a module
  to ``gc.get_referents`` there (a module's ``__dict__`` stands for its referents).
* **The type attribute cache** (all four) keeps a strong reference to every attribute name it
  caches (4096 entries): names made afresh per lookup (3.10's ``_asyncio`` task wake-up looks
  ``"result"`` up with a new 55-byte string each time) pile up in it for thousands of calls,
  which reads as growth. :func:`settle` clears it before a reading.
* **The per-code opcache** (3.10) is allocated on a function's 1024th run: a step of a few
  hundred bytes per function in the middle of a measurement. :func:`run_past_opcache` runs
  leakkit's own per-call code past it before anything is measured.
* **The permanent generation at start-up** (3.12): the interpreter puts its static types' MRO
  and bases tuples (immortal, ~375) in the permanent generation, so ``gc.get_freeze_count()`` is
  not 0 in a bare interpreter. :func:`freeze` tells those from objects a user froze.
"""
from __future__ import annotations

import gc
import sys
import types
from itertools import compress, repeat
from operator import not_
from typing import Any

# CPython gh-122695, fixed in 3.12.6 and before 3.13.0 (3.13.0b1-rc1 had it too).
MODULE_REFERENTS_UNSAFE = (3, 12, 0) <= sys.version_info[:3] < (3, 12, 6) or (
    sys.version_info[:3] == (3, 13, 0) and sys.version_info.releaselevel != "final")

_MODULE_DICT = types.ModuleType.__dict__["__dict__"]  # the md_dict member: no __getattr__ runs
_IMMORTAL = 1 << 31  # refcounts from here up are immortal objects' (3.12+: 0xFFFFFFFF on 64-bit)
_HEAPTYPE = 1 << 9


def module_dict(module: Any) -> Any:
    """A module's namespace dict, read without running a module subclass's own code."""
    try:
        return _MODULE_DICT.__get__(module)
    except Exception:
        return None


def referents(*objs: Any) -> list[Any]:
    """``gc.get_referents(*objs)``, where a module gives only its ``__dict__`` on the versions on
    which ``gc.get_referents`` of a module can hang the next collection."""
    if not MODULE_REFERENTS_UNSAFE:
        return gc.get_referents(*objs)
    modules = list(map(issubclass, map(type, objs), repeat(types.ModuleType)))
    if not any(modules):
        return gc.get_referents(*objs)
    out = gc.get_referents(*compress(objs, map(not_, modules)))
    out.extend(d for d in map(module_dict, compress(objs, modules)) if d is not None)
    return out


def narrow_referrers(piece: list[Any], wanted: set[int], found: list[Any]) -> None:
    """Append to ``found`` the objects of ``piece`` that refer to one of the ids in ``wanted``:
    halves of the piece are asked in one ``referents`` call each, so a piece with a single
    referrer costs a few calls, not one per object."""
    if len(piece) <= 8:
        found.extend(o for o in piece if not wanted.isdisjoint(map(id, referents(o))))
        return
    half = len(piece) // 2
    for part in (piece[:half], piece[half:]):
        if not wanted.isdisjoint(map(id, referents(*part))):
            narrow_referrers(part, wanted, found)


OPCACHE_RUNS = 1024 if sys.version_info < (3, 11) else 0  # 3.10's opcache_min_runs


def settle() -> None:
    """Drop what the interpreter caches by reference and not for the program (the attribute names
    the type attribute cache holds), so that a reading right after it sees the program's memory.
    The cache refills on the next lookups: a few microseconds, once per reading."""
    clear = getattr(sys, "_clear_type_cache", None)
    if clear is not None:
        clear()


def run_past_opcache(*functions: Any) -> None:
    """Call each zero-argument function enough times that 3.10 has built its opcache (and that of
    everything it calls) before a measurement starts; nothing on other versions."""
    for _ in range(OPCACHE_RUNS + 8):
        for function in functions:
            function()


def interpreter_frozen() -> int:
    """How many objects the interpreter itself put in the permanent generation (3.12: its static
    types' immortal ``__mro__`` and ``__bases__`` tuples; 0 on 3.10, 3.11, 3.13)."""
    if sys.version_info[:2] != (3, 12):
        return 0
    seen: set[int] = set()
    found = 0
    stack: list[type] = [object]
    visited: set[int] = set()
    while stack:
        kind = stack.pop()
        if id(kind) in visited:
            continue
        visited.add(id(kind))
        # Static types only derive from static types: heap types are not walked into.
        stack.extend(sub for sub in type.__subclasses__(kind) if not sub.__flags__ & _HEAPTYPE)
        for tup in (kind.__mro__, kind.__bases__):
            if id(tup) not in seen and gc.is_tracked(tup) and sys.getrefcount(tup) >= _IMMORTAL:
                seen.add(id(tup))
                found += 1
    return found


def freeze() -> bool:
    """``gc.freeze()`` when a later ``gc.unfreeze()`` gives back the state found: the permanent
    generation is empty or holds only the interpreter's own immortal objects (unfreezing those
    changes nothing but the count). Returns whether it froze.

    With objects someone else froze (``gc.freeze()`` before forking workers), it does not: an
    ``unfreeze`` would thaw theirs too. Collections then scan what they left unfrozen.
    """
    before = gc.get_freeze_count()
    if before and before != interpreter_frozen():
        return False
    gc.freeze()
    return True


__all__ = ["MODULE_REFERENTS_UNSAFE", "OPCACHE_RUNS", "referents", "module_dict", "settle", "run_past_opcache",
           "interpreter_frozen", "freeze"]
