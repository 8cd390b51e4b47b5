"""Start the attach tests' server (``leaky_server.py``) as a real process, talk to it, stop it.

The server is started without leakkit (or with ``LEAKKIT_AGENT=1``), on 127.0.0.1, in its own
process group, its address space capped; it is killed and reaped at the end whatever happens.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SERVER = os.path.join(HERE, "leaky_server.py")
CAP = 2 << 30


def _cap() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))


@dataclass
class Server:
    popen: subprocess.Popen
    port: int

    @property
    def pid(self) -> int:
        return self.popen.pid

    def get(self, path: str, timeout: float = 30.0) -> bytes:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise OSError(f"{path}: HTTP {response.status}")
            return body
        finally:
            connection.close()

    def status(self, reset: bool = False) -> dict:
        return json.loads(self.get("/status?reset=1" if reset else "/status"))

    def work(self, n: int) -> None:
        for _ in range(n):
            self.get("/work")


@contextlib.contextmanager
def server(python: str = sys.executable, *, agent: bool = False, args: list[str] = (), user: str | None = None,
           env: dict[str, str] | None = None) -> Iterator[Server]:
    """The server under ``python`` (as ``user``), with its agent when ``agent``; killed and reaped at exit."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LEAKKIT")}
    environment.update(env or {})
    environment["PYTHONDONTWRITEBYTECODE"] = "1"
    if agent:
        environment["LEAKKIT_AGENT"] = "1"
    extra = {"user": user} if user else {}
    popen = subprocess.Popen([python, SERVER, *args], env=environment, cwd="/tmp", stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True, preexec_fn=_cap, **extra)
    try:
        line = popen.stdout.readline()
        if not line.strip().isdigit():
            popen.kill()
            raise AssertionError(f"the server did not start: {line!r} {popen.stderr.read()[-2000:]!r}")
        yield Server(popen, int(line))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait()
        popen.stdout.close()
        popen.stderr.close()


@dataclass
class Load:
    """Requests sent by :func:`driving` while a block runs, and how they went."""

    ok: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


@contextlib.contextmanager
def driving(srv: Server, *, path: str = "/work", pause: float = 0.005) -> Iterator[Load]:
    """Requests to ``path`` one after the other from a thread for the ``with`` block, counted."""
    load = Load()
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                srv.get(path, timeout=60)
                load.ok += 1
            except OSError as error:
                load.failed += 1
                load.errors.append(str(error))
            stop.wait(pause)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield load
    finally:
        stop.set()
        thread.join(120)


def wait_for(predicate, timeout: float = 60.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def leakkit(*args: str, user: str | None = None, timeout: float = 300, python: str = sys.executable
            ) -> subprocess.CompletedProcess:
    """``python -m leakkit ARGS`` (as ``user``), its output captured."""
    extra = {"user": user} if user else {}
    return subprocess.run([python, "-m", "leakkit", *args], capture_output=True, text=True, timeout=timeout,
                          cwd="/tmp", env={**os.environ, "PYTHONPATH": ROOT}, stdin=subprocess.DEVNULL, **extra)
