"""probes.stack.call_cut: the call runs with the frames beneath it out of sight (so tracing it costs
the same under a notebook, IPython or pytest as from a file), and everything else is unchanged."""
from __future__ import annotations

import sys
import time
import traceback
import tracemalloc

import pytest

from leakkit.probes import stack

pytestmark = pytest.mark.skipif(not stack.available(), reason="the C part (_stackcut) is not built")


def _depth() -> int:
    """Frames on the stack, this one included."""
    frame, n = sys._getframe(), 0
    while frame is not None:
        n += 1
        frame = frame.f_back
    return n


def _beneath(n: int, fn, *args):
    """``fn(*args)`` beneath ``n`` more frames of ours."""
    return _beneath(n - 1, fn, *args) if n else fn(*args)


def test_the_called_function_is_the_bottom_frame_and_the_caller_runs_on_intact() -> None:
    before = _depth()
    assert _beneath(30, stack.call_cut, _depth) == 1  # _depth itself, the one frame left
    assert _beneath(30, _depth) == before + 31
    assert _depth() == before
    assert stack.call_cut(lambda: stack.call_cut(_depth)) == 1  # nested
    assert stack.call_cut(divmod, 7, 2) == (3, 1)  # a C function, arguments passed on


def test_what_the_call_raises_reaches_the_caller_with_its_whole_traceback() -> None:
    def fails() -> None:
        raise KeyError("inside")

    with pytest.raises(KeyError) as info:
        _beneath(5, stack.call_cut, fails)
    names = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert names[0] == "test_what_the_call_raises_reaches_the_caller_with_its_whole_traceback"
    assert names.count("_beneath") == 6 and names[-1] == "fails"
    assert _depth() >= 2  # the thread's frames are back


def test_tracemalloc_records_only_the_frames_above_the_cut() -> None:
    class Box:
        __slots__ = ("value",)  # no free list, no managed dict: its block starts at the object

    def allocate() -> Box:
        return Box()

    tracemalloc.start(64)
    try:
        kept = _beneath(40, stack.call_cut, allocate)
        tb = tracemalloc.get_object_traceback(kept)
    finally:
        tracemalloc.stop()
    assert tb is not None and len(tb) == 1, tb.format()  # allocate's frame
    assert all(frame.filename == __file__ for frame in tb)


def test_a_traced_call_beneath_a_deep_stack_costs_about_what_it_costs_alone() -> None:
    """The cost it removes, measured: each allocation beneath 40 frames of a large function
    scans their line tables (several times the call's own cost); cut off, the same as alone."""
    namespace: dict = {}
    exec("def big(n, fn):\n" + "".join(f"    v{i} = {i}\n" for i in range(400))
         + "    return big(n - 1, fn) if n else fn()\n", namespace)
    big = namespace["big"]

    def work() -> float:
        t0 = time.thread_time()
        for _ in range(3000):
            row = {"a": [1, 2, 3]}  # noqa: F841 - allocations, traced
        return time.thread_time() - t0

    tracemalloc.start(64)
    try:
        deep = min(big(40, work) for _ in range(5))
        # alone and cut taken in turns, each the least of 7: on a shared machine another job's
        # burst (or tracemalloc's tables grown by the deep calls) then weighs on both alike
        alones, cuts = [], []
        for _ in range(7):
            alones.append(stack.call_cut(work))
            cuts.append(big(40, lambda: stack.call_cut(work)))
        alone, cut = min(alones), min(cuts)
    finally:
        tracemalloc.stop()
    assert deep > 3 * alone, (deep, alone)  # ground truth: what the frames beneath cost
    assert cut < 1.5 * alone, (cut, alone, deep)
