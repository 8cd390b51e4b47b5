"""gunicorn: a monitor in every worker (sync, gthread, gevent, uvicorn's worker class).

One line in ``gunicorn.conf.py``::

    from leakkit.frontends.servers.gunicorn import *   # post_fork, worker_exit

or, beside hooks of your own, call these from them. ``post_fork`` runs in each new worker (also
the ones gunicorn starts again after ``max_requests`` or a crash) and starts its monitor
(:func:`leakkit.frontends.servers.worker.start`: one ``<service>-worker-<pid>.csv`` each, the
service named after ``proc_name``); ``worker_exit`` stops it. No signal is taken: gunicorn owns
HUP, USR1, USR2, TTIN, TTOU, WINCH, QUIT, INT, TERM and CHLD.
"""
from __future__ import annotations

from typing import Any

from . import worker

__all__ = ["post_fork", "worker_exit"]


def post_fork(server: Any, process: Any) -> None:
    """gunicorn's hook, in the new worker: start its monitor."""
    name = getattr(getattr(server, "cfg", None), "proc_name", None)
    worker.start("worker", service=name if isinstance(name, str) else "gunicorn")


def worker_exit(server: Any, process: Any) -> None:
    """gunicorn's hook, in the worker that exits: stop its monitor."""
    worker.stop()
