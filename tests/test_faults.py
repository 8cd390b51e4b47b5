"""Real faults (issue 12): a full disk (a small tmpfs, and a file-size limit), a writer killed
mid-line, a planted symlink, a read-only directory. leakkit's own failure never changes what the
traced or watched program does, loses no finished row, and writes nowhere it should not."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
import warnings

import pytest

import leakkit
from leakkit import InvalidArgumentError
from leakkit.frontends.cli import main

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux faults (tmpfs, RLIMIT_FSIZE, /proc)")
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def _mount(where, options: str) -> bool:
    where.mkdir(exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs (needs root and mount; skipped where the sandbox forbids it)."""
    disk = tmp_path / "disk"
    if not _mount(disk, "size=256k,mode=0777"):
        pytest.skip("cannot mount a tmpfs here (the RLIMIT_FSIZE tests cover a full disk)")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _fill(disk, leave: int = 0) -> None:
    """Fill the filesystem, then free ``leave`` bytes."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
                handle.flush()
        except OSError:
            pass
    if leave:
        os.truncate(filler, max(0, os.path.getsize(filler) - leave))


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- a full disk: tmpfs -------------------------------------------------------------------------
def test_a_trace_streaming_onto_a_disk_that_fills_keeps_every_result_and_every_row(small_disk):
    path = small_disk / "stream.csv"
    _fill(small_disk, leave=16 * 1024)
    kept = []

    def handle(n):
        kept.append(n)
        return n * 3

    traced = leakkit.trace(handle, stream=path, summaries=False)  # (type summaries alone would fill 16 KiB)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = [traced(i) for i in range(2000)]
        traced.stop()  # does not raise
        traced.stop()
    assert results == [i * 3 for i in range(2000)] and len(kept) == 2000
    assert len(traced.calls) == 2000  # every row, in memory
    assert traced._recorder.stream_error and "No space left on device" in traced._recorder.stream_error
    assert sum("stream" in str(w.message) for w in caught) == 1
    on_disk = leakkit.load(path).calls  # what reached the disk is a well-formed recording
    assert 0 < len(on_disk) < 2000 and list(on_disk["call"]) == list(range(len(on_disk)))
    assert traced.report().calls == 2000


def test_a_trace_on_an_already_full_disk_with_summaries_still_runs(small_disk):
    path = small_disk / "stream.csv"
    _fill(small_disk)
    traced = leakkit.trace(lambda: "ok", stream=path)  # the baseline summary is the first thing written
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert [traced() for _ in range(100)] == ["ok"] * 100
        traced.stop()
    assert len(traced.calls) == 100


def test_the_monitor_outlives_a_full_disk_and_stops_cleanly(small_disk):
    path = small_disk / "monitor.csv"
    _fill(small_disk, leave=4096)
    before = _fds()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mon = leakkit.monitor(path, interval=0.01, baseline=False)
        deadline = time.monotonic() + 30
        while mon.write_error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        assert mon.running  # the thread did not die with the disk
        assert mon.write_error and "No space left on device" in mon.write_error
        assert isinstance(mon.last_error, OSError)
        mon.stop()  # does not raise
    assert _fds() == before  # no descriptor left open
    assert sum("monitor" in str(w.message) for w in caught) == 1
    frame = leakkit.load_watch(path)
    assert len(frame) > 0  # every line that reached the disk reads back


def test_a_monitor_started_on_a_full_disk_runs_without_its_file_and_leaks_no_descriptor(small_disk):
    _fill(small_disk)
    before = _fds()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with leakkit.monitor(small_disk / "m.csv", interval=0.02, baseline=False) as mon:
            time.sleep(0.1)
            assert mon.running and mon.write_error
    assert _fds() == before


def test_a_watch_onto_a_full_disk_keeps_every_sample(small_disk):
    path = small_disk / "watch.csv"
    # room for a few dozen rows only: a loaded machine takes fewer samples in the child's life
    _fill(small_disk, leave=4096)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = leakkit.watch([sys.executable, "-c", "import time; time.sleep(3)"], interval=0.01, out=path)
    assert frame.attrs["ended_by"] == "exit" and frame.attrs["returncode"] == 0
    assert frame.attrs["out_error"] and "No space left" in frame.attrs["out_error"]
    assert len(frame) > len(leakkit.load_watch(path)) > 0


# -- a full disk: a file-size limit (EFBIG), in a child ------------------------------------------
_FSIZE = textwrap.dedent("""
    import resource, signal, sys, time, warnings
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed, as a server would set it
    import leakkit
    resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))
    warnings.simplefilter("ignore")
    traced = leakkit.trace(lambda n: n + 1, stream=sys.argv[1])
    start = time.perf_counter()
    results = [traced(i) for i in range(20000)]
    traced.stop()
    assert results == [i + 1 for i in range(20000)]
    print(len(traced.calls), round(time.perf_counter() - start, 2), traced._recorder.stream_error)
""")


def test_a_file_size_limit_neither_breaks_nor_slows_the_traced_function(tmp_path):
    script = tmp_path / "fsize.py"
    script.write_text(_FSIZE)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "s.csv")], capture_output=True, text=True,
                          env=ENV, timeout=120)  # before: 3000 calls did not finish in 120 s
    assert done.returncode == 0, done.stderr[-2000:]
    calls, seconds, error = done.stdout.split(" ", 2)
    assert int(calls) == 20000 and "File too large" in error
    assert float(seconds) < 60
    assert os.path.getsize(tmp_path / "s.csv") <= 8192


# -- a writer killed mid-line -----------------------------------------------------------------------
_SLOW_WRITER = textwrap.dedent("""
    import sys, time
    import leakkit
    traced = leakkit.trace(lambda: None, summaries=False, stream=sys.argv[1], name="w")
    while True:
        traced()
        time.sleep(0.001)
""")


def test_appending_after_a_writer_killed_mid_line_cuts_the_piece_and_goes_on_numbering(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(_SLOW_WRITER)
    path = tmp_path / "s.csv"
    child = subprocess.Popen([sys.executable, str(script), str(path)], env=ENV)
    deadline = time.monotonic() + 60
    # 30 finished calls (checkpoint rows and the header are lines too: counting lines gave 24 calls)
    while (not path.exists() or path.read_text().count("\ncalls,") < 30) and time.monotonic() < deadline:
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    with open(path, "a") as handle:
        handle.write("calls,77777777,w,Main")  # what a writer killed mid-line leaves
    finished = len(leakkit.load(path).calls)
    assert finished >= 25
    traced = leakkit.trace(lambda: None, summaries=False, stream=path, name="w")
    for _ in range(5):
        traced()
    traced.stop()
    calls = leakkit.load(path).calls
    assert list(calls["call"]) == list(range(finished + 5))
    assert "77777777" not in path.read_text()


_MONITORED = textwrap.dedent("""
    import sys, time
    import leakkit
    leakkit.monitor(sys.argv[1], interval=0.005, baseline=False)
    keep = []
    while True:
        keep.append(bytearray(1000))
        time.sleep(0.001)
""")


def test_a_monitor_killed_mid_run_leaves_a_readable_recording(tmp_path):
    script = tmp_path / "monitored.py"
    script.write_text(_MONITORED)
    path = tmp_path / "m.csv"
    child = subprocess.Popen([sys.executable, str(script), str(path)], env=ENV)
    deadline = time.monotonic() + 60
    while (not path.exists() or len(path.read_text().splitlines()) < 40) and time.monotonic() < deadline:
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    with open(path, "a") as handle:
        handle.write("12.3,17000")  # cut mid-line
    frame = leakkit.load_watch(path)
    assert len(frame) >= 38 and frame["rss"].gt(0).all()


# -- a planted symlink -----------------------------------------------------------------------------
def test_a_symlink_planted_where_the_monitor_writes_a_snapshot_is_never_followed(tmp_path):
    victim = tmp_path / "victim.conf"
    victim.write_text("precious\n")
    os.symlink(victim, tmp_path / "m.snapshot-001.txt")
    with leakkit.monitor(tmp_path / "m.csv", interval=0.05, baseline=False) as mon:
        path = mon.snapshot()
    assert victim.read_text() == "precious\n"
    assert path == str(tmp_path / "m.snapshot-002.txt")  # the taken name is skipped
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # it may name the user's data
    assert "leakkit monitor snapshot" in open(path).read()


def test_a_symlink_planted_as_the_reports_default_plot_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    traced = leakkit.trace(lambda: None, summaries=False)
    for _ in range(20):
        traced()
    traced.save("rec.csv")
    victim = tmp_path / "victim.conf"
    victim.write_text("precious\n")
    os.symlink(victim, tmp_path / "rec.png")
    assert main(["report", "rec.csv"]) == 2
    assert "a symbolic link (not followed)" in capsys.readouterr().err
    assert victim.read_text() == "precious\n"
    os.unlink(tmp_path / "rec.png")
    os.link(victim, tmp_path / "rec.png")  # a hard link to someone else's file: not overwritten either
    assert main(["report", "rec.csv"]) == 2
    assert victim.read_text() == "precious\n"


# -- a read-only directory ---------------------------------------------------------------------------
@pytest.fixture
def read_only_dir(tmp_path):
    """A read-only tmpfs (root ignores permission bits, not a read-only mount)."""
    where = tmp_path / "ro"
    if not _mount(where, "size=64k,ro"):
        pytest.skip("cannot mount a read-only tmpfs here (see the unprivileged child test)")
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_a_read_only_directory_is_refused_before_anything_runs(read_only_dir, tmp_path):
    with pytest.raises(InvalidArgumentError, match="not writable"):
        leakkit.trace(lambda: None, stream=read_only_dir / "s.csv")
    with pytest.raises(InvalidArgumentError, match="not writable"):
        leakkit.monitor(read_only_dir / "m.csv")
    marker = tmp_path / "started"
    with pytest.raises(InvalidArgumentError, match="not writable"):
        leakkit.watch([sys.executable, "-c", f"open({str(marker)!r}, 'w')"], out=read_only_dir / "w.csv")
    time.sleep(0.5)
    assert not marker.exists()  # the command never started: no orphan


_UNPRIVILEGED = textwrap.dedent("""
    import os, sys
    import leakkit, leakkit.tracing.trace, leakkit.recording.stream, leakkit.recording.files  # as root: nobody cannot read root's Python
    os.setgid(65534)
    os.setuid(65534)  # nobody: permission bits apply again
    try:
        leakkit.trace(lambda: None, stream=os.path.join(sys.argv[1], "s.csv"))
    except leakkit.InvalidArgumentError as error:
        print("refused:", error)
""")


def test_an_unwritable_directory_is_refused_for_an_unprivileged_process(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to drop privileges")
    import shutil
    import tempfile

    locked = tempfile.mkdtemp(prefix="leakkit-locked-", dir="/tmp")  # /tmp: nobody can reach it
    os.chmod(locked, 0o755)  # root's, not writable by nobody
    script = tmp_path / "child.py"
    script.write_text(_UNPRIVILEGED)
    try:
        done = subprocess.run([sys.executable, str(script), locked], capture_output=True, text=True,
                              env={**ENV, "HOME": "/tmp"}, timeout=120)
    finally:
        shutil.rmtree(locked)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused: stream: expected a regular file leakkit may write" in done.stdout
    assert "is not writable" in done.stdout
