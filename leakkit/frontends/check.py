"""The one repeat loop every front end runs: call a workload, judge what each call keeps.

Front ends hold no measuring logic: :func:`check` is the loop a user would write around
:func:`leakkit.trace` (or a call of :func:`leakkit.bisect` when targets are given), and the
magics, the pytest marker and fixture all call it, so they give the same verdict as the API.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from .._errors import describe, expected

DEFAULT_CALLS = 50  # trace-based checks (magic, marker, fixture); bisect has its own default
DEFAULT_WARMUP = 2


def check(workload: Callable[[], Any], *, calls: int | None = None, warmup: int | None = None,
          targets: Any = None, progress: bool | None = None, name: str | None = None) -> Any:
    """Run ``workload`` repeatedly and judge what it keeps: bisect with ``targets``, else trace.

    Args:
        workload: a zero-argument callable (one request, one test body, one cell).
        calls: measured calls (default :data:`DEFAULT_CALLS` for a trace, bisect's own default
            with targets); at least ``leakkit.engine.run.MIN_CALLS``.
        warmup: calls run first and not measured (default 2).
        targets: modules, classes or functions: bisect to find the culprit and what keeps it.
        progress: a tqdm bar; None shows it only on a terminal.
        name: what the report calls the workload (trace only).

    Returns the TraceReport or BisectReport.
    """
    from .. import bisect, trace
    from ..engine.run import MIN_CALLS

    check_workload(workload)
    warmup = DEFAULT_WARMUP if warmup is None else warmup
    if targets is not None:
        if isinstance(targets, (list, tuple, set, frozenset)) and not targets:
            raise expected("at least one module, class or function to search (or no targets: a trace)",
                           "targets", targets)
        options = {} if calls is None else {"calls": calls}
        return bisect(workload, targets=targets, warmup=warmup, progress=progress, **options)
    calls = DEFAULT_CALLS if calls is None else calls
    if isinstance(calls, bool) or not isinstance(calls, int) or calls < MIN_CALLS:
        raise expected(f"an int >= {MIN_CALLS} (the fewest calls that give a verdict)", "calls", calls)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise expected("an int >= 0", "warmup", warmup)
    bar = _progress_bar(progress, warmup + calls, "leakkit check")
    traced = trace(workload, **({"name": name} if name else {}))
    try:
        for _ in range(warmup):
            workload()
            if bar is not None:
                bar.update()
        for _ in range(calls):
            traced()
            if bar is not None:
                bar.update()
        # judged before the bar closes: closing frees what its display allocated, which would read as shrinkage
        return traced.report()
    finally:
        if bar is not None:
            bar.close()
        traced.stop()


def check_workload(workload: Any) -> None:
    """Raise WorkloadError unless ``workload`` can be called with no arguments (checked before any run)."""
    import inspect

    from .._errors import WorkloadError

    if not callable(workload):
        raise WorkloadError(f"workload: expected a zero-argument function, received {describe(workload)}")
    try:
        signature = inspect.signature(workload)
    except (TypeError, ValueError):  # builtins without a signature: the call itself will tell
        return
    try:
        signature.bind()
    except TypeError as error:
        raise WorkloadError(f"workload: expected a function callable with no arguments (wrap it: "
                            f"lambda: func(request)), received {describe(workload)} ({error})") from None


def _progress_bar(progress: bool | None, total: int, desc: str) -> Any:
    if progress is False or (progress is None and not sys.stderr.isatty()):
        return None
    from tqdm.auto import tqdm

    # shown at once (no delay): what its first display allocates is then part of the baseline
    return tqdm(total=total, desc=desc, unit="call", leave=False)


def leaks(report: Any) -> bool:
    """Whether a report found a leak: verdict ``leak``, a forecast of steady or stepwise growth, or
    a forecast of a server's processes in which any one leaks."""
    if hasattr(report, "leaking"):
        return bool(report.leaking)
    verdict = getattr(report, "verdict", None)
    if verdict is not None:
        return verdict == "leak"
    return getattr(report, "shape", None) in ("linear", "step")
