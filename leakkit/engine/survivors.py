"""The objects a bisect run made that are still alive, each with the target function and line
that made it: what the retention search starts from.

After the freeze, ``gc.get_objects()`` lists only what the run created. Each object's allocation
traceback names its maker; untracked objects it holds (strings, bytes, ints) are looked up too,
since they are most of what a leak keeps and the collector does not list them.
"""
from __future__ import annotations

import gc
from typing import Any

from .. import _compat
from ..probes import containers
from ..retention import holders as H
from .codes import display_site

_UNSEEN = object()


def object_traceback(obj: Any) -> tuple | None:
    """Where ``obj`` was allocated (raw frames, most recent first), or None if it is older than
    the run (3.11's managed-dict instances included: :func:`leakkit.retention.holders.raw_traceback`)."""
    try:
        return H.raw_traceback(obj)
    except Exception:
        return None


def survivors(lines: dict, deadline: Any, notes: list[str],
              frozen: bool) -> tuple[list[tuple[Any, str, str]], containers.AddressSet | None]:
    """(object, target, ``file:line``) for each object the run left that a target made, stopping
    at ``deadline`` (and saying so in ``notes``); with, when the heap was ``frozen`` before the
    run, the addresses of every tracked object the run made (the retention search's "young")."""
    gc.collect()
    new = gc.get_objects()  # after our freeze: only what the run created
    young = containers.AddressSet(new) if frozen else None
    out: list[tuple[Any, str, str]] = []
    seen: set[int] = set()
    made: dict[tuple, tuple[str, str] | None] = {}
    # Under tracemalloc every allocation costs a traceback: objects the run did not trace are
    # passed over without making one (no id(), no counter per object).
    for start in range(0, len(new), 4096):
        if deadline.over():
            notes.append(f"survivors listed for {start} of {len(new)} objects the run left (the time budget)")
            break
        for obj in new[start:start + 4096]:
            tb = object_traceback(obj)
            if tb is None:
                continue  # made before tracing (a heavy run's untraced calls): so, mostly, is what it holds
            for candidate, frames in ((obj, tb), *((r, None) for r in _untracked_referents(obj))):
                if frames is None:
                    if id(candidate) in seen:
                        continue
                    seen.add(id(candidate))
                    frames = object_traceback(candidate)
                if not frames:
                    continue
                # objects made by one line share its traceback (hashed in C): the frames
                # are searched once per distinct traceback, not once per object
                site = made.get(frames, _UNSEEN)
                if site is _UNSEEN:
                    site = made[frames] = made_by(frames, lines)
                if site is not None:
                    out.append((candidate, *site))
    del new
    made.clear()
    return out, young


def made_by(frames: tuple, lines: dict) -> tuple[str, str] | None:
    """The target function (and ``file:line``) nearest the allocation in ``frames`` (most recent first)."""
    for frame in frames:
        name = lines.get(frame)
        if name is not None:
            return name, f"{frame[0]}:{frame[1]}"
    return None


def _untracked_referents(obj: Any) -> list[Any]:
    return [r for r in _compat.referents(obj) if not gc.is_tracked(r) and not containers.is_a(r, (type, int, float, bool))
            and r is not None]


def survivor_table(found: list[tuple[Any, str, str]]) -> list[tuple[str, str, str, int, int]]:
    """(type, target, line, count, shallow bytes) per kind of survivor, for the report."""
    table: dict[tuple[str, str, str], list[int]] = {}
    for obj, name, site in found:
        tp = type(obj)
        try:
            module = type.__dict__["__module__"].__get__(tp, type)
        except Exception:
            module = "builtins"
        kind = tp.__qualname__ if module == "builtins" else f"{module}.{tp.__qualname__}"
        entry = table.setdefault((kind, name, site), [0, 0])
        entry[0] += 1
        entry[1] += containers.shallow_size(obj)
    return [(kind, name, display_site(site), count, size) for (kind, name, site), (count, size) in table.items()]
