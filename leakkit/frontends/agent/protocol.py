"""What the attach agent and its client say to each other: one JSON object a line over a Unix socket.

Why JSON lines: both ends may run different Pythons (the client a 3.11 venv, the target 3.10),
and a line-framed text protocol is read the same by both, without pickle (a peer must never be
able to make the other run code). Every message is bounded (:data:`MAX_LINE`): a peer cannot
make the other grow without limit.

Requests (client -> agent): ``{"op": "hello"}``, ``{"op": "attach", "options": {...}}``,
``{"op": "snapshot", "reason": str, "options": {...}}``, and during a window ``{"op": "finish"}``
(the user pressed Enter). Replies (agent -> client): ``{"ok": true, ...}`` or ``{"ok": false,
"error": code, "message": text}``; during a session ``{"event": "progress", "message": ...}``,
then ``{"event": "result", "report": {...}}`` or ``{"event": "snapshot", "path": ..., "text": ...}``
or ``{"event": "error", "message": ...}``.

Where the socket lives: ``<tmp>/leakkit-<uid>/agent-<pid>.sock``, the directory 0700 and the
socket 0600, both owned by the target's user; the agent checks its peer's uid (``SO_PEERCRED``):
the same user or root. The client finds a target's socket through ``/proc`` (the target's own
listening sockets), so a target with another ``TMPDIR`` or in another mount namespace is found.
"""
from __future__ import annotations

import json
import os
import socket
import struct
from typing import Any

PROTOCOL = 1
MAX_LINE = 16 * 1024 * 1024  # a result with its tables is well under this
PREFIX = "agent-"


def temp_dir() -> str:
    """``$TMPDIR`` (or ``$TEMP``, ``$TMP``) when it is a directory, else /tmp: tempfile's first
    choices, without importing tempfile in the target (it brings shutil, random, bz2, lzma)."""
    for name in ("TMPDIR", "TEMP", "TMP"):
        value = os.environ.get(name)
        if value and os.path.isdir(value):
            return value
    return "/tmp"


def socket_dir(uid: int | None = None) -> str:
    """The directory of the agents of user ``uid`` (this process's user by default)."""
    return os.path.join(temp_dir(), f"leakkit-{os.getuid() if uid is None else uid}")


def socket_path(pid: int | None = None, uid: int | None = None) -> str:
    return os.path.join(socket_dir(uid), f"{PREFIX}{os.getpid() if pid is None else pid}.sock")


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(json.dumps(message, separators=(",", ":"), default=str).encode() + b"\n")


class Lines:
    """Reads one JSON message a line from a socket, each at most :data:`MAX_LINE` bytes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.scanned = 0  # bytes of the buffer known to hold no newline

    def pending(self) -> bool:
        """A whole line is already buffered."""
        return self.buffer.find(b"\n", self.scanned) >= 0

    def read(self) -> dict[str, Any] | None:
        """The next message, or None at the end of the stream."""
        while True:
            end = self.buffer.find(b"\n", self.scanned)
            if end >= 0:
                break
            self.scanned = len(self.buffer)
            if self.scanned > MAX_LINE:
                raise ValueError(f"a message over {MAX_LINE} bytes")
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                return None
            self.buffer += chunk
        line = bytes(self.buffer[:end])
        del self.buffer[:end + 1]
        self.scanned = 0
        message = json.loads(line)
        if not isinstance(message, dict):
            raise ValueError(f"expected a JSON object, received {type(message).__name__}")
        return message


def peer_uid(sock: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end of a Unix socket (Linux ``SO_PEERCRED``)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", raw)
    return pid, uid
