"""Growth that is not the test's leak, told by what holds it: the test harness, or a bounded cache.

:mod:`.quiet` keeps what pytest itself holds per call phase as the first run left it; a plugin it
does not know (a fixture keeping a list of every mock it made, a reporter keeping every result)
can still grow with each repeated run. That growth dies with the session and a plain run never
repeats a test: it is not the test's leak. It is told by its holder, not by the test's name: the
containers that grew over a suspect's confirming runs (:func:`leakkit.probes.containers.grown`)
are traced back through their referrers to their owner (a module, a class, a function, an
instance of a class), and the owner's module says whose it is. pytest, pluggy, xdist, leakkit and
the plugins the session registered (conftest files excepted: they are the suite's own code) are
the harness. The same walk finds a container with a known bound on the way (an ``lru_cache``'s
``maxsize``, a ``deque``'s ``maxlen``: :func:`leakkit.retention.paths.bounds_along`): growth held
there stops at the bound (``typing``'s caches fill one entry per new class for 128 runs). Entries
that are weak references (``object.__subclasses__()``, an ABC's cache) are a side structure of
what grows elsewhere and are not counted.
"""
from __future__ import annotations

import collections
import functools
import gc
import re
import threading
import types
import weakref
from array import array
from dataclasses import dataclass
from typing import Any

import pytest

from ..._compat import referents
from ...probes import containers
from ...retention.paths import bounds_along

HARNESS = ("_pytest", "pytest", "pluggy", "xdist", "execnet", "leakkit")
# containers and namespaces: their owner is whoever holds them (a threading.local is a namespace
# per thread: hypothesis keeps its caches' entries in one, under the cache that bounds them)
_PLAIN = (dict, list, tuple, set, frozenset, types.CellType, types.MappingProxyType, collections.deque,
          threading.local)
_LIMIT = re.compile(r"(?i)(?:^|_)(?:max_?size|maxlen|max_?len|capacity|max_?entries|max_?items|size_?limit|"
                    r"max_?count|cache_?size)$")
_MAX_HOLDERS = 8  # the containers that grew most: enough to say whose the growth is
_NO_LIMIT = 1 << 32  # a "limit" this large bounds nothing (sys.maxsize as a default)
_LRU = functools._lru_cache_wrapper
# holders found to be the harness's or a bounded cache's, by id of the walk's start: [start, ..., owner]
# (long-lived by nature: they are kept so that the id stays theirs), looked up once a session
_KNOWN: dict[int, list[Any]] = {}
_KNOWN_MAX = 256
_DEPTH = 6  # referrer levels walked from a container to its owner (a cache's dict, in a thread-local, in its __dict__)


@dataclass
class Held:
    """Whose the growth over a test's confirming runs is: entries added to harness-owned
    containers, to bounded ones and to others, with the largest of the first two described."""

    harness: int = 0
    bounded: int = 0
    other: int = 0
    attributes: int = 0  # attributes objects gained (lazy initialisation): neither held nor a holder's
    holder: str = ""
    bound: str = ""

    def verdict(self, runs: int) -> str | None:
        """``harness`` or ``plateau`` when the growth (at least one entry a run) is held there and
        less than an entry a run anywhere else, else None: the growth may be the test's."""
        if self.other >= runs or self.harness + self.bounded < runs:
            return None
        return "harness" if self.harness >= self.bounded else "plateau"

    def __str__(self) -> str:
        parts = []
        if self.harness:
            parts.append(f"{self.harness} entries in the test harness's containers ({self.holder})")
        if self.bounded:
            parts.append(f"{self.bounded} in a bounded cache ({self.bound})")
        if self.other:
            parts.append(f"{self.other} elsewhere")
        if self.attributes:
            parts.append(f"{self.attributes} attributes set on existing objects")
        return "; ".join(parts) or "no container grew"


def harness_modules(config: pytest.Config) -> tuple[str, ...]:
    """Module name prefixes of the harness: pytest and friends, and every registered plugin's
    module (a plugin package named ``pytest_*`` as a whole), conftest files excepted."""
    names = set(HARNESS)
    for plugin in config.pluginmanager.get_plugins():
        module = plugin if isinstance(plugin, types.ModuleType) else None
        name = module.__name__ if module is not None else getattr(type(plugin), "__module__", None)
        if not isinstance(name, str) or name == "__main__" or name.rsplit(".", 1)[-1] == "conftest":
            continue
        names.add(name)
        top = name.split(".", 1)[0]
        if top.startswith(("pytest_", "_pytest")):
            names.add(top)
    return tuple(sorted(names))


def lengths() -> Any:
    """The length of every container now, and the misses of every bounded ``lru_cache`` (an
    opaque table for :func:`whose`). The heap must not be frozen: frozen objects are not in
    ``gc.get_objects()``."""
    objects = gc.get_objects()
    try:
        return containers.sizes(objects), _lru_misses(containers.exactly(objects, _LRU))
    finally:
        del objects


def _lru_misses(caches: list[Any]) -> array:
    """(id, misses, size) of each of these ``lru_cache`` wrappers with a ``maxsize``, flat in one
    array (one block: the table is held across the test's last run, and its reading must not count
    a block per cache): a full cache takes a new entry (a miss) by dropping its oldest, so its table does not
    grow while it holds the new one."""
    out = array("q")
    for cache in caches:
        try:
            info = cache.cache_info()
        except Exception:  # a cache that cannot say: skipped
            continue
        if info.maxsize:
            out.extend((id(cache), info.misses, info.currsize))
    return out


def _replaced(caches: list[Any], before: array) -> tuple[int, str]:
    """Entries bounded ``lru_cache`` caches took since ``before`` by dropping old ones (misses
    beyond their growth: the growth itself is seen in their tables), and the first such cache's bound."""
    old = {before[i]: (before[i + 1], before[i + 2]) for i in range(0, len(before), 3)}
    added, bound = 0, ""
    for cache in caches:
        if id(cache) not in old:
            continue
        try:
            info = cache.cache_info()
        except Exception:
            continue
        misses, size = old[id(cache)]
        took = info.misses - misses - max(info.currsize - size, 0)
        if info.maxsize and took > 0 and info.currsize >= info.maxsize:
            added += took
            bound = bound or (f"{str(bounds_along([cache]))}: full, {took} old entries dropped for new ones "
                              f"({getattr(cache, '__qualname__', '?')})")
    return added, bound


def whose(table: Any, harness: tuple[str, ...]) -> Held:
    """Which containers grew since ``table`` was taken, and whether their owners are the harness's."""
    table, caches = table if isinstance(table, tuple) else (table, array("q"))
    objects = gc.get_objects()
    try:
        grown = containers.grown(objects, table)
        replaced, replaced_bound = _replaced(containers.exactly(objects, _LRU), caches)
    finally:
        del objects
    ranked = sorted(((containers.container_len(c) - old, c, parent) for c, parent, old in grown),
                    key=lambda row: row[0], reverse=True)[:_MAX_HOLDERS]
    del grown
    ranked = [row for row in ranked if row[0] > 0 and not _weak_entries(row[1], row[0])]
    starts = [parent if parent is not None else container for _, container, parent in ranked]
    known = [_KNOWN.get(id(start)) for start in starts]
    known = [chain if chain is not None and chain[0] is start else None for chain, start in zip(known, starts, strict=True)]
    ignore = {id(ranked), id(starts), id(known), id(_KNOWN)} | {id(row) for row in ranked} | {
        id(chain) for chain in _KNOWN.values()}
    todo = [start for start, chain in zip(starts, known, strict=True) if chain is None]
    looked = iter(_owner_chains(todo, ignore | {id(todo)}, harness) if todo else ())
    chains = [chain if chain is not None else next(looked) for chain in known]
    held = Held()
    for (added, container, parent), chain in zip(ranked, chains, strict=True):
        owner = chain[-1] if chain and _is_owner(chain[-1]) else None
        module = _home(owner) if owner is not None else None
        bound = bounds_along([container, *chain]) or (_limit_of(owner, container) if owner is not None else None)
        if owner is not None and parent is None and not isinstance(owner, (types.ModuleType, type)) \
                and containers.instance_dict(owner) is container:
            held.attributes += added  # an object's own attributes (set lazily): no collection of entries
            continue
        if _within(module, harness):
            held.harness += added
            held.holder = held.holder or f"{type(owner).__qualname__} ({module})"
        elif bound is not None:
            held.bounded += added
            held.bound = held.bound or str(bound)
        else:
            held.other += added
            continue
        if len(_KNOWN) < _KNOWN_MAX and chain:  # the harness's or a bounded holder: looked up once a session
            _KNOWN[id(chain[0])] = chain
    del chains, known, starts, todo, looked
    ranked.clear()
    if replaced:
        held.bounded += replaced
        held.bound = held.bound or replaced_bound
    return held


def _limit_of(owner: Any, container: Any) -> str | None:
    """A size limit the owner keeps in an int attribute (``max_size``, ``capacity``...) that the
    grown container it holds (however deep: a thread-local's list) is within: a bounded cache.
    Only an instance's own attribute counts (a module's ``maxsize`` is ``sys.maxsize``)."""
    if isinstance(owner, (types.ModuleType, type, types.FunctionType, types.MethodType)):
        return None
    for name, value in containers.attributes(owner):
        if type(value) is int and 0 < value < _NO_LIMIT and _LIMIT.search(name.rsplit("__", 1)[-1]):
            size = containers.container_len(container)
            if 0 <= size <= value:
                return f"{type(owner).__qualname__}.{name}={value}, holding {size}"
    return None


def _weak_entries(container: Any, added: int) -> bool:
    """Whether a container's newest entries are all weak references (a side structure)."""
    enabled = gc.isenabled()
    gc.disable()  # a collection while it is copied (a class dying drops its entry from its base's
    try:  # __subclasses__ table) would leave the copy empty: read as not weak, "elsewhere"
        entries = containers.members(container)[-added:]
    finally:
        if enabled:
            gc.enable()
    return bool(entries) and all(isinstance(value, weakref.ReferenceType) for _, value in entries)


def _owner_chains(starts: list[Any], ignore: set[int], harness: tuple[str, ...] = ()) -> list[list[Any]]:
    """For each start, the objects up its referrers to the nearest one that is not a plain
    container: a module, a class, a function or an instance (what a person would say holds it),
    that one last, ``start`` first; a chain ends early (without an owner) when nothing refers to
    it any more. One walk of the heap per level for all the starts together. Of several owners
    at one level, one outside ``harness`` is the owner: growth the harness also reaches (a
    doctest's globals, a copy of its module's, kept by leakkit's baseline) is not the harness's
    alone."""
    chains = [[start] for start in starts]
    frontiers = [[start] for start in starts]
    seen = [{id(start)} for start in starts]
    ignore = ignore | {id(chains), id(frontiers), id(seen)} | {id(c) for c in chains} | {id(f) for f in frontiers}
    for _ in range(_DEPTH):
        waiting = []
        for i, frontier in enumerate(frontiers):
            owners = sorted((obj for obj in frontier if _is_owner(obj)), key=lambda o: _within(_home(o), harness))
            if owners:
                if owners[0] is not chains[i][0]:
                    chains[i].append(owners[0])
                frontier.clear()
            elif frontier:
                waiting.append(i)
        if not waiting:
            break
        wanted: dict[int, list[int]] = {}
        for i in waiting:
            for obj in frontiers[i]:
                wanted.setdefault(id(obj), []).append(i)
        found: dict[int, list[Any]] = {i: [] for i in waiting}
        for ref in gc.get_referrers(*(obj for i in waiting for obj in frontiers[i])):
            if id(ref) in ignore or isinstance(ref, types.FrameType) or ref is wanted or ref is found:
                continue
            for child in referents(ref):
                for i in wanted.get(id(child), ()):
                    if id(ref) not in seen[i] and len(found[i]) < 64:
                        seen[i].add(id(ref))
                        found[i].append(ref)
        for i in waiting:
            frontiers[i][:] = found[i]
            if found[i]:
                chains[i].append(found[i][0])
        del found, wanted
    return chains


def _is_owner(obj: Any) -> bool:
    if isinstance(obj, (types.ModuleType, type, types.FunctionType, types.MethodType)):
        return True
    return not isinstance(obj, _PLAIN) and type(obj).__module__ != "builtins"


def _home(owner: Any) -> str | None:
    """The module an owner belongs to: its own name, a class's or function's module, an instance's class's."""
    if isinstance(owner, types.ModuleType):
        return owner.__name__
    if isinstance(owner, (type, types.FunctionType)):
        return getattr(owner, "__module__", None)
    if isinstance(owner, types.MethodType):
        return getattr(owner.__func__, "__module__", None)
    return getattr(type(owner), "__module__", None)


def _within(module: str | None, prefixes: tuple[str, ...]) -> bool:
    """Whether ``module`` is one of ``prefixes`` or inside one of them."""
    return module is not None and any(module == p or module.startswith(p + ".") for p in prefixes)
