"""A C buffer is allocated for every frame decoded and never freed: the Python heap stays flat."""
import ctypes
import ctypes.util

EXPECT = {"verdict": ["leak"], "culprit": ["decode_frame"], "root": []}

_libc = ctypes.CDLL(ctypes.util.find_library("c"))
_libc.malloc.restype = ctypes.c_void_p
_libc.malloc.argtypes = [ctypes.c_size_t]
_libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
SIZE = 96 * 1024


def decode_frame(n):
    buf = _libc.malloc(SIZE)
    _libc.memset(buf, n % 251, SIZE)  # touch the pages so they become resident
    return n


def handle(n):
    return decode_frame(n) + 1


_n = [0]


def workload():
    _n[0] += 1
    handle(_n[0])
