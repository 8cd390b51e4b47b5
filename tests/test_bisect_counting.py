"""bisect counts target calls by code object: functions a framework registered, decorated or
stored are counted wherever they are called from (Flask's views through its test client), and
counting costs little and leaves nothing installed."""
from __future__ import annotations

import sys
import textwrap
import threading
import time

import pytest

import leakkit

APP = textwrap.dedent('''\
    from flask import Flask, jsonify
    app = Flask(__name__)
    AUDIT = []

    def record(event):
        AUDIT.append({"event": event, "payload": "x" * 200})

    @app.route("/items/<int:n>")
    def get_item(n):
        record(f"get-{n}")
        return jsonify({"n": n})

    @app.route("/health")
    def health():
        return "ok"
''')


def test_flask_views_are_counted_through_the_test_client(tmp_path, monkeypatch) -> None:
    pytest.importorskip("flask")
    (tmp_path / "flask_service.py").write_text(APP)
    monkeypatch.syspath_prepend(str(tmp_path))
    import flask_service

    client = flask_service.app.test_client()
    n = iter(range(10**6))

    def workload() -> None:
        client.get(f"/items/{next(n)}")
        client.get("/health")

    report = leakkit.bisect(workload, targets=[flask_service], calls=30, progress=False)
    calls = dict(zip(report.suspects["function"], report.suspects["calls"], strict=True))
    ran = report.calls + 2  # the measured calls and the warm-up
    assert calls["flask_service.get_item"] == ran and calls["flask_service.health"] == ran, calls
    assert report.culprit == "flask_service.record"
    assert report.retention[0].startswith("flask_service.AUDIT[")
    assert sys.getprofile() is None
    if hasattr(sys, "monitoring"):
        assert all(sys.monitoring.get_tool(tool) != "leakkit" for tool in range(6))


REGISTRY: dict = {}


def _register(func):
    REGISTRY[func.__name__] = func
    return func


KEPT: list = []


@_register
def on_event(n: int) -> None:
    KEPT.append(str(n) * 20)


def _in_thread(n: int) -> None:
    worker = threading.Thread(target=REGISTRY["on_event"], args=(n,))
    worker.start()
    worker.join()


def test_registered_callables_are_counted_on_threads_started_during_the_run() -> None:
    here = sys.modules[__name__]
    n = iter(range(10**6))
    report = leakkit.bisect(lambda: _in_thread(next(n)), targets=[here.on_event, here._in_thread], calls=20,
                            progress=False)
    calls = dict(zip(report.suspects["function"], report.suspects["calls"], strict=True))
    assert calls[f"{__name__}.on_event"] == report.calls + 2, calls


def test_counting_costs_little_on_a_call_heavy_workload() -> None:
    """A workload making ~20 k Python calls per run, none of them a target: counting by code
    object must not slow it down more than 5x, the worst case (measured on 3.11: 3.3x, ~55 -> ~180
    ns a call: a profile function puts 3.11's interpreter on its slower path and pays a lookup per
    call; bisect's measured calls run under tracemalloc, which costs more). 3.12+ monitors only
    the targets' code: no cost here."""
    from leakkit.engine.counting import CodeCounter
    from leakkit.engine.wrappers import Stats

    def leaf(i: int) -> int:
        return i + 1

    def busy() -> int:
        return sum(leaf(i) for i in range(20_000))

    def target() -> None:
        pass

    def timed() -> float:
        best = float("inf")
        for _ in range(5):
            t0 = time.process_time()
            busy()
            best = min(best, time.process_time() - t0)
        return best

    plain = timed()
    counter = CodeCounter([target.__code__], [Stats("target")])
    if not counter.start():
        pytest.skip("no way to count by code object here")
    try:
        counted = timed()
        target()
    finally:
        counter.stop()
    assert counter.stats[0].calls == 1
    assert counted <= 5 * plain, (counted, plain)


def test_counting_is_removed_when_the_workload_raises() -> None:
    def boom() -> None:
        raise ValueError("no")

    with pytest.raises(Exception, match="raised on every one"):
        leakkit.bisect(boom, targets=[boom], calls=12, progress=False)
    assert sys.getprofile() is None
    if hasattr(threading, "getprofile"):
        assert threading.getprofile() is None


def test_mallocs_count_around_target_calls_stops_at_its_allowance(monkeypatch) -> None:
    # attrs' hypothesis tests make thousands of target calls a call; at ~2 ms a mallinfo2 reading
    # in a fragmented heap, bisect's first call ran for minutes before anything could measure it
    from leakkit.engine import wrappers

    if not wrappers._HAS_MALLOC:
        pytest.skip("no mallinfo2 here")
    made: list[int] = []

    def reading() -> int:
        made.append(1)
        return 1000 * len(made)

    monkeypatch.setattr(wrappers, "malloc_in_use", reading)
    try:
        wrappers.malloc_readings(True, allowance=5)
        stats = wrappers.Stats("mod.f")
        for _ in range(10):
            r0, m0, frame = wrappers.enter()
            wrappers.leave(stats, r0, m0, frame, False)
        assert len(made) == 5 and wrappers.malloc_readings_cut()
        # each call that read both ends saw its 1000; past the allowance, no change is charged
        assert stats.malloc_self == stats.malloc_incl == 2 * 1000 + 0
    finally:
        wrappers.malloc_readings(True)
    assert not wrappers.malloc_readings_cut()
