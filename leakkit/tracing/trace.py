"""``leakkit.trace``: record what each call of a function keeps, without changing what it does.

The public face: :func:`trace` and :class:`Trace` check the options, keep the traced callable
transparent (metadata, methods, ``inspect``, sync or async or generator) and give the results.
Every call gets a row (see :mod:`leakkit.recording.recorder` for the columns) read with the two
cheapest probes, allocated blocks and RSS (:mod:`leakkit.tracing.calls`, the one mechanism the
sync and async wrappers share). Checkpoints read everything else right after a full garbage
collection, so that cyclic garbage is never counted as kept (:mod:`leakkit.tracing.checkpoints`,
which also holds the schedule: after calls 1, 2, 4, ... 64, then within ``overhead_budget``).
``.report()`` takes a last checkpoint if calls were made since the previous one.

Nested calls: a traced function called inside another traced call (recursion included) gets its
own row with ``depth`` > 0, and what it keeps is counted in the outer call's row too (deltas are
inclusive). Checkpoints are only taken between outermost calls. Async functions: the row spans the
whole awaited call, including what other tasks did meanwhile. Generators: the row spans the
generator's life, from the call to exhaustion or close, summing only the time and memory of its own
steps (not what the consumer does between them; :mod:`leakkit.tracing.frames_importlib_bootstrap`).
"""
from __future__ import annotations

import functools
import inspect
import os
import sys
import time
import types
from collections.abc import Callable
from typing import Any

import pandas as pd

from .. import _checks
from .._errors import expected
from ..recording.recorder import Recorder
from ..recording.tables import Recording
from ..reports.trace_report import (
    trace_report,  # imported here, not at the last checkpoint: it would read as growth
)
from ..retention.grown import grown_containers, grown_holders
from .calls import CallMeter
from .checkpoints import Checkpoints
from .frames_importlib_bootstrap import traced_call

_GROWERS_S = 2.0  # seconds a report spends finding and naming the containers that grew (when it would say leak)
OPTIONS = frozenset({"checkpoint_every", "summaries", "tracemalloc", "fds", "stream", "overhead_budget", "name"})


class Trace:
    """A traced callable: behaves like the function it wraps, and holds its recording.

    Use :func:`trace` to make one. ``calls``, ``checkpoints`` and ``summaries`` are DataFrames
    (columns in :mod:`leakkit.recording.recorder`); ``report()`` gives the verdict; ``plot()`` draws it.
    ``last_error`` is leakkit's own last failure, if any (the traced calls never see it).
    """

    @_checks.strict
    def __init__(self, func: Callable, *, checkpoint_every: int | str = "auto", summaries: bool = True,
                 tracemalloc: bool = False, fds: bool = False, stream: str | None = None,
                 overhead_budget: float = 0.05, name: str | None = None) -> None:
        original = func
        binding = "static" if isinstance(func, staticmethod) else "class" if isinstance(func, classmethod) else None
        if binding is not None:  # @trace over @staticmethod / @classmethod: trace the function inside
            func = func.__func__
        if not callable(func):
            raise expected("a callable (function, method, coroutine function or generator function)", "func", func)
        if not (isinstance(checkpoint_every, str) and checkpoint_every == "auto"):
            if isinstance(checkpoint_every, str):
                raise expected("a positive int or 'auto'", "checkpoint_every", checkpoint_every)
            checkpoint_every = _checks.integer(checkpoint_every, "checkpoint_every", minimum=1,
                                               what="a positive int or 'auto'")
        overhead_budget = _checks.fraction(overhead_budget, "overhead_budget")
        for option, value in (("summaries", summaries), ("tracemalloc", tracemalloc), ("fds", fds)):
            _checks.flag(value, option)
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise expected("a non-empty str (the function column) or None", "name", name)
        self._options = {"checkpoint_every": checkpoint_every, "summaries": summaries, "tracemalloc": tracemalloc,
                         "fds": fds, "stream": stream, "overhead_budget": overhead_budget, "name": name}
        self._original = original
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
        self._names = (getattr(func, "__name__", type(func).__name__), getattr(func, "__qualname__", None)
                       or getattr(func, "__name__", type(func).__name__))  # the coroutines it makes are named so
        recorder = Recorder(stream)
        self._recorder = recorder
        self._checkpoints = Checkpoints(recorder, self._qualname, every=checkpoint_every, budget=float(overhead_budget),
                                        summaries=summaries, tracemalloc=tracemalloc, fds=fds)
        self._meter = CallMeter(self._qualname, recorder, self._checkpoints, tracemalloc=tracemalloc, fds=fds)
        self._meter.bias = _bias()

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

    __call__ = traced_call  # in a file whose frames warnings' stacklevel skips (see its docstring)

    # -- pickle and copy: by reference, as the function it wraps ----------------------------------
    def __reduce__(self) -> str | tuple:
        """A module-level traced function pickles by its name (a process pool imports it and gets
        the trace there); one not reachable by name pickles as "trace this function with these options"."""
        module = sys.modules.get(getattr(self, "__module__", None) or "")
        found: Any = module
        for part in str(getattr(self, "__qualname__", "")).split("."):
            found = getattr(found, part, None) if found is not None and part != "<locals>" else None
        if found is self:
            return self.__qualname__
        return (_rebuild, (self._original, self._options))

    def __copy__(self) -> Trace:
        return self  # as a function's copy is the function: one function, one recording

    def __deepcopy__(self, memo: dict) -> Trace:
        return self

    @property
    def last_error(self) -> BaseException | None:
        """leakkit's own last failure (a checkpoint or a row that could not be recorded), or None."""
        return self._meter.last_error

    @last_error.setter
    def last_error(self, value: BaseException | None) -> None:
        self._meter.last_error = value

    def checkpoint(self) -> None:
        """Take a checkpoint now (a full garbage collection, then every probe).

        Not wrapped by ``_checks.strict``: its argument tuple and dict would be alive during the
        reading, a few blocks the checkpoints taken inside the calls do not have.
        """
        self._checkpoints.now()

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

    def report(self, *, checkpoint: bool = True) -> Any:  # not wrapped by _checks.strict: see checkpoint()
        """The verdict on what the calls kept (takes a last checkpoint first unless told not to)."""
        _checks.flag(checkpoint, "checkpoint")
        if checkpoint and len(self._recorder):
            self.checkpoint()
        census, old = self._checkpoints.census, self._checkpoints.baseline_objects
        holders = None
        if checkpoint and census is not None:
            grown = grown_containers(census)  # now: what building the report adds is not the calls'

            def holders() -> list:
                return grown_holders(grown, old=old, deadline=time.perf_counter() + _GROWERS_S)
        return trace_report(self.recording, function=self._qualname, holders=holders)

    @_checks.strict
    def plot(self, ax: Any = None) -> Any:
        """Retained memory against calls with the fitted rate; returns the Axes."""
        return self.report(checkpoint=False).plot(ax=ax)

    @_checks.strict
    def reset(self) -> None:
        """Forget the recording and start the checkpoint schedule again."""
        self._checkpoints.reset()
        self._meter.reset()

    @_checks.strict
    def save(self, path: str | os.PathLike, *, format: str | None = None) -> str:
        """Save the recording as CSV (or Parquet for a .parquet path); returns the path.

        The file is replaced only once the new one is whole and on disk: a failed save (a full
        disk) leaves the file that was there as it was and raises :class:`~leakkit.SaveError`.
        """
        _checks.path(path, "path")
        if format is not None:
            _checks.choice(format.lower() if isinstance(format, str) else format, "format", ("csv", "parquet"))
        return self._recorder.save(path, format=format)

    @_checks.strict
    def stop(self) -> None:
        """Stop tracemalloc if this trace started it, and close the stream file."""
        self._checkpoints.stop()
        self._recorder.close()


def _rebuild(func: Callable, options: dict) -> Trace:
    """Unpickling a trace not reachable by name: the same function traced with the same options."""
    return Trace(func, **options)


@_checks.strict
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


# -- calibration: what the wrapper's own readings add to blocks_delta ----------------------------
_BIAS: list[int] = []


def _bias() -> int:
    """Measured once per process on the real wrapper, around a function that keeps nothing."""
    if _BIAS:
        return _BIAS[0]
    _BIAS.append(0)  # while calibrating
    probe = Trace(_noop, checkpoint_every=10**9, summaries=False)
    probe._checkpoints.next_call = 10**9  # no checkpoint: only the per-call readings
    for _ in range(21):
        probe()
    deltas = sorted(probe._recorder.column("blocks"))
    _BIAS[0] = int(deltas[len(deltas) // 2])
    return _BIAS[0]


def _noop() -> None:
    return None
