"""Files that are not regular files, and saves that must not destroy (issue 24, classes 1 and 2).

Real conditions: a FIFO (given as input, or planted where a stream, a sidecar or a save goes),
devices (``/dev/zero`` never ends, ``/dev/null``), a directory, a socket, a sparse file of 2 GiB, a
full tmpfs, a writer killed in the middle of a save. Every reader refuses what is not a regular
file with an error saying what it is, without waiting on it; every save replaces the old file only
once the new one is whole. A test that would hang on a regression has a watchdog that unblocks the
FIFO (and then fails), so it fails instead of hanging.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import pandas as pd
import pytest

import leakkit
from leakkit import LeakkitError, SaveError

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux FIFOs, devices and tmpfs")
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
WATCHDOG_S = 20  # a regression blocks; after this long the FIFO is unblocked and the test fails


@contextlib.contextmanager
def watchdog(fifo):
    """Unblock ``fifo`` if something still waits on it after WATCHDOG_S: open both ends (a reader
    and a writer for whoever waits), drain what was written, close. ``needed`` says it had to."""
    state = {"needed": False}
    done = threading.Event()

    def rescue() -> None:
        if done.wait(WATCHDOG_S):
            return
        state["needed"] = True
        fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        try:
            while not done.wait(0.05):
                with contextlib.suppress(BlockingIOError):
                    os.read(fd, 1 << 16)
        finally:
            os.close(fd)

    thread = threading.Thread(target=rescue, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        done.set()
        thread.join(WATCHDOG_S + 10)


def _recording(n: int = 30) -> leakkit.Trace:
    traced = leakkit.trace(lambda: None, summaries=False, checkpoint_every=10**9)
    for _ in range(n):
        traced()
    return traced


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"t": [0.0, 1.0, 2.0], "unix_time_s": [1.7e9, 1.7e9 + 1, 1.7e9 + 2], "rss": [1e8, 2e8, 3e8]})


@pytest.fixture
def places(tmp_path):
    """Paths to things that are not regular files."""
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock.csv"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    sparse = tmp_path / "sparse.csv"
    with open(sparse, "wb") as handle:
        handle.truncate(2 << 30)  # 2 GiB of nothing: reading it would take 2 GiB
    yield {"fifo": str(fifo), "/dev/zero": "/dev/zero", "/dev/null": "/dev/null", "directory": str(tmp_path),
           "socket": str(sock_path), "sparse 2 GiB": str(sparse)}
    sock.close()


WHAT = {"fifo": "a FIFO", "/dev/zero": "a device", "/dev/null": "a device", "directory": "a directory",
        "socket": "a socket", "sparse 2 GiB": "of 2048 MiB"}
def _report_cli(path: str) -> None:
    """``leakkit report PATH`` as a reader: its exit-2 message raised, so it is judged like the API's."""
    import io
    from contextlib import redirect_stderr

    from leakkit.frontends.cli import main

    err = io.StringIO()
    with redirect_stderr(err):
        code = main(["report", path, "--no-plot"])
    assert code == 2 and "Traceback" not in err.getvalue(), (code, err.getvalue())
    raise LeakkitError(err.getvalue())


READERS = {
    "load": lambda p: leakkit.load(p),
    "read_mprofile": lambda p: leakkit.read_mprofile(p),
    "trace(stream=...)": lambda p: leakkit.trace(lambda: None, stream=p),
    "load_watch": lambda p: leakkit.load_watch(p),
    "load_attach": lambda p: leakkit.load_attach(p),
    "leakkit report": _report_cli,
}


@pytest.mark.parametrize("place", list(WHAT))
@pytest.mark.parametrize("reader", list(READERS))
def test_readers_refuse_what_is_not_a_regular_file_without_waiting(places, place, reader):
    path = places[place]
    started = time.monotonic()
    with watchdog(places["fifo"]) as dog, pytest.raises(LeakkitError) as caught:
        READERS[reader](path)
    assert not dog["needed"], "it waited on the FIFO"
    message = str(caught.value)
    assert "expected" in message
    if not (reader.startswith("trace") and place in ("sparse 2 GiB",)):
        assert WHAT[place] in message or (reader.startswith("trace") and "a new file or a leakkit" in message), message
    assert time.monotonic() - started < WATCHDOG_S


@pytest.mark.parametrize("place", ["fifo", "/dev/null", "directory", "socket"])
@pytest.mark.parametrize("writer", ["Trace.save", "Trace.save parquet", "write_mprofile", "AttachReport.save"])
def test_saves_refuse_what_is_not_a_regular_file_without_waiting(places, place, writer):
    path = places[place]
    traced = _recording()
    save = {"Trace.save": lambda: traced.save(path), "Trace.save parquet": lambda: traced.save(path, format="parquet"),
            "write_mprofile": lambda: leakkit.write_mprofile(_frame(), path),
            "AttachReport.save": lambda: leakkit.AttachReport({"calls": 1}, "agent").save(path)}[writer]
    if writer.endswith("parquet"):
        pytest.importorskip("pyarrow")
    with watchdog(places["fifo"]) as dog, pytest.raises(LeakkitError, match=WHAT[place]):
        save()
    assert not dog["needed"], "it waited on the FIFO"
    if place == "fifo":
        assert stat.S_ISFIFO(os.lstat(path).st_mode)  # left as it was
    assert not [n for n in os.listdir(os.path.dirname(path) if place != "directory" else path)
                if n.endswith(".tmp")]


def test_a_fifo_swapped_in_after_the_trace_was_built_stops_the_stream_never_the_program(tmp_path):
    path = tmp_path / "stream.csv"
    traced = leakkit.trace(lambda n: n + 1, stream=path, summaries=False)
    os.mkfifo(path)  # after the check, before the first row: the program must never block on it
    with watchdog(str(path)) as dog, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = [traced(i) for i in range(3000)]  # ~100 bytes a row: a pipe's 64 KiB would fill
        traced.stop()
    assert not dog["needed"], "the traced program blocked on the FIFO"
    assert results == [i + 1 for i in range(3000)] and len(traced.calls) == 3000
    assert traced._recorder.stream_error and "no longer a regular file" in traced._recorder.stream_error
    assert sum("stream" in str(w.message) for w in caught) == 1


@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink to /dev/zero"])
def test_a_sidecar_place_taken_by_something_else_never_blocks_a_watch(tmp_path, kind):
    out = tmp_path / "w.csv"
    side = tmp_path / "w.csv.json"
    if kind == "fifo":
        os.mkfifo(side)
    elif kind == "directory":
        side.mkdir()
    else:
        side.symlink_to("/dev/zero")
    fifo = str(side) if kind == "fifo" else str(tmp_path / "unused")
    if kind != "fifo":
        os.mkfifo(fifo)
    with watchdog(fifo) as dog, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = leakkit.watch([sys.executable, "-c", "import time; time.sleep(0.3)"], interval=0.05, out=out,
                              progress=False)
        again = leakkit.load_watch(out)
    assert not dog["needed"], "the watch blocked on the sidecar's place"
    assert len(frame) > 0 and len(again) == len(frame)
    if kind != "directory":  # a name leakkit picks: replaced by the real sidecar, never written through
        assert stat.S_ISREG(os.lstat(side).st_mode) and leakkit.load_watch(out).attrs.get("cmdline")


# -- saves never destroy what they replace ---------------------------------------------------------
def test_a_save_keeps_the_files_permissions_and_a_users_symlink(tmp_path):
    traced = _recording()
    target = tmp_path / "real.csv"
    target.write_text("old")
    os.chmod(target, 0o640)
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    traced.save(link)
    assert link.is_symlink() and stat.S_IMODE(os.stat(target).st_mode) == 0o640
    assert len(leakkit.load(target).calls) == 30
    fresh = tmp_path / "fresh.csv"
    old = os.umask(0o027)
    try:
        traced.save(fresh)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["fresh.csv", "link.csv", "real.csv"]  # no temporary file left


def test_a_save_that_fails_half_way_leaves_the_old_file_whole(tmp_path, monkeypatch):
    traced = _recording()
    path = tmp_path / "rec.csv"
    traced.save(path)
    before = path.read_bytes()
    for _ in range(10):
        traced()

    def broken(self, handle, *args, **kwargs):
        handle.write("table,call,function\ncalls,0,half")
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    with pytest.raises(SaveError, match="Input/output error; the file there before is left whole") as caught:
        traced.save(path)
    assert isinstance(caught.value, OSError) and caught.value.errno == 5
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["rec.csv"]


def _mount(where, options: str) -> bool:
    where.mkdir(exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs (needs root and mount; skipped where the sandbox forbids it)."""
    disk = tmp_path / "disk"
    if not _mount(disk, "size=512k,mode=0777"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _fill(disk) -> None:
    with open(disk / "filler", "wb", buffering=0) as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0" * 4096)


SAVES = {
    "Trace.save csv": (lambda t, p: t.save(p), lambda p: len(leakkit.load(p).calls)),
    "Trace.save parquet": (lambda t, p: t.save(p, format="parquet"), lambda p: len(leakkit.load(p).calls)),
    "write_mprofile": (lambda t, p: leakkit.write_mprofile(_frame().assign(rss=[float(len(t.calls))] * 3), p),
                       lambda p: len(leakkit.read_mprofile(p))),
    "AttachReport.save": (lambda t, p: leakkit.AttachReport({"calls": list(range(len(t.calls)))}, "agent").save(p),
                          lambda p: len(leakkit.load_attach(p).result["calls"])),
}


@pytest.mark.parametrize("save", list(SAVES))
def test_a_save_on_a_full_disk_raises_and_leaves_the_old_file_whole(small_disk, save):
    if "parquet" in save:
        pytest.importorskip("pyarrow")
    write, read = SAVES[save]
    path = str(small_disk / ("rec.parquet" if "parquet" in save else "rec.csv"))
    small = _recording(20)
    write(small, path)
    before, count = open(path, "rb").read(), read(path)
    big = leakkit.trace(lambda: None, summaries=False, checkpoint_every=10**9)
    for _ in range(5000):
        big()
    _fill(small_disk)
    with pytest.raises(SaveError, match="No space left on device; the file there before is left whole") as caught:
        write(big, path)
    assert isinstance(caught.value, LeakkitError) and isinstance(caught.value, OSError)
    assert open(path, "rb").read() == before and read(path) == count  # whole, and it loads as before
    assert sorted(os.listdir(small_disk)) == ["filler", os.path.basename(path)]  # no temporary file left


def test_a_sidecar_on_a_full_disk_stays_whole(small_disk):
    from leakkit.recording import sidecar

    csv_path = small_disk / "w.csv"
    sidecar.add_session(csv_path, "watch", {"pid": 1})
    before = open(sidecar.path_for(csv_path), "rb").read()
    _fill(small_disk)
    with pytest.raises(OSError):
        sidecar.add_session(csv_path, "watch", {"pid": 2, "cmdline": ["x" * 100_000]})
    assert open(sidecar.path_for(csv_path), "rb").read() == before


_SAVER = textwrap.dedent("""
    import sys
    import leakkit
    traced = leakkit.trace(lambda: None, summaries=False, checkpoint_every=10**9)
    for _ in range(50000):
        traced()
    print("ready", flush=True)
    while True:
        traced.save(sys.argv[1])
""")


def test_a_writer_killed_in_the_middle_of_saves_never_leaves_half_a_file(tmp_path):
    path = tmp_path / "rec.csv"
    _recording(7).save(path)
    child = subprocess.Popen([sys.executable, "-c", _SAVER, str(path)], env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]:
            time.sleep(0.005)  # kill it while a save is being written
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    calls = leakkit.load(path).calls  # the old file or a whole new one, never half of one
    assert len(calls) in (7, 50000)


def test_a_save_over_the_streams_own_file_is_appended_to_after_it(tmp_path):
    path = tmp_path / "stream.csv"
    traced = leakkit.trace(lambda: None, stream=path, summaries=False)
    for _ in range(10):
        traced()
    traced.save(path)  # replaces the file the stream appends to: the stream must follow
    for _ in range(5):
        traced()
    traced.stop()
    assert list(leakkit.load(path).calls["call"]) == list(range(15))


def test_a_monitor_snapshot_on_a_full_disk_leaves_no_empty_report(small_disk):
    """Issue 24's example: a snapshot on a full disk left an empty file. Now SaveError, and no file."""
    mon = leakkit.monitor(str(small_disk / "m.csv"), interval=0.05, auto_snapshot=False, trace_window=0, limit=None)
    try:
        first = mon.snapshot("before")  # room enough: a whole report
        assert os.path.getsize(first) > 0
        _fill(small_disk)
        with pytest.raises(SaveError, match="No space left on device"):
            mon.snapshot("on a full disk")
    finally:
        mon.stop()
    reports = sorted(n for n in os.listdir(small_disk) if ".snapshot-" in n)
    assert reports == [os.path.basename(first)], reports  # no empty snapshot-002, no temporary file
    assert not [n for n in os.listdir(small_disk) if n.endswith(".tmp")]


def test_a_fifo_among_a_fleets_slices_is_skipped_never_waited_on(tmp_path):
    pytest.importorskip("duckdb")
    with leakkit.FleetWriter(tmp_path, host="h", service="s", every=1) as writer:
        for i in range(10):
            writer.add({"pid": 9, "unix_time_s": 1.7e9 + i, "uss_bytes": 1 << 20, "verdict": "flat"})
    folder = os.path.dirname(next(iter(writer.files)))
    os.mkfifo(os.path.join(folder, "monitor-1-20240101T000000Z-0001.parquet"))  # a writer's name, a FIFO
    with watchdog(os.path.join(folder, "monitor-1-20240101T000000Z-0001.parquet")) as dog:
        report = leakkit.fleet(tmp_path)
    assert not dog["needed"], "the fleet waited on the FIFO"
    assert len(report.workers) == 1
