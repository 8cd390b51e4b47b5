"""leakkit: find which function makes a long-running Python process grow, and what keeps the memory alive.

Confirm (``watch``, ``forecast``, ``monitor``), locate (``trace``, ``bisect``, ``growth_sites``),
explain (``bisect(...).retention``, ``heap_summary``, ``heap_vs_native``), prove and guard the fix
(the ``%leakcheck`` magic and the ``leakcheck`` pytest marker).
"""
from __future__ import annotations

import datetime as _datetime
from typing import TYPE_CHECKING, Any

from ._errors import (
    InvalidArgumentError,
    LeakkitError,
    MixedProcessesError,
    NotARecordingError,
    ProbeUnavailableWarning,
    ProcessAccessError,
    RecordingStoppedWarning,
    SaveError,
    UnknownOptionError,
    WorkloadError,
)

# Everything else loads on first use (PEP 562), so that ``import leakkit`` (and pytest, which
# loads the plugin in every run) does not pay for pandas, numpy and matplotlib until asked.
_LAZY = {
    "AttachReport": "reports.attach_report", "attach": "frontends.agent.client", "load_attach": "reports.attach_report",
    "BisectReport": "reports.bisect_report", "Forecast": "reports.forecast", "Growth": "analysis",
    "GrowthSites": "tracing.sites", "HeapNativeReport": "tracing.native", "Monitor": "recording.monitor",
    "Recording": "recording.tables", "Trace": "tracing.trace", "TraceReport": "reports.trace_report",
    "bisect": "engine.bisect", "classify_readings": "tracing.native", "forecast": "reports.forecast",
    "growth_sites": "tracing.sites", "heap_summary": "probes.heap", "heap_vs_native": "tracing.native",
    "humanize": "_text", "load": "recording.tables", "load_watch": ("recording.timeline", "load"),
    "malloc_trim": "tracing.native", "monitor": "recording.monitor", "read_mprofile": "recording.mprof",
    "summary_diff": "probes.heap", "trace": "tracing.trace", "verdict": "reports.trace_report",
    "watch": "reports.live", "write_mprofile": "recording.mprof",
    "WorkerForecasts": "reports.workers", "forecast_workers": "reports.workers",
    "FleetReport": "reports.fleet", "FleetWriter": "recording.export.fleet_writer", "fleet": "reports.fleet",
    "OpenTelemetryExporter": "recording.export.otel", "PrometheusExporter": "recording.export.prometheus",
}


_REAL_DATETIME = getattr(__import__("sys").modules.get("_datetime"), "datetime", _datetime.datetime)


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'leakkit' has no attribute {name!r}")
    module_name, attribute = target if isinstance(target, tuple) else (target, name)
    if _datetime.datetime is not _REAL_DATETIME:
        # datetime.datetime replaced (freezegun's freeze_time): its start reads every attribute of
        # every loaded module, and importing pandas' Cython datetime code with the class patched
        # crashes the interpreter (SIGSEGV). An ImportError is what such scans skip.
        raise ImportError(f"leakkit.{name} is not imported while datetime.datetime is patched "
                          f"({_datetime.datetime!r}): use it outside freeze_time or import it before")
    from importlib import import_module

    value = getattr(import_module(f".{module_name}", __name__), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and editors
    from ._text import humanize
    from .analysis import Growth
    from .engine.bisect import bisect
    from .frontends.agent.client import attach
    from .probes.heap import heap_summary, summary_diff
    from .recording.export.fleet_writer import FleetWriter
    from .recording.export.otel import OpenTelemetryExporter
    from .recording.export.prometheus import PrometheusExporter
    from .recording.monitor import Monitor, monitor
    from .recording.mprof import read_mprofile, write_mprofile
    from .recording.tables import Recording, load
    from .recording.timeline import load as load_watch
    from .reports.attach_report import AttachReport, load_attach
    from .reports.bisect_report import BisectReport
    from .reports.fleet import FleetReport, fleet
    from .reports.forecast import Forecast, forecast
    from .reports.live import watch
    from .reports.trace_report import TraceReport, verdict
    from .reports.workers import WorkerForecasts, forecast_workers
    from .tracing.native import HeapNativeReport, classify_readings, heap_vs_native, malloc_trim
    from .tracing.sites import GrowthSites, growth_sites
    from .tracing.trace import Trace, trace

__version__ = "0.1.0"

__all__ = [
    "AttachReport", "attach", "load_attach",
    "BisectReport", "Forecast", "Growth", "GrowthSites", "HeapNativeReport", "InvalidArgumentError",
    "LeakkitError", "Monitor", "NotARecordingError", "ProbeUnavailableWarning", "ProcessAccessError",
    "Recording", "RecordingStoppedWarning", "SaveError", "Trace", "TraceReport", "UnknownOptionError", "WorkloadError", "bisect",
    "classify_readings", "forecast", "growth_sites", "heap_summary", "heap_vs_native", "humanize", "load",
    "load_watch", "malloc_trim", "monitor", "read_mprofile", "summary_diff", "trace", "verdict", "watch",
    "write_mprofile",
    "MixedProcessesError", "WorkerForecasts", "forecast_workers",
    "FleetReport", "FleetWriter", "OpenTelemetryExporter", "PrometheusExporter", "fleet",
]


def load_ipython_extension(ipython):  # %load_ext leakkit
    from .frontends.magics import load_ipython_extension as _load
    _load(ipython)
