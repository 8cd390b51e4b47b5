"""An inventory gateway that asks one of 64 warehouse backends (real HTTP servers on 127.0.0.1)
per request through one shared ``requests.Session``, and registers a per-request audit hook on the
session itself (``SESSION.hooks["response"].append(...)``) instead of passing it to the request.

Two growers at once (requests + urllib3). The leak: every request appends a closure (with its
audit context, ~1.5 KB) to the session's hook list, forever; every later response runs every old
hook too. Beside it, a cache that fills and then evicts: the session's adapter keeps one
connection pool per backend in urllib3's ``RecentlyUsedContainer`` of ``pool_connections=48``,
which fills for 48 calls and then drops the least recently used pool. The fix passes the hook
per request (``SESSION.get(url, hooks=...)``); the pool cache still fills, and is not a leak.
"""
import itertools
import selectors
import socket
import sys
import threading

import requests
import requests.adapters
import urllib3
import urllib3.poolmanager

BACKENDS = 64
_BODY = b'{"on_hand": 12, "reserved": 3}'
_REPLY = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
          b"Content-Length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY)


def _serve(listeners: list[socket.socket]) -> None:
    """One thread answers every backend: read a request head, send the reply, close."""
    sel = selectors.DefaultSelector()
    for s in listeners:
        sel.register(s, selectors.EVENT_READ, None)
    while True:
        for key, _ in sel.select():
            if key.data is None:
                conn, _addr = key.fileobj.accept()
                sel.register(conn, selectors.EVENT_READ, bytearray())
                continue
            chunk = key.fileobj.recv(65536)
            key.data.extend(chunk)
            if not chunk or b"\r\n\r\n" in key.data:
                sel.unregister(key.fileobj)
                if chunk:
                    key.fileobj.sendall(_REPLY)
                key.fileobj.close()


_listeners = []
for _ in range(BACKENDS):
    _s = socket.socket()
    _s.bind(("127.0.0.1", 0))
    _s.listen(64)
    _listeners.append(_s)
PORTS = [s.getsockname()[1] for s in _listeners]
threading.Thread(target=_serve, args=(_listeners,), daemon=True, name="warehouses").start()

SESSION = requests.Session()
SESSION.mount("http://", requests.adapters.HTTPAdapter(pool_connections=48, pool_maxsize=2))
_seq = itertools.count()


def stock_level(sku: str, port: int) -> int:
    audit = {"sku": sku, "backend": port, "tags": [f"warehouse:{port}", f"sku:{sku}", "gateway:eu-1"],
             "note": f"stock check for {sku} via {port} " * 40}

    def record(response, *args, **kwargs):
        audit["status"] = response.status_code
        return response

    SESSION.hooks["response"].append(record)  # the bug: a session-wide hook per request
    response = SESSION.get(f"http://127.0.0.1:{port}/stock/{sku}", timeout=10)
    return response.json()["on_hand"]


def workload():
    n = next(_seq)
    stock_level(f"SKU{n:06d}", PORTS[n % BACKENDS])


def release():
    SESSION.hooks["response"].clear()


TARGETS = [sys.modules[__name__], requests, requests.Session, requests.adapters, urllib3.poolmanager]
EXPECT = {"verdict": ["leak"], "culprit": ["stock_level"],
          "root": ["rw40_requests_session_hooks.SESSION.hooks"],
          "says": ["RecentlyUsedContainer", "still filling"]}  # the cache is reported beside the leak
TRUTH = {"kind": "leak", "calls": 300, "min_bytes_per_call": 800,
         "root": "rw40_requests_session_hooks.SESSION.hooks['response']", "root_grows_by": 0.95,
         "release": "release",
         # the pools the cache replaces during the release check were made before tracemalloc started
         # there: their successors read as growth that no release of the hooks frees (~300 KB)
         "release_frees": 0.6}
