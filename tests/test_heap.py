"""heap_summary() against pympler on a controlled heap; summary_diff(); no cycles, no growth."""
from __future__ import annotations

import contextlib
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

import leakkit.probes.heap as heap_module
from leakkit import _compat
from leakkit._errors import InvalidArgumentError
from leakkit.probes.heap import heap_summary, summary_diff


@pytest.fixture(params=["c-scan", "python"])
def scan_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a whole-heap test through the C scan and through the pure-Python path."""
    if request.param == "c-scan":
        if heap_module._heapscan is None:
            pytest.skip("leakkit.probes._heapscan is not built")
    else:
        monkeypatch.setattr(heap_module, "_heapscan", None)
    return request.param


class Leaky:
    """The instances a test controls: nothing else in the process makes them."""

    def __init__(self, i: int) -> None:
        self.key = i + 1000
        self.name = f"leaky-{i}"


LEAKY = f"{Leaky.__module__}.Leaky"  # pympler's name for the type: test_heap.Leaky or tests.test_heap.Leaky


class Boom(Exception):
    """3.12+: an exception subclass has a managed weakref list, two pointers before the object."""


class WeakSlots:
    __slots__ = ("x", "__weakref__")  # 3.12+: a managed weakref list too

    def __init__(self) -> None:
        self.x = 1


class Session:
    """3.10: the buffer sits in an instance __dict__ the GC does not track (it holds only a bytearray)."""

    def __init__(self) -> None:
        self.buffer = bytearray(100)


class Sized:
    """A __sizeof__ written in Python: pympler runs it, leakkit counts the shallow size instead."""

    def __sizeof__(self) -> int:
        return 10_000


def _name(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


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
        [Boom(i) for i in range(300)],
        [WeakSlots() for _ in range(300)],
        [Session() for _ in range(200)],
        [Sized() for _ in range(50)],
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


def _pympler_objects() -> list[Any]:
    """muppy.get_objects(); on 3.10 also the untracked values of untracked instance __dict__s,
    which leakkit counts as the instance's referents (as 3.11+ visit them) and pympler misses."""
    objs = muppy.get_objects()
    if sys.version_info >= (3, 11):
        return objs
    seen = {id(o) for o in objs}
    extra = []
    for obj in objs:
        if isinstance(obj, type) or not type(obj).__dictoffset__:
            continue
        try:
            attrs = vars(obj)
        except TypeError:
            continue
        if type(attrs) is dict and not gc.is_tracked(attrs) and any(r is attrs for r in gc.get_referents(obj)):
            for value in gc.get_referents(attrs):
                if not gc.is_tracked(value) and id(value) not in seen:
                    seen.add(id(value))
                    extra.append(value)
    objs.extend(extra)
    del extra
    return objs


def _pympler() -> dict[str, tuple[int, int]]:
    rows = summary.summarize(_pympler_objects())
    blob = _frozen({name: (count, size) for name, count, size in rows})
    del rows
    return pickle.loads(blob)


@contextlib.contextmanager
def _no_freed_future_iterators() -> Any:
    """pympler hands every object, _asyncio's module too, to gc.get_referents: on 3.12.0-3.12.5
    (CPython gh-122695), with freed future iterators on that module's free list (any earlier
    test that awaited a future), the next collection never returns. Iterators held alive empty
    the free list (it keeps at most 255) while pympler runs; both summaries see them."""
    if not _compat.MODULE_REFERENTS_UNSAFE:
        yield
        return
    import asyncio

    loop = asyncio.new_event_loop()
    future = loop.create_future()
    held = [iter(future) for _ in range(300)]
    try:
        yield
    finally:
        del held
        future.cancel()
        loop.close()


@pytest.mark.usefixtures("scan_path")
def test_controlled_types_match_pympler_exactly_and_the_bulk_closely() -> None:
    heap = _controlled_heap()
    assert not gc.is_tracked(heap[4][0]) and not gc.is_tracked(heap[5][0])
    heap_summary([len, sys, heap])  # first-call work (imports, caches) before measuring
    with _no_freed_future_iterators():
        ours_blob = _frozen(_ours())
        theirs = _pympler()
    ours = pickle.loads(ours_blob)

    controlled = [
        LEAKY,
        _name(Boom),
        _name(WeakSlots),
        _name(Session),
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
    # Sizes are sys.getsizeof's, pre-header included (managed dict, managed weakref list).
    for kind, objects in ((Boom, heap[10]), (WeakSlots, heap[11]), (Session, heap[12])):
        assert ours[_name(kind)] == (len(objects), len(objects) * sys.getsizeof(objects[0])), kind
    assert ours["bytearray"][0] >= 2000 + 200  # the buffers held on Session instances too (3.10)
    # A Python __sizeof__ is never run: the shallow size, with the pre-header getsizeof adds.
    sized = heap[13][0]
    header = sys.getsizeof(sized) - 10_000
    assert ours[_name(Sized)] == (50, 50 * (object.__sizeof__(sized) + header))
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
