"""Which code belongs to bisect's targets: a target module's functions are the code of its file,
a target class's the code of its body, wherever the function objects are held.

Reading a module's attributes finds only the functions still bound to a name; a decorator, a
framework or a registry often holds the function instead (:mod:`leakkit.engine.held` finds
those), and a function only a library's registry keeps is found in the file's own code
(:mod:`leakkit.engine.sources`), so its lines are charged to it. A module with no source file
(the REPL's or a notebook's ``__main__``) is matched by the functions' ``__module__`` instead.
"""
from __future__ import annotations

import os
import sys
import types
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .. import _compat
from ..probes import containers as C
from . import held, sources

_FUNC_QUALNAME = types.FunctionType.__dict__["__qualname__"]
_SKIP_NAMES = frozenset({"__builtins__", "__loader__", "__spec__"})


def function_module(func: types.FunctionType) -> Any:
    """A function's ``__module__`` as stored (a module-level ``__module__`` in its dict wins)."""
    attrs = C.instance_dict(func)
    return attrs["__module__"] if attrs is not None and "__module__" in attrs else func.__module__


@dataclass
class Scope:
    """One target's part of a file: a module's whole file, or a class's body (``prefix``)."""

    module: str  # functions are named under it
    filename: str | None  # the file as the live code names it; None: matched by __module__
    path: str | None = None  # the source file on disk, if any
    cached: str | None = None  # its .pyc
    prefix: str | None = None  # "Service." for a class target

    def takes(self, qualname: str) -> bool:
        return self.prefix is None or qualname.startswith(self.prefix)


class Scopes:
    """The targets' files and namespaces; what the walk accepts and where it starts."""

    def __init__(self) -> None:
        self.by_file: dict[str, list[Scope]] = {}
        self.by_module: dict[str, list[Scope]] = {}
        self.roots: list[Any] = []
        self.own: set[str] = set()  # modules whose classes are followed whole
        self.source_code: dict[str, sources.SourceCode | None] = {}

    def add_module(self, module: types.ModuleType, functions: Iterable[Any]) -> None:
        """A module target (``functions``: those found bound to its names)."""
        space = _compat.module_dict(module) or {}
        name = space.get("__name__")
        if not isinstance(name, str):
            return
        self.own.add(name)
        self._add(Scope(name, *_files(space)), functions)
        self.roots.extend(value for key, value in list(space.items()) if key not in _SKIP_NAMES)

    def add_class(self, cls: type, functions: Iterable[Any]) -> None:
        """A class target (``functions``: those found in its namespace)."""
        name = C.type_dict(cls).get("__module__")
        qualname = C.type_dict(cls).get("__qualname__")
        if not isinstance(name, str) or not isinstance(qualname, str):
            return
        self.own.add(name)
        module = sys.modules.get(name)
        space = (_compat.module_dict(module) or {}) if module is not None else {}
        self._add(Scope(name, *_files(space), prefix=qualname + "."), functions)
        self.roots.append(cls)

    def _add(self, scope: Scope, functions: Iterable[Any]) -> None:
        if scope.filename is None:
            self.by_module.setdefault(scope.module, []).append(scope)
            return
        self.by_file.setdefault(scope.filename, []).append(scope)
        # the file as its functions' code names it, when that differs (a script run by a relative path)
        for func in functions:
            file = func.__code__.co_filename if C.is_a(func, types.FunctionType) else None
            if file is not None and file != scope.filename and scope.path is not None and \
                    not file.startswith("<") and os.path.abspath(file) == scope.path and \
                    not any(s.module == scope.module and s.prefix == scope.prefix for s in self.by_file.get(file, ())):
                self.by_file.setdefault(file, []).append(Scope(scope.module, file, scope.path, scope.cached,
                                                                scope.prefix))

    # -- matching -----------------------------------------------------------------------------
    def scope_of(self, func: types.FunctionType) -> Scope | None:
        """The target scope whose code ``func`` runs, or None."""
        code = func.__code__
        candidates = self.by_file.get(code.co_filename)
        if candidates is None:
            module = function_module(func)
            candidates = self.by_module.get(module) if isinstance(module, str) else None
        for scope in candidates or ():
            if scope.prefix is None or scope.takes(self.qualname(func, scope)):
                return scope
        return None

    def qualname(self, func: types.FunctionType, scope: Scope) -> str:
        """The name of ``func``'s code in its file: ``co_qualname``, or on 3.10 what the file's
        code says, else the function's own ``__qualname__`` unless a decorator copied it."""
        code = func.__code__
        found = getattr(code, "co_qualname", None)
        if isinstance(found, str):
            return found
        source = self.source(scope)
        found = source.qualname(code) if source is not None else None
        if found is not None:
            return found
        attrs = C.instance_dict(func)
        own = _FUNC_QUALNAME.__get__(func)
        return own if isinstance(own, str) and not (attrs and "__wrapped__" in attrs) else code.co_name

    def source(self, scope: Scope) -> sources.SourceCode | None:
        """The functions of the scope's source file, read once (None without a file)."""
        if scope.path is None or scope.filename is None:
            return None
        if scope.filename not in self.source_code:
            self.source_code[scope.filename] = sources.read(scope.path, scope.cached, scope.filename)
        return self.source_code[scope.filename]

    def held(self) -> held.Held:
        """The functions of the targets' scopes that objects reachable from their namespaces hold."""
        def own_type(cls: type) -> bool:
            return C.type_dict(cls).get("__module__") in self.own

        return held.held_functions(self.roots, lambda f: self.scope_of(f) is not None, own_types=own_type)

    def scopes(self) -> list[Scope]:
        return [s for group in (*self.by_file.values(), *self.by_module.values()) for s in group]


def _files(space: dict) -> tuple[str | None, str | None, str | None]:
    """(the file's name as its code has it, the source path on disk, the .pyc) of a module's namespace."""
    file = space.get("__file__")
    if not isinstance(file, str):
        return None, None, None
    if not file.endswith(".py") or not os.path.isfile(file):
        # a pseudo-file (``<stdin>``) is matched by name; a C extension has no Python code of its own
        return (file, None, None) if file.startswith("<") else (None, None, None)
    cached = space.get("__cached__")
    return file, os.path.abspath(file), cached if isinstance(cached, str) else None


__all__ = ["Scope", "Scopes", "function_module"]
