"""The containers that grew since a baseline, each named from a root, with its bound and what
its new entries hold: the growers a trace reports when its memory rises (no tracemalloc needed).

A trace takes every container's length at its baseline (:func:`leakkit.probes.containers.sizes`,
one C pass). When its verdict would be a leak, :func:`grown_holders` finds the containers longer
now, measures what their new entries reach (a bounded walk; an object shared by several counts
once per holder), names the biggest from a root (:mod:`leakkit.retention.naming`) and reads their bound
(:func:`leakkit.retention.paths.holder_bound`: their type's, the code's that removes entries, else
a declared one, which bounds nothing). The verdict then tells the growth bounded containers
explain from the rest, which is the leak.
"""
from __future__ import annotations

import gc
import time
import types
import weakref
from dataclasses import dataclass
from typing import Any

from ..probes import containers as C
from . import naming, spelling
from .holders import lru_of
from .paths import Bound, holder_bound

_WALK = 20_000  # objects walked under one holder's new entries at most
_CANDIDATES = 64  # containers measured at most: those that gained most entries
_SKIP = (type, type(gc), type(len), types.FunctionType, types.CodeType, types.FrameType, weakref.ref)


@dataclass(frozen=True)
class GrownHolder:
    """A container longer than at the baseline: its name, growth, what its new entries hold, its bound."""

    path: str  # from a root: field_service.DNS_CACHE
    root: str
    kind: str
    old_len: int
    new_len: int
    bytes: int  # reached from its new entries (shallow sizes, each object once)
    objects: int
    bound: Bound | None  # enforced: its type, code, or None
    declared: Bound | None = None  # an attribute named like a limit: not a bound

    @property
    def added(self) -> int:
        return self.new_len - self.old_len


def grown_containers(table: Any) -> list[tuple[Any, Any, int, int]]:
    """``(container, parent, length then, length now)`` of the containers longer now than in
    ``table`` (:func:`leakkit.probes.containers.sizes`): taken right after a trace's last
    checkpoint, so that what its report adds afterwards (pandas compiling a regular expression)
    is not counted as the calls' growth."""
    objects = gc.get_objects()
    try:
        grown = C.grown(objects, table)
    finally:
        del objects
    return [(c, p, n, C.container_len(c)) for c, p, n in grown]


def grown_holders(grown: list[tuple[Any, Any, int, int]], *, deadline: float, old: Any = None, top: int = 8,
                  min_bytes: int = 1024, ignore: set[int] | None = None) -> list[GrownHolder]:
    """Of the containers that grew (:func:`grown_containers`), the ``top`` whose new entries gained
    most bytes, named and bounded; leakkit's own left out. ``old``: the tracked objects alive at
    the baseline (an AddressSet): what new entries reach of them is not counted (an entry that
    refers to an old shared object does not make it new). Measuring takes at most two fifths of
    the time to ``deadline``, naming the rest (at least a second: the names are what a person reads)."""
    start = time.perf_counter()
    measuring = start + 0.4 * max(deadline - start, 0.0)
    ignore = set(ignore or ()) | {id(grown)}
    measured = []
    try:
        # the longest growth first: walking every container that gained an entry costs too much
        # in a big heap (a test runner's), and a leak gains an entry or more per call
        candidates = sorted(((now - n, i) for i, (c, p, n, now) in enumerate(grown)
                             if now - n >= 2 and not _ours(c, p)), reverse=True)[:_CANDIDATES]
        for _, i in candidates:
            if time.perf_counter() > measuring:
                break
            container, parent, old_len, now = grown[i]
            # each holder counts what its new entries reach, even what another holder also keeps (a
            # test runner's log capture keeps the same records as the handler that leaks them)
            size, count = _new_bytes(container, old_len, now, C.Seen(), old)
            if size >= min_bytes:
                measured.append((size, count, container, parent, old_len, now))
    finally:
        del grown
    measured.sort(key=lambda m: -m[0])
    measured = measured[:top]
    anchors = [p if p is not None else c for _, _, c, p, _, _ in measured]
    ignore |= {id(measured), id(anchors)}
    naming_deadline = max(deadline, time.perf_counter() + 1.0)
    roots = naming.find_roots(anchors, naming.ModuleIndex(), ignore=ignore, deadline=naming_deadline)
    out = []
    trees: dict = {}
    for (size, count, container, parent, old_len, now), anchor in zip(measured, anchors, strict=True):
        chain = roots.get(id(anchor))
        if chain is None and _held_by_leakkit(anchor, ignore):
            continue
        if chain is not None:
            chain = [*chain, container] if parent is not None else chain
            path, root = spelling.render(chain), chain[0].name
            if root.startswith("leakkit") or _through_leakkit(chain):
                continue
            bound = holder_bound(chain, deadline=max(naming_deadline, time.perf_counter() + 0.5), trees=trees)
        else:
            path, root = f"<{type(container).__name__} whose referrers lead to no root>", "?"
            cache = lru_of(container)  # an lru_cache of a function no root reaches: its own bound
            if cache is not None:
                path = f"<{type(cache).__name__} whose referrers lead to no root> (lru_cache table)"
            bound = holder_bound([x for x in (cache, parent, container) if x is not None], deadline=deadline, trees=trees)
        declared = bound if bound is not None and not bound.enforced else None
        bound = bound if bound is not None and bound.enforced else None
        if bound is None and old is not None:
            young = _young_entries(container, old)
            if young >= 8 and now - old_len <= 0.25 * young:  # it replaced old entries instead of growing
                bound = Bound("observed", now, now, how="observed",
                              where=f"{young - (now - old_len)} older entries replaced while it grew by {now - old_len}")
        out.append(GrownHolder(path, root, type(container).__name__, old_len, now, size, count, bound, declared))
    trees.clear()
    del measured, anchors, roots
    seen: set[str] = set()
    unique = []
    for g in sorted(out, key=lambda g: -g.bytes):  # one row per name (a table reached twice)
        if g.path not in seen:
            seen.add(g.path)
            unique.append(g)
    return [g for g in unique if not _inside(g.path, unique)]


def _inside(path: str, growers: list[GrownHolder]) -> bool:
    """A container inside another grower's new entries (``CACHE['k']`` under ``CACHE``): a dict
    made in the run at the address of an older, shorter one reads as grown; the outer counts it."""
    return any(path != g.path and path.startswith(g.path) and path[len(g.path):len(g.path) + 1] in "[."
               for g in growers)


def _ours(container: Any, parent: Any) -> bool:
    """leakkit's own containers (the trace's recorder and tables) are not the user's growth."""
    for obj in (parent, container):
        if obj is None:
            continue
        module = C.type_dict(type(obj)).get("__module__") if not C.is_a(obj, (dict, list, set)) else None
        if isinstance(module, str) and module.startswith("leakkit"):
            return True
    return False


def _leakkit_type(obj: Any) -> bool:
    module = C.type_dict(type(obj)).get("__module__")
    return isinstance(module, str) and module.startswith("leakkit")


def _through_leakkit(chain: list[Any]) -> bool:
    """A path through leakkit's own state (``traced._recorder._summaries``); through a traced
    function to the user's function it wraps (``traced.__wrapped__``) is the user's."""
    for i, obj in enumerate(chain[1:-1], start=1):
        if not _leakkit_type(obj):
            continue
        own = C.instance_dict(obj) or {}
        wrapped = own.get("__wrapped__")
        rest = chain[i + 1:]
        if wrapped is None or not any(x is wrapped for x in rest):
            return True
    return False


def _held_by_leakkit(obj: Any, ignore: set[int]) -> bool:
    """No root reaches it and leakkit's own objects refer to it (a trace's recorder)."""
    referrers = gc.get_referrers(obj)
    spaces = []  # instance dicts (3.10 keeps attributes in one): whose they are is one level up
    try:
        for ref in referrers:
            if id(ref) in ignore or C.is_a(ref, types.FrameType):
                continue
            if _leakkit_type(ref):
                return True
            if type(ref) is dict:
                spaces.append(ref)
        if spaces:
            owners = gc.get_referrers(*spaces)
            try:
                return any(_leakkit_type(o) and any(C.instance_dict(o) is d for d in spaces) for o in owners)
            finally:
                del owners
        return False
    finally:
        del referrers, spaces


def _new_bytes(container: Any, old_len: int, now: int, seen: Any, old: Any) -> tuple[int, int]:
    """Bytes and objects reached from the container's new entries (an ``lru_cache`` table: from
    what the cache keeps), each object once, old ones not at all."""
    cache = lru_of(container)
    if cache is not None:
        own = C.instance_dict(cache)
        values = [v for v in gc.get_referents(cache) if v is not container and v is not own]
        total, count = _walk(values, seen, old)
        if old is None:  # no way to tell its old entries: its share of them
            share = (now - old_len) / max(now, 1)
            return int(total * share), int(count * share)
        return total, count
    starts = []
    items = C.members(container)
    if C.is_a(container, (dict, list)) and len(items) > now:  # entries added since the snapshot: not the calls'
        items = items[:now]
    added = max(now - old_len, 0)
    span = min(len(items), 2 * added + 16)
    entries = items if C.is_a(container, (set, frozenset)) else items[-span:] if span else []
    for key, value in entries[:50_000]:
        starts.append(value)
        if C.is_a(container, dict):
            starts.append(key)
    return _walk(starts, seen, old)


def _young_entries(container: Any, old: Any, limit: int = 20_000) -> int:
    """Entries (a dict's by value or key) that are objects the collector tracks and that were not
    alive at the baseline: made during the trace. 0 when the container is too long to count."""
    n = C.container_len(container)
    if n < 0 or n > limit:
        return 0
    is_dict = C.is_a(container, dict)
    count = 0
    for key, value in C.members(container):
        for obj in ((value, key) if is_dict else (value,)):
            if gc.is_tracked(obj) and obj not in old:
                count += 1
                break
    return count


def _walk(starts: list[Any], seen: Any, old: Any) -> tuple[int, int]:
    total = count = 0
    stack = [s for s in starts if not C.is_a(s, _SKIP)]
    while stack and count < _WALK:
        obj = stack.pop()
        if not seen.add(obj) or (old is not None and gc.is_tracked(obj) and obj in old):
            continue
        total += C.shallow_size(obj)
        count += 1
        if C.is_a(obj, (str, bytes, int, float, bool, type(None))):
            continue
        try:
            children = gc.get_referents(obj)
        except Exception:
            continue
        stack.extend(c for c in children if not C.is_a(c, _SKIP))
    return total, count


__all__ = ["GrownHolder", "grown_containers", "grown_holders"]
