"""The crawler worker of the story: per-task context is cleaned on the request path only, and a
connection map keeps an empty entry per task."""
import asyncio

EXPECT = {"verdict": ["leak"], "culprit": ["open_context", "on_pipe_message", "track_connection"],
          "root": ["CONTEXTS", "CONNECTIONS"]}

CONTEXTS = {}
CONNECTIONS = {}


def open_context(task_name, kind):
    CONTEXTS[task_name] = {"kind": kind, "headers": {"ua": "crawler/1.0"}, "scratch": bytearray(300)}


def close_context(task_name):
    CONTEXTS.pop(task_name, None)


def track_connection(task_name):
    CONNECTIONS.setdefault(task_name, []).append(object())


def release_connection(task_name):
    CONNECTIONS[task_name].clear()  # the entry itself stays


async def on_request(n):
    name = asyncio.current_task().get_name()
    open_context(name, "request")
    track_connection(name)
    await asyncio.sleep(0)
    release_connection(name)
    close_context(name)


async def on_pipe_message(n):
    name = asyncio.current_task().get_name()
    open_context(name, "pipe")
    await asyncio.sleep(0)


async def workload():
    await asyncio.gather(on_request(1), on_request(2), on_pipe_message(3))
