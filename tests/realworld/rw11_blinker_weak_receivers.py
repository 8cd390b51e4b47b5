"""The weak twin of rw10: each job connects its progress callback weakly (blinker's default).

Look-alike (blinker). The closure dies when ``run_job`` returns; blinker's weak reference
callback removes it from ``signal.receivers`` and its indexes. Nothing is kept per call: the
weak references are cleanup, not retention.
"""
import itertools
import sys

import blinker

progress = blinker.Signal("job-progress")
_jobs = itertools.count()


class Job:
    def __init__(self, job_id: int, steps: int) -> None:
        self.job_id = job_id
        self.steps = steps
        self.log: list[str] = []


def run_job(job: Job) -> None:
    def on_progress(sender, step: int) -> None:
        job.log.append(f"job {job.job_id}: step {step}/{job.steps}")

    progress.connect(on_progress)  # weak=True
    for step in range(job.steps):
        progress.send(job, step=step)


def workload():
    run_job(Job(next(_jobs), steps=2))


TARGETS = [sys.modules[__name__], blinker, blinker.Signal]
EXPECT = {"verdict": ["clean", "plateau"], "culprit": [None], "root": []}
TRUTH = {"kind": "clean", "calls": 300}
