"""The monitor's CSV: one ``os.write`` per row on a descriptor whose identity is checked first.

Why not a Python file object: a worker is forked from a process whose monitor may be mid-write,
and a buffered file object copied into the child would flush the parent's half line a second
time; a framework may close every descriptor after the fork and reuse the numbers for its
sockets. One unbuffered ``write`` per row (append mode: rows of processes sharing a file never
interleave within a line), and a check that the descriptor is still the file it opened (device
and inode) before each write, so a row never lands in someone else's socket.
"""
from __future__ import annotations

import os
import sys
import warnings
from typing import Any

from .._errors import RecordingStoppedWarning, expected
from . import sidecar as _sidecar
from .files import check_writable_target, open_append


def _first_line(path: str) -> str:
    """The first non-empty, non-comment line of an existing file (at most 64 lines of 1 KiB: it may be
    anything), as :func:`leakkit.recording.timeline.first_record_line` reads it, without its pandas."""
    from .._errors import InvalidArgumentError
    from .files import open_to_read

    with open(open_to_read(path, "path", error=InvalidArgumentError), encoding="utf-8", errors="replace") as handle:
        for _ in range(64):
            line = handle.readline(1024)
            if not line:
                return ""
            if line.strip() and not line.startswith("#"):
                return line.strip()
    return ""


class RowFile:
    """An append-only CSV with a header; :meth:`write` never raises (a failure stops the file, warned once)."""

    def __init__(self, path: str, columns: list[str], meta: dict[str, Any]) -> None:
        self.path = path
        self.columns = columns
        self.error: str | None = None  # why the file stopped (a full disk, ...); sampling goes on
        self.exception: Exception | None = None  # the failure itself, until the monitor takes it
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self._warned = False
        self._open(meta)

    def _open(self, meta: dict[str, Any]) -> None:
        """Open ``path`` to append, refusing a path that can never be ours (before any thread starts)."""
        header = ",".join(self.columns)
        check_writable_target(self.path, "path")
        if os.path.exists(self.path) and os.path.getsize(self.path) > 0 and _first_line(self.path) != header:
            raise expected(f"a new file or a leakkit monitor CSV (header {header})", "path", self.path)
        fd = open_append(self.path, "path")
        info = os.fstat(fd)
        self._fd, self._identity = fd, (info.st_dev, info.st_ino)
        try:
            if info.st_size == 0:
                os.write(fd, (header + "\n").encode())
        except OSError as error:
            self._failed(error)
            return
        try:  # the context goes beside the CSV, which stays a plain header and rows
            _sidecar.add_session(self.path, "monitor", {"pid": os.getpid(), "argv": list(sys.argv), **meta})
        except OSError as error:  # the metadata is lost, not the samples
            self._warn(f"writing {_sidecar.path_for(self.path)!r} failed: {type(error).__name__}: {error}; "
                       f"{self.path!r} goes on without its pid, argv and interval")

    def reopen(self, path: str, meta: dict[str, Any]) -> None:
        """In a forked child: drop the parent's descriptor (without writing to it) and open ``path``."""
        self._drop()
        self.path, self.error, self._warned = path, None, False
        try:
            self._open(meta)
        except Exception as error:  # the child goes on without its file, like a full disk
            self._failed(error)

    def write(self, row: dict[str, Any]) -> None:
        fd = self._fd
        if fd is None:
            return
        cells = []
        for column in self.columns:
            value = row.get(column)
            if value is None:
                cells.append("")
            elif isinstance(value, float):
                cells.append(f"{value:.6f}" if column == "monitor_cpu_s" else f"{value:.4f}" if column in ("t", "unix_time_s")
                             else str(int(value)))
            else:
                cells.append(str(value))
        try:
            info = os.fstat(fd)
            if (info.st_dev, info.st_ino) != self._identity:  # closed behind our back, the number reused
                self._fd = None
                self._failed(OSError(f"descriptor {fd} no longer refers to {self.path!r}"))
                return
            os.write(fd, (",".join(cells) + "\n").encode())
        except OSError as error:  # ENOSPC, EFBIG, EIO, EBADF
            self._failed(error)

    def _failed(self, error: BaseException) -> None:
        self.error = f"writing {self.path!r} failed: {type(error).__name__}: {error}"
        self.exception = error if isinstance(error, Exception) else None
        self.close()
        self._warn(f"{self.error}; the recording stops there, the monitor goes on")

    def _warn(self, message: str) -> None:
        """One warning for the file in its life (the sidecar, then the CSV, on one full disk)."""
        if self._warned:
            return
        self._warned = True
        try:
            warnings.warn(f"leakkit monitor: {message}", RecordingStoppedWarning, stacklevel=4)
        except Exception:  # warnings as errors: still nothing to raise into the application
            pass

    def _drop(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                if (os.fstat(fd).st_dev, os.fstat(fd).st_ino) == self._identity:
                    os.close(fd)
            except OSError:
                pass

    def close(self) -> None:
        self._drop()
