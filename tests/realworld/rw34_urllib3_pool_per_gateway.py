"""A metrics pusher for a fleet of devices: each device's readings go to that device's own
gateway (``http://127.0.<a>.<b>:9/api/v1/import``) through one ``urllib3.PoolManager(num_pools=150)``.

Look-alike (urllib3), a real enforced bound that fills. The manager keeps a connection pool per
host in ``pools``, a ``RecentlyUsedContainer`` whose ``__setitem__`` pops the least recently used
pool once it holds more than ``num_pools``: 150 pools after 150 devices, then it stays there.
(The gateways refuse the connection here; the pool is made before the connection is tried.)
"""
import itertools
import sys

import urllib3

POOLS = urllib3.PoolManager(num_pools=150, retries=False, timeout=0.5)
_seq = itertools.count()


def push(device: int, readings: list[float]) -> int | None:
    url = f"http://127.0.{device // 250 % 250 + 1}.{device % 250 + 1}:9/api/v1/import"
    body = ";".join(f"temp{{device={device}}} {r:.2f}" for r in readings).encode()
    try:
        return POOLS.request("POST", url, body=body).status
    except urllib3.exceptions.HTTPError:
        return None  # the gateway is down: the next push tries again


def workload():
    n = next(_seq)
    push(n % 5000, [20.0 + (n % 17) / 4, 21.5, 19.75])


TARGETS = [sys.modules[__name__], urllib3.poolmanager, urllib3._collections]
EXPECT = {"verdict": ["plateau", "inconclusive"], "culprit": [None], "root": []}
TRUTH = {"kind": "bounded", "calls": 450, "checkpoints": 18}
