"""A command leakkit started never outlives it (issue 24, class 3): real SIGTERM, SIGHUP and SIGINT.

The mechanism (:class:`leakkit._signals.ending_children`) on its own, in a child process that starts
a command the way watch does; then the command line: ``leakkit run`` and ``leakkit watch -- cmd``
signalled while their command runs must end it, and exit as the signal says (SIGINT: 130, never 0).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import psutil
import pytest

from leakkit._signals import Terminated, ending_children

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="POSIX signals")
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "MPLBACKEND": "Agg"}
SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def _gone(pid: int, timeout: float = 30) -> bool:
    try:
        psutil.Process(pid).wait(timeout=timeout)
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        os.kill(pid, signal.SIGKILL)
        return False
    return True


def _child_of(parent: subprocess.Popen, timeout: float = 60) -> psutil.Process:
    """The command a leakkit process started, once it runs (a busy machine starts it late)."""
    process = psutil.Process(parent.pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = [c for c in process.children() if "time.sleep(120)" in " ".join(c.cmdline())]
        if children:
            return children[0]
        assert parent.poll() is None, parent.communicate()
        time.sleep(0.05)
    raise AssertionError("the command never started")


# -- the mechanism ------------------------------------------------------------------------------------
_WATCHER = textwrap.dedent("""
    import subprocess, sys, time
    from leakkit._signals import ending_children
    with ending_children() as guard:
        child = guard.start(sys.argv[2:])
        print(child.pid, flush=True)
        if sys.argv[1] == "catches":
            try:
                child.wait()
            except KeyboardInterrupt:  # the path Ctrl-C takes in watch: end the command
                time.sleep(0.5)  # a second signal now must not cut this short
                child.terminate()
                child.wait()
                print("ended", flush=True)
        else:  # nothing catches it: leaving the block ends the command it started
            time.sleep(120)
    print("after the block", flush=True)
""")


@pytest.mark.parametrize("signum, twice, catches", [(signal.SIGTERM, False, "catches"), (signal.SIGHUP, False, "catches"),
                                                    (signal.SIGTERM, True, "catches"), (signal.SIGTERM, False, "no"),
                                                    (signal.SIGHUP, True, "no")])
def test_sigterm_and_sighup_end_the_child_then_the_process_as_the_signal_would(signum, twice, catches):
    watcher = subprocess.Popen([sys.executable, "-c", _WATCHER, catches, *SLEEPER], env=ENV, stdout=subprocess.PIPE,
                               text=True)
    child_pid = int(watcher.stdout.readline())
    watcher.send_signal(signum)  # maybe still inside print(): outside any try, the block ends the command
    if twice:
        time.sleep(0.1)
        watcher.send_signal(signum)
    try:
        watcher.wait(timeout=60)  # not communicate(): an orphaned command would hold stdout open
    finally:
        gone = _gone(child_pid)
    out = watcher.stdout.read()
    assert gone, "the command outlived the process that started it"
    assert "after the block" not in out  # ended by the signal itself, after the clean-up
    assert watcher.returncode == -signum


def test_handlers_come_back_and_a_programs_own_handler_is_kept():
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    with ending_children() as caught:
        assert signal.getsignal(signal.SIGTERM) != before[signal.SIGTERM]
    assert {s: signal.getsignal(s) for s in before} == before and caught.signal is None

    def own(signum, frame):
        own.calls.append(signum)
    own.calls = []
    previous = signal.signal(signal.SIGTERM, own)
    ignored = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with ending_children():
            assert signal.getsignal(signal.SIGTERM) is own  # the program decides what SIGTERM does
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN  # nohup stays nohup
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
        assert own.calls == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGHUP, ignored)


def test_sigint_is_noted_and_left_to_python():
    with ending_children() as caught:
        with pytest.raises(KeyboardInterrupt) as raised:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    assert caught.signal == signal.SIGINT and not isinstance(raised.value, Terminated)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_off_the_main_thread_it_changes_nothing():
    seen = []

    def run():
        with ending_children() as caught:
            seen.append((signal.getsignal(signal.SIGTERM), caught.signal))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [(signal.getsignal(signal.SIGTERM), None)]


# -- the command line ------------------------------------------------------------------------------
#: A command that forks two workers and does not end them when it is ended (a script, not a server).
FORKER = [sys.executable, "-c", "import os, time\nfor _ in range(2):\n    if os.fork() == 0:\n"
          "        time.sleep(120)\n        os._exit(0)\ntime.sleep(120)"]


@pytest.mark.parametrize("shape", ["one process", "a tree"])
@pytest.mark.parametrize("command", ["run", "watch"])
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGHUP, -signal.SIGHUP),
                                          (signal.SIGINT, 130)])
def test_a_signalled_cli_ends_its_command_and_never_exits_0(tmp_path, command, signum, code, shape):
    argv = [sys.executable, "-m", "leakkit", command, "-q", "--interval", "0.05"]
    argv += ["--no-plot", "--out", str(tmp_path / "rec.csv")] if command == "run" else []
    leakkit = subprocess.Popen([*argv, "--", *(SLEEPER if shape == "one process" else FORKER)], env=ENV, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    child = _child_of(leakkit)
    workers = []
    deadline = time.monotonic() + 60
    while shape == "a tree" and len(workers) < 2 and time.monotonic() < deadline:
        workers = child.children()  # the forks, once they run
        time.sleep(0.05)
    assert shape == "one process" or len(workers) == 2
    time.sleep(0.3)  # a few samples
    leakkit.send_signal(signum)
    out, err = leakkit.communicate(timeout=60)
    assert _gone(child.pid), f"the command outlived leakkit {command}"
    # the command's own children too: SIGTERM to the command alone left them running, re-parented to init
    assert all(_gone(worker.pid) for worker in workers), f"the command's workers outlived leakkit {command}"
    assert leakkit.returncode == code, (out, err)
    assert "Traceback" not in err
    if signum == signal.SIGINT:
        assert "interrupted" in err
