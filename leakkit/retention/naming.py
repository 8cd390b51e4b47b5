"""Name what keeps an object alive the way a person types it: from a root to the object.

Backward from the object with ``gc.get_referrers``, one heap scan per level for every object
being named at once, until a root: a module's globals (dunder names included: ``warnings`` keeps
``__warningregistry__`` there), or a class or function that can be imported by its own name. Of
the roots that reach an object, the spelling a person would type wins: the module that defines
the holder's owner, not a module that imported the name or copied another's namespace, then the
shortest path, then public names, then the targets' modules; so a
library's registry reads ``logging.Logger.manager.loggerDict``, not
``somepkg.helpers.log.manager.loggerDict`` through a module that imported a logger.

No object's own code runs: edges are spelled through :mod:`leakkit.probes.containers`.
"""
from __future__ import annotations

import collections
import gc
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..probes import containers as C
from .budget import as_deadline
from .holders import raw_traceback
from .spelling import render

_FUNC_QUALNAME = types.FunctionType.__dict__["__qualname__"]
_TYPE_QUALNAME = type.__dict__["__qualname__"]
_TYPE_MODULE = type.__dict__["__module__"]


@dataclass(frozen=True)
class Root:
    """Where a chain starts: ``name`` is how code reaches ``obj`` (``module.NAME``, ``pkg.Class``)."""

    name: str
    module: str
    obj: Any


class ModuleIndex:
    """The loaded modules' globals, by the id of their dict (leakkit's own left out)."""

    def __init__(self, targets: set[str] = frozenset()) -> None:
        self.by_dict: dict[int, str] = {}
        for name, module in list(sys.modules.items()):
            if module is None or name.startswith("leakkit") or not C.is_a(module, types.ModuleType):
                continue
            attrs = C.instance_dict(module)
            if attrs is None:
                continue
            # a module under several names (an alias package re-exporting another's modules):
            # the name the module gives itself wins
            own = dict.get(attrs, "__name__")
            if id(attrs) not in self.by_dict or (type(own) is str and own == name):
                self.by_dict[id(attrs)] = name
        self.targets = set(targets)

    def resolve(self, module: str, qualname: str) -> Any:
        """The object ``module.qualname`` names, read through namespaces only (no ``getattr``)."""
        mod = sys.modules.get(module)
        space = C.instance_dict(mod) if mod is not None else None
        obj: Any = None
        for part in qualname.split("."):
            if space is None or part == "<locals>":
                return None
            obj = space.get(part)
            space = C.type_dict(obj) if C.is_a(obj, type) else None
        return obj


def _canonical(obj: Any, index: ModuleIndex) -> Root | None:
    """A class or function that can be imported by its own module and qualified name."""
    try:
        if C.is_a(obj, type):
            module, qualname = _TYPE_MODULE.__get__(obj, type), _TYPE_QUALNAME.__get__(obj, type)
        elif C.is_a(obj, types.FunctionType):
            module, qualname = obj.__module__, _FUNC_QUALNAME.__get__(obj)
        else:
            return None
    except Exception:
        return None
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname:
        return None
    if index.resolve(module, qualname) is obj:
        return Root(f"{module}.{qualname}", module, obj)
    return None


def _owner_module(chain: list[Any]) -> str | None:
    """The module that defines the type of what directly holds the last object of ``chain``."""
    for obj in reversed(chain[:-1]):
        if C.is_a(obj, dict) and not C.is_a(obj, type):
            continue  # an instance's or class's namespace: its owner is one step up
        tp = obj if C.is_a(obj, type) else type(obj)
        try:
            module = _TYPE_MODULE.__get__(tp, type)
        except Exception:
            return None
        return module if isinstance(module, str) and module != "builtins" else None
    return None


def _made_in(obj: Any) -> str | None:
    """The file whose code allocated ``obj`` (the outermost frame tracemalloc kept), if traced."""
    try:
        raw = raw_traceback(obj)
    except Exception:
        return None
    return raw[-1][0] if raw else None


def find_roots(objects: list[Any], index: ModuleIndex, *, ignore: set[int], deadline: Any,
               max_depth: int = 12, width: int = 96, partial: dict[int, list[Any]] | None = None,
               referrers: Callable[[list[Any]], list[Any]] | None = None) -> dict[int, list[Any]]:
    """``{id(obj): chain}`` where chain is ``[root, ..., obj]`` and root a :class:`Root`; an object
    absent from the result has no referrer path from a root within the limits.

    Every object is searched for on its own (one heap scan per level serves them all): one of
    them may lie on another's path, as a thread's dict lies under a ``threading.local``'s table.
    ``referrers(objects)``: how a level is found (``gc.get_referrers`` by default; the monitor
    passes a sliced one, so that the application runs between slices).
    """
    find = referrers if referrers is not None else (lambda nodes: gc.get_referrers(*nodes))
    deadline = as_deadline(deadline)  # a time.perf_counter() value, or a leakkit.retention.budget deadline
    down: dict[tuple[int, int], Any] = {}  # (source, id(referrer)) -> what it refers to on the way down
    keep: list[Any] = []  # every node met, alive until the chains are built
    found: dict[int, list[tuple[tuple, list[Any]]]] = collections.defaultdict(list)
    settled_at: dict[int, int] = {}
    frontier: list[tuple[Any, int]] = []  # (node, id of the object being named)
    result: dict[int, list[Any]] = {}
    for obj in objects:
        name = index.by_dict.get(id(obj))
        if name is not None:  # a module's globals: the root itself
            result[id(obj)] = [Root(name, name, obj)]
            continue
        down[(id(obj), id(obj))] = None
        frontier.append((obj, id(obj)))
    own = {id(down), id(keep), id(found), id(frontier), id(objects), id(result)} | ignore
    for level in range(max_depth):
        frontier = [(o, src) for o, src in frontier if settled_at.get(src, level) >= level - 1]
        if not frontier or deadline.over():
            break
        nodes = [o for o, _ in frontier]
        found_refs = find(nodes)
        own.update((id(found_refs), id(nodes)))
        wanted: dict[int, list[tuple[Any, int]]] = collections.defaultdict(list)
        for node, src in frontier:
            wanted[id(node)].append((node, src))
        nxt: list[tuple[Any, int]] = []
        per_source: dict[int, int] = collections.defaultdict(int)  # the width is each object's own
        own.update((id(nxt), id(per_source)))
        for step, ref in enumerate(sorted(found_refs, key=_old_first)):
            if step % 512 == 511 and deadline.over():
                break
            rid = id(ref)
            if rid in own or C.is_a(ref, (types.FrameType, types.ModuleType)):
                continue
            for child, source in _children_wanted(ref, wanted):
                if (source, rid) in down or (source in settled_at and settled_at[source] < level - 1):
                    continue
                down[(source, rid)] = child
                keep.append(ref)
                root = _root_of(ref, index)
                if root is not None:
                    chain = _chain(ref, source, down)
                    found[source].append((_score(root, chain, index), [root, *chain[1:]]))
                    settled_at.setdefault(source, level)
                elif per_source[source] < width:
                    per_source[source] += 1
                    nxt.append((ref, source))
                    if partial is not None and not C.is_a(ref, (list, tuple, set, frozenset)):
                        partial[source] = _chain(ref, source, down)  # the furthest holder reached
        del found_refs, nodes
        frontier = nxt
    result.update({source: min(candidates, key=lambda c: c[0])[1] for source, candidates in found.items()})
    del down, keep, found, frontier
    return result


def _children_wanted(ref: Any, wanted: dict[int, list[tuple[Any, int]]]) -> list[tuple[Any, int]]:
    out = []
    for child in gc.get_referents(ref):
        hits = wanted.get(id(child))
        if hits:
            out.extend(hits)
    return out


def _old_first(obj: Any) -> int:
    """Class namespaces first (one step from a root: ``logging.Logger.manager`` beats the
    hundreds of loggers that also refer to the manager), then referrers the run did not create:
    a path from a root goes through what was there."""
    try:
        if type(obj) is dict and type(dict.get(obj, "__module__")) is str:
            return 0
        return 1 if raw_traceback(obj) is None else 2
    except Exception:
        return 2


def _root_of(ref: Any, index: ModuleIndex) -> Root | None:
    name = index.by_dict.get(id(ref))
    if name is not None:
        return Root(name, name, ref)
    return _canonical(ref, index)


def _chain(ref: Any, source: int, down: dict[tuple[int, int], Any]) -> list[Any]:
    chain = [ref]
    node = down.get((source, id(ref)))
    while node is not None:
        chain.append(node)
        node = down.get((source, id(node)))
    return chain


def imported_name(module_name: str, name: str) -> bool:
    """Whether module ``module_name`` binds ``name`` by importing it (``from copyreg import
    dispatch_table`` in pickle): the object then belongs to the module it came from. Read from the
    module's code (recompiled by its loader); False when that code is not available."""
    module = sys.modules.get(module_name)
    spec = C.instance_dict(module).get("__spec__") if module is not None and C.instance_dict(module) else None
    loader = getattr(spec, "loader", None) if spec is not None and type(spec).__module__ in ("_frozen_importlib", "importlib._bootstrap") \
        else None
    try:
        code = loader.get_code(module_name) if loader is not None and hasattr(loader, "get_code") else None
    except Exception:
        return False
    if code is None:
        return False
    import dis

    previous = None
    for instruction in dis.get_instructions(code):
        if instruction.opname in ("STORE_NAME", "STORE_GLOBAL") and instruction.argval == name:
            return previous in ("IMPORT_FROM", "IMPORT_NAME")
        previous = instruction.opname
    return False


_FUNC_GLOBALS = types.FunctionType.__dict__["__globals__"]


def copied_namespace(namespace: Any) -> bool:
    """Whether a module's globals hold functions and none of them runs in them: a copy of another
    module's namespace (toolz's ``tlz`` package builds ``tlz._signatures`` by copying
    ``toolz._signatures``'s dict), whose containers belong to the module the functions run in."""
    seen_function = False
    for _key, value in C.iter_members(namespace):
        if C.is_a(value, types.FunctionType):
            if _FUNC_GLOBALS.__get__(value) is namespace:
                return False
            seen_function = True
    return seen_function


def _score(root: Root, chain: list[Any], index: ModuleIndex) -> tuple:
    owner = _owner_module(chain)
    made = _made_in(chain[-1])
    mod = sys.modules.get(root.module)
    file = getattr(mod, "__file__", None) if mod is not None and C.is_a(mod, types.ModuleType) else None
    first_key = _first_key(root, chain)
    imported = bool(first_key) and C.is_a(root.obj, dict) and root.name == root.module and \
        imported_name(root.module, first_key)
    copied = root.name == root.module and C.is_a(root.obj, dict) and copied_namespace(root.obj)
    return (
        0 if owner is not None and (root.module == owner or owner.startswith(root.module + ".")) else 1,
        1 if imported else 0,
        1 if copied else 0,
        0 if made is not None and file == made else 1,
        len(chain),
        0 if not (first_key or "_").startswith("_") or (first_key or "").startswith("__") else 1,
        0 if root.module in index.targets else 1,
        len(root.name),
        root.name,
    )


def _first_key(root: Root, chain: list[Any]) -> str | None:
    if C.is_a(root.obj, dict) and len(chain) > 1:
        for key, value in C.iter_members(root.obj):
            if value is chain[1] and isinstance(key, str):
                return key
    return None


# -- spelling ------------------------------------------------------------------------------------
def render_partial(chain: list[Any]) -> str:
    """Spell a chain that reached no root from the nearest object that is not a plain container
    (an instance, a function): ``<the event loop>._scheduled``."""
    for i in range(len(chain) - 2, -1, -1):
        if not C.is_a(chain[i], (dict, list, tuple, set, frozenset, types.CellType)):
            chain = chain[i:]
            break
    top = chain[0]
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None and C.is_a(top, asyncio.AbstractEventLoop):
        name = "<the event loop>"
    else:
        name = f"<{type(top).__name__} object>"
    return render([Root(name, "", top), *chain[1:]])


def referrer_count(obj: Any, ignore: set[int]) -> int:
    """How many Python objects (not frames, not leakkit's) refer to ``obj``."""
    referrers = gc.get_referrers(obj)
    try:
        return sum(1 for r in referrers if id(r) not in ignore and not C.is_a(r, types.FrameType))
    finally:
        del referrers
