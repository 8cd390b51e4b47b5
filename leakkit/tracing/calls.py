"""Reading memory around one traced call and recording its row: the one mechanism every call path uses.

The sync and the async wrapper of :class:`~leakkit.tracing.trace.Trace` call :meth:`CallMeter.before`
right before the call and :meth:`CallMeter.after` right after it (the async one awaits in
between), so both give the same columns and the same readings for the same body. Generators use
:meth:`CallMeter.open_span` and :meth:`CallMeter.close_span` around their life
(:mod:`leakkit.tracing.frames_importlib_bootstrap`).

This is on every call of the user's code, so it is kept to two cheap probes: allocated blocks and
RSS (~3 us together in a bare interpreter), read on every ``read_every``-th call
(:class:`~leakkit.tracing.checkpoints.Checkpoints` sets it, so that they cost at most 5% of the
calls' time); the other calls get their time only (NaN deltas). What the readings themselves add
to a call's blocks (``bias``) is calibrated once and taken out. A checkpoint that is due is taken
before an outermost call. Nothing here raises into the traced code: leakkit's own fault is noted
(``last_error``, one warning) and the row is lost, never the call.
"""
from __future__ import annotations

import contextvars
import threading
import time

from ..probes import process as probes
from ..recording.recorder import Recorder
from .checkpoints import Checkpoints
from .recursion import drop, lift

_perf = time.perf_counter
_blocks = probes.blocks
_rss = probes.rss


class CallMeter:
    """The readings around each call of one traced function, and its rows in ``recorder``.

    ``before()`` returns the state of one call in progress (a tuple: the depth token, the depth,
    the readings, the start time); ``after(state, error)`` closes it. ``error`` is the exception's
    type name, or None.
    """

    def __init__(self, name: str, recorder: Recorder, checkpoints: Checkpoints, *, tracemalloc: bool,
                 fds: bool) -> None:
        self.name = name
        self.recorder = recorder
        self.checkpoints = checkpoints
        self.tracemalloc = tracemalloc
        self.fds = fds
        self.bias = 0  # blocks the wrapper's own readings add to a call's delta
        self.countdown = 0  # calls left until the next one whose memory is read
        self.last_error: BaseException | None = None  # leakkit's own last failure (the calls never see it)
        # Nesting depth per thread and per asyncio task (a ContextVar, not a threading.local: tasks
        # interleave in one thread, and thread-locals add objects that heap summaries see).
        self.depth = contextvars.ContextVar("leakkit_trace_depth", default=0)

    def before(self) -> tuple:
        """Right before a call: a due checkpoint (outermost calls only), the depth, then the readings."""
        depth = self.depth.get()
        if depth == 0:
            if len(self.recorder) >= self.checkpoints.next_call:
                try:
                    self.checkpoints.maybe()
                except Exception as fault:  # leakkit's own: tried again later, the call goes on
                    self.fault("a checkpoint", fault)
        else:  # recursion: give back the recursion-limit room the wrappers take
            lift(depth)
        token = self.depth.set(depth + 1)
        self.countdown -= 1  # a race between threads only shifts which call is read
        if self.countdown > 0:  # a light call: time only
            return token, depth, None, None, None, None, _perf()
        self.countdown = self.checkpoints.read_every
        fds0 = probes.fds() if self.fds else None
        r0 = _rss()
        m0 = probes.traced_bytes() if self.tracemalloc else None
        b0 = _blocks()
        return token, depth, fds0, r0, m0, b0, _perf()

    def after(self, state: tuple, error: str | None) -> None:
        """Right after the call (returned or raised): the readings in reverse order, then the row."""
        t1 = _perf()
        token, depth, fds0, r0, m0, b0, t0 = state
        b1 = None if b0 is None else _blocks()
        self.depth.reset(token)
        if depth:
            drop(depth)
        self._record(t0, t1, b0, b1, r0, m0, fds0, error, depth, None)

    def open_span(self) -> tuple:
        """Before a generator's life: a due checkpoint, then its depth and first readings."""
        depth = self.depth.get()
        if depth == 0 and len(self.recorder) >= self.checkpoints.next_call:
            try:
                self.checkpoints.maybe()
            except Exception as fault:
                self.fault("a checkpoint", fault)
        fds0 = probes.fds() if self.fds else None
        t_first = _perf()
        r_first = _rss()
        m_first = probes.traced_bytes() if self.tracemalloc else None
        return depth, fds0, t_first, r_first, m_first

    def close_span(self, span: tuple, kept: int, spent: float, error: str | None) -> None:
        """After a generator's life: one row, with the blocks ``kept`` and the seconds ``spent`` in its own steps."""
        depth, fds0, t_first, r_first, m_first = span
        self._record(t_first, _perf(), 0, kept, r_first, m_first, fds0, error, depth, spent)

    def _record(self, t0: float, t1: float, b0: int | None, b1: int | None, r0: int | None, m0: int | None,
                fds0: int | None, error: str | None, depth: int, duration: float | None) -> None:
        """Record one call's row; never raises (the call's result or exception is the caller's, untouched)."""
        try:
            if b0 is None:
                blocks = rss = traced = fds = None
            else:
                blocks = b1 - b0 - self.bias
                m1 = probes.traced_bytes() if m0 is not None else None
                r1 = _rss()
                traced = None if m1 is None or m0 is None else m1 - m0
                rss = None if r0 is None or r1 is None else r1 - r0
                fds = None if fds0 is None else (probes.fds() or 0) - fds0
            checkpoints = self.checkpoints
            if checkpoints.origin is None:
                checkpoints.origin = t0
            took = (t1 - t0) if duration is None else duration
            if depth == 0:
                checkpoints.busy += took
                if t1 >= checkpoints.wall_due:  # checkpoints follow wall time too: the next call takes one
                    checkpoints.next_call = 0
            self.recorder.add_call(self.name, threading.current_thread().name, t0 - checkpoints.origin, took,
                                   blocks, traced, rss, fds, error, depth)
        except Exception as fault:  # leakkit's own fault: the row is lost, the call is not touched
            self.fault("recording a call", fault, stacklevel=4)

    def fault(self, what: str, fault: BaseException, stacklevel: int = 3) -> None:
        """Note leakkit's own failure once (a warning; ``last_error``), never raising into the traced code.

        ``stacklevel`` points the warning at the traced call's caller (3: from ``before``, 4: from
        ``_record``; the wrapper's own frames are skipped, see
        :mod:`leakkit.tracing.frames_importlib_bootstrap`).
        """
        first = self.last_error is None
        self.last_error = fault
        if first:
            try:
                import warnings

                from .._errors import RecordingStoppedWarning

                warnings.warn(f"leakkit trace of {self.name}: {what} failed ({type(fault).__name__}: "
                              f"{fault}); the traced calls go on untouched", RecordingStoppedWarning, stacklevel=stacklevel)
            except Exception:  # warnings turned into errors: still not the traced code's business
                pass

    def reset(self) -> None:
        """The next call reads memory (a recording started again)."""
        self.countdown = 0

