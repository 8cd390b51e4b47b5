"""Spell a chain of objects from a root as code a person would type: ``mod.NAME[key].attr``.

Each edge is read through :mod:`leakkit.probes.containers` (dict members, slots, closures,
suspended frames' locals), never through the objects' own ``__getattr__``/``__repr__``; keys
that are not plain atoms read ``<type>``.
"""
from __future__ import annotations

import collections
import functools
import gc
import sys
import threading
import types
from typing import Any

from ..probes import containers as C

_LOCAL = type(threading.local())
_LRU = functools._lru_cache_wrapper


def short(value: Any) -> str:
    """A short, safe spelling of a key: its repr for plain atoms, ``<type>`` for anything else."""
    if type(value) in (str, int, float, bytes, bool, type(None)):
        text = repr(value)
    elif type(value) is tuple and len(value) <= 4 and all(
            type(v) in (str, int, float, bool, type(None)) or C.is_a(v, type) for v in value):
        parts = [C.type_dict(v).get("__qualname__", "?") if C.is_a(v, type) else repr(v) for v in value]
        text = "(" + ", ".join(map(str, parts)) + ("," if len(parts) == 1 else "") + ")"
    else:
        text = f"<{type(value).__name__}>"
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= 40 else text[:37] + "..."


def class_namespace(cls: type) -> dict | None:
    """The dict behind a class's mappingproxy (what ``gc.get_referrers`` reports), by identity."""
    inner = [r for r in gc.get_referents(C.type_dict(cls)) if type(r) is dict]
    return inner[0] if inner else None


def render(chain: list[Any]) -> str:
    """Spell ``[Root, obj1, ..., objN]`` as code: ``mod.NAME[key].attr``."""
    root, objs = chain[0], chain[1:]
    text = root.name
    if C.is_a(root.obj, dict) and root.name == root.module and objs:  # a module's globals
        key = next((k for k, v in C.iter_members(root.obj) if v is objs[0]), None)
        text += f".{key}" if isinstance(key, str) else f"[{short(key)}]"
        nodes = objs
    else:
        nodes = [root.obj, *objs] if root.obj is not (objs[0] if objs else None) else objs
    i = 0
    while i < len(nodes) - 1:
        parent, child = nodes[i], nodes[i + 1]
        previous = nodes[i - 1] if i else None
        if C.is_a(parent, types.FunctionType) and child is parent.__closure__ and i + 2 < len(nodes):
            cell = nodes[i + 2]
            index = next((k for k, c in enumerate(child) if c is cell), None)
            if index is not None:
                names = parent.__code__.co_freevars
                variable = f" (closure variable {names[index]!r})" if index < len(names) else ""
                text += f".__closure__[{index}].cell_contents{variable}"
                i += 3  # function -> closure tuple -> cell -> contents
                continue
        text += edge(parent, child, previous)
        i += 1
    return text.replace(" (thread-local)[", " (thread-local) [")


def edge(parent: Any, child: Any, previous: Any = None) -> str:
    """How ``parent`` refers to ``child``, spelled as code (``previous`` refers to ``parent``)."""
    if C.is_a(parent, dict):
        if previous is not None and C.is_a(previous, _LOCAL):
            return " (thread-local)"
        own_namespace = previous is not None and (
            (C.is_a(previous, type) and class_namespace(previous) is parent) or C.instance_dict(previous) is parent)
        for key, value in C.iter_members(parent):
            if value is child:
                if own_namespace and isinstance(key, str):
                    return f".{key}"
                if previous is not None and C.is_a(previous, dict) and previous is not parent and \
                        _is_thread_dicts(previous):
                    return f".{key}" if isinstance(key, str) else f"[{short(key)}]"
                return f"[{short(key)}]"
            if key is child:
                return f" (key {short(key)})"
        return " -> dict"
    if C.is_a(parent, (list, tuple, collections.deque)):
        for i, value in C.iter_members(parent):
            if value is child:
                return f"[{i}]"
        return f" -> {type(child).__name__}"
    if C.is_a(parent, (set, frozenset)):
        return f" ∋ {short(child)}"
    if C.is_a(parent, types.CellType):
        return ".cell_contents"
    if C.is_a(parent, types.FunctionType):
        if child is parent.__closure__:
            return ".__closure__"
        if child is parent.__defaults__:
            return ".__defaults__"
        if child is parent.__kwdefaults__:
            return ".__kwdefaults__"
        if child is C.instance_dict(parent):
            return ""
        return f" -> {type(child).__name__}"
    if C.is_a(parent, types.MethodType):
        return ".__self__" if child is parent.__self__ else ".__func__"
    if C.is_a(parent, (types.CoroutineType, types.GeneratorType, types.AsyncGeneratorType)):
        prefix = "cr" if C.is_a(parent, types.CoroutineType) else "ag" if C.is_a(parent, types.AsyncGeneratorType) else "gi"
        frame = getattr(parent, f"{prefix}_frame", None)
        if frame is not None:
            for key, value in list(frame.f_locals.items()):
                if value is child:
                    return f".{prefix}_frame.f_locals[{key!r}]"
        return " (suspended frame)"
    if C.is_a(parent, _LRU):
        return " (lru_cache table)" if C.is_a(child, dict) else " (lru_cache entry)"
    if C.is_a(parent, _LOCAL):
        return ""
    if C.is_a(parent, type):
        if class_namespace(parent) is child:
            return ""
        for key, value in C.type_dict(parent).items():
            if value is child:
                return f".{key}"
        return f" -> {type(child).__name__}"
    if C.instance_dict(parent) is child:
        return ""
    for key, value in C.attributes(parent):
        if value is child:
            return f".{key}"
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None and C.is_a(parent, asyncio.Task):
        return ".get_coro()"
    return f" -> {type(child).__name__}"


def _is_thread_dicts(obj: Any) -> bool:
    """The table of a ``threading.local``: {weak reference to a thread's dummy: that thread's dict}."""
    keys = [k for k, _ in C.first_members(obj, 3)]
    return bool(keys) and all(type(k).__name__ in ("weakref", "ReferenceType", "_localdummy") for k in keys)
