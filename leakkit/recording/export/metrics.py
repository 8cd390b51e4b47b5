"""The per-worker figures leakkit exports, named once for Prometheus and for OpenTelemetry.

Why one table: the same monitor status (``Monitor.status()``) feeds a Prometheus scrape, a
multiprocess gauge file and an OpenTelemetry meter, and a figure must have the same meaning and
the same number in each. The OpenTelemetry names sit beside the semantic conventions'
``process.memory.usage`` (RSS, unit ``By``) under ``leakkit.process.memory.*``; the Prometheus
names are what OpenTelemetry's Prometheus translation would make of them (``.`` -> ``_``, the unit
as a suffix: ``By`` -> ``_bytes``, ``By/s`` -> ``_bytes_per_second``, ``s`` -> ``_seconds``), so
dashboards read one name whichever path the numbers took.

Memory kinds are separate metrics, not one metric with a ``kind`` label: RSS counts shared pages
that USS leaves out, so a ``sum`` over kinds would mean nothing (Prometheus' naming rule). The
verdict is a state set: ``leakkit_process_memory_verdict{verdict="leak"} 1``. A figure the status
does not have (no limit, no time to it when memory is not growing) is left out of a scrape and
of OpenTelemetry's observations; in multiprocess gauge files it is NaN, which no comparison matches.
Labels (attributes): ``pid`` (``process.pid``), ``role`` (``leakkit.role``), ``service``
(``service.name``), ``version`` (``service.version``).
"""
from __future__ import annotations

from typing import Any


class Figure:
    """One exported figure: the status key it reads, its names and unit, and what it means (a plain
    class: a dataclass compiles its methods at import, a transient a worker keeps as RSS)."""

    __slots__ = ("key", "prometheus", "otel", "unit", "help")

    def __init__(self, key: str, prometheus: str, otel: str, unit: str, help: str) -> None:
        self.key, self.prometheus, self.otel, self.unit, self.help = key, prometheus, otel, unit, help

    def __repr__(self) -> str:
        return f"Figure({self.key!r}, {self.prometheus!r}, {self.otel!r}, {self.unit!r})"


FIGURES: tuple[Figure, ...] = (
    Figure("rss_bytes", "leakkit_process_memory_rss_bytes", "leakkit.process.memory.rss", "By",
           "Resident set size: pages in RAM, shared ones counted in full (what process.memory.usage and "
           "process_resident_memory_bytes report)."),
    Figure("pss_bytes", "leakkit_process_memory_pss_bytes", "leakkit.process.memory.pss", "By",
           "Proportional set size: shared pages divided among the processes that share them."),
    Figure("uss_bytes", "leakkit_process_memory_uss_bytes", "leakkit.process.memory.uss", "By",
           "Unique set size: pages only this process maps, what it gives back when it exits."),
    Figure("swap_bytes", "leakkit_process_memory_swap_bytes", "leakkit.process.memory.swap", "By",
           "Bytes of this process swapped out."),
    Figure("python_heap_bytes", "leakkit_process_memory_python_heap_bytes", "leakkit.process.memory.python_heap",
           "By", "Bytes held by the Python allocators (pymalloc and malloc) for Python objects."),
    Figure("rate_bytes_per_s", "leakkit_process_memory_growth_rate_bytes_per_second",
           "leakkit.process.memory.growth_rate", "By/s",
           "Growth rate of the memory the limit counts, as the monitor fits it (Theil-Sen)."),
    Figure("rate_low_bytes_per_s", "leakkit_process_memory_growth_rate_low_bytes_per_second",
           "leakkit.process.memory.growth_rate_low", "By/s", "Lower bound of the growth rate's ~95% interval."),
    Figure("rate_high_bytes_per_s", "leakkit_process_memory_growth_rate_high_bytes_per_second",
           "leakkit.process.memory.growth_rate_high", "By/s", "Upper bound of the growth rate's ~95% interval."),
    Figure("limit_bytes", "leakkit_process_memory_limit_bytes", "leakkit.process.memory.limit", "By",
           "The memory limit this worker is judged against (its own, or its cgroup's memory.max)."),
    Figure("seconds_to_limit", "leakkit_process_memory_time_to_limit_seconds", "leakkit.process.memory.time_to_limit",
           "s", "Forecast time until the memory reaches the limit at the fitted rate (absent: no limit or no growth)."),
    Figure("snapshots", "leakkit_monitor_snapshots", "leakkit.monitor.snapshots", "{snapshot}",
           "Snapshot reports the monitor has written so far."),
    Figure("t_s", "leakkit_monitor_uptime_seconds", "leakkit.monitor.uptime", "s",
           "Seconds since the monitor started in this process."),
)
VERDICT = Figure("verdict", "leakkit_process_memory_verdict", "leakkit.process.memory.verdict", "1",
                 "The monitor's verdict on this worker's memory: 1 for the current one (label verdict).")
#: Prometheus label names, in order, and the status keys they read.
LABELS: tuple[str, ...] = ("pid", "role", "service", "version")
#: OpenTelemetry attribute names for the same labels.
ATTRIBUTES: dict[str, str] = {"pid": "process.pid", "role": "leakkit.role", "service": "service.name",
                              "version": "service.version"}


def number(status: dict[str, Any], key: str) -> float | None:
    """The figure ``key`` of a status as a float, or None when it is missing or not a number."""
    value = status.get(key)
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return None if value != value else value  # NaN: not known


def label_values(status: dict[str, Any], defaults: dict[str, str | None]) -> dict[str, str]:
    """The label values of one status; a label the status lacks takes the exporter's default, else ''."""
    out = {}
    for label in LABELS:
        value = status.get(label)
        if value is None:
            value = defaults.get(label)
        out[label] = "" if value is None else str(value)
    return out
