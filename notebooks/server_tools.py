"""Helpers for notebook 06: start gunicorn on 127.0.0.1, drive real HTTP load, stop it with every process gone.

    server = start("checkout_app:app", workers=2, conf=conf_path, env={...})
    server.wait_ready()                 # every worker has answered a request (a condition, not a sleep)
    load = drive(server, rate=40)       # paced real requests (urllib) from threads, in the background
    ...
    load.stop()
    server.stop()                       # SIGTERM to the master, then the whole process group; reaped

Every server started here is also stopped when the kernel exits (``atexit``), and its master gets
SIGTERM if the kernel dies (``PR_SET_PDEATHSIG``): a failed cell leaves nothing running.
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
_RUNNING: list[Server] = []


def _in_child() -> None:
    """Before exec: SIGTERM to the gunicorn master when the notebook's kernel dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Server:
    """A running gunicorn: its master, its port, and every worker pid seen."""

    popen: subprocess.Popen
    port: int
    expected_workers: int
    seen: set[int] = field(default_factory=set)
    loads: list = field(default_factory=list)

    @property
    def master_pid(self) -> int:
        return self.popen.pid

    def workers(self) -> list[int]:
        """The live workers: the master's children."""
        try:
            children = psutil.Process(self.master_pid).children()
        except psutil.NoSuchProcess:
            return []
        pids = sorted(c.pid for c in children if _alive(c.pid))
        self.seen.update(pids)
        return pids

    def request(self, method: str, path: str, timeout: float = 30.0) -> bytes:
        """One real request on a new connection (so that requests spread over the workers)."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method,
                                         data=b"{}" if method == "POST" else None,
                                         headers={"Content-Type": "application/json", "Connection": "close"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()

    def wait_ready(self, timeout: float = 120.0) -> list[int]:
        """Wait until the master has its workers and each has answered; returns their pids."""
        deadline = time.monotonic() + timeout
        answered: set[int] = set()
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.popen.returncode} before it was ready")
            pids = self.workers()
            if len(pids) == self.expected_workers and set(pids) <= answered:
                return pids
            replies: list[bytes] = []
            threads = [threading.Thread(target=self._ask_whoami, args=(replies,))
                       for _ in range(self.expected_workers + 1)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            answered.update(json.loads(r)["pid"] for r in replies if r)
            answered &= set(self.workers())
            time.sleep(0.1)
        raise TimeoutError(f"gunicorn not ready in {timeout:.0f} s: workers {self.workers()}, answered {answered}")

    def _ask_whoami(self, replies: list) -> None:
        """Hold a worker 0.3 s (concurrent calls then reach the others) and note which answered."""
        replies.append(_quiet(self.request, "GET", "/whoami?hold=0.3", timeout=10))

    def stop(self, timeout: float = 30.0) -> None:
        """End its load, SIGTERM to the master (a graceful stop), then SIGKILL to whatever is left of its group."""
        for load in self.loads:
            load.stop()
        self.workers()
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()
        deadline = time.monotonic() + timeout
        while (left := [p for p in self.seen if _alive(p)]) and time.monotonic() < deadline:
            for pid in left:
                with contextlib.suppress(psutil.Error):
                    psutil.Process(pid).kill()
            time.sleep(0.05)
        if self in _RUNNING:
            _RUNNING.remove(self)
        if left:
            raise RuntimeError(f"server processes left running: {left}")

    def running(self) -> list[int]:
        """Pids of this server still alive (the master and every worker seen)."""
        return [p for p in {self.master_pid, *self.seen} if _alive(p)]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _quiet(call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except (OSError, urllib.error.URLError, ValueError):
        return None


def start(app: str, *, workers: int = 2, conf: str | None = None, env: dict[str, str] | None = None) -> Server:
    """Start ``gunicorn APP`` with sync workers on a free port of 127.0.0.1 (from this folder).

    The port is never raced for: this process binds 127.0.0.1:0 and hands gunicorn the listening
    socket (``--bind fd://N``).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    argv = [sys.executable, "-m", "gunicorn", "--bind", f"fd://{sock.fileno()}", "--workers", str(workers),
            "--worker-class", "sync", "--timeout", "120", "--graceful-timeout", "5", "--log-level", "warning"]
    if conf:
        argv += ["-c", conf]
    popen = subprocess.Popen([*argv, app], env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})},
                             pass_fds=(sock.fileno(),), cwd=HERE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True,
                             preexec_fn=_in_child)  # noqa: PLW1509 - the notebook's threads hold no lock here
    port = sock.getsockname()[1]
    sock.close()  # gunicorn has it now
    server = Server(popen, port, workers)
    _RUNNING.append(server)
    return server


@atexit.register
def stop_all() -> None:
    """Stop every server this module started and that is still running (the kernel's exit)."""
    for server in list(_RUNNING):
        with contextlib.suppress(Exception):
            server.stop(timeout=10)


# the load: (share, method, path); the leaking endpoint gets 40% of the requests
MIX = ((0.40, "POST", "/checkout"), (0.40, "GET", "/catalog/{n}"), (0.20, "GET", "/health"))


class Load:
    """Paced real requests to a server from background threads: what was sent, failures, seconds.

    ``rate`` requests a second over ``threads`` threads, each on a new connection (so the kernel
    spreads them over the workers); bounded: it ends at :meth:`stop`, after ``seconds``, or after
    ``rate * seconds`` requests. A late request shifts that thread's schedule instead of bunching.
    """

    def __init__(self, server: Server, *, rate: float = 40.0, seconds: float = 120.0, threads: int = 4,
                 seed: int = 0) -> None:
        self.sent: Counter = Counter()
        self.failures = 0
        self.started = time.monotonic()
        self.seconds = 0.0
        self._server, self._rate, self._lock, self._done = server, rate, threading.Lock(), threading.Event()
        self._limit, self._end = int(rate * seconds) + threads, self.started + seconds
        self._threads = [threading.Thread(target=self._run, args=(seed * 100 + i, threads, i), daemon=True,
                                          name=f"load-{i}") for i in range(threads)]
        for thread in self._threads:
            thread.start()
        server.loads.append(self)

    @property
    def total(self) -> int:
        return sum(self.sent.values())

    def _run(self, seed: int, threads: int, index: int) -> None:
        rng, period = random.Random(seed), threads / self._rate
        due = time.monotonic() + period * index / threads
        while time.monotonic() < self._end:
            if self._done.wait(max(0.0, due - time.monotonic())):
                return
            due = max(due + period, time.monotonic() - period)
            _, method, pattern = rng.choices(MIX, [share for share, _, _ in MIX])[0]
            with self._lock:
                if self.total >= self._limit:
                    return
                self.sent[pattern] += 1
            if _quiet(self._server.request, method, pattern.format(n=rng.randrange(1000))) is None:
                with self._lock:
                    self.failures += 1

    def stop(self) -> Load:
        """End the load (waits for the requests in flight); returns itself."""
        self._done.set()
        for thread in self._threads:
            thread.join(60)
        if not self.seconds:
            self.seconds = time.monotonic() - self.started
        return self

    def __repr__(self) -> str:
        return f"Load({self.total} requests {dict(self.sent)}, {self.failures} failed)"


def drive(server: Server, **options) -> Load:
    """Start paced real requests to ``server`` (:class:`Load`'s options); ``.stop()`` ends them."""
    return Load(server, **options)
