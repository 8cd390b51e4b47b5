"""Look inside objects without running their code, and find the containers that grew.

A memory tool walks objects it did not write: a ``MagicMock`` makes a child on every unknown
attribute, a proxy forwards ``__class__`` and ``__dict__`` to what it wraps, a lazy object loads on
first touch, a dict subclass overrides ``items``. Everything here reads objects through the C
level of their *base* types (``dict.items(d)``, member and getset descriptors found on the type),
never through ``getattr``, ``isinstance`` on arbitrary objects, ``__len__`` or ``__iter__`` of
user classes, so the walk has no side effects and ends.

Growth: :func:`sizes` records the length of every container (lists, dicts, sets, deques,
bytearrays, and the untracked dicts and bytearrays they hold) after bisect's warm-up;
:func:`grown` names those that are longer at the end of the run. The search for what keeps the
leaked memory starts there, so its cost follows what grew, not the size of the standing heap.
"""
from __future__ import annotations

import collections
import gc
import sys
import types
import weakref
from collections.abc import Callable, Iterator
from functools import partial
from itertools import islice
from typing import Any

try:  # one pass in C (leakkit/_containerscan.c); the Python path below gives the same answer
    from . import _containerscan
except ImportError:  # not built: the pure-Python path
    _containerscan = None

_DEQUE = collections.deque
_TYPE_DICT = type.__dict__["__dict__"]  # the real mappingproxy of a class, whatever its metaclass says
_TYPE_MRO = type.__dict__["__mro__"]
_GETSET = types.GetSetDescriptorType
_MEMBER = types.MemberDescriptorType
_MISSING = object()
# Per-type answers; weak keys, so that looking at a class never keeps it alive.
_dict_descr: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_slot_descr: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_C_SIZEOF: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_C_METHODS = (types.MethodDescriptorType, types.WrapperDescriptorType, types.BuiltinFunctionType)


def is_a(obj: Any, cls: type | tuple[type, ...]) -> bool:
    """``isinstance`` by the object's real type: no ``__class__`` lookup (proxies forward it)."""
    return issubclass(type(obj), cls)


def type_dict(cls: type) -> Any:
    """A class's own namespace (mappingproxy), without the metaclass's attribute lookup."""
    return _TYPE_DICT.__get__(cls, type)


def mro(cls: type) -> tuple[type, ...]:
    return _TYPE_MRO.__get__(cls, type)


def static_lookup(cls: type, name: str) -> Any:
    """What ``name`` is on the class or a base, as stored (descriptors are not called)."""
    for klass in mro(cls):
        value = type_dict(klass).get(name, _MISSING)
        if value is not _MISSING:
            return value
    return _MISSING


def instance_dict(obj: Any) -> dict | None:
    """``obj.__dict__`` when the type keeps one the C way (no property, no ``__getattr__``)."""
    tp = type(obj)
    descr = _dict_descr.get(tp, _MISSING)
    if descr is _MISSING:
        found = static_lookup(tp, "__dict__")
        descr = _dict_descr[tp] = found if type(found) in (_GETSET, _MEMBER) else None
    if descr is None:
        return None
    try:
        value = descr.__get__(obj, tp)
    except Exception:
        return None
    return value if type(value) is dict or is_a(value, dict) else None


def slot_values(obj: Any) -> Iterator[tuple[str, Any]]:
    """(name, value) of every filled ``__slots__`` member, read through the member descriptors."""
    tp = type(obj)
    slots = _slot_descr.get(tp)
    if slots is None:
        found = []
        for klass in mro(tp):
            names = type_dict(klass).get("__slots__", ())
            for name in (names,) if isinstance(names, str) else names if isinstance(names, (tuple, list)) else ():
                descr = type_dict(klass).get(name) if isinstance(name, str) else None
                if type(descr) is _MEMBER:
                    found.append((name, descr))
        slots = _slot_descr[tp] = tuple(found)
    for name, descr in slots:
        try:
            yield name, descr.__get__(obj, tp)
        except Exception:  # an empty slot
            continue


def attributes(obj: Any) -> Iterator[tuple[str, Any]]:
    """An instance's attributes (its dict and its slots), read without running its code."""
    attrs = instance_dict(obj)
    if attrs is not None:
        try:
            yield from list(dict.items(attrs))
        except RuntimeError:  # changed size while copied (another thread)
            pass
    yield from slot_values(obj)


def members(obj: Any) -> list[tuple[Any, Any]]:
    """(key, value) of a builtin container's entries; key is the index for sequences, the member
    itself for sets; ``[]`` for anything else. A snapshot: safe if the container changes."""
    try:
        if is_a(obj, dict):
            return list(dict.items(obj))
        if is_a(obj, (list, tuple)):
            return list(enumerate(list.copy(obj) if is_a(obj, list) else tuple.__iter__(obj)))
        if is_a(obj, _DEQUE):
            return list(enumerate(_DEQUE.__iter__(obj)))
        if is_a(obj, (set, frozenset)):
            items = list(set.__iter__(obj) if is_a(obj, set) else frozenset.__iter__(obj))
            return [(item, item) for item in items]
    except RuntimeError:
        return []
    return []


def container_len(obj: Any) -> int:
    """Length of a builtin container through its base type (-1 for anything else)."""
    if is_a(obj, dict):
        return dict.__len__(obj)
    if is_a(obj, list):
        return list.__len__(obj)
    if is_a(obj, set):
        return set.__len__(obj)
    if is_a(obj, bytearray):
        return bytearray.__len__(obj)
    if is_a(obj, _DEQUE):
        return _DEQUE.__len__(obj)
    return -1


def shallow_size(obj: Any) -> int:
    """``sys.getsizeof`` where the type's ``__sizeof__`` is C code; the base size otherwise (a
    Python ``__sizeof__`` is user code, and may lie)."""
    tp = type(obj)
    c_sizeof = _C_SIZEOF.get(tp)
    if c_sizeof is None:
        # only a C slot or C method counts: a mock's ``__sizeof__`` is an object of its own whose
        # call makes a child mock (and each MagicMock has a class of its own)
        method = static_lookup(tp, "__sizeof__")
        c_sizeof = _C_SIZEOF[tp] = type(method) in _C_METHODS
    try:
        return sys.getsizeof(obj) if c_sizeof else object.__sizeof__(obj) + (16 if gc.is_tracked(obj) else 0)
    except Exception:
        return 0


# -- growth ----------------------------------------------------------------------------------
def exactly(objects: list[Any], kind: type) -> list[Any]:
    """The objects in ``objects`` whose type is ``kind`` itself (a subclass's are not)."""
    if _containerscan is not None and hasattr(_containerscan, "exactly"):
        return _containerscan.exactly(objects, kind)
    return [obj for obj in objects if type(obj) is kind]


def sizes(objects: list[Any]) -> Any:
    """The length of every container in ``objects`` (gc.get_objects()) and of the untracked
    containers they hold: an opaque table for :func:`grown`. Keeps no reference."""
    enabled = gc.isenabled()
    gc.disable()  # no collection while the C scan holds raw pointers
    try:
        if _containerscan is not None:
            return _containerscan.sizes(objects, _DEQUE)
        return _sizes_python(objects)
    finally:
        if enabled:
            gc.enable()


def grown(objects: list[Any], table: Any) -> list[tuple[Any, Any, int]]:
    """``(container, parent, old_length)`` of the containers in ``table`` that are longer now;
    ``parent`` is the tracked object holding an untracked container (else None)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        if _containerscan is not None and isinstance(table, bytes):
            return _containerscan.grown(objects, table, _DEQUE)
        return _grown_python(objects, table)
    finally:
        if enabled:
            gc.enable()


def _untracked_containers(obj: Any) -> list[Any]:
    if is_a(obj, types.ModuleType):  # never gc.get_referents(module): gh-122695 on 3.12.0-3.12.5
        return []
    return [r for r in gc.get_referents(obj)
            if not gc.is_tracked(r) and is_a(r, (dict, list, set, bytearray, _DEQUE))]


def _sizes_python(objects: list[Any]) -> dict[int, int]:
    table: dict[int, int] = {}
    for obj in objects:
        n = container_len(obj)
        if n >= 0:
            table[id(obj)] = n
        for ref in _untracked_containers(obj):
            table.setdefault(id(ref), container_len(ref))
    return table


def _grown_python(objects: list[Any], table: dict[int, int]) -> list[tuple[Any, Any, int]]:
    out: list[tuple[Any, Any, int]] = []
    for obj in objects:
        old = table.get(id(obj))
        if old is not None and container_len(obj) > old:
            out.append((obj, None, old))
        for ref in _untracked_containers(obj):
            old = table.get(id(ref))
            if old is not None and container_len(ref) > old:
                out.append((ref, obj, old))
    return out


class AddressSet:
    """Which objects were in a list (by address), built without a Python int per object: under
    tracemalloc each allocation costs a traceback, and ``{id(o) for o in objs}`` on a heavy run's
    100 k objects took a second. Only meaningful while the objects are alive."""

    def __init__(self, objects: list[Any]) -> None:
        if _containerscan is not None:
            self._table: Any = _containerscan.addresses(objects)
            self._has = _containerscan.has
        else:
            self._table = {id(o) for o in objects}
            self._has = None

    def __contains__(self, obj: Any) -> bool:
        if self._has is not None:
            return self._has(self._table, obj)
        return id(obj) in self._table


class Seen:
    """Objects a walk has looked at, by address: ``add(obj)`` is True the first time. In C where
    built: a set of ``id()``s makes an int per object, and under tracemalloc each allocation
    records the whole stack. Only meaningful while the objects are alive."""

    def __init__(self) -> None:
        if _containerscan is not None and hasattr(_containerscan, "seen_new"):
            self.add: Callable[[Any], bool] = partial(_containerscan.seen_add, _containerscan.seen_new())
        else:
            ids: set[int] = set()

            def add(obj: Any) -> bool:
                key = id(obj)
                if key in ids:
                    return False
                ids.add(key)
                return True

            self.add = add


def first_members(obj: Any, n: int) -> list[tuple[Any, Any]]:
    """The first ``n`` of :func:`members`, without copying the rest of a big container."""
    try:
        if is_a(obj, dict):
            return list(islice(dict.items(obj), n))
        if is_a(obj, list):
            return list(enumerate(list.__getitem__(obj, slice(0, n))))
        if is_a(obj, tuple):
            return list(enumerate(tuple.__getitem__(obj, slice(0, n))))
        if is_a(obj, _DEQUE):
            return list(enumerate(islice(_DEQUE.__iter__(obj), n)))
        if is_a(obj, (set, frozenset)):
            items = islice(set.__iter__(obj) if is_a(obj, set) else frozenset.__iter__(obj), n)
            return [(item, item) for item in items]
    except RuntimeError:
        return []
    return []


def newest_members(obj: Any, n: int) -> list[tuple[Any, Any]]:
    """The last ``n`` of :func:`members` of a dict (insertion order) or a list, without copying the rest."""
    try:
        if is_a(obj, dict):
            last = list(islice(reversed(dict.items(obj)), n))
            last.reverse()
            return last
        if is_a(obj, list):
            length = list.__len__(obj)
            start = max(length - n, 0)
            return list(enumerate(list.__getitem__(obj, slice(start, length)), start))
    except RuntimeError:
        return []
    return members(obj)[-n:]


def iter_members(obj: Any) -> Iterator[tuple[Any, Any]]:
    """:func:`members` one at a time, without copying a container of millions (a search for one
    entry stops where it finds it); ends early if the container changes size meanwhile."""
    try:
        if is_a(obj, dict):
            yield from dict.items(obj)
        elif is_a(obj, list):
            yield from enumerate(list.__iter__(obj))
        elif is_a(obj, tuple):
            yield from enumerate(tuple.__iter__(obj))
        elif is_a(obj, _DEQUE):
            yield from enumerate(_DEQUE.__iter__(obj))
        elif is_a(obj, (set, frozenset)):
            for item in set.__iter__(obj) if is_a(obj, set) else frozenset.__iter__(obj):
                yield item, item
    except RuntimeError:
        return
