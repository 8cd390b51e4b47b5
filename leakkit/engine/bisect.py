"""``leakkit.bisect``: which function makes memory grow, and what keeps that memory alive.

What the engineer of the story in docs/method.md ("The story it comes from") did by hand, automated:

1. Warm up the workload, collect, and freeze the warmed-up heap (``gc.freeze``) so every later
   collection only scans what the calls created.
2. Trace allocations (tracemalloc) and run the workload ``calls`` times; wrappers on every target
   function count calls and read RSS around them (for native memory).
3. At evenly spaced checkpoints, collect cyclic garbage and charge every live traced block to the
   innermost target function on its stack (self) and to its call path. Cyclic garbage is freed
   before each reading, so it never looks kept.
4. Judge each function's self-retained series (:func:`leakkit.analysis.classify`): growth, not
   what is held at the end, picks the culprit, so a rotating buffer is not blamed.
5. Walk from roots to the culprit's surviving objects (:mod:`leakkit.retention.paths`); a holder with
   a known bound (``deque(maxlen)``, ``lru_cache(maxsize)``, the ``re`` cache) turns a rising
   series into ``plateau`` (full) or ``inconclusive`` (still filling, with the calls it needs).
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .. import _checks
from .._errors import check_options, expected
from ..reports.bisect_report import BisectReport
from .run import MIN_CALLS, Run
from .targets import collect

DEFAULT_TIME_BUDGET = 15.0


def bisect(workload: Callable[[], Any], *, targets: Any, calls: int = 60, warmup: int = 2,
           checkpoints: int = 20, nframe: int = 64, progress: bool | None = None, freeze: bool = True,
           time_budget: float = DEFAULT_TIME_BUDGET, max_calls: int | None = None, **unknown: Any) -> BisectReport:
    """Run ``workload`` ``calls`` times and find the target function whose code allocates what is kept.

    Args:
        workload: a zero-argument function or async function standing for one request, tick or
            message of the process (async ones run on an event loop leakkit owns).
        targets: modules, classes or functions (or a list) whose functions are the candidates:
            your own modules, and the library modules you suspect. A module's functions are
            all the code of its file, also those a decorator, a framework or a registry holds
            (a click command's callback, a wrapt-decorated or ``partial``-bound function); a
            callable object stands for the functions it holds. C extension modules count
            their calls and native memory; their allocations are charged to the Python
            function that called them.
        calls: the fewest measured calls after the warm-up (at least 12). When the growth is not
            settled after them (slowing down like a cache that fills), bisect runs on, up to
            ``max_calls``, within ``time_budget``, and says so in the report.
        warmup: calls run first and not measured (default 2): imports, lazy init, first-use caches.
        checkpoints: readings over the planned calls (default 20, at most ``calls``).
        nframe: frames kept per allocation traceback (default 64).
        progress: show a tqdm progress bar: True, False, or None (only on a terminal).
        freeze: freeze the warmed-up heap so collections are cheap (default True).
        time_budget: seconds for the whole bisect, analysis included (default 15): half for
            calling the workload, half for the analysis. A run that would take longer makes fewer
            calls (at least 12) or runs on less, and says what was cut short.
        max_calls: the most measured calls when running on (default 8 x ``calls``).

    If tracemalloc is already tracing (``PYTHONTRACEMALLOC``, or the user's own), bisect uses it
    and leaves it running; every checkpoint then reads all its traces, so a process with hundreds
    of thousands of traced blocks takes seconds per checkpoint (16 s for 60 calls with 235 k
    traces here, against ~1 s when bisect starts tracemalloc itself after the warm-up).

    Returns a :class:`~leakkit.reports.bisect_report.BisectReport`: ``verdict``, ``culprit``,
    ``retention``, ``suspects``, ``growing_types``, ``paths``, ``plot()``.

    Example::

        report = leakkit.bisect(worker.handle_one, targets=[worker], calls=60)
        print(report)     # LEAK in worker.index_user, kept by worker.USER_INDEX['u42']
    """
    check_options("bisect", unknown, OPTIONS)
    # the checks in a function of their own: this frame stays small beneath every traced
    # allocation of the workload (see Run.run)
    max_calls = _checked(workload, calls, warmup, checkpoints, nframe, progress, freeze, time_budget, max_calls)
    found = collect(targets)
    run = Run(workload, found, calls=calls, warmup=warmup, n_ckpt=min(checkpoints, calls), nframe=nframe,
               progress=progress, freeze=freeze, time_budget=float(time_budget), max_calls=max_calls)
    return run.run()


def _checked(workload: Any, calls: Any, warmup: Any, checkpoints: Any, nframe: Any, progress: Any, freeze: Any,
             time_budget: Any, max_calls: Any) -> int:
    """bisect's arguments checked (a clear error for each); returns ``max_calls``."""
    if not callable(workload):
        raise expected("a zero-argument function or async function", "workload", workload)
    _check_zero_args(workload)
    if isinstance(calls, bool) or not isinstance(calls, int) or calls < MIN_CALLS:
        raise expected(f"an int >= {MIN_CALLS} (the fewest calls that give a verdict)", "calls", calls)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise expected("an int >= 0", "warmup", warmup)
    if isinstance(checkpoints, bool) or not isinstance(checkpoints, int) or checkpoints < 4:
        raise expected("an int >= 4", "checkpoints", checkpoints)
    if isinstance(nframe, bool) or not isinstance(nframe, int) or not 1 <= nframe <= 1000:
        raise expected("an int in 1..1000", "nframe", nframe)
    if progress is not None and not isinstance(progress, bool):
        raise expected("True, False or None", "progress", progress)
    if not isinstance(freeze, bool):
        raise expected("True or False", "freeze", freeze)
    _checks.seconds(time_budget, "time_budget")
    if max_calls is None:
        max_calls = 8 * calls
    return _checks.integer(max_calls, "max_calls", minimum=calls, maximum=10**9, what=f"an int >= calls ({calls})")


OPTIONS = frozenset({"warmup", "checkpoints", "nframe", "progress", "freeze", "time_budget", "max_calls"})


def _check_zero_args(workload: Callable) -> None:
    try:
        signature = inspect.signature(workload)
    except (TypeError, ValueError):
        return
    try:
        signature.bind()
    except TypeError:
        raise expected("a workload callable with no arguments (wrap it: lambda: handle(request))",
                       "workload", workload) from None


__all__ = ["bisect", "MIN_CALLS", "DEFAULT_TIME_BUDGET", "OPTIONS"]
