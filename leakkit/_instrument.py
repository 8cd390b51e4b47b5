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

from . import probes
from ._errors import expected
from ._malloc import malloc_in_use

_COMPREHENSIONS = {"<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>"}


@dataclass
class Patch:
    """One attribute we replaced: ``setattr(owner, name, original)`` undoes it."""

    owner: Any
    name: str
    original: Any  # the raw attribute (staticmethod/classmethod objects included)


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
        """Put every replaced attribute back, newest first, whatever happened."""
        self.wrappers.clear()
        while self.patches:
            patch = self.patches.pop()
            try:
                setattr(patch.owner, patch.name, patch.original)
            except (AttributeError, TypeError):  # pragma: no cover - read-only owner
                pass


def _qualname(func: Any) -> str:
    module = getattr(func, "__module__", None) or "?"
    return f"{module}.{getattr(func, '__qualname__', getattr(func, '__name__', repr(func)))}"


def _unwrap(obj: Any) -> Any:
    seen = set()
    while hasattr(obj, "__wrapped__") and id(obj) not in seen:
        seen.add(id(obj))
        obj = obj.__wrapped__
    return obj


def _codes(code: types.CodeType, name: str) -> Iterable[tuple[types.CodeType, str]]:
    """The code object and its nested ones, each with the name allocations there are charged to."""
    yield code, name
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            if const.co_name in _COMPREHENSIONS:
                child = name  # a comprehension is part of the function that holds it
            else:
                child = f"{name.rsplit('.', 1)[0]}.{getattr(const, 'co_qualname', const.co_name)}" \
                    if hasattr(const, "co_qualname") else f"{name}.<locals>.{const.co_name}"
            yield from _codes(const, child)


def _add_lines(targets: Targets, func: Any, name: str) -> None:
    code = getattr(func, "__code__", None)
    if code is None:
        return
    filename = code.co_filename
    # parents first, and a line both claim stays the parent's: a nested def's own first line
    # (where the parent builds the function object and its closure) is the parent's code
    for sub, sub_name in _codes(code, name):
        for _, _, line in sub.co_lines():
            if line is not None:
                targets.lines.setdefault((filename, line), sub_name)


def _module_functions(module: types.ModuleType) -> Iterable[tuple[Any, str, Any]]:
    for attr, value in list(vars(module).items()):
        inner = _unwrap(value)
        if isinstance(value, type) and value.__module__ == module.__name__:
            yield from _class_functions(value)
        elif callable(value) and getattr(inner, "__module__", None) == module.__name__ \
                and isinstance(inner, types.FunctionType):
            yield module, attr, value


def _class_functions(cls: type) -> Iterable[tuple[Any, str, Any]]:
    for attr, raw in list(vars(cls).items()):
        if isinstance(raw, (staticmethod, classmethod)):
            if isinstance(_unwrap(raw.__func__), types.FunctionType):
                yield cls, attr, raw
        elif isinstance(raw, property):
            for accessor in (raw.fget, raw.fset, raw.fdel):
                if isinstance(accessor, types.FunctionType):
                    yield cls, None, accessor  # line map only: properties stay unpatched
        elif isinstance(_unwrap(raw), types.FunctionType):
            yield cls, attr, raw
        elif isinstance(raw, type) and raw.__module__ == cls.__module__ and raw is not cls:
            yield from _class_functions(raw)


def collect(targets: Any) -> Targets:
    """Resolve ``targets`` (modules, classes, functions, or a list of them) to a :class:`Targets`."""
    items = list(targets) if isinstance(targets, (list, tuple, set, frozenset)) else [targets]
    if not items:
        raise expected("a module, class or function, or a non-empty list of them", "targets", targets)
    result = Targets()
    found: list[tuple[Any, str | None, Any]] = []
    for item in items:
        if isinstance(item, types.ModuleType):
            result.modules.append(item)
            found.extend(_module_functions(item))
        elif isinstance(item, type):
            result.classes.append(item)
            found.extend(_class_functions(item))
        elif callable(item) and isinstance(_unwrap(item), (types.FunctionType, types.MethodType)):
            inner = _unwrap(item)
            if isinstance(inner, types.MethodType):
                inner = inner.__func__
            owner, attr = _owner_of(item)
            found.append((owner, attr, item) if owner is not None else (None, None, inner))
        else:
            raise expected("targets that are modules, classes or functions", "targets", item)
    for owner, attr, raw in found:
        func = raw.__func__ if isinstance(raw, (staticmethod, classmethod)) else raw
        inner = _unwrap(func)
        if isinstance(inner, types.MethodType):
            inner = inner.__func__
        name = _qualname(inner)
        if name in result.functions:
            continue
        result.functions[name] = inner
        _add_lines(result, inner, name)
        if _is_bounded_cache(func):
            result.bounded_wrappers[id(func)] = func
        if owner is not None and attr is not None:
            _patch(result, owner, attr, raw, name)
    if not result.functions:
        raise expected("targets that contain at least one Python function", "targets", targets)
    return result


def _owner_of(func: Any) -> tuple[Any, str | None]:
    """Where a function given directly lives (module attribute or class attribute), to patch it."""
    module = sys.modules.get(getattr(func, "__module__", "") or "")
    qualname = getattr(_unwrap(func), "__qualname__", "")
    if module is None or "<locals>" in qualname:
        return None, None
    owner: Any = module
    parts = qualname.split(".")
    for part in parts[:-1]:
        owner = getattr(owner, part, None)
        if owner is None:
            return None, None
    raw = vars(owner).get(parts[-1]) if hasattr(owner, "__dict__") else None
    if raw is None:
        return None, None
    return owner, parts[-1]


def _is_bounded_cache(obj: Any) -> bool:
    return hasattr(obj, "cache_info") and hasattr(obj, "cache_parameters")


# -- wrappers ------------------------------------------------------------------------------------
class _Stack(threading.local):
    def __init__(self) -> None:
        self.frames: list[list[int]] = []  # per active call: [children's inclusive rss, malloc]


_stack = _Stack()
_rss = probes.rss
_malloc = malloc_in_use if malloc_in_use() is not None else (lambda: 0)


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


def _patch(targets: Targets, owner: Any, attr: str, raw: Any, name: str) -> None:
    stats = targets.stats.setdefault(name, Stats(name))
    try:
        if isinstance(raw, staticmethod):
            new: Any = staticmethod(_wrap(raw.__func__, stats))
        elif isinstance(raw, classmethod):
            new = classmethod(_wrap(raw.__func__, stats))
        else:
            new = _wrap(raw, stats)
        setattr(owner, attr, new)
    except (AttributeError, TypeError):  # read-only owner (a C type): line map only
        return
    targets.patches.append(Patch(owner, attr, raw))
    targets.wrappers[id(raw)] = new if not isinstance(new, (staticmethod, classmethod)) else new.__func__


def stdlib_prefixes() -> tuple[str, ...]:
    """Path prefixes of the standard library and site-packages (frames there are never targets)."""
    import sysconfig

    paths = {sysconfig.get_paths().get(key) for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    return tuple(os.path.join(p, "") for p in paths if p)
