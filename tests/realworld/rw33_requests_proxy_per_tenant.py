"""A webhook sender on one shared ``requests.Session``: each tenant's calls go out through the
company's egress proxy with that tenant's own proxy credentials in the proxy URL
(``http://tenant-<id>:<token>@127.0.0.1:9``, as a per-tenant allow-list requires).

Real leak (requests), behind a declared-but-unenforced bound. ``HTTPAdapter.proxy_manager_for``
keeps one urllib3 ``ProxyManager`` per proxy URL in ``adapter.proxy_manager``, a plain dict that
nothing ever trims: one per tenant, with its pools, forever. The adapter also carries
``_pool_maxsize = 10`` (the connections each pool keeps), a limit named like a bound that bounds
nothing here: the dict passes 10 entries after 10 tenants and goes on. (The proxy refuses the
connection here: the manager is made before the connection is tried, as in production.)

Fixed usage: one proxy URL for every tenant (credentials in a ``Proxy-Authorization`` header).
"""
import itertools
import sys

import requests
import requests.adapters

SESSION = requests.Session()
_seq = itertools.count()


def send_webhook(tenant: int, event: dict, *, shared_proxy: bool = False) -> int | None:
    proxy = "http://127.0.0.1:9" if shared_proxy else f"http://tenant-{tenant}:tok{tenant * 7919 % 10007}@127.0.0.1:9"
    try:
        response = SESSION.post(f"http://hooks.example.invalid/t/{tenant}", json=event, timeout=0.5,
                                proxies={"http": proxy})
    except requests.RequestException:
        return None  # the sender retries later: logged, not raised
    return response.status_code


def workload():
    n = next(_seq)
    send_webhook(n, {"event": "order.paid", "order": n, "amount_cents": 1999 + n % 500})


def workload_fixed():
    n = next(_seq)
    send_webhook(n, {"event": "order.paid", "order": n, "amount_cents": 1999 + n % 500}, shared_proxy=True)


def release():
    SESSION.get_adapter("http://").proxy_manager.clear()


TARGETS = [sys.modules[__name__], requests.adapters, requests.sessions]
EXPECT = {"verdict": ["leak"], "culprit": ["HTTPAdapter.proxy_manager_for", "send_webhook"],
          "root": ["SESSION.adapters['http://'].proxy_manager"], "says": ["pool_maxsize=10 (past it"]}
TRUTH = {"kind": "leak", "calls": 150, "min_bytes_per_call": 1000,
         "root": "rw33_requests_proxy_per_tenant.SESSION.adapters['http://'].proxy_manager", "root_grows_by": 0.95,
         "release": "release"}
