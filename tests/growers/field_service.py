"""The field service of issue 20: a Flask app driven through its test client, with a real leak
beside caches that fill.

* the leak: every request opens a per-request context kept in the module-level ``CONTEXTS``;
  the order path closes it, the internal sync path (``/internal/sync``) never does: ~4 KiB a
  call stay behind (headers, the JSON payload, the rendered spans);
* a hand-bounded dict cache, ``DNS_CACHE``: ``resolve`` keeps up to ``DNS_CACHE_MAX`` (512)
  hosts, then evicts the oldest: one new host a call, so it fills after 512 calls;
* two ``lru_cache`` s that fill: ``parse_user_agent`` (128) and ``tenant_settings`` (256);
* reference cycles per request (a span tree with parent links), freed by the collector.

``workload`` is one call of the buggy service; ``workload_fixed`` the same service with the
context closed on the internal path too (``FIELD_SERVICE_FIXED=1`` in the environment picks
the fixed one for ``workload`` as well, for runners that only call ``workload``).
``FIELD_SERVICE_SEED`` shifts the request numbers (tenants, hosts, user agents) a run starts
from; ``reset()`` forgets everything the service and its caches hold (a fresh start in-process).
"""
from __future__ import annotations

import functools
import itertools
import os

import flask

CONTEXTS: dict[str, RequestContext] = {}
DNS_CACHE: dict[str, dict] = {}
DNS_CACHE_MAX = 512
_ids = itertools.count()


class RequestContext:
    """What one request carries while it runs."""

    def __init__(self, rid: str, kind: str) -> None:
        self.rid = rid
        self.kind = kind
        self.headers: dict | None = None
        self.body = b""
        self.spans = ""


def open_context(rid: str, kind: str) -> RequestContext:
    ctx = RequestContext(rid, kind)
    CONTEXTS[rid] = ctx
    return ctx


def close_context(rid: str) -> None:
    CONTEXTS.pop(rid, None)


def resolve(host: str) -> dict:
    """The address of ``host``, cached: at most DNS_CACHE_MAX hosts, the oldest evicted first."""
    entry = DNS_CACHE.get(host)
    if entry is None:
        if len(DNS_CACHE) >= DNS_CACHE_MAX:
            DNS_CACHE.pop(next(iter(DNS_CACHE)))
        entry = {"host": host, "ttl": 300, "addresses": [f"10.{i}.{len(host)}.{hash(host) % 251}" for i in range(8)],
                 "resolver": f"udp://10.0.0.53:53#{host}", "answer": f"{host} 300 IN A 10.0.0.1 ; " * 12}
        DNS_CACHE[host] = entry
    return entry


@functools.lru_cache(maxsize=128)
def parse_user_agent(header: str) -> dict:
    product, _, rest = header.partition("/")
    version, _, platform = rest.partition(" ")
    return {"product": product, "version": tuple(version.split(".")), "platform": platform.strip("()"),
            "raw": header}


@functools.lru_cache(maxsize=256)
def tenant_settings(tenant: str) -> dict:
    return {"tenant": tenant, "currency": "EUR", "limits": [100 * i for i in range(10)],
            "features": {f"flag-{i}": i % 2 == 0 for i in range(6)}}


class Span:
    """A node of a request's span tree: children refer to their parent (cycles)."""

    def __init__(self, name: str, parent: Span | None = None) -> None:
        self.name = name
        self.parent = parent
        self.children: list[Span] = []
        if parent is not None:
            parent.children.append(self)


def build_spans(rid: str) -> Span:
    root = Span(f"request {rid}")
    for step in ("auth", "load", "price", "store"):
        child = Span(step, root)
        Span(f"{step}.db", child)
    return root


def render_spans(root: Span) -> str:
    out, stack = [], [(root, 0)]
    while stack:
        span, depth = stack.pop()
        out.append("  " * depth + f"{span.name} ok in {depth + 1} ms")
        stack.extend((c, depth + 1) for c in span.children)
    return "\n".join(out)


def handle(ctx: RequestContext, tenant: str) -> dict:
    request = flask.request
    ctx.headers = dict(request.headers)
    ctx.body = request.get_data()
    payload = request.get_json()
    agent = parse_user_agent(request.headers.get("User-Agent", "-"))
    settings = tenant_settings(tenant)
    ctx.spans = render_spans(build_spans(ctx.rid))
    address = resolve(payload["shard"])["addresses"][0]
    return {"rid": ctx.rid, "tenant": settings["tenant"], "agent": agent["product"], "db": address,
            "lines": len(payload["lines"])}


def create_app(*, fixed: bool) -> flask.Flask:
    app = flask.Flask("field_service")

    @app.post("/orders/<tenant>")
    def create_order(tenant: str):
        rid = request_id()
        open_context(rid, "order")
        try:
            return flask.jsonify(handle(CONTEXTS[rid], tenant))
        finally:
            close_context(rid)

    @app.post("/internal/sync/<tenant>")
    def internal_sync(tenant: str):
        rid = request_id()
        ctx = open_context(rid, "sync")
        result = handle(ctx, tenant)
        if fixed:
            close_context(rid)
        return flask.jsonify(result)  # the bug: the sync path never closes its context

    return app


def request_id() -> str:
    return flask.request.headers.get("X-Request-Id") or f"req-{next(_ids)}"


def _client(fixed: bool):
    return create_app(fixed=fixed).test_client()


_SEED = int(os.environ.get("FIELD_SERVICE_SEED", "0"))
_seq = itertools.count(_SEED * 7919)
_CLIENTS: dict[bool, flask.testing.FlaskClient] = {}


def reset() -> None:
    """Forget the contexts, the caches and the clients: the service as just started."""
    global _seq
    CONTEXTS.clear()
    DNS_CACHE.clear()
    parse_user_agent.cache_clear()
    tenant_settings.cache_clear()
    _CLIENTS.clear()
    _seq = itertools.count(_SEED * 7919 + 100_000)


def _call(fixed: bool) -> None:
    client = _CLIENTS.get(fixed)
    if client is None:
        client = _CLIENTS[fixed] = _client(fixed)
    n = next(_seq)
    tenant = f"tenant-{n % 300}"
    body = {"shard": f"{tenant}.shard-{n}.db.internal", "lines": [{"sku": f"P{n % 97:05d}-{i}", "qty": i + 1}
                                                                   for i in range(60)],
            "note": f"order note {n} " * 60}
    headers = {"User-Agent": f"field-app/{n % 1000}.{n % 7}.0 (Android {n % 5 + 9})", "X-Request-Id": f"ord-{n}"}
    response = client.post(f"/orders/{tenant}", json=body, headers=headers)
    assert response.status_code == 200, response.status_code
    headers["X-Request-Id"] = f"sync-{n}"
    response = client.post(f"/internal/sync/{tenant}", json=body, headers=headers)
    assert response.status_code == 200, response.status_code


FIXED = os.environ.get("FIELD_SERVICE_FIXED") == "1"


def workload() -> None:
    """One call: an order and an internal sync, as the field app sends them."""
    _call(FIXED)


def workload_fixed() -> None:
    _call(True)
