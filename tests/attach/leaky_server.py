"""A real HTTP server (http.server, threads) with a planted leak, started without leakkit.

Endpoints: ``/work`` opens a cart (kept forever in ``shop_sessions.SESSIONS`` unless ``--fixed``),
``/ping`` answers at once, ``/status`` tells what the tests check from outside: RSS, bytes held by live objects, bytes free in malloc's heaps, threads,
tracemalloc, the modules of leakkit loaded, the carts kept, the worst gap a thread ticking every
millisecond saw since the last ``/status?reset=1``. ``--heap N`` builds N objects first (a heap
of about N objects for the stall measurement); ``--blob B`` is what each cart keeps; ``--block-main``
serves from a thread while the main thread waits in C until ``/release-main``. Prints its port, then serves.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import re
import sys
import threading
import time
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shop_sessions  # noqa: E402

COUNTER = iter(range(10**9))
MAIN_RELEASE = threading.Event()  # --block-main: the main thread waits on it in C until /release-main
MAIN_TICKS = [0]  # then counts its turns of a Python loop
GAPS = {"worst": 0.0, "ticks": 0}
BALLAST: list = []


def ticker() -> None:
    last = time.perf_counter()
    while True:
        time.sleep(0.001)
        now = time.perf_counter()
        GAPS["worst"] = max(GAPS["worst"], now - last)
        GAPS["ticks"] += 1
        last = now


LONG_COLLECTIONS: list = []  # (generation, seconds, thread) of the collections over 20 ms, with --ticker
_GC_START = [0.0]


def watch_gc(phase: str, info: dict) -> None:
    if phase == "start":
        _GC_START[0] = time.perf_counter()
    elif time.perf_counter() - _GC_START[0] > 0.02:
        LONG_COLLECTIONS.append((info["generation"], round(time.perf_counter() - _GC_START[0], 4), round(time.time() % 1000, 2),
                                 threading.current_thread().name))


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


_LIBC = ctypes.CDLL("libc.so.6")
_LIBC.mallinfo2.restype = _Mallinfo2
_STATS = ctypes.pythonapi._PyObject_DebugMallocStats
_STATS.argtypes, _STATS.restype = [ctypes.c_void_p], ctypes.c_int
_LIBC.open_memstream.restype = ctypes.c_void_p
_LIBC.open_memstream.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t)]
_LIBC.fclose.argtypes = [ctypes.c_void_p]
_LIBC.free.argtypes = [ctypes.c_void_p]


def held() -> int | None:
    """Bytes live objects hold, whatever the allocator keeps resident beside them: pymalloc's allocated
    blocks (its stats report, written to memory) plus malloc's bytes in use (mallinfo2); None while
    tracemalloc's hook hides pymalloc's report. Kept apart from leakkit's probes on purpose: the
    server must not import leakkit."""
    buffer, size = ctypes.c_void_p(), ctypes.c_size_t()
    stream = _LIBC.open_memstream(ctypes.byref(buffer), ctypes.byref(size))
    enabled = _STATS(stream)
    _LIBC.fclose(stream)
    text = ctypes.string_at(buffer.value, size.value)
    _LIBC.free(buffer.value)
    if not enabled:
        return None
    small = int(re.search(rb"# bytes in allocated blocks\s*=\s*([0-9,]+)", text).group(1).replace(b",", b""))
    info = _LIBC.mallinfo2()
    return small + info.uordblks + info.hblkhd


def malloc_free() -> int:
    """Bytes free inside malloc's heaps (mallinfo2's fordblks): resident, kept for reuse, held by nothing."""
    return _LIBC.mallinfo2().fordblks


def rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path.startswith("/release-main"):
            MAIN_RELEASE.set()
            body = b"released"
        elif self.path.startswith("/work"):
            number = next(COUNTER)
            shop_sessions.open_cart(number)
            shop_sessions.close_cart(number)
            body = b"ok"
        elif self.path.startswith("/status"):
            body = json.dumps({
                "pid": os.getpid(), "rss": rss(), "held": held(), "malloc_free": malloc_free(), "threads": [t.name for t in threading.enumerate()],
                "tracing": tracemalloc.is_tracing(), "carts": len(shop_sessions.SESSIONS),
                "leakkit_modules": sorted(m for m in sys.modules if m.startswith("leakkit")),
                "worst_gap_s": GAPS["worst"], "ticks": GAPS["ticks"], "freeze_count": gc.get_freeze_count(),
                "long_collections": LONG_COLLECTIONS, "main_ticks": MAIN_TICKS[0],
            }).encode()
            if "reset=1" in self.path:
                GAPS["worst"] = 0.0
                GAPS["ticks"] = 0
                LONG_COLLECTIONS.clear()
        else:
            body = b"pong"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class Node:
    def __init__(self, i: int) -> None:
        self.i = i
        self.tag = f"n{i}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fixed", action="store_true")
    parser.add_argument("--heap", type=int, default=0, help="objects of ballast (about)")
    parser.add_argument("--ticker", action="store_true")
    parser.add_argument("--blob", type=int, default=4096, help="bytes each cart keeps")
    parser.add_argument("--block-main", action="store_true",
                        help="serve from a thread while the main thread waits in C for good")
    args = parser.parse_args()
    shop_sessions.FIXED = args.fixed
    shop_sessions.BLOB = args.blob
    if args.heap:
        n = args.heap // 4
        BALLAST.extend(Node(i) for i in range(n))  # a Node, its str: ~2 objects; dicts and lists below
        BALLAST.extend({"k": i} for i in range(n // 2))
        BALLAST.extend([i] for i in range(n // 2))
        gc.collect()
    if args.ticker:
        threading.Thread(target=ticker, name="ticker", daemon=True).start()
        gc.callbacks.append(watch_gc)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    if args.block_main:  # a main thread that runs no Python code (3.10/3.11 run injected code there only)
        threading.Thread(target=server.serve_forever, args=(0.05,), name="serve", daemon=True).start()
        MAIN_RELEASE.wait()  # in C, until /release-main
        while True:
            MAIN_TICKS[0] += 1
            time.sleep(0.01)
    server.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main()
