"""leakkit: find which function makes a long-running Python process grow, and what keeps the memory alive."""
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
from .recording import Recording, load
from .report import TraceReport, verdict
from .trace import Trace, trace

__version__ = "0.1.0"


def heap_summary(*args, **kwargs):  # noqa: ANN002, ANN003, ANN201 - replaced below when heap.py exists
    from .heap import heap_summary as _impl

    return _impl(*args, **kwargs)


__all__ = [
    "Growth", "InvalidArgumentError", "LeakkitError", "NotARecordingError", "ProbeUnavailableWarning",
    "ProcessAccessError", "Recording", "Trace", "TraceReport", "UnknownOptionError", "WorkloadError",
    "heap_summary", "load", "trace", "verdict",
]

from .bisect_report import BisectReport  # noqa: E402
from .drilldown import bisect  # noqa: E402
from .forecast import Forecast, forecast  # noqa: E402
from .monitor import Monitor, monitor  # noqa: E402
from .mprof import read_mprofile, write_mprofile  # noqa: E402
from .native import HeapNativeReport, classify_readings, heap_vs_native, malloc_trim  # noqa: E402
from .sites import GrowthSites, growth_sites  # noqa: E402
from .watch import load as load_watch  # noqa: E402
from .watch import watch  # noqa: E402

__all__ += ["bisect", "BisectReport", "Forecast", "forecast", "Monitor", "monitor", "read_mprofile",
            "write_mprofile", "HeapNativeReport", "classify_readings", "heap_vs_native", "malloc_trim",
            "GrowthSites", "growth_sites", "load_watch", "watch"]
