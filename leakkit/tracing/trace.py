"""``leakkit.trace``: record what each call of a function keeps, without changing what it does.

Every call gets a row (see :mod:`leakkit.recording.recorder` for the columns) read with the two cheapest
probes, allocated blocks and RSS (~3 us a call together). Checkpoints read everything else right
after a full garbage collection, so that cyclic garbage is never counted as kept.

Checkpoint schedule (``checkpoint_every="auto"``): a baseline before the first call, then after
calls 1, 2, 4, 8, 16, 32 and 64 while their collections stay under a start-up allowance (0.5 s), then
whenever the time spent in checkpoints stays under ``overhead_budget`` (5%) of the time traced so
far. ``.report()`` takes a last checkpoint if calls were made since the previous one. An int takes
a checkpoint every that many calls, whatever it costs.

Nested calls: a traced function called inside another traced call (recursion included) gets its
own row with ``depth`` > 0, and what it keeps is counted in the outer call's row too (deltas are
inclusive). Checkpoints are only taken between outermost calls. Async functions: the row spans the
whole awaited call, including what other tasks did meanwhile. Generators: the row spans the
generator's life, from the call to exhaustion or close, summing only the time and memory of its own
steps (not what the consumer does between them).
"""
from __future__ import annotations

import contextvars
import functools
import inspect
import math
import os
import sys
import threading
import time
import types
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import pandas as pd

from .._errors import check_options, expected
from ..probes import process as probes
from ..recording.recorder import Recorder
from ..recording.tables import Recording
from ..reports.trace_report import (
    trace_report,  # imported here, not at the last checkpoint: it would read as growth
)

OPTIONS = frozenset({"checkpoint_every", "summaries", "tracemalloc", "fds", "stream", "overhead_budget", "name"})
P = ParamSpec("P")
R = TypeVar("R")
_STARTUP_ALLOWANCE_S = 0.5
_WALL_MIN_S = 0.05  # wall-time checkpoints: at most 20 a second ...
_WALL_GROWTH = 0.02  # ... and 2% of the run apart (about 50 per tenfold of run time)
_DENSE = (1, 2, 4, 8, 16, 32, 64)
_READ_BUDGET = 0.05  # fraction of a call's time the per-call memory readings may take

_perf = time.perf_counter
_blocks = probes.blocks
_rss = probes.rss


class Trace:
    """A traced callable: behaves like the function it wraps, and holds its recording.

    Use :func:`trace` to make one. ``calls``, ``checkpoints`` and ``summaries`` are DataFrames
    (columns in :mod:`leakkit.recording.recorder`); ``report()`` gives the verdict; ``plot()`` draws it.
    """

    def __init__(self, func: Callable, *, checkpoint_every: int | str = "auto", summaries: bool = True,
                 tracemalloc: bool = False, fds: bool = False, stream: str | None = None,
                 overhead_budget: float = 0.05, name: str | None = None) -> None:
        binding = "static" if isinstance(func, staticmethod) else "class" if isinstance(func, classmethod) else None
        if binding is not None:  # @trace over @staticmethod / @classmethod: trace the function inside
            func = func.__func__
        if not callable(func):
            raise expected("a callable (function, method, coroutine function or generator function)", "func", func)
        if not (checkpoint_every == "auto" or (isinstance(checkpoint_every, int) and not isinstance(checkpoint_every, bool)
                                               and checkpoint_every > 0)):
            raise expected("a positive int or 'auto'", "checkpoint_every", checkpoint_every)
        if isinstance(overhead_budget, bool) or not (isinstance(overhead_budget, (int, float))
                                                     and 0 < overhead_budget <= 1):
            raise expected("a fraction in (0, 1], e.g. 0.05", "overhead_budget", overhead_budget)
        for option, value in (("summaries", summaries), ("tracemalloc", tracemalloc), ("fds", fds)):
            if not isinstance(value, bool):
                raise expected("True or False", option, value)
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise expected("a non-empty str (the function column) or None", "name", name)
        functools.update_wrapper(self, func)
        # a callable object's own attributes, copied by update_wrapper, must not hide the trace's API
        # (an object with a ``report`` attribute would make traced.report its value)
        for attribute in [key for key in vars(self) if not key.startswith("__") and
                          (hasattr(Trace, key) or key == "_is_coroutine")]:
            del self.__dict__[attribute]
        self._binding = binding
        # Keep inspect.iscoroutinefunction / isgeneratorfunction / signature answering as for func.
        for attribute in ("__code__", "__defaults__", "__kwdefaults__"):
            if hasattr(func, attribute):
                setattr(self, attribute, getattr(func, attribute))
        self._func = func
        self._qualname = name or getattr(func, "__qualname__", None) or repr(func)
        self._kind = ("asyncgen" if inspect.isasyncgenfunction(func) else "async" if inspect.iscoroutinefunction(func)
                      else "gen" if inspect.isgeneratorfunction(func) else "sync")
        if self._kind == "async":
            import asyncio.coroutines
            self._is_coroutine = asyncio.coroutines._is_coroutine  # asyncio.iscoroutinefunction in 3.10/3.11
        self._every = checkpoint_every
        self._want_summaries = bool(summaries)
        self._tracemalloc = bool(tracemalloc)
        self._fds = bool(fds)
        self._budget = float(overhead_budget)
        # Nesting depth per thread and per asyncio task (a ContextVar, not a threading.local: tasks
        # interleave in one thread, and thread-locals add objects that heap summaries see).
        self._depth = contextvars.ContextVar("leakkit_trace_depth", default=0)
        self.last_error: BaseException | None = None  # leakkit's own last failure (the calls never see it)
        self._recorder = Recorder(stream)
        self._ckpt_lock = threading.Lock()
        self._reset_schedule()

    def _reset_schedule(self) -> None:
        self._t0: float | None = None
        self._next_ckpt = 0
        self._ckpt_cost = 0.0
        self._summary_cost = 0.0
        self._last_ckpt_call = -1
        self._last_cost = 0.0
        self._last_cpu = 0.0
        self._wall_due = math.inf  # perf_counter time of the next wall-time checkpoint (set by _schedule)
        self._started_tracemalloc = False
        self._busy = 0.0  # seconds spent inside outermost traced calls
        self._read_every = 1  # read memory on every call until _adapt says otherwise
        self._countdown = 0
        self._census: dict[int, int] | None = None  # bounded containers' sizes at the baseline
        self._own_blocks = 0  # blocks and traced bytes that type summaries kept (leakkit's own)
        self._own_bytes = 0
        self._own_allocated = 0

    # -- transparency ---------------------------------------------------------------------------
    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if self._binding == "static":
            return self
        if self._binding == "class":
            return types.MethodType(self, owner if owner is not None else type(instance))
        if instance is None:
            return self
        return types.MethodType(self, instance)

    def __repr__(self) -> str:
        return f"<leakkit.trace of {self._qualname}: {len(self._recorder)} calls>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        kind = self._kind
        if kind == "async":
            return self._call_async(args, kwargs)
        if kind == "gen":
            return self._call_gen(args, kwargs)
        if kind == "asyncgen":
            return self._call_asyncgen(args, kwargs)
        depth = self._depth.get()
        if depth == 0:
            if len(self._recorder) >= self._next_ckpt:
                self._maybe_checkpoint()
        else:  # recursion: give back the recursion-limit room this trace's wrappers take (see _lift)
            _lift(depth)
        token = self._depth.set(depth + 1)
        self._countdown -= 1  # a race between threads only shifts which call is read
        if self._countdown > 0:
            # light call: time only (memory is read every `_read_every` calls, see _adapt)
            t0 = _perf()
            try:
                result = self._func(*args, **kwargs)
            except BaseException as error:
                t1 = _perf()
                self._depth.reset(token)
                self._finish(t0, t1, None, None, None, None, None, type(error).__name__, depth)
                raise
            t1 = _perf()
            self._depth.reset(token)
            self._finish(t0, t1, None, None, None, None, None, None, depth)
            return result
        self._countdown = self._read_every
        fds0 = probes.fds() if self._fds else None
        r0 = _rss()
        m0 = probes.traced_bytes() if self._tracemalloc else None
        b0 = _blocks()
        t0 = _perf()
        try:
            result = self._func(*args, **kwargs)
        except BaseException as error:
            t1 = _perf()
            b1 = _blocks()
            self._depth.reset(token)
            self._finish(t0, t1, b0, b1, r0, m0, fds0, type(error).__name__, depth)
            raise
        t1 = _perf()
        b1 = _blocks()
        self._depth.reset(token)
        self._finish(t0, t1, b0, b1, r0, m0, fds0, None, depth)
        return result

    def _finish(self, t0: float, t1: float, b0: int | None, b1: int | None, r0: int | None, m0: int | None,
                fds0: int | None, error: str | None, depth: int, duration: float | None = None) -> None:
        """Record one call's row; never raises (the call's result or exception is the caller's, untouched)."""
        try:
            if b0 is None:
                blocks = rss = traced = fds = None
            else:
                blocks = b1 - b0 - _bias()
                m1 = probes.traced_bytes() if m0 is not None else None
                r1 = _rss()
                traced = None if m1 is None or m0 is None else m1 - m0
                rss = None if r0 is None or r1 is None else r1 - r0
                fds = None if fds0 is None else (probes.fds() or 0) - fds0
            if self._t0 is None:
                self._t0 = t0
            if depth == 0:
                self._busy += (t1 - t0) if duration is None else duration
                if t1 >= self._wall_due:  # checkpoints follow wall time too: the next call takes one
                    self._next_ckpt = 0
            else:
                _drop(depth)
            self._recorder.add_call(self._qualname, threading.current_thread().name, t0 - self._t0,
                                    (t1 - t0) if duration is None else duration, blocks, traced, rss, fds,
                                    error, depth)
        except Exception as fault:  # leakkit's own fault: the row is lost, the call is not touched
            self._fault("recording a call", fault)

    def _fault(self, what: str, fault: BaseException) -> None:
        """Note leakkit's own failure once (a warning; ``last_error``), never raising into the traced code."""
        first = self.last_error is None
        self.last_error = fault
        if first:
            try:
                import warnings

                from .._errors import RecordingStoppedWarning

                warnings.warn(f"leakkit trace of {self._qualname}: {what} failed ({type(fault).__name__}: "
                              f"{fault}); the traced calls go on untouched", RecordingStoppedWarning, stacklevel=4)
            except Exception:  # warnings turned into errors: still not the traced code's business
                pass

    async def _call_async(self, args: tuple, kwargs: dict) -> Any:
        depth = self._depth.get()
        if depth == 0:
            if len(self._recorder) >= self._next_ckpt:
                self._maybe_checkpoint()
        else:
            _lift(depth)
        token = self._depth.set(depth + 1)
        fds0 = probes.fds() if self._fds else None
        r0 = _rss()
        m0 = probes.traced_bytes() if self._tracemalloc else None
        b0 = _blocks()
        t0 = _perf()
        try:
            result = await self._func(*args, **kwargs)
        except BaseException as error:
            t1 = _perf()
            b1 = _blocks()
            self._depth.reset(token)
            self._finish(t0, t1, b0, b1, r0, m0, fds0, type(error).__name__, depth)
            raise
        t1 = _perf()
        b1 = _blocks()
        self._depth.reset(token)
        self._finish(t0, t1, b0, b1, r0, m0, fds0, None, depth)
        return result

    def _call_gen(self, args: tuple, kwargs: dict) -> Any:
        depth = self._depth.get()
        if depth == 0 and len(self._recorder) >= self._next_ckpt:
            self._maybe_checkpoint()
        fds0 = probes.fds() if self._fds else None
        t_first = _perf()
        r_first = _rss()
        m_first = probes.traced_bytes() if self._tracemalloc else None
        spent = 0.0
        kept = 0
        b0 = _blocks()
        gen = self._func(*args, **kwargs)
        kept += _blocks() - b0
        driver = self._drive(gen, t_first, r_first, m_first, fds0, depth, kept, spent)
        # run to its first line: a throw() or close() before the first next() then gets its row too
        # (a generator that never started runs no code of its own, not even a finally)
        driver.send(None)
        return driver

    def _drive(self, gen: Any, t_first: float, r_first: Any, m_first: Any, fds0: Any, depth: int,
               kept: int, spent: float) -> Any:
        value, thrown, error = None, None, None
        try:
            try:
                value = yield  # primed by _call_gen: the consumer's first next(), send() or throw() lands here
            except GeneratorExit:
                gen.close()
                raise
            except BaseException as exc:
                thrown = exc
            while True:
                t0 = _perf()
                b0 = _blocks()
                try:
                    item = gen.send(value) if thrown is None else gen.throw(thrown)
                except StopIteration as stop:
                    kept += _blocks() - b0
                    spent += _perf() - t0
                    return stop.value
                except BaseException as exc:
                    kept += _blocks() - b0
                    spent += _perf() - t0
                    error = type(exc).__name__
                    raise
                kept += _blocks() - b0
                spent += _perf() - t0
                thrown = None
                try:
                    value = yield item
                except GeneratorExit:
                    gen.close()
                    raise
                except BaseException as exc:
                    thrown, value = exc, None
        finally:
            thrown = None
            self._finish(t_first, _perf(), 0, kept, r_first, m_first, fds0, error, depth, duration=spent)

    def _call_asyncgen(self, args: tuple, kwargs: dict) -> Any:
        return self._drive_async(self._func(*args, **kwargs))

    async def _drive_async(self, agen: Any) -> Any:
        depth = self._depth.get()
        fds0 = probes.fds() if self._fds else None
        t_first = _perf()
        r_first = _rss()
        m_first = probes.traced_bytes() if self._tracemalloc else None
        kept, spent, error = 0, 0.0, None
        value, thrown = None, None
        try:
            while True:
                t0 = _perf()
                b0 = _blocks()
                try:
                    item = await (agen.asend(value) if thrown is None else agen.athrow(thrown))
                except StopAsyncIteration:
                    kept += _blocks() - b0
                    spent += _perf() - t0
                    return
                except BaseException as exc:
                    kept += _blocks() - b0
                    spent += _perf() - t0
                    error = type(exc).__name__
                    raise
                kept += _blocks() - b0
                spent += _perf() - t0
                thrown = None
                try:
                    value = yield item
                except GeneratorExit:
                    await agen.aclose()
                    raise
                except BaseException as exc:
                    thrown, value = exc, None
        finally:
            thrown = None
            self._finish(t_first, _perf(), 0, kept, r_first, m_first, fds0, error, depth, duration=spent)

    # -- checkpoints ----------------------------------------------------------------------------
    def _maybe_checkpoint(self) -> None:
        """A scheduled checkpoint before an outermost call; never raises into the traced code."""
        if not self._ckpt_lock.acquire(blocking=False):
            return  # another thread is taking one
        try:
            n = len(self._recorder)
            if n < self._next_ckpt or n == self._last_ckpt_call:
                return
            self._take_checkpoint(n)
            self._schedule(n)
        except Exception as fault:  # leakkit's own: try again later, leave the call alone
            self._next_ckpt = 2 * len(self._recorder) + 1
            self._wall_due = math.inf
            self._fault("a checkpoint", fault)
        finally:
            self._ckpt_lock.release()

    def _adapt(self, n: int) -> None:
        """Read memory on every k-th call so that the readings cost <= _READ_BUDGET of the call time.

        ``sys.getallocatedblocks`` walks every pool of every arena: ~1 us in a bare interpreter,
        ~20 us once pandas is imported, ~60 us with a million objects. Reading it twice per call
        would more than double the time of a 50 us function, so past the dense start-up checkpoints
        fast functions get their memory read on a sample of calls (the others have NaN deltas).
        Checkpoints, which decide the verdict, are not affected.
        """
        if self._tracemalloc or self._fds or n < _DENSE[-1]:
            self._read_every = 1
            return
        t = _perf()
        for _ in range(4):
            _blocks()
            _rss()
        cost = 2 * (_perf() - t) / 4  # two readings per call
        durations = self._recorder.recent_durations(512)
        mean = sum(durations) / len(durations) if len(durations) else 0.0
        if mean <= 0:
            return
        self._read_every = max(1, min(1000, math.ceil(cost / (_READ_BUDGET * mean))))

    def _schedule(self, n: int) -> None:
        self._adapt(n)
        if self._every != "auto":
            self._next_ckpt = n + int(self._every)
            return
        # Wall time too: a fast function (or many threads) may take hours of calls to earn a checkpoint
        # on its own time, and its verdict would stay inconclusive. Spaced so that checkpoints take at
        # most `budget` of one core (their CPU time, not the GIL waits), and further apart as the run
        # grows (a long-running process keeps a bounded number of rows).
        now = _perf()
        self._wall_due = now + max(_WALL_MIN_S, self._last_cpu / self._budget, _WALL_GROWTH * (now - self._t0))
        dense = next((c for c in _DENSE if c > n), None)
        if dense is not None and self._ckpt_cost - self._summary_cost <= _STARTUP_ALLOWANCE_S:
            self._next_ckpt = dense
            return
        # Budget: the next checkpoint when checkpoints would have cost <= budget of the traced time.
        # relative to the time spent in the traced calls, not wall time: the overhead a user sees is
        # on the function, however rarely it is called
        per_call = max(self._busy, 1e-9) / max(n, 1)
        last_cost = self._last_cost
        calls_needed = (self._ckpt_cost + last_cost) / self._budget / per_call - n
        if dense is not None:  # past the allowance, but not yet past the dense schedule
            calls_needed = min(calls_needed, dense - n)
        self._next_ckpt = n + max(1, int(calls_needed))

    def checkpoint(self) -> None:
        """Take a checkpoint now (a full garbage collection, then every probe)."""
        with self._ckpt_lock:
            n = len(self._recorder)
            if n != self._last_ckpt_call:
                self._take_checkpoint(n, force_summary=True)
                self._schedule(n)

    def _warm_up(self) -> None:
        """Run every reading once before the baseline, so that their first-use costs are baseline.

        psutil builds its Process object, the fd listing and the smaps reader allocate on first
        use, the wrapper calibrates its own per-call cost, and the recorder learns this thread's
        name: done after the baseline, all of that would show up as growth at the next checkpoint.
        """
        _bias()
        self._allocated()
        probes.process_memory()
        probes.fds()
        probes.gc_collections()
        self._recorder.warm(self._qualname, threading.current_thread().name)
        self._census = probes.bounded_census()
        if self._want_summaries and not _WARMED:
            # The first summary in a process fills the type-name table and pandas' and numpy's
            # caches: done here, before the baseline reading, the next summary finds them there.
            _WARMED.append(True)
            try:
                from ..probes.heap import heap_summary

                self._recorder.learn_types(heap_summary(collect=True))
            except Exception:
                pass  # reported by the summary itself

    def _take_checkpoint(self, n: int, force_summary: bool = False) -> None:
        import gc
        import tracemalloc

        start = _perf()
        cpu0 = time.thread_time()
        if self._t0 is None:
            self._t0 = start
        if self._last_ckpt_call < 0:
            self._warm_up()
        if self._tracemalloc and not tracemalloc.is_tracing():
            tracemalloc.start()
            self._started_tracemalloc = True
        gc.collect()
        # Read right after a full collection: cyclic garbage is gone and the freelists are empty.
        blocks_now = probes.blocks()
        traced_now = probes.traced_bytes()
        allocated_now = self._allocated()
        blocks_kept = blocks_now - self._own_blocks - self._recorder.own_blocks
        traced_kept = None if traced_now is None else traced_now - self._own_bytes
        allocated_kept = None if allocated_now is None else allocated_now - self._own_allocated
        heap_bytes = None
        if self._want_summaries:
            if force_summary or self._last_ckpt_call < 0 or self._summary_cost <= self._budget * self._busy:
                heap_bytes = self._summarize(n, blocks_now, traced_now, allocated_now)
        memory = probes.process_memory()
        # the recorder's buffers (~47 B a call) are process memory too, and leakkit's own
        own = self._recorder.footprint()
        rss, uss, pss = ((None if v is None else v - own) for v in (memory.rss, memory.uss, memory.pss))
        row = {"call": n, "t": start - self._t0, "blocks": blocks_kept, "traced_bytes": traced_kept,
               "heap_bytes": heap_bytes, "rss": rss, "uss": uss, "pss": pss,
               "swap": memory.swap, "fds": probes.fds(), "gc_collections": probes.gc_collections(),
               "allocated_bytes": allocated_kept}
        self._recorder.add_checkpoint(row)
        del row, memory
        self._last_ckpt_call = n
        self._last_cost = _perf() - start
        self._last_cpu = time.thread_time() - cpu0
        self._ckpt_cost += self._last_cost

    def _allocated(self) -> int | None:
        """Bytes held through pymalloc and malloc, less leakkit's own: the recorder's buffers (they
        grow ~48 bytes a call) and tracemalloc's tables. Read first, before anything here allocates."""
        import tracemalloc

        total = probes.allocated_bytes()
        if total is None:
            return None
        total -= self._recorder.own_heap_bytes()
        if tracemalloc.is_tracing():
            total -= tracemalloc.get_tracemalloc_memory()
        return total

    def _summarize(self, n: int, blocks_before: int, traced_before: int | None,
                   allocated_before: int | None) -> int | None:
        """Take and store a type summary; what it leaves behind is counted as leakkit's, not the calls'.

        A summary keeps a little (new type names in the recorder's table, pandas and numpy caches
        that fill on first use and then come and go by tens of blocks). Measured between two
        collections around it and subtracted from every later reading, so that neither the
        summary at the baseline nor the one ``.report()`` forces at the end reads as growth.
        """
        import gc

        from ..probes.heap import heap_summary

        s0 = _perf()
        try:
            summary = _without(heap_summary(collect=False), self._recorder.own_objects())
        except Exception as error:  # a summary is extra information: never let it break the call
            import warnings

            from .._errors import ProbeUnavailableWarning

            self._want_summaries = False
            warnings.warn(f"leakkit: probe 'type summary' failed ({type(error).__name__}: {error}); "
                          "carrying on without type summaries", ProbeUnavailableWarning, stacklevel=2)
            return None
        self._recorder.add_summary(n, summary)
        heap_bytes = int(summary["size"].sum())
        del summary
        gc.collect()
        self._own_blocks += probes.blocks() - blocks_before
        traced_after = probes.traced_bytes()
        if traced_after is not None and traced_before is not None:
            self._own_bytes += traced_after - traced_before
        allocated_after = self._allocated()
        if allocated_after is not None and allocated_before is not None:
            self._own_allocated += allocated_after - allocated_before
        self._summary_cost += _perf() - s0
        return heap_bytes

    # -- results --------------------------------------------------------------------------------
    @property
    def calls(self) -> pd.DataFrame:
        """One row per finished call (columns in :mod:`leakkit.recording.recorder`)."""
        return self._recorder.calls

    @property
    def checkpoints(self) -> pd.DataFrame:
        """One row per checkpoint, read after a full garbage collection."""
        return self._recorder.checkpoints

    @property
    def summaries(self) -> pd.DataFrame:
        """Type summaries (call, type, count, size) taken at checkpoints."""
        return self._recorder.summaries

    @property
    def recording(self) -> Recording:
        """A copy of the three frames, detached from this trace."""
        return Recording(self.calls, self.checkpoints, self.summaries)

    def report(self, *, checkpoint: bool = True) -> Any:
        """The verdict on what the calls kept (takes a last checkpoint first unless told not to)."""
        if checkpoint and len(self._recorder):
            self.checkpoint()
        census = self._census
        holders = None
        if checkpoint and census is not None:
            holders = functools.partial(probes.bounded_holders, baseline=census)
        return trace_report(self.recording, function=self._qualname, holders=holders)

    def plot(self, ax: Any = None) -> Any:
        """Retained memory against calls with the fitted rate; returns the Axes."""
        return self.report(checkpoint=False).plot(ax=ax)

    def reset(self) -> None:
        """Forget the recording and start the checkpoint schedule again."""
        with self._ckpt_lock:
            self._recorder.reset()
            self._reset_schedule()

    def save(self, path: str, *, format: str | None = None) -> str:
        """Save the recording as CSV (or Parquet for a .parquet path); returns the path."""
        return self._recorder.save(path, format=format)

    def stop(self) -> None:
        """Stop tracemalloc if this trace started it, and close the stream file."""
        import tracemalloc

        if self._started_tracemalloc and tracemalloc.is_tracing():
            tracemalloc.stop()
            self._started_tracemalloc = False
        self._recorder.close()


# -- recursion: each level of a traced recursion adds a wrapper frame ------------------------------
# A Trace.__call__ level costs 2 units of the recursion limit before 3.12 (the slot call and its
# frame) and 1 from 3.12 on (C calls are counted apart). While a traced function recurses, the limit
# is raised by what its wrappers take, so it reaches the depth it reaches untraced; back to the
# user's limit when the last recursion in progress ends (the lift is the deepest one of them).
_UNITS = 2 if sys.version_info < (3, 12) else 1
_LIFT = [0, 0]  # units added to the limit, traced recursions in progress
_LIFT_LOCK = threading.Lock()


def _lift(depth: int) -> None:
    units = (depth + 1) * _UNITS
    if depth != 1 and units <= _LIFT[0]:
        return
    with _LIFT_LOCK:
        if depth == 1:
            _LIFT[1] += 1
        if units > _LIFT[0]:
            try:
                sys.setrecursionlimit(sys.getrecursionlimit() + units - _LIFT[0])
                _LIFT[0] = units
            except Exception:  # pragma: no cover - an interpreter that refuses: the old behaviour
                pass


def _drop(depth: int) -> None:
    if depth != 1:
        return
    with _LIFT_LOCK:
        _LIFT[1] = max(0, _LIFT[1] - 1)
        if _LIFT[1] == 0 and _LIFT[0]:
            try:
                sys.setrecursionlimit(sys.getrecursionlimit() - _LIFT[0])
                _LIFT[0] = 0
            except Exception:  # too deep to lower right now (RecursionError): the next recursion's end does
                pass


def _strict(func: Callable[P, R]) -> Callable[P, R]:
    """Unknown keyword options raise UnknownOptionError naming the known ones (not a bare TypeError)."""
    known = frozenset(name for name, parameter in inspect.signature(func).parameters.items()
                      if parameter.kind is parameter.KEYWORD_ONLY)

    @functools.wraps(func)
    def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        check_options(func.__name__, {k: v for k, v in kwargs.items() if k != "func"}, known)
        return func(*args, **kwargs)

    return checked


@_strict
def trace(func: Callable | None = None, *, checkpoint_every: int | str = "auto", summaries: bool = True,
          tracemalloc: bool = False, fds: bool = False, stream: str | os.PathLike | None = None,
          overhead_budget: float = 0.05, name: str | None = None) -> Any:
    """Trace a function: ``@trace``, ``@trace(checkpoint_every=100)`` or ``traced = trace(func)``.

    The wrapped callable behaves exactly like ``func`` (sync, async, methods, generators,
    threads) and records what each call keeps; see :class:`Trace` for what it holds.

    Args:
        func: the function to trace; omitted, ``trace(...)`` returns a decorator.
        checkpoint_every: ``"auto"`` (a schedule that keeps checkpoints within
            ``overhead_budget``: after calls 1, 2, 4, ... 64, then as the budget allows) or a
            number of calls between checkpoints. A checkpoint is a full garbage collection
            followed by every probe.
        summaries: take type summaries (type, count, size) at checkpoints, which name the
            growing types.
        tracemalloc: also record per-call traced bytes (``bytes_delta``); starts tracemalloc,
            which slows every allocation 7-12x.
        fds: also record per-call open file descriptors (``fds_delta``; ~20 us a call).
        stream: a CSV path every row is appended to (and flushed) as it is recorded, so a crash
            keeps every finished call; read it back with :func:`leakkit.load`.
        overhead_budget: the fraction of the traced calls' own time checkpoints may take.
        name: the ``function`` column and the report's name (default: the qualified name).

    Unknown options raise :class:`~leakkit.UnknownOptionError`.

    Example::

        @leakkit.trace
        def handle(request): ...

        for r in requests: handle(r)
        print(handle.report())      # leak / plateau / clean / inconclusive, with a rate per call
        handle.calls.head()         # one row per call
    """
    given = {"checkpoint_every": checkpoint_every, "summaries": summaries, "tracemalloc": tracemalloc,
             "fds": fds, "stream": stream, "overhead_budget": overhead_budget, "name": name}
    # the options given (not left at their defaults): what a Trace is built with, or refused for one
    options = {key: value for key, value in given.items()
               if not (type(value) is type(_DEFAULTS[key]) and value == _DEFAULTS[key])}
    if func is None:
        return lambda f: trace(f, **options)
    if isinstance(func, Trace):
        if options:  # they would be silently dropped: one function, one recording, one set of options
            raise expected(f"a function not traced yet (trace it once, with all of {', '.join(sorted(options))})",
                           "func", func)
        return func
    return Trace(func, **options)


_DEFAULTS = {name: parameter.default for name, parameter in inspect.signature(trace).parameters.items()
             if parameter.kind is parameter.KEYWORD_ONLY}


def _without(summary: pd.DataFrame, own: list) -> pd.DataFrame:
    """``summary`` minus leakkit's own objects (the recorder's buffers), so they never read as growth."""
    if not own:
        return summary
    from collections import Counter

    counts: Counter = Counter()
    sizes: Counter = Counter()
    names: dict[type, str] = {}
    for kind, size in zip(map(type, own), map(sys.getsizeof, own), strict=False):
        name = names.get(kind)
        if name is None:
            name = names[kind] = probes._type_name(kind)
        counts[name] += 1
        sizes[name] += size
    mask = summary["type"].isin(list(counts))
    if not mask.any():
        return summary
    summary = summary.copy()
    summary.loc[mask, "count"] -= summary.loc[mask, "type"].map(counts).astype("int64")
    summary.loc[mask, "size"] -= summary.loc[mask, "type"].map(sizes).astype("int64")
    return summary


_WARMED: list[bool] = []


# -- calibration: what the wrapper's own readings add to blocks_delta ----------------------------
_BIAS: list[int] = []


def _bias() -> int:
    if _BIAS:
        return _BIAS[0]
    _BIAS.append(0)  # while calibrating
    probe = Trace(_noop, checkpoint_every=10**9, summaries=False)
    probe._next_ckpt = 10**9
    for _ in range(21):
        probe()
    deltas = sorted(probe._recorder.column("blocks"))
    _BIAS[0] = int(deltas[len(deltas) // 2])
    return _BIAS[0]


def _noop() -> None:
    return None

