"""Bounds read from the code that enforces them, not from a name.

A container is bounded by code when some code that reaches it tests its size against a limit
and, when the test holds, removes entries from it on every path through that branch::

    if len(DNS_CACHE) >= DNS_CACHE_MAX:        # a module's hand-bounded cache
        DNS_CACHE.pop(next(iter(DNS_CACHE)))

    while self.__currsize + size > maxsize:    # cachetools: maxsize = self.__maxsize
        self.popitem()

An attribute called ``capacity`` proves nothing by itself: ``logging.handlers.MemoryHandler``
tests ``len(self.buffer) >= self.capacity`` and then calls ``flush()``, which empties the buffer
only when a target is set (``if self.target:``): a removal under a further condition is not
enforcement, so that handler's buffer is not bounded (and 185 records in it read as growth).

Where the code is read (source files, parsed, never imported or run; shapes in
:mod:`leakkit.retention.code_shapes`): the module whose global the holder is; the function whose
closure variable it is; the classes of the object whose attribute it is (every class of its MRO;
calls to the object's own methods are followed one level, resolved the way Python resolves them).
"""
from __future__ import annotations

import ast
import gc
import os
import sys
import types
from typing import Any

from ..probes import containers as C
from . import code_shapes as S
from .budget import as_deadline
from .code_shapes import CodeBound

_MAX_SOURCE = 1 << 20  # bytes of source parsed per file at most
_QUALNAME = type.__dict__["__qualname__"]
_SKIP_MODULES = frozenset({"builtins", "abc", "_collections_abc", "collections", "typing", "_abc"})


class _Reader:
    """Parses each source file once per search, until a deadline."""

    def __init__(self, deadline: Any, trees: dict | None = None) -> None:
        self.deadline = as_deadline(deadline)
        self.trees: dict[str, ast.Module | None] = {} if trees is None else trees

    def tree(self, path: str | None) -> ast.Module | None:
        if not path or self.deadline.over():
            return None
        if path in self.trees:
            return self.trees[path]
        tree = None
        try:
            if os.path.getsize(path) <= _MAX_SOURCE:
                with open(path, "rb") as f:
                    tree = ast.parse(f.read(), path)
        except (OSError, SyntaxError, ValueError):
            tree = None
        self.trees[path] = tree
        return tree


def code_bound(chain: list[Any], *, deadline: Any, trees: dict | None = None) -> CodeBound | None:
    """The bound code enforces on ``chain[-1]`` (a container reached from a root through
    ``chain``: naming's ``[Root, ..., holder]``), or None when no code found tests its size and
    removes from it. ``deadline``: a time or a :mod:`leakkit.retention.budget` deadline, checked
    before each file is read. ``trees``: parsed files to share between calls (the caller clears it)."""
    holder = chain[-1]
    reader = _Reader(deadline, trees)
    try:
        for module, names in _module_globals(chain, holder):
            found = _in_module(reader, module, names, holder)
            if found is not None:
                return found
        closure = _closure(chain, holder)
        if closure is not None:
            return _in_closure(reader, *closure)
        owner = _owner(chain)
        if owner is not None:
            return _in_owner(reader, owner, holder)
    except Exception:  # source that does not read the way we expect: no bound, not a failure
        return None
    finally:
        if trees is None:
            reader.trees.clear()
    return None


# -- where the holder is reached from ----------------------------------------------------------------
def _plain(obj: Any) -> Any:
    return obj.obj if type(obj).__name__ == "Root" else obj


def _module_globals(chain: list[Any], holder: Any) -> list[tuple[Any, set[str]]]:
    """(module, global names bound to the holder) for each module whose globals hold it directly."""
    out = []
    for obj in chain[:-1]:
        space = _plain(obj)
        if not C.is_a(space, dict):
            continue
        name = dict.get(space, "__name__")
        module = sys.modules.get(name) if type(name) is str else None
        if module is None or C.instance_dict(module) is not space:
            continue
        names = {k for k, v in C.members(space) if v is holder and type(k) is str}
        if names:
            out.append((module, names))
    return out


def _closure(chain: list[Any], holder: Any) -> tuple[types.FunctionType, str, Any] | None:
    """(function, free variable, holder) when the holder is a closure variable of a function
    (a memoising decorator's ``cache = {}``)."""
    for obj in reversed(chain[:-1]):
        func = _plain(obj)
        if C.is_a(func, types.FunctionType) and func.__closure__:
            for name, cell in zip(func.__code__.co_freevars, func.__closure__, strict=False):
                try:
                    if cell.cell_contents is holder:
                        return func, name, holder
                except ValueError:
                    continue
            return None
    return None


def _owner(chain: list[Any]) -> Any:
    """The object (or class) whose attribute the holder is, if the chain says."""
    if len(chain) < 2:
        return None
    before = _plain(chain[-2])
    if C.is_a(before, dict) and len(chain) >= 3:
        owner = _plain(chain[-3])
        if C.is_a(owner, type):
            return owner if any(r is before for r in gc.get_referents(C.type_dict(owner))) else None
        return owner if C.instance_dict(owner) is before else None
    if C.is_a(before, (list, tuple, set, frozenset, dict, types.ModuleType, types.CellType)):
        return None
    return before


def _source_file(module: Any) -> str | None:
    space = C.instance_dict(module) if module is not None else None
    path = space.get("__file__") if space is not None else None
    return path if type(path) is str and path.endswith(".py") else None


def _module_space(name: Any) -> dict:
    module = sys.modules.get(name) if isinstance(name, str) else None
    return (C.instance_dict(module) or {}) if module is not None else {}


# -- the readers -------------------------------------------------------------------------------------
def _in_module(reader: _Reader, module: Any, names: set[str], holder: Any) -> CodeBound | None:
    path = _source_file(module)
    tree = reader.tree(path)
    if tree is None:
        return None
    space = C.instance_dict(module) or {}
    tops = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}

    def callee(call: ast.Call, scope: S.Scope) -> tuple[list[ast.stmt], S.Scope] | None:
        """A call of one of the module's own functions: its body, in its own scope."""
        if not isinstance(call.func, ast.Name) or call.func.id not in tops:
            return None
        func = tops[call.func.id]
        return func.body, S.Scope(holder_names=(names - S.local_names(func)) | S.holder_params(call, func, scope),
                                  globals=space, locals=S.assignments(func), qualname=scope.qualname, file=scope.file)

    for func, qualname in S.functions(tree, f"{module.__name__}."):
        scope = S.Scope(holder_names=names - S.local_names(func), globals=space, locals=S.assignments(func),
                        qualname=qualname, file=path or "")
        if scope.holder_names:
            found = S.scan(func, scope, holder, callee)
            if found is not None:
                return found
    return None


def _in_closure(reader: _Reader, func: types.FunctionType, name: str, holder: Any) -> CodeBound | None:
    """A closure variable: the function's own code, the other closure variables read as numbers."""
    code = func.__code__
    tree = reader.tree(code.co_filename)
    node = S.def_node(tree, code.co_name, code.co_firstlineno) if tree is not None else None
    if node is None:
        return None
    cells = {}
    for var, cell in zip(code.co_freevars, func.__closure__ or (), strict=False):
        try:
            cells[var] = cell.cell_contents
        except ValueError:
            continue
    scope = S.Scope(holder_names={name}, globals={**_module_space(func.__module__), **cells},
                    locals=S.assignments(node), qualname=f"{func.__module__}.{func.__qualname__}",
                    file=code.co_filename)
    return S.scan(node, scope, holder, lambda call, scope: None)


def _in_owner(reader: _Reader, owner: Any, holder: Any) -> CodeBound | None:
    """An attribute of an object (or a class): the methods of every class of its MRO."""
    tp = owner if C.is_a(owner, type) else type(owner)
    values = dict(C.type_dict(owner).items()) if C.is_a(owner, type) else dict(C.attributes(owner))
    attrs = {k for k, v in values.items() if v is holder and type(k) is str}
    if not attrs:
        return None

    def callee(call: ast.Call, scope: S.Scope) -> tuple[list[ast.stmt], S.Scope] | None:
        """A call of the owner's own method (``self.flush()``), resolved on the owner's type the
        way Python resolves it: its body, in its own class's scope."""
        if not (isinstance(call.func, ast.Attribute) and S.is_owner(call.func.value, scope)):
            return None
        func = C.static_lookup(tp, call.func.attr)
        if not C.is_a(func, types.FunctionType):
            return None
        code = func.__code__
        tree = reader.tree(code.co_filename)
        node = S.def_node(tree, code.co_name, code.co_firstlineno) if tree is not None else None
        if node is None or not node.args.args:
            return None
        parts = func.__qualname__.split(".")
        return node.body, S.Scope(holder_names=S.holder_params(call, node, scope, skip=1), holder_attrs=attrs,
                                  holder=holder, self_name=node.args.args[0].arg, owner=values,
                                  globals=_module_space(func.__module__), locals=S.assignments(node),
                                  class_name=parts[-2] if len(parts) > 1 else "", qualname=scope.qualname,
                                  file=scope.file)

    for klass in C.mro(tp):
        module_name = C.type_dict(klass).get("__module__")
        if type(module_name) is not str or module_name in _SKIP_MODULES:
            continue
        path = _source_file(sys.modules.get(module_name))
        tree = reader.tree(path)
        node = S.class_node(tree, _QUALNAME.__get__(klass, type)) if tree is not None else None
        if node is None:
            continue
        for func in node.body:
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)) or not func.args.args:
                continue
            scope = S.Scope(holder_attrs=attrs, holder=holder, self_name=func.args.args[0].arg, owner=values,
                            globals=_module_space(module_name), locals=S.assignments(func), class_name=node.name,
                            qualname=f"{module_name}.{_QUALNAME.__get__(klass, type)}.{func.name}", file=path or "")
            found = S.scan(func, scope, holder, callee)
            if found is not None:
                return found
    return None


__all__ = ["CodeBound", "code_bound"]
