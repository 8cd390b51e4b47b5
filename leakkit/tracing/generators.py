"""Traced generators and async generators: one row spans the generator's life.

Why apart from calls: a generator's code runs in steps, between which its consumer runs. The row
goes from the call to exhaustion, an exception or ``close()``, and sums only the time and the
blocks of the generator's own steps, not what the consumer did in between. The sync and the async
driver share that accounting (one ``try/finally`` per step) and the row's readings
(:meth:`~leakkit.tracing.calls.CallMeter.open_span` / ``close_span``); they differ only in
``send``/``throw`` against ``await asend``/``athrow``.
"""
from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Generator

from ..probes import process as probes
from .calls import CallMeter

_perf = time.perf_counter
_blocks = probes.blocks


def trace_generator(meter: CallMeter, func: Callable[..., Generator], args: tuple, kwargs: dict) -> Generator:
    """Call generator function ``func`` and return a generator that behaves like the one it made."""
    span = meter.open_span()
    b0 = _blocks()
    gen = func(*args, **kwargs)
    driver = _drive(meter, span, gen, _blocks() - b0)
    # run to its first line: a throw() or close() before the first next() then gets its row too
    # (a generator that never started runs no code of its own, not even a finally)
    driver.send(None)
    return driver


def _drive(meter: CallMeter, span: tuple, gen: Generator, kept: int) -> Generator:
    value, thrown, error, spent = None, None, None, 0.0
    try:
        try:
            value = yield  # primed by trace_generator: the consumer's first next(), send() or throw() lands here
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
                return stop.value
            except BaseException as exc:
                error = type(exc).__name__
                raise
            finally:
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
        meter.close_span(span, kept, spent, error)


def trace_async_generator(meter: CallMeter, func: Callable[..., AsyncGenerator], args: tuple,
                          kwargs: dict) -> AsyncGenerator:
    """Call async generator function ``func`` and return an async generator that behaves like the one it made."""
    return _drive_async(meter, func(*args, **kwargs))


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
                error = type(exc).__name__
                raise
            finally:
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
        meter.close_span(span, kept, spent, error)
