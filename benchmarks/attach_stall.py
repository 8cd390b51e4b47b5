"""What ``leakkit attach`` costs the process it attaches to: the longest stall its threads see, and its memory.

Target: no thread of the target stalled more than 50 ms at a time by leakkit. Measured in the
target itself: the attach tests' server (tests/attach/leaky_server.py) built with a heap of about
``--heap`` objects and a thread that ticks every millisecond and keeps the longest gap it saw.
Two windows of the same server, one after the other: the same length without leakkit (what the
machine and the process's own garbage collector cause), then during a whole attach (walks,
tracing window, sites, paths), while a client keeps sending requests. Also printed: leakkit's
own longest stretch of work, tracemalloc.stop()'s time, leakkit's memory in the target and the
RSS before and after, the requests answered during the attach, and the report.

Usage: python benchmarks/attach_stall.py [--heap 1000000] [--duration 5] [--inject]
"""
from __future__ import annotations

import os
import sys

sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import argparse  # noqa: E402
import glob  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from attach.harness import driving, leakkit, server  # noqa: E402

from leakkit import load_attach  # noqa: E402
from leakkit._sizes import format_size  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heap", type=int, default=1_000_000, help="objects the server holds (about)")
    parser.add_argument("--duration", type=float, default=5.0, help="the attach window, seconds")
    parser.add_argument("--inject", action="store_true", help="inject the agent (default: LEAKKIT_AGENT=1)")
    args = parser.parse_args()
    out = tempfile.mkdtemp(prefix="attach-stall-")
    with server(agent=not args.inject, args=["--heap", str(args.heap), "--ticker", "--blob", "16384"]) as srv:
        srv.work(50)
        start = srv.status(reset=True)
        time.sleep(2)
        srv.status(reset=True)
        began = time.monotonic()
        with driving(srv) as load:
            done = leakkit("attach", str(srv.pid), "--duration", str(args.duration), "--out", out, timeout=3600)
        spent = time.monotonic() - began
        during = srv.status(reset=True)
        with driving(srv) as quiet:
            time.sleep(spent)
        baseline = srv.status(reset=True)
        after = srv.status()
    if done.returncode != 0:
        raise SystemExit(f"attach failed ({done.returncode}): {done.stderr[-2000:]}")
    report = load_attach(glob.glob(os.path.join(out, "*.json"))[0])
    r = report.result
    print(f"server: Python {r['python']}, {r['walks'][0]['objects']:,} objects reachable from the roots "
          f"(--heap {args.heap:,}), way in: {report.way_in.split(':')[0]}")
    print(f"worst gap of a thread ticking every 1 ms: {1000 * during['worst_gap_s']:.1f} ms during the attach "
          f"({spent:.1f} s, {during['ticks']:,} ticks), {1000 * baseline['worst_gap_s']:.1f} ms in as long without "
          f"leakkit ({baseline['ticks']:,} ticks)")
    print(f"the server's own collections over 20 ms (generation, s, thread): during the attach "
          f"{during['long_collections']}; without {baseline['long_collections']}")
    gil = r["gil"]
    print(f"leakkit's longest stretch of work between two pauses: {1000 * gil['longest_cpu_s']:.1f} ms of CPU, "
          f"{1000 * gil['longest_hold_s']:.1f} ms of wall time ({gil['longest_hold_in']}), {gil['pauses']:,} pauses; "
          "tracemalloc.stop(): "
          f"{1000 * (gil['tracemalloc_stop_s'] or 0):.1f} ms")
    memory = r["memory"]
    print(f"leakkit's memory in the target: tracemalloc's own peak {format_size(memory['tracemalloc_peak'])}, "
          f"the walks' peak {format_size(memory['walk_peak'])}; RSS {format_size(start['rss'])} before, "
          f"{format_size(after['rss'])} after ({after['carts'] - start['carts']} carts of 16 KiB added meanwhile)")
    print(f"requests answered during the attach: {load.ok} ({load.failed} failed); in as long without: {quiet.ok}")
    tracing = r["tracing"]
    print(f"tracing: allocations {tracing['slowdown']:.1f}x slower in the target while tracemalloc ran "
          f"({tracing['frames']} frames)")
    print()
    print(report)


if __name__ == "__main__":
    main()
