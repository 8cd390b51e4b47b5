"""A container of a great many entries read a slice at a time, for the heap walk.

Why: one ``gc.get_referents`` of a container hands out all its entries in one C call that holds
the GIL throughout: 113 ms for a dict and a set of a million entries each, 130 ms for two million
(a cache that leaks is such a dict). Lists, tuples, dicts, sets, frozensets and deques (and their
subclasses) of more than :data:`LONG` entries are read here in slices of :data:`STEP`, each one a
short C call, with the walk's pauses between them; only the base types' own C methods are called,
never a method a subclass overrides.

What a slice gives is what ``gc.get_referents`` gives: entries; a dict's values, and its keys
unless every key of the slice is a ``str`` (a dict of string keys does not show its keys to the
collector); for a subclass, also its class (a heap type), its ``__slots__`` and C members (a
``defaultdict``'s factory) and its ``__dict__``. A dict, set or deque that changes size while it
is read is read again from its start (what was met is met once) up to :data:`RETRIES` times; past
that what was not read is said in ``notes``.
"""
from __future__ import annotations

import types
from collections import deque
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

LONG = 50_000  # a container this long is read in slices instead of one get_referents
STEP = 5_000  # entries a slice
RETRIES = 3  # reads again from the start of a container that changed size while it was read
_BASES = (list, tuple, dict, set, frozenset, deque)
_HEAPTYPE = 1 << 9


def length_of(kind: type) -> Callable[[Any], int] | None:
    """The ``__len__`` of the base type if ``kind`` is one of the containers read in slices, else None."""
    for base in _BASES:
        if issubclass(kind, base):
            return base.__len__  # type: ignore[return-value]
    return None


def slices(obj: Any, kind: type, notes: list[str]) -> Iterator[list[Any]]:
    """The referents of ``obj`` (a long list, tuple, dict, set, frozenset or deque) a slice at a time."""
    if kind not in _BASES:
        yield _extras(obj, kind)
    if issubclass(kind, (list, tuple)):
        base = list if issubclass(kind, list) else tuple
        start = 0
        while start < base.__len__(obj):
            yield base.__getitem__(obj, slice(start, start + STEP))
            start += STEP
        return
    for _attempt in range(RETRIES + 1):
        reader = _reader(obj, kind)
        try:
            yield from reader
            return
        except RuntimeError:  # changed size between two slices: read again, what was met is skipped
            continue
    notes.append(f"a {kind.__name__} of {length_of(kind)(obj):,} entries changed size every time it was "  # type: ignore[misc]
                 f"read ({RETRIES + 1} reads): what the last read did not reach is not counted")


def _reader(obj: Any, kind: type) -> Iterator[list[Any]]:
    if issubclass(kind, dict):
        keys, values = iter(dict.keys(obj)), iter(dict.values(obj))
        while True:
            part = list(islice(values, STEP))
            names = list(islice(keys, STEP))
            if not part and not names:
                return
            if {*map(type, names)} != {str}:
                part += names
            yield part
    base = set if issubclass(kind, set) else frozenset if issubclass(kind, frozenset) else deque
    entries = base.__iter__(obj)  # type: ignore[attr-defined]
    while part := list(islice(entries, STEP)):
        yield part


def _extras(obj: Any, kind: type) -> list[Any]:
    """What a subclass's instance refers to besides its entries: its class, C members, ``__dict__``."""
    found: list[Any] = [kind] if kind.__flags__ & _HEAPTYPE else []
    instance_dict = None
    for klass in kind.__mro__:
        for name, descr in vars(klass).items():
            if type(descr) is types.MemberDescriptorType:
                try:
                    found.append(descr.__get__(obj, kind))
                except AttributeError:  # an empty slot
                    pass
            elif name == "__dict__" and instance_dict is None:
                instance_dict = descr
    if type(instance_dict) is types.GetSetDescriptorType:
        try:
            found.append(instance_dict.__get__(obj, kind))
        except Exception:
            pass
    return found
