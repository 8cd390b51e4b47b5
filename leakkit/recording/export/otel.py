"""Per-worker memory figures through the OpenTelemetry metrics API: observable gauges.

Why observable gauges: the monitor already samples on its own schedule; an observable gauge
hands the SDK the latest status when *its* reader collects (a periodic exporter, a Prometheus
reader), with no second sampler and nothing recorded in between. The instruments are named
beside the semantic conventions' ``process.memory.usage`` (:mod:`leakkit.recording.export.metrics`:
``leakkit.process.memory.rss``, ``.uss``, ``.growth_rate``, ...); each observation carries
``process.pid``, ``leakkit.role``, ``service.name`` and ``service.version``. A figure the status
lacks is not observed (no limit: no ``time_to_limit`` point).

Needs ``opentelemetry-api`` (and an SDK configured by the application, as OpenTelemetry wants:
without one the API's no-op meter takes the instruments and nothing is exported).
"""
from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from ... import _checks
from ..._errors import InvalidArgumentError, expected
from . import forks
from .metrics import ATTRIBUTES, FIGURES, VERDICT, label_values, number


class OpenTelemetryExporter:
    """Export each monitor status as OpenTelemetry observable gauges (a monitor listener).

    Args:
        meter_provider: the SDK's ``MeterProvider`` (default: the global one the application set).
        service, version, role: attribute values for statuses that carry none.

    Example::

        from opentelemetry.sdk.metrics import MeterProvider   # the application's SDK set-up
        mon = leakkit.monitor("worker.csv", service="api")
        mon.add_listener(OpenTelemetryExporter(meter_provider=provider))
    """

    @_checks.strict
    def __init__(self, *, meter_provider: Any = None, service: str | None = None, version: str | None = None,
                 role: str | None = None) -> None:
        try:
            from opentelemetry import metrics
        except ImportError:
            raise InvalidArgumentError("OpenTelemetryExporter: expected opentelemetry-api installed (pip install "
                                       "'leakkit[fleet]'), received an environment without it") from None
        self.defaults = {"service": service, "version": version, "role": role}
        self._latest: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()
        meter = metrics.get_meter("leakkit", meter_provider=meter_provider)
        self._observation = metrics.Observation
        self.instruments = [meter.create_observable_gauge(f.otel, callbacks=[self._callback(f.key)], unit=f.unit,
                                                          description=f.help) for f in FIGURES]
        self.instruments.append(meter.create_observable_gauge(VERDICT.otel, callbacks=[self._verdicts],
                                                              unit=VERDICT.unit, description=VERDICT.help))
        forks.track(self)

    def _after_fork(self) -> None:
        """In a forked child (:mod:`.forks`): no status of the parent observed, a lock of its own
        (the SDK restarts its own reader thread in the child)."""
        self._lock = threading.Lock()
        self._latest = {}

    def __call__(self, status: dict[str, Any]) -> None:
        """Take one status (called by the monitor thread after each sample)."""
        pid = status.get("pid")
        if isinstance(pid, bool) or not isinstance(pid, int):
            raise expected("a status with an int 'pid'", "status", status)
        with self._lock:
            self._latest[pid] = status

    def forget(self, pid: int) -> None:
        """Stop observing one process (a worker that exited)."""
        with self._lock:
            self._latest.pop(pid, None)

    def _attributes(self, status: dict[str, Any]) -> dict[str, str | int]:
        labels = label_values(status, self.defaults)
        out: dict[str, str | int] = {ATTRIBUTES[k]: v for k, v in labels.items() if v and k != "pid"}
        out[ATTRIBUTES["pid"]] = int(status["pid"])
        return out

    def _snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._latest.values())

    def _callback(self, key: str):
        def observe(_options: Any) -> Iterable[Any]:
            for status in self._snapshot():
                value = number(status, key)
                if value is not None:
                    yield self._observation(value, self._attributes(status))
        return observe

    def _verdicts(self, _options: Any) -> Iterable[Any]:
        for status in self._snapshot():
            if status.get("verdict") is not None:
                yield self._observation(1, {**self._attributes(status), "leakkit.verdict": str(status["verdict"])})

    def __repr__(self) -> str:
        return f"OpenTelemetryExporter({len(self.instruments)} instruments, {len(self._latest)} process(es))"
