"""Per-worker memory gauges for Prometheus: a /metrics endpoint of the worker's own, or gauge files
for prometheus_client's multiprocess collector (gunicorn, uWSGI, Celery prefork).

Why both: a single process is scraped where it runs (:class:`PrometheusExporter` with ``port=``
serves the text format from a thread, without importing prometheus_client: its import alone
costs ~12 MiB of RSS, more than the 1 MiB this export may add); a prefork server's workers share
one endpoint through ``PROMETHEUS_MULTIPROC_DIR``, where prometheus_client drops its own process
collectors (no ``process_resident_memory_bytes`` at all), and each worker writes its gauges to its
own files there. Those gauges use ``multiprocess_mode="liveall"``: one series per live worker,
labelled ``pid`` by the collector, gone when the server calls
``prometheus_client.multiprocess.mark_process_dead(pid)`` for a worker that exited (gunicorn's
``child_exit`` hook): a dead worker's last "time to limit" must not page anyone. (``all`` would
keep it; ``livesum``/``max`` would merge the workers, and the leaking one would hide among them.)

Names, units and labels: :mod:`leakkit.recording.export.metrics`.
"""
from __future__ import annotations

import math
import os
import socket
import threading
import time
from typing import Any

from ... import _checks
from ..._errors import InvalidArgumentError, expected
from . import forks
from .metrics import FIGURES, LABELS, VERDICT, label_values, number

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_ENV = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value != value:
        return "NaN"
    return str(int(value)) if value.is_integer() and abs(value) < 2 ** 63 else repr(value)


def render(statuses: list[dict[str, Any]], defaults: dict[str, str | None] | None = None) -> str:
    """The Prometheus text exposition (format 0.0.4) of the latest status of each process."""
    defaults = defaults or {}
    labelled = [(s, ",".join(f'{k}="{_escape_label(v)}"' for k, v in label_values(s, defaults).items()))
                for s in statuses]
    lines: list[str] = []
    for figure in FIGURES:
        samples = [(labels, number(s, figure.key)) for s, labels in labelled]
        lines += [f"# HELP {figure.prometheus} {figure.help}", f"# TYPE {figure.prometheus} gauge"]
        lines += [f"{figure.prometheus}{{{labels}}} {_format(value)}" for labels, value in samples if value is not None]
    lines += [f"# HELP {VERDICT.prometheus} {VERDICT.help}", f"# TYPE {VERDICT.prometheus} gauge"]
    for status, labels in labelled:
        verdict = status.get("verdict")
        if verdict is not None:
            lines.append(f'{VERDICT.prometheus}{{{labels},verdict="{_escape_label(str(verdict))}"}} 1')
    return "\n".join(lines) + "\n"


class _Server:
    """A minimal HTTP/1.0 responder for GET /metrics on one thread: scrapes come seconds apart, one
    at a time; a client that sends nothing is dropped after 5 s, a request line over 8 KiB refused."""

    def __init__(self, addr: str, port: int, body: Any) -> None:
        self._body = body
        self._socket = socket.create_server((addr, port), reuse_port=False)
        self.address = self._socket.getsockname()[:2]
        self._thread = threading.Thread(target=self._serve, name="leakkit-metrics", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _peer = self._socket.accept()
            except OSError:  # closed by stop()
                return
            try:
                with connection:
                    connection.settimeout(5.0)
                    request = b""
                    while b"\r\n\r\n" not in request and b"\n\n" not in request and len(request) < 8192:
                        chunk = connection.recv(4096)
                        if not chunk:
                            break
                        request += chunk
                    line = request.split(b"\r\n", 1)[0].split()
                    if len(line) >= 2 and line[0] in (b"GET", b"HEAD") and line[1].split(b"?")[0] in (b"/metrics", b"/"):
                        body = self._body().encode()
                        status = b"200 OK"
                    else:
                        body, status = b"not found: leakkit serves GET /metrics\n", b"404 Not Found"
                    head = (b"HTTP/1.0 " + status + b"\r\nContent-Type: " + CONTENT_TYPE.encode()
                            + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n")
                    connection.sendall(head + (b"" if line[:1] == [b"HEAD"] else body))
            except Exception:  # a client that went away, a rendering fault: the next scrape is served
                continue

    def stop(self) -> None:
        try:
            self._socket.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        except OSError:
            pass
        self._socket.close()
        self._thread.join(timeout=5.0)

    def abandon(self) -> None:
        """In a forked child: close this copy of the listening socket only (no shutdown: that would
        stop the parent's endpoint too); the port stays the parent's, and ends with it."""
        self._socket.close()


def multiprocess_dir() -> str | None:
    """The folder prometheus_client's multiprocess mode uses, if this process is set up for it."""
    for name in MULTIPROC_ENV:
        if os.environ.get(name):
            return os.environ[name]
    return None


class PrometheusExporter:
    """Export each monitor status as Prometheus gauges (a monitor listener).

    Args:
        port: serve ``GET /metrics`` on ``addr:port`` from a thread of its own (0: any free port,
            see :attr:`address`). For a single process.
        addr: the address to listen on (default loopback; ``"0.0.0.0"`` for a scraper elsewhere).
        multiprocess: write gauges for prometheus_client's multiprocess collector (default: when
            ``PROMETHEUS_MULTIPROC_DIR`` is set and no ``port`` is given). Needs prometheus_client.
        service, version, role: label values for statuses that carry none.
        stale_after: seconds after which a process not heard of leaves the scrape (a worker a
            watch exported that exited); default: never.

    Example (a single process)::

        mon = leakkit.monitor("worker.csv", service="api", version="1.4")
        mon.add_listener(PrometheusExporter(port=9464))    # curl 127.0.0.1:9464/metrics
    """

    @_checks.strict
    def __init__(self, *, port: int | None = None, addr: str = "127.0.0.1", multiprocess: bool | None = None,
                 service: str | None = None, version: str | None = None, role: str | None = None,
                 stale_after: float | None = None) -> None:
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535):
            raise expected("a TCP port number (0-65535) or None", "port", port)
        if multiprocess is None:
            multiprocess = port is None and multiprocess_dir() is not None
        if not multiprocess and port is None:
            raise InvalidArgumentError("port: expected a port to serve /metrics on, or multiprocess=True with "
                                       "PROMETHEUS_MULTIPROC_DIR set; received neither")
        if stale_after is not None and (isinstance(stale_after, bool) or not isinstance(stale_after, (int, float))
                                        or not stale_after > 0):
            raise expected("a positive number of seconds or None", "stale_after", stale_after)
        self.defaults = {"service": service, "version": version, "role": role}
        self.stale_after = stale_after
        self._latest: dict[int, tuple[float, dict[str, Any]]] = {}
        self._gauges = None
        if multiprocess:
            from .prometheus_multiprocess import MultiprocessGauges

            self._gauges = MultiprocessGauges(self.defaults)
        self._server = _Server(addr, port, self.render) if port is not None else None
        forks.track(self)

    def _after_fork(self) -> None:
        """In a forked child (:mod:`.forks`): none of the parent's statuses, and no endpoint (the
        port is the parent's; under a prefork server use multiprocess mode, or start an exporter
        in each worker); multiprocess gauges go on, in the child's own files."""
        self._latest = {}
        if self._server is not None:
            self._server.abandon()
            self._server = None
        if self._gauges is not None:
            self._gauges.forked()

    @property
    def address(self) -> tuple[str, int] | None:
        """``(host, port)`` the endpoint listens on (None without ``port``)."""
        return None if self._server is None else tuple(self._server.address)  # type: ignore[return-value]

    def __call__(self, status: dict[str, Any]) -> None:
        """Take one status (called by the monitor thread after each sample)."""
        pid = status.get("pid")
        if isinstance(pid, bool) or not isinstance(pid, int):
            raise expected("a status with an int 'pid'", "status", status)
        self._latest[pid] = (time.monotonic(), status)
        if self._gauges is not None:
            self._gauges.set(status)

    def forget(self, pid: int) -> None:
        """Drop one process's series from the endpoint (a worker that exited)."""
        self._latest.pop(pid, None)

    def statuses(self) -> list[dict[str, Any]]:
        """The latest status of each process still exported."""
        if self.stale_after is not None:
            cut = time.monotonic() - self.stale_after
            for pid, (seen, _status) in list(self._latest.items()):
                if seen < cut:
                    self._latest.pop(pid, None)
        return [status for _seen, status in sorted(self._latest.values(), key=lambda item: item[1]["pid"])]

    def render(self) -> str:
        """What a scrape of the endpoint returns now."""
        return render(self.statuses(), self.defaults)

    def stop(self) -> None:
        """Close the endpoint (the multiprocess files are the server's: ``mark_process_dead`` removes them)."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __repr__(self) -> str:
        where = f"http://{self.address[0]}:{self.address[1]}/metrics" if self.address else "no endpoint"
        return f"PrometheusExporter({where}, multiprocess={self._gauges is not None}, {len(self._latest)} process(es))"


__all__ = ["CONTENT_TYPE", "LABELS", "PrometheusExporter", "multiprocess_dir", "render"]
