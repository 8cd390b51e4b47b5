"""``leakkit.attach(pid)`` and ``leakkit snapshot``: find the process's agent (or inject one), run the
session, write the report. The ways in are tried in order, and each one tried is said:

1. the agent already listening in the process (``LEAKKIT_AGENT=1``, a server integration, or
   :func:`leakkit.frontends.agent.start`), found through ``/proc``;
2. injection (:mod:`.inject`): an agent for one session, started inside the process.
"""
from __future__ import annotations

import os
import select
import socket
import threading
from collections.abc import Callable
from typing import Any

from ... import _checks
from ..._errors import LeakkitError, ProcessAccessError
from ..._sizes import parse_size
from .protocol import PREFIX, PROTOCOL, Lines, send

Progress = Callable[[str], None]


class AgentError(LeakkitError):
    """The agent answered with a refusal or a failure, or went away before its report."""

    def __init__(self, message: str, *, code: str = "failed") -> None:
        super().__init__(message)
        self.code = code


def find_socket(pid: int, own_pid: int | None = None) -> str | None:
    """The path of the agent socket process ``pid`` listens on (read from /proc), or None."""
    want = f"{PREFIX}{own_pid or pid}.sock"
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
        with open(f"/proc/{pid}/net/unix", encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 8 and fields[6] in inodes and fields[7].endswith(want) and "/leakkit-" in fields[7]:
            path = fields[7]
            return path if os.path.exists(path) else f"/proc/{pid}/root{path}"
    return None


def hello(path: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """The agent's hello (pid, Python, mode, whether a monitor runs, whether a session runs)."""
    with _connect(path, timeout) as sock:
        lines = Lines(sock)
        send(sock, {"op": "hello", "protocol": PROTOCOL})
        return _answer(lines.read(), path)


def run_session(path: str, request: dict[str, Any], *, progress: Progress | None = None,
                finish: threading.Event | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ask the agent at ``path`` for a session; returns (its hello, its last message: result or snapshot).

    ``finish``: set it to end the window early (the user pressed Enter). Leaving early (an
    exception, Ctrl-C) closes the socket: the agent stops tracing and drops what it took.
    """
    with _connect(path, 10.0) as sock:
        lines = Lines(sock)
        send(sock, {"op": "hello", "protocol": PROTOCOL})
        greeting = _answer(lines.read(), path)
        if greeting.get("protocol") != PROTOCOL:
            raise AgentError(f"the agent at {path} speaks protocol {greeting.get('protocol')}, this leakkit "
                             f"{PROTOCOL}: use the leakkit version the process runs ({greeting.get('leakkit')})")
        send(sock, request)
        _answer(lines.read(), path)
        sock.settimeout(None)
        finished = False
        while True:
            if not lines.pending():
                ready, _, _ = select.select([sock], [], [], 0.2)
                if finish is not None and finish.is_set() and not finished:
                    send(sock, {"op": "finish"})
                    finished = True
                if not ready:
                    continue
            message = lines.read()
            if message is None:
                raise AgentError(f"the agent in pid {greeting.get('pid')} closed the connection before its report "
                                 f"(did the process exit?)")
            event = message.get("event")
            if event == "progress":
                if progress is not None:
                    progress(str(message.get("message")))
            elif event in ("result", "snapshot"):
                return greeting, message
            elif event == "error":
                raise AgentError(f"the agent in pid {greeting.get('pid')} failed: {message.get('message')}")


def _connect(path: str, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError as error:
        sock.close()
        raise AgentError(f"cannot reach the agent at {path}: {error.strerror or error}", code="unreachable") from None
    return sock


def _answer(message: dict[str, Any] | None, path: str) -> dict[str, Any]:
    if message is None:
        raise AgentError(f"the agent at {path} closed the connection without an answer")
    if not message.get("ok"):
        raise AgentError(str(message.get("message") or message), code=str(message.get("error") or "failed"))
    return message


def options(duration: float, top: int, frames: int, max_trace_memory: Any) -> dict[str, Any]:
    """The session options a request carries, checked here (the agent drops what it does not know)."""
    from ..._errors import expected

    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 0 < duration < 7 * 86400:
        raise expected("a positive number of seconds (under a week)", "duration", duration)
    for name, value, low, high in (("top", top, 1, 1000), ("frames", frames, 1, 100)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise expected(f"an int from {low} to {high}", name, value)
    return {"duration": float(duration), "top": top, "frames": frames,
            "max_trace_bytes": parse_size(max_trace_memory, "max_trace_memory")}


def out_dir(out: str | os.PathLike | None) -> str:
    """The report's directory, made if missing, checked before anything is done to the process."""
    from ..._errors import InvalidArgumentError

    directory = _checks.path(out, "out") if out is not None else "."
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as error:
        raise InvalidArgumentError(f"out: expected a directory to write the report in, received {directory!r}: "
                                   f"{error.strerror}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InvalidArgumentError(f"out: expected a writable directory, received {directory!r}")
    return directory


def way_in(pid: int, *, inject: bool, progress: Progress) -> tuple[str, str, Any]:
    """(socket path, how leakkit got in, the target) trying the ways in order; says each one tried."""
    from ...probes.target import check_attachable, read_target

    target = read_target(pid)
    if pid == os.getpid():
        raise ProcessAccessError(f"pid {pid}: expected another process, received leakkit's own: in this process, "
                                 "use leakkit.monitor or leakkit.heap_summary")
    check_attachable(target)
    path = find_socket(pid, target.own_pid)
    if path is not None:
        greeting = hello(path)
        mode = greeting.get("mode")
        progress(f"way in 1/2: the agent in pid {pid} ({mode}) at {path}")
        return path, f"the agent already in the process ({mode}), {path}", target
    progress(f"way in 1/2: no agent in pid {pid} (a process started with LEAKKIT_AGENT=1 has one)")
    if not inject:
        raise ProcessAccessError(f"pid {pid}: expected a process with leakkit's agent, received one without "
                                 f"(--no-inject): start it with LEAKKIT_AGENT=1, or allow injection")
    from .inject import inject_agent

    progress("way in 2/2: injection (an agent for one session, started inside the process)")
    path, how = inject_agent(target, progress=progress)
    return path, how, target


@_checks.strict
def attach(pid: int, *, duration: float = 30.0, out: str | os.PathLike | None = None, inject: bool = True,
           top: int = 15, frames: int = 10, max_trace_memory: int | str = "16MiB",
           progress: Progress | None = None, finish: threading.Event | None = None) -> Any:
    """What grew in a running Python process, where it was allocated and what keeps it alive.

    Walks the process's heap, traces its allocations for ``duration`` seconds (tracemalloc, started
    and stopped inside it), walks again, and reports the types that grew, their allocation sites
    and the reference paths from a root to them. The process keeps running throughout (leakkit's
    work yields every few milliseconds), and nothing of leakkit is left in it but imported modules.

    Args:
        pid: the process (CPython 3.10-3.13, same user, or any as root).
        duration: seconds between the two heap walks (``finish.set()`` ends it sooner).
        out: directory for the report file (default: the current one).
        inject: inject an agent when the process has none (else it must run with ``LEAKKIT_AGENT=1``).
        top: rows of the growing types table; frames: tracemalloc frames per allocation.
        max_trace_memory: tracemalloc's own memory that ends the window early ("16MiB").
        progress: called with each step's line (ways in tried, walks, window).

    Returns:
        an :class:`~leakkit.reports.attach_report.AttachReport` (text, HTML, DataFrames), saved.

    Example::

        report = leakkit.attach(4242, duration=60)
        report.types.head()     # what grew
        print(report)           # with allocation sites and reference paths
    """
    say = progress or (lambda message: None)
    request = {"op": "attach", "options": options(duration, top, frames, max_trace_memory)}
    out = out_dir(out)
    path, how, target = way_in(pid, inject=inject, progress=say)
    from ...reports.attach_report import AttachReport, default_name, save_report

    _greeting, message = run_session(path, request, progress=say, finish=finish)
    report = AttachReport(result=message["report"], way_in=how,
                          target={"pid": pid, "user": target.user, "exe": target.exe, "command": target.command})
    save_report(report, default_name(pid, out), picked=True)
    return report


@_checks.strict
def snapshot(pid: int, *, reason: str = "on demand", duration: float | None = None,
             out: str | os.PathLike | None = None, inject: bool = True, progress: Progress | None = None) -> Any:
    """The running monitor's snapshot of ``pid`` (its report's path and text, as a dict), or, without
    a monitor, an attach (an :class:`~leakkit.reports.attach_report.AttachReport`). ``duration``:
    the monitor watches that long first (default: one look); the attach's window (default 10 s)."""
    say = progress or (lambda message: None)
    request = {"op": "snapshot", "reason": reason, "window": duration,
               "options": options(10.0 if duration is None else duration, 15, 10, "16MiB")}
    out = out_dir(out)
    path, how, target = way_in(pid, inject=inject, progress=say)
    from ...reports.attach_report import AttachReport, default_name, save_report

    _greeting, message = run_session(path, request, progress=say)
    if message.get("event") == "snapshot":
        return {"path": message.get("path"), "text": message.get("text"), "way_in": how}
    report = AttachReport(result=message["report"], way_in=how,
                          target={"pid": pid, "user": target.user, "exe": target.exe, "command": target.command})
    save_report(report, default_name(pid, out), picked=True)
    return report
