"""A bisect in a forked copy of the session: what it runs and traces stays in the copy.

A bisect runs the test some 60 more times under tracemalloc. Made in the session's own process it
leaves three things there: those runs' growth (the leak it found, 60 times over), tracemalloc's
freed tables (tens of thousands of free chunks among live ones: glibc's ``mallinfo2`` walks every
free chunk, so each later malloc reading of the session cost 4.7 ms instead of 0.1 ms, a third of
attrs' check), and, when the bisect overruns, an interruption raised into the test's Python code.
Made in a forked child, none of them reach the session: the child sends back the report and
exits without running anything of pytest's; an overrun is killed, not interrupted.

Only a session that a copy cannot disturb forks (:func:`can_fork`); others bisect in the session
itself, as before. One Python thread: a fork copies only the calling thread, so a test that hands
work to a thread pool or an event-loop thread would wait forever in the child. No socket, pipe or
epoll set open beyond the standard streams and what the session inherited when it started (a
make jobserver's pipes, a CI runner's): a fork shares them, so a child reading a shared
socket would take the session's data, and one unregistering a shared descriptor from an event
loop's epoll set would unregister it for the session too (an asyncio test's loop always has one).
"""
from __future__ import annotations

import dataclasses
import os
import pickle
import select
import signal
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from ...probes import process as probes

KILL_GRACE_S = 10.0  # past the child's own limit, before the parent kills it


class ChildDied(Exception):
    """The forked bisect ended without sending its result (a crash, a kill, an overrun)."""


def can_fork() -> bool:
    """Whether a forked bisect can run the test: a POSIX fork, no other Python thread, nothing
    shared a copy could disturb."""
    return hasattr(os, "fork") and threading.active_count() == 1 and _shared_io() is None


_SHARED = ("socket:", "pipe:", "anon_inode:[eventpoll]", "anon_inode:[eventfd]")
_inherited: frozenset[str] = frozenset()


def note_inherited() -> None:
    """Take what the descriptors open now refer to as the session's inheritance (at configure,
    before any test). By what they refer to, not their numbers: pytest's capture dups the
    terminal's pipe again for each test."""
    global _inherited
    _inherited = frozenset(target for _, target in _descriptors())


def _descriptors() -> list[tuple[str, str]]:
    """(fd, what it refers to) past the standard streams; OSError without /proc."""
    return [(fd, target) for fd, target in probes.descriptors() if int(fd) > 2]


def _shared_io() -> str | None:
    """The first descriptor opened since :func:`note_inherited` that a fork would share with the
    session (a socket, a pipe, an epoll set, an eventfd), or None. Where descriptors cannot be
    listed (no /proc), every one is assumed shared: "unknown"."""
    try:
        found = _descriptors()
    except OSError:
        return "unknown"
    for name, target in found:
        if target.startswith(_SHARED) and target not in _inherited:
            return f"fd {name}: {target}"
    return None


def _portable(result: Any) -> Any:
    """The report without what only the child's heap can hold (live objects on retention paths)."""
    if dataclasses.is_dataclass(result) and hasattr(result, "retention_details"):
        notes = [str(note) for note in getattr(result, "notes", [])]
        return dataclasses.replace(result, retention_details=[], notes=notes)
    return result


def _child(func: Callable[[], Any], write: int) -> None:
    """In the child: run, send ("ok", result) or ("raised", error), never return."""
    try:
        try:
            message: tuple[str, Any] = ("ok", _portable(func()))
        except BaseException as error:  # noqa: BLE001 - every way out is sent to the parent
            message = ("raised", error)
        try:
            data = pickle.dumps(message)
            pickle.loads(data)  # an exception whose class cannot be rebuilt fails here, not in the parent
        except Exception:  # noqa: BLE001 - an error the parent could not rebuild: its text
            error = message[1] if message[0] == "raised" else None
            data = pickle.dumps(("failed", f"{type(error).__name__}: {error}" if error is not None
                                 else "its report could not be sent back"))
        view = memoryview(data)
        while view:
            view = view[os.write(write, view):]
    finally:
        os._exit(0)


def run_forked(func: Callable[[], Any], limit: float) -> Any:
    """``func()`` run in a forked child, its result (or its exception) sent back.

    The child's own watchdog keeps ``limit``; past it and :data:`KILL_GRACE_S` more, the parent
    kills the child and raises :class:`ChildDied`, as it does when the child dies first.
    """
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12's fork-with-threads warning
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child: measured by the parent's tests
        os.close(read)
        _child(func, write)
    os.close(write)
    chunks: list[bytes] = []
    deadline = time.monotonic() + limit + KILL_GRACE_S
    killed = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                killed = True
                break
            ready, _, _ = select.select([read], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(read, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
    except BaseException:  # Ctrl-C while waiting: the child goes too
        os.kill(pid, signal.SIGKILL)
        raise
    finally:
        os.close(read)
        _, status = os.waitpid(pid, 0)
    if killed:
        raise ChildDied(f"it overran {limit + KILL_GRACE_S:.0f} s and was killed")
    if not chunks:
        raise ChildDied(f"its process ended without a result ({_status(status)})")
    kind, value = pickle.loads(b"".join(chunks))
    if kind == "raised":
        raise value
    if kind == "failed":
        raise ChildDied(value)
    return value


def _status(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = str(number)
        return f"killed by {name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
