"""multiprocessing and concurrent.futures pools: a monitor in every pool process.

::

    from leakkit.frontends.servers import pool
    with multiprocessing.Pool(3, initializer=pool.initializer) as workers: ...
    with ProcessPoolExecutor(3, initializer=pool.initializer, initargs=("/var/log/app", "resize")) as ex: ...

Works with every start method (fork, forkserver, spawn): the initializer runs in each pool
process. Your own initializer too: ``initializer=pool.initializer, initargs=(dir, service, init, *args)``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import worker


def initializer(directory: str | None = None, service: str | None = None,
                then: Callable[..., Any] | None = None, *args: Any) -> None:
    """Start this pool process's monitor (recordings in ``directory``, labelled ``service``), then ``then(*args)``."""
    worker.start("worker", service=service or "pool", directory=directory)
    if then is not None:
        then(*args)
