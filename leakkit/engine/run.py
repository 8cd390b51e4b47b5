"""One bisect run, phase by phase: prepare, measure, analyse, undo.

The run owns what it changes in the process (wrappers on the targets, tracemalloc, the freeze, an
event loop) and gives it all back, whatever the workload does. The measured calls run beneath
small frames, and none of the caller's: under tracemalloc every allocation the workload makes scans
the line table of every frame on the stack up to its current line (measured: a figure per call
traced 40% slower beneath one large frame; 5-9x the traced calls' time under a notebook). What the run measured goes into a plain :class:`~leakkit.engine.record.BisectRecord`;
the retention search adds what keeps it, and the judge reads only the record.
"""
from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from .. import _compat
from ..analysis import classify, slowing_down
from ..analysis.attribution import OUTSIDE, Attributor, code_lines
from ..probes import containers, stack
from ..reports.bisect_report import BisectReport
from ..retention.budget import Clock, analysis_deadline
from . import search, worker, wrappers
from .calling import Caller, progress_bar
from .codes import display_site
from .judge import judge
from .readings import Readings
from .record import BisectRecord
from .search import BYTES_FLOOR, FUNC_FLOOR, Leads
from .survivors import survivor_table, survivors
from .targets import Targets

MIN_CALLS = 12
_RUN_SHARE = 0.5  # of the time budget, for calling the workload; the rest is for the analysis
_CALLS_END = 0.6  # ... and past this share no call is made, even below MIN_CALLS
_SEARCH_END = 0.9  # the search ends here: the verdict and the report take the rest
_ANALYSIS_MIN = 0.1  # the analysis's least share, even when the calls overran (one call is never cut)
_MAX_CHECKPOINTS = 60
_BLOCK_FLOOR = 16  # allocated blocks over the second half of a run, for the untraced calls of heavy workloads
_TRACED_MIN = 6  # traced calls of a heavy workload, to name the culprit: at least
_TRACED_MAX = 10  # ... and at most (the verdict comes from the untraced calls)
_ON_CPU = 0.5  # of a traced call's time, at least, on the CPU for tracing to be what makes it costly


class Run:
    """One bisect run: owns the instrumentation, tracemalloc and GC state, and undoes them."""

    def __init__(self, workload: Callable, found: Targets, *, calls: int, warmup: int,
                 n_ckpt: int, nframe: int, progress: Any, freeze: bool, time_budget: float,
                 max_calls: int) -> None:
        self.found = found
        self.calls = calls
        self.max_calls = max_calls
        self.warmup = warmup
        self.every = max(1, calls // n_ckpt)
        self.nframe = nframe
        self.progress = progress
        self.freeze = freeze
        self.time_budget = time_budget
        self.caller = Caller(workload, found.wrapped(workload))  # counted like any target when it is one
        self.readings = Readings()
        self.atexit_before = self.atexit_after = 0
        self.measured = 0
        self.cut_short: str | None = None
        self.ran_on: str | None = None
        self.unsettled: str | None = None  # why the growth was still not settled when the run ended
        self.notes: list[str] = list(found.notes)  # what collecting the targets cut short
        self.heavy = False
        self.froze = False
        self.was_tracing = False
        self.bar: Any = None
        self.shallow: worker.Worker | None = None  # the analysis thread (leakkit.engine.worker)
        self.table: Any = None  # the containers' lengths after the warm-up
        self.young: containers.AddressSet | None = None  # the tracked objects the run made, if the heap was frozen
        self.attribute: Attributor | None = None
        self.t_start = 0.0
        self.clock: Clock | None = None
        self.calls_until = time_budget * _RUN_SHARE  # budget seconds after which no more calls are made

    def _elapsed(self) -> float:
        """Time spent so far, as the budget counts it (leakkit.retention.budget): CPU time and the
        workload's waits, not the time other processes held the CPU."""
        return self.clock.elapsed()

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> BisectReport:
        self.t_start = time.perf_counter()
        self.clock = Clock()
        self.was_tracing = tracemalloc.is_tracing()
        try:
            stack.call_cut(self._calls_apart)
            self.atexit_after = _atexit_count()
            self.found.restore()  # before looking at references: our wrappers must not show up
            return self._analyse()
        finally:
            self._undo()

    def _calls_apart(self) -> None:
        """The calls, with the caller's frames cut off beneath this one (leakkit.probes.stack): traced
        allocations cost the same under a notebook, IPython or pytest as from a file."""
        self._measure(self._prepare())

    def _prepare(self) -> int:
        """Loop, progress bar, warm-up, the containers' lengths, the freeze, tracemalloc; returns
        the number of calls made."""
        self.caller.start()
        self.bar = progress_bar(self.progress, self.warmup + self.calls)
        i = 0
        if self.warmup:  # malloc's count around target calls: a twentieth of the budget until the warm-up tells
            cost = max(wrappers.malloc_reading_cost(), 1e-6)
            wrappers.malloc_readings(True, allowance=max(int(0.05 * self.time_budget / cost), 1))
        t_warm = time.perf_counter()
        for k in range(self.warmup):
            if k and self._elapsed() > self.time_budget * _RUN_SHARE / 2:
                self.notes.append(f"the warm-up made {k} of {self.warmup} calls (each took "
                                  f"{self._elapsed() / k:.1f} s: the time budget)")
                break
            self.caller.one(i)
            i += 1
            self.bar and self.bar.update(1)
        if wrappers.malloc_readings_cut():
            wrappers.malloc_readings(False)
            self.notes.append("malloc's count was not read around each target call: the warm-up's readings "
                              "alone cost a twentieth of the time budget; native memory is attributed to "
                              "functions by RSS only")
        else:
            wrappers.malloc_readings(True)
            self._afford_malloc_readings(time.perf_counter() - t_warm)
        self.shallow = worker.Worker()  # before the containers' lengths are taken, and before tracing
        self.clock.add_thread(self.shallow.native_id)
        self.clock.add_thread(self.caller.thread_id())
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
        # leakkit's frames between the run and the workload: what they allocate is the workload's
        bridge = code_lines([Caller.call_workload.__code__, Caller.one.__code__, Run._calls.__code__,
                             Run._measure.__code__, *(wrappers.WRAPPER_CODES)])
        self.attribute = Attributor(self.found.lines, bridge)
        self.atexit_before = _atexit_count()
        if not self.was_tracing:
            tracemalloc.start(self.nframe)
        self._checkpoint(0)
        return i

    def _measure(self, i: int) -> int:
        """The measured calls. The first traced one tells what tracing costs here: the call and a
        checkpoint, timed apart (a checkpoint under a test runner costs a hundred times a quick call)."""
        before, cpu = self._elapsed(), time.process_time()
        self.caller.one(i)
        cpu = time.process_time() - cpu
        i += 1
        self.measured += 1
        self.bar and self.bar.update(1)
        traced_call_s = self._elapsed() - before
        self._checkpoint(1)
        checkpoint_s = self._elapsed() - before - traced_call_s
        planned = traced_call_s * self.calls + checkpoint_s * self.calls / self.every
        # heavy when tracing can be what costs: a call that mostly waits (a sleep, a thread pool
        # it waits on) costs as much untraced, and untraced blocks would hide a small leak
        heavy = planned > self.time_budget * _RUN_SHARE / 3 and cpu >= _ON_CPU * traced_call_s
        if not self.was_tracing and heavy:
            return self._heavy_run(i, traced_call_s)
        i = self._calls(i, self.calls, self.every, self._checkpoint)
        return self._run_on(i, self._should_run_on, self._checkpoint)

    def _calls(self, i: int, upto: int, every: int, checkpoint: Callable[[int], None]) -> int:
        """Measured calls until ``upto``, a ``checkpoint`` every ``every``; stops early (at least
        MIN_CALLS) when the time budget for calling runs out, and before MIN_CALLS past its hard end."""
        budget = self.calls_until
        last = self.measured
        one, bar = self.caller.one, self.bar
        while self.measured < upto:
            one(i)
            i += 1
            self.measured += 1
            bar and bar.update(1)
            n = self.measured
            if n % every == 0 or n == upto:
                checkpoint(n)
                last = n
            if n < upto and ((n >= MIN_CALLS and self._elapsed() > budget)
                             or self._elapsed() > self.time_budget * _CALLS_END):
                if last != n:
                    checkpoint(n)
                self.cut_short = (f"the time budget ({self.time_budget:g} s) allowed {n} of {upto} calls"
                                  + (f", fewer than the {MIN_CALLS} a verdict needs" if n < MIN_CALLS else ""))
                break
        return i

    def _checkpoint(self, n: int) -> None:
        """Read every trace after a collection (on a shallow stack: see leakkit.engine.worker)."""
        self.shallow.call(self.readings.read_traces, n, self.attribute, self.found.lines, self.found.stats)
        # Reading made and dropped thousands of tuples (the traces): the free lists keep them, and
        # the workload's next tuples would reuse their blocks, traced as ours, so what it keeps of
        # them would not be seen. A full collection empties the free lists (cheap: the heap is frozen).
        gc.collect()

    def _run_on(self, i: int, unsettled: Callable[[], str | None], checkpoint: Callable[[int], None]) -> int:
        """Growth not settled after the planned calls: run on in doubling stages, while it stays
        unsettled and the next stage fits in the calling share of the time budget."""
        why = unsettled() if self.cut_short is None else None
        first_why, before, target = why, self.measured, self.measured
        while why is not None and self.cut_short is None and target < self.max_calls:
            per_call = self._elapsed() / max(self.warmup + self.measured, 1)
            if self._elapsed() + per_call * target > self.calls_until:
                self.cut_short = "the time budget"
                break
            target = min(self.max_calls, 2 * target)
            every = max(self.every, target // _MAX_CHECKPOINTS)
            if self.bar is not None:
                self.bar.total = self.warmup + target
                self.bar.refresh()
            i = self._calls(i, target, every, checkpoint)
            why = unsettled()
        if first_why is not None:
            self.ran_on = (f"{first_why}: ran on from {before} to {self.measured} calls"
                           + (f" (stopped by the time budget, {self.time_budget:g} s)" if self.cut_short else ""))
            self.cut_short = None
        self.unsettled = why
        return i

    def _should_run_on(self) -> str | None:
        """Why the growth is not settled after the planned calls (slowing down: a cache filling up,
        weak references awaiting a prune), or None when it is."""
        r = self.readings
        x = list(r.x)
        if len(x) < 6 or self.measured >= self.max_calls:
            return None
        undecided = None
        for name, series in r.self_bytes.items():
            if name == OUTSIDE:
                continue
            g = classify(x, series, floor=FUNC_FLOOR)
            if g.verdict == "leak" and slowing_down(x, series, ratio=0.7, clearly=False):
                return f"growth in {name} slowing down"
            if g.verdict == "inconclusive" and g.calls_to_decide and undecided is None:
                undecided = f"growth in {name} not yet decided"
        if undecided is None and classify(x, r.total, floor=BYTES_FLOOR).verdict == "inconclusive":
            undecided = "growth of all traced memory not yet decided"
        return undecided

    def _heavy_run(self, i: int, traced_call_s: float) -> int:
        """For workloads too heavy to trace every call (tracing all the calls planned would take over
        a third of the calling share of the budget; a plotting library's figures cost 30x under
        tracemalloc): the verdict from untraced calls (allocated blocks after each collection:
        cheap), then a few traced calls to name the culprit and what keeps its memory, only if
        something grows."""
        tracemalloc.stop()  # drops the traces of the probe call
        wrappers.malloc_readings(False)  # mallinfo2 around every target call of a heavy workload costs too much
        r = self.readings
        r.reset_traced()
        self.heavy = True
        r.read_cheap(self.measured)
        share = self.calls_until
        # the traced calls that name the culprit are kept time for: the untraced ones stop earlier
        self.calls_until = max(share - _TRACED_MIN * traced_call_s, self._elapsed() + 0.25 * (share - self._elapsed()))
        i = self._calls(i, self.calls, self.every, r.read_cheap)
        i = self._run_on(i, self._cheap_unsettled, r.read_cheap)
        self.calls_until = share
        grows = classify(list(r.cheap_x), r.cheap_blocks, floor=_BLOCK_FLOOR).verdict in ("leak", "inconclusive")
        left = share - self._elapsed()
        k = int(min(_TRACED_MAX, max(2, left / max(traced_call_s, 1e-6))))
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
            cut, self.cut_short = self.cut_short, None
            # past the calling share, traced calls go on (at least two) up to the hard end of calling
            self.calls_until = self.time_budget * _CALLS_END
            i = self._calls(i, start + k, max(2, k // 4), self._checkpoint)  # a checkpoint reads every trace: few
            self.calls_until = share
            if self.cut_short:
                self.notes.append(f"{self.measured - start} of {k} traced calls made within the time budget")
            self.cut_short = cut
        return i

    def _cheap_unsettled(self) -> str | None:
        r = self.readings
        x = list(r.cheap_x)
        g = classify(x, r.cheap_blocks, floor=_BLOCK_FLOOR)
        if g.verdict == "leak" and slowing_down(x, r.cheap_blocks, ratio=0.7, clearly=False):
            return "growth of allocated blocks slowing down"
        if g.verdict == "inconclusive" and g.calls_to_decide:
            return "growth of allocated blocks not yet decided"
        return None

    def _afford_malloc_readings(self, warm_s: float) -> None:
        """Turn off the wrappers' malloc readings when they would cost over a fifth of a call and
        over a twentieth of the budget over the planned calls (a workload making thousands of
        target calls in a fragmented heap), and say so. A call of microseconds keeps them: their
        milliseconds in all are what finds a small native leak."""
        if not self.warmup:
            return
        calls = sum(stats.calls for stats in self.found.stats.values()) / self.warmup
        cost = 2 * calls * wrappers.malloc_reading_cost()
        if cost > 0.2 * (warm_s / self.warmup) and cost * self.calls > 0.05 * self.time_budget:
            wrappers.malloc_readings(False)
            self.notes.append(f"malloc's count was not read around each of the {calls:.0f} target calls a "
                              f"workload call makes (it would cost {cost * 1e3:.1f} ms a call): native "
                              "memory is attributed to functions by RSS only")

    # -- after the calls -----------------------------------------------------------------------
    def _analyse(self) -> BisectReport:
        """Survivors, the retention search (each on a shallow stack: leakkit.engine.worker), the verdict."""
        # the budget's end, or a least share of it when the calls overran (a call is never cut)
        end = max(_SEARCH_END * self.time_budget, self._elapsed() + _ANALYSIS_MIN * self.time_budget)
        deadline = analysis_deadline(self.clock, end)
        found, self.young = (self.shallow.call(survivors, self.found.lines, deadline.sooner(1 / 16 if self.heavy else 1 / 4),
                                               self.notes, self.froze)
                             if tracemalloc.is_tracing() else ([], None))
        if self.froze:
            gc.unfreeze()
            self.froze = False
        was_tracing = self.was_tracing

        def untrace() -> None:
            # what the search needs from tracemalloc is read: the rest runs untraced (every
            # allocation under tracemalloc pays for a traceback, ten times its own cost)
            if not was_tracing and tracemalloc.is_tracing():
                tracemalloc.stop()

        table, self.table = self.table, None
        leads = Leads(attribute=self.attribute, heavy=self.heavy, young=self.young,
                      site_bytes=self.readings.site_bytes, modules=list(self.found.modules),
                      classes=list(self.found.classes), functions=dict(self.found.functions))
        record = self.shallow.call(search.explain, self.record(), leads, found, table, deadline, untrace)
        if deadline.reason:
            record.notes.extend(f"the search stopped at {r}" for r in deadline.reason)
        record.survivors = survivor_table(found)
        record.seconds = time.perf_counter() - self.t_start
        found.clear()
        del table, leads
        return judge(record)

    def record(self) -> BisectRecord:
        """What the run measured, copied into a plain record (the search adds what keeps it)."""
        r = self.readings
        return BisectRecord(
            planned_calls=self.calls, calls=self.measured, warmup=self.warmup, seconds=0.0, x=list(r.x),
            total_bytes=list(r.total), total_blocks=list(r.total_blocks), rss=list(r.rss),
            native_rss=list(r.native), native_malloc=list(r.native_malloc),
            self_bytes={k: list(v) for k, v in r.self_bytes.items()},
            self_blocks={k: list(v) for k, v in r.self_blocks.items()},
            incl_bytes={k: list(v) for k, v in r.incl_bytes.items()},
            path_bytes={k: list(v) for k, v in r.path_bytes.items()},
            rss_self={k: list(v) for k, v in r.rss_self.items()},
            malloc_self={k: list(v) for k, v in r.malloc_self.items()},
            call_counts={name: stats.calls for name, stats in self.found.stats.items()},
            functions=list(self.found.functions),
            sites={name: display_site(site) for name, site in r.top_sites().items()},
            atexit_added=self.atexit_after - self.atexit_before, errors=sum(self.caller.error_types.values()),
            error_types=dict(self.caller.error_types), cut_short=self.cut_short, ran_on=self.ran_on,
            notes=list(self.notes), unsettled=self.unsettled, heavy=self.heavy, cheap_x=list(r.cheap_x),
            cheap_blocks=list(r.cheap_blocks), cheap_rss=list(r.cheap_rss), cheap_malloc=list(r.cheap_malloc))

    def _undo(self) -> None:
        """Give back what the run changed: wrappers, malloc readings, the freeze, tracemalloc, the loop."""
        self.table = None
        if self.shallow is not None:
            self.shallow.close()
            self.shallow = None
        wrappers.malloc_readings(True)
        self.found.restore()
        if self.froze:
            gc.unfreeze()
            self.froze = False
        if not self.was_tracing and tracemalloc.is_tracing():
            tracemalloc.stop()
        self.caller.close()
        if self.bar is not None:
            if self.bar.total is not None and self.bar.n != self.bar.total:
                self.bar.total = self.bar.n  # cut short or run on: the bar ends full, not red
            self.bar.close()
            self.bar = None


def _atexit_count() -> int:
    """Callbacks registered with atexit: they live in the interpreter, where the GC cannot see them."""
    import atexit

    return atexit._ncallbacks()
