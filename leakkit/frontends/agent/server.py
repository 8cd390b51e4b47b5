"""The attach agent: a thread in the target process, dormant until a client connects to its socket.

Zero cost until asked: one daemon thread blocked in ``accept()`` and one Unix socket; nothing is
imported beyond the standard library's socket, threading and json until a session starts (then
:mod:`leakkit.recording.attach_session` and the retention modules, numpy-free). Started by
:func:`start`: from the ``LEAKKIT_AGENT`` environment variable (the ``.pth`` file leakkit installs,
:mod:`.autostart`), by a server integration, or injected by ``leakkit attach`` (``once=True``: one
session, then it closes its socket and its thread ends).

Fork-aware: the listening socket is close-on-exec and, in a forked child, the inherited one is
closed (never unlinked: it is the parent's) and a dormant agent starts anew for the child's pid.
A session that started tracing in the parent stops it in the child.

One session at a time: a second ``attach`` or ``snapshot`` while one runs is answered
``busy``, with who runs the first and since when.
"""
from __future__ import annotations

import _tracemalloc  # the C module: tracemalloc.py would import pickle, fnmatch and linecache into the target
import atexit
import os
import select
import socket
import stat
import threading
import time
from typing import Any

from .protocol import PROTOCOL, Lines, peer_uid, send, socket_path

_lock = threading.Lock()
_agent: Agent | None = None
_fork_hook = False
MAX_CONNECTIONS = 4  # connection threads at once: a peer cannot make the agent start threads without end


def start(*, once: bool = False, idle_s: float | None = None) -> str | None:
    """Start this process's attach agent (idempotent, fork-aware); returns its socket path.

    The agent waits for ``leakkit attach PID`` (or ``leakkit snapshot PID``) on a Unix socket
    only the process's user (and root) can reach. ``once``: serve one session then leave (what an
    injected agent does); ``idle_s``: leave after that long without a session. Returns None when
    the socket cannot be made (an unsafe or unwritable socket directory): the process goes on.
    """
    global _agent, _fork_hook
    with _lock:
        if _agent is not None and _agent.pid == os.getpid() and _agent.listening:
            return _agent.path
        try:
            _agent = Agent(once=once, idle_s=idle_s)
        except OSError:
            _agent = None
            return None
        if not _fork_hook and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_fork)
            _fork_hook = True
        return _agent.path


def stop() -> None:
    """Stop this process's agent: its socket is removed and its thread ends (a session running ends too)."""
    global _agent
    with _lock:
        agent, _agent = _agent, None
    if agent is not None and agent.pid == os.getpid():
        agent.close()


def running() -> str | None:
    """The socket path of this process's agent, or None."""
    agent = _agent
    return agent.path if agent is not None and agent.pid == os.getpid() and agent.listening else None


def _after_fork() -> None:
    """In a forked child: forget the parent's agent (its socket is the parent's), start our own."""
    global _agent, _lock
    _lock = threading.Lock()
    parent, _agent = _agent, None
    if parent is None:
        return
    parent.forget()
    if parent.session is not None and parent.session.get("started_tracing") and _tracemalloc.is_tracing():
        _tracemalloc.stop()  # the parent's session started it; nobody would stop it here
    if not parent.once:
        try:
            start()
        except Exception:  # the child goes on without an agent
            pass


def _safe_dir(path: str) -> None:
    """Make the socket directory 0700, or accept it only if it is ours, a real directory, 0700."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(f"{path}: expected a directory of uid {os.getuid()} with mode 0700")


class Agent:
    """One listening socket and its thread (see the module docstring)."""

    def __init__(self, *, once: bool, idle_s: float | None) -> None:
        self.pid = os.getpid()
        self.once = once
        self.path = socket_path()
        self.session: dict[str, Any] | None = None  # who runs the session now, since when
        self._busy = threading.Lock()
        self._connections = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._closed = False
        _safe_dir(os.path.dirname(self.path))
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            if os.path.lexists(self.path):  # our pid's name: left by a dead process that had this pid
                os.unlink(self.path)
            sock.bind(self.path)
            os.chmod(self.path, 0o600)
            sock.listen(8)
            sock.settimeout(idle_s)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.listening = True
        self.thread = threading.Thread(target=self._accept, name="leakkit-agent", daemon=True)
        self.thread.start()
        atexit.register(self.close)

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:  # idle: an injected agent nobody came to leaves
                if self.session is None:
                    self.close()
                    return
                continue
            except OSError:  # closed
                return
            if not self._connections.acquire(blocking=False):
                conn.close()
                continue
            threading.Thread(target=self._serve, args=(conn,), name="leakkit-agent-connection", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(None)
            peer_pid, uid = peer_uid(conn)
            if uid not in (os.getuid(), 0):
                send(conn, {"ok": False, "error": "refused",
                            "message": f"the agent of pid {self.pid} serves uid {os.getuid()} and root, not uid {uid}"})
                return
            lines = Lines(conn)
            while True:
                ready, _, _ = select.select([conn], [], [], 10.0)
                if not ready:
                    return
                request = lines.read()
                if request is None:
                    return
                op = request.get("op")
                if op == "hello":
                    send(conn, self._hello())
                elif op in ("attach", "snapshot"):
                    self._session(conn, lines, request, peer_pid)
                    return
                else:
                    send(conn, {"ok": False, "error": "usage", "message": f"expected op hello, attach or snapshot, received {op!r}"})
                    return
        except (OSError, ValueError):  # the client went away or spoke nonsense: nothing to do
            pass
        finally:
            conn.close()
            self._connections.release()

    def _hello(self) -> dict[str, Any]:
        import sys

        from ... import __version__

        return {"ok": True, "protocol": PROTOCOL, "pid": self.pid, "python": sys.version.split()[0],
                "executable": sys.executable, "argv": list(sys.argv), "leakkit": __version__,
                "mode": "once" if self.once else "dormant", "monitor": bool(_monitors()),
                "busy": self.session}

    def _session(self, conn: socket.socket, lines: Lines, request: dict[str, Any], peer_pid: int) -> None:
        if not self._busy.acquire(blocking=False):
            info = self.session or {}
            send(conn, {"ok": False, "error": "busy", "message":
                        f"another session (from pid {info.get('peer')}, started "
                        f"{time.strftime('%H:%M:%S', time.localtime(info.get('since', 0)))}) is running in pid "
                        f"{self.pid}: one at a time; wait for it to end"})
            return
        try:
            self.session = {"peer": peer_pid, "since": time.time(), "started_tracing": not _tracemalloc.is_tracing()}
            send(conn, {"ok": True, "protocol": PROTOCOL})
            from .session import serve

            serve(conn, lines, request, monitors=_monitors, mode="once" if self.once else "dormant")
        finally:
            self.session = None
            self._busy.release()
            if self.once:
                self.close()

    def forget(self) -> None:
        """In a forked child: close the inherited socket without removing the parent's file."""
        self._closed = True
        self.listening = False
        try:
            self.sock.close()
        except OSError:
            pass

    def close(self) -> None:
        """Remove the socket file and stop listening; safe to call twice."""
        if self._closed or self.pid != os.getpid():
            return
        self._closed = True
        self.listening = False
        try:
            os.unlink(self.path)
        except OSError:
            pass
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        try:
            atexit.unregister(self.close)
        except Exception:
            pass


def _monitors() -> list[Any]:
    """The leakkit monitors running in this process (``leakkit.recording.monitor.active()``), without
    importing the monitor (pandas) when no monitor was ever started."""
    import sys

    module = sys.modules.get("leakkit.recording.monitor")
    active = getattr(module, "active", None) if module is not None else None
    try:
        return list(active()) if callable(active) else []
    except Exception:
        return []
