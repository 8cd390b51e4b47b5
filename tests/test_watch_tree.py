"""Watching a process tree: rows per process, per-worker forecasts, series that mix processes refused,
the cgroup's limit, the live table (terminal, plain lines, notebook) and the command line on it.

Real processes where a process is the point (a parent that forks workers, one recycled); synthetic
frames where the arithmetic is.
"""
from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import leakkit
from leakkit.frontends.cli import main
from leakkit.probes.cgroup import memory_limit
from leakkit.recording.timeline import COLUMNS, load
from leakkit.reports.live import LiveTable, pick_mode

MIB = 1024 * 1024
PY = sys.executable

# a master that forks two workers; one grows 1 MiB a step, one stays; worker 1 is replaced once
FORKING = textwrap.dedent("""
    import os, sys, time
    def worker(grow):
        keep = []
        for _ in range(int(sys.argv[1])):
            if grow:
                keep.append(b"x" * (1 << 20))
            time.sleep(0.05)
        os._exit(0)
    kids = []
    for grow in (True, False):
        pid = os.fork()
        if pid == 0:
            worker(grow)
        kids.append(pid)
    os.waitpid(kids[0], 0)
    pid = os.fork()           # the grower is replaced by a new worker (recycled)
    if pid == 0:
        worker(False)
    os.waitpid(pid, 0)
    os.waitpid(kids[1], 0)
""")


def long_frame(series: dict[int, list[float]], dt: float = 1.0, master: int | None = None) -> pd.DataFrame:
    rows = []
    for pid, values in series.items():
        for i, value in enumerate(values):
            role = "master" if pid == master else "worker"
            rows.append((i * dt, 1e9 + i * dt, pid, 1, role, value, value - 10 * MIB, value - 5 * MIB, 0.0))
    return pd.DataFrame(rows, columns=COLUMNS).sort_values(["t", "pid"], kind="stable").reset_index(drop=True)


def test_a_master_and_its_workers_each_get_rows_and_a_recycled_worker_a_new_series(tmp_path):
    out = tmp_path / "tree.csv"
    frame = leakkit.watch([PY, "-c", FORKING, "40"], interval=0.05, out=out, live=False)
    master = frame.attrs["pid"]
    workers = sorted(set(frame["pid"]) - {master})
    assert len(workers) == 3, workers  # two, then the grower's replacement
    assert (frame.loc[frame["pid"] == master, "role"] == "master").all()
    assert (frame.loc[frame["pid"] != master, "role"] == "worker").all()
    assert not frame.duplicated(["pid", "t"]).any(), frame[frame.duplicated(["pid", "t"], keep=False)]
    assert all(rows["t"].is_monotonic_increasing for _, rows in frame.groupby("pid"))
    grower = frame.groupby("pid")["rss"].apply(lambda r: r.max() - r.min()).idxmax()
    assert frame.loc[frame["pid"] == grower, "rss"].max() - frame.loc[frame["pid"] == grower, "rss"].min() > 20 * MIB
    assert frame.loc[frame["pid"] == master, "rss"].max() < frame.loc[frame["pid"] == grower, "rss"].max()
    assert grower in frame.attrs["ended"]  # it exited: its series ends there
    again = load(out)
    assert list(again.columns) == COLUMNS and set(again["pid"]) == set(frame["pid"])
    with pytest.raises(leakkit.MixedProcessesError, match=r"rows of 4 processes"):
        leakkit.forecast(again)
    # an older script's forecast(watch(cmd)) is told how to read the process watched, as it used to
    with pytest.raises(leakkit.MixedProcessesError, match=rf"pid={master} for the process watched.*children=False"):
        leakkit.forecast(frame)
    assert leakkit.forecast(frame, pid=frame.attrs["pid"]).pid == master
    one = leakkit.forecast(again, pid=int(grower))
    assert one.pid == grower and one.column == "rss"
    report = leakkit.forecast_workers(again, "1GiB")
    assert set(report.table["pid"]) == set(frame["pid"]) and len(report.forecasts) >= 1
    assert report.table.set_index("pid").loc[grower, "ended"]
    text = str(report)
    assert str(master) in text and "(the master" in text


def test_with_children_false_only_the_process_is_watched():
    frame = leakkit.watch([PY, "-c", FORKING, "10"], interval=0.05, children=False, live=False)
    assert set(frame["pid"]) == {frame.attrs["pid"]}


def test_forecast_workers_gives_each_worker_its_own_verdict_and_the_master_apart():
    n = 120
    rising = [30 * MIB + i * 0.02 * MIB for i in range(n)]  # 1.2 MiB/min at 1 sample/s
    steady = [30 * MIB + (i % 3) * 4096 for i in range(n)]
    report = leakkit.forecast_workers(long_frame({10: steady, 11: rising, 12: steady}, master=10), "256MiB")
    table = report.table.set_index("pid")
    assert report.leaking == [11]
    assert table.loc[11, "rate_bytes_per_s"] * 60 == pytest.approx(1.2 * MIB, rel=0.05)
    assert math.isfinite(table.loc[11, "eta_s"]) and table.loc[12, "eta_s"] == math.inf
    assert table.loc[10, "role"] == "master" and not table.loc[10, "leak"]
    assert table.loc[11, "shared"] == pytest.approx(10 * MIB)
    lines = report.lines()
    assert lines[-1].startswith("     10  master") and "listed apart" in lines[-1]
    assert "<table" in report._repr_html_()
    assert leakkit.forecast(long_frame({11: rising, 12: steady}), pid=11).rate_bytes_per_s == \
        report.forecasts[11].rate_bytes_per_s  # the same number either way


def test_an_old_file_many_writers_appended_to_with_no_pid_column_is_refused(tmp_path):
    path = tmp_path / "monitor.csv"
    lines = ["t,unix_time_s,rss"]
    for i in range(60):  # three workers' monitors writing one path, each its own t (from its own start)
        for k, level in enumerate((30, 60, 90)):
            lines.append(f"{i + 1 - 0.3 * k:.1f},{1e9 + i + 0.01 * k},{level * MIB + i * 1000}")
    path.write_text("\n".join(lines) + "\n")
    (tmp_path / "monitor.csv.json").write_text(json.dumps(
        {"format": "leakkit monitor", "sessions": [{"pid": 101}, {"pid": 102}, {"pid": 103}]}))
    frame = load(path)
    assert "pids 101, 102, 103" in frame.attrs["mixed_processes"]
    with pytest.raises(leakkit.MixedProcessesError, match="several processes"):
        leakkit.forecast(frame)
    code = main(["report", str(path), "--no-plot"])
    assert code == 2  # an input error, never "sawtooth: rss 0 B/min"


def test_a_single_process_recording_made_before_the_pid_column_still_loads_and_forecasts(tmp_path):
    path = tmp_path / "old.csv"
    rows = "".join(f"{i * 0.5},{1e9 + i * 0.5},{(50 + i) * MIB},{(40 + i) * MIB},{(45 + i) * MIB},0,\n" for i in range(30))
    path.write_text("t,unix_time_s,rss,uss,pss,swap,children\n" + rows)
    frame = load(path)
    assert "mixed_processes" not in frame.attrs and "pid" not in frame.columns
    result = leakkit.forecast(frame, "1GiB")
    assert result.shape == "linear" and result.column == "rss"
    appended = tmp_path / "two.csv"  # two sessions one after the other: t restarts once, not mixed
    appended.write_text("t,unix_time_s,rss\n" + "".join(f"{i},{1e9 + i},{MIB}\n" for i in range(20))
                        + "".join(f"{i},{1e9 + 100 + i},{MIB}\n" for i in range(20)))
    assert "mixed_processes" not in load(appended).attrs


def test_rows_of_several_processes_at_the_same_times_with_no_pid_are_refused():
    t = np.repeat(np.arange(30.0), 2)
    frame = pd.DataFrame({"t": t, "rss": np.tile([30 * MIB, 90 * MIB], 30)})
    with pytest.raises(leakkit.MixedProcessesError, match="no pid column"):
        leakkit.forecast(frame)


def fake_cgroup(root, *, v2=None, v1=None, path="/system.slice/app.service"):
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/42").mkdir(parents=True)
    mounts, cgroups = [], []
    if v2 is not None:
        mounts.append("30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw")
        cgroups.append(f"0::{path}")
        directory = root / ("sys/fs/cgroup" + path)
        directory.mkdir(parents=True)
        (directory / "memory.max").write_text(v2 + "\n")
        (root / "sys/fs/cgroup/system.slice/memory.max").write_text("max\n")
    if v1 is not None:
        mounts.append("35 31 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory")
        cgroups.append(f"4:memory:{path}")
        directory = root / ("sys/fs/cgroup/memory" + path)
        directory.mkdir(parents=True)
        (directory / "memory.limit_in_bytes").write_text(v1 + "\n")
    (root / "proc/self/mountinfo").write_text("\n".join(mounts) + "\n")
    (root / "proc/42/cgroup").write_text("\n".join(cgroups) + "\n")


def test_the_cgroup_memory_limit_is_read_for_v2_and_v1_and_none_means_none(tmp_path):
    fake_cgroup(tmp_path / "a", v2=str(512 * MIB))
    found = memory_limit(42, root=str(tmp_path / "a"))
    assert found.limit_bytes == 512 * MIB and found.version == 2
    assert found.source == "cgroup v2 /sys/fs/cgroup/system.slice/app.service/memory.max"
    fake_cgroup(tmp_path / "b", v2="max")
    assert memory_limit(42, root=str(tmp_path / "b")) is None
    fake_cgroup(tmp_path / "c", v1=str(256 * MIB))
    assert memory_limit(42, root=str(tmp_path / "c")).source.endswith("memory.limit_in_bytes")
    fake_cgroup(tmp_path / "d", v1=str(9223372036854771712))  # v1's "unlimited"
    assert memory_limit(42, root=str(tmp_path / "d")) is None
    assert memory_limit(42, root=str(tmp_path / "nowhere")) is None


def test_the_cgroup_limit_is_the_default_limit_and_says_where_it_came_from():
    frame = long_frame({11: [30 * MIB + i * 0.02 * MIB for i in range(60)]})
    frame.attrs.update(cgroup_limit_bytes=512 * MIB, cgroup_limit_source="cgroup v2 /sys/fs/cgroup/x/memory.max")
    result = leakkit.forecast(frame)
    assert result.limit_bytes == 512 * MIB and "limit from cgroup v2 /sys/fs/cgroup/x/memory.max" in str(result)
    assert leakkit.forecast(frame, "1GiB").limit_source == "given"


def test_the_live_table_redraws_in_place_on_a_terminal_and_prints_lines_elsewhere():
    frame = long_frame({10: [30 * MIB] * 20, 11: [30 * MIB + i * 0.05 * MIB for i in range(20)]}, master=10)

    class Tree:
        ended: dict = {}
        created: dict = {}

        def alive(self):
            return [10, 11]

    for mode in ("tty", "lines"):
        stream = io.StringIO()
        table = LiveTable(mode, limit="256MiB", stream=stream, refresh=0.0, lines_every=0.0)
        for _, sample in frame.groupby("t", sort=True):
            table.update([tuple(r) for r in sample.itertuples(index=False)], Tree())
        table.draw()  # drawing is throttled to ~5% of the time: a fast feed draws once, so draw again
        table.draw()
        text = stream.getvalue()
        assert "     11  worker" in text and "(the master" in text
        assert ("\x1b[" in text) == (mode == "tty")  # cursor moves only on a terminal
    assert pick_mode(False, stream) is None and pick_mode(None, stream) is None
    assert pick_mode(True, stream) == "lines" and pick_mode("tty", stream) == "tty"
    with pytest.raises(leakkit.LeakkitError, match="live"):
        pick_mode("html", stream)


def test_the_live_table_in_a_notebook_is_one_display_updated_in_place(monkeypatch):
    shown = []

    class Handle:
        def update(self, body):
            shown.append(("update", body))

    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda body, display_id=None: shown.append(("display", body))
                        or Handle())
    frame = long_frame({10: [30 * MIB] * 12, 11: [30 * MIB + i * 0.05 * MIB for i in range(12)]}, master=10)
    table = LiveTable("notebook", stream=io.StringIO(), refresh=0.0)

    class Tree:
        ended: dict = {}
        created: dict = {}

        def alive(self):
            return [10, 11]

    for _, sample in frame.groupby("t", sort=True):
        table.update([tuple(r) for r in sample.itertuples(index=False)], Tree())
    table.draw()
    table.draw()
    kinds = [kind for kind, _ in shown]
    assert kinds[0] == "display" and set(kinds[1:]) == {"update"} and len(kinds) >= 3
    assert "<table" in shown[-1][1].data


def test_the_command_line_watch_of_a_master_prints_a_row_per_worker_as_plain_lines(tmp_path):
    out = tmp_path / "w.csv"
    done = subprocess.run([PY, "-m", "leakkit", "watch", "--interval", "0.05", "--out", str(out), "--limit", "1GiB",
                           "--", PY, "-c", FORKING, "40"], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    frame = load(out)
    workers = sorted(set(frame["pid"]) - {frame.attrs["pid"]})
    assert len(workers) == 3
    assert all(str(pid) in done.stdout for pid in workers), done.stdout
    assert "(the master" in done.stdout and "limit 1.0 GiB per process" in done.stdout
    assert "worker" in done.stderr  # the live table, as plain lines (stderr is not a terminal here)
    assert not os.path.exists(tmp_path / "w.png")


def test_memory_the_monitors_snapshots_added_is_left_out_of_the_forecast():
    t = np.arange(120.0)
    rss = 30 * MIB + np.where(t >= 60, 24 * MIB, 0)  # a snapshot's 24 MiB, marked as leakkit's own
    frame = pd.DataFrame({"t": t, "rss": rss, "snapshot_rss": np.where(t >= 60, 24 * MIB, 0)})
    assert leakkit.forecast(frame, "256MiB").shape == "flat"
    assert leakkit.forecast(frame.drop(columns="snapshot_rss"), "256MiB").shape != "flat"
