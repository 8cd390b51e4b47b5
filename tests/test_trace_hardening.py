"""leakkit.trace stays out of the traced program's way (issue 12): descriptors, recursion, attributes,
generators, schedules, streams. Each test names the defect it guards."""
from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap
import warnings

import pytest

import leakkit
import leakkit.probes.process
from leakkit import InvalidArgumentError
from leakkit.recording.tables import MAGIC


# -- item 8: @trace over @staticmethod / @classmethod ---------------------------------------------
def test_a_traced_staticmethod_and_classmethod_work_through_the_class_and_an_instance():
    class Shop:
        @leakkit.trace(summaries=False)
        @staticmethod
        def price(amount: int) -> int:
            return amount * 2

        @leakkit.trace(summaries=False)
        @classmethod
        def make(cls, name: str) -> tuple:
            return cls.__name__, name

        @leakkit.trace(summaries=False)
        def total(self, amount: int) -> int:
            return amount + 1

    shop = Shop()
    assert Shop.price(2) == shop.price(2) == 4
    assert Shop.make("a") == shop.make("a") == ("Shop", "a")
    assert shop.total(1) == 2
    assert len(Shop.price.calls) == 2 and len(Shop.make.calls) == 2


# -- item 9: recursion depth -------------------------------------------------------------------------
def _deepest(func) -> int:
    low, high = 1, 4 * sys.getrecursionlimit()
    while low < high:
        mid = (low + high + 1) // 2
        try:
            func(mid)
            low = mid
        except RecursionError:
            high = mid - 1
    return low


def test_a_traced_recursion_reaches_the_depth_it_reaches_untraced_and_the_limit_comes_back():
    def deep(n: int) -> int:
        return 0 if n == 0 else 1 + deep(n - 1)

    limit = sys.getrecursionlimit()
    plain = _deepest(deep)
    deep = leakkit.trace(deep, summaries=False, checkpoint_every=10**9)  # noqa: F811 - the recursion goes through the trace
    traced = _deepest(deep)
    assert traced >= plain - 5, (plain, traced)  # was about a third (3.11) or a half (3.12+)
    assert traced <= plain + 5  # and no deeper: the user's limit still stops a runaway recursion
    assert sys.getrecursionlimit() == limit
    assert deep.calls["depth"].max() == 255  # (the recording caps depth at 255)


# -- item 11: a callable object's attributes ---------------------------------------------------------
class Handler:
    def __init__(self) -> None:
        self.report = "the handler's own report"
        self.calls = 0
        self.stop = None

    def __call__(self) -> int:
        self.calls += 1
        return self.calls


def test_a_callable_objects_attributes_do_not_hide_the_trace_api():
    handler = Handler()
    traced = leakkit.trace(handler, summaries=False)
    for _ in range(3):
        traced()
    assert len(traced.calls) == 3  # the DataFrame, not the handler's counter
    assert traced.report().calls == 3
    assert traced.__wrapped__.report == "the handler's own report"
    traced.stop()


# -- item 15, issue 24: generators thrown into (or closed) before their first next() ----------------
def test_a_generator_never_started_runs_no_code_as_untraced_and_gets_its_row_when_dropped():
    ran = []

    def numbers():
        ran.append(1)
        yield 1
        yield 2

    traced = leakkit.trace(numbers, summaries=False)
    gen = traced()
    assert inspect.isgenerator(gen) and inspect.getgeneratorstate(gen) == inspect.GEN_CREATED
    with pytest.raises(KeyError):
        gen.throw(KeyError("k"))
    assert inspect.getgeneratorstate(gen) == inspect.GEN_CLOSED
    del gen  # a generator that never started ran no code, traced or not: its row comes with its end
    traced().close()
    assert list(traced()) == [1, 2]
    assert ran == [1]
    assert list(traced.calls["error"]) == [None, None, None]


def test_a_generator_still_behaves_like_the_untraced_one():
    def echo():
        received = yield "ready"
        while True:
            received = yield f"got {received}"

    for make in (echo, leakkit.trace(echo, summaries=False)):
        gen = make()
        with pytest.raises(TypeError):
            gen.send("early")  # can't send non-None value to a just-started generator
    gen = leakkit.trace(echo, summaries=False)()
    assert next(gen) == "ready" and gen.send(3) == "got 3"
    gen.close()


# -- item 15: trace(traced, **options) and option types ----------------------------------------------
def test_tracing_a_traced_function_with_options_is_refused_not_silently_ignored():
    traced = leakkit.trace(lambda: None, summaries=False)
    assert leakkit.trace(traced) is traced
    with pytest.raises(InvalidArgumentError, match="func: expected a function not traced yet.*checkpoint_every"):
        leakkit.trace(traced, checkpoint_every=5)
    with pytest.raises(InvalidArgumentError):
        leakkit.trace(checkpoint_every=5)(traced)


# -- item 14: checkpoints follow wall time ---------------------------------------------------------
_FAST = textwrap.dedent("""
    import json, threading, time
    import leakkit

    kept = []

    def fast_leak():
        kept.append(object())

    def fast_clean():
        return None

    out = {}
    for func in (fast_leak, fast_clean):
        traced = leakkit.trace(func)
        for _ in range(64):
            traced()
        dense = traced._recorder.checkpoint_count()  # baseline, 1, 2, 4 ... 64: on call time alone, no more for ages
        # 2 s of calls at least, and until the wall-time checkpoints have come (a busy machine
        # makes fewer calls a second); the deadline only ends a broken run
        start = time.perf_counter()
        while time.perf_counter() < start + 90 and (
                time.perf_counter() < start + 2 or traced._recorder.checkpoint_count() < dense + 5):
            for _ in range(1000):
                traced()
        # the report first: building a DataFrame in between would be growth of this script's own
        verdict = traced.report().verdict
        out[func.__name__] = [dense, traced._recorder.checkpoint_count() - 1, verdict]

    traced = leakkit.trace(lambda: None, name="tiny")
    # until checkpoints have come (at least 4 past the baseline and the first), 4 s at least: on a
    # busy machine eight threads make fewer calls a second, so time alone is not the condition;
    # the deadline only ends a broken run
    start = time.perf_counter()
    give_up = start + 90

    def work():
        while time.perf_counter() < give_up and (
                time.perf_counter() < start + 4 or traced._recorder.checkpoint_count() < 6):
            traced()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    verdict = traced.report().verdict
    out["threads"] = [0, traced._recorder.checkpoint_count() - 1, verdict]
    print(json.dumps(out))
""")


def test_fast_functions_get_checkpoints_by_wall_time_and_a_right_verdict(tmp_path):
    script = tmp_path / "fast.py"
    script.write_text(_FAST)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    import json

    out = json.loads(done.stdout)
    for name in ("fast_leak", "fast_clean"):
        dense, total, _ = out[name]
        assert total >= dense + 4, out
    assert out["fast_leak"][2] == "leak", out
    assert out["fast_clean"][2] in ("clean", "plateau"), out  # not a leak (a few blocks of warm-up may show)
    # many threads of a clean function: checkpoints come, and the recorder's own ~47 B a call
    # (process memory too) is not read as a native leak
    assert out["threads"][1] >= 4, out  # 2 before (the baseline and one)
    assert out["threads"][2] in ("clean", "plateau", "inconclusive"), out


# -- items 1 and 6: stream checked when built, degraded on failure -----------------------------------
def test_bad_stream_paths_are_refused_when_the_trace_is_built(tmp_path):
    other = tmp_path / "notes.csv"
    other.write_text("name,amount\nrent,900\n")
    for path, message in ((tmp_path / "missing" / "s.csv", "does not exist"), (tmp_path, "a directory"),
                          (other, "a new file or a leakkit recording to append to")):
        with pytest.raises(InvalidArgumentError, match=message):
            leakkit.trace(lambda: None, stream=path)
    assert other.read_text() == "name,amount\nrent,900\n"  # untouched


def test_appending_to_a_recording_continues_its_call_ids(tmp_path):
    path = tmp_path / "s.csv"
    for _ in range(2):
        traced = leakkit.trace(lambda: None, summaries=False, stream=path, name="f")
        for _ in range(5):
            traced()
        traced.reset()  # a reset keeps numbering the file's calls too
        for _ in range(3):
            traced()
        traced.stop()
    calls = leakkit.load(path).calls
    assert list(calls["call"]) == list(range(16))


_TWO_WRITERS = textwrap.dedent("""
    import sys, time, warnings
    import leakkit
    warnings.simplefilter("ignore")
    traced = leakkit.trace(lambda: None, summaries=False, stream=sys.argv[1], name=sys.argv[2])
    for _ in range(200):
        traced()
    print(traced._recorder.stream_path)
    sys.stdout.flush()
    time.sleep(1.5)  # keep the file open (and locked) while the other one writes
""")


def test_two_processes_streaming_to_one_file_never_share_call_ids(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(_TWO_WRITERS)
    path = tmp_path / "shared.csv"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, str(script), str(path), name], stdout=subprocess.PIPE, text=True,
                              env=env) for name in ("a", "b")]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    files = sorted(set(outputs))
    assert len(files) == 2 and str(path) in files  # one got the file asked for, the other a sibling
    for file in files:
        calls = leakkit.load(file).calls
        assert calls["call"].is_unique and len(calls) == 200
        assert calls["function"].nunique() == 1


def test_a_stream_that_fails_mid_run_stops_with_one_warning_and_never_touches_the_calls(tmp_path, monkeypatch):
    path = tmp_path / "s.csv"
    traced = leakkit.trace(lambda x: x * 2, summaries=False, stream=path)
    assert traced(1) == 2
    stream = traced._recorder._stream
    handle = stream._handle

    class Full:
        def __getattr__(self, name):
            return getattr(handle, name)

        def write(self, text):
            raise OSError(28, "No space left on device")

        def flush(self):
            raise OSError(28, "No space left on device")

    stream._handle = Full()
    stream._writer = __import__("csv").DictWriter(stream._handle, stream._header, extrasaction="ignore")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert [traced(i) for i in range(50)] == [i * 2 for i in range(50)]
        traced.stop()  # does not raise
    assert len(caught) == 1 and "No space left on device" in str(caught[0].message)
    assert len(traced.calls) == 51 and "Errno 28" in traced._recorder.stream_error
    handle.close()


def test_a_fault_inside_a_checkpoint_never_reaches_the_traced_call(monkeypatch):
    traced = leakkit.trace(lambda x: x + 1, summaries=False)

    def broken(*args, **kwargs):
        raise MemoryError("probe failed")

    monkeypatch.setattr(leakkit.probes.process, "process_memory", broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert [traced(i) for i in range(20)] == list(range(1, 21))
    assert len(traced.calls) == 20
    assert isinstance(traced.last_error, MemoryError)
    assert sum("a checkpoint failed" in str(w.message) for w in caught) == 1


def test_warnings_as_errors_do_not_turn_leakkits_fault_into_the_callers_exception(tmp_path, monkeypatch):
    traced = leakkit.trace(lambda: "ok", summaries=False)
    monkeypatch.setattr(leakkit.probes.process, "process_memory", lambda: 1 / 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert traced() == "ok" and traced() == "ok"


def test_a_stream_file_swapped_for_something_else_stops_the_stream_not_the_program(tmp_path):
    path = tmp_path / "s.csv"
    traced = leakkit.trace(lambda: 1, summaries=False, stream=path)
    path.write_text("someone else's file\n")  # replaced before the first call opened it
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert traced() == 1 and traced() == 1
    assert path.read_text() == "someone else's file\n"
    assert "no longer a leakkit recording" in traced._recorder.stream_error
    assert MAGIC  # (the magic line the check looks for)
