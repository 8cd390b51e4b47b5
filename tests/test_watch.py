"""watch/load against real subprocesses that leak, plateau and die."""
from __future__ import annotations

import os
import resource
import shlex
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from leakkit._errors import LeakkitError, NotARecordingError, ProcessAccessError
from leakkit.watching import COLUMNS, load, watch

MIB = 1024 * 1024
PY = sys.executable

LEAK = textwrap.dedent(
    """
    import time
    keep = []
    for _ in range({n}):
        keep.append(b"x" * (1 << 20))   # touched pages: RSS and USS grow
        time.sleep({pause})
    """
)
PLATEAU = "import time; keep = b'x' * (24 << 20); time.sleep(30)"


def byte_columns(frame):
    return frame[["rss", "uss", "pss", "swap"]]


def test_watching_a_leaking_command_records_growth_in_frame_and_csv(tmp_path):
    out = tmp_path / "leak.csv"
    frame = watch([PY, "-c", LEAK.format(n=40, pause=0.02)], interval=0.05, out=out, progress=False)
    assert list(frame.columns) == COLUMNS
    assert frame.attrs["ended_by"] == "exit" and frame.attrs["returncode"] == 0
    assert len(frame) >= 5
    assert frame["t"].is_monotonic_increasing
    # the leak is 40 MiB; the last sample may come a little before the end
    assert frame["uss"].iloc[-1] - frame["uss"].iloc[0] > 20 * MIB
    assert frame["rss"].iloc[-1] > frame["rss"].iloc[0] + 20 * MIB
    assert (frame["uss"] <= frame["rss"]).all() and (frame["pss"] <= frame["rss"]).all()
    again = load(out)
    assert len(again) == len(frame)
    assert (byte_columns(again).to_numpy() == byte_columns(frame).to_numpy()).all()
    assert again.attrs["pid"] == frame.attrs["pid"]


def test_a_plateau_command_given_as_a_string_stops_at_the_duration_and_is_terminated():
    frame = watch(f"{shlex.quote(PY)} -c {shlex.quote(PLATEAU)}", interval=0.05, duration=1.2, progress=False)
    assert frame.attrs["ended_by"] == "duration"
    assert frame.attrs["returncode"] == -signal.SIGTERM
    assert not psutil.pid_exists(frame.attrs["pid"]) or psutil.Process(frame.attrs["pid"]).status() == "zombie"
    late = frame[frame["t"] > frame["t"].iloc[-1] / 2]["uss"]
    assert late.max() - late.min() < 4 * MIB  # held steady once allocated
    assert late.min() > 20 * MIB


def test_watching_a_pid_ends_cleanly_when_the_process_exits():
    child = subprocess.Popen([PY, "-c", "import time; time.sleep(0.6)"])
    try:
        frame = watch(child.pid, interval=0.05, progress=False)
    finally:
        child.wait()
    assert frame.attrs["ended_by"] == "exit"
    assert len(frame) >= 3
    assert frame["rss"].notna().all()


def test_a_child_killed_by_its_memory_limit_leaves_its_timeline_in_frame_and_csv(tmp_path):
    limit = 200 * MIB

    def cap_address_space():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    child = subprocess.Popen(
        [PY, "-c", LEAK.format(n=10_000, pause=0.01)], preexec_fn=cap_address_space, stderr=subprocess.DEVNULL
    )
    out = tmp_path / "killed.csv"
    frame = watch(child, interval=0.05, out=out, progress=False)
    assert frame.attrs["ended_by"] == "exit"
    assert frame.attrs["returncode"] == 1  # MemoryError
    # up to its last interval, not cut short (the very last sample may catch the teardown)
    assert frame["rss"].iloc[-3:].max() > 0.6 * limit
    assert frame["rss"].idxmax() >= len(frame) - 3  # it grew until the end
    recorded = load(out)
    assert len(recorded) == len(frame)
    assert recorded["rss"].iloc[-1] == frame["rss"].iloc[-1]


def test_a_watcher_killed_mid_watch_leaves_every_flushed_sample(tmp_path):
    out = tmp_path / "watcher.csv"
    script = textwrap.dedent(
        f"""
        import sys
        from leakkit.watching import watch
        watch([sys.executable, "-c", "import time; time.sleep(30)"], interval=0.05, out={str(out)!r}, progress=False)
        """
    )
    watcher = subprocess.Popen([PY, "-c", script])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if out.exists() and out.read_text().count("\n") >= 8:
            break
        time.sleep(0.05)
    watcher.kill()
    watcher.wait()
    for kid in psutil.Process().children(recursive=True):  # the orphaned sleeper
        kid.kill()
    frame = load(out)
    assert len(frame) >= 6
    assert frame["rss"].gt(0).all()


def test_children_are_summed_and_counted():
    parent = (
        "import subprocess, sys, time\n"
        f"kid = subprocess.Popen([sys.executable, '-c', {PLATEAU!r}])\n"
        "time.sleep(30)\n"
    )
    frame = watch([PY, "-c", parent], interval=0.05, duration=1.5, children=True, progress=False)
    for kid in psutil.Process().children(recursive=True):
        kid.kill()
    assert frame["children"].max() == 1
    with_kid = frame[frame["children"] == 1]
    assert with_kid["uss"].max() > 20 * MIB  # the child's 24 MiB are in the total


def test_a_limit_ends_the_watch_and_is_kept_for_forecasts():
    frame = watch([PY, "-c", LEAK.format(n=200, pause=0.01)], interval=0.05, limit="60MiB", progress=False)
    assert frame.attrs["ended_by"] == "limit"
    assert frame.attrs["limit_bytes"] == 60 * MIB
    assert frame["rss"].iloc[-1] >= 60 * MIB
    assert frame.attrs["returncode"] is not None  # the started command did not outlive the watch


def test_a_pid_that_does_not_exist_is_a_process_access_error():
    gone = subprocess.Popen([PY, "-c", "pass"])
    gone.wait()
    with pytest.raises(ProcessAccessError, match=str(gone.pid)):
        watch(gone.pid, interval=0.05)


def test_a_pid_we_may_not_read_is_a_process_access_error(monkeypatch):
    def denied(self):
        raise psutil.AccessDenied(self.pid)

    monkeypatch.setattr(psutil.Process, "memory_full_info", denied)
    with pytest.raises(ProcessAccessError, match="access denied"):
        watch(os.getpid(), interval=0.05)


def test_a_command_that_fails_to_start_is_a_process_access_error():
    with pytest.raises(ProcessAccessError, match="no-such-program-leakkit"):
        watch(["no-such-program-leakkit", "--x"], interval=0.05)


@pytest.mark.parametrize("interval", [0, -1, float("nan"), "1s", True])
def test_an_interval_that_is_not_positive_is_rejected(interval):
    with pytest.raises(LeakkitError, match="interval"):
        watch(os.getpid(), interval=interval)


@pytest.mark.parametrize("limit", ["lots", "-5MiB", 0, "12 parsecs"])
def test_a_limit_that_is_not_a_size_is_rejected(limit):
    with pytest.raises(LeakkitError, match="limit"):
        watch(os.getpid(), interval=0.05, limit=limit)


def test_a_malformed_csv_names_the_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("t,unix_time_s,rss,uss,pss,swap,children\n0,1,2,3,4,5,\n0.1,1.1,oops,3,4,5,\n")
    with pytest.raises(NotARecordingError, match=r"bad.csv:3"):
        load(path)
    path.write_text("a,b\n1,2\n")
    with pytest.raises(NotARecordingError, match=r":1: expected a leakkit CSV header"):
        load(path)
    path.write_text("t,rss\n0,1\n0.1,2,3\n1,2\n")
    with pytest.raises(NotARecordingError, match=r":3: expected 2"):
        load(path)


def test_a_last_line_cut_short_by_a_crash_is_dropped(tmp_path):
    path = tmp_path / "cut.csv"
    for cut in ("1.0,3", "1.0", "1.0,3e"):
        path.write_text("t,rss\n0,100\n0.5,200\n" + cut)
        assert load(path)["rss"].tolist()[:2] == [100, 200]
        assert len(load(path)) == (3 if cut == "1.0,3" else 2)  # a complete-looking row is kept


def test_a_popen_passed_in_is_left_running_when_the_watch_ends():
    child = subprocess.Popen([PY, "-c", "import time; time.sleep(30)"])
    try:
        frame = watch(child, interval=0.05, duration=0.3, progress=False)
        assert frame.attrs["ended_by"] == "duration"
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()


def test_the_watch_csv_reads_right_with_plain_readers_and_its_metadata_is_beside_it(tmp_path):
    import json

    import pandas as pd

    out = tmp_path / "plain.csv"
    frame = watch([PY, "-c", "import time; time.sleep(0.4)"], interval=0.05, out=out, limit="1GiB", progress=False)
    plain = pd.read_csv(out)  # defaults: the first line is the header
    assert list(plain.columns) == COLUMNS
    assert len(plain) == len(frame) and (plain["rss"].to_numpy() == frame["rss"].to_numpy()).all()
    sidecar = json.loads((tmp_path / "plain.csv.json").read_text())
    assert sidecar["format"] == "leakkit watch" and sidecar["sessions"][0]["pid"] == frame.attrs["pid"]
    again = load(out)
    assert again.attrs["limit_bytes"] == 1 << 30 and again.attrs["interval"] == 0.05

    watch([PY, "-c", "import time; time.sleep(0.2)"], interval=0.05, out=out, progress=False)  # appends
    assert list(pd.read_csv(out).columns) == COLUMNS
    both = load(out)
    assert len(both.attrs["sessions"]) == 2 and both.attrs["limit_bytes"] is None  # the latest session's
    assert both["t"].is_monotonic_increasing


def test_recordings_with_a_comment_line_before_the_header_still_load(tmp_path):
    old = tmp_path / "old.csv"
    old.write_text('# leakkit watch {"pid": 7, "interval": 0.5, "limit_bytes": 1048576}\n'
                   + ",".join(COLUMNS) + "\n0.0,100.0,10,9,9,0,\n0.5,100.5,20,19,19,0,\n")
    frame = load(old)
    assert frame.attrs["pid"] == 7 and frame.attrs["limit_bytes"] == 1048576
    assert list(frame["rss"]) == [10, 20]
