"""The exporters a monitor feeds (``monitor(..., export=...)``): checked, attached, closed with it.

Why apart from the monitor: what an exporter is (anything with the listener interface: called
with the status dict after each sample) and how each kind is closed (a FleetWriter writes its
open slices, a PrometheusExporter closes its endpoint) is the exporters' business; the monitor
only owns their life. They belong to the monitor they were given to: it stops them when it
stops. In a forked child the monitor's copy goes on with copies of its exporters, each made the
child's own first (:mod:`leakkit.recording.export.forks`: none of the parent's statuses, rows,
locks or listening socket).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._errors import expected
from .export import forks  # noqa: F401 - registered before the monitor's own fork hook: exporters reset first

Listener = Callable[[dict[str, Any]], Any]
_WHAT = ("an exporter (leakkit.PrometheusExporter, OpenTelemetryExporter or FleetWriter, or any callable "
         "taking the status dict), a list of them, or None")


def exporters(export: Any) -> list[Listener]:
    """``export`` as a list of listeners; anything else is refused with what was expected."""
    if export is None:
        return []
    given = list(export) if isinstance(export, (list, tuple)) else [export]
    for item in given:
        if isinstance(item, type):  # the class itself: callable, but calling it makes an exporter
            raise expected(f"{_WHAT}; an instance, e.g. {item.__name__}(...), not the class", "export", item)
        if not callable(item):
            raise expected(_WHAT, "export", item)
    return given


def close(listeners: list[Listener]) -> list[Exception]:
    """Close each exporter (``close()``, else ``stop()``, where it has one); never raises: the failures are returned."""
    failures: list[Exception] = []
    for listener in listeners:
        closer = getattr(listener, "close", None) or getattr(listener, "stop", None)
        if callable(closer):
            try:
                closer()
            except Exception as error:  # one exporter's fault must not keep the others open
                failures.append(error)
    return failures
