"""What differs between the CPythons leakkit supports (3.10-3.13), in one place.

* **gc.get_referents on a module** (3.12.0-3.12.5, CPython gh-122695): ``_asyncio``'s module
  traverse visits its free list of future iterators; ``gc.get_referents`` hands those freed
  objects out as live ones, dropping the result frees them a second time, the free list becomes
  a cycle and the next ``gc.collect()`` never returns. :func:`referents` never passes a module
  to ``gc.get_referents`` there (a module's ``__dict__`` stands for its referents).
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


__all__ = ["MODULE_REFERENTS_UNSAFE", "referents", "module_dict", "interpreter_frozen", "freeze"]
