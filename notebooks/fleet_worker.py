"""A worker process for notebook 07: a shop's worker that records its memory for the fleet.

    python fleet_worker.py ROOT HOST VERSION MODE

MODE ``leak`` keeps 256 KiB per tick (the bug of version 1.1: every order kept in a module-level
list), ``warm`` fills a cache for 2 s and then holds it, ``flat`` keeps nothing. Every 0.25 s the
worker reads its memory, fits the last 10 s with leakkit's forecast (rate, ~95% interval,
shape) and hands that status to its listeners: a FleetWriter (hive-partitioned Parquet under
ROOT, host=HOST) and a PrometheusExporter on a free port (printed). It runs until its stdin
closes, with its address space capped at 2 GiB.

The status is the one leakkit's monitor hands its listeners (``Monitor.add_listener``); this
script builds it itself so the notebook runs with any leakkit version's monitor.
"""
from __future__ import annotations

import os
import resource
import sys
import threading
import time

resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

import pandas as pd  # noqa: E402

import leakkit  # noqa: E402
from leakkit.probes.process import read_memory  # noqa: E402

ROOT, HOST, VERSION, MODE = sys.argv[1:5]
LIMIT = 1 << 30
ORDERS: list[bytearray] = []  # version 1.1's bug: every order kept for ever


def status(samples: list[tuple[float, int, int]], started: float) -> dict:
    t, rss, uss = samples[-1]
    out = {"pid": os.getpid(), "role": "worker", "service": "shop", "version": VERSION, "t_s": t,
           "rss_bytes": rss, "uss_bytes": uss, "limit_bytes": LIMIT, "verdict": "warming up", "snapshots": 0}
    recent = [s for s in samples if s[0] >= t - 10.0]
    if t >= 6.0 and len(recent) >= 8:  # a first judgement once the window holds more than the start
        frame = pd.DataFrame(recent, columns=["t", "rss", "uss"])
        fc = leakkit.forecast(frame, LIMIT, column="uss", tolerance="2MiB")
        low, high = fc.rate_interval
        last = frame[frame["t"] >= t - 3.0]  # still growing now: a warm-up that stopped is not a leak
        now = leakkit.forecast(last, column="uss", tolerance="2MiB") if len(last) >= 4 else None
        growing = fc.shape == "linear" and low > 0 and now is not None and now.rate_interval[0] > 0
        out.update(rate_bytes_per_s=fc.rate_bytes_per_s, rate_low_bytes_per_s=low, rate_high_bytes_per_s=high,
                   verdict="leak" if growing else fc.shape,
                   seconds_to_limit=fc.eta_s if growing and fc.eta_s < float("inf") else None)
    return out


def main() -> None:
    writer = leakkit.FleetWriter(ROOT, host=HOST, service="shop", every=0.25, flush_s=1.0)
    exporter = leakkit.PrometheusExporter(port=0)
    print(f"ready {os.getpid()} {exporter.address[1]}", flush=True)
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    start, samples, cache = time.monotonic(), [], []
    while not done.wait(0.25):
        if MODE == "leak":
            ORDERS.append(bytearray(b"o" * (256 << 10)))
        elif MODE == "warm" and time.monotonic() - start < 2.0:
            cache.append(bytearray(b"c" * (1 << 20)))
        memory = read_memory()
        samples.append((time.monotonic() - start, memory.rss, memory.uss))
        current = status(samples[-60:], start)
        writer(current)
        exporter(current)
    exporter.stop()
    writer.close()


if __name__ == "__main__":
    main()
