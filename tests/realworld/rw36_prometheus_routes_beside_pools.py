"""The order API's outbound client of rw35 with its fix: latencies are labelled by route template
(``/orders/<id>``), so the metric keeps one child per route; the warehouse calls still go
through one ``urllib3.PoolManager(num_pools=100)`` whose pools fill towards their bound.

Look-alike (prometheus_client, urllib3): a fixed service beside a cache that fills is not a leak.
The pools (one per warehouse host, 400 hosts) reach 100 after 100 calls and then evict; nothing
else grows.
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


def reserve_stock(order: int) -> int | None:
    LATENCY.labels(method="POST", path="/orders/<id>").observe(0.004 + order % 50 / 1000)
    warehouse = order % 400
    url = f"http://127.1.{warehouse // 200 + 1}.{warehouse % 200 + 1}:9/reserve"
    try:
        return POOLS.request("POST", url, body=f'{{"order": {order}}}'.encode()).status
    except urllib3.exceptions.HTTPError:
        return None


def workload():
    reserve_stock(next(_seq))


TARGETS = [sys.modules[__name__], prometheus_client.metrics, urllib3.poolmanager]
EXPECT = {"verdict": ["plateau", "inconclusive"], "culprit": [None], "root": []}
TRUTH = {"kind": "bounded", "calls": 400, "checkpoints": 20}
