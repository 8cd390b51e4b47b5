"""Overhead of leakkit.monitor at a 1 s interval: CPU time of the monitor thread / wall time.

Target: < 2% of one core. The monitor thread measures its own CPU time (``time.thread_time``),
so one run gives the figure; the main thread meanwhile runs an allocation-heavy loop, as a worker
would, so the counters read a busy heap. Two figures: the steady state (sampling only, from the
recorded ``monitor_cpu_s`` column) and the whole run including the start-up type summary.

Usage: python benchmarks/monitor.py [--seconds 20] [--interval 1.0]
"""
from __future__ import annotations

import os
import sys

# benchmarks/bisect.py is named like the standard library's bisect module: keep this folder
# off the path, or `random` (imported by tempfile) picks it up.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from leakkit.recording.monitor import monitor  # noqa: E402
from leakkit.recording.timeline import load  # noqa: E402


def busy_worker(seconds: float) -> int:
    """Allocate and free like a request handler, holding ~200k live objects."""
    live = [{"id": i, "name": str(i)} for i in range(100_000)]
    requests = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        scratch = [str(i) * 3 for i in range(2_000)]
        live[requests % len(live)] = {"id": requests, "payload": scratch[:10]}
        requests += 1
    return requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "bench.csv")
        with monitor(path, interval=args.interval) as mon:
            requests = busy_worker(args.seconds)
        frame = load(path)
    steady = frame.iloc[1:]
    steady_share = (steady["monitor_cpu_s"].iloc[-1] - steady["monitor_cpu_s"].iloc[0]) / (
        steady["t"].iloc[-1] - steady["t"].iloc[0])
    print(f"monitor at {args.interval:g} s for {args.seconds:g} s ({len(frame)} samples, {requests} requests served)")
    print(f"steady state (sampling only): {steady_share:.4%} of one core")
    print(f"whole run incl. start-up type summary: {mon.overhead:.4%} of one core")
    print(f"target < 2%: {'met' if mon.overhead < 0.02 else 'NOT met'}")


if __name__ == "__main__":
    main()
