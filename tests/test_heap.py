"""heap_summary() against pympler on a controlled heap; summary_diff(); no cycles, no growth."""
from __future__ import annotations

import enum
import gc
import pickle
import sys
import types
import weakref
from typing import Any

import pandas as pd
import pytest
from pympler import muppy, summary

import leakkit.heap as heap_module
from leakkit._errors import InvalidArgumentError
from leakkit.heap import heap_summary, summary_diff


@pytest.fixture(params=["c-scan", "python"])
def scan_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a whole-heap test through the C scan and through the pure-Python path."""
    if request.param == "c-scan":
        if heap_module._heapscan is None:
            pytest.skip("leakkit._heapscan is not built")
    else:
        monkeypatch.setattr(heap_module, "_heapscan", None)
    return request.param


class Leaky:
    """The instances a test controls: nothing else in the process makes them."""

    def __init__(self, i: int) -> None:
        self.key = i + 1000
        self.name = f"leaky-{i}"


LEAKY = f"{Leaky.__module__}.Leaky"  # pympler's name for the type: test_heap.Leaky or tests.test_heap.Leaky


class Color(enum.Enum):  # a metaclass repr: pympler names the type "<enum 'Color'>"
    RED = 1


def _raise_and_keep() -> BaseException:
    def inner() -> None:
        raise KeyError("kept")

    try:
        inner()
    except KeyError as error:
        return error  # its traceback keeps two finished (GC-tracked) frames alive
    raise AssertionError("unreachable")


def _controlled_heap() -> list[Any]:
    """5000 Leaky plus objects the GC does not track, and every naming rule pympler has."""
    spaced = type("has space", (), {})  # str() does not match <class '\S+'>: kept whole
    twin_a = type("Twin", (), {"__module__": "twins"})
    twin_b = type("Twin", (), {"__module__": "twins"})  # same name, another type: one row
    dead = weakref.proxy(spaced())  # pympler skips dead proxies (isinstance raises)
    live_target = twin_a()
    heap = [
        [Leaky(i) for i in range(5000)],
        [f"untracked-str-{i}" for i in range(3000)],
        [bytearray(24) for _ in range(2000)],
        [i + 100_000 for i in range(2000)],
        [(i + 100_000, "atom") for i in range(1000)],
        [{"k": i + 100_000} for i in range(1000)],
        [types.FunctionType(_controlled_heap.__code__, {}, f"generated_{i % 7}") for i in range(50)],
        [types.ModuleType(f"fake_module_{i}") for i in range(3)],
        [spaced(), spaced(), twin_a(), twin_b(), Color.RED, dead, weakref.proxy(live_target), live_target],
        _raise_and_keep(),
    ]
    gc.collect()  # untracks the tuples and dicts of atoms
    return heap


def _frozen(rows: dict[str, tuple[int, int]]) -> bytes:
    # Held only by a local, a bytes object is invisible to both summaries (untracked and
    # referred to by no tracked object): the second summary does not see the first one.
    return pickle.dumps(rows)


def _ours() -> dict[str, tuple[int, int]]:
    table = heap_summary()
    blob = _frozen({t: (c, s) for t, c, s in zip(table["type"], table["count"].tolist(), table["size"].tolist(), strict=True)})
    del table
    return pickle.loads(blob)


def _pympler() -> dict[str, tuple[int, int]]:
    rows = summary.summarize(muppy.get_objects())
    blob = _frozen({name: (count, size) for name, count, size in rows})
    del rows
    return pickle.loads(blob)


@pytest.mark.usefixtures("scan_path")
def test_controlled_types_match_pympler_exactly_and_the_bulk_closely() -> None:
    heap = _controlled_heap()
    assert not gc.is_tracked(heap[4][0]) and not gc.is_tracked(heap[5][0])
    heap_summary([len, sys, heap])  # first-call work (imports, caches) before measuring
    ours_blob = _frozen(_ours())
    theirs = _pympler()
    ours = pickle.loads(ours_blob)

    controlled = [
        LEAKY,
        "bytearray",
        "has space",
        "twins.Twin",
        "<enum 'Color'>",
        "weakref.ProxyType",
        *(f"function (generated_{i})" for i in range(7)),
        *(f"module(fake_module_{i})" for i in range(3)),
    ]
    for name in controlled:
        assert ours.get(name) == theirs.get(name), name  # count and size
    assert ours[LEAKY] == (5000, 5000 * sys.getsizeof(heap[0][0]))
    assert ours["twins.Twin"][0] == 3  # twin_a(), twin_b() and the proxy target
    assert ours["weakref.ProxyType"][0] == 1  # the live proxy; the dead one is skipped
    # Finished frames (tracked, kept by the traceback) are left out by both.
    assert {n for n in ours if n.startswith("frame")} == {n for n in theirs if n.startswith("frame")}

    # The bulk (str, int, tuple, dict, ...): objects made between the two calls may differ, by a
    # few dozen in a full test session (pympler's own temporaries, earlier tests' garbage).
    for name in set(ours) | set(theirs):
        a, b = ours.get(name, (0, 0))[0], theirs.get(name, (0, 0))[0]
        assert abs(a - b) <= max(25, b // 50), (name, a, b)
    total_ours = sum(c for c, _ in ours.values())
    total_theirs = sum(c for c, _ in theirs.values())
    assert abs(total_ours - total_theirs) <= total_theirs // 1000
    for name in ("str", "int", "tuple", "dict"):
        assert ours[name][0] >= {"str": 3000, "int": 2000, "tuple": 1000, "dict": 1000}[name]
    del heap


def test_objects_argument_matches_pympler_summarize_row_for_row() -> None:
    def local_function() -> None:
        pass

    objects = [1, 1, "a", "bb", (), (1, 2), {}, [], [1], Leaky(0), Leaky(1), Color.RED, Color,
               local_function, len, sys, types, 2.5, b"x", bytearray(3), None, object()]
    table = heap_summary(objects)
    theirs = {name: (count, size) for name, count, size in summary.summarize(objects)}
    assert dict(zip(table["type"], zip(table["count"].tolist(), table["size"].tolist(), strict=True), strict=True)) == theirs
    assert ("function (local_function)", 1) in set(zip(table["type"], table["count"], strict=True))
    assert ("module(sys)", 1) in set(zip(table["type"], table["count"], strict=True))


@pytest.mark.usefixtures("scan_path")
def test_table_has_documented_columns_dtypes_and_order() -> None:
    table = heap_summary()
    assert list(table.columns) == ["type", "count", "size"]
    assert table["count"].dtype == "int64" and table["size"].dtype == "int64"
    assert all(isinstance(name, str) for name in table["type"])
    assert table["type"].is_unique
    assert table["size"].is_monotonic_decreasing
    assert (table["count"] > 0).all()


def test_empty_objects_give_an_empty_table() -> None:
    table = heap_summary([])
    assert list(table.columns) == ["type", "count", "size"] and len(table) == 0


@pytest.mark.usefixtures("scan_path")
def test_summary_diff_finds_the_new_instances() -> None:
    before = heap_summary()
    leaks = [Leaky(i) for i in range(5000)]
    after = heap_summary()
    diff = summary_diff(before, after)
    row = diff.set_index("type").loc[LEAKY]
    assert row["count_delta"] == 5000
    assert row["size_delta"] == 5000 * sys.getsizeof(leaks[0])
    assert row["count"] == after.set_index("type").loc[LEAKY, "count"]
    assert diff["size_delta"].abs().is_monotonic_decreasing
    del leaks


def test_summary_diff_sorts_by_absolute_size_change_and_drops_unchanged_types() -> None:
    before = pd.DataFrame({"type": ["str", "dict", "gone", "same", "moved"],
                           "count": [10, 5, 3, 7, 4], "size": [500, 1000, 300, 70, 400]})
    after = pd.DataFrame({"type": ["str", "dict", "new", "same", "moved"],
                          "count": [12, 2, 1, 7, 4], "size": [600, 400, 50, 70, 440]})
    diff = summary_diff(before, after)
    assert diff.to_dict("list") == {
        "type": ["dict", "gone", "str", "new", "moved"],
        "count": [2, 0, 12, 1, 4],
        "size": [400, 0, 600, 50, 440],
        "count_delta": [-3, -3, 2, 1, 0],
        "size_delta": [-600, -300, 100, 50, 40],
    }
    assert all(diff[c].dtype == "int64" for c in ["count", "size", "count_delta", "size_delta"])


def _garbage_left_by(function: Any) -> int:
    """Objects in reference cycles that `function` leaves behind (found by a collection after it)."""
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        function()
        return gc.collect()
    finally:
        if enabled:
            gc.enable()


def test_garbage_check_catches_a_function_that_keeps_its_frame_in_a_local() -> None:
    def leaves_a_cycle() -> None:
        objects = gc.get_objects()  # noqa: F841 - kept alive by the frame cycle
        frame = sys._getframe()  # noqa: F841 - the frame now refers to itself

    assert _garbage_left_by(leaves_a_cycle) > 0


@pytest.mark.parametrize(
    "call",
    [heap_summary, lambda: heap_summary([1, "a", {}, sys, len]),
     lambda: summary_diff(heap_summary([1, "a"]), heap_summary([1, "a", "b", {}]))],
    ids=["whole heap", "objects", "diff"],
)
def test_summaries_leave_no_reference_cycles(call: Any) -> None:
    assert _garbage_left_by(call) == 0


def test_gc_state_is_restored() -> None:
    gc.disable()
    try:
        heap_summary(collect=False)
        assert not gc.isenabled()
    finally:
        gc.enable()
    heap_summary(collect=False)
    assert gc.isenabled()


@pytest.mark.usefixtures("scan_path")
def test_repeated_calls_do_not_grow_the_heap() -> None:
    heap_summary()
    gc.collect()
    blocks = sys.getallocatedblocks()
    for _ in range(20):
        heap_summary(collect=False)  # the final collect below still finds any cycle we leave
    gc.collect()
    # Keeping any table, name or list per call would cost thousands of blocks per call.
    assert sys.getallocatedblocks() - blocks < 1000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"objects": "abc"}, "objects: expected a list or tuple"),
     ({"objects": {1, 2}}, "objects: expected a list or tuple"),
     ({"collect": 1}, "collect: expected True or False")],
)
def test_heap_summary_rejects_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        heap_summary(**kwargs)


def test_summary_diff_rejects_tables_without_the_summary_columns() -> None:
    with pytest.raises(InvalidArgumentError, match="before: expected a heap_summary"):
        summary_diff(pd.DataFrame({"type": ["a"]}), heap_summary([1]))
    with pytest.raises(InvalidArgumentError, match="after: expected a heap_summary"):
        summary_diff(heap_summary([1]), [("int", 1, 28)])  # type: ignore[arg-type]
