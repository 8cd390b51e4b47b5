"""Any ASGI server (``uvicorn --workers N``, hypercorn, daphne): wrap the application.

::

    from leakkit.frontends.servers.asgi import monitored
    app = monitored(app, service="checkout")

The monitor starts in each worker process when the server starts the application (ASGI
lifespan ``startup``) or at its first request, whichever comes first, once per process; the
application sees every message unchanged. For gunicorn with uvicorn's worker class the gunicorn
hooks (:mod:`leakkit.frontends.servers.gunicorn`) do the same without wrapping.
"""
from __future__ import annotations

import os
from typing import Any

from . import worker


class Monitored:
    """The ASGI application ``app``, with this process's monitor started on its first call."""

    def __init__(self, app: Any, **options: Any) -> None:
        self.app = app
        self.options = options
        self._started_in: int | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._started_in != os.getpid():
            self._started_in = os.getpid()
            worker.start("worker", **{"service": "asgi", **self.options})
        await self.app(scope, receive, send)

    def __getattr__(self, name: str) -> Any:  # the framework's own attributes (app.state, routes, ...)
        return getattr(self.app, name)


def monitored(app: Any, **options: Any) -> Monitored:
    """Wrap an ASGI application so that each worker process starts its monitor (options: ``service``,
    ``directory``, any of :func:`leakkit.monitor`'s)."""
    return Monitored(app, **options)
