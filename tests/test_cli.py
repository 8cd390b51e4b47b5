"""The ``leakkit`` command line: exit codes 0 / 1 (leak) / 2 (usage or input error) / 3 (leakkit failed), outputs and files."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import psutil
import pytest
from _watched import command

import leakkit
from leakkit.frontends.cli import main

WORKER = """
HISTORY = []

def record(n):
    HISTORY.append({"n": n, "body": bytearray(64)})

def handle():
    record(len(HISTORY))

def handle_clean():
    return [bytearray(64) for _ in range(3)]
"""

@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """tmp_path as the current directory, with sys.path and sys.modules restored afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


def test_bisect_names_the_culprit_and_exits_1_on_a_leak(workdir, capsys):
    (workdir / "cli_worker.py").write_text(WORKER)
    code = main(["bisect", "cli_worker:handle", "--targets", "cli_worker", "-n", "20", "-q", "--plot", "b.png"])
    out, err = capsys.readouterr()
    assert code == 1, err
    assert "LEAK" in out and "culprit: cli_worker.record" in out
    assert "cli_worker.HISTORY[" in out  # the retention path
    assert (workdir / "b.png").stat().st_size > 0

    # the workload's module is the default target; a clean workload exits 0
    assert main(["bisect", "cli_worker:handle_clean", "-n", "20", "-q"]) == 0
    assert "CLEAN" in capsys.readouterr().out


def test_run_records_a_growing_command_then_report_reads_the_recording(workdir, capsys):
    # the command grows by 2 MiB per sample it sees in grow.csv: a steady line whatever the load
    code = main(["run", "--out", "grow.csv", "-q", "--", *command("grow", "grow.csv", "grow.marks", 25, 2 << 20)])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert "ended by exit" in out and "linear leak" in out
    assert (workdir / "grow.csv").exists() and (workdir / "grow.png").stat().st_size > 0

    assert main(["report", "grow.csv", "--limit", "1GiB", "--plot", "forecast.png"]) == 1
    out, err = capsys.readouterr()
    assert re.match(r"linear leak: pid \d+ rss reaches 1.0 GiB in ~", out), out  # rss: what a limit counts (issue 19)
    assert "forecast.png" in err and (workdir / "forecast.png").exists()


def test_report_reads_an_mprof_dat(workdir, capsys):
    start = time.time()
    lines = ["CMDLINE python steady.py"] + [f"MEM 50.000000 {start + i * 0.5:.4f}" for i in range(20)]
    (workdir / "steady.dat").write_text("\n".join(lines) + "\n")
    assert main(["report", "steady.dat", "--no-plot"]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith("flat: rss")
    assert not (workdir / "steady.png").exists()


def test_report_judges_a_trace_recording(workdir, capsys):
    kept = []

    def handle():
        kept.append(bytearray(64))

    traced = leakkit.trace(handle)
    for _ in range(20):
        traced()
    traced.checkpoint()
    traced.save("trace.csv")
    traced.stop()
    assert main(["report", "trace.csv"]) == 1
    out, _ = capsys.readouterr()
    assert out.startswith("leakkit: ") and "handle: LEAK after 20 calls" in out
    assert (workdir / "trace.png").exists()


def test_watch_a_pid_for_a_duration(capsys):
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        deadline = time.monotonic() + 60  # until it has exec'd: before, its command line is pytest's
        while psutil.Process(sleeper.pid).cmdline() != ["sleep", "30"] and time.monotonic() < deadline:
            time.sleep(0.01)
        code = main(["watch", str(sleeper.pid), "--duration", "0.6", "--interval", "0.1", "-q"])
        out, err = capsys.readouterr()
        assert code == 0, out + err
        assert out.startswith(f"leakkit watch: pid {sleeper.pid}: sleep 30: "), out  # the pid: issue 19
        assert "ended by duration" in out
        assert sleeper.poll() is None  # a pid we were given is left running
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.parametrize("argv, message", [
    ([], "required: COMMAND"),
    (["watch"], "expected a PID or a command after --"),
    (["watch", "1", "--", "sleep", "1"], "expected a PID or a command after --, and not both"),
    (["watch", "--interval", "0", "--", "true"], "interval: expected a positive number of seconds"),
    (["report", "no-such-recording.csv"], "no-such-recording.csv"),
    (["report", "x.csv", "--", "extra"], "unexpected command after --"),
    (["bisect", "no_such_module_xyz:handle"], "No module named 'no_such_module_xyz'"),
    (["bisect", "json:dumps"], "expected a workload callable with no arguments"),
    (["bisect", "json:dumps", "-n", "many"], "invalid int value: 'many'"),
    (["run"], "expected a command to run"),
])
def test_usage_and_leakkit_errors_exit_2_with_a_message_and_no_traceback(workdir, capsys, argv, message):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert message in err
    assert "Traceback" not in out + err


def test_python_m_leakkit_has_help_from_docstrings_and_exit_codes():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "leakkit", "bisect", "--help"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0
    assert done.stdout.startswith("usage: python -m leakkit bisect")
    assert "find the target function whose memory it keeps" in done.stdout
    done = subprocess.run([sys.executable, "-m", "leakkit", "report", "missing.csv"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("python -m leakkit: error: ") and "Traceback" not in done.stderr


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("watch", "run", "report", "bisect"):
        assert f"    {name} " in out
    assert "exit codes:\n  0  no leak found\n  1  a leak found (or --limit reached)\n  2  a usage or input error" in out
    assert "  3  leakkit's own failure: a one-line message (rerun with --debug for the traceback)" in out
