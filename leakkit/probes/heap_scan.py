"""The heap scan behind :func:`leakkit.probes.heap.heap_summary`, in bulk: which objects, their type names and sizes.

Why apart from the public functions: this is the machinery that must stay fast and exact (checked
row for row against pympler), and the monitor's sliced summary (:mod:`leakkit.recording.monitor_heap`)
reuses its pieces on one slice of the heap at a time.

The work is one pass in C (``leakkit/probes/_heapscan.c``: each object's type and size, its
untracked referents through ``tp_traverse``, de-duplicated in a pointer table; this module names
its rows, :func:`table_from_scan`), or, where that extension is not built, a handful of bulk calls
(one ``gc.get_referents(*objs)``, ``map`` over builtins, numpy grouping on type codes:
:func:`heap_objects` then :func:`summarize`); never a Python loop per object.

The summary's own lists are made after ``gc.get_objects()`` (whose result leaves itself out),
so they are not counted, as in pympler.
"""
from __future__ import annotations

import gc
import operator
import re
import struct
import sys
import types
from collections.abc import Callable
from itertools import compress, filterfalse, repeat
from operator import attrgetter, not_
from typing import Any

import numpy as np
import pandas as pd

from .. import _compat
from .containers import instance_dict

# pympler.summary's clean-up of every name: drop addresses, unwrap "<class 'x.Y'>" to "x.Y".
_ADDRESS = re.compile(r" at 0x[0-9a-f]+")
_TYPE_REPR = re.compile(r"^<(type|class) '(\S+)'>$")

# 3.10 keeps instance attributes in a separate dict, untracked while it holds only untracked
# values: their values count as the instance's referents, as 3.11+ visit them (inline values).
SEPARATE_INSTANCE_DICTS = sys.version_info < (3, 11)


def _call(function: Callable[[Any], Any], obj: Any) -> Any:
    return function(obj)


# operator.call (3.11+) lets map() call each object's own unbound __sizeof__; 3.10 gets the same
# through a Python function (slower, but a __sizeof__ written in Python is never run either).
_CALL: Callable[..., Any] | None = getattr(operator, "call", _call)


# The names below keep pympler's %-formatting on purpose: "%s" % value differs from an
# f-string when the value is a tuple (a module's __name__ can be anything).
def _module_name(m: Any) -> str:
    # pympler's expression (the eager default included), read from the module's own dict: a module
    # ``__getattr__`` (PEP 562) is user code, and one that raises must not break a heap summary.
    space = instance_dict(m) or {}
    name = space.get("__name__", space.get("__file__", "nameless, id: %d" % id(m)))  # noqa: UP031
    try:
        return "module(%s)" % name  # noqa: UP031
    except Exception:  # a __name__ that is not text, whose __str__ raises
        return "module(nameless, id: %d)" % id(m)  # noqa: UP031


# Types pympler names per object (summary.representations at verbosity 1). dict, list and
# set are in its table too, but their verbosity-1 name is str(type), the per-type path.
PER_OBJECT_NAMES: dict[type, Callable[[list[Any]], list[str]]] = {
    types.FunctionType: lambda objs: ["function (%s)" % n for n in map(attrgetter("__name__"), objs)],  # noqa: UP031
    types.ModuleType: lambda objs: list(map(_module_name, objs)),
    types.FrameType: lambda objs: ["frame (codename: %s)" % c.co_name for c in map(attrgetter("f_code"), objs)],  # noqa: UP031
}


def heap_objects() -> list[Any]:
    """muppy.get_objects(): tracked non-frame objects plus their untracked direct referents, unique by id."""
    # First thing: whatever exists as a tracked object now is counted.
    objs = gc.get_objects()
    refs = untracked = first = None
    try:
        try:
            # isinstance() looks up __class__: it may run user code, and it raises
            # ReferenceError on dead weak proxies, which pympler then skips.
            if any(map(isinstance, objs, repeat(types.FrameType))):
                objs = list(compress(objs, map(not_, map(isinstance, objs, repeat(types.FrameType)))))
        except Exception:
            objs = list(filter(_not_frame, objs))
        refs = _compat.referents(*objs)  # never a module on 3.12.0-3.12.5 (gh-122695)
        if SEPARATE_INSTANCE_DICTS:
            refs.extend(gc.get_referents(*untracked_instance_dicts(objs)))
        untracked = _object_array(filterfalse(gc.is_tracked, refs))
        refs = None
        # Unique by id: sorting the ids beats a set or dict of a million ints by 3x. With
        # the GC off nothing became untracked since the snapshot, so no object is both in
        # objs and here; only the referents need it.
        first = np.unique(_ids(untracked), return_index=True)[1]
        objs.extend(untracked[first].tolist())
        return objs
    finally:
        del objs, refs, untracked, first


def untracked_instance_dicts(objs: list[Any]) -> list[dict]:
    """3.10: the untracked ``__dict__`` of every instance that has one, read through the C API
    (``obj.__dict__`` would create a dict where there is none)."""
    import ctypes

    get_dict_ptr = ctypes.pythonapi._PyObject_GetDictPtr
    get_dict_ptr.restype = ctypes.POINTER(ctypes.c_void_p)
    get_dict_ptr.argtypes = [ctypes.py_object]
    dictoffset = type.__dict__["__dictoffset__"].__get__
    kinds = {kind for kind in set(map(type, objs)) if dictoffset(kind) and not issubclass(kind, type)}
    out: list[dict] = []
    for obj in compress(objs, map(kinds.__contains__, map(type, objs))):
        try:
            pointer = get_dict_ptr(obj)
        except Exception:  # ctypes asks a hostile object for its __class__: its dict is left out
            continue
        if pointer and pointer.contents.value:
            attrs = ctypes.cast(pointer.contents.value, ctypes.py_object).value
            if type(attrs) is dict and not gc.is_tracked(attrs):
                out.append(attrs)
    return out


def summarize(objs: list[Any]) -> pd.DataFrame:
    """pympler's summary.summarize(objs) as a DataFrame, grouped with numpy on type codes."""
    if not len(objs):
        return pd.DataFrame({"type": pd.Series([], dtype=str), "count": np.zeros(0, np.int64), "size": np.zeros(0, np.int64)})
    return summary_table(*summary_rows(objs))


def summary_rows(objs: list[Any]) -> tuple[list[str], list[int], list[int]]:
    """Names, counts and sizes per type (a name may repeat) of a non-empty list: :func:`summarize` before its table.

    Apart so that the monitor can sum slices of the heap without a DataFrame per slice
    (:func:`leakkit.recording.monitor_heap.type_summary`), then make one :func:`summary_table`.
    """
    n = len(objs)
    kinds_all = _object_array(map(type, objs), n)
    # Codes from the types' ids: a metaclass's __eq__ or __hash__ cannot merge two types.
    codes = pd.factorize(_ids(kinds_all))[0]
    k = int(codes.max()) + 1
    # factorize numbers types in order of first appearance, so type j first appears where
    # the running maximum of the codes reaches j.
    firsts = np.searchsorted(np.maximum.accumulate(codes), np.arange(k))
    kinds: list[type] = kinds_all[firsts].tolist()
    kinds_all = None
    counts = np.bincount(codes, minlength=k)
    sizes = _sizes(objs, codes, kinds, [objs[i] for i in firsts.tolist()])
    # bincount sums in float64: exact while a type's total stays below 2**53 bytes.
    totals = np.rint(np.bincount(codes, weights=sizes, minlength=k)).astype(np.int64)

    names: list[str] = []
    row_counts: list[int] = counts.tolist()
    row_sizes: list[int] = totals.tolist()
    per_object_names: list[str] = []
    per_object_sizes: list[int] = []
    members: list[Any] | None = None
    try:
        for code, kind in enumerate(kinds):
            namer = PER_OBJECT_NAMES.get(kind)
            if namer is None:
                names.append(type_name(kind))
                continue
            # Functions, modules and frames are named per object: one row per object,
            # grouped by name below.
            names.append("")
            row_counts[code] = 0
            where = np.flatnonzero(codes == code)
            members = [objs[i] for i in where.tolist()]
            per_object_names.extend(namer(members))
            members = None
            per_object_sizes.extend(sizes[where].tolist())
    finally:
        del members
    cleaned = {name: _clean(name) for name in set(per_object_names)}  # many share a name
    names.extend(map(cleaned.__getitem__, per_object_names))
    row_counts.extend(repeat(1, len(per_object_names)))
    row_sizes.extend(per_object_sizes)
    return names, row_counts, row_sizes


def table_from_scan(scanned: tuple) -> pd.DataFrame:
    """The heap_summary table from ``_heapscan.scan``'s per-type rows and the objects it leaves to name one by one
    (those of the :data:`PER_OBJECT_NAMES` types)."""
    kinds, counts, sizes, named, named_sizes = scanned
    try:
        names = [type_name(kind) for kind in kinds]
        by_type: dict[type, list[int]] = {}
        for i, obj in enumerate(named):
            by_type.setdefault(type(obj), []).append(i)
        for kind, where in by_type.items():
            names.extend(_clean(name) for name in PER_OBJECT_NAMES[kind]([named[i] for i in where]))
            counts.extend(repeat(1, len(where)))
            sizes.extend(named_sizes[i] for i in where)
        return summary_table(names, counts, sizes)
    finally:
        del kinds, named, named_sizes, scanned


def summary_table(names: list[str], counts: list[int], sizes: list[int]) -> pd.DataFrame:
    """The heap_summary table (type, count, size; sorted by size) from rows whose names may repeat."""
    rows = pd.DataFrame({"type": pd.Series(names, dtype=object), "count": counts, "size": sizes})
    rows = rows[rows["count"] > 0]
    # Distinct types can share a name (a class redefined in a notebook); pympler keys by name.
    table = rows.groupby("type", sort=False, as_index=False)[["count", "size"]].sum()
    table = table.astype({"count": np.int64, "size": np.int64})
    table = table.sort_values(["size", "count", "type"], ascending=[False, False, True], kind="mergesort")
    return table.reset_index(drop=True)


def _sizes(objs: list[Any], codes: np.ndarray, kinds: list[type], samples: list[Any]) -> np.ndarray:
    """sys.getsizeof of each object; objs[i] is of type kinds[codes[i]], samples[j] of kinds[j].

    getsizeof is __sizeof__() plus a header that depends on the type only (GC links, managed
    dict pointers). Calling the unbound C method is 6x faster than getsizeof, which parses
    its arguments and binds a method per object: so take each type's header from its
    sample, and call each object's method through operator.call.
    """
    n = len(objs)
    methods: list[Callable[[Any], int]] = []
    headers: list[int] = []
    for kind, sample in zip(kinds, samples, strict=True):
        method = _sizeof_method(kind) if _CALL is not None else None
        header = 0
        if method is None and _CALL is not None and _python_sizeof(kind):
            # A __sizeof__ written in Python is user code: running it from a memory tool can
            # allocate (pandas' keeps weakrefs per call). Count such objects' shallow size.
            methods.append(object.__sizeof__)
            headers.append(_preheader(kind))
            continue
        if method is not None:
            try:
                header = sys.getsizeof(sample) - method(sample)
            except Exception:
                method = None
        methods.append(method if method is not None else sys.getsizeof)
        headers.append(header if method is not None else 0)
    per_object = None
    try:
        if _CALL is not None:
            per_object = _object_array(methods, len(methods))[codes].tolist()
            sizes = np.fromiter(map(_CALL, per_object, objs), dtype=np.int64, count=n)
            sizes += np.asarray(headers, dtype=np.int64)[codes]
            return sizes
        return np.fromiter(map(sys.getsizeof, objs), dtype=np.int64, count=n)
    except Exception:
        # A __sizeof__ that raises (pympler would fail too): such objects count 0 bytes.
        return np.fromiter(map(_getsizeof_or_zero, objs), dtype=np.int64, count=n)
    finally:
        del per_object


def _sizeof_method(kind: type) -> Callable[[Any], int] | None:
    """The C __sizeof__ that sys.getsizeof calls on instances of `kind`, or None if it is not one."""
    if issubclass(kind, type):
        # Before 3.11 a class's GC header depended on the class (tp_is_gc), not only its type.
        return None
    for base in kind.__mro__:
        method = vars(base).get("__sizeof__")
        if method is not None:
            return method if type(method) is types.MethodDescriptorType else None
    return None


def type_name(kind: type) -> str:
    """pympler's name for a type (not cached: a cache would be leakkit's own footprint on the heap).

    ``str(kind)`` runs a metaclass's ``__repr__``; one that raises (or returns no str) gets
    ``type.__repr__``, which reads the class's own slots and runs no user code.
    """
    try:
        text = str(kind)
    except Exception:
        text = None
    return _clean(text if isinstance(text, str) else type.__repr__(kind))


def _python_sizeof(kind: type) -> bool:
    """Whether instances of ``kind`` get their size from a __sizeof__ written in Python."""
    for base in kind.__mro__:
        method = vars(base).get("__sizeof__")
        if method is not None:
            return isinstance(method, types.FunctionType)
    return False


def _preheader(kind: type) -> int:
    """What sys.getsizeof adds to __sizeof__ for instances of ``kind`` (not a metaclass): the GC
    header, and the two pointers before an object with a managed dict (3.11+) or a managed
    weakref list (3.12+: exceptions, ``__weakref__`` in ``__slots__``)."""
    flags = kind.__flags__
    size = 2 * _POINTER if flags & (1 << 14) else 0  # Py_TPFLAGS_HAVE_GC: PyGC_Head
    if flags & _PREHEADER_FLAGS:
        size += 2 * _POINTER
    return size


_POINTER = struct.calcsize("P")
# Py_TPFLAGS_MANAGED_DICT (1 << 4) from 3.11, Py_TPFLAGS_MANAGED_WEAKREF (1 << 3) from 3.12.
_PREHEADER_FLAGS = (0 if sys.version_info < (3, 11) else 1 << 4) | (0 if sys.version_info < (3, 12) else 1 << 3)


def _getsizeof_or_zero(obj: Any) -> int:
    try:
        return sys.getsizeof(obj)
    except Exception:
        return 0


def _not_frame(obj: Any) -> bool:
    """The negation of pympler's muppy.ignore_object: a dead weak proxy counts as a frame (skipped)."""
    try:
        return not isinstance(obj, types.FrameType)
    except ReferenceError:
        return False
    except Exception:  # a __class__ property that raises: its real type decides
        return not issubclass(type(obj), types.FrameType)


def _clean(name: str) -> str:
    """pympler's name clean-up; the substring tests skip the costly re.sub where it cannot match."""
    if " at 0x" in name:
        name = _ADDRESS.sub("", name)
    if name.startswith("<"):
        name = _TYPE_REPR.sub(r"\2", name)
    return name


def _object_array(items: Any, count: int = -1) -> np.ndarray:
    # fromiter stores each item as is; np.array would unpack tuples and lists into dimensions.
    return np.fromiter(items, dtype=object, count=count)


class _Pointers:
    """The pointer buffer of a 1-D object ndarray seen as uintp, i.e. each element's id()."""

    def __init__(self, refs: np.ndarray) -> None:
        self.refs = refs  # keeps the buffer alive as long as a view of it
        self.__array_interface__ = {
            "shape": refs.shape,
            "typestr": np.dtype(np.uintp).str,
            "data": (refs.__array_interface__["data"][0], True),
            "version": 3,
        }


def _ids(refs: np.ndarray) -> np.ndarray:
    """id() of each element of a 1-D object ndarray, as a read-only view: no int object per element."""
    if refs.dtype != object or refs.ndim != 1 or not refs.flags.c_contiguous:
        raise ValueError("_ids() needs a 1-D contiguous object array")
    if not len(refs):
        return np.zeros(0, dtype=np.uintp)
    return np.asarray(_Pointers(refs))
