"""leakkit: find which function makes a long-running Python process grow, and what keeps the memory alive.

Confirm (``watch``, ``forecast``, ``monitor``), locate (``trace``, ``bisect``, ``growth_sites``),
explain (``bisect(...).retention``, ``heap_summary``, ``heap_vs_native``), prove and guard the fix
(the ``%leakcheck`` magic and the ``leakcheck`` pytest marker).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import (
    InvalidArgumentError,
    LeakkitError,
    NotARecordingError,
    ProbeUnavailableWarning,
    ProcessAccessError,
    RecordingStoppedWarning,
    UnknownOptionError,
    WorkloadError,
)

# Everything else loads on first use (PEP 562), so that ``import leakkit`` (and pytest, which
# loads the plugin in every run) does not pay for pandas, numpy and matplotlib until asked.
_LAZY = {
    "BisectReport": "bisect_report", "Forecast": "forecasting", "Growth": "analysis",
    "GrowthSites": "sites", "HeapNativeReport": "native", "Monitor": "monitoring", "Recording": "recording",
    "Trace": "tracing", "TraceReport": "report", "bisect": "drilldown", "classify_readings": "native",
    "forecast": "forecasting", "growth_sites": "sites", "heap_summary": "heap", "heap_vs_native": "native",
    "humanize": "_text",
    "load": "recording", "load_watch": ("watching", "load"), "malloc_trim": "native", "monitor": "monitoring",
    "read_mprofile": "mprof", "summary_diff": "heap", "trace": "tracing", "verdict": "report",
    "watch": "watching", "write_mprofile": "mprof",
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'leakkit' has no attribute {name!r}")
    module_name, attribute = target if isinstance(target, tuple) else (target, name)
    from importlib import import_module

    value = getattr(import_module(f".{module_name}", __name__), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and editors
    from ._text import humanize
    from .analysis import Growth
    from .bisect_report import BisectReport
    from .drilldown import bisect
    from .forecasting import Forecast, forecast
    from .heap import heap_summary, summary_diff
    from .monitoring import Monitor, monitor
    from .mprof import read_mprofile, write_mprofile
    from .native import HeapNativeReport, classify_readings, heap_vs_native, malloc_trim
    from .recording import Recording, load
    from .report import TraceReport, verdict
    from .sites import GrowthSites, growth_sites
    from .tracing import Trace, trace
    from .watching import load as load_watch
    from .watching import watch

__version__ = "0.1.0"

__all__ = [
    "BisectReport", "Forecast", "Growth", "GrowthSites", "HeapNativeReport", "InvalidArgumentError",
    "LeakkitError", "Monitor", "NotARecordingError", "ProbeUnavailableWarning", "ProcessAccessError",
    "Recording", "RecordingStoppedWarning", "Trace", "TraceReport", "UnknownOptionError", "WorkloadError", "bisect",
    "classify_readings", "forecast", "growth_sites", "heap_summary", "heap_vs_native", "humanize", "load",
    "load_watch", "malloc_trim", "monitor", "read_mprofile", "summary_diff", "trace", "verdict", "watch",
    "write_mprofile",
]


def load_ipython_extension(ipython):  # %load_ext leakkit
    from .magics import load_ipython_extension as _load
    _load(ipython)
