"""What a process is, read from /proc before leakkit touches it: alive, whose, which Python, where.

Why first: ``leakkit attach PID`` must refuse a process it cannot or must not drive before doing
anything to it, with a message that says why and what to do. Everything here only reads ``/proc``
(and, for a Python whose version its file names do not give, runs that executable with ``-c``,
never the target).
"""
from __future__ import annotations

import os
import pwd
import re
import subprocess
from dataclasses import dataclass, field

from .._errors import ProcessAccessError

SUPPORTED = ((3, 10), (3, 11), (3, 12), (3, 13))
REMOTE_EXEC = (3, 14)  # from here on, sys.remote_exec is the way in (untested: no such Python here)
_LIBPYTHON = re.compile(r"/libpython(\d+)\.(\d+)[a-z]*\.so")
_EXE_VERSION = re.compile(r"python(\d+)\.(\d+)")


@dataclass
class Target:
    """A process as /proc shows it. ``python``: (major, minor) or None if it is not a Python;
    ``libpython``: the shared library the interpreter lives in (None: in the executable itself)."""

    pid: int
    uid: int
    user: str
    state: str
    exe: str | None
    cmdline: list[str]
    python: tuple[int, int] | None
    libpython: str | None
    nspid: list[int] = field(default_factory=list)
    same_pid_namespace: bool | None = None

    @property
    def command(self) -> str:
        return " ".join(self.cmdline) or (self.exe or f"pid {self.pid}")

    @property
    def own_pid(self) -> int:
        """The pid the process sees for itself (its innermost pid namespace)."""
        return self.nspid[-1] if self.nspid else self.pid


def read_target(pid: int) -> Target:
    """Read what /proc says of ``pid``; :class:`~leakkit.ProcessAccessError` if there is no such process."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        raise ProcessAccessError(f"pid: expected a positive process id, received {pid!r}")
    base = f"/proc/{pid}"
    try:
        with open(f"{base}/status", encoding="utf-8", errors="replace") as handle:
            status = dict(line.rstrip("\n").split(":\t", 1) for line in handle if ":\t" in line)
    except FileNotFoundError:
        raise ProcessAccessError(f"pid {pid}: expected a running process, received none (it has exited, or never "
                                 f"was)") from None
    uid = int(status.get("Uid", "0").split()[1])  # the effective uid: whose the process is to the kernel
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    exe = _readlink(f"{base}/exe")
    try:
        with open(f"{base}/cmdline", "rb") as handle:
            cmdline = [a.decode(errors="replace") for a in handle.read().split(b"\0") if a]
    except OSError:
        cmdline = []
    python, libpython = _python_of(base, exe)
    nspid = [int(p) for p in status.get("NSpid", "").split()]
    own_ns, its_ns = _readlink("/proc/self/ns/pid"), _readlink(f"{base}/ns/pid")
    same = None if own_ns is None or its_ns is None else own_ns == its_ns
    return Target(pid=pid, uid=uid, user=user, state=status.get("State", "?").split()[0], exe=exe,
                  cmdline=cmdline, python=python, libpython=libpython, nspid=nspid, same_pid_namespace=same)


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _python_of(base: str, exe: str | None) -> tuple[tuple[int, int] | None, str | None]:
    """(version, libpython) from the mapped files: a libpython3.X, else an executable named python3.X,
    else an executable named python* asked for its version."""
    try:
        with open(f"{base}/maps", encoding="utf-8", errors="replace") as handle:
            maps = handle.read()
    except OSError:
        maps = ""
    found = _LIBPYTHON.search(maps)
    if found:
        path = maps[maps.rfind(" ", 0, found.start()) + 1:maps.find("\n", found.start())].strip()
        return (int(found.group(1)), int(found.group(2))), path
    name = os.path.basename(exe or "")
    found = _EXE_VERSION.match(name)
    if found:
        return (int(found.group(1)), int(found.group(2))), None
    if name.startswith("python") and exe and os.path.exists(exe):
        try:
            out = subprocess.run([exe, "-I", "-S", "-c", "import sys; print('%d %d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=20, env={"PATH": os.defpath})
            major, minor = map(int, out.stdout.split())
            return (major, minor), None
        except (OSError, ValueError, subprocess.SubprocessError):
            return None, None
    return None, None


def check_attachable(target: Target) -> None:
    """Refuse, with what to do, a process leakkit must not attach to: not running, not Python,
    a Python it cannot drive, or another user's while leakkit is not root."""
    if target.state in ("Z", "X"):
        raise ProcessAccessError(f"pid {target.pid}: expected a running process, received one that has exited "
                                 f"(state {target.state}): nothing to attach to")
    me = os.geteuid()
    if me != 0 and target.uid != me:  # first: another user's maps and executable are not ours to read
        raise ProcessAccessError(f"pid {target.pid}: expected a process of your user (uid {me}), received one of "
                                 f"{target.user} (uid {target.uid}): run leakkit attach as {target.user} or as root")
    if target.python is None:
        raise ProcessAccessError(f"pid {target.pid} ({target.command[:80]}): expected a CPython process, received "
                                 f"one with no libpython and no python executable: leakkit attaches to Python "
                                 f"processes only")
    if target.python not in SUPPORTED and target.python < REMOTE_EXEC:
        raise ProcessAccessError(f"pid {target.pid}: expected CPython 3.10-3.13 (or 3.14+), received Python "
                                 f"{target.python[0]}.{target.python[1]} ({target.exe}): leakkit cannot drive it")
