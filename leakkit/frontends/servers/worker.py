"""Start (or adopt) the monitor of this worker process, with options from the environment.

Why one function for every server: each integration knows only *when* a worker starts (a hook, a
signal, an initializer); what is started is the same everywhere, configured without code where
servers are configured (the environment of the service):

- ``LEAKKIT_MONITOR_DIR``: where recordings go (default ``$TMPDIR/leakkit``), one CSV per process:
  ``<service>-<role>-<pid>.csv``, snapshot reports beside it;
- ``LEAKKIT_SERVICE``, ``LEAKKIT_VERSION``: the labels (default: the server's name, none);
- ``LEAKKIT_MONITOR_INTERVAL``, ``LEAKKIT_MONITOR_SUSTAIN``, ``LEAKKIT_MONITOR_MIN_GROWTH``,
  ``LEAKKIT_MONITOR_TRACE_WINDOW``, ``LEAKKIT_LIMIT`` (a size, or ``none``): the monitor's options;
- ``LEAKKIT_EXPORT``: where the figures also go, comma-separated (:func:`exports_from_environment`):
  ``prometheus`` (gauge files for prometheus_client's multiprocess collector: set
  ``PROMETHEUS_MULTIPROC_DIR``), ``opentelemetry`` (the application's global MeterProvider),
  ``fleet=DIR`` (hive-partitioned Parquet under DIR, ``leakkit fleet DIR`` reads it);
- ``LEAKKIT_MONITOR=0``: start nothing; ``LEAKKIT_AGENT=0``: no attach agent beside the monitor.

A worker whose monitor came with the fork (started before it, ``--preload``) keeps that one,
relabelled. A failure to start never fails the worker: it is warned and the worker serves on.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from typing import Any

from ..._errors import InvalidArgumentError
from ...recording.monitor import Monitor, active, monitor

_ENV = {"interval": ("LEAKKIT_MONITOR_INTERVAL", float), "sustain": ("LEAKKIT_MONITOR_SUSTAIN", float),
        "min_growth": ("LEAKKIT_MONITOR_MIN_GROWTH", str), "trace_window": ("LEAKKIT_MONITOR_TRACE_WINDOW", float),
        "limit": ("LEAKKIT_LIMIT", str), "version": ("LEAKKIT_VERSION", str)}


def options_from_environment() -> dict[str, Any]:
    """The monitor options the environment sets (only those it sets)."""
    found: dict[str, Any] = {}
    for option, (name, kind) in _ENV.items():
        text = os.environ.get(name)
        if text:
            found[option] = None if option == "limit" and text.lower() == "none" else kind(text)
    return found


def exports_from_environment(service: str, version: str | None = None) -> list[Any]:
    """The exporters ``LEAKKIT_EXPORT`` names, made in this worker (each worker's own: a port or a
    file of the master's is not the worker's); an item not understood is refused, with what was expected."""
    from ...recording.export.fleet_writer import FleetWriter
    from ...recording.export.otel import OpenTelemetryExporter
    from ...recording.export.prometheus import PrometheusExporter

    made: list[Any] = []
    for item in filter(None, (part.strip() for part in os.environ.get("LEAKKIT_EXPORT", "").split(","))):
        name, _, value = item.partition("=")
        if name == "prometheus" and not value:
            made.append(PrometheusExporter(multiprocess=True, service=service, version=version))
        elif name == "opentelemetry" and not value:
            made.append(OpenTelemetryExporter(service=service, version=version))
        elif name == "fleet" and value:
            made.append(FleetWriter(value, service=service, version=version))
        else:
            raise InvalidArgumentError(f"LEAKKIT_EXPORT: expected a comma-separated list of prometheus, "
                                       f"opentelemetry, fleet=DIR, received {item!r}")
    return made


def start(role: str = "worker", *, service: str | None = None, directory: str | None = None,
          **options: Any) -> Monitor | None:
    """This process's monitor, started if none runs; None when disabled or when it cannot start (warned)."""
    try:
        if os.environ.get("LEAKKIT_MONITOR", "1") == "0":
            return None
        service = os.environ.get("LEAKKIT_SERVICE") or service or "service"
        running = active()
        if running:  # came with the fork: this worker's own already (thread, files, pid)
            running[0].role = role
            running[0].service = running[0].service or service
            start_agent()
            return running[0]
        directory = directory or os.environ.get("LEAKKIT_MONITOR_DIR") or os.path.join(tempfile.gettempdir(), "leakkit")
        os.makedirs(directory, mode=0o700, exist_ok=True)
        path = os.path.join(directory, f"{_safe(service)}-{_safe(role)}-{{pid}}.csv")
        options = {**options_from_environment(), **options}
        if "export" not in options and os.environ.get("LEAKKIT_EXPORT"):
            options["export"] = exports_from_environment(service, options.get("version"))
        started = monitor(path, role=role, service=service, **options)
        start_agent()
        return started
    except Exception as error:  # leakkit's fault must never be the worker's
        warnings.warn(f"leakkit: the worker monitor did not start ({type(error).__name__}: {error}); "
                      "the worker serves on without it", RuntimeWarning, stacklevel=2)
        return None


def start_agent() -> None:
    """The attach agent beside the monitor (``leakkit snapshot PID`` and ``leakkit attach PID`` reach it:
    :mod:`leakkit.frontends.agent`); ``LEAKKIT_AGENT=0``: none. It never fails the worker."""
    if os.environ.get("LEAKKIT_AGENT", "1") == "0":
        return
    try:
        from ..agent import start

        start()
    except Exception:  # the worker serves on without it; the monitor runs
        pass


def stop() -> None:
    """Stop this process's monitors (a worker exiting); never raises."""
    for mon in active():
        mon.stop()


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)[:64] or "x"
