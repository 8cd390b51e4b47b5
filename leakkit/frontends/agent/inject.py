"""Injection: start a one-session agent inside a Python process that has none, or refuse before touching it.

Order of work, so that a process is never touched unless every check passed and the same
injection worked on a process of its own interpreter first:

1. **checks** (nothing written): ptrace access to the process (``/proc/PID/mem`` opens for
   writing: same user or root, Yama's ``ptrace_scope``, ``CAP_SYS_PTRACE``, a process that made
   itself undumpable); the same mount namespace (leakkit's files must be the process's files);
   the interpreter's symbols and the layout of its pending-call queue (:mod:`.pending`);
2. **a sacrificial process**: the process's own executable, environment, working directory and
   user, idling in Python; the same injection is made into it and its agent must answer;
3. **the process**: the boot file (0600, owned by the process's user, in its 0700 socket
   directory) and one pending call. Its agent must appear within :data:`WAIT_S` seconds;
   whatever happens, the boot code is zeroed and the boot file removed afterwards.

On 3.14 and later, ``sys.remote_exec`` (run by the process's own interpreter) replaces steps 1-3.
A refusal raises :class:`InjectionError` with why and what to do; ``leakkit attach`` exits 3.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import select
import signal
import subprocess
import time
from typing import Any

from ..._errors import LeakkitError
from . import pending
from .protocol import socket_dir

WAIT_S = {(3, 10): 10.0, (3, 11): 10.0}  # main thread only: it must reach Python code
WAIT_DEFAULT_S = 10.0
STARTUP_S = 60.0  # for the sacrificial interpreter to start (a loaded machine, a slow site-packages)
SACRIFICE = ("import sys, time\nsys.stdout.write('ready\\n'); sys.stdout.flush()\n"
             "end = time.monotonic() + 120\nwhile time.monotonic() < end:\n    time.sleep(0.01)\n")
AGENT_ADVICE = "start the process with LEAKKIT_AGENT=1 (or a leakkit server integration) to attach without injection"


class InjectionError(LeakkitError):
    """leakkit could not start its agent inside the process; the process is left running and unchanged."""


def inject_agent(target: Any, *, progress: Any) -> tuple[str, str]:
    """Start a one-session agent in ``target`` (a :class:`~leakkit.probes.target.Target`); returns
    (its socket path, how leakkit got in). Raises :class:`InjectionError`."""
    if target.python >= (3, 14):
        return _remote_exec(target, progress)
    _check_access(target)
    try:
        pending.locate(target.pid, target.python, target.libpython, target.exe)
    except (pending.Refused, OSError, ValueError) as error:
        raise InjectionError(f"pid {target.pid}: {error}; {AGENT_ADVICE}") from None
    sacrifice = _sacrificial(target)
    progress(f"proving the injection on a sacrificial process of the same interpreter (pid {sacrifice.pid}, "
             f"user {target.user})")
    try:
        sac_target = _as_target(target, sacrifice.pid)
        try:
            path = _inject(sac_target)
        except InjectionError as error:
            raise InjectionError(f"pid {target.pid} not touched: the same injection failed on a sacrificial "
                                 f"process of its interpreter ({error}); {AGENT_ADVICE}") from None
        from .client import hello

        hello(path)
    finally:
        _kill(sacrifice)
        with contextlib.suppress(OSError, UnboundLocalError):
            os.unlink(path)  # the killed sacrificial process could not remove its socket
    progress(f"injecting into pid {target.pid} (one pending call; the process is not stopped)")
    path = _inject(target)
    return path, f"injected (leakkit's pending-call injector, proven first on pid {sacrifice.pid}): one " \
                 "session, then the agent leaves"


def _check_access(target: Any) -> None:
    if _readlink("/proc/self/ns/mnt") != _readlink(f"/proc/{target.pid}/ns/mnt"):
        raise InjectionError(f"pid {target.pid} is in another mount namespace (a container?): leakkit's files "
                             f"are not its files; run leakkit attach inside it, or {AGENT_ADVICE}")
    try:
        pending.Memory(target.pid).close()
    except OSError as error:
        scope = _read("/proc/sys/kernel/yama/ptrace_scope")
        why = f"ptrace access to pid {target.pid} denied ({error.strerror})"
        if scope not in (None, "0"):
            why += f"; Yama's ptrace_scope is {scope}"
        raise InjectionError(f"{why}: run as root or with CAP_SYS_PTRACE (ptrace_scope 3 forbids it to all), or "
                             f"{AGENT_ADVICE}") from None


def _inject(target: Any) -> str:
    """The injection itself (see the module docstring, step 3) into ``target``; returns the agent's socket."""
    from .client import find_socket

    try:
        plan = pending.locate(target.pid, target.python, target.libpython, target.exe)
    except (pending.Refused, OSError, ValueError) as error:
        raise InjectionError(f"pid {target.pid}: {error}") from None
    boot = _boot_file(target)
    code = pending.boot_code(boot)
    address = None
    try:
        try:
            address = pending.write_call(plan, code)
        except pending.Refused:  # the queue was busy: once more, a moment later
            time.sleep(0.2)
            address = pending.write_call(plan, code)
        deadline = time.monotonic() + WAIT_S.get(target.python, WAIT_DEFAULT_S)
        while time.monotonic() < deadline:
            path = find_socket(target.pid, target.own_pid)
            if path is not None:
                return path
            if not os.path.exists(f"/proc/{target.pid}"):
                raise InjectionError(f"pid {target.pid} exited during the injection")
            time.sleep(0.05)
        where = "its main thread (3.10 and 3.11 run injected code there only) never reached Python code" \
            if target.python < (3, 12) else "no thread of it reached Python code"
        raise InjectionError(f"pid {target.pid}: the injected call did not run within "
                             f"{WAIT_S.get(target.python, WAIT_DEFAULT_S):.0f} s ({where}); the code was "
                             f"neutralized; {AGENT_ADVICE}")
    except (pending.Refused, OSError) as error:
        raise InjectionError(f"pid {target.pid}: {error}; {AGENT_ADVICE}") from None
    finally:
        if address is not None:
            with contextlib.suppress(OSError, pending.Refused):
                pending.neutralize(plan, address, len(code), first_byte_only=True)
                time.sleep(0.1)
                pending.neutralize(plan, address, len(code))
        with contextlib.suppress(OSError):
            os.unlink(boot)


def _boot_file(target: Any) -> str:
    """The Python the pending call runs: import this leakkit (the process's own if it has one loaded)
    from its package directory, without putting anything on ``sys.path`` (a thread of the process
    importing meanwhile would find this environment's packages first), and start the agent."""
    directory = socket_dir(target.uid)
    _own_dir(directory, target.uid)
    package = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.path.join(directory, f"boot-{target.own_pid}-{secrets.token_hex(6)}.py")
    source = (
        "import sys\n"
        "if 'leakkit' not in sys.modules:\n"
        "    import importlib.util\n"
        f"    _spec = importlib.util.spec_from_file_location('leakkit', {os.path.join(package, '__init__.py')!r},\n"
        f"                                                    submodule_search_locations=[{package!r}])\n"
        "    _module = importlib.util.module_from_spec(_spec)\n"
        "    sys.modules['leakkit'] = _module\n"
        "    try:\n        _spec.loader.exec_module(_module)\n"
        "    except BaseException:\n        del sys.modules['leakkit']\n        raise\n"
        "from leakkit.frontends.agent import server as _server\n"
        "_server.start(once=True, idle_s=60.0)\n"
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(source)
    if os.geteuid() == 0 and target.uid != 0:
        os.chown(path, target.uid, _gid(target.pid))
    return path


def _own_dir(directory: str, uid: int) -> None:
    """The process's socket directory: made 0700 for its user, or accepted only if it is exactly that."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(directory, 0o700)
        if os.geteuid() == 0 and uid != 0:
            os.chown(directory, uid, -1)
    info = os.lstat(directory)
    import stat

    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid or info.st_mode & 0o077:
        raise InjectionError(f"{directory}: expected a directory of uid {uid} with mode 0700, received another: "
                             "remove it (someone else may have made it)")


def _sacrificial(target: Any) -> subprocess.Popen:
    """The target's interpreter, environment, directory and user, idling in Python (see step 2)."""
    env = _environ(target.pid)
    env.pop("LEAKKIT_AGENT", None)  # the injection must be what starts its agent
    exe = f"/proc/{target.pid}/exe"
    argv0 = target.cmdline[0] if target.cmdline else exe
    cwd = _readlink(f"/proc/{target.pid}/cwd") or "/"
    if not os.path.isabs(argv0):
        argv0 = os.path.join(cwd, argv0)
    program = argv0 if _same_file(argv0, exe) else exe
    extra: dict[str, Any] = {}
    if os.geteuid() == 0 and target.uid != 0:
        extra = {"user": target.uid, "group": _gid(target.pid), "extra_groups": []}
    try:
        popen = subprocess.Popen([program, "-c", SACRIFICE], env=env, cwd=cwd if os.path.isdir(cwd) else "/",
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 start_new_session=True, **extra)
    except OSError as error:
        raise InjectionError(f"pid {target.pid} not touched: its interpreter could not be started for the "
                             f"sacrificial test ({error}); {AGENT_ADVICE}") from None
    ready, _, _ = select.select([popen.stdout], [], [], STARTUP_S) if popen.stdout else ([], [], [])
    line = popen.stdout.readline() if ready else b""
    if line.strip() != b"ready":
        _kill(popen)
        raise InjectionError(f"pid {target.pid} not touched: its interpreter did not start for the sacrificial "
                             f"test; {AGENT_ADVICE}")
    return popen


def _as_target(target: Any, pid: int) -> Any:
    from ...probes.target import read_target

    sac = read_target(pid)
    if sac.libpython != target.libpython or sac.python != target.python:
        raise InjectionError(f"pid {target.pid} not touched: the sacrificial process loaded "
                             f"{sac.libpython or sac.exe}, not {target.libpython or target.exe}; {AGENT_ADVICE}")
    return sac


def _kill(popen: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, signal.SIGKILL)
    popen.wait()
    if popen.stdout:
        popen.stdout.close()


def _remote_exec(target: Any, progress: Any) -> tuple[str, str]:
    """3.14+: the process's own interpreter runs ``sys.remote_exec(pid, boot file)`` (untested here: no 3.14)."""
    from .client import find_socket

    _check_access(target)
    boot = _boot_file(target)
    progress(f"injecting into pid {target.pid} with sys.remote_exec (Python {target.python[0]}.{target.python[1]})")
    try:
        done = subprocess.run([f"/proc/{target.pid}/exe", "-c", f"import sys; sys.remote_exec({target.own_pid}, {boot!r})"],
                              capture_output=True, text=True, timeout=30, env=_environ(target.pid))
        if done.returncode != 0:
            raise InjectionError(f"pid {target.pid}: sys.remote_exec failed: {done.stderr.strip()[-300:]}; {AGENT_ADVICE}")
        deadline = time.monotonic() + WAIT_DEFAULT_S
        while time.monotonic() < deadline:
            path = find_socket(target.pid, target.own_pid)
            if path is not None:
                return path, "injected (sys.remote_exec): one session, then the agent leaves"
            time.sleep(0.05)
        raise InjectionError(f"pid {target.pid}: the remote_exec'd code did not run within {WAIT_DEFAULT_S:.0f} s; "
                             f"{AGENT_ADVICE}")
    except (OSError, subprocess.SubprocessError) as error:
        raise InjectionError(f"pid {target.pid}: sys.remote_exec could not run ({error}); {AGENT_ADVICE}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(boot)


def _environ(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            pairs = [item.split(b"=", 1) for item in handle.read().split(b"\0") if b"=" in item]
    except OSError:
        return {"PATH": os.defpath}
    return {k.decode(errors="surrogateescape"): v.decode(errors="surrogateescape") for k, v in pairs}


def _gid(pid: int) -> int:
    text = _read(f"/proc/{pid}/status") or ""
    for line in text.splitlines():
        if line.startswith("Gid:"):
            return int(line.split()[2])
    return -1


def _same_file(a: str, b: str) -> bool:
    try:
        x, y = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (x.st_dev, x.st_ino) == (y.st_dev, y.st_ino)


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return None
