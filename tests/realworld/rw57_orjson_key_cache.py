"""A telemetry ingester that decodes each device's JSON batch with ``orjson.loads``; the keys are
per device (``"dev-00042.temp_c"``: 30 metrics per device, a new device per request) and the
service keeps only the sum.

Look-alike (orjson), interning held from C. orjson caches the ``str`` objects of short dict keys
(up to 64 bytes) in a fixed-size associative cache inside the extension (2048 slots): each new
key makes a ``str`` that the cache keeps, with no Python referrer, until another key takes its
slot. So the first ~100 calls leave ~1 KB each of strings held from C, then the cache is full and
every new key replaces an old one: bounded (~125 KB), never a leak. Nothing in Python holds them.
"""
import itertools
import sys

import orjson

_seq = itertools.count()
METRICS = [f"m{k:02d}_{name}" for k, name in enumerate(["temp_c", "rh", "co2_ppm", "lux", "db", "volts"] * 5)]


def ingest(batch: bytes) -> float:
    readings = orjson.loads(batch)
    return sum(readings.values())


def workload():
    n = next(_seq)
    ingest(orjson.dumps({f"dev-{n:05d}.{metric}": float(k) for k, metric in enumerate(METRICS)}))


TARGETS = [sys.modules[__name__], orjson]
EXPECT = {"verdict": ["plateau", "inconclusive", "clean"], "culprit": [None], "root": []}
TRUTH = {"kind": "bounded", "calls": 1000, "checkpoints": 20}
