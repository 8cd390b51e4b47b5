"""A sensor gateway that keeps each reading window (a 1 024-sample float64 numpy array) in a
module-level history list "for the dashboard", never trimmed.

Real leak (numpy). Each window's 8 KiB data buffer is allocated by numpy (traced by tracemalloc
through numpy's own domain) and kept by ``HISTORY``. The fix keeps a bounded ring
(``collections.deque(maxlen=...)``) or a preallocated 2-D array.
"""
import collections
import itertools
import sys

import numpy as np

HISTORY: list = []
RING = collections.deque(maxlen=32)
_seq = itertools.count()
_rng = np.random.default_rng(7)


def read_window(n: int) -> np.ndarray:
    return _rng.normal(20.0, 0.5, 1024) + n % 3


def ingest(n: int) -> float:
    window = read_window(n)
    HISTORY.append(window)
    return float(window.mean())


def ingest_fixed(n: int) -> float:
    window = read_window(n)
    RING.append(window)
    return float(window.mean())


def workload():
    ingest(next(_seq))


def workload_fixed():
    ingest_fixed(next(_seq))


def release():
    HISTORY.clear()


TARGETS = [sys.modules[__name__], np, np.random]
EXPECT = {"verdict": ["leak"], "culprit": ["read_window", "ingest"], "root": ["rw23_numpy_history.HISTORY"]}
TRUTH = {"kind": "leak", "calls": 200, "min_bytes_per_call": 8000, "root": "rw23_numpy_history.HISTORY",
         "root_grows_by": 0.95, "release": "release"}
