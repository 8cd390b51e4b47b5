"""The service notebook 06 runs under gunicorn: a checkout API as a plain WSGI app, ``checkout_app:app``.

- ``POST /checkout`` (the leak): every request opens an ``OrderContext`` (its id, headers, a
  64 KiB payload, the handler that serves it) and registers it in the
  module-level ``PENDING`` dict; the release never removes it. ``CHECKOUT_FIXED=1`` is the fixed
  release: the context is popped when the request ends.
- ``GET /catalog/<n>``: an ``lru_cache(maxsize=32)`` of ~32 KiB fragments over 64 keys: it
  fills, then replaces entries (memory that rises at the start, then stops: not a leak).
- ``GET /health``: leaves a small cycle of garbage the collector frees later.
- ``GET /whoami?hold=S``: the worker's pid, after holding the worker S seconds (concurrent calls
  then reach every worker: how the notebook knows each one is serving).

Only the leak differs between the two releases.
"""
from __future__ import annotations

import functools
import itertools
import json
import os
import time

FIXED = os.environ.get("CHECKOUT_FIXED", "") == "1"
PAYLOAD_BYTES = 64 * 1024
PENDING: dict[str, OrderContext] = {}  # the bug: contexts registered here are never removed
_ids = itertools.count()


class Handler:
    """What serves one order (it knows its order by id: no reference cycle, so a context that is
    let go is freed at once, not at the collector's next full pass)."""

    def __init__(self, order_id: str) -> None:
        self.order_id = order_id
        self.steps: list[str] = []


class OrderContext:
    """One checkout request's state: the object the leaking release keeps in ``PENDING``."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.id = f"order-{os.getpid()}-{next(_ids)}"
        self.headers = headers
        self.started = time.time()
        self.payload = bytearray(PAYLOAD_BYTES)  # the bulk of what a context holds
        self.handler = Handler(self.id)


def checkout(headers: dict[str, str]) -> dict:
    context = OrderContext(headers)
    PENDING[context.id] = context
    try:
        context.handler.steps.extend(("validate", "reserve", "charge"))
        return {"order": context.id, "steps": len(context.handler.steps)}
    finally:
        if FIXED:  # the fix: the request's context goes when the request ends
            PENDING.pop(context.id, None)


@functools.lru_cache(maxsize=32)
def render_fragment(key: int) -> str:
    line = f"<li>item {key}</li>"
    return line * (32 * 1024 // len(line))


def catalog(key: int) -> dict:
    return {"key": key, "length": len(render_fragment(key % 64))}


def health() -> dict:
    node: dict = {"parts": [str(i) * 8 for i in range(40)]}
    node["self"] = node  # garbage with a cycle: freed by the collector, not a leak
    return {"ok": True}


def whoami(hold: float) -> dict:
    time.sleep(min(max(hold, 0.0), 5.0))
    return {"pid": os.getpid(), "fixed": FIXED}


def app(environ, start_response):
    """The WSGI entry point: routes a request to the functions above."""
    method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
    if method == "POST" and path == "/checkout":
        headers = {k[5:].lower(): str(v) for k, v in environ.items() if k.startswith("HTTP_")}
        body = checkout(headers)
    elif method == "GET" and path.startswith("/catalog/") and path[9:].isdigit():
        body = catalog(int(path[9:]))
    elif method == "GET" and path == "/health":
        body = health()
    elif method == "GET" and path == "/whoami":
        query = environ.get("QUERY_STRING", "")
        body = whoami(float(query[5:]) if query.startswith("hold=") else 0.0)
    else:
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [b'{"error": "not found"}']
    data = json.dumps(body).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
