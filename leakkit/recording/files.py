"""Opening the files leakkit writes without following a planted link or writing where it should not.

leakkit often runs as root in directories others can write to (/tmp, a shared log directory).
Where leakkit picks a file's name itself (monitor snapshots, the report's default plot, ``leakkit
run``'s default recording) a symlink or hard link someone planted there must not make it
overwrite another file: those names are opened with ``O_NOFOLLOW`` and checked to be a regular
file with one link (or created exclusively). Names the user gave are opened as given, but must
be regular files (not a directory, a FIFO that would block, or a device).
"""
from __future__ import annotations

import os
import stat

from .._errors import InvalidArgumentError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


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
