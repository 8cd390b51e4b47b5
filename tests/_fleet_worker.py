"""A worker process for the fleet tests: a monitor in it, exporters as its listeners, a chosen growth.

    python _fleet_worker.py MODE EXPORTS... [--service S] [--version V] [--interval SECONDS] [--via-export]

MODE: ``leak`` (keeps 256 KiB every 0.1 s, touched, so RSS/USS grow ~2.5 MiB/s), ``flat`` (allocates
and frees the same amount), ``warm`` (keeps 8 MiB over the first second, then holds).
EXPORTS: ``port`` (a /metrics endpoint on a free port), ``multiprocess`` (gauge files under
PROMETHEUS_MULTIPROC_DIR), ``parquet=ROOT`` (FleetWriter, a row a sample, files rewritten each second).
``--via-export``: the exporters are given to ``monitor(..., export=[...])``, which closes them when it
stops (at exit), instead of ``add_listener`` and closing the writer here. It prints ``ready PID PORT`` once the exporters are listening, then runs until stdin closes (the
test ends it by closing the pipe), with its address space capped at 2 GiB so a broken test
cannot take the machine. Its own growth is read from /proc by the test, without leakkit.

The monitor is leakkit's (``Monitor.add_listener``) when the installed one has listeners, else
a stand-in with the same status contract: it samples smaps_rollup and fits the last 40 samples
with leakkit's Theil-Sen (``leak`` when the interval's lower end exceeds 64 KiB/s).
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import threading
import time

resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


class StandInMonitor:
    """``Monitor.status()`` / ``add_listener`` as issue 19 specifies them, for tests until it lands."""

    def __init__(self, *, interval: float, role: str, service: str, version: str, limit: int) -> None:
        import numpy as np

        from leakkit.analysis.forecast import theil_sen
        from leakkit.probes.process import read_memory

        self._np, self._fit, self._read = np, theil_sen, read_memory
        self.interval, self.role, self.service, self.version, self.limit = interval, role, service, version, limit
        self._listeners: list = []
        self._t: list[float] = []
        self._y: list[float] = []
        self._start = time.monotonic()
        self._status: dict = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def add_listener(self, listener) -> None:
        self._listeners.append(listener)

    def status(self) -> dict:
        return dict(self._status)

    def _sample(self) -> dict:
        memory = self._read()
        t = time.monotonic() - self._start
        self._t, self._y = (self._t + [t])[-40:], (self._y + [float(memory.uss)])[-40:]
        rate = low = high = None
        verdict = "warming up"
        if len(self._t) >= 8:
            rate, _i, low, high = self._fit(self._np.array(self._t), self._np.array(self._y), autocorrelation=True)
            verdict = "leak" if low > 64 * 1024 else "flat"
        to_limit = (self.limit - memory.uss) / rate if rate and rate > 0 and verdict == "leak" else None
        return {"pid": os.getpid(), "role": self.role, "service": self.service, "version": self.version, "t_s": t,
                "rss_bytes": memory.rss, "pss_bytes": memory.pss, "uss_bytes": memory.uss, "swap_bytes": memory.swap,
                "python_heap_bytes": None, "rate_bytes_per_s": rate, "rate_low_bytes_per_s": low,
                "rate_high_bytes_per_s": high, "verdict": verdict, "limit_bytes": self.limit,
                "seconds_to_limit": to_limit, "snapshots": 0, "last_snapshot": None}

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._status = status = self._sample()
            for listener in self._listeners:
                try:
                    listener(status)
                except Exception as error:  # the monitor's contract: a listener's fault is caught
                    print(f"listener failed: {error!r}", file=sys.stderr, flush=True)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def start_monitor(export=None, **options):
    from leakkit.recording import monitor as real

    if export is not None:  # monitor(..., export=...): no stand-in
        import tempfile

        path = os.path.join(tempfile.mkdtemp(prefix="leakkit-fleet-"), "monitor.csv")
        return real.monitor(path, interval=options["interval"], sustain=max(4.0, 8 * options["interval"]),
                            role=options["role"], service=options["service"], version=options["version"],
                            limit=options["limit"], auto_snapshot=False, export=export)
    if hasattr(real.Monitor, "add_listener"):
        import tempfile

        path = os.path.join(tempfile.mkdtemp(prefix="leakkit-fleet-"), "monitor.csv")
        # a leak judged over 4 s of steady growth (the default 5 min is a production worker's)
        return real.monitor(path, interval=options["interval"], sustain=max(4.0, 8 * options["interval"]),
                            role=options["role"], service=options["service"], version=options["version"],
                            limit=options["limit"], auto_snapshot=False)
    return StandInMonitor(**options)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["leak", "flat", "warm"])
    parser.add_argument("exports", nargs="*")
    parser.add_argument("--service", default="api")
    parser.add_argument("--version", default="1.0")
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--via-export", action="store_true")
    args = parser.parse_args()
    exporters: list = []
    port = 0
    writer = None
    for spec in args.exports:
        if spec == "port":
            from leakkit.recording.export.prometheus import PrometheusExporter

            exporter = PrometheusExporter(port=0)
            port = exporter.address[1]
            exporters.append(exporter)
        elif spec == "multiprocess":
            from leakkit.recording.export.prometheus import PrometheusExporter

            exporters.append(PrometheusExporter(multiprocess=True))
        elif spec.startswith("parquet="):
            from leakkit.recording.export.fleet_writer import FleetWriter

            writer = FleetWriter(spec.split("=", 1)[1], host="test-host", every=args.interval / 2, flush_s=1.0)
            exporters.append(writer)
    options = {"interval": args.interval, "role": "worker", "service": args.service, "version": args.version,
               "limit": 768 << 20}
    if args.via_export:
        start_monitor(export=exporters, **options)  # closed by the monitor at exit (its atexit stop)
        writer = None
    else:
        mon = start_monitor(**options)
        for exporter in exporters:
            mon.add_listener(exporter)
    print(f"ready {os.getpid()} {port}", flush=True)
    kept, stop = [], threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    started = time.monotonic()
    while not stop.wait(0.1):
        block = bytearray(256 << 10)
        block[::4096] = b"x" * len(block[::4096])  # touch every page: resident, private
        if args.mode == "leak" or (args.mode == "warm" and time.monotonic() - started < 1.0):
            kept.append(block)
        del block
    if writer is not None:
        writer.close()


if __name__ == "__main__":
    main()
