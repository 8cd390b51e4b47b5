"""The heap walk's own tables, shaped so that no single operation on them holds the GIL long.

:class:`Seen` keeps the ids met as one bit per 16-byte slot of each 4 KiB page touched, spread
over 256 dicts: one dict of a million pages is rebuilt in one piece when it grows (7.6 ms at 80 k
pages, ~100 ms at a million), a shard of it 256 times less. :class:`Chunks` keeps a long list of
references as lists of :data:`CHUNK` (see there); both are emptied a piece at a time.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

from .heap_pacer import young_collection

CHUNK = 4096  # references per chunk of a long list of leakkit's own (see Chunks)
AGE_EVERY = 8  # chunks between two young collections leakkit asks for
SHARDS = 256


class Seen:
    """Ids met so far, one bit per 16-byte slot of each 4 KiB page (objects are 16-byte aligned)."""

    def __init__(self) -> None:
        self.shards: list[dict[int, int]] = [{} for _ in range(SHARDS)]
        self.pages = 0  # pages touched

    def add(self, address: int) -> bool:
        """Mark ``address``; False if it was marked already."""
        page = address >> 12
        shard = self.shards[page & 255]
        bit = 1 << ((address >> 4) & 255)
        mask = shard.get(page, 0)
        if mask & bit:
            return False
        if not mask:
            self.pages += 1
        shard[page] = mask | bit
        return True

    def has(self, address: int) -> bool:
        page = address >> 12
        return bool(self.shards[page & 255].get(page, 0) & (1 << ((address >> 4) & 255)))

    def nbytes(self) -> int:
        """What the table costs: the dicts and their int masks (page keys are shared small ints or ~32 bytes)."""
        return sum(map(sys.getsizeof, self.shards)) + self.pages * (36 + 32)

    def clear(self, between: Callable[[], None] | None = None) -> None:
        """Empty the table a shard at a time; ``between`` runs after each (a pacer's turn)."""
        for shard in self.shards:
            shard.clear()
            if between is not None:
                between()
        self.pages = 0


class Chunks:
    """A long list of references kept as lists of :data:`CHUNK`: the collector traverses every young
    container at each young collection, and one young list of a million references made each of
    them cost ~50 ms (3.13); chunks age one by one, so only the newest are young."""

    def __init__(self) -> None:
        self.chunks: list[list[Any]] = [[]]

    def append(self, obj: Any) -> None:
        last = self.chunks[-1]
        if len(last) >= CHUNK:
            last = []
            self.chunks.append(last)
            if len(self.chunks) % AGE_EVERY == 0:
                # A young collection now, while few chunks are young: each one ages the chunks made
                # since the last, so no later collection meets many (a collection of the young
                # generations happens every few hundred allocations anyway, in whichever thread).
                young_collection(1)
        last.append(obj)

    def pop(self) -> Any:
        last = self.chunks[-1]
        while not last and len(self.chunks) > 1:
            self.chunks.pop()
            last = self.chunks[-1]
        return last.pop()

    def __len__(self) -> int:
        return sum(map(len, self.chunks))

    def __bool__(self) -> bool:
        return any(self.chunks)

    def pieces(self, size: int) -> Iterator[list[Any]]:
        """Slices of at most ``size`` references (copies: the walk may go on while they are read)."""
        for chunk in list(self.chunks):
            for start in range(0, len(chunk), size):
                yield chunk[start:start + size]

    def clear(self, between: Callable[[], None] | None = None) -> None:
        """Drop the references a chunk at a time; ``between`` runs after each (a pacer's turn)."""
        chunks, self.chunks = self.chunks, [[]]
        while chunks:
            chunks.pop().clear()
            if between is not None:
                between()

    def nbytes(self) -> int:
        return sys.getsizeof(self.chunks) + sum(map(sys.getsizeof, self.chunks))
