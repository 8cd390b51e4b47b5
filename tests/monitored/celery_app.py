"""A Celery app for the end-to-end test: kombu's filesystem broker and a file result backend in
``$JOBS_BROKER_DIR`` (no broker server to run), the monitor installed in every prefork child."""
from __future__ import annotations

import os

from celery import Celery

from leakkit.frontends.servers import celery as leakkit_celery

from . import jobs

folder = os.environ.get("JOBS_BROKER_DIR", "/tmp/leakkit-jobs-broker")
for sub in ("queue", "results", "control"):
    os.makedirs(os.path.join(folder, sub), exist_ok=True)

app = Celery("jobs", broker="filesystem://", backend=f"file://{folder}/results")
app.conf.update(
    broker_transport_options={"data_folder_in": f"{folder}/queue", "data_folder_out": f"{folder}/queue",
                              "control_folder": f"{folder}/control",  # not ./control in the cwd
                              "polling_interval": 0.02},
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
    result_expires=None,
)
leakkit_celery.install()  # the one line: a monitor in every pool process


@app.task
def render(job: int, keep: bool, size: int = 64_000) -> int:
    return jobs.render(job, keep, size)


@app.task
def monitor_status(_: object = None) -> dict | None:
    return jobs.monitor_status()
