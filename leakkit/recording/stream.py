"""A trace's append-only stream file: checked when the trace is built, never a fault of the traced call.

Why a module of its own: the stream runs inside the user's calls, so every way it can fail (a
full disk, a file-size limit, an I/O error, another process on the same file) must end in "the
stream stopped, the recording goes on in memory, one warning", never in an exception out of the
traced call or of ``stop()``.

Appending: a non-empty file must be a leakkit recording (its header; or, written before the
plain CSV, the magic line and the header). The new rows
continue its call numbering, so one file never holds two calls with the same id; a line cut
short by a writer that died is cut off first. Two processes: the first to write holds an
exclusive ``flock`` on the file; another process (a fork included) streams to a sibling file
``<stem>.<pid>.csv``, created exclusively, and says so in a warning.
"""
from __future__ import annotations

import csv
import os
import warnings
from typing import Any

from .. import _checks
from .._errors import InvalidArgumentError, RecordingStoppedWarning

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: no lock, one writer assumed
    fcntl = None  # type: ignore[assignment]

_TAIL = 1 << 16


def check_stream_path(path: Any, magic: str, header: list[str]) -> str:
    """The stream path as a str, refused now (when the trace is built) if it can never be streamed to."""
    from .files import check_writable_target, open_to_read

    path = _checks.path(path, "stream")
    check_writable_target(path, "stream")
    if os.path.exists(path) and os.path.getsize(path) > 0:
        fd = open_to_read(path, "stream", error=InvalidArgumentError)  # not a FIFO swapped in since the check
        try:
            head = os.read(fd, len(magic) + 8192).decode("utf-8", "replace").split("\n") + ["", ""]
        finally:
            os.close(fd)
        first, second = head[0].rstrip("\r"), head[1].rstrip("\r")
        if not _starts_a_recording(first, second, magic, header):
            raise InvalidArgumentError(f"stream: expected a new file or a leakkit recording to append to (header "
                                       f"{','.join(header[:4])},...), received {path!r}, which starts {first[:40]!r}")
    return path


def _starts_a_recording(first: str, second: str, magic: str, header: list[str]) -> bool:
    """A recording's first lines: its header, or (written before the plain CSV) the magic line, then the header."""
    return first == ",".join(header) or (first == magic and second == ",".join(header))


class Stream:
    """Writes rows to one CSV file; call :meth:`write` with the recorder's lock held."""

    def __init__(self, path: str, magic: str, header: list[str]) -> None:
        self.path = path
        self._magic = magic
        self._header = header
        self._handle: Any = None
        self._writer: Any = None
        self._pid: int | None = None
        self.offset = 0  # file call ids = in-memory call ids + offset
        self.error: str | None = None  # why the stream stopped
        self._saved: int | None = None  # calls in a save written over this file (its ids: the in-memory ones)

    @property
    def stopped(self) -> bool:
        return self.error is not None

    def writes_to(self, path: str) -> bool:
        """Whether ``path`` names the file this stream appends to."""
        try:
            return os.path.samefile(path, self.path) or os.path.abspath(path) == os.path.abspath(self.path)
        except OSError:
            return os.path.abspath(path) == os.path.abspath(self.path)

    def write(self, rows: list[dict], calls_before: int) -> None:
        """Append ``rows`` (their ``call`` values are in-memory ones); stop quietly on any failure.

        ``calls_before``: calls the recorder held before these rows, to place them in the file.
        """
        if self.error is not None:
            return
        try:
            if self._handle is None or self._pid != os.getpid():
                self._open(calls_before)
            offset = self.offset
            for row in rows:
                if offset and isinstance(row.get("call"), int):
                    row = {**row, "call": row["call"] + offset}
                self._writer.writerow(row)
            self._handle.flush()
        except Exception as error:  # a full disk, EFBIG, EIO, a file swapped under us: never the call's fault
            self.stop(f"{type(error).__name__}: {error}")

    def rebase(self, calls_forgotten: int) -> None:
        """The recorder forgot ``calls_forgotten`` calls (reset): the file's numbering goes on."""
        self.offset += calls_forgotten

    def stop(self, why: str) -> None:
        """Stop writing for good (the recording goes on in memory), with one warning."""
        self.error = why
        self._close()
        _warn(f"leakkit trace: stream {self.path!r} stopped ({why}); the recording goes on in memory "
              "(save it with .save())")

    def close(self) -> None:
        """Close the file (the next row reopens it)."""
        self._close()

    def saved_over(self, calls: int) -> None:
        """A save of the whole recording (``calls`` calls, in-memory ids) replaced the file: the next
        row reopens the new file and goes on after those calls."""
        self._close()
        self._saved = calls

    def _close(self) -> None:
        handle, self._handle, self._writer = self._handle, None, None
        if handle is not None:
            try:
                handle.close()
            except OSError:  # the last flush on a full disk: the rows are in memory
                pass

    # -- opening ------------------------------------------------------------------------------
    def _open(self, calls_before: int) -> None:
        if self._handle is not None:  # inherited from the parent of a fork: its file, its lock
            self._close()
        self._pid = os.getpid()
        fd = _open_regular(self.path)
        if not self._lock(fd):
            os.close(fd)
            fd = self._sibling()
        try:
            next_call = self._prepare(fd)
        except BaseException:
            os.close(fd)
            raise
        if self._saved is not None:  # a save's rows are grouped by table: its tail may not show its last call
            next_call, self._saved = max(next_call, self._saved), None
        self.offset = next_call - calls_before
        self._handle = os.fdopen(fd, "a", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._handle, self._header, extrasaction="ignore")

    @staticmethod
    def _lock(fd: int) -> bool:
        if fcntl is None:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _sibling(self) -> int:
        from .files import create_new

        stem, ext = os.path.splitext(self.path)
        for attempt in range(100):
            path = f"{stem}.{os.getpid()}{ext or '.csv'}" if attempt == 0 else f"{stem}.{os.getpid()}-{attempt}{ext or '.csv'}"
            try:
                fd = create_new(path, "stream", mode=0o644)
            except FileExistsError:
                continue
            self._lock(fd)
            _warn(f"leakkit trace: stream {self.path!r} is being written by another process; "
                  f"this process (pid {os.getpid()}) streams to {path!r}")
            self.path = path
            return fd
        raise OSError(f"no free sibling file name for {self.path!r}")

    def _prepare(self, fd: int) -> int:
        """Write the header of a new file, or check an existing one and find its next call id."""
        size = os.fstat(fd).st_size
        if size == 0:
            os.write(fd, (",".join(self._header) + "\r\n").encode())
            return 0
        head = os.pread(fd, len(self._magic) + 8192, 0).decode("utf-8", "replace").split("\n") + ["", ""]
        if not _starts_a_recording(head[0].rstrip("\r"), head[1].rstrip("\r"), self._magic, self._header):
            raise ValueError("the file is no longer a leakkit recording")
        start = max(0, size - _TAIL)
        tail = os.pread(fd, size - start, start)
        if not tail.endswith(b"\n"):  # a writer died mid-line: drop the piece, keep every finished row
            cut = tail.rfind(b"\n")
            if cut < 0:
                raise ValueError("the file ends in a line longer than 64 KiB")
            os.ftruncate(fd, start + cut + 1)
            tail = tail[: cut + 1]
        return _next_call(tail.decode("utf-8", "replace").splitlines()[1:])  # the first: the header, or cut


def _open_regular(path: str) -> int:
    """Open the stream's file to append, never waiting on it: a FIFO or a device put there since the
    trace was built is refused (the stream stops), never written into until the traced program blocks."""
    import stat

    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
                 | getattr(os, "O_NOCTTY", 0), 0o644)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path!r} is no longer a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _next_call(lines: list[str]) -> int:
    """The next call id after the rows in ``lines`` (the tail of a recording, oldest first)."""
    for row in csv.reader(reversed(lines)):
        if len(row) < 2:
            continue
        try:
            value = int(float(row[1]))
        except ValueError:
            continue
        return value + 1 if row[0] == "calls" else value
    return 0


def _warn(message: str) -> None:
    try:
        warnings.warn(message, RecordingStoppedWarning, stacklevel=4)
    except Exception:  # warnings turned into errors (-W error): still not the traced call's business
        pass
