"""Stalls leakkit.monitor causes in a busy application: worst request latency and p99, with and without.

A leak tool that runs inside production must not make requests wait. The application here serves
"requests" in its main thread (~1 ms of allocating Python work each) over a standing heap of
~600 k objects, and leaks a little on every request, so that the monitor confirms growth and
writes snapshot reports (type summary, reference paths) again and again: the heavy part. Each
configuration runs in its own fresh process, alternating (off, on, off, on, ...), and the figures
are compared within this one run: worst stall, p99 latency, requests over 20 and 50 ms, throughput.

Target (issue 12): no stall over 20 ms caused by leakkit. The application's own full collections
(gen 2, ~100 ms on this heap) stall it with or without the monitor, so the last two columns count
only slow requests (> 10 ms) that no full collection of the application overlapped.

Usage: python benchmarks/monitor_stall.py [--seconds 8] [--rounds 2] [--interval 0.1]
(run it under ``flock /work/coord/bench.lock`` on a shared machine)
"""
from __future__ import annotations

import os
import sys

# benchmarks/bisect.py is named like the standard library's bisect module: keep this folder off the path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402


def serve(seconds: float, monitored: bool, interval: float, folder: str) -> dict:
    """The application: requests in a loop, their latencies recorded; optionally under the monitor."""
    import gc

    class Session:
        def __init__(self, n: int) -> None:
            self.id = n
            self.tags = [str(n), str(n * 7)]
            self.data = {"n": n, "payload": "x" * 20}

    full: list[list[float]] = []  # the application's own full collections (start, end): they stall it anyway

    def on_gc(phase: str, info: dict) -> None:
        if info["generation"] == 2:
            if phase == "start":
                full.append([time.perf_counter(), math.inf])
            elif full:
                full[-1][1] = time.perf_counter()

    gc.callbacks.append(on_gc)
    standing = [Session(i) for i in range(100_000)]  # ~600 k objects the collector and a summary see
    leaked: list = []
    latencies: list[float] = []
    own: list[float] = []
    mon = None
    if monitored:
        from leakkit import monitor

        mon = monitor(os.path.join(folder, "bench.csv"), interval=interval, sustain=max(2.0, 8 * interval),
                      min_growth="256KiB", trace_window=0.5)
    gc.collect()
    end = time.perf_counter() + seconds
    n = 0
    while True:
        t0 = time.perf_counter()
        if t0 >= end:
            break
        scratch = [{"k": i, "v": str(i)} for i in range(400)]  # ~1 ms of allocating work
        standing[n % len(standing)] = Session(n)
        leaked.append(Session(-n))  # the leak the monitor is there to catch: ~400 B a request
        del scratch
        t1 = time.perf_counter()
        latencies.append(t1 - t0)
        if t1 - t0 > 0.010 and not any(a < t1 and b > t0 for a, b in full[-3:]):
            own.append(t1 - t0)  # a slow request with no full collection of the application in it
        n += 1
    snapshots = 0
    if mon is not None:
        mon.stop()
        snapshots = len(mon.snapshots)
    latencies.sort()
    return {"requests": n, "seconds": seconds, "worst_ms": latencies[-1] * 1e3,
            "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1e3,
            "median_ms": statistics.median(latencies) * 1e3,
            "over_20ms": sum(1 for x in latencies if x > 0.020), "over_50ms": sum(1 for x in latencies if x > 0.050),
            "snapshots": snapshots, "worst_not_gc_ms": max(own, default=0.0) * 1e3,
            "not_gc_over_20ms": sum(1 for x in own if x > 0.020), "full_collections": len(full)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--child", choices=["off", "on"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(serve(args.seconds, args.child == "on", args.interval, folder)))
        return
    results: dict[str, list[dict]] = {"off": [], "on": []}
    for _ in range(args.rounds):
        for mode in ("off", "on"):
            done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", mode, "--seconds",
                                   str(args.seconds), "--interval", str(args.interval)],
                                  capture_output=True, text=True, check=True)
            results[mode].append(json.loads(done.stdout.strip().splitlines()[-1]))
    summary = {}
    for mode, runs in results.items():
        summary[mode] = {
            "worst_ms": max(r["worst_ms"] for r in runs),
            "p99_ms": statistics.median(r["p99_ms"] for r in runs),
            "over_20ms": sum(r["over_20ms"] for r in runs),
            "over_50ms": sum(r["over_50ms"] for r in runs),
            "throughput_per_s": sum(r["requests"] for r in runs) / sum(r["seconds"] for r in runs),
            "snapshots": sum(r["snapshots"] for r in runs),
            "worst_not_gc_ms": max(r["worst_not_gc_ms"] for r in runs),
            "not_gc_over_20ms": sum(r["not_gc_over_20ms"] for r in runs),
        }
    off, on = summary["off"], summary["on"]
    print(f"monitor at interval={args.interval:g} s, {args.rounds} x {args.seconds:g} s per configuration")
    print(f"{'':12}{'worst ms':>10}{'p99 ms':>9}{'>20 ms':>8}{'>50 ms':>8}{'req/s':>9}{'snapshots':>11}"
          f"{'worst w/o app gc2':>19}{'>20 ms w/o gc2':>16}")
    for mode, row in (("without", off), ("with", on)):
        print(f"{mode:12}{row['worst_ms']:10.1f}{row['p99_ms']:9.2f}{row['over_20ms']:8d}{row['over_50ms']:8d}"
              f"{row['throughput_per_s']:9.0f}{row['snapshots']:11d}{row['worst_not_gc_ms']:19.1f}"
              f"{row['not_gc_over_20ms']:16d}")
    print(f"ratios with/without: worst stall {on['worst_ms'] / off['worst_ms']:.2f}x, p99 "
          f"{on['p99_ms'] / off['p99_ms']:.2f}x, throughput {on['throughput_per_s'] / off['throughput_per_s']:.2f}x; "
          f"worst stall added {on['worst_ms'] - off['worst_ms']:+.1f} ms; worst stall outside the application's own "
          f"full collections {on['worst_not_gc_ms']:.1f} ms with, {off['worst_not_gc_ms']:.1f} ms without (target: "
          f"no stall > 20 ms caused by leakkit)")


if __name__ == "__main__":
    main()
