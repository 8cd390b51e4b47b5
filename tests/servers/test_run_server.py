"""``leakkit run -- gunicorn ...``: the server started under the watch, every worker on its own rows, and
nothing left running when the watch is interrupted (about 20 s)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from servers.harness import HERE, _die_with_parent

pytest.importorskip("gunicorn")
pytest.importorskip("flask")

import leakkit  # noqa: E402


def test_run_starts_gunicorn_watches_each_worker_and_leaves_no_process_behind(tmp_path):
    out = tmp_path / "run.csv"
    command = [sys.executable, "-m", "leakkit", "run", "--interval", "0.2", "--out", str(out), "--limit", "512MiB",
               "--", sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", "--workers", "3",
               "--pythonpath", HERE, "--log-level", "warning", "leakapp_wsgi:app"]
    env = {**os.environ, "LEAKAPP_FIXED": "1"}
    run = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: _die_with_parent(None))  # noqa: PLW1509
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 180
        while True:  # until three workers have been sampled a few times each
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, "no three workers in the recording after 180 s"
            if out.exists():
                lines = [line.split(",") for line in out.read_text().splitlines()[1:] if line.count(",") == 8]
                workers = {int(cells[2]) for cells in lines if cells[4] == "worker"}
                seen |= {int(cells[2]) for cells in lines}
                if len(workers) == 3 and len(lines) >= 60:
                    break
            time.sleep(0.1)
        run.send_signal(signal.SIGINT)  # as Ctrl-C would, to leakkit alone
        stdout, stderr = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    frame = leakkit.load_watch(out)
    seen |= set(int(p) for p in frame["pid"])
    deadline = time.monotonic() + 30
    while any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in seen):
        assert time.monotonic() < deadline, [p for p in seen if psutil.pid_exists(p)]
        time.sleep(0.1)
    assert "ended by interrupt" in stdout, stdout + stderr
    master = frame.attrs["pid"]
    workers = sorted(set(frame["pid"]) - {master})
    assert len(workers) == 3 and all(str(pid) in stdout for pid in workers), stdout
    assert "(the master" in stdout and "limit 512.0 MiB per process" in stdout
    assert (tmp_path / "run.png").stat().st_size > 0  # the per-worker plot
    # the fixed release, interrupted: no leak found, and the exit code says the run was cut by Ctrl-C
    # (130, the exit-code table of issue 24), not a clean finish
    assert "no process leaks" in stdout and run.returncode == 130, stdout + stderr
