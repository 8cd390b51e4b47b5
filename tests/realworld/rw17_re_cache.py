"""A multi-tenant router that matches each request path against the tenant's own prefix with
``re.match(f"^/{tenant}/orders/(\\d+)$", path)`` (2 000 tenants, one request each in turn).

Look-alike (stdlib). ``re`` keeps compiled patterns in ``re._cache`` (512 entries on 3.7-3.11;
3.12+ adds a small LRU beside it), dropping the oldest when full: ~1-2 KB per pattern for 512
calls, then flat. Bounded, never a leak.
"""
import re
import sys

TENANTS = [f"t{i:04d}" for i in range(2000)]
_n = [0]


def route(tenant: str, path: str) -> int | None:
    m = re.match(rf"^/{tenant}/orders/(\d+)$", path)
    return int(m.group(1)) if m else None


def workload():
    i = _n[0]
    _n[0] += 1
    tenant = TENANTS[i % len(TENANTS)]
    assert route(tenant, f"/{tenant}/orders/{i}") == i


TARGETS = [sys.modules[__name__], re]
EXPECT = {"verdict": ["plateau", "inconclusive"], "culprit": [None], "root": []}
TRUTH = {"kind": "bounded", "calls": 1400}
