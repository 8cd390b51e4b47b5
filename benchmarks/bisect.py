"""Speed of leakkit.bisect in processes with big heaps, held outside and inside the targets.

Prints, measured in one run (medians of interleaved repeats; the machine is noisy):

1. a 60-call bisect with ~450 k live objects and heavy per-call churn (target <= 3 s), against
   the plain approach it replaces: a full ``gc.collect()`` and a reading around every call;
2. the same bisect with ~2 M live objects held *elsewhere* (a module that is not a target), and
   with the same objects held *inside* the target module, next to the one-entry-per-call leak
   (target <= 3 s, and inside <= 2.5x elsewhere: the retention search must follow what grew,
   not walk what exists).

    python benchmarks/bisect.py [--quick]      (--quick: 1 repeat, smaller heaps)
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

QUICK = "--quick" in sys.argv
SOURCE = '''
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
'''


def make_worker(name: str) -> types.ModuleType:
    worker = types.ModuleType(name)
    exec(SOURCE, worker.__dict__)
    sys.modules[name] = worker
    return worker


def make_heap(n: int) -> list:
    return [{"id": i, "tags": [i, str(i)], "name": f"obj-{i}"} for i in range(n)]


def live_objects() -> int:
    gc.collect()
    return len(gc.get_objects())


def plain(worker: types.ModuleType, calls: int) -> float:
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


def timed_bisect(worker: types.ModuleType) -> tuple[float, object]:
    t0 = time.perf_counter()
    report = leakkit.bisect(worker.workload, targets=[worker], calls=60, progress=False)
    return time.perf_counter() - t0, report


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def check(report: object) -> str:
    ok = report.verdict == "leak" and report.culprit.endswith("remember") and \
        any("SEEN[" in p for p in report.retention[:1])
    return "right" if ok else f"WRONG: {report.verdict} {report.culprit} {report.retention[:1]}"


def main() -> None:
    repeats = 1 if QUICK else 3
    # 1. ~450 k live objects, heavy churn
    small = make_worker("bench_worker")
    held = make_heap(60_000 if QUICK else 220_000)
    print(f"live objects tracked by the GC: {live_objects():,}")
    small.workload()
    timed_bisect(small)  # first use imports pandas: not part of the figure
    times_plain, times_bisect = [], []
    report = None
    for _ in range(repeats):
        times_plain.append(plain(small, 60))
        seconds, report = timed_bisect(small)
        times_bisect.append(seconds)
    p, b = median(times_plain), median(times_bisect)
    print(f"bisect 60 calls: {b:.2f} s (target <= 3 s)   plain gc.collect around every call: {p:.2f} s   "
          f"ratio bisect/plain: {b / p:.2f}x   answer {check(report)}")
    del held
    # 2. ~2 M live objects, held elsewhere, then inside the target module
    big = make_heap(250_000 if QUICK else 1_000_000)
    elsewhere_holder = types.ModuleType("bench_elsewhere")
    sys.modules["bench_elsewhere"] = elsewhere_holder
    outside = make_worker("bench_outside")
    inside = make_worker("bench_inside")
    print(f"live objects tracked by the GC: {live_objects():,}")
    times_out, times_in = [], []
    answers = []
    for _ in range(repeats):
        inside.__dict__.pop("INDEX", None)
        elsewhere_holder.INDEX = big
        seconds, report = timed_bisect(outside)
        times_out.append(seconds)
        answers.append(check(report))
        del elsewhere_holder.INDEX
        inside.INDEX = big  # the standing heap beside the leak, in the module bisect walks from
        seconds, report = timed_bisect(inside)
        times_in.append(seconds)
        answers.append(check(report))
    o, i = median(times_out), median(times_in)
    print(f"bisect 60 calls, heap elsewhere: {o:.2f} s   heap inside the target: {i:.2f} s (target <= 3 s)   "
          f"ratio inside/elsewhere: {i / o:.2f}x (target <= 2.5x)   answers {', '.join(sorted(set(answers)))}")


if __name__ == "__main__":
    main()
