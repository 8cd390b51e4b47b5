"""The shape of code that bounds a container, read from its syntax tree (:mod:`ast`).

A size test (``len(holder)``, ``len(self)`` or a counter attribute of the owner, against a limit
made of numbers, globals, the owner's attributes and the function's own locals), and under it a
removal from the holder on every path through the branch: ``pop``, ``popitem``, ``popleft``,
``clear``, ``remove``, ``discard``, ``del holder[...]``, rebinding the holder, on the holder or on
its owner (``self.popitem()``); loops, ``with`` and ``try`` bodies count, a removal under a further
``if`` does not. Calls to the owner's own methods (or a module's own functions) are followed one
level, through ``callee``, which :mod:`leakkit.retention.enforced` provides.

Nothing here imports or runs the code it reads.
"""
from __future__ import annotations

import ast
import os
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..probes import containers as C

REMOVERS = frozenset({"pop", "popitem", "popleft", "clear", "remove", "discard", "__delitem__"})


@dataclass(frozen=True)
class CodeBound:
    """A limit some code enforces on a holder: at most ``limit`` entries (or units of ``counter``)."""

    limit: int
    where: str  # "field_service.resolve (field_service.py:57)"
    source: str  # the test, as written: "len(DNS_CACHE) >= DNS_CACHE_MAX"
    size: int  # the holder's length now (or the counter's value)
    slack: int = 0  # 1 when the test is strict (``>``): one entry over the limit, until the next removal
    counter: str | None = None  # the owner's attribute the test counts in, when not len()


@dataclass
class Scope:
    """What names mean inside one function: the holder, its owner, numbers."""

    holder_names: set[str] = field(default_factory=set)  # globals or closure variables bound to the holder
    holder_attrs: set[str] = field(default_factory=set)  # attribute names of the owner bound to it
    holder: Any = None  # the holder itself (a stored bound method of it removes from it too)
    self_name: str | None = None  # the owner's name in a method (``self``)
    owner: dict = field(default_factory=dict)  # the owner's attributes
    globals: dict = field(default_factory=dict)
    locals: dict[str, ast.expr] = field(default_factory=dict)
    class_name: str = ""
    qualname: str = ""
    file: str = ""


Callee = Callable[[ast.Call, Scope], "tuple[list[ast.stmt], Scope] | None"]


def scan(func: ast.AST, scope: Scope, holder: Any, callee: Callee) -> CodeBound | None:
    """The first size test in ``func`` with a removal from the holder under it, as a bound the
    holder is within now (past it, that code does not hold it)."""
    for node in own_nodes(func):
        if not isinstance(node, (ast.If, ast.While)):
            continue
        test = size_test(node.test, scope, callee, depth=1)
        if test is None:
            continue
        limit, strict, counter = test
        if not removes(node.body, scope, callee, depth=1):
            continue
        size = counter_value(scope, counter) if counter else C.container_len(holder)
        slack = 1 if strict else 0
        if int(limit) <= 0 or size is None or size > int(limit) + slack:
            continue
        where = f"{scope.qualname} ({os.path.basename(scope.file)}:{node.lineno})"
        return CodeBound(int(limit), where, unparse(node.test), size, slack, counter)
    return None


def functions(tree: ast.Module, prefix: str = "") -> list[tuple[ast.AST, str]]:
    """Every function of a module, methods and nested functions too, with a qualified name."""
    out: list[tuple[ast.AST, str]] = []
    stack: list[tuple[ast.AST, str]] = [(tree, prefix)]
    while stack:
        node, at = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((child, at + child.name))
                stack.append((child, at + child.name + ".<locals>."))
            elif isinstance(child, ast.ClassDef):
                stack.append((child, at + child.name + "."))
            elif not isinstance(child, ast.expr):
                stack.append((child, at))
    return out


def class_node(tree: ast.Module, qualname: str) -> ast.ClassDef | None:
    node: Any = tree
    for part in qualname.split("."):
        node = next((n for n in getattr(node, "body", ()) if isinstance(n, ast.ClassDef) and n.name == part), None)
        if node is None:
            return None
    return node


def def_node(tree: ast.Module, name: str, first_line: int) -> ast.AST | None:
    """The ``def`` of a code object in its module's tree (by name and first line, decorators included)."""
    return next((n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and n.name == name and min([n.lineno] + [d.lineno for d in n.decorator_list]) == first_line), None)


def assignments(func: ast.AST) -> dict[str, ast.expr]:
    """``name = expr`` in the function's own body (for limits held in locals)."""
    out: dict[str, ast.expr] = {}
    for node in ast.walk(func):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            out.setdefault(node.targets[0].id, node.value)
    return out


def local_names(func: ast.AST) -> set[str]:
    """Names the function binds itself (they shadow globals of the same name), less ``global`` ones."""
    names = {a.arg for a in ast.walk(func.args) if isinstance(a, ast.arg)} if hasattr(func, "args") else set()
    for node in ast.walk(func):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    declared = {name for node in ast.walk(func) if isinstance(node, (ast.Global, ast.Nonlocal)) for name in node.names}
    return names - declared


def holder_params(call: ast.Call, func: ast.AST, scope: Scope, *, skip: int = 0) -> set[str]:
    """The parameters of ``func`` that a ``call`` of it passes the holder to (``_evict(CACHE)``);
    ``skip``: leading parameters the call does not spell (a method's ``self``)."""
    params = [a.arg for a in (*func.args.posonlyargs, *func.args.args)][skip:]
    out = {params[i] for i, arg in enumerate(call.args[:len(params)]) if is_holder(arg, scope)}
    names = {a.arg for a in (*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs)}
    out |= {k.arg for k in call.keywords if k.arg in names and is_holder(k.value, scope)}
    return out


def own_nodes(func: ast.AST) -> list[ast.AST]:
    """The nodes of a function in line order, without descending into nested functions or classes."""
    out = []
    stack = list(ast.iter_child_nodes(func))
    while stack:
        node = stack.pop()
        out.append(node)
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            stack.extend(ast.iter_child_nodes(node))
    out.sort(key=lambda n: getattr(n, "lineno", 0))
    return out


def is_holder(expr: ast.AST, scope: Scope) -> bool:
    if isinstance(expr, ast.Name):
        if expr.id in scope.holder_names:
            return True
        alias = scope.locals.get(expr.id)  # data = self._data
        return isinstance(alias, ast.Attribute) and is_holder(alias, scope)
    if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name) and scope.self_name is not None:
        return expr.value.id == scope.self_name and mangle(expr.attr, scope) in scope.holder_attrs
    return False


def is_sibling(expr: ast.AST, scope: Scope) -> bool:
    """Another builtin container of the owner's (``self._mapping`` beside the holder ``self._queue``)."""
    return isinstance(expr, ast.Attribute) and is_owner(expr.value, scope) and \
        C.container_len(scope.owner.get(mangle(expr.attr, scope))) >= 0


def removes_by_method(call: ast.Call, scope: Scope) -> bool:
    """``self._popleft()`` where the owner keeps ``self._popleft = self._queue.popleft``."""
    if not (isinstance(call.func, ast.Attribute) and is_owner(call.func.value, scope)) or scope.holder is None:
        return False
    method = scope.owner.get(mangle(call.func.attr, scope))
    if not C.is_a(method, types.BuiltinMethodType):  # a C method's __self__ and __name__ run no user code
        return False
    try:
        return method.__self__ is scope.holder and method.__name__ in REMOVERS
    except Exception:
        return False


def is_owner(expr: ast.AST, scope: Scope) -> bool:
    return scope.self_name is not None and isinstance(expr, ast.Name) and expr.id == scope.self_name


def mangle(name: str, scope: Scope) -> str:
    """``self.__data`` inside class ``Cache`` is the attribute ``_Cache__data``."""
    if name.startswith("__") and not name.endswith("__") and scope.class_name:
        return f"_{scope.class_name.lstrip('_')}{name}"
    return name


def size_test(test: ast.expr, scope: Scope, callee: Callee, depth: int) -> tuple[float, bool, str | None] | None:
    """(limit, strict, counter attribute or None) when ``test`` compares the holder's size with a limit."""
    if isinstance(test, ast.BoolOp):
        for value in test.values:
            found = size_test(value, scope, callee, depth)
            if found is not None:
                return found
        return None
    if isinstance(test, ast.Call) and depth > 0:
        inlined = callee(test, scope)  # if self._over_threshold(): ...
        if inlined is not None:
            body, inner = inlined
            statements = [s for s in body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
            if len(statements) == 1 and isinstance(statements[0], ast.Return) and statements[0].value is not None:
                return size_test(statements[0].value, inner, callee, depth - 1)
        return None
    if not isinstance(test, ast.Compare) or len(test.ops) != 1:
        return None
    op, left, right = test.ops[0], test.left, test.comparators[0]
    if isinstance(op, (ast.Gt, ast.GtE)):
        pairs = [(left, right)]
    elif isinstance(op, (ast.Lt, ast.LtE)):
        pairs = [(right, left)]
    elif isinstance(op, ast.Eq):
        pairs = [(left, right), (right, left)]
    else:
        return None
    for size, limit in pairs:
        counter = sizey(size, scope)
        if counter is None:
            continue
        value = number(limit, scope, 3)
        if value is not None and value > 0:
            return value, isinstance(op, (ast.Gt, ast.Lt)), (counter or None)
    return None


def sizey(expr: ast.expr, scope: Scope) -> str | None:
    """'' when ``expr`` measures the holder with ``len()`` (or its owner, or a container of its
    owner's kept in step with it: jinja2's ``LRUCache`` tests ``_mapping`` and pops ``_queue`` with
    it), the counter attribute's name when it counts in one of the owner's int attributes, None
    otherwise."""
    for node in ast.walk(expr):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "len" and \
                len(node.args) == 1 and (is_holder(node.args[0], scope) or is_owner(node.args[0], scope)
                                         or is_sibling(node.args[0], scope)):
            return ""
    for node in ast.walk(expr):
        if isinstance(node, ast.Attribute) and is_owner(node.value, scope):
            name = mangle(node.attr, scope)
            if type(scope.owner.get(name)) is int and name not in scope.holder_attrs:
                return name
    return None


def number(expr: ast.expr, scope: Scope, depth: int) -> float | None:
    """The value of a limit made of numbers, globals, the owner's attributes and locals."""
    if isinstance(expr, ast.Constant):
        return float(expr.value) if type(expr.value) in (int, float) else None
    if isinstance(expr, ast.Name):
        if expr.id in scope.locals and depth > 0:
            return number(scope.locals[expr.id], scope, depth - 1)
        value = scope.globals.get(expr.id)
        return float(value) if type(value) in (int, float) else None
    if isinstance(expr, ast.Attribute) and is_owner(expr.value, scope):
        value = scope.owner.get(mangle(expr.attr, scope))
        return float(value) if type(value) in (int, float) else None
    if isinstance(expr, ast.BinOp) and depth > 0:
        a, b = number(expr.left, scope, depth - 1), number(expr.right, scope, depth - 1)
        if a is None or b is None:
            return None
        if isinstance(expr.op, (ast.FloorDiv, ast.Div)):
            return (a // b if isinstance(expr.op, ast.FloorDiv) else a / b) if b else None
        return {ast.Add: a + b, ast.Sub: a - b, ast.Mult: a * b}.get(type(expr.op))
    return None


def counter_value(scope: Scope, counter: str) -> int | None:
    value = scope.owner.get(counter)
    return value if type(value) is int else None


def removes(body: list[ast.stmt], scope: Scope, callee: Callee, depth: int) -> bool:
    """Whether ``body`` removes from the holder on every path through it."""
    for stmt in body:
        if isinstance(stmt, (ast.If, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue  # a removal under a further condition is not enforcement
        if isinstance(stmt, (ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith)):
            if removes(stmt.body, scope, callee, depth):
                return True
            continue
        if isinstance(stmt, ast.Try) or type(stmt).__name__ == "TryStar":
            if any(removes(part, scope, callee, depth) for part in (stmt.body, stmt.orelse, stmt.finalbody)):
                return True
            continue
        if isinstance(stmt, ast.Delete) and any(removal_target(t, scope) for t in stmt.targets):
            return True
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if any(is_holder(t, scope) or (isinstance(t, ast.Subscript) and is_holder(t.value, scope)
                                           and isinstance(t.slice, ast.Slice)) for t in targets):
                return True  # rebound (self._data = {}), or emptied in place (HISTORY[:] = HISTORY[-100:])
        for node in expressions(stmt):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in REMOVERS \
                    and (is_holder(node.func.value, scope) or is_owner(node.func.value, scope)):
                return True
            if isinstance(node, ast.Call) and removes_by_method(node, scope):
                return True
            if isinstance(node, ast.Call) and depth > 0:
                inlined = callee(node, scope)
                if inlined is not None and removes(inlined[0], inlined[1], callee, depth - 1):
                    return True
    return False


def removal_target(target: ast.expr, scope: Scope) -> bool:
    if isinstance(target, ast.Subscript):
        return is_holder(target.value, scope) or is_owner(target.value, scope)
    return is_holder(target, scope)


def expressions(stmt: ast.stmt) -> list[ast.AST]:
    """The expression nodes of one statement (not of statements nested in it, not in lambdas)."""
    out = []
    stack = [c for c in ast.iter_child_nodes(stmt) if isinstance(c, ast.expr)]
    while stack:
        node = stack.pop()
        out.append(node)
        if not isinstance(node, ast.Lambda):
            stack.extend(c for c in ast.iter_child_nodes(node) if isinstance(c, ast.expr))
    return out


def unparse(node: ast.AST) -> str:
    try:
        text = ast.unparse(node)
    except Exception:
        return "?"
    return text if len(text) <= 80 else text[:77] + "..."
