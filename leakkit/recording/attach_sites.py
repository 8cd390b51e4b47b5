"""Where the objects made during an attach window were allocated, read before tracing stops.

Why a scan of its own: tracemalloc knows an object's allocation site only while it traces, and
under tracing every allocation costs a stack capture, the walk's own too (a whole-heap walk ran
13-27x slower traced on this machine). So the whole-heap walk that measures growth runs after
tracing stops, and the sites are read first, from the few places new objects are found cheaply:

- **the young objects**: the GC's two young generations hold what was made last (a leak that
  goes on always has young instances), and their untracked referents (the ``str``, ``bytes``,
  ``bytearray`` inside a new object);
- **the newest entries of grown holders**: before the window, a bounded walk from the modules'
  globals (by name through dicts and classes, by position among the referents elsewhere) notes
  the length of every container it meets, by its path and id: no reference is kept across the
  window. At its end each path is read again (lookups, no walk) and the holders that grew give
  their newest entries (a ``bytes`` value added to an old module-level dict is found there and
  nowhere else); the few that grew most are held a few seconds more, for their reference paths.

Not ``gc.freeze()`` to list the window's objects: a full collection while frozen resets the
collector's full-collection threshold to the few unfrozen objects, and the next full collection
of the whole heap comes early (a 0.5 s pause on 1.3 M objects here).

What is kept per type name: up to ``per_type`` traced objects' innermost allocation frames and
whole tracebacks (leakkit's own frames dropped), counted; and the grown holders by path. Under
tracing every allocation leakkit makes costs a stack capture, so the scan makes few. Each part
is bounded and cut by the :class:`~.heap_walk.Pacer`.
"""
from __future__ import annotations

import collections
import gc
import itertools
import os
import sys
import types
from collections.abc import Callable
from typing import Any

from .. import _compat
from ..probes import containers as C
from .heap_pacer import Pacer
from .heap_tables import Seen

_OWN = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_SKIP = (types.ModuleType, types.FrameType, types.CodeType, types.BuiltinFunctionType, types.WrapperDescriptorType,
         types.MethodDescriptorType, types.GetSetDescriptorType, types.MemberDescriptorType)
_CONTAINERS = (dict, list, set, collections.deque)
SPAN = 256  # newest entries looked at in a grown holder
CHILDREN = 2000  # children of one object the census looks at
_SEQUENCES = (list, tuple, set, frozenset, collections.deque)
MIN_LEN = 8  # shorter containers are not noted: instance dicts, small lists; a holder worth naming is longer


def _children(obj: Any, kind: str) -> list[tuple[tuple, Any]]:
    """(step, child) of ``obj``, at most :data:`CHILDREN`: a dict's string keys and a class's
    attributes by name; an object's referents by position. Not the members of a list, tuple or
    set (a holder, not a namespace: its own length is what the census notes). Never
    ``obj.__dict__``: reading it makes a dict for an object that had none (a function, a 3.11+
    instance with inline values), a change to the process."""
    if type(obj) is dict:
        return [((kind, k), v) for k, v in itertools.islice(dict.items(obj), CHILDREN) if type(k) is str]
    if C.is_a(obj, type):
        return [(("attr", k), v) for k, v in itertools.islice(C.type_dict(obj).items(), CHILDREN) if type(k) is str]
    if C.is_a(obj, _SKIP) or C.is_a(obj, _SEQUENCES) or not gc.is_tracked(obj):
        return []
    refs = _compat.referents(obj)
    return [(("ref", i), r) for i, r in enumerate(refs[:CHILDREN]) if gc.is_tracked(r) and not C.is_a(r, type)]


def census(pacer: Pacer, *, limit: int = 50_000, depth: int = 5) -> dict[tuple, tuple[int, int, int]]:
    """{(module, step, ...): (id, length, id of its type)} of the containers of at least
    :data:`MIN_LEN` entries reached from a module's globals (by name through dicts and classes, by
    position through other objects), at most ``depth`` steps and ``limit`` objects in.

    No reference is kept, and nothing the collector tracks piles up: the table holds tuples of
    strings and ints (the collector untracks them), the frontier is three flat lists. Tens of
    thousands of tracked tuples kept for seconds each survived into the old generation and brought
    the process's full collections early: four of 0.3-0.8 s on a 1.1 M-object heap.
    """
    table: dict[tuple, tuple[int, int, int]] = {}
    seen = Seen()
    paths: list[tuple] = []
    objs: list[Any] = []
    kinds: list[str] = []
    for name, module in list(sys.modules.items()):
        space = _compat.module_dict(module) if module is not None and not name.startswith("leakkit") else None
        if space is not None and seen.add(id(space)):
            paths.append((name,))
            objs.append(space)
            kinds.append("attr")
    count = 0
    for _ in range(depth):
        next_paths: list[tuple] = []
        next_objs: list[Any] = []
        for path, obj, kind in zip(paths, objs, kinds, strict=True):
            try:
                children = _children(obj, kind)
            except RuntimeError:  # changed size while read
                continue
            for step, value in children:
                if not seen.add(id(value)):
                    continue
                count += 1
                where = path + (step,)
                if C.is_a(value, _CONTAINERS):
                    n = C.container_len(value)
                    if n >= MIN_LEN:
                        table[where] = (id(value), n, id(type(value)))
                if gc.is_tracked(value) and not C.is_a(value, _SKIP):
                    next_paths.append(where)
                    next_objs.append(value)
                if count % 64 == 0 and pacer.due():
                    pacer.pause()
            del children
            if count >= limit:
                break
        objs.clear()
        paths, objs, kinds = next_paths, next_objs, ["item"] * len(next_objs)
        if count >= limit:
            break
    objs.clear()
    seen.clear()
    return table


def resolve(path: tuple) -> Any:
    """The object a census path leads to now (None if a step is gone): lookups only, no walk."""
    module = sys.modules.get(path[0])
    obj: Any = _compat.module_dict(module) if module is not None else None
    for kind, key in path[1:]:
        if obj is None:
            return None
        try:
            if kind == "ref":
                refs = _compat.referents(obj)
                obj = refs[key] if key < len(refs) else None
            elif type(obj) is dict:
                obj = dict.get(obj, key)
            elif C.is_a(obj, type):
                obj = C.type_dict(obj).get(key)
            else:
                return None
        except Exception:
            return None
    return obj


def spell(path: tuple) -> str:
    """``module.NAME['key']...`` for a census path (``.<n>`` for a step by position)."""
    out = path[0]
    for kind, key in path[1:]:
        out += f"[{key!r}]" if kind == "item" else f".{key}" if kind == "attr" else f".<{key}>"
    return out


class Sites:
    """Per type name: traced objects seen, innermost frames and whole tracebacks; the grown holders."""

    def __init__(self, traceback: Callable[[Any], Any], *, per_type: int = 100) -> None:
        self.traceback = traceback
        self.per_type = per_type
        self.names: dict[type, str] = {}
        self.seen = Seen()
        self.traced: collections.Counter[str] = collections.Counter()
        self.frames: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.stacks: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.holders: list[dict[str, Any]] = []
        self.holder_objects: list[Any] = []  # the holders that grew most, for their reference paths

    def add(self, obj: Any, name_of: Callable[[type], str]) -> bool:
        """Note where ``obj`` was made if it was traced; False if it was not, was seen already, or
        its type has ``per_type`` sites already (under tracing every call costs: keep it short)."""
        name = self.name(type(obj), name_of)
        if self.traced[name] >= self.per_type or not self.seen.add(id(obj)):
            return False
        raw = self.traceback(obj)
        if not raw:
            return False
        stack = tuple((f, line) for f, line in raw if not f.startswith(_OWN))
        if not stack:
            return False
        self.traced[name] += 1
        self.frames[name][stack[0]] += 1
        self.stacks[name][stack] += 1
        return True

    def name(self, kind: type, name_of: Callable[[type], str]) -> str:
        name = self.names.get(kind)
        if name is None:
            name = self.names[kind] = name_of(kind)
        return name

    def of(self, name: str) -> dict[str, Any]:
        """The commonest innermost frame of ``name``'s traced objects, its share, and the commonest
        whole traceback through it (most recent call first)."""
        frames = self.frames.get(name)
        if not frames:
            return {"site": None, "site_share": None, "sampled": 0, "traceback": []}
        (file, line), hits = frames.most_common(1)[0]
        total = sum(frames.values())
        stack = max((s for s in self.stacks[name] if s[0] == (file, line)), key=self.stacks[name].__getitem__)
        return {"site": f"{file}:{line}", "site_share": hits / total, "sampled": total,
                "traceback": [[f, n] for f, n in stack]}

    def release(self) -> None:
        self.seen.clear()
        self.names.clear()
        self.holder_objects.clear()


def scan(table: dict[tuple, tuple[int, int, int]], sites: Sites, pacer: Pacer, *,
         name_of: Callable[[type], str], budget: int = 20_000, keep: int = 5) -> None:
    """Fill ``sites`` from the young objects and the newest entries of the grown holders (see the
    module docstring); ``keep``: how many grown holders stay referenced for their reference paths."""
    young = gc.get_objects(0) + gc.get_objects(1)
    try:
        _note(young, sites, pacer, name_of, budget)
    finally:
        young.clear()
    grown: list[tuple[int, tuple, int]] = []
    for i, (path, (ident, old_len, kind)) in enumerate(table.items()):
        obj = resolve(path)
        if obj is not None and id(obj) == ident and id(type(obj)) == kind:
            n = C.container_len(obj)
            if n > old_len:
                grown.append((n - old_len, path, old_len))
        del obj
        if i % 64 == 0 and pacer.due():
            pacer.pause()
    grown.sort(key=lambda g: g[0], reverse=True)
    for added, path, old_len in grown[:20]:
        holder = resolve(path)
        if holder is None:
            continue
        entries = _newest(holder, old_len)
        kinds: collections.Counter[str] = collections.Counter()
        values = [v for _k, v in entries] + [k for k, _v in entries if not C.is_a(k, int)]
        for value in values:
            kinds[sites.name(type(value), name_of)] += 1
        if pacer.due():
            pacer.pause()
        _note(values, sites, pacer, name_of, budget)
        sites.holders.append({"path": spell(path), "type": name_of(type(holder)), "old_len": old_len,
                              "len": old_len + added, "entries": dict(kinds.most_common(5))})
        if len(sites.holder_objects) < keep:  # long-lived registries: held for seconds, for their paths
            sites.holder_objects.append(holder)
        del entries, values, holder
    grown.clear()


def _newest(container: Any, old_len: int) -> list[tuple[Any, Any]]:
    """The entries most likely added since the census: the newest of a dict (insertion order), the
    tail of a list or deque, a capped sample of a set."""
    added = C.container_len(container) - old_len
    if added <= 0:
        return []
    span = min(added, SPAN)  # under tracing every tuple made here costs a stack capture
    try:
        if C.is_a(container, dict):
            return list(itertools.islice(reversed(dict.items(container)), span))
        if C.is_a(container, list):
            return list(enumerate(list.__getitem__(container, slice(-span, None))))
        if C.is_a(container, collections.deque):
            return list(enumerate(itertools.islice(collections.deque.__reversed__(container), span)))
    except RuntimeError:  # changed size while it was read
        return []
    return C.first_members(container, span)


def _note(objs: list[Any], sites: Sites, pacer: Pacer, name_of: Callable[[type], str], budget: int) -> None:
    """Note each object and the untracked objects it refers to (the bytes inside a new object)."""
    done = 0
    for start in range(0, len(objs), 64):
        piece = objs[start:start + 64]
        for obj in piece:
            if sites.add(obj, name_of):
                done += 1
        for i, ref in enumerate(_compat.referents(*[o for o in piece if not C.is_a(o, _SKIP)])):
            if not gc.is_tracked(ref) and sites.add(ref, name_of):
                done += 1
            if i % 64 == 0 and pacer.due():
                pacer.pause()
        del piece
        if done > budget:
            return
        if pacer.due():
            pacer.pause()
