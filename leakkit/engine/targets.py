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
from .held import held_functions
from .scopes import Scope, Scopes, function_module
from .wrappers import Patch, Stats, patch, restore

_COMPREHENSIONS = {"<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>"}
_OPTIMIZED = 0x1  # CO_OPTIMIZED: a function's code, not a class body's
_LRU = functools._lru_cache_wrapper


@dataclass
class Targets:
    """What bisect instruments: function names, the line map, and how to undo the patches."""

    # qualname -> function; or its code, for a function an object holds (a decorator's, a
    # framework's): counted and line-mapped by its code, and not kept alive by bisect
    functions: dict[str, Callable | types.CodeType] = field(default_factory=dict)
    lines: dict[tuple[str, int], str] = field(default_factory=dict)  # (file, line) -> qualname
    modules: list[types.ModuleType] = field(default_factory=list)
    classes: list[type] = field(default_factory=list)
    patches: list[Patch] = field(default_factory=list)
    stats: dict[str, Stats] = field(default_factory=dict)
    bounded_wrappers: dict[int, Any] = field(default_factory=dict)
    wrappers: dict[int, Callable] = field(default_factory=dict)  # id(original) -> its wrapper
    renames: Renames = field(default_factory=Renames)  # code given a filename of its own for the run
    counter: CodeCounter | None = None  # calls counted by code object (else by the wrappers)
    notes: list[str] = field(default_factory=list)  # what collecting cut short, for the report

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
    module, qualname = _name_parts(func)
    return f"{module}.{qualname}"


def _name_parts(func: Any) -> tuple[str, str]:
    """(module, qualified name) of a function as a person spells it."""
    module = function_module(func) if C.is_a(func, types.FunctionType) else None
    qualname = _FUNC_QUALNAME.__get__(func) if C.is_a(func, types.FunctionType) else None
    if not isinstance(module, str):
        module = "?"
    if not isinstance(qualname, str):
        qualname = getattr(func, "__name__", None) if C.is_a(func, types.BuiltinFunctionType) else None
        qualname = qualname if isinstance(qualname, str) else repr(func)
    return module, qualname


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


def _codes(code: types.CodeType, name: str, module: str) -> Iterable[tuple[types.CodeType, str]]:
    """The code object and its nested ones, each with the name allocations there are charged to
    (``module``: the module prefix of the names)."""
    stack = [(code, name)]
    while stack:
        code, name = stack.pop()
        yield code, name
        in_function = bool(code.co_flags & _OPTIMIZED)
        for const in reversed(code.co_consts):
            if isinstance(const, types.CodeType):
                if const.co_name in _COMPREHENSIONS:
                    child = name  # a comprehension is part of the function that holds it
                elif hasattr(const, "co_qualname"):
                    child = f"{module}.{const.co_qualname}"
                else:
                    child = f"{name}.<locals>.{const.co_name}" if in_function else f"{name}.{const.co_name}"
                stack.append((const, child))


def _add_lines(targets: Targets, code: types.CodeType, name: str, module: str, filename: str | None = None) -> None:
    """Map every line of ``code`` and of the code nested in it (``filename``: the file as the
    live code names it, for code read from the file itself)."""
    filename = code.co_filename if filename is None else filename
    # parents first, and a line both claim stays the parent's: a nested def's own first line
    # (where the parent builds the function object and its closure) is the parent's code
    for sub, sub_name in _codes(code, name, module):
        for _, _, line in sub.co_lines():
            if line is not None:
                targets.lines.setdefault((filename, line), sub_name)


def _defined_in(value: Any, module_name: str) -> bool:
    if C.is_a(value, type):
        return C.type_dict(value).get("__module__") == module_name
    if C.is_a(value, types.FunctionType):
        return function_module(value) == module_name
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
        elif C.is_a(inner, types.FunctionType) and function_module(inner) == name:
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
    scopes = Scopes()
    objects: list[Any] = []  # targets that are callable objects: the functions they hold are the targets
    for item in items:
        if C.is_a(item, types.ModuleType):
            result.modules.append(item)
            mine = list(_module_functions(item))
            scopes.add_module(item, (_unwrap(raw) for _, _, raw in mine))
            found.extend(mine)
        elif C.is_a(item, type):
            result.classes.append(item)
            mine = list(_class_functions(item, seen_classes))
            scopes.add_class(item, (_unwrap(raw) for _, _, raw in mine))
            found.extend(mine)
        elif C.is_a(_unwrap(item), types.FunctionType):
            owner, attr = _owner_of(item)
            found.append((owner, attr, item) if owner is not None else (None, None, _unwrap(item)))
        elif C.is_a(item, types.BuiltinFunctionType):
            owner, attr = _owner_of(item)
            found.append((owner, attr, item) if owner is not None else (None, None, item))
        elif callable(item):
            objects.append(item)
        else:
            raise expected("targets that are modules, classes, functions or callable objects", "targets", item)
    # functions held by objects (decorators, frameworks, registries): engine.held, engine.scopes;
    # one per code object (closures share theirs), each with its scope read before any renaming
    walks = [scopes.held()] + ([all_held(objects)] if objects else [])
    held: dict[int, tuple[types.FunctionType, Scope | None]] = {}
    for func in (f for w in walks for f in w.functions):
        held.setdefault(id(func.__code__), (func, scopes.scope_of(func)))
    result.notes.extend(f"the search for functions held by objects stopped after {w.looked_at} objects: "
                        "functions held deeper may be charged to their callers" for w in walks if w.cut)
    plan: list[tuple[Any, str, Any, str]] = []
    # code typed at the REPL or exec'd shares its filename: each its own for the run (engine.codes)
    result.renames.apply([_unwrap(raw) for _, _, raw in found if C.is_a(_unwrap(raw), types.FunctionType)]
                         + [f for f, _ in held.values()])
    for owner, attr, raw in found:
        inner = _unwrap(raw)
        name = _qualname(inner)
        if name in result.functions:
            continue
        result.functions[name] = inner
        if C.is_a(inner, types.FunctionType):
            _add_lines(result, inner.__code__, name, _name_parts(inner)[0])
        if _is_bounded_cache(raw):
            result.bounded_wrappers[id(raw)] = raw
        if owner is not None and attr is not None:
            plan.append((owner, attr, raw, name))
    _add_held(result, scopes, list(held.values()))
    _add_source_lines(result, scopes)
    if not result.functions:
        raise expected("targets that contain at least one Python function", "targets", targets)
    # calls counted by code object where possible (engine.counting): then only builtins are wrapped
    counter = counter_for({n: f for n, f in result.functions.items()
                           if C.is_a(f, (types.FunctionType, types.CodeType))}, result.stats)
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


def _add_held(result: Targets, scopes: Scopes, held: list[tuple[types.FunctionType, Scope | None]]) -> None:
    """Register the functions objects hold, by their code, each code once and named by its
    code's qualified name (a decorator's wrapper may carry the name of what it wraps)."""
    known = {id(f.__code__) for f in result.functions.values() if C.is_a(f, types.FunctionType)}
    for func, scope in held:
        code = func.__code__
        if id(code) in known:
            continue
        known.add(id(code))
        if scope is not None:
            module, qualname = scope.module, scopes.qualname(func, scope)
        else:  # held by a callable object given as a target
            module, qualname = _name_parts(func)[0], getattr(code, "co_qualname", None) or code.co_name
        name = _free_name(result, f"{module}.{qualname}", code)
        result.functions[name] = code
        _add_lines(result, code, name, module)


def _add_source_lines(result: Targets, scopes: Scopes) -> None:
    """Map the lines of every function of the targets' files that no live function was found
    for (one only a library's registry keeps), from the file's own code (engine.sources)."""
    live = [f.__code__ if C.is_a(f, types.FunctionType) else f for f in result.functions.values()]
    live = [code for code in live if C.is_a(code, types.CodeType)]
    keys = {(code.co_filename, code.co_name, code.co_firstlineno) for code in live}
    for scope in scopes.scopes():
        source = scopes.source(scope)
        if source is None or not source.agrees(c for code in live for c in _nested(code)):
            continue
        for qualname, code in source.tops:
            if (source.filename, code.co_name, code.co_firstlineno) in keys or not scope.takes(qualname):
                continue
            keys.add((source.filename, code.co_name, code.co_firstlineno))
            _add_lines(result, code, f"{scope.module}.{qualname}", scope.module, source.filename)


def _nested(code: types.CodeType) -> Iterable[types.CodeType]:
    stack = [code]
    while stack:
        code = stack.pop()
        yield code
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))


def _free_name(result: Targets, name: str, code: types.CodeType) -> str:
    """``name``, or ``name (line N)`` when another function already has it (``_`` for each of a
    singledispatch function's implementations)."""
    if name not in result.functions:
        return name
    return f"{name} (line {code.co_firstlineno})"


def _owner_of(func: Any) -> tuple[Any, str | None]:
    """Where a function given directly lives (module attribute or class attribute), to patch it."""
    inner = _unwrap(func)
    if C.is_a(inner, types.FunctionType):
        module_name, qualname = function_module(inner), _FUNC_QUALNAME.__get__(inner)
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


def all_held(objects: list[Any]) -> Any:
    """Every function the given callable objects hold (their classes' own methods aside)."""
    return held_functions(objects, lambda f: True, own_types=lambda cls: False)


def _is_bounded_cache(obj: Any) -> bool:
    return C.is_a(obj, _LRU)


def stdlib_prefixes() -> tuple[str, ...]:
    """Path prefixes of the standard library and site-packages (frames there are never targets)."""
    import sysconfig

    paths = {sysconfig.get_paths().get(key) for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    return tuple(os.path.join(p, "") for p in paths if p)
