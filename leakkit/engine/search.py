"""After a bisect run: find what keeps the memory, and fill the plain record the judge reads.

In this order, each step paid for by what grew, not by the size of the heap:

1. the containers that grew since the warm-up (one C pass, :mod:`leakkit.probes.containers`);
2. what their new entries keep, charged to the functions that made it (:mod:`leakkit.retention.holders`);
3. the name of each holder from a root (:mod:`leakkit.retention.naming`), and its bound if it has one;
4. for a function whose kept memory grows with no container growing (an object replaced by a
   bigger one each call): a shallow walk from the targets' namespaces (:func:`retention.forward`);
5. for survivors no Python object refers to: the count of references held from C (a reference
   leak in an extension), which no referrer search can name.
"""
from __future__ import annotations

import gc
import sys
import types
import weakref
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..analysis import classify
from ..analysis.attribution import OUTSIDE
from ..probes import containers as C
from ..retention import holders as H
from ..retention import naming, spelling
from ..retention import paths as retention
from ..retention.deep import deep_size
from ..retention.paths import Bound
from .record import BisectRecord, HolderRecord, Orphan
from .survivors import object_traceback

BYTES_FLOOR = 1024  # over the second half of the run
FUNC_FLOOR = 512
_NAMED = 8  # holders named from a root: the biggest ones


@dataclass
class Leads:
    """What the search needs from the run, as plain values (the run itself stays in the engine)."""

    attribute: Callable[[tuple], Any]  # raw traceback -> (target, call path, targets on it), or None
    heavy: bool  # a heavy run: few traced calls, less time for look-ups
    young: Any  # the addresses of the tracked objects the run made (frozen heap), or None
    site_bytes: dict = field(default_factory=dict)  # (target, "file:line") -> kept bytes per checkpoint
    modules: list = field(default_factory=list)  # the target modules
    classes: list = field(default_factory=list)  # the target classes
    functions: dict = field(default_factory=dict)  # qualified name -> target function


def explain(record: BisectRecord, leads: Leads, survivors: list[tuple[Any, str, str]], table: Any,
            deadline: Any, untrace: Any = None) -> BisectRecord:
    """Add to ``record`` what keeps the survivors: holders, their names and bounds, orphans, until
    ``deadline`` (a :class:`leakkit.retention.budget.Deadline`: time and memory); what it cut is
    said in the record's notes. ``untrace()`` is called once nothing more is needed from tracemalloc."""
    # Kept small, the search called early in it: under tracemalloc every allocation the search
    # makes scans the line table of each frame on the stack up to its current line (leakkit.engine.worker).
    untrace = untrace or (lambda: None)
    try:
        if len(record.x) >= 2:  # something was traced
            _search(leads, record, survivors, table, deadline, _own_modules(leads), untrace)
    except Exception as error:  # user objects can misbehave in any way: the verdict stands
        record.notes.append(f"the retention search failed ({type(error).__name__}: {error})")
    finally:
        untrace()
    return record


def _growing(record: BisectRecord) -> list[str]:
    return [name for name, series in record.self_bytes.items()
            if classify(record.x, series, floor=FUNC_FLOOR).verdict in ("leak", "inconclusive")
            and series[-1] > series[0]]


def _search(leads: Leads, record: BisectRecord, survivors: list, table: Any, deadline: Any,
            own: set[str], untrace: Any) -> None:
    # shares of what is left when each step starts: naming, what the user reads first, keeps its own
    found = _holders(leads, survivors, table, deadline.sooner(0.5))
    found_cut = found.cut
    if found_cut:
        record.notes.append(f"the search for holders stopped at the time budget, having looked at {found.looked} of "
                            f"{found.grown} containers that grew")
    growing = _growing(record)
    grown_ids = found.grown_ids
    ignore = found.ignore
    ignore.add(id(record))
    # Every function with objects under a holder's new entries is explained by it (side structures
    # explain their makers' growth too); the others are looked for from the targets' namespaces,
    # the last step that needs tracemalloc.
    explained = {name for h in found for name in h.made}
    missing = [n for n in growing if n not in explained and n != OUTSIDE]
    total = (record.total_bytes[-1] - record.total_bytes[0]) if record.total_bytes else 0.0
    if total > 0 and sum(h.kept_bytes for h in found if h.side is None) >= 0.8 * total:
        missing = []  # the holders found keep most of what grew: the rest is most likely in them too
    fallback: list[HolderRecord] = []
    if missing and not deadline.over():
        fallback = _forward_fallback(leads, record, missing, grown_ids, own, deadline.sooner(0.3))
        explained |= {name for h in fallback for name in h.made}
        missing = [n for n in missing if n not in explained]
    untrace()
    # the biggest non-side holders, and the side structures of the growing functions
    chosen = [h for h in found if h.side is None and h.kept_bytes > 0][:_NAMED]
    chosen += [h for h in found if h.side is not None and any(h.made.get(n) for n in growing)][:3]
    found.clear()
    anchors = [h.parent if h.parent is not None else h.container for h in chosen]
    ignore |= {id(anchors), id(chosen), *(id(h) for h in chosen)}
    index = naming.ModuleIndex(own)
    partial: dict[int, list[Any]] = {}
    ignore.add(id(partial))
    naming_by = deadline.sooner(0.8)
    roots = naming.find_roots(anchors, index, ignore=ignore, deadline=naming_by, partial=partial)
    if len(roots) < len(anchors) and naming_by.over():
        record.notes.append(f"naming stopped at the time budget: {len(roots)} of {len(anchors)} holders named from a root")
    trees: dict = {}  # source files parsed for code-enforced bounds, shared by the holders
    bound_deadline = deadline
    for k in range(len(chosen)):  # no (holder, anchor) tuples: they would be referrers of the anchor
        holder, anchor = chosen[k], anchors[k]
        chain = roots.get(id(anchor))
        if chain is not None:
            if holder.parent is not None:
                chain = [*chain, holder.container]
            text = spelling.render(chain)
            root = chain[0].name
            bound = retention.holder_bound(chain, deadline=bound_deadline, trees=trees)
        elif id(anchor) in partial:  # referrers, but no root within the limits: from the nearest object
            near = [*partial[id(anchor)], holder.container] if holder.parent is not None else partial[id(anchor)]
            text = naming.render_partial(near)
            root = text.split(".")[0].split("[")[0]
            bound = retention.holder_bound(near, deadline=bound_deadline, trees=trees)
            del near
        else:
            python, elsewhere = _c_references(anchor, ignore)
            if python <= 0 and elsewhere > 0:
                text = f"<{holder.kind()} with no Python referrer: held from C{_growing_call(leads, holder)}>"
            else:
                text = f"<{holder.kind()} whose referrers lead to no root within the search's limits>"
            root, bound = "C", retention.bound_of(holder.container)
        newest = _entry_label(holder)
        deep = deep_size(holder.container, limit=20_000, deadline=deadline) if not deadline.over() else (None, False)
        bound, declared = retention.split_bound(bound)
        if bound is None and holder.evicts:
            bound = Bound("observed", holder.new_len, holder.new_len, how="observed",
                          where=f"{holder.replaced} older entries replaced while it grew by {holder.added}")
        record.holders.append(HolderRecord(
            path=text + newest, holder=text, root=root, kind=holder.kind(), old_len=holder.old_len,
            new_len=holder.new_len, made=dict(holder.made), objects=dict(holder.objects), side=holder.side,
            bound=bound, deep_bytes=deep[0], deep_complete=deep[1], how="grown" if chain is not None else "C",
            entry_makers=dict(holder.entry_makers), declared=declared, young=holder.young))
    trees.clear()
    del anchors, chosen, roots, partial
    record.holders.extend(fallback)
    # only growth that matters is looked for further (a few bytes a call inside a library is noise)
    missing = [n for n in missing if (record.self_bytes[n][-1] - record.self_bytes[n][0]) >= 0.1 * total]
    if missing and not deadline.over():
        # a search cut short may have missed the holder: then "nothing holds it" is not said
        _orphans(record, survivors, missing, ignore, own, deadline, cut=found_cut)


class _Found(list):
    """The holders found, with the containers that grew and what the search leaves out."""

    grown_ids: set[int]
    ignore: set[int]
    grown: int = 0  # containers that grew
    looked: int = 0  # ... of which the search looked at
    cut: bool = False  # it stopped at its deadline


def _holders(leads: Leads, survivors: list, table: Any, deadline: Any) -> _Found:
    """Holders of what the run made, from the containers that grew since the warm-up."""
    objects = gc.get_objects()
    try:
        grown = C.grown(objects, table)
    finally:
        del objects
    found = _Found()
    found.ignore = {id(grown), id(survivors), id(found), id(leads)}
    lookup_s = min(0.5 if leads.heavy else 1.5, max(0.2, deadline.left() / 3))
    progress: list[int] = []
    found.extend(H.find_holders(grown, leads.attribute, ignore=found.ignore, deadline=deadline, young=leads.young,
                                lookup_s=lookup_s, progress=progress))
    found.grown, found.looked = len(grown), progress[0] if progress else len(grown)
    found.cut = found.looked < found.grown
    found.grown_ids = {id(c) for c, _, _ in grown}
    found.cut = found.cut or deadline.over()
    del grown
    return found


def _growing_call(leads: Leads, holder: H.Holder) -> str:
    """Where the entries' maker grows other than where it makes them: the call into the code
    that adds them (``codecs.register(search)``), spelled from the source."""
    import linecache

    maker = max(holder.entry_makers, key=holder.entry_makers.__getitem__) if holder.entry_makers else None
    if maker is None:
        return ""
    made_at = {f"{file}:{line}" for file, line in holder.made_at}
    grew = [(series[-1] - series[0], site) for (name, site), series in leads.site_bytes.items()
            if name == maker and site not in made_at and len(series) and series[-1] > series[0]]
    if not grew:
        return ""
    site = max(grew)[1]
    file, _, line = site.rpartition(":")
    source = linecache.getline(file, int(line)).strip() if line.isdigit() else ""
    return f"; it grows at {site}" + (f": {source}" if source else "")


def _entry_label(holder: H.Holder) -> str:
    if holder.newest is None or not holder.entries:
        return ""
    if C.is_a(holder.container, dict):
        return f"[{spelling.short(holder.newest)}]"
    if C.is_a(holder.container, (set, frozenset)):
        return f" ∋ {spelling.short(holder.newest)}"
    return f"[{holder.newest}]"


def _forward_fallback(leads: Leads, record: BisectRecord, missing: list[str], grown_ids: set[int], own: set[str],
                      deadline: Any) -> list[HolderRecord]:
    """Objects the growing functions made, reached from the targets' namespaces without any
    container growing on the way (``LOG += line`` rebinds a global to a bigger object)."""
    wanted = set(missing)

    def attribute(obj: Any) -> str | None:
        if C.is_a(obj, weakref.ref):  # a weak reference keeps nothing
            return None
        tb = object_traceback(obj)
        if tb is None:
            return None
        who = leads.attribute(tb)
        return who[0] if who is not None and who[0] in wanted else None

    out: list[HolderRecord] = []
    hits = retention.forward(_namespaces(leads), attribute, own_modules=own, grown=grown_ids, deadline=deadline)
    for name, paths in hits.items():
        series = record.self_bytes.get(name) or [0.0]
        grew = series[-1] - series[0]
        for path, chain, count in paths[:2]:
            if deep_size(chain[-1], limit=10_000)[0] < 0.5 * grew:
                continue  # an object that was there, not what grew (a counter rebound each call)
            root = path.split("[")[0].split(" ")[0]
            bound, declared = retention.split_bound(retention.bounds_along(chain))
            out.append(HolderRecord(
                path=path, holder=path.rsplit("[", 1)[0], root=root, kind=type(chain[-2]).__name__ if len(chain) > 1
                else type(chain[-1]).__name__, old_len=0, new_len=count, made={name: sum(
                    C.shallow_size(o) for o in chain[-1:])}, objects={name: count}, side=None,
                bound=bound, declared=declared, deep_bytes=None, deep_complete=False, how="forward"))
    hits.clear()
    return out


_REFCOUNT_BIAS: int | None = None


def _c_references(obj: Any, ignore: set[int]) -> tuple[int, int]:
    """(Python referrers, references held elsewhere: C code) of ``obj``, leakkit's own excluded."""
    referrers = gc.get_referrers(obj)
    try:
        python = sum(1 for r in referrers if not C.is_a(r, types.FrameType))
        ours = sum(1 for r in referrers if id(r) in ignore)
    finally:
        del referrers
    return python - ours, sys.getrefcount(obj) - python - _bias()


def _bias() -> int:
    """References our own call chain holds (the caller's loop variable, the argument), measured
    the same way on an object that only a list holds."""
    global _REFCOUNT_BIAS
    if _REFCOUNT_BIAS is None:
        _REFCOUNT_BIAS = 0
        probe = [[None]]
        for obj in probe:
            bias = _c_references(obj, set())[1]
        _REFCOUNT_BIAS = bias
    return _REFCOUNT_BIAS


def _orphans(record: BisectRecord, survivors: list[tuple[Any, str, str]], missing: list[str], ignore: set[int],
             modules: set[str], deadline: Any, cut: bool = False) -> None:
    """Survivors of the growing functions that no container that grew holds: the old object that
    refers to most of them (an ``lru_cache`` whose links replaced old entries, so its length did
    not change), else none: held from C."""
    _bias()
    by_function: dict[str, list[tuple[Any, str]]] = defaultdict(list)
    for obj, name, site in survivors:
        if name in missing and len(by_function[name]) < 40 and gc.is_tracked(obj):
            by_function[name].append((obj, site))
    own = ignore | {id(survivors), id(by_function), *(id(t) for t in survivors)}
    for name, items in by_function.items():
        own.add(id(items))
        orphans, c_refs, kinds = 0, 0, set()
        referred: list[Any] = []
        for obj, _site in items:
            python, elsewhere = _c_references(obj, own | {id(t) for t in items})
            if python <= 0 and elsewhere > 0:
                orphans += 1
                c_refs += elsewhere
                kinds.add(type(obj).__name__)
            elif python > 0:
                referred.append(obj)
        if orphans:
            site = record.sites.get(name) or items[0][1]
            record.orphans[name] = Orphan(name, orphans, len(items), c_refs, site, sorted(kinds))
        elif len(referred) >= 0.5 * len(items) and not deadline.over():
            holder = _common_referrer(record, name, referred, own | {id(referred)}, modules, deadline)
            if holder is not None:
                record.holders.append(holder)
        referred.clear()
    for name in missing if not cut else ():
        if name not in record.orphans and name in record.sites:
            # Nothing found holds it: no container grew with it, no object the run made refers to
            # it, and the targets' namespaces do not reach it (untracked objects cannot be counted).
            record.orphans[name] = Orphan(name, 0, 0, 0, record.sites[name], [])
    by_function.clear()


def _common_referrer(record: BisectRecord, name: str, objs: list[Any], own: set[int], modules: set[str],
                     deadline: Any) -> HolderRecord | None:
    """The object the run did not make that refers to most of ``objs`` (what ``name`` made and
    kept), named from a root, with its bound; None when none refers to half of them."""
    referrers = gc.get_referrers(*objs)
    wanted = {id(o) for o in objs}
    counts: dict[int, int] = defaultdict(int)
    by_id: dict[int, Any] = {}
    own = own | {id(referrers), id(counts), id(by_id), id(wanted)}
    try:
        for ref in referrers:
            if id(ref) in own or C.is_a(ref, (types.FrameType, types.ModuleType)) or H.raw_traceback(ref) is not None:
                continue  # ours, a frame, or made during the run (then it is one of the kept objects)
            hits = sum(1 for child in gc.get_referents(ref) if id(child) in wanted)
            if hits:
                counts[id(ref)] += hits
                by_id[id(ref)] = ref
    finally:
        del referrers
    if not counts:
        return None
    best = max(counts, key=counts.__getitem__)
    if counts[best] < 0.5 * len(objs):
        return None
    holder = by_id[best]
    by_id.clear()
    index = naming.ModuleIndex(modules)
    partial: dict[int, list[Any]] = {}
    roots = naming.find_roots([holder], index, ignore=own | {id(partial)}, deadline=deadline,
                              partial=partial)
    chain = roots.get(id(holder))
    if chain is not None:
        text, root = spelling.render(chain), chain[0].name
    elif id(holder) in partial:
        text = naming.render_partial(partial[id(holder)])
        root = text.split(".")[0].split("[")[0]
    else:
        text = root = f"<{type(holder).__name__}>"
    series = record.self_bytes.get(name) or [0.0]
    kept = int(max(series[-1] - series[0], 0) * counts[best] / len(objs))
    bound, declared = retention.split_bound(retention.bound_of(holder))
    size = (bound or declared).size if (bound or declared) is not None else C.container_len(holder)
    del roots, partial
    kind = type(holder).__name__
    return HolderRecord(path=text, holder=text, root=root, kind=kind, old_len=size, new_len=size,
                        made={name: kept}, objects={name: counts[best]}, side=None, bound=bound,
                        declared=declared, deep_bytes=None,
                        deep_complete=False, how="referrer", entry_makers={name: counts[best]})


def _own_modules(leads: Leads) -> set[str]:
    names = {m.__name__ for m in leads.modules} | {C.type_dict(c).get("__module__", "") for c in leads.classes}
    for func in leads.functions.values():
        module = getattr(func, "__module__", None) if C.is_a(func, types.FunctionType) else None
        if isinstance(module, str):
            names.add(module)
    return names


def _namespaces(leads: Leads) -> list[tuple[str, Any]]:
    """Roots to walk forward from: the target modules' globals (dunder names included), the
    target classes, and the globals of the modules the target functions live in."""
    spaces: list[tuple[str, Any]] = []
    seen: set[str] = set()
    modules = list(leads.modules) + [sys.modules.get(getattr(f, "__module__", "") or "")
                                         for f in leads.functions.values() if C.is_a(f, types.FunctionType)]
    for module in modules:
        if module is not None and module.__name__ not in seen:
            seen.add(module.__name__)
            spaces.extend(retention.module_namespace(module))
    for cls in leads.classes:
        spaces.append((f"{C.type_dict(cls).get('__module__')}.{cls.__qualname__}", cls))
    return spaces


__all__ = ["BYTES_FLOOR", "FUNC_FLOOR", "Leads", "explain"]
