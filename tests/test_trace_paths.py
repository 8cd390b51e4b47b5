"""leakkit.trace's call paths: sync and async share one mechanism; generators; the schedule's state."""
from __future__ import annotations

import asyncio
import math
import tracemalloc

import pytest

import leakkit

_SINK: list = []


@pytest.fixture(autouse=True)
def _empty_sink():
    yield
    _SINK.clear()


def _keep(n: int) -> int:
    _SINK.append([n])
    return n


def _drop(n: int) -> int:
    rows = [[n] * 10 for _ in range(20)]
    return len(rows) // 20 * n


def _twins(body):
    """The same body as a sync and as an async function (no await inside: the same work)."""
    def sync(n: int) -> int:
        return body(n)

    async def asynchronous(n: int) -> int:
        return body(n)

    return sync, asynchronous


def _run_both(body, calls: int):
    """Both twins traced (default options), each report taken where its calls ran (the async one
    inside the event loop: the loop's own set-up and teardown are not the calls')."""
    sync, asynchronous = _twins(body)
    traced_sync = leakkit.trace(sync, summaries=False)
    traced_async = leakkit.trace(asynchronous, summaries=False)
    assert [traced_sync(i) for i in range(calls)] == list(range(calls))
    report_sync = traced_sync.report()

    async def main() -> tuple:
        return [await traced_async(i) for i in range(calls)], traced_async.report()

    results, report_async = asyncio.run(main())
    assert results == list(range(calls))
    return (traced_sync, report_sync), (traced_async, report_async)


@pytest.mark.parametrize("body, expected", [(_keep, "leak"), (_drop, "clean")])
def test_a_sync_and_an_async_function_with_the_same_body_give_the_same_recording_and_verdict(body, expected):
    (traced_sync, report_sync), (traced_async, report_async) = _run_both(body, 200)
    calls_sync, calls_async = traced_sync.calls, traced_async.calls
    assert list(calls_sync.columns) == list(calls_async.columns)
    assert list(traced_sync.checkpoints.columns) == list(traced_async.checkpoints.columns)
    assert len(calls_sync) == len(calls_async) == 200
    # the same readings around the call: what the body keeps per call comes out the same
    assert calls_sync["blocks_delta"].median() == calls_async["blocks_delta"].median()
    assert report_sync.verdict == report_async.verdict == expected, (str(report_sync), str(report_async))


def test_async_calls_raise_and_nest_like_sync_ones():
    @leakkit.trace(summaries=False)
    async def countdown(n: int) -> int:
        if n < 0:
            raise ValueError(n)
        return 0 if n == 0 else 1 + await countdown(n - 1)

    assert asyncio.run(countdown(2)) == 2
    with pytest.raises(ValueError):
        asyncio.run(countdown(-1))
    calls = countdown.calls
    # rows as calls finish, the innermost first, as for a sync recursion
    assert list(calls["depth"]) == [2, 1, 0, 0]
    assert list(calls["error"].fillna("")) == ["", "", "", "ValueError"]


def test_a_program_that_only_iterates_a_traced_async_generator_gets_checkpoints_and_a_verdict():
    @leakkit.trace(summaries=False)
    async def rows(n: int):
        for i in range(n):
            yield i
        _SINK.append([n])  # one object kept per generator run

    async def main() -> int:
        total = 0
        for _ in range(80):
            total += sum([i async for i in rows(3)])
        return total

    assert asyncio.run(main()) == 80 * 3
    assert len(rows.calls) == 80
    assert len(rows.checkpoints) >= 5  # the baseline and the dense schedule, not only the one report() takes
    assert rows.report().verdict == "leak"


def test_a_tracemalloc_started_by_the_trace_is_stopped_after_a_reset_too():
    assert not tracemalloc.is_tracing()
    traced = leakkit.trace(_drop, summaries=False, tracemalloc=True)
    traced(1)
    assert tracemalloc.is_tracing()
    traced.reset()
    traced(2)
    traced.stop()
    assert not tracemalloc.is_tracing()
    assert list(traced.calls["call"]) == [0] and not math.isnan(traced.calls["bytes_delta"].iloc[0])


def test_last_error_is_leakkits_own_fault_and_can_be_cleared(monkeypatch):
    import leakkit.probes.process

    traced = leakkit.trace(lambda x: x, summaries=False)
    assert traced.last_error is None
    monkeypatch.setattr(leakkit.probes.process, "process_memory", lambda: 1 / 0)
    with pytest.warns(leakkit.RecordingStoppedWarning, match="a checkpoint failed"):
        assert traced(3) == 3
    assert isinstance(traced.last_error, ZeroDivisionError)
    traced.last_error = None
    assert traced.last_error is None
