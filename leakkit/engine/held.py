"""Find the functions that objects hold: what a decorator, a framework or a registry replaced.

A module attribute is often not the function its ``def`` made: ``@click.command()`` leaves a
``Command`` whose ``callback`` holds it (through ``click.pass_obj``'s wrapper), ``@wrapt.decorator``
a ``FunctionWrapper`` proxy, ``functools.partial`` and ``singledispatch`` their own objects, Celery
a task instance of a class it made, Flask the function in ``app.view_functions``, a decorator
class an instance with the function in its ``__dict__``. The function's code still runs on every
call, so bisect must know it.

:func:`held_functions` walks forward from the targets' namespaces to every function reachable
through objects, by the references the objects report to the garbage collector
(``gc.get_referents``: C code that never runs Python code, so no ``__getattr__`` of a proxy, no
property, no lazy object's factory runs), and keeps those the caller accepts. Bounded whatever the
heap holds: at most ``limit`` objects looked at, the first ``fanout`` members of each container,
breadth first (what a namespace holds directly comes first); modules and module namespaces are
never entered (a function's globals lead to every other module), nor frames and generators. Of
a class defined elsewhere only its containers are followed (a class-level registry may hold our
functions; its methods are its own code).
"""
from __future__ import annotations

import collections
import gc
import sys
import types
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .. import _compat
from ..probes import containers as C

LIMIT = 20_000  # objects looked at, per collect
FANOUT = 256  # members of one container (or referents of one object) looked at
_QUEUED = 4 * LIMIT  # objects waiting to be looked at: past this nothing more is queued
_HEAPTYPE = 1 << 9
_CONTAINERS = (dict, list, tuple, set, frozenset, collections.deque)
_NEVER = (types.ModuleType, types.FrameType, types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType,
          types.CodeType, weakref.ReferenceType, type(None), str, bytes, int, float)


@dataclass
class Held:
    """What a walk found: the accepted functions in the order reached, and whether it was cut."""

    functions: list[types.FunctionType] = field(default_factory=list)
    looked_at: int = 0
    cut: bool = False  # the walk stopped at its limit with objects left to look at


def held_functions(roots: Iterable[Any], accept: Callable[[types.FunctionType], bool], *,
                   own_types: Callable[[type], bool], limit: int = LIMIT, fanout: int = FANOUT) -> Held:
    """Functions reachable from ``roots`` through objects, those ``accept`` takes, each once.

    ``own_types(cls)`` says whether a class is one of the targets' own (all of its namespace is
    followed) or another's (only the containers in it are).
    """
    skip = {id(d) for d in map(_compat.module_dict, list(_modules())) if d is not None}
    seen: set[int] = set()
    queue: collections.deque = collections.deque()
    found = Held()

    def push(values: Iterable[Any]) -> None:
        for value in values:
            if len(queue) >= _QUEUED:
                found.cut = True
                return
            if not C.is_a(value, _NEVER) and id(value) not in seen:
                queue.append(value)

    push(roots)
    while queue:
        if len(seen) >= limit:
            found.cut = True
            break
        obj = queue.popleft()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if C.is_a(obj, types.FunctionType):
            if accept(obj):
                found.functions.append(obj)
            push(_function_parts(obj))
        elif C.is_a(obj, type):
            push(_class_parts(obj, own_types(obj), fanout))
        elif C.is_a(obj, dict):
            if id(obj) not in skip:
                for key, value in C.first_members(obj, fanout):
                    push((key, value))
        elif C.is_a(obj, _CONTAINERS):
            push(value for _, value in C.first_members(obj, fanout))
        elif gc.is_tracked(obj):
            try:
                referents = _compat.referents(obj)
            except Exception:  # pragma: no cover - a C type whose traverse refuses
                continue
            push(referents[:fanout])
    found.looked_at = len(seen)
    seen.clear()  # emptied, not deleted: push() still refers to them
    queue.clear()
    del skip
    return found


def _modules() -> list[Any]:
    return list(sys.modules.values())


def _function_parts(func: types.FunctionType) -> list[Any]:
    """What a function holds that may be another function: its closure's contents, defaults and
    attributes (``__wrapped__``, a registry). Not its globals: they are a module's namespace."""
    parts: list[Any] = []
    for cell in func.__closure__ or ():
        try:
            parts.append(cell.cell_contents)
        except ValueError:  # an empty cell
            continue
    parts.extend(func.__defaults__ or ())
    parts.extend((func.__kwdefaults__ or {}).values())
    attrs = C.instance_dict(func)
    if attrs:
        parts.extend(attrs.values())
    return parts


def _class_parts(cls: type, own: bool, fanout: int) -> list[Any]:
    """A class's namespace, all of it for the targets' own classes; of another's only its
    containers (a registry kept on a library class)."""
    if not type.__dict__["__flags__"].__get__(cls) & _HEAPTYPE:
        return []
    try:
        values = list(C.type_dict(cls).values())[:fanout * 4]
    except Exception:  # pragma: no cover
        return []
    return values if own else [v for v in values if C.is_a(v, _CONTAINERS)]


__all__ = ["FANOUT", "LIMIT", "Held", "held_functions"]
