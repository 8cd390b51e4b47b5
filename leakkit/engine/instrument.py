"""Find the functions of bisect targets, map their source lines, and wrap them for counting.

Two mechanisms, because each misses what the other sees:

* **Line map** (no patching): every code object of every target function, nested defs, lambdas
  and comprehensions included, maps ``(filename, line)`` to the qualified name a person would
  use. tracemalloc tracebacks are attributed through it, which stays right when asyncio tasks
  and threads interleave and for functions reached through references we cannot patch.
* **Wrappers** (patching module and class attributes): count calls, and read the process's
  memory around each call for native (non-Python-heap) growth. Always removed by ``restore()``.
"""
from __future__ import annotations

import functools
import inspect
import os
import sys
import threading
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .._errors import expected
from ..probes import containers as C
from ..probes import process as probes
from ..probes.malloc import malloc_in_use

_COMPREHENSIONS = {"<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>"}
_LRU = functools._lru_cache_wrapper


@dataclass
class Patch:
    """One attribute we replaced: ``setattr(owner, name, original)`` undoes it."""

    owner: Any
    name: str
    original: Any  # the raw attribute (staticmethod/classmethod objects included)
    replacement: Any  # what we put there: restored only if it is still there


@dataclass
class Stats:
    """Per-function counters the wrappers update (thread-safe enough under the GIL)."""

    name: str
    calls: int = 0
    errors: int = 0
    rss_incl: int = 0
    rss_self: int = 0
    malloc_incl: int = 0
    malloc_self: int = 0


@dataclass
class Targets:
    """What bisect instruments: function names, the line map, and how to undo the patches."""

    functions: dict[str, Callable] = field(default_factory=dict)  # qualname -> function
    lines: dict[tuple[str, int], str] = field(default_factory=dict)  # (file, line) -> qualname
    modules: list[types.ModuleType] = field(default_factory=list)
    classes: list[type] = field(default_factory=list)
    patches: list[Patch] = field(default_factory=list)
    stats: dict[str, Stats] = field(default_factory=dict)
    bounded_wrappers: dict[int, Any] = field(default_factory=dict)
    wrappers: dict[int, Callable] = field(default_factory=dict)  # id(original) -> its wrapper

    def wrapped(self, func: Callable) -> Callable:
        """The instrumented twin of ``func`` if we patched it (so calls to it are counted)."""
        return self.wrappers.get(id(func), func)

    def restore(self) -> None:
        """Put every replaced attribute back, newest first, whatever happened; an attribute the
        workload itself replaced meanwhile is left as the workload set it."""
        self.wrappers.clear()
        originals = {id(p.replacement): p for p in self.patches}
        owners = {id(p.owner): p.owner for p in self.patches}
        while self.patches:
            patch = self.patches.pop()
            try:
                space = _namespace(patch.owner)
                if space is not None and space.get(patch.name) is patch.replacement:
                    _set(patch.owner, patch.name, patch.original)
            except Exception:  # pragma: no cover - an owner that changed beyond repair
                pass
        # A wrapper the workload copied under another name (``helper = replacement``) goes too.
        for owner in owners.values():
            try:
                space = _namespace(owner)
                for name, value in list(space.items()) if space is not None else ():
                    patch = originals.get(id(value))
                    if patch is not None and value is patch.replacement:
                        _set(owner, name, patch.original)
            except Exception:  # pragma: no cover
                pass


def _qualname(func: Any) -> str:
    module = _FUNC_MODULE(func) if C.is_a(func, types.FunctionType) else None
    qualname = _FUNC_QUALNAME.__get__(func) if C.is_a(func, types.FunctionType) else None
    if not isinstance(module, str):
        module = "?"
    if not isinstance(qualname, str):
        qualname = getattr(func, "__name__", None) if C.is_a(func, types.BuiltinFunctionType) else None
        qualname = qualname if isinstance(qualname, str) else repr(func)
    return f"{module}.{qualname}"


def _FUNC_MODULE(func: types.FunctionType) -> Any:
    return C.instance_dict(func).get("__module__") if C.instance_dict(func) is not None and \
        "__module__" in C.instance_dict(func) else func.__module__


_FUNC_QUALNAME = types.FunctionType.__dict__["__qualname__"]


def _unwrap(obj: Any) -> Any:
    """Follow ``__wrapped__`` (functools.wraps) through functions and caches only: reading it on
    any other object could run that object's code (a mock makes a child, a proxy forwards)."""
    seen = set()
    while id(obj) not in seen:
        seen.add(id(obj))
        if C.is_a(obj, (staticmethod, classmethod)):
            obj = obj.__func__
            continue
        if C.is_a(obj, types.MethodType):
            obj = obj.__func__
            continue
        if C.is_a(obj, (types.FunctionType, _LRU)):
            attrs = C.instance_dict(obj)
            inner = attrs.get("__wrapped__") if attrs is not None else None
            if inner is not None and callable(inner):
                obj = inner
                continue
        break
    return obj


def _codes(code: types.CodeType, name: str) -> Iterable[tuple[types.CodeType, str]]:
    """The code object and its nested ones, each with the name allocations there are charged to."""
    stack = [(code, name)]
    while stack:
        code, name = stack.pop()
        yield code, name
        for const in reversed(code.co_consts):
            if isinstance(const, types.CodeType):
                if const.co_name in _COMPREHENSIONS:
                    child = name  # a comprehension is part of the function that holds it
                elif hasattr(const, "co_qualname"):
                    child = f"{name.rsplit('.', 1)[0]}.{const.co_qualname}" if "." in name else const.co_qualname
                else:
                    child = f"{name}.<locals>.{const.co_name}"
                stack.append((const, child))


def _add_lines(targets: Targets, func: Any, name: str) -> None:
    code = getattr(func, "__code__", None) if C.is_a(func, types.FunctionType) else None
    if code is None:
        return
    filename = code.co_filename
    # parents first, and a line both claim stays the parent's: a nested def's own first line
    # (where the parent builds the function object and its closure) is the parent's code
    for sub, sub_name in _codes(code, name):
        for _, _, line in sub.co_lines():
            if line is not None:
                targets.lines.setdefault((filename, line), sub_name)


def _defined_in(value: Any, module_name: str) -> bool:
    if C.is_a(value, type):
        return C.type_dict(value).get("__module__") == module_name
    if C.is_a(value, types.FunctionType):
        return _FUNC_MODULE(value) == module_name
    return False


def _module_functions(module: types.ModuleType) -> Iterable[tuple[Any, str | None, Any]]:
    """(owner, attribute, raw) for every function a module defines, its classes' included.
    Builtin functions of a C extension module are candidates too (counted, not line-mapped)."""
    space = C.instance_dict(module) or {}
    name = space.get("__name__", getattr(module, "__name__", None))
    is_extension = not isinstance(space.get("__file__"), str) or not space["__file__"].endswith(".py")
    seen: set[int] = set()
    for attr, value in list(space.items()):
        inner = _unwrap(value)
        if C.is_a(value, type):
            if _defined_in(value, name):
                yield from _class_functions(value, seen)
        elif C.is_a(inner, types.FunctionType) and _FUNC_MODULE(inner) == name:
            yield module, attr, value
        elif is_extension and C.is_a(value, types.BuiltinFunctionType) and getattr(value, "__module__", None) == name:
            yield module, attr, value


def _class_functions(cls: type, seen: set[int] | None = None) -> Iterable[tuple[Any, str | None, Any]]:
    """Functions of a class and of the classes nested in it, each class once (classes that refer
    to each other through attributes do not recurse)."""
    seen = set() if seen is None else seen
    stack = [cls]
    module = C.type_dict(cls).get("__module__")
    while stack:
        klass = stack.pop()
        if id(klass) in seen:
            continue
        seen.add(id(klass))
        for attr, raw in list(C.type_dict(klass).items()):
            if C.is_a(raw, (staticmethod, classmethod)):
                if C.is_a(_unwrap(raw), types.FunctionType):
                    yield klass, attr, raw
            elif C.is_a(raw, property):
                for accessor in (raw.fget, raw.fset, raw.fdel):
                    if C.is_a(_unwrap(accessor), types.FunctionType):
                        yield klass, None, _unwrap(accessor)  # line map only: properties stay unpatched
            elif C.is_a(_unwrap(raw), types.FunctionType):
                yield klass, attr, raw
            elif C.is_a(raw, type) and raw is not klass and C.type_dict(raw).get("__module__") == module:
                stack.append(raw)


def collect(targets: Any) -> Targets:
    """Resolve ``targets`` (modules, classes, functions, or a list of them) to a :class:`Targets`.

    Nothing is patched until every target has been read; if patching fails part-way, what was
    patched is put back before the error propagates.
    """
    items = list(targets) if isinstance(targets, (list, tuple, set, frozenset)) else [targets]
    if not items:
        raise expected("a module, class or function, or a non-empty list of them", "targets", targets)
    result = Targets()
    found: list[tuple[Any, str | None, Any]] = []
    seen_classes: set[int] = set()
    for item in items:
        if C.is_a(item, types.ModuleType):
            result.modules.append(item)
            found.extend(_module_functions(item))
        elif C.is_a(item, type):
            result.classes.append(item)
            found.extend(_class_functions(item, seen_classes))
        elif C.is_a(_unwrap(item), types.FunctionType):
            owner, attr = _owner_of(item)
            found.append((owner, attr, item) if owner is not None else (None, None, _unwrap(item)))
        elif C.is_a(item, types.BuiltinFunctionType):
            owner, attr = _owner_of(item)
            found.append((owner, attr, item) if owner is not None else (None, None, item))
        else:
            raise expected("targets that are modules, classes or functions", "targets", item)
    plan: list[tuple[Any, str, Any, str]] = []
    for owner, attr, raw in found:
        inner = _unwrap(raw)
        name = _qualname(inner)
        if name in result.functions:
            continue
        result.functions[name] = inner
        _add_lines(result, inner, name)
        if _is_bounded_cache(raw):
            result.bounded_wrappers[id(raw)] = raw
        if owner is not None and attr is not None:
            plan.append((owner, attr, raw, name))
    if not result.functions:
        raise expected("targets that contain at least one Python function", "targets", targets)
    try:
        for owner, attr, raw, name in plan:
            _patch(result, owner, attr, raw, name)
    except BaseException:
        result.restore()
        raise
    return result


def _owner_of(func: Any) -> tuple[Any, str | None]:
    """Where a function given directly lives (module attribute or class attribute), to patch it."""
    inner = _unwrap(func)
    if C.is_a(inner, types.FunctionType):
        module_name, qualname = _FUNC_MODULE(inner), _FUNC_QUALNAME.__get__(inner)
    else:
        module_name, qualname = getattr(func, "__module__", None), getattr(func, "__qualname__", None)
    module = sys.modules.get(module_name or "") if isinstance(module_name, str) else None
    if module is None or not isinstance(qualname, str) or "<locals>" in qualname:
        return None, None
    owner: Any = module
    parts = qualname.split(".")
    for part in parts[:-1]:
        space = C.instance_dict(owner) if C.is_a(owner, types.ModuleType) else \
            C.type_dict(owner) if C.is_a(owner, type) else None
        owner = space.get(part) if space is not None else None
        if owner is None:
            return None, None
    space = C.instance_dict(owner) if C.is_a(owner, types.ModuleType) else \
        C.type_dict(owner) if C.is_a(owner, type) else None
    raw = space.get(parts[-1]) if space is not None else None
    if raw is None or _unwrap(raw) is not inner:
        return None, None
    return owner, parts[-1]


def _is_bounded_cache(obj: Any) -> bool:
    return C.is_a(obj, _LRU)


# -- wrappers ------------------------------------------------------------------------------------
class _Stack(threading.local):
    def __init__(self) -> None:
        self.frames: list[list[int]] = []  # per active call: [children's inclusive rss, malloc]


_stack = _Stack()
_rss = probes.rss
_HAS_MALLOC = malloc_in_use() is not None
_malloc = malloc_in_use if _HAS_MALLOC else (lambda: 0)


def malloc_readings(on: bool) -> None:
    """Whether the wrappers read malloc's bytes in use around each call. ``mallinfo2`` walks the
    allocator's free lists: in a big, fragmented heap it costs ~100 us, which a workload making
    thousands of target calls cannot afford; RSS is still read."""
    global _malloc
    _malloc = malloc_in_use if on and _HAS_MALLOC else (lambda: 0)


def malloc_reading_cost() -> float:
    """Seconds one ``mallinfo2`` reading takes here, now (the median of 15)."""
    import time

    if not _HAS_MALLOC:
        return 0.0
    times = []
    for _ in range(15):
        t0 = time.perf_counter()
        malloc_in_use()
        times.append(time.perf_counter() - t0)
    return sorted(times)[7]


def _enter() -> tuple[int, int, list[int]]:
    frame = [0, 0]
    _stack.frames.append(frame)
    return (_rss() or 0), (_malloc() or 0), frame


def _leave(stats: Stats, r0: int, m0: int, frame: list[int], failed: bool) -> None:
    m1 = _malloc() or 0
    incl = (_rss() or 0) - r0
    mincl = m1 - m0
    frames = _stack.frames
    if frames and frames[-1] is frame:
        frames.pop()
    stats.calls += 1
    stats.errors += failed
    stats.rss_incl += incl
    stats.rss_self += incl - frame[0]
    stats.malloc_incl += mincl
    stats.malloc_self += mincl - frame[1]
    if frames:
        frames[-1][0] += incl
        frames[-1][1] += mincl


def _wrap(func: Callable, stats: Stats) -> Callable:
    if inspect.iscoroutinefunction(func):
        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            stats.calls += 1  # interleaved tasks make per-call memory meaningless: count only
            return await func(*args, **kwargs)
        return async_wrapper
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        @functools.wraps(func)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            stats.calls += 1
            return func(*args, **kwargs)
        return gen_wrapper

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        r0, m0, frame = _enter()
        failed = True
        try:
            result = func(*args, **kwargs)
            failed = False
            return result
        finally:
            _leave(stats, r0, m0, frame, failed)
    return wrapper


WRAPPER_CODES = frozenset({_wrap.__code__, *(c for c in _wrap.__code__.co_consts if isinstance(c, types.CodeType)),
                           _enter.__code__, _leave.__code__})


def _namespace(owner: Any) -> Any:
    if C.is_a(owner, types.ModuleType):
        return C.instance_dict(owner)
    if C.is_a(owner, type):
        return C.type_dict(owner)
    return None


def _set(owner: Any, attr: str, value: Any) -> None:
    """Write a module's or class's attribute without their own ``__setattr__`` (a metaclass or a
    module class may forbid it, or run code on it)."""
    if C.is_a(owner, types.ModuleType):
        C.instance_dict(owner)[attr] = value
    else:
        type.__setattr__(owner, attr, value)


def _patch(targets: Targets, owner: Any, attr: str, raw: Any, name: str) -> None:
    stats = targets.stats.setdefault(name, Stats(name))
    try:
        if C.is_a(raw, staticmethod):
            new: Any = staticmethod(_wrap(raw.__func__, stats))
        elif C.is_a(raw, classmethod):
            new = classmethod(_wrap(raw.__func__, stats))
        else:
            new = _wrap(raw, stats)
        _set(owner, attr, new)
    except Exception:  # a read-only owner (a C type), or one that refuses: line map only
        return
    targets.patches.append(Patch(owner, attr, raw, new))
    targets.wrappers[id(raw)] = new if not C.is_a(new, (staticmethod, classmethod)) else new.__func__


def stdlib_prefixes() -> tuple[str, ...]:
    """Path prefixes of the standard library and site-packages (frames there are never targets)."""
    import sysconfig

    paths = {sysconfig.get_paths().get(key) for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    return tuple(os.path.join(p, "") for p in paths if p)
