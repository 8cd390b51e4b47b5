"""The options of :func:`leakkit.recording.monitor.monitor`, checked at the boundary and made the monitor's own.

Why apart: the monitor's module is its life cycle (thread, fork, signal); what a user may pass,
and what older releases' options mean now (``window``), is its own job.
"""
from __future__ import annotations

import os
from typing import Any

from .. import _checks
from .._errors import InvalidArgumentError, expected
from .._sizes import parse_size
from .monitor_counters import cgroup_limit

SUSTAIN_S = 300.0  # the default growth window, in seconds
MIN_WINDOW = 8     # samples a growth window holds at least


def sustain_of(window: Any, sustain: float, interval: float) -> float:
    """The growth window in seconds: ``window`` samples of ``interval`` when given, else ``sustain``.

    ``window`` is the older releases' spelling (samples whose rise was judged against
    ``min_growth``); it maps onto the sustained-growth rule as the same span of time.
    """
    if window is None:
        return sustain
    window = _checks.integer(window, "window", minimum=MIN_WINDOW, maximum=10**9,
                             what=f"an int >= {MIN_WINDOW} (samples in the growth window; or sustain=SECONDS)")
    return float(window) * interval


def _seconds(name: str, value: Any, zero: bool = False) -> float:
    if zero and _checks.number(value, name, what="a number of seconds >= 0") == 0:
        return 0.0
    return _checks.seconds(value, name)


def checked(path: Any, *, interval: Any, window: Any, sustain: Any, min_growth: Any, auto_snapshot: Any,
            trace_window: Any, signal: Any, baseline: Any, top: Any, role: Any, service: Any, version: Any,
            limit: Any, fork: Any) -> tuple[str, dict[str, Any]]:
    """The path template and the :class:`~leakkit.recording.monitor.Monitor` keywords, every option checked."""
    if window is not None and sustain != SUSTAIN_S:
        raise InvalidArgumentError(f"window: expected window (samples) or sustain (seconds), not both, received "
                                   f"window={window!r} and sustain={sustain!r}")
    interval = _seconds("interval", interval)
    given = sustain
    sustain = sustain_of(window, _seconds("sustain", sustain), interval)
    if sustain < MIN_WINDOW * interval:
        raise expected(f"at least {MIN_WINDOW} intervals ({MIN_WINDOW * interval:g} s) of seconds", "sustain",
                       given if window is None else sustain)
    top = _checks.integer(top, "top", minimum=1, maximum=10**6)
    for name, value in (("auto_snapshot", auto_snapshot), ("signal", signal), ("baseline", baseline), ("fork", fork)):
        if not isinstance(value, bool):
            raise expected("True or False", name, value)
    for name, value in (("role", role), ("service", service), ("version", version)):
        if value is not None and not isinstance(value, str):
            raise expected("a string or None", name, value)
    if not isinstance(path, (str, os.PathLike)):
        raise expected("a file path", "path", path)
    template = os.fspath(path)
    try:
        template.format(pid=0, role="", service="")
    except (KeyError, IndexError, ValueError) as error:
        raise expected("a path whose {fields} are among {pid}, {role}, {service}", "path", template) from error
    limit_bytes = cgroup_limit() if limit == "auto" else None if limit is None else parse_size(limit, "limit")
    return template, {"interval": interval, "sustain": sustain, "min_growth": parse_size(min_growth, "min_growth"),
                      "auto_snapshot": auto_snapshot, "trace_window": _seconds("trace_window", trace_window, zero=True),
                      "signal": signal, "baseline": baseline, "top": top, "role": role, "service": service,
                      "version": version, "limit_bytes": limit_bytes, "fork": fork}
