"""The in-process monitor: recording, growth-triggered, signalled and on-demand snapshots."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc

import pytest

from leakkit._errors import LeakkitError
from leakkit.recording.monitor import COLUMNS, monitor
from leakkit.recording.monitor_snapshot import growth_confirmed
from leakkit.recording.timeline import load

MIB = 1024 * 1024


def wait_for(predicate, timeout=120.0):
    """Poll until ``predicate()``; the timeout is only an upper bound for a broken test (a baseline
    type summary of this big test process took 15 s on a loaded 2-core machine)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_the_monitor_appends_flushed_counters_that_load_reads(tmp_path):
    path = tmp_path / "worker.csv"
    with monitor(path, interval=0.05, baseline=False) as mon:
        assert wait_for(lambda: len(load(path)) >= 5)
        assert mon.running
    assert not mon.running
    frame = load(path)
    assert list(frame.columns) == COLUMNS
    assert frame["t"].is_monotonic_increasing and (frame["rss"] > 0).all()
    assert (frame["allocated_blocks"] > 0).all() and (frame["open_fds"] > 0).all()
    assert frame["traced_bytes"].isna().all() == (not tracemalloc.is_tracing())
    assert frame["monitor_cpu_s"].is_monotonic_increasing
    count = len(frame)
    time.sleep(0.15)
    assert len(load(path)) == count  # stopped means stopped
    assert "stopped" in str(mon)


def test_the_monitor_csv_reads_right_with_plain_readers_and_its_metadata_is_beside_it(tmp_path):
    import json
    import os

    import pandas as pd

    path = tmp_path / "worker.csv"
    for _ in range(2):  # a second session appends rows, not a second header or a comment line
        with monitor(path, interval=0.05, baseline=False):
            assert wait_for(lambda: len(pd.read_csv(path)) >= 3)
    plain = pd.read_csv(path)  # defaults: the first line is the header
    assert list(plain.columns) == COLUMNS and plain["rss"].gt(0).all()
    assert len(plain) == len(load(path))
    sidecar = json.loads((tmp_path / "worker.csv.json").read_text())
    assert sidecar["format"] == "leakkit monitor" and [s["pid"] for s in sidecar["sessions"]] == [os.getpid()] * 2
    assert load(path).attrs["interval"] == 0.05


def test_growth_is_confirmed_in_a_leaking_worker_and_a_report_written(tmp_path):
    script = textwrap.dedent(
        f"""
        import time
        from leakkit.recording.monitor import monitor
        mon = monitor({str(tmp_path / 'leaky.csv')!r}, interval=0.03, window=12, min_growth="3MiB")
        class Session:
            def __init__(self):
                self.buffer = bytearray(b"x" * 200_000)
        SESSIONS = []

        def samples():
            with open({str(tmp_path / 'leaky.csv')!r}) as handle:
                return sum(1 for line in handle if line[:1].isdigit())

        # 1 MB more per sample the monitor has written: steady growth in every window, whatever
        # the load; the deadline only ends a broken run
        deadline = time.monotonic() + 120
        seen = 0
        while not mon.snapshots and time.monotonic() < deadline:
            if samples() > seen:
                seen = samples()
                SESSIONS.extend(Session() for _ in range(5))
            time.sleep(0.005)
        mon.stop()
        print(mon.snapshots[0] if mon.snapshots else "none")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report_path = result.stdout.strip()
    assert report_path.endswith("leaky.snapshot-001.txt")
    report = open(report_path).read()
    assert "growth confirmed" in report and "Session" in report and "bytearray" in report


def test_a_flat_worker_gets_no_growth_report(tmp_path):
    path = tmp_path / "flat.csv"
    with monitor(path, interval=0.02, window=8, min_growth="1MiB", baseline=False) as mon:
        assert wait_for(lambda: len(load(path)) >= 25)
    assert mon.snapshots == []


def test_without_leakkit_heap_the_report_falls_back_to_a_gc_type_count(monkeypatch):
    snapshot_module = sys.modules["leakkit.recording.monitor_snapshot"]

    monkeypatch.setitem(sys.modules, "leakkit.probes.heap_scan", None)  # import now fails
    kept = [frozenset([i]) for i in range(5_000)]
    summary = snapshot_module.type_summary()
    assert list(summary.columns) == ["type", "count", "size"]
    assert summary.set_index("type").loc["frozenset", "count"] >= 5_000
    del kept


def test_growth_rule_on_series():
    steady = [float(i) for i in range(40)]
    assert growth_confirmed(steady, min_growth=10)
    assert not growth_confirmed(steady, min_growth=100)
    assert not growth_confirmed([5.0] * 40, min_growth=0.5)
    jump = [0.0] * 20 + [50.0] * 20  # one jump: quarters' peaks do not all rise
    assert not growth_confirmed(jump, min_growth=10)
    saw = [(i % 5) * 3.0 + i for i in range(40)]  # rising sawtooth
    assert growth_confirmed(saw, min_growth=10)


def test_on_demand_snapshot_lists_growing_types_and_sites(tmp_path):
    tracemalloc.start(3)
    try:
        with monitor(tmp_path / "demand.csv", interval=0.05) as mon:
            assert wait_for(lambda: mon._last_types is not None)
            kept = [frozenset([i]) for i in range(20_000)]
            path = mon.snapshot()
        report = open(path).read()
    finally:
        tracemalloc.stop()
    assert path == str(tmp_path / "demand.snapshot-001.txt")
    assert "on demand" in report and "frozenset" in report
    assert "sites (tracemalloc" in report and "test_monitor.py" in report
    del kept


@pytest.mark.skipif(not hasattr(signal, "SIGUSR2"), reason="SIGUSR2 only")
def test_sigusr2_writes_a_snapshot_when_opted_in_and_the_handler_is_restored(tmp_path):
    before = signal.getsignal(signal.SIGUSR2)
    with monitor(tmp_path / "sig.csv", interval=0.05, signal=True, baseline=False) as mon:
        os.kill(os.getpid(), signal.SIGUSR2)
        assert wait_for(lambda: len(mon.snapshots) == 1)
    assert "SIGUSR2" in open(mon.snapshots[0]).read()
    assert signal.getsignal(signal.SIGUSR2) == before


def test_signal_from_a_thread_is_refused(tmp_path):
    errors = []

    def start():
        try:
            monitor(tmp_path / "thread.csv", signal=True)
        except LeakkitError as error:
            errors.append(error)

    thread = threading.Thread(target=start)
    thread.start()
    thread.join()
    assert errors and "main thread" in str(errors[0])


def test_the_overhead_is_measured_and_small(tmp_path):
    path = tmp_path / "cost.csv"
    with monitor(path, interval=0.01, baseline=False) as mon:
        assert wait_for(lambda: len(load(path)) >= 30)  # samples, not a time: a busy machine delays them
    assert 0 < mon.overhead < 0.5  # at 100 samples/s; the 1 s target is benchmarks/monitor.py


@pytest.mark.parametrize(("options", "match"), [({"interval": 0}, "interval"), ({"interval": -1.0}, "interval"),
                                                ({"window": 3}, "window"), ({"min_growth": "big"}, "min_growth"),
                                                ({"signal": "yes"}, "signal")])
def test_bad_options_are_leakkit_errors(tmp_path, options, match):
    with pytest.raises(LeakkitError, match=match):
        monitor(tmp_path / "bad.csv", **options)


def test_appending_to_a_file_that_is_not_a_monitor_csv_is_refused(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(LeakkitError, match="monitor CSV"):
        monitor(path)


def test_snapshot_names_what_keeps_the_growing_type_alive(tmp_path):
    import leakkit

    class Ticket:
        def __init__(self, n):
            self.n = n

    held = {}
    sys.modules[__name__].HELD_TICKETS = held
    try:
        with leakkit.monitor(tmp_path / "m.csv", interval=0.5) as mon:
            mon.snapshot("before")
            for i in range(2000):
                held[i] = Ticket(i)
            text = open(mon.snapshot("after"), encoding="utf-8").read()
    finally:
        del sys.modules[__name__].HELD_TICKETS
    section = text.split("what keeps the newest of them alive")[1]
    assert "Ticket" in section and "HELD_TICKETS[" in section
    assert "_last_types" not in section  # leakkit's own summaries are never the answer
