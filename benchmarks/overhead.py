"""Overhead of leakkit.trace next to tracemalloc (and memray when installed), measured in one run.

Prints, for an allocation-heavy function of ~60 us a call, the median time of a batch of calls
untraced, traced by leakkit (default options), under tracemalloc and under memray, as ratios to
untraced. Batches are interleaved (A/B/C/A/B/C...) and medians taken: the machine is noisy.
Then the memory the recorder takes for 1 M calls (its buffers, and tracemalloc's count of it).

Targets (docs/method.md, "Targets and measured figures"): trace <= 1.25x untraced; 1 M calls well under 100 MB.

Run: ``python benchmarks/overhead.py [--rounds 15] [--batch 400]``
"""
from __future__ import annotations

import os
import sys

# benchmarks/bisect.py would shadow the standard library's bisect (imported by random/statistics)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import gc  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from collections.abc import Callable  # noqa: E402

import leakkit  # noqa: E402
from leakkit.recording.recorder import Recorder  # noqa: E402


def work(n: int = 0) -> int:
    """Allocation-heavy: builds and drops ~600 small objects."""
    rows = [{"id": i, "name": str(i), "tags": [i, i + 1]} for i in range(250)]
    return len(rows) + n


def _batch(func: Callable[[int], int], calls: int) -> float:
    t = time.perf_counter()
    for i in range(calls):
        func(i)
    return (time.perf_counter() - t) / calls


def _memray_runner() -> Callable[[int], float] | None:
    try:
        import memray
    except ImportError:
        return None
    directory = tempfile.mkdtemp(prefix="leakkit-bench-")
    counter = [0]

    def run(calls: int) -> float:
        counter[0] += 1
        path = os.path.join(directory, f"run{counter[0]}.bin")
        with memray.Tracker(path, trace_python_allocators=True):
            result = _batch(work, calls)
        os.unlink(path)
        return result

    return run


def overhead(rounds: int, batch: int) -> dict[str, float]:
    traced = leakkit.trace(work)  # default options, as a user would decorate
    for i in range(200):  # leave the dense start-up checkpoints behind
        traced(i)
    runners: dict[str, Callable[[int], float]] = {
        "untraced": lambda calls: _batch(work, calls),
        "leakkit.trace": lambda calls: _batch(traced, calls),
    }

    def under_tracemalloc(calls: int) -> float:
        tracemalloc.start()
        try:
            return _batch(work, calls)
        finally:
            tracemalloc.stop()

    runners["tracemalloc"] = under_tracemalloc
    memray_run = _memray_runner()
    if memray_run is not None:
        runners["memray (python allocators)"] = memray_run
    times: dict[str, list[float]] = {name: [] for name in runners}
    for run in runners.values():  # warm every path once
        run(batch // 4)
    quiet: list[tuple[float, float]] = []  # (untraced, traced) of the rounds with no checkpoint in the batch
    for _ in range(rounds):
        for name, run in runners.items():
            before = len(traced.checkpoints) if name == "leakkit.trace" else 0
            times[name].append(run(batch))
            if name == "leakkit.trace" and len(traced.checkpoints) == before:
                quiet.append((times["untraced"][-1], times[name][-1]))
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"per-call time, median of {rounds} interleaved batches of {batch} calls:")
    base = medians["untraced"]
    for name, value in medians.items():
        print(f"  {name:28s} {value * 1e6:8.1f} us   {value / base:5.2f}x")
    # A checkpoint (a full collection and every probe, ~ms) lands in some batches and not others;
    # the schedule keeps checkpoints within 5% of one core of *wall* time, and most of this run's
    # wall time is spent in the other runners, so the median above moves with where they land.
    total = sum(times["leakkit.trace"]) / sum(times["untraced"])
    if quiet:
        wrapper = statistics.median(t / u for u, t in quiet)
        print(f"  of which: batches with no checkpoint ({len(quiet)} of {rounds}) {wrapper:5.2f}x (the wrapper and "
              f"its sampled readings); all traced time / all untraced time {total:5.2f}x (checkpoints included)")
    if memray_run is None:
        print("  memray                       not installed (pip install memray to compare)")
    timed = traced.calls["blocks_delta"].iloc[-rounds * batch:]  # the timed batches' calls
    print(f"  leakkit read memory on 1 call in {len(timed) / max(timed.notna().sum(), 1):.0f} "
          f"(sys.getallocatedblocks costs {_cost_us(sys.getallocatedblocks):.1f} us in this process); "
          f"{len(traced.checkpoints)} checkpoints over {len(traced.calls)} calls")
    return {name: value / base for name, value in medians.items()}


def _cost_us(func: Callable[[], object], n: int = 2000) -> float:
    t = time.perf_counter()
    for _ in range(n):
        func()
    return (time.perf_counter() - t) / n * 1e6


def recorder_memory(calls: int = 1_000_000) -> tuple[int, int]:
    """Bytes the recorder holds after ``calls`` rows: its buffers (memory maps and arrays), and
    what tracemalloc counts (Python's allocators only: the maps are not in it)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    recorder = Recorder()
    add = recorder.add_call
    for i in range(calls):
        add("work", "MainThread", i * 1e-4, 6e-5, i & 3, None, 0, None, None, 0)
    traced = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    buffers = recorder.footprint()  # its memory maps (outside tracemalloc's sight) and its arrays
    return buffers, traced


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=400)
    parser.add_argument("--recorder-calls", type=int, default=1_000_000)
    args = parser.parse_args()
    untraced = _batch(work, 500)
    print(f"work(): {untraced * 1e6:.1f} us a call untraced (target ~60 us)")
    ratios = overhead(args.rounds, args.batch)
    verdict = "OK" if ratios["leakkit.trace"] <= 1.25 else "ABOVE TARGET"
    print(f"leakkit.trace / untraced = {ratios['leakkit.trace']:.2f}x (target <= 1.25x): {verdict}")
    buffers, traced = recorder_memory(args.recorder_calls)
    print(f"recorder after {args.recorder_calls:,} calls: buffers {buffers / 2**20:.1f} MiB, "
          f"tracemalloc {traced / 2**20:.1f} MiB ({buffers / args.recorder_calls:.0f} bytes a call; "
          f"target well under 100 MB)")


if __name__ == "__main__":
    main()
