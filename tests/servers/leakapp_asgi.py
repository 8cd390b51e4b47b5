"""The test service as a Starlette (ASGI) app, for gunicorn's uvicorn workers: ``leakapp_asgi:app``.

The Flask app's twin (:mod:`leakapp_wsgi`), the same endpoints over :mod:`leakapp_core`. The
handlers are plain ``def`` where they block (``/whoami`` holds its worker, as the sync one does)
and ``async def`` elsewhere, as a real service mixes them.
"""
from __future__ import annotations

import atexit

import leakapp_core as core
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

atexit.register(core.write_stats)


async def index(request):
    return JSONResponse(core.ordinary("index"))


async def health(request):
    return JSONResponse(core.ordinary("health"))


async def item(request):
    number = request.path_params["number"]
    return JSONResponse(core.ordinary(f"item-{number}", number))


async def internal_sync(request):
    return JSONResponse(core.internal_sync(request.url.path, dict(request.headers)))


async def catalog(request):
    return JSONResponse(core.catalog(request.path_params["key"]))


async def login(request):
    return JSONResponse(core.login(request.path_params["user"]))


async def whoami(request):
    # blocks the worker's loop on purpose: concurrent calls then reach the other workers
    return JSONResponse(core.whoami(float(request.query_params.get("hold", "0"))))


app = Starlette(routes=[
    Route("/", index), Route("/health", health), Route("/items/{number:int}", item),
    Route("/internal/sync", internal_sync, methods=["POST"]), Route("/catalog/{key:int}", catalog),
    Route("/login/{user:int}", login, methods=["POST"]), Route("/whoami", whoami),
])
