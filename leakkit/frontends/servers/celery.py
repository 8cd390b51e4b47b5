"""Celery: a monitor in every prefork child.

In the module that creates the Celery app::

    from leakkit.frontends.servers import celery as leakkit_celery
    leakkit_celery.install()

Each pool process starts its monitor on ``worker_process_init`` (sent in the child after the fork,
and for children the pool replaces after ``worker_max_tasks_per_child`` or
``worker_max_memory_per_child``), and stops it on ``worker_process_shutdown``. The service label is
the app's ``main`` name unless ``service=`` or ``LEAKKIT_SERVICE`` says otherwise.
"""
from __future__ import annotations

from typing import Any

from . import worker

_installed: dict[str, Any] = {}


def install(**options: Any) -> None:
    """Connect the monitor to Celery's worker-process signals (once; later calls change the options)."""
    from celery import current_app
    from celery.signals import worker_process_init, worker_process_shutdown

    _installed["options"] = options
    if "init" in _installed:
        return

    def init(**_: Any) -> None:
        name = getattr(current_app, "main", None)
        worker.start("worker", **{"service": name if isinstance(name, str) and name else "celery",
                                  **_installed["options"]})

    def shutdown(**_: Any) -> None:
        worker.stop()

    _installed["init"], _installed["shutdown"] = init, shutdown  # the signals keep weak references
    worker_process_init.connect(init, weak=False)
    worker_process_shutdown.connect(shutdown, weak=False)
