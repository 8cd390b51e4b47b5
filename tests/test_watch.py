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
from _watched import command, read_marks

import leakkit.probes.process
from leakkit._errors import LeakkitError, NotARecordingError, ProcessAccessError
from leakkit.recording.timeline import COLUMNS, load
from leakkit.recording.watch import watch

MIB = 1024 * 1024
PY = sys.executable

ABOVE_LIMIT = "import time; keep = [bytearray(1 << 20) for _ in range(80)]; time.sleep(120)"
SLEEPER = "import time; time.sleep(120)"
OLD_HEADER = "t,unix_time_s,rss,uss,pss,swap,children"  # recordings made before the pid column


def byte_columns(frame):
    return frame[["rss", "uss", "pss", "swap"]]


def test_watching_a_leaking_command_records_growth_in_frame_and_csv(tmp_path):
    out, marks = tmp_path / "leak.csv", tmp_path / "leak.marks"
    # the child grows by one MiB per sample it sees in the CSV, so growth and samples keep step
    # whatever the load; sizes are asserted on the samples taken after its last chunk
    frame = watch(command("grow", out, marks, 40, MIB), interval=0.05, out=out, progress=False)
    assert list(frame.columns) == COLUMNS
    assert frame.attrs["ended_by"] == "exit" and frame.attrs["returncode"] == 0
    assert len(frame) >= 40
    assert frame["t"].is_monotonic_increasing
    marks = read_marks(marks)
    after = frame.iloc[marks["after"]:marks["end"]]
    assert len(after) >= 1
    assert after["uss"].min() - frame["uss"].iloc[0] > 36 * MIB  # 40 MiB kept
    assert after["rss"].min() > frame["rss"].iloc[0] + 36 * MIB
    assert (frame["uss"] <= frame["rss"]).all() and (frame["pss"] <= frame["rss"]).all()
    again = load(out)
    assert len(again) == len(frame)
    assert (byte_columns(again).to_numpy() == byte_columns(frame).to_numpy()).all()
    assert again.attrs["pid"] == frame.attrs["pid"]


def test_a_command_that_exits_before_the_duration_leaves_a_full_bar_not_a_failed_one(capsys):
    import re

    frame = watch([PY, "-c", "import time; time.sleep(0.5)"], interval=0.1, duration=30, progress=True)
    assert frame.attrs["ended_by"] == "exit"
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    done, total = map(float, re.search(r"([0-9.]+)/([0-9.]+) s", last).groups())
    assert done == total < 30, last  # tqdm's notebook bar turns red when it closes short of its total


def test_a_command_given_as_a_string_stops_at_the_duration_and_is_terminated():
    frame = watch(f"{shlex.quote(PY)} -c {shlex.quote(SLEEPER)}", interval=0.05, duration=1.2, progress=False)
    assert frame.attrs["ended_by"] == "duration"
    assert frame.attrs["returncode"] == -signal.SIGTERM
    assert not psutil.pid_exists(frame.attrs["pid"]) or psutil.Process(frame.attrs["pid"]).status() == "zombie"
    assert frame["t"].iloc[-1] >= 1.2


def test_a_plateau_is_recorded_steady_once_allocated(tmp_path):
    out, marks = tmp_path / "plateau.csv", tmp_path / "plateau.marks"
    frame = watch(command("plateau", out, marks, 24 * MIB, 8), interval=0.05, out=out, progress=False)
    marks = read_marks(marks)
    late = frame.iloc[marks["after"]:marks["end"]]["uss"]  # the 8 samples taken after the allocation
    assert len(late) >= 8
    assert late.max() - late.min() < 4 * MIB  # held steady once allocated
    assert late.min() > 20 * MIB


def test_watching_a_pid_ends_cleanly_when_the_process_exits(tmp_path):
    out, marks = tmp_path / "pid.csv", tmp_path / "pid.marks"
    child = subprocess.Popen(command("grow", out, marks, 3, 4096))  # exits after 4 samples or more
    try:
        frame = watch(child.pid, interval=0.05, out=out, progress=False)
    finally:
        child.wait()
    assert child.returncode == 0
    assert frame.attrs["ended_by"] == "exit"
    assert len(frame) >= 3
    assert frame["rss"].notna().all()


def test_a_child_killed_by_its_memory_limit_leaves_its_timeline_in_frame_and_csv(tmp_path):
    limit = 200 * MIB
    out = tmp_path / "killed.csv"

    def cap_address_space():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    # 8 MiB more per sample until MemoryError: the last samples are taken near the limit, whatever the load
    child = subprocess.Popen(command("grow", out, tmp_path / "killed.marks", 0, 8 * MIB),
                             preexec_fn=cap_address_space, stderr=subprocess.DEVNULL)
    frame = watch(child, interval=0.05, out=out, progress=False)
    assert frame.attrs["ended_by"] == "exit"
    assert frame.attrs["returncode"] == 1  # MemoryError
    # up to its limit, not cut short: the samples the child saw taken after its MemoryError, while
    # it still held everything (later ones may catch its teardown, as long as a busy machine makes it)
    marks = read_marks(tmp_path / "killed.marks")
    held = frame["rss"].iloc[marks["after"]:marks["end"]]
    assert len(held) and held.min() > 0.6 * limit, (marks, frame["rss"].tolist())
    assert frame["rss"].iloc[:marks["after"]].max() <= held.max()  # it grew until then
    recorded = load(out)
    assert len(recorded) == len(frame)
    assert recorded["rss"].iloc[-1] == frame["rss"].iloc[-1]


def test_a_watcher_killed_mid_watch_leaves_every_flushed_sample(tmp_path):
    out = tmp_path / "watcher.csv"
    script = textwrap.dedent(
        f"""
        import sys
        from leakkit.recording.watch import watch
        watch([sys.executable, "-c", {SLEEPER!r}], interval=0.05, out={str(out)!r}, progress=False)
        """
    )
    watcher = subprocess.Popen([PY, "-c", script])
    try:
        # importing leakkit and pandas can take many seconds on a loaded machine: wait for the samples
        deadline = time.monotonic() + 120
        while not (out.exists() and out.read_text().count("\n") >= 8):
            assert time.monotonic() < deadline, "the watcher wrote no 6 samples in 120 s"
            time.sleep(0.02)
        sleepers = psutil.Process(watcher.pid).children(recursive=True)  # orphaned once the watcher dies
    finally:
        watcher.kill()
        watcher.wait()
    for kid in sleepers:
        kid.kill()
    frame = load(out)
    assert len(frame) >= 6
    assert frame["rss"].gt(0).all()


def test_each_descendant_gets_rows_of_its_own_never_a_sum(tmp_path):
    # Was: children=True summed the kid into the parent's row. No limit counts that sum (a memory
    # limit is per process, issue 19): now each process has its own rows, its pid and role.
    out, marks = tmp_path / "parent.csv", tmp_path / "parent.marks"
    # the parent starts a kid holding 24 MiB, waits for a sample taken after the kid allocated,
    # then ends the kid and exits: no race between the kid's start-up and the watch's end
    frame = watch(command("parent", out, marks, 24 * MIB), interval=0.05, out=out, progress=False)
    assert frame.attrs["ended_by"] == "exit" and frame.attrs["returncode"] == 0
    parent = frame.attrs["pid"]
    assert set(frame.loc[frame["pid"] == parent, "role"]) == {"master"}
    kids = frame[frame["pid"] != parent]
    assert kids["pid"].nunique() == 1 and set(kids["role"]) == {"worker"}
    assert (kids["ppid"] == parent).all()
    assert kids["uss"].max() > 20 * MIB  # the kid's 24 MiB, on its own rows
    assert frame.loc[frame["pid"] == parent, "uss"].max() < 20 * MIB  # and not in the parent's
    assert frame.groupby("t")["pid"].apply(lambda p: p.is_unique).all()  # one row per process per sample
    kid = int(kids["pid"].iloc[0])
    again = load(out)
    assert list(again.columns) == COLUMNS and set(again["pid"]) == {parent, kid}
    assert (again.loc[again["pid"] == kid, "role"] == "worker").all()


def test_a_limit_ends_the_watch_and_is_kept_for_forecasts():
    # the child goes past the limit and stays there until the watch ends it: the watch ends by
    # the limit however late its samples come
    frame = watch([PY, "-c", ABOVE_LIMIT], interval=0.05, limit="60MiB", progress=False)
    assert frame.attrs["ended_by"] == "limit"
    assert frame.attrs["limit_bytes"] == 60 * MIB
    assert frame["rss"].iloc[-1] >= 60 * MIB
    assert frame.attrs["returncode"] is not None  # the started command did not outlive the watch


def test_a_pid_that_does_not_exist_is_a_process_access_error():
    gone = subprocess.Popen([PY, "-c", "pass"])
    gone.wait()
    with pytest.raises(ProcessAccessError, match=str(gone.pid)):
        watch(gone.pid, interval=0.05)


@pytest.mark.parametrize("rollup", [True, False], ids=["smaps_rollup", "psutil"])
def test_a_pid_we_may_not_read_is_a_process_access_error(monkeypatch, rollup):
    def denied(self_or_pid=None):
        raise psutil.AccessDenied(os.getpid())

    monkeypatch.setattr(psutil.Process, "memory_full_info", denied)
    monkeypatch.setattr(leakkit.probes.process, "smaps_rollup", denied if rollup else lambda pid=None: None)
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


def test_a_sidecar_that_cannot_be_written_costs_the_metadata_not_the_samples(tmp_path):
    import json

    import pandas as pd

    out = tmp_path / "w.csv"
    (tmp_path / "w.csv.json").mkdir()  # the sidecar cannot be replaced: a directory is in its place
    # In a fresh interpreter: catch_warnings records every thread's warnings, and in a full run a
    # ResourceWarning from another test's object freed meanwhile was recorded here once under load.
    script = textwrap.dedent(f"""
        import json, os, sys, warnings
        from leakkit.recording.watch import watch
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            frame = watch([sys.executable, "-c", "import time; time.sleep(0.4)"], interval=0.05,
                          out={str(out)!r}, progress=False)
        held = [os.readlink(f"/proc/self/fd/{{fd}}") for fd in os.listdir("/proc/self/fd")
                if os.path.exists(f"/proc/self/fd/{{fd}}")]
        print(json.dumps({{"warnings": [[w.category.__name__, str(w.message)] for w in caught],
                          "out_error": frame.attrs["out_error"], "rows": len(frame),
                          "held": [p for p in held if p.startswith({str(tmp_path)!r})]}}))
    """)
    done = subprocess.run([PY, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert [category for category, _ in got["warnings"]] == ["RecordingStoppedWarning"], got["warnings"]
    assert "w.csv.json" in got["warnings"][0][1]
    assert got["out_error"] is None and got["rows"] > 2
    assert got["held"] == []  # no descriptor left open on the recording's files
    assert len(pd.read_csv(out)) == got["rows"]  # every sample reached the CSV
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".leakkit-")] == []  # no scratch left


def test_a_sidecar_s_values_are_checked_before_they_reach_attrs(tmp_path):
    import json

    out = tmp_path / "w.csv"
    out.write_text(",".join(COLUMNS) + "\n0.0,100.0,7,1,master,10,9,9,0\n0.5,100.5,7,1,master,20,19,19,0\n")
    planted = {"pid": "7", "limit_bytes": -5, "interval": float("inf"), "cmdline": "rm -rf /", "other": 1}
    (tmp_path / "w.csv.json").write_text(json.dumps({"format": "leakkit watch", "sessions": [planted, "x"]}))
    attrs = load(out).attrs
    assert not {"pid", "limit_bytes", "interval", "cmdline", "other"} & set(attrs), attrs
    assert attrs["sessions"] == [{}]


def test_recordings_with_a_comment_line_before_the_header_still_load(tmp_path):
    old = tmp_path / "old.csv"
    old.write_text('# leakkit watch {"pid": 7, "interval": 0.5, "limit_bytes": 1048576}\n'
                   + OLD_HEADER + "\n0.0,100.0,10,9,9,0,\n0.5,100.5,20,19,19,0,\n")
    frame = load(old)
    assert frame.attrs["pid"] == 7 and frame.attrs["limit_bytes"] == 1048576
    assert list(frame["rss"]) == [10, 20]


def test_a_watch_or_growth_sites_without_a_bar_leave_no_thread_behind():
    # a disabled tqdm still starts tqdm's monitor thread, which then wakes every 10 s for the life
    # of the process and shifts block counts under later short traces
    script = textwrap.dedent(
        """
        import sys, threading
        import leakkit
        leakkit.watch([sys.executable, "-c", "pass"], interval=0.05, duration=5, progress=False)
        leakkit.growth_sites(lambda: None, loops=3, calls_per_loop=1, progress=False)
        print(sorted(t.name for t in threading.enumerate()))
        """
    )
    done = subprocess.run([PY, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['MainThread']"
