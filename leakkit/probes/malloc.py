"""Bytes in use by the allocators under Python: glibc's malloc (``mallinfo2``) and pymalloc.

RSS misses a native leak that reuses memory the process already has resident (a long-running
process frees plenty, and glibc raises its mmap threshold after large frees), so RSS stays flat
while malloc'd bytes grow. ``mallinfo2`` counts bytes handed out by malloc, in every arena, plus
mmap'd chunks: it sees that growth. Python's small objects (<= 512 bytes) live in pymalloc arenas
that are mmap'd directly and are not in it; objects over 512 bytes, numpy buffers, C extensions'
memory and tracemalloc's tables are.

pymalloc's own count of bytes in allocated blocks comes from ``_PyObject_DebugMallocStats`` (the
report ``sys._debugmallocstats()`` prints), written into an in-memory stream instead of stderr:
~40 us in a process of half a million objects. The two together are the bytes a process's
Python code holds, whichever allocator holds them (:func:`allocated_bytes`).
"""
from __future__ import annotations

import ctypes
import re
import sys


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                 "fordblks", "keepcost")]


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        # "libc.so.6" is already loaded: dlopen only finds it. ctypes.util.find_library would run
        # ldconfig in a subprocess and import subprocess and shutil (~2.5 MiB in a server's worker,
        # where the monitor reads these counters), so it is only the fallback.
        return ctypes.CDLL("libc.so.6")
    except OSError:
        pass
    try:
        from ctypes.util import find_library

        return ctypes.CDLL(find_library("c") or None)
    except OSError:
        return None


_LIBC = _libc()


def _load() -> object | None:
    if _LIBC is None:
        return None
    try:
        func = _LIBC.mallinfo2
    except AttributeError:  # musl, or glibc < 2.33
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


def _load_stats() -> tuple | None:
    if _LIBC is None:
        return None
    try:
        stats = ctypes.pythonapi._PyObject_DebugMallocStats
        memstream = _LIBC.open_memstream
        fclose, free = _LIBC.fclose, _LIBC.free
    except AttributeError:
        return None
    stats.argtypes, stats.restype = [ctypes.c_void_p], ctypes.c_int
    memstream.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t)]
    memstream.restype = ctypes.c_void_p
    fclose.argtypes, fclose.restype = [ctypes.c_void_p], ctypes.c_int
    free.argtypes, free.restype = [ctypes.c_void_p], None
    # the buffer and its size live as long as the module: a reading allocates no ctypes objects
    return stats, memstream, fclose, free, ctypes.c_void_p(), ctypes.c_size_t()


_STATS = _load_stats()
_ALLOCATED = re.compile(rb"# bytes in allocated blocks\s*=\s*([0-9,]+)")


def pymalloc_in_use() -> int | None:
    """Bytes in pymalloc's allocated blocks (objects of <= 512 bytes), 0 when Python runs without
    pymalloc (``PYTHONMALLOC=malloc``: then malloc holds everything), None where unknown: also while
    an allocator hook sits over pymalloc (tracemalloc tracing), when CPython's report says nothing
    though pymalloc holds blocks (``sys.getallocatedblocks()``): reading 0 then would be a drop by the
    whole small-object heap, and a jump back when tracing stops."""
    if _STATS is None:
        return None
    stats, memstream, fclose, free, buffer, size = _STATS
    stream = memstream(ctypes.byref(buffer), ctypes.byref(size))
    if not stream:
        return None
    try:
        enabled = stats(stream)
    finally:
        fclose(stream)  # sets buffer and size
    try:
        if not enabled:
            return 0 if sys.getallocatedblocks() == 0 else None
        match = _ALLOCATED.search(ctypes.string_at(buffer.value, size.value))
    finally:
        free(buffer.value)
        buffer.value = None
    return int(match.group(1).replace(b",", b"")) if match else None


def allocated_bytes() -> int | None:
    """Bytes held through pymalloc and malloc together (None unless both can be read).

    Read after a garbage collection, its growth is what code kept, whichever allocator holds it:
    small objects (pymalloc), large ones and their buffers (bytearray, array.array, list and dict
    tables over 512 bytes), numpy arrays and C extensions (malloc).
    """
    small = pymalloc_in_use()
    if small is None:
        return None
    large = malloc_in_use()
    if large is None:
        return None
    return small + large
