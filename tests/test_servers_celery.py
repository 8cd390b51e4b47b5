"""End to end: a real Celery prefork worker (2 children) whose children run the monitor.

The broker is kombu's filesystem transport in a temporary folder (nothing to install or start
but the worker); the app installs the monitor with its one line (tests/monitored/celery_app.py).
Real tasks run a bounded load; read from the *running* worker: each child's growth and time to
the limit (a task that returns its child's monitor status), and from each child's automatic
snapshot the growing type, its allocation site and the reference path of the planted leak; then
the same worker with the leak fixed reads flat in every child.
"""
from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("celery")

TESTS = os.path.dirname(os.path.abspath(__file__))
SETTINGS = {"LEAKKIT_MONITOR_INTERVAL": "0.05", "LEAKKIT_MONITOR_SUSTAIN": "4", "LEAKKIT_MONITOR_MIN_GROWTH": "2MiB",
            "LEAKKIT_MONITOR_TRACE_WINDOW": "3", "LEAKKIT_LIMIT": "1GiB"}
# a 3 s trace window: kombu's filesystem broker hands tasks over in bursts, and a 1 s window could fall
# between two (the snapshot then saw no task run: no Report among the types that grew)


class Worker:
    """``celery worker`` as a subprocess on a broker folder of its own; stopped (TERM, then KILL) on exit."""

    def __init__(self, folder, recordings):  # one broker folder for both: the app is imported once
        self.env = {**os.environ, **SETTINGS, "JOBS_BROKER_DIR": str(folder), "LEAKKIT_MONITOR_DIR": str(recordings),
                    "PYTHONPATH": os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")])}
        self.recordings = recordings
        os.environ["JOBS_BROKER_DIR"] = str(folder)
        from monitored import celery_app  # the client side, on the same folder

        self.app = celery_app
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "monitored.celery_app", "worker", "--pool=prefork",
             "--concurrency=2", "--loglevel=WARNING", "--without-heartbeat", "--without-mingle", "--without-gossip"],
            env=self.env, cwd=TESTS, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            preexec_fn=lambda: __import__("resource").setrlimit(__import__("resource").RLIMIT_AS, (4 << 30, 4 << 30)))

    def run(self, keep: bool, rounds: int, start: int) -> int:
        """``rounds`` batches of 20 tasks, each batch awaited: a bounded load that keeps both children busy."""
        for _ in range(rounds):
            # 512 KB a task: the filesystem broker passes a few dozen tasks a second
            results = [self.app.render.delay(job, keep, 512_000) for job in range(start, start + 20)]
            for result in results:
                result.get(timeout=120, interval=0.01)
            start += 20
        return start

    def statuses(self, keep: bool, wanted, deadline: float) -> dict[int, dict]:
        """Each child's monitor status under the same load, until both answered ``wanted`` (or the deadline)."""
        found: dict[int, dict] = {}
        job = 10**6
        while True:
            job = self.run(keep, 1, job)
            for result in [self.app.monitor_status.delay(i) for i in range(4)]:
                status = result.get(timeout=120, interval=0.01)
                if status is not None and (wanted(status) or status["pid"] not in found):
                    found[status["pid"]] = status
            if sum(map(wanted, found.values())) >= 2 or (len(found) >= 2 and time.monotonic() > deadline):
                return found

    def reports(self):
        return glob.glob(str(self.recordings / "*.snapshot-*.txt"))

    def close(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def test_a_leaking_celery_worker_names_its_growing_children_type_site_and_root_and_the_fix_reads_flat(tmp_path):
    leaky = Worker(tmp_path / "broker", tmp_path / "leaky")
    try:
        job, deadline = 0, time.monotonic() + 150
        while len({p.rsplit(".snapshot", 1)[0] for p in leaky.reports()}) < 2 and time.monotonic() < deadline:
            assert leaky.process.poll() is None, leaky.process.stderr.read()
            job = leaky.run(True, 1, job)
        live = leaky.statuses(True, lambda s: s["verdict"] == "leak", time.monotonic() + 60)
    finally:
        leaky.close()
    assert len(live) == 2 and all(s["verdict"] == "leak" for s in live.values()), [
        (s["verdict"], s["rate_bytes_per_s"]) for s in live.values()]
    for status in live.values():
        assert status["role"] == "worker" and status["service"] == "jobs"
        assert status["rate_low_bytes_per_s"] > 0  # each child's own time to its limit, from its own rate:
        assert status["seconds_to_limit"] == pytest.approx((status["limit_bytes"] - status["rss_bytes"])
                                                           / status["rate_bytes_per_s"])
        [report] = [r for r in leaky.reports() if f"-{status['pid']}.snapshot-001" in r]
        text = open(report).read()
        assert "leak sustained" in text and "monitored.jobs.Report" in text
        assert "allocated at " + os.path.join(TESTS, "monitored", "jobs.py") in text
        assert "kept by monitored.jobs.REPORTS[" in text

    fixed = Worker(tmp_path / "broker", tmp_path / "fixed")
    try:
        job, deadline = 0, time.monotonic() + 20  # five sustain windows of the same load
        while time.monotonic() < deadline:
            job = fixed.run(False, 1, job)
        flat = fixed.statuses(False, lambda s: s["verdict"] in ("flat", "plateau"), time.monotonic() + 60)
    finally:
        fixed.close()
    assert len(flat) == 2 and all(s["verdict"] in ("flat", "plateau") for s in flat.values()), [
        (s["verdict"], s["rate_bytes_per_s"]) for s in flat.values()]
    assert fixed.reports() == []
