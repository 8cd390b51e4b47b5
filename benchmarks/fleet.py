"""``leakkit fleet`` on 1,000 recordings: 50 hosts x 20 workers x 24 h at 10 s (8.64 M samples).

Target: the command answers in under 5 s on this machine (2 cores, shared). The recordings are
written by FleetWriter, status by status as a monitor hands them (its default 1 h slices: 24,000 files),
simulating a fleet: every worker warms up for an hour; hosts 25-49 run version 1.5, deployed
beside 1.4, and one worker in four of 1.5 leaks 6 KiB/s. The figure is the wall time of
``leakkit fleet ROOT`` as a user types it (a new interpreter: imports, DuckDB, the report), the
median of --runs; the answers are checked against what was planted (125 leaking workers, the
leak starting with 1.5), so a fast wrong answer does not pass.

Usage: python benchmarks/fleet.py [--root DIR] [--runs 3]   (the files are kept in DIR for reuse)
"""
from __future__ import annotations

import os
import sys

sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from leakkit.recording.export.fleet_writer import FleetWriter  # noqa: E402

HOSTS, WORKERS, HOURS, EVERY = 50, 20, 24, 10.0
T0 = 1_733_443_200.0  # 2024-12-06 00:00 UTC: slices align on it
LIMIT = 1 << 30
LEAK_RATE = 6 * 1024.0  # bytes/s


def leaks(host: int, worker: int) -> bool:
    return host >= 25 and worker % 4 == 0


def simulate(root: str) -> int:
    """Write the fleet through FleetWriter, one status at a time as a monitor hands them; returns the files."""
    rng = np.random.default_rng(23)
    n = int(HOURS * 3600 / EVERY)
    t = T0 + np.arange(n) * EVERY
    age = t - T0
    for host in range(HOSTS):
        service = "api" if host < 40 else "jobs"
        version = "1.4" if host < 25 else "1.5"
        writer = FleetWriter(root, host=f"web-{host:02d}", service=service, every=EVERY, flush_s=3600)
        columns = []
        for worker in range(WORKERS):
            leak = leaks(host, worker)
            warm = 30e6 * (1 - np.exp(-age / 900.0))
            uss = 120e6 + warm + (LEAK_RATE * age if leak else 0) + rng.normal(0, 2e5, n)
            rate = np.where(age < 3600, 30e6 / 900 * np.exp(-age / 900), LEAK_RATE if leak else 0.0) + rng.normal(0, 50, n)
            verdict = np.where(age < 3600, "warm-up", "leak" if leak else "flat")
            to_limit = np.where(verdict == "leak", (LIMIT - uss) / np.maximum(rate, 1e-9), np.nan)
            columns.append([x.tolist() for x in (uss, rate, verdict, to_limit)])
        for i in range(n):
            for worker in range(WORKERS):
                uss, rate, verdict, to_limit = (c[i] for c in columns[worker])
                writer.add({"pid": 4000 + worker, "unix_time_s": t[i], "t_s": age[i], "started_unix_s": T0 - 5,
                            "role": "worker", "version": version, "rss_bytes": uss + 40e6, "pss_bytes": uss + 15e6,
                            "uss_bytes": uss, "swap_bytes": 0, "python_heap_bytes": uss * 0.6,
                            "rate_bytes_per_s": rate, "rate_low_bytes_per_s": rate * 0.9 - 30,
                            "rate_high_bytes_per_s": rate * 1.1 + 30, "verdict": verdict, "limit_bytes": LIMIT,
                            "seconds_to_limit": to_limit, "snapshots": int(verdict == "leak" and age[i] > 4000)})
        writer.close()
    return sum(len(fs) for _d, _s, fs in os.walk(root))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "leakkit-bench-fleet"))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    marker = os.path.join(args.root, ".complete-4")  # bump when the layout changes
    if not os.path.exists(marker):
        shutil.rmtree(args.root, ignore_errors=True)
        started = time.perf_counter()
        files = simulate(args.root)
        open(marker, "w").close()
        print(f"simulated {HOSTS * WORKERS} recordings, {files} files, in {time.perf_counter() - started:.0f} s")
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _s, fs in os.walk(args.root) for f in fs)
    print(f"layout: {args.root} ({size / 2**20:.0f} MiB, {HOSTS * WORKERS * int(HOURS * 3600 / EVERY):,} samples)")
    script = shutil.which("leakkit", path=os.path.dirname(sys.executable)) or "leakkit"
    walls, cpus, out = [], [], ""
    for _ in range(args.runs):
        started, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run([script, "fleet", args.root], capture_output=True, text=True)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        out = done.stdout
        assert done.returncode == 1, done.stderr  # leaks were planted
    print(out)
    planted = sum(leaks(h, w) for h in range(HOSTS) for w in range(WORKERS))
    assert f"LEAKING: {planted} worker(s) on 25 host(s)" in out, out
    assert "1.5 " in out and "<- leaks start with this version" in out.split("1.5 (")[1].splitlines()[0], out
    from leakkit.reports.fleet import fleet

    report = fleet(args.root)
    assert set(zip(report.leaking["host"], report.leaking["pid"], strict=True)) == {
        (f"web-{h:02d}", 4000 + w) for h in range(HOSTS) for w in range(WORKERS) if leaks(h, w)}
    median = statistics.median(walls)
    print(f"leakkit fleet on {HOSTS * WORKERS} recordings: {median:.2f} s wall (median of {args.runs}: "
          f"{', '.join(f'{w:.2f}' for w in walls)}), {statistics.median(cpus):.2f} s of CPU, the queries "
          f"{report.tables.seconds:.2f} s in-process; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores; target < 5 s: {'met' if median < 5 else 'MISSED'}")


if __name__ == "__main__":
    main()
