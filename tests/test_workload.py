"""leakkit.tracing.workload: how growth_sites and heap_vs_native check and call a user's workload."""
from __future__ import annotations

import asyncio
import traceback

import pytest

from leakkit import InvalidArgumentError, WorkloadError
from leakkit._checks import integer
from leakkit.tracing.workload import CALL_FRAMES, Caller, check_workload


def test_counts_must_be_ints_at_least_the_minimum():
    assert integer(3, "loops", minimum=3) == 3
    for bad, shown in ((2, "int 2"), (True, "bool True"), (3.0, "float 3.0"), ("3", "str '3'")):
        with pytest.raises(InvalidArgumentError, match="loops") as caught:
            integer(bad, "loops", minimum=3)
        assert "an int >= 3" in str(caught.value) and shown in str(caught.value)


def test_a_workload_must_be_callable_without_arguments_and_says_whether_it_is_async():
    async def handler() -> None:
        return None

    assert check_workload(lambda: 1) is False
    assert check_workload(handler) is True
    assert check_workload(lambda *args, **kwargs: 1) is False
    with pytest.raises(WorkloadError, match="needs request"):
        check_workload(lambda request: request)
    with pytest.raises(InvalidArgumentError, match="zero-argument"):
        check_workload(3)


def test_an_async_workload_runs_with_or_without_a_running_loop_and_its_error_comes_back():
    seen: list[int] = []

    async def handler() -> None:
        await asyncio.sleep(0)
        seen.append(len(seen))
        if len(seen) == 3:
            raise KeyError("third")

    caller = Caller(handler, is_async=True)
    try:
        caller()  # no loop running here: on leakkit's own loop, in this thread

        async def inside_a_running_loop() -> None:
            caller()  # as in Jupyter: on leakkit's loop, in a helper thread
            caller()

        with pytest.raises(KeyError, match="third"):
            asyncio.run(inside_a_running_loop())
    finally:
        caller.close()
    assert seen == [0, 1, 2] and caller.loop.is_closed()


def test_the_workload_is_called_through_the_call_frames():
    frames: list[tuple[str, int]] = []

    def workload() -> None:
        frames.extend((frame.filename, frame.lineno) for frame in traceback.extract_stack())

    Caller(workload, is_async=False)()
    assert frames[-2] in CALL_FRAMES  # the frame right above the workload's own

    async def handler() -> None:
        workload()

    frames.clear()
    caller = Caller(handler, is_async=True)
    caller()
    caller.close()
    assert any(frame in CALL_FRAMES for frame in frames)
