"""Recorder and recordings: columns, thread safety, bounded memory, save/load, crash-safe streaming."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

import pandas as pd
import pytest

import leakkit
from leakkit import NotARecordingError
from leakkit.recording.recorder import Recorder
from leakkit.recording.tables import CALL_COLUMNS, load


def _add(rec: Recorder, n: int, thread: str = "MainThread", error: str | None = None) -> None:
    for i in range(n):
        rec.add_call("f", thread, i * 0.1, 0.01, i % 3, None, 4096, None, error, 0)


def test_calls_frame_has_the_documented_columns_and_nan_for_unread_probes():
    rec = Recorder()
    _add(rec, 3)
    rec.add_call("f", "MainThread", 1.0, 0.5, None, None, None, None, "ValueError", 1)
    calls = rec.calls
    assert list(calls.columns) == CALL_COLUMNS
    assert list(calls["call"]) == [0, 1, 2, 3]
    assert calls["bytes_delta"].isna().all() and calls["fds_delta"].isna().all()
    assert pd.isna(calls["blocks_delta"].iloc[3]) and list(calls["blocks_delta"].iloc[:3]) == [0, 1, 2]
    assert list(calls["error"]) == [None, None, None, "ValueError"]


def test_appends_from_many_threads_lose_nothing():
    rec = Recorder()
    threads = [threading.Thread(target=_add, args=(rec, 2000, f"t{i}")) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    calls = rec.calls
    assert len(calls) == 16_000
    assert calls.groupby("thread").size().to_dict() == {f"t{i}": 2000 for i in range(8)}


def test_memory_per_call_is_bounded():
    import sys as _sys

    rec = Recorder()
    _add(rec, 100_000)
    buffers = sum(_sys.getsizeof(a) for a in rec.own_objects() if hasattr(a, "buffer_info"))
    per_call = buffers / 100_000
    assert per_call < 60, per_call  # 47 bytes of columns plus array over-allocation; 1 M calls < 60 MB


def _traced_recording(tmp_path):
    traced = leakkit.trace(lambda n: [n] * 10, summaries=True, checkpoint_every=5, name="work")
    for i in range(12):
        traced(i)
    traced.checkpoint()
    return traced


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_save_and_load_round_trip(tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    traced = _traced_recording(tmp_path)
    path = traced.save(tmp_path / f"rec{suffix}")
    loaded = leakkit.load(path)
    pd.testing.assert_frame_equal(loaded.calls, traced.calls, check_dtype=False, check_exact=False, rtol=1e-6)
    pd.testing.assert_frame_equal(loaded.checkpoints, traced.checkpoints, check_dtype=False)
    pd.testing.assert_frame_equal(loaded.summaries, traced.summaries, check_dtype=False)
    assert loaded.calls["function"].eq("work").all()
    # a loaded recording gets the same verdict as the live one (no heap to look at: no holder check)
    from leakkit.reports.trace_report import trace_report

    assert trace_report(loaded, function="work").verdict == traced.report(checkpoint=False).verdict


def test_saved_and_streamed_recordings_read_right_with_plain_readers(tmp_path):
    from leakkit.recording.tables import FILE_COLUMNS

    traced = leakkit.trace(lambda n: [n] * 10, summaries=True, checkpoint_every=5, name="work",
                           stream=tmp_path / "stream.csv")
    for i in range(12):
        traced(i)
    traced.checkpoint()
    traced.stop()
    saved = traced.save(tmp_path / "rec.csv")
    for path in (saved, tmp_path / "stream.csv"):
        plain = pd.read_csv(path)  # defaults: the first line is the header
        assert list(plain.columns) == FILE_COLUMNS, path
        calls = plain[plain["table"] == "calls"]
        assert list(calls["call"]) == list(traced.calls["call"]) and calls["function"].eq("work").all()
        assert (plain["table"] == "checkpoints").sum() == len(traced.checkpoints)


def test_recordings_written_with_the_old_magic_line_still_load_and_take_appended_rows(tmp_path):
    from leakkit.recording.tables import MAGIC

    traced = _traced_recording(tmp_path)
    new = traced.save(tmp_path / "new.csv")
    old = tmp_path / "old.csv"
    old.write_text(MAGIC + "\n" + open(new, newline="").read(), newline="")
    loaded = load(old)
    pd.testing.assert_frame_equal(loaded.calls, load(new).calls)
    appended = leakkit.trace(lambda: None, summaries=False, stream=old, name="more")
    for _ in range(3):
        appended()
    appended.stop()
    calls = load(old).calls
    assert list(calls["call"]) == list(range(len(loaded.calls) + 3))
    assert open(old).readline().rstrip("\n") == MAGIC  # appended to as it was, not rewritten


def test_loading_a_file_that_is_not_a_recording_says_what_it_expected(tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(NotARecordingError, match="expected a leakkit recording.*received 'a,b'"):
        load(other)
    with pytest.raises(NotARecordingError, match="does not exist"):
        load(tmp_path / "missing.csv")
    bad_parquet = tmp_path / "bad.parquet"
    bad_parquet.write_bytes(b"not parquet")
    with pytest.raises(NotARecordingError):
        load(bad_parquet)


def test_an_unknown_save_format_is_refused(tmp_path):
    rec = Recorder()
    with pytest.raises(leakkit.InvalidArgumentError, match="format: expected 'csv' or 'parquet'"):
        rec.save(tmp_path / "x.bin", format="pickle")


def test_a_truncated_last_line_is_dropped(tmp_path):
    path = tmp_path / "stream.csv"
    rec = Recorder(path)
    _add(rec, 5)
    rec.close()
    with open(path, "a") as handle:
        handle.write("calls,5,f,Main")  # the writer died mid-line
    assert len(load(path).calls) == 5


def test_reset_keeps_what_the_stream_file_has(tmp_path):
    path = tmp_path / "stream.csv"
    rec = Recorder(path)
    _add(rec, 3)
    rec.reset()
    assert len(rec) == 0
    _add(rec, 2)
    rec.close()
    assert len(load(path).calls) == 5


_CRASHING = textwrap.dedent("""
    import os, signal, sys
    import leakkit

    how, path = sys.argv[1], sys.argv[2]
    kept = []

    @leakkit.trace(stream=path, summaries=False, checkpoint_every=10)
    def handle(n):
        kept.append([n])
        if n == 37:
            if how == "exit":
                os._exit(3)
            os.kill(os.getpid(), signal.SIGKILL)
        return n

    for i in range(100):
        handle(i)
""")


@pytest.mark.parametrize("how", ["exit", "kill"])
def test_a_crash_keeps_every_finished_call_in_the_stream(tmp_path, how):
    script = tmp_path / "crash.py"
    script.write_text(_CRASHING)
    path = tmp_path / "stream.csv"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(script), how, str(path)], env=env, capture_output=True, timeout=60)
    assert proc.returncode == (3 if how == "exit" else -signal.SIGKILL), proc.stderr.decode()[-2000:]
    rec = load(path)
    assert list(rec.calls["call"]) == list(range(37))  # calls 0..36 finished; 37 died inside
    assert rec.calls["blocks_delta"].notna().all()
    assert len(rec.checkpoints) >= 4  # baseline, 10, 20, 30
