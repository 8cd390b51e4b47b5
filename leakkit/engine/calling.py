"""Calling the workload: a plain call, or an async one on an event loop bisect owns.

An async workload runs on a new loop in the caller's thread, or, when the caller already runs a
loop (a Jupyter kernel, an async test), on a loop in a thread of its own, so bisect works the same
from both. A workload that raises is still bisected: the errors are counted by type, and only one
that raises on every one of its first calls stops the run.
"""
from __future__ import annotations

import asyncio
import inspect
import sys
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from .._errors import WorkloadError


class Caller:
    """Calls ``call`` (the wrapped workload) once per :meth:`one`, counting what it raises."""

    def __init__(self, workload: Callable, call: Callable) -> None:
        self.call = call
        self.is_async = inspect.iscoroutinefunction(workload) or inspect.iscoroutinefunction(
            getattr(workload, "__call__", None))  # noqa: B004 - an object whose __call__ is async
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread: LoopThread | None = None
        self.errors = 0
        self.first_error: BaseException | None = None
        self.error_types: dict[str, int] = defaultdict(int)

    def start(self) -> None:
        """The event loop an async workload runs on."""
        if self.is_async:
            if loop_running():
                self.loop_thread = LoopThread()
            else:
                self.loop = asyncio.new_event_loop()

    def thread_id(self) -> int | None:
        """The OS id of the thread an async workload runs on when it is not the caller's, else None."""
        return self.loop_thread.thread.native_id if self.loop_thread is not None else None

    def call_workload(self) -> None:
        if self.is_async:
            if self.loop_thread is not None:
                self.loop_thread.run(self.call)
            else:
                self.loop.run_until_complete(self.call())
        else:
            self.call()

    def one(self, i: int) -> None:
        """The ``i``-th call (from 0, warm-up included)."""
        try:
            self.call_workload()
        except Exception as error:  # a workload that raises sometimes is still bisected
            self.errors += 1
            self.error_types[type(error).__name__] += 1
            if self.first_error is None:
                self.first_error = error
            if self.errors == i + 1 and self.errors >= 5:
                raise WorkloadError(
                    f"the workload raised on every one of its first {self.errors} calls "
                    f"({type(error).__name__}: {error}); expected a workload that runs, "
                    f"at least sometimes") from error

    def close(self) -> None:
        """Cancel what the workload left running and close the loop."""
        if self.loop is not None:
            close_loop(self.loop)
            self.loop = None
        if self.loop_thread is not None:
            self.loop_thread.close()
            self.loop_thread = None


def loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class LoopThread:
    """An event loop leakkit owns, running in its own thread: for async workloads bisected from
    code that already runs a loop in this thread."""

    def __init__(self) -> None:
        import threading

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, name="leakkit-bisect-loop", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        """The thread's body: the loop runs beneath this frame of leakkit's, so what it allocates with no
        target function on the stack (its handles and wake-ups, the futures that carry each call across
        threads, the frame and block caches they fill over the first few hundred calls) is leakkit's,
        as when the loop runs in the caller's thread beneath bisect's frames (analysis.attribution)."""
        self.loop.run_forever()

    def run(self, factory: Callable[[], Any]) -> Any:
        async def call() -> Any:
            return await factory()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result()

    def close(self) -> None:
        async def finish() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        try:
            asyncio.run_coroutine_threadsafe(finish(), self.loop).result(timeout=10)
        except Exception:  # a task that refuses to finish must not hide the report
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    try:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


def progress_bar(progress: Any, total: int) -> Any:
    """bisect's tqdm bar over ``total`` calls: None when ``progress`` is False, or None and not on a terminal."""
    if progress is False:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    disable = None if progress is None else not progress
    if progress is None and not sys.stderr.isatty():
        return None
    return tqdm(total=total, desc="leakkit bisect", unit="call", disable=disable, leave=False)
