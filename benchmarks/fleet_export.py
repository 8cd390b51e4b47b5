"""What the fleet export costs a worker: RSS/USS and CPU it adds beside the monitor.

Target (issue 23): at most 1 MiB of RSS and 0.2% of a core per worker. Each variant runs as a
pair of worker processes started together, a baseline and the same with the export, so both
see the same machine; each pair differs only by the export:

- ``endpoint``: PrometheusExporter(port=0) scraped every second by this script, + FleetWriter;
- ``multiprocess``: PrometheusExporter in prometheus_client's multiprocess mode (the baseline
  imports prometheus_client too: a worker in that mode has it), + FleetWriter;
- ``otel``: OpenTelemetryExporter on the application's SDK MeterProvider (the baseline has the
  SDK and collects it every second too), + FleetWriter.

In both processes a loop reads the process's memory every ``--interval`` seconds (the
monitor's sample) and builds its status; the export variant hands it to the exporters. Memory:
first the FleetWriter's open slice is filled (a whole 1 h slice at 10 s, 360 rows, written
as one file: its largest), then USS and RSS are read at the end; CPU: the process's own CPU
time over ``--seconds`` of real time (a flush of the full slice falls inside with the default 65 s).
Modules are compiled first, as ``pip install`` leaves them.

Usage: python benchmarks/fleet_export.py [--seconds 65] [--interval 1.0]
"""
from __future__ import annotations

import os
import sys

sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402

CHILD = r'''
import json, os, sys, time
variant, export, seconds, interval, root = sys.argv[1], sys.argv[2] == "1", float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
from leakkit.probes.process import read_memory
if variant == "multiprocess":
    import prometheus_client  # the application's, in this mode
reader = None
if variant == "otel":
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
def private():
    fields = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":"):
                fields[parts[0][:-1]] = int(parts[1]) * 1024
    return fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0), fields.get("Rss", 0)
start = time.monotonic()
def status(now=None):
    m = read_memory()
    return {"pid": os.getpid(), "role": "worker", "service": "api", "version": "1.4", "t_s": time.monotonic() - start,
            "unix_time_s": now if now is not None else time.time(), "rss_bytes": m.rss, "pss_bytes": m.pss,
            "uss_bytes": m.uss, "swap_bytes": m.swap, "python_heap_bytes": None, "rate_bytes_per_s": 12.5,
            "rate_low_bytes_per_s": -3.0, "rate_high_bytes_per_s": 30.0, "verdict": "flat", "limit_bytes": 1 << 30,
            "seconds_to_limit": None, "snapshots": 0, "last_snapshot": None}
listeners, port = [], 0
if export:
    from leakkit.recording.export.fleet_writer import FleetWriter
    writer = FleetWriter(root, host="bench", service="api")
    listeners.append(writer)
    if variant == "endpoint":
        from leakkit.recording.export.prometheus import PrometheusExporter
        e = PrometheusExporter(port=0); port = e.address[1]; listeners.append(e)
    elif variant == "multiprocess":
        from leakkit.recording.export.prometheus import PrometheusExporter
        listeners.append(PrometheusExporter(multiprocess=True))
    else:
        from leakkit.recording.export.otel import OpenTelemetryExporter
        listeners.append(OpenTelemetryExporter(meter_provider=provider))
# fill the open slice: 1 h of rows at 10 s, ending now (the writer's largest buffer and file)
now = time.time(); slice_start = now - now % 3600
fill = int((now - slice_start) // 10)
if fill < 300:  # a slice just began: fill the previous one instead, written whole at the rollover
    slice_start -= 3600; fill = 359
for i in range(fill + 1):
    s = status(slice_start + 10 * i)
    for fn in listeners:
        fn(s)
print(json.dumps({"ready": True, "port": port}), flush=True)
sys.stdin.readline()  # every pair starts its timed phase together
cpu0 = sum(os.times()[:2]); t0 = time.monotonic(); samples = 0
while time.monotonic() - t0 < seconds:
    s = status()
    for fn in listeners:
        fn(s)
    if reader is not None:
        reader.get_metrics_data()
    samples += 1
    time.sleep(max(0.0, t0 + samples * interval - time.monotonic()))
cpu = sum(os.times()[:2]) - cpu0
wall = time.monotonic() - t0
uss, rss = private()
print(json.dumps({"cpu_s": cpu, "wall_s": wall, "uss": uss, "rss": rss, "samples": samples}), flush=True)
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=65.0)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    import leakkit

    # as a deployed package is: pip compiles every module at install. Without the .pyc files
    # (PYTHONDONTWRITEBYTECODE, an editable checkout) each import compiles its source, and the
    # compiler's transient memory stays with the process: +1.3 MiB here instead of +0.14 MiB.
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.dirname(leakkit.__file__)], check=True,
                   stdout=subprocess.DEVNULL, env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"})
    work = tempfile.mkdtemp(prefix="leakkit-bench-export-")
    multiproc = os.path.join(work, "multiproc")
    os.mkdir(multiproc)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": multiproc}
    procs = {}
    for variant in ("endpoint", "multiprocess", "otel"):
        for export in (0, 1):
            root = os.path.join(work, f"{variant}-{export}")
            procs[variant, export] = subprocess.Popen(
                [sys.executable, "-c", CHILD, variant, str(export), str(args.seconds), str(args.interval), root],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    ports = {key: json.loads(p.stdout.readline())["port"] for key, p in procs.items()}
    for p in procs.values():
        p.stdin.write("go\n")
        p.stdin.flush()
    end = time.monotonic() + args.seconds
    scrapes = 0
    while time.monotonic() < end:  # Prometheus' side: a scrape a second of the endpoint worker
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['endpoint', 1]}/metrics", timeout=10) as response:
            response.read()
        scrapes += 1
        time.sleep(1.0)
    results = {key: json.loads(p.stdout.readline()) for key, p in procs.items()}
    for p in procs.values():
        p.wait()
    print(f"export cost per worker: {args.seconds:.0f} s at a {args.interval:g} s interval, a full 1 h slice "
          f"(360 rows) in the FleetWriter, {scrapes} scrapes of the endpoint")
    worst_mem = worst_cpu = 0.0
    for variant in ("endpoint", "multiprocess", "otel"):
        base, export = results[variant, 0], results[variant, 1]
        d_uss = (export["uss"] - base["uss"]) / 2**20
        d_rss = (export["rss"] - base["rss"]) / 2**20
        d_cpu = export["cpu_s"] / export["wall_s"] - base["cpu_s"] / base["wall_s"]
        worst_mem, worst_cpu = max(worst_mem, d_rss, d_uss), max(worst_cpu, d_cpu)
        print(f"  {variant:>12}: +{d_rss:.2f} MiB RSS, +{d_uss:.2f} MiB USS, +{100 * d_cpu:.3f}% of a core "
              f"(baseline {100 * base['cpu_s'] / base['wall_s']:.3f}%, with export "
              f"{100 * export['cpu_s'] / export['wall_s']:.3f}%)")
    print(f"worst: +{worst_mem:.2f} MiB (target <= 1 MiB: {'met' if worst_mem <= 1 else 'MISSED'}), "
          f"+{100 * worst_cpu:.3f}% of a core (target <= 0.2%: {'met' if worst_cpu <= 0.002 else 'MISSED'})")


if __name__ == "__main__":
    main()
