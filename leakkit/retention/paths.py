"""Bounds of the containers that hold growth, and a shallow walk from the targets' namespaces.

A holder is bounded when something enforces its bound, and only then: its own type
(``deque(maxlen)``, ``lru_cache(maxsize)``, ``Queue(maxsize)``, the ``re`` module's caches), code
that removes entries once its size reaches a limit (:mod:`leakkit.retention.enforced`), or the run
itself, which saw it replace old entries instead of growing (:mod:`leakkit.retention.holders`).
An attribute named like a limit (``maxsize``, ``capacity``, ``max_entries``...) is only *declared*:
it proves nothing (``MemoryHandler(capacity=100)`` without a target never empties its buffer),
and a holder past its declared bound is plainly growing.

The growth-led search (:mod:`leakkit.retention.holders`, :mod:`leakkit.retention.naming`) finds holders that grew. What
it cannot see is memory kept without any container growing: an object replaced by a bigger one
(``LOG += line``). :func:`forward` looks for those, from the targets' namespaces, a few levels
deep, never expanding a big container that did not grow, and never running the objects' code.
"""
from __future__ import annotations

import collections
import contextvars
import functools
import re
import sys
import threading
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..probes import containers as C
from .budget import as_deadline
from .enforced import code_bound
from .spelling import short

# In a notebook, __main__ also holds the shell's own history and objects: not roots of a leak.
_SHELL_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit"})
_SHELL_HISTORY = re.compile(r"^_(?:_{0,2}|i{1,3}|ih|oh|dh|i?\d+)$")  # _, __, ___, _i, _ii, _ih, _oh, _dh, _i5, _5
_SHELL_MODULES = ("IPython", "ipykernel", "jupyter_client", "zmq", "traitlets", "tornado")
_SKIP_GLOBALS = frozenset({"__builtins__", "__loader__", "__spec__", "__doc__", "__name__", "__package__",
                           "__file__", "__cached__", "__path__", "__annotations__"})


def module_namespace(module: Any) -> list[tuple[str, Any]]:
    """A module's globals as (path, value) roots: dunder registries (``__warningregistry__``)
    included, the import machinery's own entries and modules left out."""
    spaces = []
    main = module.__name__ == "__main__"
    space = C.instance_dict(module) or {}
    for key, value in list(space.items()):
        if key in _SKIP_GLOBALS or C.is_a(value, type(sys)):
            continue
        if main and (key in _SHELL_NAMES or _SHELL_HISTORY.match(key)
                     or type(value).__module__.startswith(_SHELL_MODULES)):
            continue
        spaces.append((f"{module.__name__}.{key}", value))
    return spaces


_LOCAL = type(threading.local())
_LRU = functools._lru_cache_wrapper
_ATOMS = (int, float, complex, bool, str, bytes, bytearray, type(None))
_SKIP = (types.FrameType, types.ModuleType, types.CodeType, type(len))
_LIMIT_NAME = re.compile(r"(?i)(?:^|_)(?:max_?size|maxlen|max_?len|capacity|max_?entries|max_?items|size_?limit|"
                         r"max_?count|cache_?size|limit)$")


@dataclass(frozen=True)
class Bound:
    """A container's maximum size, how full it is, and what says so (``how``):

    * ``implementation``: its type enforces it (``kind``: 'deque(maxlen)', 'lru_cache(maxsize)',
      're cache', 'Queue(maxsize)');
    * ``code``: code that removes entries once the size reaches the limit (``kind``: the test as
      written, ``where``: the function and line);
    * ``observed``: the run saw it replace old entries instead of growing (``where`` says how many);
    * ``declared``: only an attribute named like a limit ('Cls.capacity'): not a bound.
    """

    kind: str
    maxsize: int
    size: int
    how: str = "implementation"
    where: str = ""
    slack: int = 0  # entries over ``maxsize`` the enforcing code allows until its next removal

    @property
    def enforced(self) -> bool:
        return self.how != "declared"

    @property
    def full(self) -> bool:
        return self.size >= self.maxsize

    @property
    def exceeded(self) -> bool:
        """Past the bound: a declared bound that nothing holds it to."""
        return self.size > self.maxsize + self.slack

    def __str__(self) -> str:
        if self.how == "code":
            return f"bound of {self.maxsize} enforced by {self.where} ({self.kind}), holding {self.size}"
        if self.how == "observed":
            return f"bound seen in the run ({self.where}), holding {self.size}"
        if self.how == "declared":
            state = "past it: growing" if self.exceeded else "nothing found enforcing it"
            return f"declared {self.kind}={self.maxsize} ({state}), holding {self.size}"
        if self.kind.endswith(")") and "(" in self.kind:  # lru_cache(maxsize) -> lru_cache(maxsize=128)
            return f"{self.kind[:-1]}={self.maxsize}), holding {self.size}"
        return f"{self.kind}={self.maxsize}, holding {self.size}"


@dataclass(frozen=True)
class RetentionPath:
    """One reference path: ``path`` is what a person would type, root first."""

    path: str
    root: str
    holder_count: int  # new entries found under the same holder
    bound: Bound | None
    how: str  # 'grown', 'forward', 'atexit', 'C'
    holder: str = ""  # the path without the newest entry
    kind: str = ""  # the holder's type
    old_len: int | None = None
    new_len: int | None = None
    kept_bytes: int | None = None  # objects the run made under the new entries
    deep_bytes: int | None = None  # the whole holder
    side: str | None = None  # why it is a side structure (weak references), not the leak

    def __str__(self) -> str:
        return self.path


def _re_caches() -> list[tuple[Any, int]]:
    """The ``re`` module's caches and their bounds: ``_cache`` (``_MAXCACHE``) and, since 3.12,
    ``_cache2`` (``_MAXCACHE2``), read from the module so every version gets its own numbers."""
    module = sys.modules.get("re")
    space = C.instance_dict(module) if module is not None else None
    if space is None:
        return []
    out = []
    for name, limit_name, default in (("_cache", "_MAXCACHE", 512), ("_cache2", "_MAXCACHE2", 256)):
        cache = space.get(name)
        if cache is not None:
            limit = space.get(limit_name, default)
            out.append((cache, limit if type(limit) is int else default))
    return out


def bound_of(obj: Any) -> Bound | None:
    """The known bound of a container, or None when it has none (or we do not know it)."""
    if C.is_a(obj, collections.deque) and obj.maxlen is not None:
        return Bound("deque(maxlen)", obj.maxlen, len(obj))
    if C.is_a(obj, _LRU):
        try:
            info = obj.cache_info()
        except Exception:
            return None
        if info.maxsize is not None:
            return Bound("lru_cache(maxsize)", info.maxsize, info.currsize)
        return None
    for cache, limit in _re_caches():
        if obj is cache:
            return Bound("re cache", limit, C.container_len(obj))
    aio = sys.modules.get("asyncio")
    if aio is not None and C.is_a(obj, aio.Queue):  # put_nowait refuses past maxsize, put waits
        maxsize = (C.instance_dict(obj) or {}).get("_maxsize")
        inner = (C.instance_dict(obj) or {}).get("_queue")
        if type(maxsize) is int and maxsize > 0:
            return Bound("asyncio.Queue(maxsize)", maxsize, max(C.container_len(inner), 0))
        return None
    queue = sys.modules.get("queue")
    if queue is not None and C.is_a(obj, queue.Queue):
        maxsize = C.instance_dict(obj).get("maxsize") if C.instance_dict(obj) is not None else None
        if type(maxsize) is int and maxsize > 0:
            return Bound("Queue(maxsize)", maxsize, obj.qsize())
        return None
    return _attribute_bound(obj)


def _attribute_bound(obj: Any) -> Bound | None:
    """A limit declared in a plain int attribute (``capacity``, ``maxsize``...) of an object holding
    its entries in a builtin container (the size is that container's length): declared, not enforced."""
    if C.is_a(obj, _ATOMS + _SKIP + (type, dict, list, set, tuple)):
        return None
    attrs = list(C.attributes(obj))
    limit = None
    for name, value in attrs:
        if type(value) is int and value > 0 and _LIMIT_NAME.search(name):
            limit = (name.rsplit("__", 1)[-1], value)
            break
    if limit is None:
        return None
    sizes = [C.container_len(v) for _, v in attrs if C.container_len(v) >= 0]
    if not sizes:
        return None
    return Bound(f"{type(obj).__name__}.{limit[0]}", limit[1], max(sizes), how="declared")


def bounds_along(chain: Iterable[Any]) -> Bound | None:
    """The first container whose type enforces a bound along a chain of objects, else the first
    declared one (which :attr:`Bound.enforced` tells apart)."""
    declared = None
    for obj in chain:
        try:
            found = bound_of(obj)
        except Exception:
            found = None
        if found is not None and found.enforced:
            return found
        declared = declared or found
    return declared


def split_bound(bound: Bound | None) -> tuple[Bound | None, Bound | None]:
    """(the bound if something enforces it, the bound if it is only declared)."""
    if bound is None:
        return None, None
    return (bound, None) if bound.enforced else (None, bound)


def holder_bound(chain: list[Any], *, deadline: Any, trees: dict | None = None) -> Bound | None:
    """The bound of ``chain[-1]``, a holder reached through ``chain`` (``[Root, ..., holder]``):
    its type's or a container's along the chain, else the one code enforces on it
    (:func:`leakkit.retention.enforced.code_bound`), else a declared one."""
    rooted = bool(chain) and type(chain[0]).__name__ == "Root"
    along = bounds_along(chain[1:] if rooted else chain)  # the root (a module's globals) bounds nothing
    if along is not None and along.enforced:
        return along
    found = code_bound(chain, deadline=deadline, trees=trees) if chain else None
    if found is not None:
        return Bound(found.source, found.limit, found.size, how="code", where=found.where, slack=found.slack)
    return along


# -- the shallow forward walk ----------------------------------------------------------------------
def _entries(obj: Any, newest: int | None) -> list[tuple[Any, Any]]:
    """A container's entries, or only its ``newest`` (a set's first: it has no order)."""
    if newest is None:
        return C.members(obj)
    if C.is_a(obj, (set, frozenset)):
        return C.first_members(obj, newest)
    return C.newest_members(obj, newest)


def _children(obj: Any, own_modules: set[str], newest: int | None = None) -> Iterable[tuple[str, Any]]:
    """(label, child) pairs a person could type, for the kinds of holders leaks live in; of a big
    container that grew, only its ``newest`` entries."""
    if C.is_a(obj, dict):
        for key, value in _entries(obj, newest):
            yield f"[{short(key)}]", value
            if not C.is_a(key, (int, float, bool, type(None))):
                yield f"[{short(key)}]", key  # the key is part of the entry it names
    elif C.is_a(obj, (list, tuple, collections.deque)):
        for i, value in _entries(obj, newest):
            yield f"[{i}]", value
    elif C.is_a(obj, (set, frozenset)):
        for value, _ in _entries(obj, newest):
            yield f" ∋ {short(value)}", value
    elif C.is_a(obj, type):
        try:
            module = type.__dict__["__module__"].__get__(obj, type)
        except Exception:
            return
        if module in own_modules:
            for key, value in list(C.type_dict(obj).items()):
                if not (key.startswith("__") and key.endswith("__")):
                    yield f".{key}", value
    elif C.is_a(obj, types.FunctionType):
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
            yield from ((f".{k}", v) for k, v in C.attributes(obj))
    elif C.is_a(obj, _LRU):
        import gc

        own = C.instance_dict(obj)
        wrapped = own.get("__wrapped__") if own is not None else None
        for value in gc.get_referents(obj):
            if value is not wrapped and not C.is_a(value, (dict, types.FunctionType)):
                yield " (lru_cache entry)", value
            elif C.is_a(value, dict) and value is not own:
                yield " (lru_cache table)", value
        if wrapped is not None:
            yield from _children(wrapped, own_modules)
    elif C.is_a(obj, contextvars.ContextVar):
        try:
            yield ".get()", obj.get()
        except LookupError:
            return
    elif C.is_a(obj, types.MethodType):
        yield ".__self__", obj.__self__
    elif C.is_a(obj, functools.partial):
        yield ".func", obj.func
        for i, value in enumerate(obj.args):
            yield f".args[{i}]", value
        for key, value in obj.keywords.items():
            yield f".keywords[{key!r}]", value
    elif C.is_a(obj, _LOCAL):
        import gc

        # Every thread's attributes, not just this thread's: the per-thread dicts hang off the
        # local object's table of {weak reference to the thread's dummy: that thread's dict}.
        for table in gc.get_referents(obj):
            if C.is_a(table, dict):
                for _, per_thread in C.members(table):
                    if C.is_a(per_thread, dict):
                        for key, value in C.members(per_thread):
                            yield f".{key}", value
    elif not C.is_a(obj, _ATOMS + _SKIP):
        yield from ((f".{k}", v) for k, v in C.attributes(obj))


def forward(namespaces: list[tuple[str, Any]], attribute: Callable[[Any], str | None], *, own_modules: set[str],
            grown: set[int], max_depth: int = 4, max_nodes: int = 50_000, big: int = 1000,
            deadline: Any = None) -> dict[str, list[tuple[str, list[Any], int]]]:
    """Breadth-first from named roots to objects ``attribute(obj)`` names (None for the others).

    A container longer than ``big`` is expanded only if it grew (``grown``: ids): the standing
    heap costs nothing. Returns ``{name: [(path, chain, hits under the same holder), ...]}``.
    """
    queue: collections.deque = collections.deque()
    seen: set[int] = set()
    for name, value in namespaces:
        queue.append((value, name, 1, None, (value,)))
    hits: dict[str, dict[str, list]] = {}
    nodes = 0
    while queue and nodes < max_nodes:
        obj, path, depth, holder_path, chain = queue.popleft()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        nodes += 1
        if deadline is not None and nodes % 256 == 0 and as_deadline(deadline).over():
            break
        key = attribute(obj) if depth > 1 else None
        if key is not None:
            holders = hits.setdefault(key, {})
            holder = holder_path or path
            entry = holders.get(holder)
            if entry is None:
                holders[holder] = [path, list(chain), 1]
            else:
                entry[2] += 1
                entry[0], entry[1] = path, list(chain)
            continue
        if depth >= max_depth or C.is_a(obj, _ATOMS):
            continue
        length = C.container_len(obj)
        if length > big and id(obj) not in grown:
            continue
        try:
            for label, child in _children(obj, own_modules, big if length > big else None):
                if id(child) not in seen and not C.is_a(child, _SKIP):
                    queue.append((child, path + label, depth + 1, path, chain + (child,)))
                    if len(queue) % 256 == 0 and (len(queue) + nodes >= max_nodes or (
                            deadline is not None and as_deadline(deadline).over())):
                        break
        except Exception:  # a container that changes or misbehaves while walked: skip it
            continue
    return {key: sorted((tuple(v) for v in holders.values()), key=lambda item: -item[2])
            for key, holders in hits.items()}
