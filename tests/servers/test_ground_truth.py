"""Ground truth of the test servers, without leakkit: the leaking release's workers grow, the fixed one's stay flat.

Read straight from ``/proc/<pid>/smaps_rollup`` (RSS, and USS as the sum of the Private_* lines)
and from what each worker says it kept (``leakapp_core.write_stats``): if these fail, no test of
leakkit on these servers means anything. The two servers run side by side under the same load;
"after warm-up" is a hand-chosen generous skip here (the first 60% of the run), which is exactly
what leakkit must find on its own.
"""
from __future__ import annotations

import threading
import time

import pytest

from servers.harness import drive, gunicorn

pytest.importorskip("gunicorn")
pytest.importorskip("flask")

MIB = 1024 * 1024
SECONDS = 75.0


def rollup(pid: int) -> tuple[int, int] | None:
    """(rss, uss) in bytes from one read of smaps_rollup; None once the process is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
            lines = handle.read().splitlines()[1:]
    except OSError:
        return None
    fields = {}
    for line in lines:
        name, _, rest = line.partition(b":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[name.strip()] = int(parts[0]) * 1024
    return fields.get(b"Rss", 0), sum(v for k, v in fields.items() if k.startswith(b"Private_"))


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope (bytes per second) of (t, bytes) points."""
    n = len(points)
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    return sum((t - mt) * (y - my) for t, y in points) / sum((t - mt) ** 2 for t, _ in points)


def sample_until(servers, done: threading.Event) -> dict[int, list[tuple[float, int, int]]]:
    series: dict[int, list[tuple[float, int, int]]] = {}
    start = time.monotonic()
    while not done.wait(1.0):
        for server in servers:
            for pid in server.workers():
                reading = rollup(pid)
                if reading is not None:
                    series.setdefault(pid, []).append((time.monotonic() - start, *reading))
    return series


def test_the_leaking_release_grows_in_every_worker_and_the_fixed_one_stays_flat_after_warm_up():
    with gunicorn("sync", workers=3) as leaking, gunicorn("sync", workers=3, fixed=True) as fixed:
        leaking.wait_ready()
        fixed.wait_ready()
        done = threading.Event()
        box: dict = {}
        sampler = threading.Thread(target=lambda: box.update(series=sample_until([leaking, fixed], done)))
        sampler.start()
        loads = {}
        drivers = [threading.Thread(target=lambda s=s, k=k: loads.update({k: drive(s, seconds=SECONDS)}))
                   for k, s in (("leaking", leaking), ("fixed", fixed))]
        for thread in drivers:
            thread.start()
        for thread in drivers:
            thread.join()
        done.set()
        sampler.join()
        stats = {"leaking": leaking.stats(), "fixed": fixed.stats()}
        pids = {"leaking": set(leaking.workers()), "fixed": set(fixed.workers())}
    assert all(load.failures == 0 and load.total > 0.8 * 24 * SECONDS for load in loads.values()), loads
    series = box["series"]
    for name, expected_growth in (("leaking", True), ("fixed", False)):
        assert len(pids[name]) == 3
        for pid in pids[name]:
            points = series[pid]
            late = [p for p in points if p[0] >= 0.6 * SECONDS]  # generous, hand-chosen warm-up (~30-45 s here)
            assert len(late) >= 15, (name, pid, len(late))
            rss_rate = slope([(t, rss) for t, rss, _ in late]) * 60
            uss_rate = slope([(t, uss) for t, _, uss in late]) * 60
            kept = stats[name][pid]
            if expected_growth:
                truth = kept["leaked_bytes"] / SECONDS * 60  # what the app says it kept, per minute
                assert truth > 0.6 * MIB, kept  # the harness's load makes ~1 MiB/min per worker
                for rate in (rss_rate, uss_rate):
                    assert 0.7 * truth < rate < 1.6 * truth, (pid, rate / MIB, truth / MIB)
            else:
                assert kept["leaked"] == 0 and kept["live_contexts"] == 0, kept
                for rate in (rss_rate, uss_rate):
                    assert abs(rate) < 0.15 * MIB, (pid, rate / MIB)  # flat: < 0.15 MiB/min after warm-up
