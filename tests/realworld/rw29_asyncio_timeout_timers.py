"""An async RPC client that arms a one-hour watchdog per call with ``loop.call_later`` (to log
calls that never finish) and never cancels it when the call completes.

Real leak (stdlib asyncio). Each ``call_later`` puts a ``TimerHandle`` (with the callback, its
arguments and the request they capture) on the running loop's heap of scheduled callbacks,
``loop._scheduled``, until it fires an hour later: under steady traffic the heap only grows.
The fix keeps the handle and calls ``handle.cancel()`` in a ``finally`` (or uses
``asyncio.timeout``).
"""
import asyncio
import itertools
import sys

_seq = itertools.count()
SLOW: list[int] = []


def _watchdog(request: dict) -> None:
    SLOW.append(request["id"])


async def call_service(method: str, payload: dict) -> dict:
    request = {"id": next(_seq), "method": method, "payload": payload}
    asyncio.get_running_loop().call_later(3600, _watchdog, request)
    await asyncio.sleep(0)
    return {"id": request["id"], "ok": True}


async def call_service_fixed(method: str, payload: dict) -> dict:
    request = {"id": next(_seq), "method": method, "payload": payload}
    handle = asyncio.get_running_loop().call_later(3600, _watchdog, request)
    try:
        await asyncio.sleep(0)
        return {"id": request["id"], "ok": True}
    finally:
        handle.cancel()


async def workload():
    await call_service("get_price", {"sku": "A-1", "qty": 2})


async def workload_fixed():
    await call_service_fixed("get_price", {"sku": "A-1", "qty": 2})


TARGETS = [sys.modules[__name__], asyncio, asyncio.base_events.BaseEventLoop]
EXPECT = {"verdict": ["leak"], "culprit": ["call_service", "BaseEventLoop.call_later", "BaseEventLoop.call_at"],
          "root": ["_scheduled"]}
TRUTH = {"kind": "leak", "calls": 200, "min_bytes_per_call": 300}
