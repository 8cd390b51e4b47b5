"""End to end: a concurrent.futures process pool whose workers run the monitor (the pool initializer).

A real pool of 3 processes runs a bounded stream of real jobs (tests/monitored/jobs.py: a planted
leak beside a filling lru_cache, a bounded dict and cycles). Read from the *running* pool: which
workers grow (their recordings and their monitors' own verdicts), each one's time to the limit,
and from each worker's automatic snapshot the growing type, its allocation site and the reference
path of the planted leak; then the same pool with the leak fixed reads flat for every worker.
Ground truth first, without leakkit: the leaky jobs really keep their reports, the fixed ones not.
"""
from __future__ import annotations

import concurrent.futures
import glob
import multiprocessing
import time

import pytest
from monitored import jobs

from leakkit.frontends.servers import pool
from leakkit.recording.timeline import load
from leakkit.reports.forecast import forecast

MIB = 1024 * 1024
SETTINGS = {"LEAKKIT_MONITOR_INTERVAL": "0.05", "LEAKKIT_MONITOR_SUSTAIN": "4", "LEAKKIT_MONITOR_MIN_GROWTH": "2MiB",
            "LEAKKIT_MONITOR_TRACE_WINDOW": "1", "LEAKKIT_LIMIT": "512MiB"}


def test_ground_truth_the_leaky_job_keeps_its_report_and_the_fixed_one_does_not():
    before = len(jobs.REPORTS)
    for job in range(-50, 0):
        jobs.render(job, keep=False, pause=0)
    assert len(jobs.REPORTS) == before
    for job in range(-50, 0):
        jobs.render(job, keep=True, pause=0)
    assert len(jobs.REPORTS) == before + 50
    for job in range(-50, 0):
        del jobs.REPORTS[job]


def drive(executor, keep: bool, done, deadline: float, start: int = 0) -> int:
    """Jobs 30 at a time (every process always busy: each grows at its own steady pace) until
    ``done()`` or the deadline: a bounded load."""
    job = start
    while not done() and time.monotonic() < deadline:
        list(executor.map(jobs.render, range(job, job + 30), [keep] * 30))
        job += 30
    return job


def statuses(executor, workers: int, keep: bool, wanted=None, deadline: float = 0.0) -> dict[int, dict]:
    """Each worker's monitor status, asked of the running pool under the same load, until every worker
    answered (with a status ``wanted(status)`` accepts, while the deadline allows)."""
    found: dict[int, dict] = {}
    job = 10**6
    while True:
        list(executor.map(jobs.render, range(job, job + 30), [keep] * 30))
        job += 30
        for status in executor.map(jobs.monitor_status, range(workers * 2)):
            if status is not None and (wanted is None or wanted(status) or status["pid"] not in found):
                found[status["pid"]] = status
        settled = [s for s in found.values() if wanted is None or wanted(s)]
        if len(settled) >= workers or (len(found) >= workers and time.monotonic() > deadline):
            return found


def start_pool(folder, service):
    return concurrent.futures.ProcessPoolExecutor(
        3, mp_context=multiprocessing.get_context("spawn"), initializer=pool.initializer, initargs=(str(folder), service))


def test_a_leaking_pool_names_its_growing_workers_type_site_and_root_and_the_fixed_pool_reads_flat(
        tmp_path, monkeypatch):
    for name, value in SETTINGS.items():
        monkeypatch.setenv(name, value)
    leaky_dir, fixed_dir = tmp_path / "leaky", tmp_path / "fixed"

    def reports(folder):
        return glob.glob(str(folder / "*.snapshot-*.txt"))

    with start_pool(leaky_dir, "jobs") as executor:
        drive(executor, True, lambda: len({p.rsplit(".snapshot", 1)[0] for p in reports(leaky_dir)}) >= 3,
              time.monotonic() + 150)
        live = statuses(executor, 3, True, lambda s: s["verdict"] == "leak", time.monotonic() + 60)  # read live
    recordings = sorted(glob.glob(str(leaky_dir / "jobs-worker-*.csv")))
    assert len(recordings) == 3
    assert len(live) == 3 and all(s["verdict"] == "leak" for s in live.values()), [
        (s["verdict"], s["rate_bytes_per_s"]) for s in live.values()]
    for status in live.values():
        assert status["rate_low_bytes_per_s"] > 0  # each worker's own time to its limit, from its own rate:
        assert status["seconds_to_limit"] == pytest.approx((status["limit_bytes"] - status["rss_bytes"])
                                                           / status["rate_bytes_per_s"])
    for path in recordings:
        frame = load(path)
        pid = int(path.rsplit("-", 1)[1].split(".")[0])
        assert (frame["pid"] == pid).all()
        assert forecast(frame).shape in ("linear", "step")  # the recording agrees, snapshots left out
        [report] = [r for r in reports(leaky_dir) if r.startswith(path[:-4] + ".snapshot-001")]
        text = open(report).read()
        assert "leak sustained" in text
        assert "monitored.jobs.Report" in text  # the growing type
        assert f"allocated at {jobs.__file__}:" in text  # its site
        assert "kept by monitored.jobs.REPORTS[" in text  # the root of the planted leak

    with start_pool(fixed_dir, "jobs") as executor:
        deadline = time.monotonic() + 20  # five sustain windows of the same load
        drive(executor, False, lambda: False, deadline)
        fixed = statuses(executor, 3, False, lambda s: s["verdict"] in ("flat", "plateau"), time.monotonic() + 60)
    assert len(fixed) == 3
    assert all(s["verdict"] in ("flat", "plateau") for s in fixed.values()), [
        (s["verdict"], s["rate_bytes_per_s"]) for s in fixed.values()]
    assert reports(fixed_dir) == []  # no worker ever looked like a leak
