"""The frames a traced call runs through, kept out of ``warnings`` and ``logging`` stack levels.

Why this file's odd name: a traced function that calls ``warnings.warn(..., stacklevel=2)`` means
its caller's line, but the wrapper is a frame between the two, and the warning pointed at leakkit's
own file. CPython's ``warnings`` (the C and the Python module, 3.10 to 3.13) and ``logging`` (3.11+)
skip, when counting ``stacklevel``, every frame whose file name contains both ``importlib`` and
``_bootstrap``: that is how the import system keeps its own frames invisible. The wrappers' code
lives in a file whose name does, so the warning lands where it lands untraced. Tracebacks, debuggers
and coverage still see a real file with its source.

Everything here runs on every traced call: kept to the call, the two readings around it
(:class:`~leakkit.tracing.calls.CallMeter`) and, for generators, the per-step accounting. The
generator drivers behave like the generator they drive: not started until the consumer starts them
(``inspect.getgeneratorstate`` is ``GEN_CREATED``, ``send(1)`` first raises TypeError and leaves it
usable), named after it, and forwarding ``throw`` (``GeneratorExit`` included: a generator that
catches it and yields gives its value back, as untraced) and ``close``.
"""
from __future__ import annotations

import time
import weakref
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

from ..probes import process as probes
from .calls import CallMeter

_perf = time.perf_counter
_blocks = probes.blocks


def traced_call(self: Any, *args: Any, **kwargs: Any) -> Any:
    """``Trace.__call__``: the readings around one call of the function (sync), or the traced
    coroutine, generator or async generator it makes."""
    kind = self._kind
    if kind == "async":
        coroutine = traced_coroutine(self._meter, self._func, args, kwargs)
        coroutine.__name__, coroutine.__qualname__ = self._names
        return coroutine
    if kind == "gen":
        return trace_generator(self._meter, self._func, args, kwargs)
    if kind == "asyncgen":
        return trace_async_generator(self._meter, self._func, args, kwargs)
    meter = self._meter
    state = meter.before()
    try:
        result = self._func(*args, **kwargs)
    except BaseException as error:
        meter.after(state, type(error).__name__)
        raise
    meter.after(state, None)
    return result


async def traced_coroutine(meter: CallMeter, func: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """The sync path's twin: the same readings, the call awaited in between."""
    state = meter.before()
    try:
        result = await func(*args, **kwargs)
    except BaseException as error:
        meter.after(state, type(error).__name__)
        raise
    meter.after(state, None)
    return result


# -- generators ------------------------------------------------------------------------------------
def trace_generator(meter: CallMeter, func: Callable[..., Generator], args: tuple, kwargs: dict) -> Generator:
    """Call generator function ``func`` and return a generator that behaves like the one it made.

    The row spans the generator's life and counts only its own steps. One that is never started
    (closed, thrown into or dropped first) runs no code, traced or not; its row is written when it
    is closed or collected.
    """
    span = meter.open_span()
    b0 = _blocks()
    gen = func(*args, **kwargs)
    state = [span, _blocks() - b0]  # emptied by the driver's first step, or by the unstarted generator's end
    driver = _drive(meter, state, gen)
    driver.__name__, driver.__qualname__ = gen.__name__, gen.__qualname__
    weakref.finalize(driver, _never_started, meter, state).atexit = False
    return driver


def _never_started(meter: CallMeter, state: list) -> None:
    if state:
        span, kept = state
        state.clear()
        meter.close_span(span, kept, 0.0, None)


def _drive(meter: CallMeter, state: list, gen: Generator) -> Generator:
    span, kept = state
    state.clear()
    value, thrown, error, spent = None, None, None, 0.0
    try:
        while True:
            t0 = _perf()
            b0 = _blocks()
            try:
                item = gen.send(value) if thrown is None else gen.throw(thrown)
            except StopIteration as stop:
                return stop.value
            except BaseException as exc:
                if not (isinstance(exc, GeneratorExit) and isinstance(thrown, GeneratorExit)):  # close(): no error
                    error = type(exc).__name__
                raise
            finally:
                kept += _blocks() - b0
                spent += _perf() - t0
            thrown = None
            try:
                value = yield item
            except BaseException as exc:  # throw(), and close()'s GeneratorExit: the generator decides
                thrown, value = exc, None
    finally:
        thrown = None
        meter.close_span(span, kept, spent, error)


def trace_async_generator(meter: CallMeter, func: Callable[..., AsyncGenerator], args: tuple,
                          kwargs: dict) -> AsyncGenerator:
    """Call async generator function ``func`` and return an async generator that behaves like the one it made."""
    agen = func(*args, **kwargs)
    driver = _drive_async(meter, agen)
    driver.__name__, driver.__qualname__ = agen.__name__, agen.__qualname__
    return driver


async def _drive_async(meter: CallMeter, agen: AsyncGenerator) -> AsyncGenerator:
    span = meter.open_span()  # at the first step: an async generator runs no code before it
    kept, spent, error = 0, 0.0, None
    value, thrown = None, None
    try:
        while True:
            t0 = _perf()
            b0 = _blocks()
            try:
                item = await (agen.asend(value) if thrown is None else agen.athrow(thrown))
            except StopAsyncIteration:
                return
            except BaseException as exc:
                if not (isinstance(exc, GeneratorExit) and isinstance(thrown, GeneratorExit)):
                    error = type(exc).__name__
                raise
            finally:
                kept += _blocks() - b0
                spent += _perf() - t0
            thrown = None
            try:
                value = yield item
            except BaseException as exc:  # athrow(), and aclose()'s GeneratorExit: the generator decides
                thrown, value = exc, None
    finally:
        thrown = None
        meter.close_span(span, kept, spent, error)
