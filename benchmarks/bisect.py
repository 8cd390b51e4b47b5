"""Speed of leakkit.bisect in a process with ~450 k live objects and heavy per-call churn.

Prints, measured in one run: the seconds of a 60-call bisect (target <= 3 s), and the seconds of
the plain approach it replaces, a full ``gc.collect()`` and a memory reading around every call
(which tells the total only, not the function), with their ratio.

    python benchmarks/bisect.py
"""
from __future__ import annotations

import os
import sys

# This file is named like the standard library's bisect module: keep its folder off the path.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]

import gc  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402

import leakkit  # noqa: E402

# -- a process with a big heap: ~450 k live objects --------------------------------------------
BIG = [{"id": i, "tags": [i, str(i)], "name": f"obj-{i}"} for i in range(220_000)]

worker = types.ModuleType("bench_worker")
exec('''
SEEN = {}

def parse(n):
    rows = [{"k": i, "v": str(i) * 3} for i in range(400)]      # heavy churn, all freed
    text = ",".join(r["v"] for r in rows)
    return len(text)

def remember(n):
    SEEN[f"req-{n}"] = (n, "seen")                              # the leak: one entry per call

_n = [0]

def workload():
    _n[0] += 1
    parse(_n[0])
    remember(_n[0])
''', worker.__dict__)
sys.modules["bench_worker"] = worker


def live_objects() -> int:
    gc.collect()
    return len(gc.get_objects())


def plain(calls: int) -> float:
    """The by-hand method: full collection and a reading around every call."""
    t0 = time.perf_counter()
    readings = []
    for _ in range(calls):
        gc.collect()
        before = sys.getallocatedblocks()
        worker.workload()
        gc.collect()
        readings.append(sys.getallocatedblocks() - before)
    return time.perf_counter() - t0


def main() -> None:
    print(f"live objects tracked by the GC: {live_objects():,}")
    worker.workload()
    times_plain, times_bisect = [], []
    report = None
    for _ in range(3):  # interleaved, medians: the machine is noisy
        times_plain.append(plain(60))
        t0 = time.perf_counter()
        report = leakkit.bisect(worker.workload, targets=[worker], calls=60, progress=False)
        times_bisect.append(time.perf_counter() - t0)
    p = sorted(times_plain)[1]
    b = sorted(times_bisect)[1]
    print(f"bisect 60 calls: {b:.2f} s (target <= 3 s)   plain gc.collect around every call: {p:.2f} s   "
          f"ratio bisect/plain: {b / p:.2f}x")
    print(f"verdict={report.verdict} culprit={report.culprit} retention={report.retention[:1]}")


if __name__ == "__main__":
    main()
