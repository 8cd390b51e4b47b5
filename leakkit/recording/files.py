"""Opening the files leakkit reads and writes: never blocking, never following a planted link,
never destroying what a save replaces.

Reading (:func:`open_to_read`, :func:`read_bytes`): a path is opened with ``O_NONBLOCK`` and checked
with ``fstat`` before a byte is read, so a FIFO (which would block until a writer comes) or a
device (``/dev/zero`` never ends) is refused with an error that says what it is; what is read is
bounded (:data:`MAX_READ`), so a file that keeps growing cannot exhaust memory.

Saving (:func:`saving`): the whole file is written to a new temporary file beside the target,
flushed to disk (``fsync``), then renamed over it. A failure (a full disk, a write error, an
exception while writing) removes the temporary file and leaves the old file whole, and raises
:class:`~leakkit.SaveError` saying why; a reader never sees half a file.

leakkit often runs as root in directories others can write to (/tmp, a shared log directory).
Where leakkit picks a file's name itself (monitor snapshots, the report's default plot, ``leakkit
run``'s default recording) a symlink or hard link someone planted there must not make it
overwrite another file: those names are opened with ``O_NOFOLLOW`` and checked to be a regular
file with one link (or created exclusively). Names the user gave are opened as given, but must
be regular files (not a directory, a FIFO that would block, or a device).
"""
from __future__ import annotations

import contextlib
import io
import os
import stat
from collections.abc import Iterator
from typing import IO, Any

from .. import _checks
from .._errors import InvalidArgumentError, NotARecordingError, SaveError

MAX_READ = 1 << 30  # bytes: a recording larger than this is refused, not read into memory

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_NOCTTY = getattr(os, "O_NOCTTY", 0)


def _refuse(name: str, path: str, what: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"{name}: expected a regular file leakkit may write, received {path!r}: {what}")


def _kind(mode: int) -> str:
    for test, label in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
                        (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symlink")):
        if test(mode):
            return label
    return "not a regular file"


def create_new(path: str, name: str, *, mode: int = 0o600) -> int:
    """A new file at ``path`` (never an existing one, never through a link); returns the descriptor.

    Raises FileExistsError when something (a file, a link) is already there, so the caller can pick
    another name; other failures become InvalidArgumentError.
    """
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, mode)
    except FileExistsError:
        raise
    except OSError as error:
        raise _refuse(name, path, error.strerror or str(error)) from None


def open_replace(path: str, name: str, *, mode: int = 0o644) -> int:
    """Open ``path`` to overwrite, refusing a symlink, a hard-linked file or a non-regular one.

    For names leakkit picks: the file may exist from an earlier run (it is replaced), but only if
    it is a plain file of its own: a link planted in its place is refused.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | _NOFOLLOW | _CLOEXEC | _NONBLOCK, mode)
    except OSError as error:
        if os.path.islink(path):
            raise _refuse(name, path, "a symbolic link (not followed)") from None
        raise _refuse(name, path, error.strerror or str(error)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _refuse(name, path, _kind(info.st_mode))
        if info.st_nlink > 1:
            raise _refuse(name, path, f"a file with {info.st_nlink} hard links (not overwritten)")
        os.set_blocking(fd, True)
        os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def refuse_planted(path: str, name: str) -> None:
    """For a name leakkit picks in a directory others can write: refuse a symlink or a hard-linked
    file someone planted there (say so, rather than quietly replace it), or anything not a file."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as error:
        raise _refuse(name, path, error.strerror or str(error)) from None
    if stat.S_ISLNK(info.st_mode):
        raise _refuse(name, path, "a symbolic link (not followed)")
    if not stat.S_ISREG(info.st_mode):
        raise _refuse(name, path, _kind(info.st_mode))
    if info.st_nlink > 1:
        raise _refuse(name, path, f"a file with {info.st_nlink} hard links (not overwritten)")


def check_writable_target(path: str, name: str) -> None:
    """Refuse, before anything runs, a user-given output path that can never be written as a file."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise _refuse(name, path, f"its directory {directory!r} does not exist") from None
        if not os.access(directory, os.W_OK):
            raise _refuse(name, path, f"its directory {directory!r} is not writable") from None
        return
    except OSError as error:
        raise _refuse(name, path, error.strerror or str(error)) from None
    if not stat.S_ISREG(info.st_mode):
        raise _refuse(name, path, _kind(info.st_mode))


def open_append(path: str, name: str) -> int:
    """Open a user-given file to append to (created 0644 if missing); it must be a regular file."""
    check_writable_target(path, name)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _CLOEXEC | _NONBLOCK, 0o644)
    except OSError as error:
        raise _refuse(name, path, error.strerror or str(error)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # swapped between the check and the open
            raise _refuse(name, path, _kind(info.st_mode))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


# -- reading ------------------------------------------------------------------------------------
def open_to_read(path: Any, name: str, *, error: type[Exception] = NotARecordingError) -> int:
    """A descriptor on the regular file at ``path``, opened without waiting on it.

    ``O_NONBLOCK`` makes opening a FIFO return at once (instead of waiting for a writer); ``fstat``
    on what was opened (not on the name, which could be swapped in between) refuses anything but
    a regular file. Errors are ``error`` (NotARecordingError for recordings) naming the path.
    """
    path = _checks.path(path, name, error=error)
    try:
        fd = os.open(path, os.O_RDONLY | _NONBLOCK | _CLOEXEC | _NOCTTY)
    except FileNotFoundError:
        raise error(f"{name}: expected a file, received a path that does not exist: {path!r}") from None
    except OSError as failure:
        try:  # a socket (ENXIO), a device without a driver: say what it is
            mode = os.stat(path).st_mode
        except OSError:
            mode = stat.S_IFREG
        what = failure.strerror or str(failure) if stat.S_ISREG(mode) else _kind(mode)
        raise error(f"{name}: expected a readable regular file, received {path!r}: {what}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise error(f"{name}: expected a regular file, received {path!r}: {_kind(mode)}")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bytes(path: Any, name: str, *, limit: int = MAX_READ, error: type[Exception] = NotARecordingError) -> bytes:
    """The content of a regular file, at most ``limit`` bytes (a larger one is refused, not read)."""
    fd = open_to_read(path, name, error=error)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise error(f"{name}: expected a file of at most {_mib(limit)}, received {os.fspath(path)!r} of {_mib(size)}")
        chunks, total = [], 0
        while True:  # /proc files say size 0, a live recording grows: read to the end, within the limit
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise error(f"{name}: expected a file of at most {_mib(limit)}, received {os.fspath(path)!r}, "
                            "which grew past it while read")
        return b"".join(chunks)
    except OSError as failure:
        raise error(f"{name}: expected a readable file, received {os.fspath(path)!r}: "
                    f"{failure.strerror or failure}") from None
    finally:
        os.close(fd)


def read_text(path: Any, name: str, *, limit: int = MAX_READ, error: type[Exception] = NotARecordingError) -> str:
    """:func:`read_bytes` decoded as UTF-8 (bytes that are not UTF-8 become U+FFFD, never an error)."""
    return read_bytes(path, name, limit=limit, error=error).decode("utf-8", "replace")


def _mib(nbytes: int) -> str:
    return f"{nbytes / (1 << 20):.0f} MiB" if nbytes >= 1 << 20 else f"{nbytes} bytes"


# -- saving -------------------------------------------------------------------------------------
def _save_target(path: Any, name: str, picked: bool) -> str:
    """Where a save lands: the path (a user's symlink followed to its file, one leakkit picked not),
    refused now if it can never be saved there."""
    path = _checks.path(path, name)
    if not picked and os.path.islink(path):
        path = os.path.realpath(path)  # the user named the link: the file it points to is replaced
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as failure:
        raise _refuse(name, path, failure.strerror or str(failure)) from None
    # a name leakkit picks may be taken by anything but a directory (a planted link or FIFO is
    # replaced by the rename, never written through); a name the user gave must be a regular file
    if mode is not None and not (stat.S_ISREG(mode) or (picked and not stat.S_ISDIR(mode))):
        raise _refuse(name, path, _kind(mode))
    if mode is not None and not picked and not os.access(path, os.W_OK):
        raise _refuse(name, path, "the file is not writable (a rename would replace it anyway: refused)")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise _refuse(name, path, f"its directory {directory!r} does not exist")
    return path


@contextlib.contextmanager
def saving(path: Any, name: str, *, binary: bool = False, picked: bool = False,
           newline: str | None = None, mode: int | None = None) -> Iterator[IO[Any]]:
    """Write a whole file that replaces ``path`` only once it is complete and on disk.

    Yields a handle on a new temporary file beside ``path``; on leaving the block it is flushed,
    ``fsync``-ed and renamed over ``path`` (keeping the old file's permissions). Any failure removes
    the temporary file, leaves ``path`` as it was, and raises (an OSError as :class:`~leakkit.SaveError`).
    ``picked``: leakkit chose the name, so a link planted there is replaced, never followed.
    ``mode``: the new file's permissions (0o600 for a report naming the program's keys), whatever
    the old file's or the umask's.
    """
    target = _save_target(path, name, picked)
    directory, base = os.path.split(os.path.abspath(target))
    try:
        old: os.stat_result | None = os.lstat(target)
        if not stat.S_ISREG(old.st_mode):
            old = None
    except OSError:
        old = None
    fd, scratch = _scratch(directory, base, name, target)
    handle: IO[Any] | None = None
    try:
        raw = os.fdopen(fd, "wb")
        handle = raw if binary else io.TextIOWrapper(raw, encoding="utf-8", newline=newline)
        yield handle
        handle.flush()
        os.fsync(raw.fileno())  # on disk before the name points at it: a crash never leaves an empty file
        _keep_owner(raw.fileno(), old)
        if mode is not None:
            os.fchmod(raw.fileno(), mode)
        handle.close()
        handle = None
        os.replace(scratch, target)
        scratch = None
        _sync_directory(directory)
    except OSError as failure:
        error = SaveError(f"{name}: could not save {target!r}: {failure.strerror or failure}; "
                          + ("the file there before is left whole" if old is not None else "nothing was written there"))
        error.errno = failure.errno
        raise error from failure
    finally:
        if handle is not None:
            with contextlib.suppress(OSError, ValueError):
                handle.close()
        if scratch is not None:
            with contextlib.suppress(OSError):
                os.unlink(scratch)


def _scratch(directory: str, base: str, name: str, target: str) -> tuple[int, str]:
    """A new temporary file beside the target (its name hidden, never an existing file or link)."""
    for _attempt in range(100):
        scratch = os.path.join(directory, f".{base[:200]}.leakkit-{os.getpid()}-{os.urandom(4).hex()}.tmp")
        try:
            return os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600), scratch
        except FileExistsError:
            continue
        except OSError as failure:
            raise SaveError(f"{name}: could not save {target!r}: cannot create a file in {directory!r} "
                            f"({failure.strerror or failure}); leakkit writes beside the file, then renames") from None
    raise SaveError(f"{name}: could not save {target!r}: no free temporary name in {directory!r}")


def _keep_owner(fd: int, old: os.stat_result | None) -> None:
    """The new file gets the old one's permissions (and owner, when we may), or the umask's default."""
    if old is None:
        os.fchmod(fd, 0o666 & ~_umask())
        return
    os.fchmod(fd, stat.S_IMODE(old.st_mode))
    if hasattr(os, "fchown") and (old.st_uid != os.geteuid() or old.st_gid != os.getegid()):
        with contextlib.suppress(OSError):
            os.fchown(fd, old.st_uid, old.st_gid)


def _umask() -> int:
    """The process's umask, read without setting it (os.umask sets it: a race with other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def _sync_directory(directory: str) -> None:
    """The rename itself on disk (best effort: some filesystems refuse fsync on a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY | _CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
