"""Bytes in use by the C allocator (glibc ``mallinfo2``), where it exists.

RSS misses a native leak that reuses memory the process already has resident (a long-running
process frees plenty, and glibc raises its mmap threshold after large frees), so RSS stays flat
while malloc'd bytes grow. ``mallinfo2`` counts bytes handed out by malloc, in every arena, plus
mmap'd chunks: it sees that growth. Python's small objects live in pymalloc arenas that are
mmap'd directly and are not in it; objects over 512 bytes and tracemalloc's tables are.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                 "fordblks", "keepcost")]


def _load() -> object | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        func = libc.mallinfo2
    except (OSError, AttributeError):  # musl, or glibc < 2.33
        return None
    func.restype = _Mallinfo2
    func.argtypes = []
    return func


_mallinfo2 = _load()


def malloc_in_use() -> int | None:
    """Bytes malloc has handed out and not got back (uordblks + hblkhd), or None where unknown."""
    if _mallinfo2 is None:
        return None
    info = _mallinfo2()
    return int(info.uordblks + info.hblkhd)
