"""An order API's outbound client: every request records itself in a ``prometheus_client``
``Histogram`` of its latency labelled by the raw request path (``/orders/48213``), then calls the warehouse of
the order's region through one ``urllib3.PoolManager(num_pools=100)``.

Real leak (prometheus_client) beside a cache that fills (urllib3). A labelled metric keeps one
child per distinct label value, forever (``LATENCY._metrics``; a histogram child keeps a value per bucket): a raw path is a new label value
for every order. Beside it, the pool manager's ``pools`` fill towards their bound of 100 (one
pool per warehouse host, 400 of them) and then evict: growth that stops, not the leak.

Fixed usage (``workload_fixed``): label by the route template (``/orders/<id>``): only the pools
fill, and stop.
"""
import itertools
import sys

import prometheus_client
import urllib3

REGISTRY = prometheus_client.CollectorRegistry()
LATENCY = prometheus_client.Histogram("orders_latency_seconds", "Order API latency", ["method", "path"],
                                      registry=REGISTRY)
POOLS = urllib3.PoolManager(num_pools=100, retries=False, timeout=0.5)
_seq = itertools.count()


def record_request(method: str, path: str) -> None:
    LATENCY.labels(method=method, path=path).observe(0.004 + (hash(path) % 50) / 1000)


def reserve_stock(order: int, *, route_labels: bool = False) -> int | None:
    record_request("POST", "/orders/<id>" if route_labels else f"/orders/{order}")
    warehouse = order % 400
    url = f"http://127.1.{warehouse // 200 + 1}.{warehouse % 200 + 1}:9/reserve"
    try:
        return POOLS.request("POST", url, body=f'{{"order": {order}}}'.encode()).status
    except urllib3.exceptions.HTTPError:
        return None


def workload():
    reserve_stock(next(_seq))


def workload_fixed():
    reserve_stock(next(_seq), route_labels=True)


def release():
    LATENCY.clear()


TARGETS = [sys.modules[__name__], prometheus_client.metrics, urllib3.poolmanager]
EXPECT = {"verdict": ["leak"], "culprit": ["MetricWrapperBase.labels", "record_request"],
          "root": ["LATENCY._metrics"], "says": ["filling"]}
TRUTH = {"kind": "leak", "calls": 400, "min_bytes_per_call": 2000,
         "root": "rw35_prometheus_paths_beside_pools.LATENCY._metrics", "root_grows_by": 0.95,
         "release": "release"}
