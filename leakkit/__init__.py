"""leakkit: find which function makes a long-running Python process grow, and what keeps the memory alive.

Confirm (``watch``, ``forecast``, ``monitor``), locate (``trace``, ``bisect``, ``growth_sites``),
explain (``bisect(...).retention``, ``heap_summary``, ``heap_vs_native``), prove and guard the fix
(the ``%leakcheck`` magic and the ``leakcheck`` pytest marker).
"""
from __future__ import annotations

from ._errors import (
    InvalidArgumentError,
    LeakkitError,
    NotARecordingError,
    ProbeUnavailableWarning,
    ProcessAccessError,
    UnknownOptionError,
    WorkloadError,
)
from .analysis import Growth
from .bisect_report import BisectReport
from .drilldown import bisect
from .forecast import Forecast, forecast
from .heap import heap_summary, summary_diff
from .monitor import Monitor, monitor
from .mprof import read_mprofile, write_mprofile
from .native import HeapNativeReport, classify_readings, heap_vs_native, malloc_trim
from .recording import Recording, load
from .report import TraceReport, verdict
from .sites import GrowthSites, growth_sites
from .trace import Trace, trace
from .watch import load as load_watch
from .watch import watch

__version__ = "0.1.0"

__all__ = [
    "BisectReport", "Forecast", "Growth", "GrowthSites", "HeapNativeReport", "InvalidArgumentError",
    "LeakkitError", "Monitor", "NotARecordingError", "ProbeUnavailableWarning", "ProcessAccessError",
    "Recording", "Trace", "TraceReport", "UnknownOptionError", "WorkloadError", "bisect",
    "classify_readings", "forecast", "growth_sites", "heap_summary", "heap_vs_native", "load",
    "load_watch", "malloc_trim", "monitor", "read_mprofile", "summary_diff", "trace", "verdict", "watch",
    "write_mprofile",
]


def load_ipython_extension(ipython):  # %load_ext leakkit
    from .magics import load_ipython_extension as _load
    _load(ipython)
