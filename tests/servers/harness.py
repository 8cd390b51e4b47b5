"""Start a real gunicorn server on 127.0.0.1, drive bounded HTTP load, and stop it with every process reaped.

Shared by the tests that watch or monitor a running server. The server runs the service of
:mod:`leakapp_core` (Flask for sync workers, Starlette for uvicorn workers)::

    with gunicorn("sync", workers=3, fixed=False) as server:
        server.wait_ready()                      # every worker has answered a request
        load = drive(server, seconds=60)         # paced real requests from several threads
        server.workers()                         # the live worker pids (psutil children of the master)

Why so: the port is never raced for (the harness binds 127.0.0.1:0 itself and hands gunicorn
the listening socket as ``fd://N``); readiness is a condition (every worker has answered), never
a sleep; the load is paced (requests per second, bounded in count and time) so a worker's
growth per minute does not depend on how busy the machine is; and the server is stopped and its
whole process group killed and reaped whatever happens in the test (the master also dies with
the test process: ``PR_SET_PDEATHSIG``). Each process's address space is capped (``memory_cap``).
"""
from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER_CLASSES = {"sync": "sync", "uvicorn": "uvicorn_worker.UvicornWorker"}
APPS = {"sync": "leakapp_wsgi:app", "uvicorn": "leakapp_asgi:app"}
READY_TIMEOUT_S = 180.0  # importing Flask in three workers on a loaded machine can take long
# the harness's default mix: (share of requests, method, path pattern); the leak gets 35%
MIX = (
    (0.35, "POST", "/internal/sync"),
    (0.30, "GET", "/catalog/{key}"),
    (0.10, "POST", "/login/{user}"),
    (0.15, "GET", "/items/{n}"),
    (0.05, "GET", "/"),
    (0.05, "GET", "/health"),
)


def _die_with_parent(cap: int | None) -> None:
    """In the child before exec: its own session, an address-space cap, SIGTERM when the test dies."""
    if cap is not None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class Server:
    """A running gunicorn: its master process, port and the pids of every worker seen."""

    kind: str
    port: int
    popen: subprocess.Popen
    expected_workers: int
    stats_dir: str
    seen: set[int] = field(default_factory=set)

    @property
    def master_pid(self) -> int:
        return self.popen.pid

    def workers(self) -> list[int]:
        """Live worker pids: the master's children (gunicorn forks every worker from it)."""
        try:
            kids = psutil.Process(self.master_pid).children()
        except psutil.NoSuchProcess:
            return []
        pids = sorted(k.pid for k in kids if _alive(k))
        self.seen.update(pids)
        return pids

    def request(self, method: str, path: str, *, timeout: float = 30.0) -> tuple[int, bytes]:
        """One real request on a new connection (so that requests spread over the workers)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=b"{}" if method == "POST" else None,
                               headers={"Connection": "close", "Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> list[int]:
        """Wait until the master has its workers and every one of them has answered a request.

        Concurrent ``/whoami?hold=0.3`` calls each hold a worker, so the others get the next ones.
        Returns the worker pids. Raises AssertionError (with the server's state) on timeout.
        """
        deadline = time.monotonic() + timeout
        answered: set[int] = set()
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise AssertionError(f"gunicorn exited with {self.popen.returncode} before it was ready")
            pids = self.workers()
            if len(pids) == self.expected_workers and set(pids) <= answered:
                return pids
            with contextlib.suppress(OSError, http.client.HTTPException):
                answers = _concurrently(lambda: self.request("GET", "/whoami?hold=0.3", timeout=10),
                                        self.expected_workers + 1)
                answered.update(json.loads(body)["pid"] for status, body in answers if status == 200)
            answered &= set(self.workers())
        raise AssertionError(f"gunicorn not ready in {timeout:.0f} s: workers {self.workers()}, answered {answered}")

    def stats(self) -> dict[int, dict]:
        """What each worker says it kept (``leakapp_core.write_stats``), by pid."""
        found = {}
        for name in os.listdir(self.stats_dir):
            if name.endswith(".json"):
                with contextlib.suppress(OSError, ValueError), open(os.path.join(self.stats_dir, name)) as handle:
                    data = json.load(handle)
                    found[int(data["pid"])] = data
        return found


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _concurrently(call, count: int) -> list:
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(_quiet(call)), daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return [r for r in results if r is not None]


def _quiet(call):
    try:
        return call()
    except (OSError, http.client.HTTPException):
        return None


def _listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


@contextlib.contextmanager
def gunicorn(kind: str = "sync", *, workers: int = 3, fixed: bool = False, max_requests: int = 0,
             max_requests_jitter: int = 0, preload: bool = False, leak_bytes: int | None = None,
             reference_rows: int = 0,
             env: dict[str, str] | None = None, args: list[str] | None = None,
             memory_cap: int | None = 2 << 30, stderr: int | None = subprocess.DEVNULL) -> Iterator[Server]:
    """Start gunicorn on 127.0.0.1 (a free port) with the test service; stop it and reap every process at exit.

    Args:
        kind: ``"sync"`` (Flask on sync workers) or ``"uvicorn"`` (Starlette on uvicorn workers).
        workers: worker processes.
        fixed: the fixed release (``LEAKAPP_FIXED=1``): no leak, the same caches and cycles.
        max_requests, max_requests_jitter: recycle a worker after that many requests (0: never).
        preload: import the app in the master before forking (``--preload``).
        leak_bytes: payload each leaking request keeps (default :data:`leakapp_core.LEAK_BYTES`).
        reference_rows: rows of the shared reference table ``/items/<n>`` reads (with ``preload``,
            built in the master: the workers unshare its pages as they read it).
        env: more environment variables for the server; args: more gunicorn options (a config
            file with ``-c``, hooks...).
        memory_cap: address-space limit of every server process (None: none).
        stderr: where gunicorn's log goes (``None``: the test's stderr).
    """
    if kind not in WORKER_CLASSES:
        raise ValueError(f"kind: expected one of {sorted(WORKER_CLASSES)}, received {kind!r}")
    stats_dir = tempfile.mkdtemp(prefix="leakapp-stats-")
    sock = _listener()
    port = sock.getsockname()[1]
    environment = {**os.environ, "LEAKAPP_FIXED": "1" if fixed else "0", "LEAKAPP_STATS_DIR": stats_dir,
                   "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    if leak_bytes is not None:
        environment["LEAKAPP_LEAK_BYTES"] = str(leak_bytes)
    if reference_rows:
        environment["LEAKAPP_REFERENCE_ROWS"] = str(reference_rows)
    argv = [sys.executable, "-m", "gunicorn", "--bind", f"fd://{sock.fileno()}", "--workers", str(workers),
            "--worker-class", WORKER_CLASSES[kind], "--pythonpath", HERE, "--timeout", "120",
            "--graceful-timeout", "5", "--log-level", "warning", "--worker-tmp-dir", stats_dir]
    if max_requests:
        argv += ["--max-requests", str(max_requests), "--max-requests-jitter", str(max_requests_jitter)]
    if preload:
        argv.append("--preload")
    argv += [*(args or []), APPS[kind]]
    popen = subprocess.Popen(argv, env=environment, pass_fds=(sock.fileno(),), cwd=HERE, stdout=subprocess.DEVNULL,
                             stderr=stderr, start_new_session=True,
                             preexec_fn=lambda: _die_with_parent(memory_cap))  # noqa: PLW1509 - single-threaded here
    sock.close()  # gunicorn has it now
    server = Server(kind, port, popen, workers, stats_dir)
    try:
        yield server
    finally:
        stop(server)
        for name in os.listdir(stats_dir):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(stats_dir, name))
        with contextlib.suppress(OSError):
            os.rmdir(stats_dir)


def stop(server: Server, timeout: float = 30.0) -> None:
    """Stop gracefully (SIGTERM to the master), then kill the whole process group; reap everything.

    Asserts nothing is left: every pid ever seen (workers included) is gone or a zombie of no one's.
    """
    server.workers()  # remember the last workers: they are killed by group too
    popen = server.popen
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, signal.SIGKILL)  # whatever is left of the group (a worker the master lost)
    popen.wait()
    deadline = time.monotonic() + timeout
    left = [pid for pid in server.seen if psutil.pid_exists(pid)]
    while left and time.monotonic() < deadline:
        for pid in left:
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if proc.status() != psutil.STATUS_ZOMBIE:
                    proc.kill()
        time.sleep(0.05)
        left = [pid for pid in left if psutil.pid_exists(pid) and _alive_pid(pid)]
    assert not left, f"server processes left running: {left}"


def _alive_pid(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@dataclass
class Load:
    """What :func:`drive` sent: requests per path kind and status, failures, and the time it took."""

    sent: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    failures: int = 0
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.sent.values())


def drive(server: Server, *, seconds: float, rate: float = 24.0, threads: int = 4, mix=MIX, seed: int = 0,
          stop_event: threading.Event | None = None, max_requests: int | None = None) -> Load:
    """Send paced real requests for ``seconds`` (``rate`` per second over ``threads`` threads).

    Bounded in time and count (``max_requests``, default ``rate * seconds * 1.2``); a late
    request shifts that thread's schedule instead of bunching the next ones. ``stop_event`` ends it
    early. Each request opens a new connection, so the kernel spreads them over the workers.
    """
    load = Load()
    lock = threading.Lock()
    limit = max_requests if max_requests is not None else int(rate * seconds * 1.2) + threads
    period = threads / rate
    end = time.monotonic() + seconds
    stop_event = stop_event or threading.Event()
    weights = [share for share, _, _ in mix]

    def run(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        due = time.monotonic() + period * index / threads
        while not stop_event.is_set():
            now = time.monotonic()
            if now >= end:
                return
            if due > now:
                if stop_event.wait(due - now):
                    return
            due = max(due + period, time.monotonic() - period)
            with lock:
                if load.total >= limit:
                    return
                _, method, pattern = rng.choices(mix, weights)[0]
                load.sent[pattern] += 1
            path = pattern.format(key=rng.randrange(1 << 20), user=rng.randrange(1 << 20), n=rng.randrange(1000))
            try:
                status, _ = server.request(method, path)
            except (OSError, http.client.HTTPException):
                with lock:
                    load.failures += 1
                continue
            with lock:
                load.statuses[status] += 1

    started = time.monotonic()
    workers = [threading.Thread(target=run, args=(i,), daemon=True, name=f"drive-{i}") for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(seconds + 60)
    load.seconds = time.monotonic() - started
    return load


@contextlib.contextmanager
def driving(server: Server, **options) -> Iterator[Load]:
    """:func:`drive` in the background for the ``with`` block (``seconds`` bounds it); stops at exit."""
    stop_event = threading.Event()
    load_box: list[Load] = []
    thread = threading.Thread(target=lambda: load_box.append(drive(server, stop_event=stop_event, **options)),
                              daemon=True, name="drive")
    thread.start()
    result = Load()
    try:
        yield result
    finally:
        stop_event.set()
        thread.join(120)
        if load_box:
            result.sent, result.statuses = load_box[0].sent, load_box[0].statuses
            result.failures, result.seconds = load_box[0].failures, load_box[0].seconds
