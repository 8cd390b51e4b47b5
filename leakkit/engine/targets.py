"""Find the functions of bisect targets, map their source lines, and wrap them for counting
(the wrappers themselves: :mod:`leakkit.engine.wrappers`).

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
import os
import sys
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .._errors import expected
from ..probes import containers as C
from .codes import Renames
from .counting import CodeCounter, counter_for
from .wrappers import Patch, Stats, patch, restore

_COMPREHENSIONS = {"<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>"}
_LRU = functools._lru_cache_wrapper


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
    renames: Renames = field(default_factory=Renames)  # code given a filename of its own for the run
    counter: CodeCounter | None = None  # calls counted by code object (else by the wrappers)

    def wrapped(self, func: Callable) -> Callable:
        """The instrumented twin of ``func`` if we patched it (so calls to it are counted)."""
        return self.wrappers.get(id(func), func)

    def restore(self) -> None:
        """Put every replaced attribute back, newest first, whatever happened; an attribute the
        workload itself replaced meanwhile is left as the workload set it."""
        self.wrappers.clear()
        if self.counter is not None:
            self.counter.stop()
            self.counter = None
        restore(self.patches)
        self.renames.restore()


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
    # code typed at the REPL or exec'd shares its filename: each its own for the run (engine.codes)
    result.renames.apply(_unwrap(raw) for _, _, raw in found if C.is_a(_unwrap(raw), types.FunctionType))
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
    # calls counted by code object where possible (engine.counting): then only builtins are wrapped
    counter = counter_for({n: f for n, f in result.functions.items() if C.is_a(f, types.FunctionType)}, result.stats)
    if counter.start():
        result.counter = counter
        plan = [step for step in plan if not C.is_a(_unwrap(step[2]), types.FunctionType)]
    else:
        counter.stop()
    try:
        for owner, attr, raw, name in plan:
            stats = result.stats.setdefault(name, Stats(name))
            replaced = patch(owner, attr, raw, stats)
            if replaced is not None:
                result.patches.append(replaced)
                new = replaced.replacement
                result.wrappers[id(raw)] = new if not C.is_a(new, (staticmethod, classmethod)) else new.__func__
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


def stdlib_prefixes() -> tuple[str, ...]:
    """Path prefixes of the standard library and site-packages (frames there are never targets)."""
    import sysconfig

    paths = {sysconfig.get_paths().get(key) for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    return tuple(os.path.join(p, "") for p in paths if p)
