"""The fixed twin of rw40: the inventory gateway passes its per-request audit hook to the request
(``SESSION.get(url, hooks={"response": record})``) instead of appending it to the session's hooks.

Look-alike (requests + urllib3): only the cache that fills and then evicts is left. The
session's adapter keeps one connection pool per backend (64 on 127.0.0.1) in urllib3's
``RecentlyUsedContainer`` of ``pool_connections=48``: it fills for 48 calls (~6 KB a pool), then
drops the least recently used pool for each new one. Bounded, never a leak.
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

    response = SESSION.get(f"http://127.0.0.1:{port}/stock/{sku}", timeout=10, hooks={"response": record})
    return response.json()["on_hand"]


def workload():
    n = next(_seq)
    stock_level(f"SKU{n:06d}", PORTS[n % BACKENDS])


TARGETS = [sys.modules[__name__], requests, requests.Session, requests.adapters, urllib3.poolmanager]
EXPECT = {"verdict": ["plateau", "inconclusive", "clean"], "culprit": [None], "root": []}
TRUTH = {"kind": "bounded", "calls": 400, "checkpoints": 16}
