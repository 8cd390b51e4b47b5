"""A job runner that connects a per-job progress callback to a blinker signal with
``weak=False`` (so the closure stays alive) and never disconnects it.

Real leak (blinker). ``Signal.connect`` stores each receiver in ``signal.receivers`` (a dict keyed
by the receiver's id) and indexes it in ``signal._by_sender``/``_by_receiver``; a strongly
connected closure, with the job it captures, stays there for the life of the signal. The fix
disconnects when the job ends (or uses ``connected_to``).
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
        if sender is job:
            job.log.append(f"job {job.job_id}: step {step}/{job.steps}")

    progress.connect(on_progress, weak=False)
    for step in range(job.steps):
        progress.send(job, step=step)


def run_job_fixed(job: Job) -> None:
    def on_progress(sender, step: int) -> None:
        if sender is job:
            job.log.append(f"job {job.job_id}: step {step}/{job.steps}")

    with progress.connected_to(on_progress, sender=job):
        for step in range(job.steps):
            progress.send(job, step=step)


def workload():
    run_job(Job(next(_jobs), steps=2))


def workload_fixed():
    run_job_fixed(Job(next(_jobs), steps=2))


def release():
    for receiver in list(progress.receivers.values()):
        progress.disconnect(receiver)


TARGETS = [sys.modules[__name__], blinker, blinker.Signal]
EXPECT = {"verdict": ["leak"], "culprit": ["run_job", "workload"],
          "root": ["rw10_blinker_strong_receivers.progress.receivers"]}
TRUTH = {"kind": "leak", "calls": 150, "min_bytes_per_call": 300,
         "root": "rw10_blinker_strong_receivers.progress.receivers", "root_grows_by": 0.95, "release": "release"}
