"""A native leak into memory the process already holds (freed earlier): RSS stays flat, malloc grows."""
import ctypes
import ctypes.util

EXPECT = {"verdict": ["leak"], "culprit": ["decode"], "root": []}
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
big = [libc.malloc(1 << 20) for _ in range(64)]
for p in big:
    libc.memset(p, 1, 1 << 20)
for p in big:
    libc.free(p)
def decode(n):
    p = libc.malloc(200 * 1024)
    libc.memset(p, 2, 200 * 1024)
def workload():
    decode(1)
