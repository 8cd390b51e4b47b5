"""The holders of a leak: containers that grew during a bisect run, and what their new entries keep.

Led by growth, not by what exists: :func:`leakkit.probes.containers.grown` names the containers that are
longer than after the warm-up; only their *new* entries are looked at, and only objects the run
created (traced by tracemalloc since the warm-up) are counted under them. A 2 M-object index
beside a one-entry-per-call registry costs one C pass, not a walk.

For each holder the new objects under its new entries are charged to the function whose code
allocated them (the innermost target frame, as in the checkpoints), so the culprit is the function
that made what the growing holder keeps. Entries that are weak references are a side structure
(an ABC cache, a WeakSet), and so are ``weakref.finalize``'s registry entries (one per object
with a finalizer, alive as long as that object): they exist because other objects exist, and dead
ones only wait for a prune, so they are reported as such and never blamed.
"""
from __future__ import annotations

import functools
import gc
import time
import tracemalloc
import types
import weakref
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from ..probes import containers as C
from .budget import as_deadline
from .deep import NO_WALK, deep_size, referents  # noqa: F401 (deep_size: reached here too)
from .tracebacks import raw_traceback  # noqa: F401 (reached as holders.raw_traceback too)

_get_object_traceback = tracemalloc._get_object_traceback
_WEAK = (weakref.ref,)
_LRU = functools._lru_cache_wrapper
UNTRACED = "<untraced>"


@dataclass(slots=True)
class Holder:
    """A container that grew during the run, and who made the new objects its new entries keep."""

    container: Any
    parent: Any  # the tracked object holding an untracked container, else None
    old_len: int
    new_len: int
    newest: Any = None  # key (dict), index (sequence) or member (set) of the newest new entry
    made: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # function -> bytes
    objects: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # function -> objects
    entry_makers: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # function -> new entries
    made_at: set = field(default_factory=set)  # (file, line) where the objects under the new entries were made
    entries: int = 0  # new entries that hold objects the run created
    weak: int = 0  # new entries that are weak references
    dead_weak: int = 0  # ... whose referent is gone: pending cleanup, not kept memory
    young: int = -1  # entries made in the run, all of them (not only the newest): -1 when not counted

    @property
    def replaced(self) -> int:
        """Older entries the run's entries replaced: arrivals beyond the growth (0 when not counted)."""
        return max(self.young - self.added, 0) if self.young >= 0 else 0

    @property
    def evicts(self) -> bool:
        """The run saw it replace old entries instead of growing: most of its entries made in the
        run took the place of older ones (its length rose by a quarter of them or less)."""
        return self.young >= 8 and self.added <= 0.25 * self.young

    @property
    def added(self) -> int:
        return self.new_len - self.old_len

    @property
    def kept_bytes(self) -> int:
        return sum(self.made.values())

    @property
    def side(self) -> str | None:
        """Why this holder is a side structure and not where the leak is, or None."""
        looked = self.entries + self.weak
        if looked and self.weak >= 0.8 * looked:
            if self.dead_weak >= 0.5 * self.weak:
                return "dead weak references awaiting a prune (pending cleanup, not kept memory)"
            return "weak references to objects kept elsewhere (a cache keyed by them, not their holder)"
        return None

    def kind(self) -> str:
        return type(self.container).__name__


def who_made(obj: Any, attribute: Callable[[tuple], Any]) -> str | None:
    """The function whose code allocated ``obj`` (or ``<outside targets>``); None for leakkit's own
    objects; :data:`UNTRACED` for objects older than the run (or reused from a free list)."""
    try:
        raw = raw_traceback(obj)
    except Exception:
        return UNTRACED
    if raw is None:
        return UNTRACED
    who = attribute(raw)
    return None if who is None else who[0]


def made_in_run(obj: Any, attribute: Callable[[tuple], Any]) -> str | None:
    """Like :func:`who_made`, but an untraced container or instance whose members were made in the
    run counts as made with them: free-listed dicts and lists, and 3.11 instances (whose managed
    pre-header tracemalloc cannot look up) are made by the same call as what they hold."""
    who = who_made(obj, attribute)
    if who != UNTRACED or not C.is_a(obj, (dict, list, tuple, set)):
        return who
    items = C.first_members(obj, 4)
    values: list[Any] = [v for _, v in items]
    if C.is_a(obj, dict):
        values += [k for k, _ in items]
    for value in values:
        if C.is_a(value, (int, float, bool, type(None), type)):
            continue
        inner = who_made(value, attribute)
        if inner != UNTRACED:
            return inner
    return UNTRACED


_SET_ENTRIES = 50_000  # members of a set looked at, at most, when none can be told new


def _new_entries(container: Any, old_len: int, deadline: Any = None) -> list[tuple[Any, Any]]:
    """The entries most likely added since the table was taken: the newest of a dict (insertion
    order), both ends of a sequence, the members of a set the run made (unordered: looked for by
    their traceback, up to ``deadline``). Only those are copied: under tracemalloc a copy of a
    2 M-member container is 2 M traced allocations."""
    length = C.container_len(container)
    added = max(length - old_len, 0)
    if length <= 0 or not added:
        return []
    span = min(length, 2 * added + 16)
    if C.is_a(container, (set, frozenset)):
        if length <= _SET_ENTRIES:
            return C.members(container)
        return _made_members(container, span, deadline)
    if span >= length or not C.is_a(container, (dict, list)):
        return C.members(container)
    return C.newest_members(container, span) if C.is_a(container, dict) else \
        C.first_members(container, span) + C.newest_members(container, span)


def _made_members(container: Any, wanted: int, deadline: Any) -> list[tuple[Any, Any]]:
    """Up to ``wanted`` members of a big set that tracemalloc traced (made since tracing began),
    looked for one by one (a look-up of an old object finds nothing and allocates nothing)."""
    out: list[tuple[Any, Any]] = []
    try:
        members = set.__iter__(container) if C.is_a(container, set) else frozenset.__iter__(container)
        # in chunks, with no counter: under tracemalloc every int or tuple made per member is a traced allocation
        while len(out) < wanted and not (deadline is not None and deadline.over()):
            chunk = list(islice(members, 4096))
            if not chunk:
                break
            out.extend((member, member) for member in chunk if _get_object_traceback(member) is not None)
            del chunk
    except RuntimeError:  # the set changed size meanwhile
        pass
    return out[:wanted]


class _Charger:
    """Charges what new entries keep to the functions that made it, within a budget of
    tracemalloc look-ups: each costs a traceback tuple built under tracemalloc, where every
    allocation is itself traced (a figure's 4 000 objects would take seconds).

    ``young``: the tracked objects the run made (the unfrozen ones, an AddressSet), when known. Past the
    look-up budget, a young object, or an untracked one (a string, bytes) that one of the run's
    objects holds, is charged to whoever made the object holding it.
    """

    def __init__(self, attribute: Callable[[tuple], Any], young: Any, lookup_s: float) -> None:
        self.attribute = attribute
        self.young = young
        self.until = time.perf_counter() + lookup_s
        self.lookups = 0
        self.seen = C.Seen()
        self.deadline: Any = None

    def looking(self) -> bool:
        """Whether look-ups are still within their time (checked every 64)."""
        self.lookups += 1
        if self.lookups % 64 == 0 and time.perf_counter() > self.until:
            self.until = 0.0
        return self.until > 0.0 or self.young is None

    def maker(self, obj: Any, parent_maker: str) -> str | None:
        if self.looking():
            who = made_in_run(obj, self.attribute) if not C.is_a(obj, type) else who_made(obj, self.attribute)
            return None if who == UNTRACED else who
        if self.young is not None:
            if gc.is_tracked(obj):
                return parent_maker if obj in self.young else None
            # untracked (strings, bytes, tuples and dicts of atoms): the run's own object holds
            # it, so most likely the same call made it (an old one shared by many counts once)
            return parent_maker if not C.is_a(obj, (int, float, bool, type(None))) else None
        return None


def find_holders(grown: list[tuple[Any, Any, int]], attribute: Callable[[tuple], Any], *,
                 ignore: set[int], deadline: Any, max_objects: int = 300_000, young: Any = None,
                 lookup_s: float = 1.5, progress: list[int] | None = None) -> list[Holder]:
    """Holders whose new entries keep objects the run made, biggest first. Objects are counted
    once, under the first holder that reaches them. ``lookup_s``: seconds of tracemalloc look-ups
    for the objects inside the entries, after which ``young`` (if known) tells what the run made.
    ``deadline`` (a time or a :mod:`leakkit.retention.budget` deadline) is checked inside every
    walk; ``progress`` gets the number of containers looked at."""
    deadline = as_deadline(deadline)
    charger = _Charger(attribute, young, lookup_s)
    charger.deadline = deadline
    out: list[Holder] = []
    budget = max_objects
    looked = 0
    for container, parent, old_len in grown:
        if id(container) in ignore or (parent is not None and id(parent) in ignore):
            looked += 1
            continue
        if budget <= 0 or deadline.over():
            break
        looked += 1
        holder = Holder(container, parent, old_len, C.container_len(container))
        is_dict = C.is_a(container, dict)
        for step, (key, value) in enumerate(_new_entries(container, old_len, deadline)):
            if step % 256 == 255 and deadline.over():
                break
            weak = value if C.is_a(value, _WEAK) else None
            if weak is None and is_dict and C.is_a(key, weakref.finalize):
                # weakref.finalize's registry: an entry lives as long as its object, which is held
                # (or bounded) elsewhere; its weak reference tells whether that object still lives
                weak = next((v for n, v in C.slot_values(value) if n == "weakref" and C.is_a(v, _WEAK)), key)
                if _watches_old_object(weak, attribute):
                    # ... but when that object is older than the run and alive, nothing made in the run
                    # decides when the entry goes: its callback and arguments are kept strongly for as
                    # long as an object that was already there (a finalizer on a long-lived pool, per
                    # call): an entry like any other
                    weak = None
            if weak is None and is_dict and C.is_a(key, _WEAK):
                # a weak key's value is kept while the key lives (WeakKeyDictionary, a thread-local's
                # table): charge it; the entry is a side structure only if it keeps nothing made here
                if _charge(value, holder, charger, budget):
                    holder.entries += 1
                    holder.newest = key
                    continue
                weak = key
            if weak is not None:
                # charged to its maker like any entry, so the maker is known to feed a side structure
                maker = who_made(weak, attribute)
                if maker is None or maker == UNTRACED:
                    continue
                holder.weak += 1
                holder.made[maker] += C.shallow_size(weak)
                holder.objects[maker] += 1
                try:
                    holder.dead_weak += weakref.ref.__call__(weak) is None
                except Exception:
                    pass
                continue
            roots = (value, key) if is_dict else (value,)
            counted = 0
            for root in roots:
                counted += _charge(root, holder, charger, budget)
            # the entry's maker: who made the value it adds (the key's maker when the value is old)
            maker = next((m for m in (made_in_run(r, attribute) for r in roots) if m is not None and m != UNTRACED),
                         None)
            if maker is not None:
                holder.entry_makers[maker] += 1
            if counted:
                budget -= counted
                holder.entries += 1
                holder.newest = key
        cache = parent if parent is not None and C.is_a(parent, _LRU) else lru_of(container)
        if cache is not None:
            # an lru_cache's table maps keys to C links the GC cannot see into; the cache itself
            # reports the keys and results it keeps
            own = C.instance_dict(cache)
            wrapped = own.get("__wrapped__") if own is not None else None
            for value in referents(cache):
                if value is not container and value is not own and value is not wrapped and \
                        not C.is_a(value, types.FunctionType):
                    counted = _charge(value, holder, charger, budget)
                    budget -= counted
                    holder.entries += bool(counted)
        if holder.entries or holder.weak:
            if holder.entries and not deadline.over():
                holder.young = young_members(container, attribute, deadline=deadline)
            out.append(holder)
    if progress is not None:
        progress.append(looked)
    out.sort(key=lambda h: (h.side is not None, -h.kept_bytes))
    return out


def young_members(container: Any, attribute: Callable[[tuple], Any], *, limit: int = 20_000,
                  deadline: Any = None) -> int:
    """How many of a container's entries (a dict's by key or value) were made in the run; -1 for
    a container too long to count (or not a builtin one), or when ``deadline`` passes. What an
    evicting cache shows: entries made in the run beyond what it grew by replaced older ones."""
    n = C.container_len(container)
    if n < 0 or n > limit:
        return -1
    is_dict = C.is_a(container, dict)
    count = 0
    for step, (key, value) in enumerate(C.members(container)):
        if step % 256 == 255 and deadline is not None and deadline.over():
            return -1
        for obj in ((value, key) if is_dict else (value,)):
            if C.is_a(obj, (int, float, bool, type(None), type)):
                continue  # shared atoms say nothing of when the entry was made
            if made_in_run(obj, attribute) not in (None, UNTRACED):
                count += 1
                break
    return count


def lru_of(container: Any) -> Any:
    """The ``lru_cache`` whose table ``container`` is (its values are the cache's C links)."""
    if not C.is_a(container, dict):
        return None
    values = [v for _, v in C.newest_members(container, 3)]
    if not values or any(type(v).__name__ != "_lru_list_elem" for v in values):
        return None
    import gc

    referrers = gc.get_referrers(container)
    try:
        return next((r for r in referrers if C.is_a(r, _LRU)), None)
    finally:
        del referrers


def _watches_old_object(ref: Any, attribute: Callable[[tuple], Any]) -> bool:
    """Whether a finalizer's weak reference points to a live object the run did not make."""
    if not C.is_a(ref, _WEAK):
        return False
    try:
        target = weakref.ref.__call__(ref)
    except Exception:
        return False
    if target is None:
        return False
    try:
        return who_made(target, attribute) == UNTRACED
    finally:
        del target


def _charge(root: Any, holder: Holder, charger: _Charger, budget: int) -> int:
    """Charge the objects made in the run under ``root`` to their makers; returns how many."""
    seen = charger.seen.add
    if not seen(root):
        return 0
    who = made_in_run(root, charger.attribute)
    if who is None or who == UNTRACED:
        return 0
    counted = 0
    stack = [(root, who)]
    lines = getattr(charger.attribute, "lines", None)
    deadline = charger.deadline
    while stack and counted < budget:
        if counted % 1024 == 1023 and deadline is not None and deadline.over():
            break
        obj, maker = stack.pop()
        if lines is not None and holder.objects[maker] < 64 and charger.looking():
            frames = raw_traceback(obj) or ()
            holder.made_at.update(f for f in frames[:16] if lines.get(f) == maker)
        holder.made[maker] += C.shallow_size(obj)
        holder.objects[maker] += 1
        counted += 1
        for child in referents(obj):
            if C.is_a(child, NO_WALK) or not seen(child):
                continue  # looked at once: an old object shared by many new ones costs one look
            inner = charger.maker(child, maker)
            if inner is not None:
                stack.append((child, inner))
    return counted
