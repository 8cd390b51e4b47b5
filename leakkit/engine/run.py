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

import asyncio
import gc
import inspect
import math
import sys
import time
import tracemalloc
from array import array
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from .. import _compat
from .._errors import WorkloadError, check_options, expected
from ..analysis import classify, slowing_down
from ..analysis.attribution import OUTSIDE, Attributor, code_lines
from ..probes import containers
from ..probes import process as probes
from ..probes.malloc import malloc_in_use
from ..reports.bisect_report import BisectReport
from . import instrument as _instrument
from . import search
from . import worker as _shallow
from .search import BYTES_FLOOR, FUNC_FLOOR, object_traceback

MIN_CALLS = 12
DEFAULT_TIME_BUDGET = 15.0
_RUN_SHARE = 0.5  # of the time budget, for calling the workload; the rest is for the analysis
_MAX_CHECKPOINTS = 60
_BLOCK_FLOOR = 16  # allocated blocks over the second half of a run, for the untraced calls of heavy workloads
_TRACED_MIN = 6  # traced calls of a heavy workload, to name the culprit: at least
_TRACED_MAX = 10  # ... and at most (the verdict comes from the untraced calls)


def bisect(workload: Callable[[], Any], *, targets: Any, calls: int = 60, warmup: int = 2,
           checkpoints: int = 20, nframe: int = 64, progress: bool | None = None, freeze: bool = True,
           time_budget: float = DEFAULT_TIME_BUDGET, max_calls: int | None = None, **unknown: Any) -> BisectReport:
    """Run ``workload`` ``calls`` times and find the target function whose code allocates what is kept.

    Args:
        workload: a zero-argument function or async function standing for one request, tick or
            message of the process (async ones run on an event loop leakkit owns).
        targets: modules, classes or functions (or a list) whose functions are the candidates:
            your own modules, and the library modules you suspect. C extension modules count
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
    # allocation of the workload (see _Run.run)
    max_calls = _checked(workload, calls, warmup, checkpoints, nframe, progress, freeze, time_budget, max_calls)
    found = _instrument.collect(targets)
    run = _Run(workload, found, calls=calls, warmup=warmup, n_ckpt=min(checkpoints, calls), nframe=nframe,
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
    if isinstance(time_budget, bool) or not isinstance(time_budget, (int, float)) or not (
            math.isfinite(time_budget) and time_budget > 0):
        raise expected("a positive number of seconds", "time_budget", time_budget)
    if max_calls is None:
        max_calls = 8 * calls
    if isinstance(max_calls, bool) or not isinstance(max_calls, int) or max_calls < calls:
        raise expected(f"an int >= calls ({calls})", "max_calls", max_calls)
    return max_calls


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


class _Run:
    """One bisect run: owns the instrumentation, tracemalloc and GC state, and undoes them."""

    def __init__(self, workload: Callable, found: _instrument.Targets, *, calls: int, warmup: int,
                 n_ckpt: int, nframe: int, progress: Any, freeze: bool, time_budget: float,
                 max_calls: int) -> None:
        self.workload = workload
        self.found = found
        self.calls = calls
        self.max_calls = max_calls
        self.warmup = warmup
        self.every = max(1, calls // n_ckpt)
        self.nframe = nframe
        self.progress = progress
        self.freeze = freeze
        self.time_budget = time_budget
        self.is_async = inspect.iscoroutinefunction(workload) or inspect.iscoroutinefunction(
            getattr(workload, "__call__", None))  # noqa: B004 - an object whose __call__ is async
        self.call = found.wrapped(workload)  # counted like any target when it is one
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread: _LoopThread | None = None
        self.atexit_before = self.atexit_after = 0
        self.errors = 0
        self.first_error: BaseException | None = None
        self.error_types: dict[str, int] = defaultdict(int)
        self.measured = 0
        self.cut_short: str | None = None
        self.ran_on: str | None = None
        self.unsettled: str | None = None  # why the growth was still not settled when the run ended
        self.notes: list[str] = []
        self.heavy = False
        self.froze = False
        self.was_tracing = False
        self.bar: Any = None
        self.shallow: _shallow.Worker | None = None  # the analysis thread (leakkit.engine.worker)
        self.table: Any = None  # the containers' lengths after the warm-up
        self.young: containers.AddressSet | None = None  # the tracked objects the run made, if the heap was frozen
        self.site_of: dict[tuple, tuple[str, str] | None] = {}  # traceback -> (target, its line), memo
        self.cheap_x = array("d")
        self.cheap_blocks = array("d")
        self.cheap_rss = array("d")
        self.cheap_malloc = array("d")
        self.t_start = 0.0
        # series: one entry per checkpoint
        self.x = array("d")
        self.total = array("d")
        self.total_blocks = array("d")
        self.rss = array("d")
        self.native = array("d")
        self.self_bytes: dict[str, array] = {}
        self.self_blocks: dict[str, array] = {}
        self.incl_bytes: dict[str, array] = {}
        self.path_bytes: dict[tuple, array] = {}
        self.site_bytes: dict[tuple[str, str], array] = {}
        self.rss_self: dict[str, array] = {}
        self.malloc_self: dict[str, array] = {}
        self.native_malloc = array("d")

    # -- calling the workload ------------------------------------------------------------------
    def _call_workload(self) -> None:
        if self.is_async:
            if self.loop_thread is not None:
                self.loop_thread.run(self.call)
            else:
                self.loop.run_until_complete(self.call())
        else:
            self.call()

    def _one(self, i: int, measured: bool) -> None:
        try:
            self._call_workload()
        except Exception as error:  # a workload that raises sometimes is still bisected
            self.errors += 1
            self.error_types[type(error).__name__] += 1
            if self.first_error is None:
                self.first_error = error
            if self.errors == i + 1 and self.errors >= 5:
                raise WorkloadError(
                    f"the workload raised on every one of its first {self.errors} calls "
                    f"({type(error).__name__}: {error}); expected a workload that runs, "
                    f"at least sometimes") from error

    def _elapsed(self) -> float:
        """Time spent so far, as the budget counts it: this process's CPU time, or a third of the
        wall time if that is more (a loaded machine slows the wall clock, not the work; a workload
        that waits on I/O spends wall time without CPU)."""
        return max(time.process_time() - self.cpu_start, (time.perf_counter() - self.t_start) / 3)

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> BisectReport:
        # Each phase is a small method, and the measured calls come first in the ones beneath them:
        # under tracemalloc every allocation the workload makes scans the line table of every frame
        # on the stack up to its current line (measured: a figure per call traced 40% slower
        # beneath one large frame).
        self.t_start, self.cpu_start = time.perf_counter(), time.process_time()
        self.was_tracing = tracemalloc.is_tracing()
        try:
            self._measure(self._prepare())
            self.atexit_after = _atexit_count()
            self.found.restore()  # before looking at references: our wrappers must not show up
            return self._analyse()
        finally:
            self._undo()

    def _measure(self, i: int) -> int:
        """The measured calls. The first traced one tells what tracing costs here: the call and a
        checkpoint, timed apart (a checkpoint under a test runner costs a hundred times a quick call)."""
        before = self._elapsed()
        self._one(i, measured=True)
        i += 1
        self.measured += 1
        self.bar and self.bar.update(1)
        traced_call_s = self._elapsed() - before
        self._checkpoint(1)
        checkpoint_s = self._elapsed() - before - traced_call_s
        planned = traced_call_s * self.calls + checkpoint_s * self.calls / self.every
        if not self.was_tracing and planned > self.time_budget * _RUN_SHARE / 3:
            return self._heavy_run(i, self.bar, traced_call_s)
        i = self._calls(i, self.calls, self.every, self.bar)
        return self._run_on(i, self.bar, self._should_run_on, self._calls)

    def _prepare(self) -> int:
        """Loop, progress bar, warm-up, the containers' lengths, the freeze, tracemalloc; returns
        the number of calls made."""
        if self.is_async:
            if _loop_running():
                # Inside a running loop (a Jupyter kernel, an async test): ours runs in a thread.
                self.loop_thread = _LoopThread()
            else:
                self.loop = asyncio.new_event_loop()
        self.bar = _progress_bar(self.progress, self.warmup + self.calls)
        i = 0
        t_warm = time.perf_counter()
        for _ in range(self.warmup):
            self._one(i, measured=False)
            i += 1
            self.bar and self.bar.update(1)
        self._afford_malloc_readings(time.perf_counter() - t_warm)
        self.shallow = _shallow.Worker()  # before the containers' lengths are taken, and before tracing
        gc.collect()
        objects = gc.get_objects()
        self.table = containers.sizes(objects)  # how long every container is after the warm-up
        del objects
        if self.freeze:
            # Not when someone else froze objects (unfreezing would thaw theirs); 3.12's own
            # immortal start-up objects do not count (see leakkit._compat.freeze).
            self.froze = _compat.freeze()
            if not self.froze:
                self.notes.append("objects frozen before bisect (gc.freeze) were left frozen: every "
                                  "collection scanned the whole heap, which is slower")
        bridge = code_lines([_Run._call_workload.__code__, _Run._one.__code__, _Run._calls.__code__,
                             _Run._measure.__code__, _Run._cheap_calls.__code__, *(_instrument.WRAPPER_CODES)])
        self.attribute = Attributor(self.found.lines, bridge)
        self.atexit_before = _atexit_count()
        if not self.was_tracing:
            tracemalloc.start(self.nframe)
        self._checkpoint(0)
        return i

    def _analyse(self) -> BisectReport:
        """Survivors, the retention search (each on a shallow stack: leakkit.engine.worker), the verdict."""
        survivors = self.shallow.call(self._survivors) if tracemalloc.is_tracing() else []
        if self.froze:
            gc.unfreeze()
            self.froze = False
        remaining = max(self.time_budget - self._elapsed(), 0.25 * self.time_budget)
        was_tracing = self.was_tracing

        def untrace() -> None:
            # what the search needs from tracemalloc is read: the rest runs untraced (every
            # allocation under tracemalloc pays for a traceback, ten times its own cost)
            if not was_tracing and tracemalloc.is_tracing():
                tracemalloc.stop()

        table, self.table = self.table, None
        record = self.shallow.call(search.build_record, self, survivors, table, time.perf_counter() + remaining, untrace)
        survivors.clear()
        del table
        from .judge import judge

        return judge(record)

    def _undo(self) -> None:
        """Give back what the run changed: wrappers, malloc readings, the freeze, tracemalloc, the loop."""
        self.table = None
        if self.shallow is not None:
            self.shallow.close()
            self.shallow = None
        _instrument.malloc_readings(True)
        self.found.restore()
        if self.froze:
            gc.unfreeze()
            self.froze = False
        if not self.was_tracing and tracemalloc.is_tracing():
            tracemalloc.stop()
        if self.loop is not None:
            _close_loop(self.loop)
            self.loop = None
        if self.loop_thread is not None:
            self.loop_thread.close()
            self.loop_thread = None
        if self.bar is not None:
            if self.bar.total is not None and self.bar.n != self.bar.total:
                self.bar.total = self.bar.n  # cut short or run on: the bar ends full, not red
            self.bar.close()
            self.bar = None

    def _afford_malloc_readings(self, warm_s: float) -> None:
        """Turn off the wrappers' malloc readings when they would cost over a fifth of a call and
        over a twentieth of the budget over the planned calls (a workload making thousands of
        target calls in a fragmented heap), and say so. A call of microseconds keeps them: their
        milliseconds in all are what finds a small native leak."""
        if not self.warmup:
            return
        calls = sum(stats.calls for stats in self.found.stats.values()) / self.warmup
        cost = 2 * calls * _instrument.malloc_reading_cost()
        if cost > 0.2 * (warm_s / self.warmup) and cost * self.calls > 0.05 * self.time_budget:
            _instrument.malloc_readings(False)
            self.notes.append(f"malloc's count was not read around each of the {calls:.0f} target calls a "
                              f"workload call makes (it would cost {cost * 1e3:.1f} ms a call): native "
                              "memory is attributed to functions by RSS only")

    def _run_on(self, i: int, bar: Any, unsettled: Callable[[], str | None], calls: Callable) -> int:
        """Growth not settled after the planned calls: run on in doubling stages, while it stays
        unsettled and the next stage fits in the calling share of the time budget."""
        why = unsettled() if self.cut_short is None else None
        first_why, before, target = why, self.measured, self.measured
        while why is not None and self.cut_short is None and target < self.max_calls:
            per_call = self._elapsed() / max(self.warmup + self.measured, 1)
            if self._elapsed() + per_call * target > self.time_budget * _RUN_SHARE:
                self.cut_short = "the time budget"
                break
            target = min(self.max_calls, 2 * target)
            every = max(self.every, target // _MAX_CHECKPOINTS)
            if bar is not None:
                bar.total = self.warmup + target
                bar.refresh()
            i = calls(i, target, every, bar)
            why = unsettled()
        if first_why is not None:
            self.ran_on = (f"{first_why}: ran on from {before} to {self.measured} calls"
                           + (f" (stopped by the time budget, {self.time_budget:.0f} s)" if self.cut_short else ""))
            self.cut_short = None
        self.unsettled = why
        return i

    def _heavy_run(self, i: int, bar: Any, traced_call_s: float) -> int:
        """For workloads too heavy to trace every call (tracing all the calls planned would take over
        a third of the calling share of the budget; a plotting library's figures cost 30x under
        tracemalloc): the verdict from untraced calls (allocated blocks after each collection:
        cheap), then a few traced calls to name the culprit and what keeps its memory, only if
        something grows."""
        tracemalloc.stop()  # drops the traces of the probe call
        _instrument.malloc_readings(False)  # mallinfo2 around every target call of a heavy workload costs too much
        self._reset_series()
        self.heavy = True
        self._cheap_checkpoint(self.measured)
        i = self._cheap_calls(i, self.calls, self.every, bar)
        i = self._run_on(i, bar, self._cheap_unsettled, self._cheap_calls)
        grows = classify(list(self.cheap_x), self.cheap_blocks, floor=_BLOCK_FLOOR).verdict in ("leak", "inconclusive")
        left = self.time_budget * _RUN_SHARE - self._elapsed()
        k = int(min(_TRACED_MAX, max(_TRACED_MIN, left / max(traced_call_s, 1e-6))))
        self.notes.append(f"a traced call costs {traced_call_s:.2f} s: the verdict comes from {self.measured} "
                          "untraced calls (allocated blocks after each collection)"
                          + (f", the culprit from {k} traced calls" if grows else "; nothing grew, so none was traced"))
        if grows:
            tracemalloc.start(self.nframe)
            self._checkpoint(self.measured)
            if self.froze:
                # The untraced calls' objects have no traceback to look up: frozen (our freeze
                # already owns the permanent generation; the one unfreeze thaws both), they cost the
                # traced calls' collections and the survivors scan nothing, and ``young`` is what
                # the traced calls made (a look-up calls the others untraced: neither is charged).
                gc.freeze()
            start = self.measured
            budget, self.time_budget = self.time_budget, float("inf")  # the traced calls were budgeted above
            try:
                i = self._calls(i, start + k, max(2, k // 4), bar)  # a checkpoint reads every trace: few
            finally:
                self.time_budget = budget
        return i

    def _reset_series(self) -> None:
        for name in ("x", "total", "total_blocks", "rss", "native", "native_malloc"):
            setattr(self, name, array("d"))
        for table in (self.self_bytes, self.self_blocks, self.incl_bytes, self.path_bytes, self.site_bytes,
                      self.rss_self, self.malloc_self):
            table.clear()

    def _cheap_checkpoint(self, n: int) -> None:
        _compat.settle()
        gc.collect()
        self.cheap_x.append(n)
        self.cheap_blocks.append(sys.getallocatedblocks())
        self.cheap_rss.append(probes.rss() or 0)
        in_use = malloc_in_use()
        self.cheap_malloc.append(math.nan if in_use is None else in_use)

    def _cheap_calls(self, i: int, upto: int, every: int, bar: Any) -> int:
        budget = self.time_budget * _RUN_SHARE
        while self.measured < upto:
            self._one(i, measured=True)
            i += 1
            self.measured += 1
            bar and bar.update(1)
            n = self.measured
            if n % every == 0 or n == upto:
                self._cheap_checkpoint(n)
            elif n >= MIN_CALLS and self._elapsed() > budget:
                self._cheap_checkpoint(n)
                self.cut_short = f"the time budget ({self.time_budget:.0f} s) allowed {n} of {upto} calls"
                break
        return i

    def _cheap_unsettled(self) -> str | None:
        x = list(self.cheap_x)
        g = classify(x, self.cheap_blocks, floor=_BLOCK_FLOOR)
        if g.verdict == "leak" and slowing_down(x, self.cheap_blocks, ratio=0.7, clearly=False):
            return "growth of allocated blocks slowing down"
        if g.verdict == "inconclusive" and g.calls_to_decide:
            return "growth of allocated blocks not yet decided"
        return None

    def _calls(self, i: int, upto: int, every: int, bar: Any) -> int:
        """Measured calls until ``upto``, a checkpoint every ``every``; stops early (at least
        MIN_CALLS) when the time budget for calling runs out."""
        budget = self.time_budget * _RUN_SHARE
        last = self.measured
        while self.measured < upto:
            self._one(i, measured=True)
            i += 1
            self.measured += 1
            bar and bar.update(1)
            n = self.measured
            if n % every == 0 or n == upto:
                self._checkpoint(n)
                last = n
            if n >= MIN_CALLS and n < upto and self._elapsed() > budget:
                if last != n:
                    self._checkpoint(n)
                self.cut_short = (f"the time budget ({self.time_budget:.0f} s) allowed {n} of {upto} calls")
                break
        return i

    def _should_run_on(self) -> str | None:
        """Why the growth is not settled after the planned calls (slowing down: a cache filling up,
        weak references awaiting a prune), or None when it is."""
        x = list(self.x)
        if len(x) < 6 or self.measured >= self.max_calls:
            return None
        undecided = None
        for name, series in self.self_bytes.items():
            if name == OUTSIDE:
                continue
            g = classify(x, series, floor=FUNC_FLOOR)
            if g.verdict == "leak" and slowing_down(x, series, ratio=0.7, clearly=False):
                return f"growth in {name} slowing down"
            if g.verdict == "inconclusive" and g.calls_to_decide and undecided is None:
                undecided = f"growth in {name} not yet decided"
        if undecided is None and classify(x, self.total, floor=BYTES_FLOOR).verdict == "inconclusive":
            undecided = "growth of all traced memory not yet decided"
        return undecided

    def _checkpoint(self, n: int) -> None:
        """Read every trace after a collection (on a shallow stack: see leakkit.engine.worker)."""
        self.shallow.call(self._read_traces, n)
        # Reading made and dropped thousands of tuples (the traces): the free lists keep them, and
        # the workload's next tuples would reuse their blocks, traced as ours, so what it keeps of
        # them would not be seen. A full collection empties the free lists (cheap: the heap is frozen).
        gc.collect()

    def _read_traces(self, n: int) -> None:
        _compat.settle()  # 3.10/3.11: attribute names the type cache keeps are not the workload's
        gc.collect()
        traces = tracemalloc._get_traces()
        attribute = self.attribute
        self_b: dict[str, int] = defaultdict(int)
        self_n: dict[str, int] = defaultdict(int)
        incl: dict[str, int] = defaultdict(int)
        paths: dict[tuple, int] = defaultdict(int)
        sites: dict[tuple[str, str], int] = defaultdict(int)
        lines = self.found.lines
        site_of = self.site_of
        total = blocks = large = 0
        for tb, size, count, big in _group_traces(traces):
            large += big  # over pymalloc's limit: these bytes came from malloc
            who = attribute(tb)
            if who is None:
                continue
            name, path, on_path = who
            total += size
            blocks += count
            self_b[name] += size
            self_n[name] += count
            if path:
                for fn in on_path:
                    incl[fn] += size
                paths[path] += size
                site = site_of.get(tb, _UNSEEN)
                if site is _UNSEEN:  # the same tracebacks come back at every checkpoint
                    frame = next((f for f in tb if lines.get(f) == name), None)
                    site = site_of[tb] = None if frame is None else (name, f"{frame[0]}:{frame[1]}")
                if site is not None:
                    sites[site] += size
        del traces
        k = len(self.x)
        self.x.append(n)
        self.total.append(total)
        self.total_blocks.append(blocks)
        rss = probes.rss() or 0
        self.rss.append(rss)
        own = tracemalloc.get_tracemalloc_memory()
        self.native.append(rss - own - tracemalloc.get_traced_memory()[0])
        in_use = malloc_in_use()
        self.native_malloc.append(math.nan if in_use is None else in_use - large - own)
        for table, values in ((self.self_bytes, self_b), (self.self_blocks, self_n), (self.incl_bytes, incl),
                              (self.path_bytes, paths), (self.site_bytes, sites)):
            for key in values.keys() | table.keys():
                series = table.get(key)
                if series is None:
                    series = table[key] = array("d", [0.0] * k)
                series.append(values.get(key, 0))
        for name, stats in self.found.stats.items():
            for table, value in ((self.rss_self, stats.rss_self), (self.malloc_self, stats.malloc_self)):
                series = table.get(name)
                if series is None:
                    series = table[name] = array("d", [0.0] * k)
                series.append(value)

    def _survivors(self) -> list[tuple[Any, str, str]]:
        """Objects created during the run that are still alive, with the function and line that made them."""
        gc.collect()
        new = gc.get_objects()  # after our freeze: only what the run created
        if self.froze:
            self.young = containers.AddressSet(new)
        out: list[tuple[Any, str, str]] = []
        seen: set[int] = set()
        made: dict[tuple, tuple[str, str] | None] = {}
        lines = self.found.lines
        # a share of what the budget leaves: a heavy run leaves many objects, most of them old.
        # Under tracemalloc every allocation costs a traceback: objects the run did not trace are
        # passed over without making one (no id(), no counter per object).
        deadline = time.perf_counter() + max(self.time_budget - self._elapsed(), 1.0) / (16 if self.heavy else 4)
        for start in range(0, len(new), 4096):
            if time.perf_counter() > deadline:
                self.notes.append(f"survivors listed for {start} of {len(new)} objects the run left (time budget)")
                break
            for obj in new[start:start + 4096]:
                tb = object_traceback(obj)
                if tb is None:
                    continue  # made before tracing (a heavy run's untraced calls): so, mostly, is what it holds
                for candidate, frames in ((obj, tb), *((r, None) for r in _untracked_referents(obj))):
                    if frames is None:
                        if id(candidate) in seen:
                            continue
                        seen.add(id(candidate))
                        frames = object_traceback(candidate)
                    if not frames:
                        continue
                    # objects made by one line share its traceback (hashed in C): the frames
                    # are searched once per distinct traceback, not once per object
                    site = made.get(frames, _UNSEEN)
                    if site is _UNSEEN:
                        site = made[frames] = _made_by(frames, lines)
                    if site is not None:
                        out.append((candidate, *site))
        del new
        made.clear()
        return out


_UNSEEN = object()


def _made_by(frames: tuple, lines: dict) -> tuple[str, str] | None:
    """The target function (and ``file:line``) nearest the allocation in ``frames`` (most recent first)."""
    for frame in frames:
        name = lines.get(frame)
        if name is not None:
            return name, f"{frame[0]}:{frame[1]}"
    return None


def _untracked_referents(obj: Any) -> list[Any]:
    return [r for r in _compat.referents(obj) if not gc.is_tracked(r) and not containers.is_a(r, (type, int, float, bool))
            and r is not None]


def _progress_bar(progress: Any, total: int) -> Any:
    if progress is False:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    disable = None if progress is None else not progress
    if progress is None and not sys.stderr.isatty():
        return None
    return tqdm(total=total, desc="leakkit bisect", unit="call", disable=disable, leave=False)


def _group_python(traces: list) -> list[tuple[tuple, int, int, int]]:
    """(traceback, bytes, blocks, bytes in blocks over 512 B) per distinct traceback."""
    groups: dict[int, list] = {}
    for trace in traces:
        tb = trace[2]
        size = trace[1]
        group = groups.get(id(tb))  # traces sharing a traceback share one tuple in a snapshot
        if group is None:
            group = groups[id(tb)] = [tb, 0, 0, 0]
        group[1] += size
        group[2] += 1
        if size > 512:
            group[3] += size
    return [tuple(g) for g in groups.values()]


try:  # grouping in C: no allocation per live block while tracemalloc traces every allocation
    from ..probes._heapscan import group_traces as _group_traces
except ImportError:
    _group_traces = _group_python


def _atexit_count() -> int:
    """Callbacks registered with atexit: they live in the interpreter, where the GC cannot see them."""
    import atexit

    return atexit._ncallbacks()


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class _LoopThread:
    """An event loop leakkit owns, running in its own thread: for async workloads bisected from
    code that already runs a loop in this thread."""

    def __init__(self) -> None:
        import threading

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, name="leakkit-bisect-loop", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        """The thread's body: the loop runs beneath this frame of leakkit's, so what it allocates with no
        target function on the stack (its handles and wake-ups, the futures that carry each call across
        threads, the frame and block caches they fill over the first few hundred calls) is leakkit's,
        as when the loop runs in the caller's thread beneath bisect's frames (analysis.attribution)."""
        self.loop.run_forever()

    def run(self, factory: Callable[[], Any]) -> Any:
        async def call() -> Any:
            return await factory()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result()

    def close(self) -> None:
        async def finish() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        try:
            asyncio.run_coroutine_threadsafe(finish(), self.loop).result(timeout=10)
        except Exception:  # a task that refuses to finish must not hide the report
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    try:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


__all__ = ["bisect", "MIN_CALLS", "DEFAULT_TIME_BUDGET"]
