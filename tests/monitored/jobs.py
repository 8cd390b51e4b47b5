"""Jobs for the pool and Celery end-to-end tests: a planted leak and its fix, beside look-alikes.

The leak: every rendered report is kept in ``REPORTS`` by job id and never evicted (64 KB each).
The look-alikes every job also exercises, which must never read as the leak: an ``lru_cache``
that fills to its bound, a hand-bounded dict, and a reference cycle per job (garbage the
collector frees). ``render(job, keep=False)`` is the fixed version: the same work, nothing kept.
"""
from __future__ import annotations

import functools
import os
import time


class Report:
    """What a job renders: its rows are the bulk of the memory."""

    def __init__(self, job: int, size: int) -> None:
        self.job = job
        self.rows = bytearray(size)


REPORTS: dict[int, Report] = {}  # the planted root: never evicted
RECENT: dict[int, bytes] = {}  # bounded by hand: at most 32 entries


@functools.lru_cache(maxsize=64)
def lookup(key: int) -> bytes:
    return bytes(2048)


def render(job: int, keep: bool = True, size: int = 64_000, pause: float = 0.01) -> int:
    """One job; ``keep=True`` is the leak."""
    lookup(job % 64)
    RECENT[job % 32] = bytes(512)
    node: dict = {"job": job}
    node["self"] = node  # a cycle
    report = Report(job, size)
    if keep:
        REPORTS[job] = report
    time.sleep(pause)  # spreads the jobs over the pool's processes
    return os.getpid()


def monitor_status(_: object = None) -> dict | None:
    """The monitor's status in the process that runs this job (None: no monitor there)."""
    from leakkit.recording.monitor import active

    running = active()
    time.sleep(0.05)
    return running[0].status() if running else None
