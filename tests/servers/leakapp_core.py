"""What the test servers do, shared by the Flask app and its ASGI twin: modelled on the field case.

A service on a prefork server (gunicorn) whose workers grow until their memory limit kills them.
Per worker, under the harness's load (:mod:`servers.harness`):

- ``/internal/sync`` (the leak): every request opens a per-request context (its id, headers, a
  payload of ``LEAKAPP_LEAK_BYTES`` bytes, a handler that refers back to it: a reference cycle)
  and stores it in the module-level ``CONTEXTS`` dict; the release never removes it.
  ``LEAKAPP_FIXED=1`` is the fixed release: the context is popped when the request ends.
- ``/catalog/<key>``: an ``lru_cache(maxsize=CATALOG_SIZE)`` of rendered fragments over
  ``2 * CATALOG_SIZE`` keys: it fills, then replaces entries (memory that rises, then stops).
- ``/login``: a hand-bounded session dict (``SESSION_LIMIT`` entries, the oldest evicted).
- ``/``, ``/health``, ``/items/<n>``: ordinary endpoints; every request leaves a small cycle of
  garbage that the collector frees later. ``/items/<n>`` also reads 200 rows of ``REFERENCE``, a
  table of ``LEAKAPP_REFERENCE_ROWS`` small objects built at import (default none): with
  ``--preload`` it is built in the master and shared after the fork, and each read writes
  reference counts, so the worker's pages turn private one by one (copy-on-write unsharing: USS
  rises toward RSS while RSS stays flat).
- ``/whoami?hold=S``: the worker's pid, after holding the worker S seconds (so that concurrent
  calls spread over the workers: how the harness knows every worker is serving).

The caches and cycles are the same in the fixed release: only the leak goes. With
``LEAKAPP_STATS_DIR`` set, each worker writes ``<pid>.json`` there (requests, leaked contexts and
their payload bytes, at most once a second and at exit): the ground truth of how much it kept.
"""
from __future__ import annotations

import functools
import itertools
import json
import os
import time

FIXED = os.environ.get("LEAKAPP_FIXED", "") == "1"
LEAK_BYTES = int(os.environ.get("LEAKAPP_LEAK_BYTES", "6144"))
CATALOG_SIZE = int(os.environ.get("LEAKAPP_CATALOG_SIZE", "32"))
FRAGMENT_BYTES = 32 * 1024
SESSION_LIMIT = int(os.environ.get("LEAKAPP_SESSION_LIMIT", "16"))
SESSION_BYTES = 32 * 1024
STATS_DIR = os.environ.get("LEAKAPP_STATS_DIR") or None

REFERENCE = [{"id": i, "name": f"row-{i}", "tags": [f"t{i % 7}", f"g{i % 13}"]}
             for i in range(int(os.environ.get("LEAKAPP_REFERENCE_ROWS", "0")))]
CONTEXTS: dict[str, RequestContext] = {}  # the leak: per-request contexts nobody removes
SESSIONS: dict[int, bytes] = {}           # bounded by hand to SESSION_LIMIT
_ids = itertools.count()
_stats = {"pid": 0, "requests": 0, "leaked": 0, "leaked_bytes": 0, "written": 0.0}


class Handler:
    """What serves one context; refers back to it (a reference cycle, as frameworks make)."""

    def __init__(self, context: RequestContext) -> None:
        self.context = context
        self.steps: list[str] = []


class RequestContext:
    """One request's state: the object the leaking release keeps in ``CONTEXTS``."""

    def __init__(self, path: str, headers: dict[str, str]) -> None:
        self.id = f"req-{os.getpid()}-{next(_ids)}"
        self.path = path
        self.headers = dict(headers)
        self.started = time.time()
        self.payload = b"x" * LEAK_BYTES  # touched: resident at once
        self.handler = Handler(self)


def _count(leaked: int = 0) -> None:
    _stats["requests"] += 1
    _stats["leaked"] += leaked
    _stats["leaked_bytes"] += leaked * LEAK_BYTES
    if STATS_DIR and time.monotonic() - _stats["written"] >= 1.0:
        write_stats()


def write_stats() -> None:
    """This worker's counts to ``STATS_DIR/<pid>.json`` (replaced atomically)."""
    if not STATS_DIR:
        return
    _stats["written"] = time.monotonic()
    pid = os.getpid()
    path = os.path.join(STATS_DIR, f"{pid}.json")
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump({**_stats, "pid": pid, "live_contexts": len(CONTEXTS), "unix_time_s": time.time()}, handle)
    os.replace(path + ".tmp", path)


def internal_sync(path: str, headers: dict[str, str]) -> dict:
    """The leaking endpoint: its context stays in CONTEXTS unless the release is fixed."""
    context = RequestContext(path, headers)
    CONTEXTS[context.id] = context
    try:
        context.handler.steps.extend(("parse", "sync", "reply"))
        return {"id": context.id, "steps": len(context.handler.steps)}
    finally:
        if FIXED:
            CONTEXTS.pop(context.id, None)
        _count(0 if FIXED else 1)


@functools.lru_cache(maxsize=CATALOG_SIZE)
def render_fragment(key: int) -> str:
    """A rendered catalogue fragment (~32 KiB), cached: the cache fills, then replaces."""
    line = f"<li>item {key}</li>"
    return line * (FRAGMENT_BYTES // len(line))


def catalog(key: int) -> dict:
    fragment = render_fragment(key % (2 * CATALOG_SIZE))
    _count()
    return {"key": key, "length": len(fragment)}


def login(user: int) -> dict:
    """A session per login, in a dict bounded by hand (the oldest goes)."""
    SESSIONS[user] = b"s" * SESSION_BYTES
    while len(SESSIONS) > SESSION_LIMIT:
        SESSIONS.pop(next(iter(SESSIONS)))
    _count()
    return {"user": user, "sessions": len(SESSIONS)}


def ordinary(name: str, number: int | None = None) -> dict:
    """An ordinary endpoint; leaves a small cycle of garbage that the collector frees later."""
    if number is not None and REFERENCE:  # a read of the shared table: writes reference counts
        start = (number * 7919) % len(REFERENCE)
        _ = [row["name"] for row in REFERENCE[start:start + 200]]
    node: dict = {"name": name, "parts": [str(i) * 8 for i in range(40)]}
    node["self"] = node
    _count()
    return {"name": name, "parts": len(node["parts"])}


def whoami(hold: float) -> dict:
    time.sleep(min(max(hold, 0.0), 5.0))  # holds this worker: concurrent calls reach the others
    _count()
    return {"pid": os.getpid(), "fixed": FIXED}
