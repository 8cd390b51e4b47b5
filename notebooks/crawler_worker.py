"""A scheduled crawler worker with the two leaks of the story in docs/method.md, for the case-study notebook.

Every tick the scheduler gathers a few request tasks (fetch a page, parse it) and one pipe message
from the control pipe (a config reload). Each task keeps its connection info in ``CONTEXTS``, a
context map keyed by the task's name, with a read buffer in it, and registers its connections in
``CONNECTIONS``. The two bugs:

1. the request path runs the task-end cleanup (:func:`close_context`); the pipe-message path does
   not, so every pipe message leaves its context (and its read buffer) in ``CONTEXTS`` forever;
2. :func:`release_connection` empties a task's connection list but keeps the entry, so
   ``CONNECTIONS`` gains one empty list per task.

``FIXED`` turns both fixes on: set ``CRAWLER_FIXED=1``, pass ``--fixed``, or assign
``crawler_worker.FIXED = True`` (read at call time). The source is an in-process fake: no network.

Run it as a script (it prints ``ready`` once warmed up, then ticks until ``--seconds`` are up)::

    python crawler_worker.py --seconds 8            # grows ~3 MiB/s
    python crawler_worker.py --seconds 8 --fixed    # holds steady

or call :func:`workload` (one tick) from ``leakkit.bisect``.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import re
import time

FIXED = os.environ.get("CRAWLER_FIXED", "") not in ("", "0")

READ_BUFFER_BYTES = 64 * 1024  # one socket read buffer per task context
REQUESTS_PER_TICK = 4
PIPE_MESSAGES_PER_TICK = 1

#: per-task connection info, keyed by task name ("Task-17"): the context map of the story
CONTEXTS: dict[str, dict] = {}
#: connections per task, keyed by task name: released lists stay behind unless FIXED
CONNECTIONS: dict[str, list] = {}

_LINK = re.compile(rb'href="([^"]+)"')


class FakeSource:
    """Serves generated HTML pages from memory, with a little latency, like a nearby web server."""

    def __init__(self, pages: int = 50) -> None:
        self._pages = [self._render(i) for i in range(pages)]

    @staticmethod
    def _render(i: int) -> bytes:
        links = "".join(f'<a href="/page/{(i * 7 + k) % 50}">next {k}</a>' for k in range(8))
        body = f"<html><body><h1>page {i}</h1>{links}<p>{'lorem ipsum ' * 300}</p></body></html>"
        return body.encode()

    async def fetch(self, url: str) -> bytes:
        await asyncio.sleep(0)  # a network round trip yields to the loop
        number = int(url.rsplit("/", 1)[1]) % len(self._pages)
        return self._pages[number]


class Connection:
    """What the worker tracks per open connection (host, when it opened, bytes read)."""

    __slots__ = ("host", "opened", "bytes_read")

    def __init__(self, host: str) -> None:
        self.host = host
        self.opened = time.monotonic()
        self.bytes_read = 0


SOURCE = FakeSource()


def _task_name() -> str:
    task = asyncio.current_task()
    return task.get_name() if task is not None else "main"


def open_context(task_name: str, kind: str, host: str) -> dict:
    """Per-task connection info, with the read buffer the task's socket reads into."""
    context = {"kind": kind, "host": host, "headers": {"user-agent": "crawler/1.0", "accept": "text/html"},
               "read_buffer": bytearray(READ_BUFFER_BYTES), "started": time.monotonic()}
    CONTEXTS[task_name] = context
    return context


def close_context(task_name: str) -> None:
    """Task-end cleanup: drop the task's context."""
    CONTEXTS.pop(task_name, None)


def track_connection(task_name: str, host: str) -> Connection:
    connection = Connection(host)
    CONNECTIONS.setdefault(task_name, []).append(connection)
    return connection


def release_connection(task_name: str) -> None:
    connections = CONNECTIONS.get(task_name)
    if connections is None:
        return
    connections.clear()
    if FIXED:
        del CONNECTIONS[task_name]  # bug 2 fixed: no empty entry left behind


def parse_links(page: bytes) -> list[str]:
    return [link.decode() for link in _LINK.findall(page)]


async def on_request(url: str) -> int:
    """The request path: fetch and parse a page; runs the task-end cleanup."""
    name = _task_name()
    context = open_context(name, "request", "example.test")
    connection = track_connection(name, context["host"])
    try:
        page = await SOURCE.fetch(url)
        size = min(len(page), READ_BUFFER_BYTES)
        context["read_buffer"][:size] = page[:size]
        connection.bytes_read += len(page)
        return len(parse_links(page))
    finally:
        release_connection(name)
        close_context(name)


async def on_pipe_message(message: bytes) -> str:
    """The pipe-message path (a config reload from the control pipe): never fires the task-end cleanup."""
    name = _task_name()
    context = open_context(name, "pipe", "control-pipe")
    context["read_buffer"][: len(message)] = message
    await asyncio.sleep(0)
    digest = hashlib.sha1(message).hexdigest()
    if FIXED:
        close_context(name)  # bug 1 fixed: the pipe path cleans up like the request path
    return digest


_ticks = 0


async def tick() -> None:
    """One scheduler tick: a few page requests and one pipe message, concurrently."""
    global _ticks
    _ticks += 1
    requests = [on_request(f"/page/{(_ticks * REQUESTS_PER_TICK + k) % 50}") for k in range(REQUESTS_PER_TICK)]
    messages = [on_pipe_message(b"reload config %d" % _ticks) for _ in range(PIPE_MESSAGES_PER_TICK)]
    await asyncio.gather(*requests, *messages)


async def workload() -> None:
    """One tick, for ``leakkit.bisect(crawler_worker.workload, targets=[crawler_worker])``."""
    await tick()


#: ticks run before ``ready``: imports and first-use caches, and the interpreter's own caches
#: (CPython's type attribute cache keeps one attribute-name string per wake-up on a gathering
#: future until its 4096 entries are taken: ~2,000 ticks on 3.10, a steady +55 B a tick until then)
WARMUP_TICKS = 2500


async def run(seconds: float, rate: float) -> int:
    """Tick ``rate`` times a second for ``seconds``; returns the ticks done."""
    global FIXED
    fixed, FIXED = FIXED, True  # the warm-up runs the clean paths: a leaking worker leaks from ready on
    try:
        for _ in range(WARMUP_TICKS):
            await tick()
    finally:
        FIXED = fixed
    print("ready", flush=True)
    period = 1.0 / rate
    start = time.monotonic()
    due = start
    done = 0
    while time.monotonic() - start < seconds:
        await tick()
        done += 1
        due += period
        await asyncio.sleep(max(0.0, due - time.monotonic()))
    return done


def main(argv: list[str] | None = None) -> None:
    global FIXED
    parser = argparse.ArgumentParser(description="A crawler worker that leaks (unless --fixed).")
    parser.add_argument("--seconds", type=float, default=8.0, help="how long to run (default 8)")
    parser.add_argument("--rate", type=float, default=50.0, help="ticks per second (default 50)")
    parser.add_argument("--fixed", action="store_true", help="turn both fixes on (or CRAWLER_FIXED=1)")
    args = parser.parse_args(argv)
    FIXED = FIXED or args.fixed
    ticks = asyncio.run(run(args.seconds, args.rate))
    print(f"done: {ticks} ticks, {len(CONTEXTS)} contexts, {len(CONNECTIONS)} connection entries, "
          f"fixed={FIXED}", flush=True)


if __name__ == "__main__":
    main()
