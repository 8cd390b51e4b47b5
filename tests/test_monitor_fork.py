"""A monitor started before a fork goes on in every child, with its own thread, files and state.

As under gunicorn --preload or a fork-started pool: the parent starts the monitor, forks workers,
and each worker must record itself (its pid on every row, its own file from a {pid} template),
never the parent's files nor a half-written line of the parent's, and never write to a descriptor
number the framework closed and reused after the fork.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from leakkit.recording.timeline import load

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")


def run(script: str, *args: str) -> list[str]:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


FORKED = """
    import os, sys, time
    from leakkit.recording.monitor import monitor, active
    folder = sys.argv[1]
    mon = monitor(os.path.join(folder, "w-{pid}.csv"), interval=0.02, role="master")
    def rows(path):
        with open(path) as handle:
            return sum(1 for line in handle if line[:1].isdigit())
    children = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            deadline = time.monotonic() + 60
            me = active()
            while me and rows(me[0].path) < 10 and time.monotonic() < deadline:
                time.sleep(0.02)
            own = me[0].path == os.path.join(folder, f"w-{os.getpid()}.csv")
            # one write per line: two children's print()s interleave word by word
            os.write(1, f"child {os.getpid()} {len(me)} {me[0].role} {me[0].running} {own}\\n".encode())
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    print("parent", os.getpid(), len(active()), mon.role, mon.running, mon.path)
"""


def test_a_monitor_started_before_the_fork_records_every_child_in_its_own_file(tmp_path):
    out = run(FORKED, str(tmp_path))
    lines = [out[i:i + 6] for i in range(0, len(out), 6)]
    children = [line for line in lines if line[0] == "child"]
    parent = next(line for line in lines if line[0] == "parent")
    assert len(children) == 2
    for _, pid, count, role, running, own_path in children:
        assert (count, role, running, own_path) == ("1", "worker", "True", "True")
        frame = load(tmp_path / f"w-{pid}.csv")
        assert len(frame) >= 10 and (frame["pid"] == int(pid)).all()  # its own rows, its own pid
    assert parent[2:5] == ["1", "master", "True"]
    parent_rows = load(tmp_path / f"w-{parent[1]}.csv")
    assert (parent_rows["pid"] == int(parent[1])).all()


def test_without_a_template_every_row_still_says_its_pid(tmp_path):
    script = """
        import os, sys, time
        from leakkit.recording.monitor import monitor
        mon = monitor(os.path.join(sys.argv[1], "all.csv"), interval=0.02)
        pid = os.fork()
        if pid == 0:
            time.sleep(0.5)
            os._exit(0)
        os.waitpid(pid, 0)
        mon.stop()
        print(pid)
    """
    child = int(run(script, str(tmp_path))[0])
    frame = load(tmp_path / "all.csv")
    assert child in set(frame["pid"]) and len(set(frame["pid"])) == 2  # two processes, each row telling which


def test_a_descriptor_closed_and_reused_after_the_fork_never_gets_a_row(tmp_path):
    # a framework that closes every descriptor after the fork, then opens its own file with the
    # same number: the monitor must notice it is no longer its CSV and stop writing there
    script = """
        import os, sys, time
        from leakkit.recording.monitor import active, monitor
        mon = monitor(os.path.join(sys.argv[1], "w-{pid}.csv"), interval=0.01)
        pid = os.fork()
        if pid == 0:
            me = active()[0]
            fd = me._file._fd
            os.close(fd)
            victim = os.open(os.path.join(sys.argv[1], "victim.txt"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            assert victim == fd, (victim, fd)
            os.write(victim, b"precious\\n")
            time.sleep(0.5)
            print(me.running, me.write_error is not None)
            sys.stdout.flush()
            os._exit(0)
        os.waitpid(pid, 0)
    """
    assert run(script, str(tmp_path)) == ["True", "True"]  # the monitor goes on, its file stopped
    assert (tmp_path / "victim.txt").read_text() == "precious\n"


def test_a_snapshot_under_way_at_the_fork_is_the_parents_alone(tmp_path):
    script = """
        import os, sys, threading, time, tracemalloc
        from leakkit.recording.monitor import active, monitor
        mon = monitor(os.path.join(sys.argv[1], "w-{pid}.csv"), interval=0.02, auto_snapshot=False)
        done = []
        thread = threading.Thread(target=lambda: done.append(mon.snapshot("slow", duration=1.0)))
        thread.start()
        while not tracemalloc.is_tracing():
            time.sleep(0.005)
        pid = os.fork()
        if pid == 0:
            me = active()[0]
            me.snapshot("child's own")  # the parent's snapshot lock and capture are not inherited
            print("child", tracemalloc.is_tracing(), len(me.snapshots))
            sys.stdout.flush()
            os._exit(0)
        os.waitpid(pid, 0)
        thread.join()
        print("parent", tracemalloc.is_tracing(), len(mon.snapshots))
    """
    assert run(script, str(tmp_path)) == ["child", "False", "1", "parent", "False", "1"]
