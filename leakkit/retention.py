"""Reference paths from roots a person can type (module globals, class attributes, closures...)
down to leaked objects, and the bound of the container that holds them, if it has one.

Two searches, because each misses what the other finds:

* **forward** from the namespaces of the target modules and classes, through containers,
  instance attributes, closures, defaults, ``lru_cache`` entries, context variables and thread
  locals. It sees containers the GC does not track (a dict of strings), which no referrer query
  can find.
* **backward** from a sample of leaked objects with ``gc.get_referrers``, one heap scan per level
  for the whole frontier, until a module namespace is reached: roots outside the targets (the
  logging manager, another module's registry, a set of tasks, a thread-local).
"""
from __future__ import annotations

import asyncio
import collections
import contextvars
import functools
import gc
import re
import sys
import threading
import time
import tracemalloc
import types
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import _compat

_LOCAL = type(threading.local())
_LRU = functools._lru_cache_wrapper
_TASK = asyncio.Task


def _attrs(obj: Any) -> Any:
    """``obj.__dict__`` without running the object's own ``__getattr__`` (a memory tool must not
    trigger side effects: ctypes' library loaders open a shared library on any unknown name)."""
    try:
        return object.__getattribute__(obj, "__dict__")
    except Exception:
        return None
_ATOMS = (int, float, complex, bool, str, bytes, bytearray, type(None))
# re's compiled-pattern caches and the module constants bounding them: _cache (_MAXCACHE, 512),
# and since 3.12 also _cache2 (_MAXCACHE2, 256), a smaller LRU in front of it.
_RE_CACHES = (("_cache", "_MAXCACHE"), ("_cache2", "_MAXCACHE2"))
_SKIP_TYPES = (types.FrameType, types.ModuleType, types.CodeType)


@dataclass(frozen=True)
class Bound:
    """A container with a known maximum size, and how full it is."""

    kind: str  # 'deque(maxlen)', 'lru_cache(maxsize)', 're cache', 'Queue(maxsize)'
    maxsize: int
    size: int

    @property
    def full(self) -> bool:
        return self.size >= self.maxsize

    def __str__(self) -> str:
        return f"{self.kind}={self.maxsize}, holding {self.size}"


@dataclass(frozen=True)
class RetentionPath:
    """One reference path: ``path`` is what a person would type, root first."""

    path: str
    root: str
    holder_count: int  # leaked objects found under the same holder
    bound: Bound | None
    how: str  # 'forward' or 'backward'

    def __str__(self) -> str:
        return self.path


def bound_of(obj: Any) -> Bound | None:
    """The known bound of a container, or None when it has none (or we do not know it)."""
    if isinstance(obj, collections.deque) and obj.maxlen is not None:
        return Bound("deque(maxlen)", obj.maxlen, len(obj))
    if isinstance(obj, _LRU):
        try:
            info = obj.cache_info()
        except Exception:
            return None
        if info.maxsize is not None:
            return Bound("lru_cache(maxsize)", info.maxsize, info.currsize)
        return None
    for name, limit in _RE_CACHES:
        cache = getattr(re, name, None)
        if cache is not None and obj is cache:
            return Bound("re cache", getattr(re, limit, 512), len(obj))
    queue = sys.modules.get("queue")
    if queue is not None and isinstance(obj, queue.Queue) and obj.maxsize > 0:
        return Bound("Queue(maxsize)", obj.maxsize, obj.qsize())
    return None


def _untraceable_instance(obj: Any) -> bool:
    """An instance with a managed dict, which tracemalloc.get_object_traceback misses on 3.11."""
    flags = type(obj).__flags__
    return bool(flags & (1 << 4)) and not isinstance(obj, type) and tracemalloc.get_object_traceback(obj) is None


def object_traceback(obj: Any) -> tracemalloc.Traceback | None:
    """Where ``obj`` was allocated; for an instance tracemalloc cannot look up (3.11's managed-dict
    pre-header), where its first traceable attribute was: made by the same constructor call."""
    tb = tracemalloc.get_object_traceback(obj)
    if tb is not None or not (type(obj).__flags__ & (1 << 4)) or isinstance(obj, type):
        return tb
    attrs = _attrs(obj)
    if isinstance(attrs, dict):
        for value in list(attrs.values()):
            if not isinstance(value, (int, float, bool, type(None), type)):
                tb = tracemalloc.get_object_traceback(value)
                if tb is not None:
                    return tb
    return None


def _is_namespace(cls: Any, obj: Any) -> bool:
    """Whether ``obj`` is the dict behind ``cls.__dict__`` (a new mappingproxy at each access, so
    never ``is`` it; the GC shows the real dict as the class's referent on every version)."""
    return (isinstance(cls, type) and type(obj) is dict and any(r is obj for r in gc.get_referents(cls))
            and obj == cls.__dict__)


def _is_future(obj: Any) -> bool:
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and isinstance(obj, asyncio.Future)


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, (str, int, float, bytes, tuple)) else f"<{type(value).__name__}>"
    return text if len(text) <= 40 else text[:37] + "..."


# -- forward search ------------------------------------------------------------------------------
def _children(obj: Any, own_modules: set[str]) -> Iterable[tuple[str, Any]]:
    """(label, child) pairs a person could type, for the kinds of holders leaks live in."""
    if isinstance(obj, dict):
        for key, value in list(obj.items()):
            yield f"[{_short(key)}]", value
            if not isinstance(key, (int, float, bool, type(None))):
                yield f"[{_short(key)}]", key  # the key is part of the entry it names
    elif isinstance(obj, (list, tuple, collections.deque)):
        for i, value in enumerate(list(obj)):
            yield f"[{i}]", value
    elif isinstance(obj, (set, frozenset)):
        for value in list(obj):
            yield f" ∋ {_short(value)}", value
    elif isinstance(obj, type):
        if obj.__module__ in own_modules:
            for key, value in list(vars(obj).items()):
                if not (key.startswith("__") and key.endswith("__")):
                    yield f".{key}", value
    elif isinstance(obj, types.FunctionType):
        if obj.__module__ in own_modules:
            names = obj.__code__.co_freevars
            for i, cell in enumerate(obj.__closure__ or ()):
                try:
                    contents = cell.cell_contents
                except ValueError:
                    continue
                yield f".__closure__[{i}].cell_contents (closure variable {names[i]!r})", contents
            for i, value in enumerate(obj.__defaults__ or ()):
                yield f".__defaults__[{i}]", value
            for key, value in (obj.__kwdefaults__ or {}).items():
                yield f".__kwdefaults__[{key!r}]", value
            for key, value in vars(obj).items():
                yield f".{key}", value
    elif isinstance(obj, _LRU):
        for value in gc.get_referents(obj):
            if value is not obj.__wrapped__ and not isinstance(value, (dict, types.FunctionType)):
                yield " (lru_cache entry)", value
            elif isinstance(value, dict) and value is not _attrs(obj):
                yield " (lru_cache table)", value
        yield from _children(obj.__wrapped__, own_modules)
    elif isinstance(obj, contextvars.ContextVar):
        try:
            yield ".get()", obj.get()
        except LookupError:
            return
    elif isinstance(obj, (types.CoroutineType, types.GeneratorType, types.AsyncGeneratorType)):
        frame = getattr(obj, "cr_frame", None) or getattr(obj, "gi_frame", None) or getattr(obj, "ag_frame", None)
        prefix = "cr" if isinstance(obj, types.CoroutineType) else ("ag" if isinstance(obj, types.AsyncGeneratorType) else "gi")
        if frame is not None:
            for key, value in list(frame.f_locals.items()):
                yield f".{prefix}_frame.f_locals[{key!r}]", value
    elif _is_future(obj):
        coro = obj.get_coro() if isinstance(obj, _TASK) else None
        if coro is not None:
            yield ".get_coro()", coro
    elif isinstance(obj, types.MethodType):
        yield ".__self__", obj.__self__
    elif isinstance(obj, functools.partial):
        yield ".func", obj.func
        for i, value in enumerate(obj.args):
            yield f".args[{i}]", value
        for key, value in obj.keywords.items():
            yield f".keywords[{key!r}]", value
    elif isinstance(obj, _LOCAL):
        # Every thread's attributes, not just this thread's: the per-thread dicts hang off the
        # local object's table of {weakref to the thread's dummy: that thread's dict}.
        for table in gc.get_referents(obj):
            if isinstance(table, dict):
                for per_thread in list(table.values()):
                    if isinstance(per_thread, dict):
                        for key, value in list(per_thread.items()):
                            yield f".{key}", value
    elif not isinstance(obj, _ATOMS + _SKIP_TYPES) and not callable(obj):
        queue = sys.modules.get("queue")
        if queue is not None and isinstance(obj, queue.Queue):
            yield ".queue", obj.queue
            return
        attrs = _attrs(obj)
        if isinstance(attrs, dict):
            for key, value in list(attrs.items()):
                yield f".{key}", value
        slots = type(obj).__dict__.get("__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            if isinstance(slot, str):
                try:
                    yield f".{slot}", object.__getattribute__(obj, slot)
                except Exception:  # an empty slot
                    continue


def forward(namespaces: list[tuple[str, Any]], attribute: Any, *, own_modules: set[str],
            max_depth: int = 7, max_nodes: int = 300_000, deadline: float | None = None,
            found: list | None = None) -> dict[Any, list[list]]:
    """Breadth-first from named roots to objects ``attribute(obj)`` names (it returns None for others).

    Returns ``{name: [[path, chain, hits under the same holder], ...]}``, holders with most hits
    first. The path of a holder is its newest entry (the last one met). ``found``, when given,
    receives every hit as ``(object, name)``.
    """
    queue: collections.deque = collections.deque()
    seen: set[int] = set()
    for name, value in namespaces:
        queue.append((value, name, 1, None, None, (value,)))
    hits: dict[Any, dict[str, list]] = {}
    nodes = 0
    while queue and nodes < max_nodes:
        obj, path, depth, holder_path, grand_path, chain = queue.popleft()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        nodes += 1
        if deadline and nodes % 512 == 0 and time.perf_counter() > deadline:
            break
        key = attribute(obj) if depth > 1 else None
        if key is not None:
            if found is not None and len(found) < 50_000:
                found.append((obj, key))
            if (grand_path is not None and path[len(holder_path):].startswith(".")
                    and _untraceable_instance(chain[-2])):
                # The object is an attribute of an instance whose allocation tracemalloc cannot
                # look up (3.11's pre-header): the instance is what its holder keeps.
                path, holder_path, chain = holder_path, grand_path, chain[:-1]
            holders = hits.setdefault(key, {})
            holder = holder_path or path
            entry = holders.get(holder)
            if entry is None:
                holders[holder] = [path, list(chain), 1]
            else:
                entry[2] += 1
                entry[0], entry[1] = path, list(chain)
            continue
        if depth >= max_depth or isinstance(obj, _ATOMS):
            continue
        try:
            for label, child in _children(obj, own_modules):
                if id(child) not in seen and not isinstance(child, _SKIP_TYPES):
                    queue.append((child, path + label, depth + 1, path, holder_path, chain + (child,)))
        except Exception:  # a container that changes or misbehaves while walked: skip it
            continue
    return {key: sorted(holders.values(), key=lambda item: -item[2]) for key, holders in hits.items()}


# -- backward search -----------------------------------------------------------------------------
def module_dicts() -> dict[int, str]:
    """id(module.__dict__) -> module name, for every loaded module but leakkit's."""
    return {id(vars(m)): name for name, m in list(sys.modules.items())
            if m is not None and hasattr(m, "__dict__") and not name.startswith("leakkit")}


def _label(parent: Any, child: Any) -> str:
    """How ``parent`` refers to ``child``, spelled as code."""
    if isinstance(parent, dict):
        for key, value in parent.items():
            if value is child:
                if isinstance(key, str) and key.isidentifier() and getattr(parent, "_leakkit_attrs", False):
                    return f".{key}"
                return f"[{_short(key)}]"
            if key is child:
                return f" (key {_short(key)})"
        return " -> dict"
    if isinstance(parent, (list, tuple, collections.deque)):
        for i, value in enumerate(parent):
            if value is child:
                return f"[{i}]"
    if isinstance(parent, (set, frozenset)):
        return f" ∋ {_short(child)}"
    if isinstance(parent, types.CellType):
        return ".cell_contents"
    if isinstance(parent, types.FunctionType):
        if child is parent.__closure__:
            return ".__closure__"
        if child is parent.__defaults__:
            return ".__defaults__"
        if child is parent.__kwdefaults__:
            return ".__kwdefaults__"
        if child is _attrs(parent):
            return ""
    if isinstance(parent, types.MethodType):
        return ".__self__" if child is parent.__self__ else ".__func__"
    if isinstance(parent, (types.CoroutineType, types.GeneratorType, types.AsyncGeneratorType)):
        frame = getattr(parent, "cr_frame", None) or getattr(parent, "gi_frame", None) or getattr(parent, "ag_frame", None)
        if frame is not None:
            for key, value in frame.f_locals.items():
                if value is child:
                    return f".{'cr' if isinstance(parent, types.CoroutineType) else 'gi'}_frame.f_locals[{key!r}]"
        return " (suspended frame)"
    if isinstance(parent, _LRU):
        return " (lru_cache entry)"
    if isinstance(parent, type):
        if _is_namespace(parent, child):
            return ""
        for key, value in vars(parent).items():
            if value is child:
                return f".{key}"
    attrs = _attrs(parent)
    if isinstance(attrs, dict):
        if attrs is child:
            return ""
        for key, value in attrs.items():
            if value is child:
                return f".{key}"
    if type(parent).__name__ == "Task":
        return "._coro" if isinstance(parent, _TASK) and child is parent.get_coro() else " -> task"
    return f" -> {type(child).__name__}"


def backward(samples: list[Any], ignore: set[int], *, roots: dict[int, str], max_depth: int = 14,
             max_paths: int = 5, deadline: float | None = None, extra: list[Any] = ()) -> list[list[Any]]:
    """Chains [root_dict_or_obj, ..., sample] found by walking referrers; module dicts end a chain."""
    down: dict[int, Any] = {}
    keep: dict[int, Any] = {id(o): o for o in samples}
    frontier = list(samples)
    own = {id(down), id(keep), id(frontier), id(samples), id(extra)} | ignore
    chains: list[list[Any]] = []
    for _ in range(max_depth):
        if not frontier or len(chains) >= max_paths or (deadline and time.perf_counter() > deadline):
            break
        wanted = {id(o) for o in frontier}
        referrers = gc.get_referrers(*frontier)
        own.add(id(referrers))
        for container in extra:  # untracked holders the GC cannot report
            if id(container) not in keep and any(id(x) in wanted for x in _members(container)):
                referrers.append(container)
        nxt: list[Any] = []
        own.add(id(nxt))
        for ref in referrers:
            rid = id(ref)
            if rid in own or rid in keep or isinstance(ref, types.FrameType):
                continue
            child = next((c for c in _members_or_referents(ref) if id(c) in wanted), None)
            if child is None:
                continue
            keep[rid] = ref
            down[rid] = child
            if rid in roots:
                chain = [ref]
                node = ref
                while id(node) in down:
                    node = down[id(node)]
                    chain.append(node)
                chains.append(chain)
                if len(chains) >= max_paths:
                    break
                continue
            nxt.append(ref)
        frontier = nxt
        del referrers
    del keep, down, frontier
    return chains


def _members(container: Any) -> Iterable[Any]:
    if isinstance(container, dict):
        for key, value in container.items():
            yield key
            yield value
    elif isinstance(container, (list, tuple, set, frozenset, collections.deque)):
        yield from container


def _members_or_referents(obj: Any) -> Iterable[Any]:
    return _compat.referents(obj) if gc.is_tracked(obj) or not isinstance(obj, (dict, tuple)) else _members(obj)


def render(chain: list[Any], roots: dict[int, str]) -> str:
    """Spell a backward chain [module dict, ..., leaked object] as code."""
    head = chain[0]
    text = roots.get(id(head), f"<{type(head).__name__}>")
    previous = None
    for parent, child in zip(chain, chain[1:], strict=False):
        if id(parent) in roots:
            key = next((k for k, v in parent.items() if v is child), None)
            text += f".{key}" if key is not None else " -> ?"
        elif isinstance(parent, dict) and previous is not None and (_attrs(previous) is parent
                                                                     or _is_namespace(previous, parent)):
            key = next((k for k, v in parent.items() if v is child), None)
            text += f".{key}" if isinstance(key, str) else f"[{_short(key)}]"
        elif isinstance(parent, dict) and parent and all(type(k).__name__ == "weakref" or isinstance(k, type(None))
                                                          for k in list(parent)[:3]) and \
                type(previous).__name__ == "_local":
            text += " (thread-local)"
        elif isinstance(parent, dict) and previous is not None and type(previous).__name__ != "_local":
            text += _label(parent, child)
        else:
            text += _label(parent, child)
        previous = parent
    return text.replace(" (thread-local)[", " (thread-local) [")


def bounds_along(chain: Iterable[Any]) -> Bound | None:
    """The first container with a known bound along a chain of objects."""
    for obj in chain:
        found = bound_of(obj)
        if found is not None:
            return found
    return None


def untracked_holders(namespaces: list[tuple[str, Any]], *, depth: int = 3, limit: int = 10_000) -> list[Any]:
    """Containers under the given roots that the GC does not track (so get_referrers misses them)."""
    out: list[Any] = []
    stack = [(value, 1) for _, value in namespaces]
    seen: set[int] = set()
    while stack and len(seen) < limit:
        obj, level = stack.pop()
        if id(obj) in seen or isinstance(obj, _ATOMS + _SKIP_TYPES):
            continue
        seen.add(id(obj))
        if isinstance(obj, (dict, tuple)) and not gc.is_tracked(obj):
            out.append(obj)
        if level < depth and isinstance(obj, (dict, list, tuple, set, collections.deque)):
            stack.extend((child, level + 1) for child in _members(obj))
    return out
