"""Background tasks are kept in a set so they are not garbage collected, but they never finish."""
import asyncio

EXPECT = {"verdict": ["leak"], "culprit": ["watch_connection", "workload"], "root": ["BACKGROUND"]}

BACKGROUND = set()
_never = None


async def watch_connection(n):
    buffer = bytearray(512)
    global _never
    if _never is None:
        _never = asyncio.Event()
    await _never.wait()
    return len(buffer) + n


async def workload():
    task = asyncio.ensure_future(watch_connection(len(BACKGROUND)))
    BACKGROUND.add(task)
    await asyncio.sleep(0)
