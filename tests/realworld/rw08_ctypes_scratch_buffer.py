"""An image-thumbnail worker that asks libc for an 8 KiB scratch buffer per job through ctypes
and forgets to free it on the normal path.

Real native leak (ctypes, libc). The buffer is malloc'd memory outside Python's allocator:
tracemalloc sees nothing, the Python heap is flat; malloc's own count (mallinfo2) rises by
8 KiB per call, and RSS with it (the buffer is written, so its pages are touched). The fix frees
it in a ``finally``.
"""
import ctypes
import ctypes.util
import itertools
import sys

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
_libc.malloc.restype = ctypes.c_void_p
_libc.malloc.argtypes = [ctypes.c_size_t]
_libc.free.argtypes = [ctypes.c_void_p]
SCRATCH_BYTES = 8192
_jobs = itertools.count()


def _checksum(buf: int, size: int) -> int:
    view = (ctypes.c_ubyte * size).from_address(buf)
    return sum(view[::512])


def make_thumbnail(job: int, pixels: bytes) -> int:
    buf = _libc.malloc(SCRATCH_BYTES)
    ctypes.memset(buf, job & 0xFF, SCRATCH_BYTES)
    ctypes.memmove(buf, pixels, min(len(pixels), SCRATCH_BYTES))
    return _checksum(buf, SCRATCH_BYTES)  # buf is never freed


def make_thumbnail_fixed(job: int, pixels: bytes) -> int:
    buf = _libc.malloc(SCRATCH_BYTES)
    try:
        ctypes.memset(buf, job & 0xFF, SCRATCH_BYTES)
        ctypes.memmove(buf, pixels, min(len(pixels), SCRATCH_BYTES))
        return _checksum(buf, SCRATCH_BYTES)
    finally:
        _libc.free(buf)


PIXELS = bytes(range(256)) * 4


def workload():
    make_thumbnail(next(_jobs), PIXELS)


def workload_fixed():
    make_thumbnail_fixed(next(_jobs), PIXELS)


TARGETS = [sys.modules[__name__], ctypes]
EXPECT = {"verdict": ["leak"], "culprit": ["make_thumbnail"], "root": [],
          "says": ["native", "outside python", "malloc"]}
TRUTH = {"kind": "native", "calls": 200, "min_bytes_per_call": 7000}
