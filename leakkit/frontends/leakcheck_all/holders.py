"""Growth held by the test harness, told apart from the test's by what holds it.

:mod:`.quiet` keeps what pytest itself holds per call phase as the first run left it; a plugin it
does not know (a fixture keeping a list of every mock it made, a reporter keeping every result)
can still grow with each repeated run. That growth dies with the session and a plain run never
repeats a test: it is not the test's leak. It is told by its holder, not by the test's name: the
containers that grew over a suspect's confirming runs (:func:`leakkit.probes.containers.grown`)
are traced back through their referrers to their owner (a module, a class, a function, an
instance of a class), and the owner's module says whose it is. pytest, pluggy, xdist, leakkit and
the plugins the session registered (conftest files excepted: they are the suite's own code) are
the harness.
"""
from __future__ import annotations

import gc
import types
from dataclasses import dataclass
from typing import Any

import pytest

from ...probes import containers

HARNESS = ("_pytest", "pytest", "pluggy", "xdist", "execnet", "leakkit")
_PLAIN = (dict, list, tuple, set, frozenset, types.CellType, types.MappingProxyType)
_MAX_HOLDERS = 8  # the containers that grew most: enough to say whose the growth is
_DEPTH = 4  # referrer levels walked from a container to its owner


@dataclass
class Held:
    """Whose the growth over a test's confirming runs is: entries added to harness-owned
    containers and to others, and the largest harness holder's description."""

    harness: int
    other: int
    holder: str

    def by_harness(self, runs: int) -> bool:
        """All the growth (at least one entry a run) is in the harness's containers."""
        return self.harness >= runs and self.other < max(runs // 2, 1)


def harness_modules(config: pytest.Config) -> tuple[str, ...]:
    """Module name prefixes of the harness: pytest and friends, and every registered plugin's
    module (a plugin package named ``pytest_*`` as a whole), conftest files excepted."""
    names = set(HARNESS)
    for plugin in config.pluginmanager.get_plugins():
        module = plugin if isinstance(plugin, types.ModuleType) else None
        name = module.__name__ if module is not None else getattr(type(plugin), "__module__", None)
        if not isinstance(name, str) or name == "__main__" or name.rsplit(".", 1)[-1] == "conftest":
            continue
        names.add(name)
        top = name.split(".", 1)[0]
        if top.startswith(("pytest_", "_pytest")):
            names.add(top)
    return tuple(sorted(names))


def lengths() -> Any:
    """The length of every container now (an opaque table for :func:`whose`). The heap must not
    be frozen: frozen objects are not in ``gc.get_objects()``."""
    objects = gc.get_objects()
    try:
        return containers.sizes(objects)
    finally:
        del objects


def whose(table: Any, harness: tuple[str, ...]) -> Held:
    """Which containers grew since ``table`` was taken, and whether their owners are the harness's."""
    objects = gc.get_objects()
    try:
        grown = containers.grown(objects, table)
    finally:
        del objects
    ranked = sorted(((containers.container_len(c) - old, c, parent) for c, parent, old in grown),
                    key=lambda row: row[0], reverse=True)[:_MAX_HOLDERS]
    del grown
    ignore = {id(ranked)} | {id(row) for row in ranked}
    held = Held(0, 0, "")
    for added, container, parent in ranked:
        if added <= 0:
            continue
        owner = _owner(parent if parent is not None else container, ignore)
        module = _home(owner) if owner is not None else None
        if module is not None and any(module == p or module.startswith(p + ".") for p in harness):
            held.harness += added
            if not held.holder:
                held.holder = f"{type(owner).__qualname__} ({module})"
        else:
            held.other += added
    ranked.clear()
    return held


def _owner(start: Any, ignore: set[int]) -> Any | None:
    """The nearest object up the referrers of ``start`` that is not a plain container: a module,
    a class, a function or an instance (what a person would say holds it)."""
    frontier = [start]
    seen = {id(start)}
    ignore = ignore | {id(frontier)}
    for _ in range(_DEPTH):
        for obj in frontier:
            if _is_owner(obj):
                return obj
        found: list[Any] = []
        for obj in frontier:
            for ref in gc.get_referrers(obj):
                if id(ref) in seen or id(ref) in ignore or isinstance(ref, types.FrameType):
                    continue
                seen.add(id(ref))
                found.append(ref)
        frontier[:] = found[:64]
        del found
        if not frontier:
            return None
    return None


def _is_owner(obj: Any) -> bool:
    if isinstance(obj, (types.ModuleType, type, types.FunctionType, types.MethodType)):
        return True
    return not isinstance(obj, _PLAIN) and type(obj).__module__ != "builtins"


def _home(owner: Any) -> str | None:
    """The module an owner belongs to: its own name, a class's or function's module, an instance's class's."""
    if isinstance(owner, types.ModuleType):
        return owner.__name__
    if isinstance(owner, (type, types.FunctionType)):
        return getattr(owner, "__module__", None)
    if isinstance(owner, types.MethodType):
        return getattr(owner.__func__, "__module__", None)
    return getattr(type(owner), "__module__", None)
