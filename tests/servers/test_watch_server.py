"""leakkit watching every worker of a real gunicorn server started cold: sync and uvicorn workers, leak and fix.

One run, six servers side by side under the harness's paced load (about 2 min of wall time):

- sync workers, leaking release, watched by the command line (``leakkit watch MASTER``);
- sync workers, fixed release, watched by the command line;
- uvicorn workers, leaking and fixed, watched by ``leakkit.watch`` in this process;
- sync workers recycled by ``max_requests``, watched by ``leakkit.watch``;
- sync workers, fixed release, ``--preload`` with a shared table every worker reads: the workers
  copy the master's pages (USS rises, RSS does not), which must read as copy-on-write unsharing.

The watches start with the servers, before any load: the caches fill, the workers unshare pages,
and leakkit must tell that warm-up from the leak by itself. Each leaking worker's rate is compared
with its rate after a long, hand-chosen warm-up (the last 40% of the same worker's samples, fitted
by least squares here, not by leakkit). First, the ground truth without leakkit (:mod:`servers.proc`,
straight from /proc, and what each worker says it kept): the sync leaking release's workers grow,
the fixed one's stay flat after that warm-up.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from servers.harness import driving, gunicorn
from servers.proc import sample_until, slope

pytest.importorskip("gunicorn")
pytest.importorskip("flask")
pytest.importorskip("uvicorn_worker")

import leakkit  # noqa: E402

MIB = 1024 * 1024
WATCH_S = 90.0
LIMIT = "256MiB"


def least_squares(t, y) -> float:
    n = len(t)
    mt, my = sum(t) / n, sum(y) / n
    return sum((a - mt) * (b - my) for a, b in zip(t, y, strict=True)) / sum((a - mt) ** 2 for a in t)


def reference_rate(frame, pid: int, column: str = "rss") -> float:
    """The worker's rate after a long hand-chosen warm-up: least squares over its last 40%."""
    rows = frame[frame["pid"] == pid].sort_values("t")
    late = rows[rows["t"] >= rows["t"].iloc[0] + 0.6 * (rows["t"].iloc[-1] - rows["t"].iloc[0])]
    return least_squares(late["t"].tolist(), late[column].astype(float).tolist())


def cli_watch(master: int, out: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "leakkit", "watch", str(master), "--duration", str(WATCH_S),
                             "--interval", "0.5", "--limit", LIMIT, "--out", out],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_rows(path: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not (os.path.exists(path) and open(path).read().count("\n") >= 3):
        assert time.monotonic() < deadline, f"no samples in {path} after {timeout:.0f} s"
        time.sleep(0.05)


def test_every_worker_of_a_server_started_cold_is_read_per_worker(tmp_path, capsys):
    frames: dict[str, object] = {}
    with contextlib.ExitStack() as stack:
        sync_leak = stack.enter_context(gunicorn("sync"))
        sync_fixed = stack.enter_context(gunicorn("sync", fixed=True))
        uv_leak = stack.enter_context(gunicorn("uvicorn"))
        uv_fixed = stack.enter_context(gunicorn("uvicorn", fixed=True))
        recycled = stack.enter_context(gunicorn("sync", workers=2, max_requests=150, max_requests_jitter=20))
        preloaded = stack.enter_context(gunicorn("sync", fixed=True, preload=True, reference_rows=50_000))
        servers = [sync_leak, sync_fixed, uv_leak, uv_fixed, recycled, preloaded]
        outs = {"sync_leak": str(tmp_path / "sync-leak.csv"), "sync_fixed": str(tmp_path / "sync-fixed.csv")}
        watchers = {"sync_leak": cli_watch(sync_leak.master_pid, outs["sync_leak"]),
                    "sync_fixed": cli_watch(sync_fixed.master_pid, outs["sync_fixed"])}
        stack.callback(lambda: [w.kill() for w in watchers.values() if w.poll() is None])

        def api_watch(name, server):
            frames[name] = leakkit.watch(server.master_pid, interval=0.5, duration=WATCH_S, limit=LIMIT,
                                         live=False, out=tmp_path / f"{name}.csv")  # kept for a post-mortem

        threads = [threading.Thread(target=api_watch, args=(n, s)) for n, s in
                   (("uv_leak", uv_leak), ("uv_fixed", uv_fixed), ("recycled", recycled),
                    ("preloaded", preloaded))]
        done = threading.Event()
        truth: dict = {}
        sampler = threading.Thread(target=lambda: truth.update(sample_until(
            lambda: sync_leak.workers() + sync_fixed.workers(), done)))
        threads.append(sampler)
        for thread in threads:
            thread.start()
        for path in outs.values():
            wait_for_rows(path)  # the command-line watches are sampling: cold starts from here
        for server in servers:
            server.wait_ready()
        loads = [stack.enter_context(driving(s, seconds=WATCH_S + 20, rate=12 if s is recycled else 24))
                 for s in servers]
        for thread in threads[:-1]:
            thread.join(WATCH_S + 120)
        done.set()
        sampler.join()
        results = {name: w.communicate(timeout=120) + (w.returncode,) for name, w in watchers.items()}
        seen_recycled = set(recycled.seen)
        kept = {"leak": sync_leak.stats(), "fixed": sync_fixed.stats()}
        workers_of = {"leak": set(sync_leak.workers()), "fixed": set(sync_fixed.workers())}
    assert all(load.failures == 0 for load in loads), [load.failures for load in loads]

    # -- ground truth, without leakkit -------------------------------------------------------------
    leak_rates = []
    for name in ("leak", "fixed"):
        assert len(workers_of[name]) == 3
        for pid in workers_of[name]:
            points = truth[pid]
            late = [p for p in points if p[0] >= points[0][0] + 0.6 * (points[-1][0] - points[0][0])]
            assert len(late) >= 15, (name, pid, len(late))
            rates = [slope([(p[0], p[i]) for p in late]) * 60 for i in (1, 2)]  # rss, uss per minute
            if name == "leak":
                payload = kept[name][pid]["leaked_bytes"] / (points[-1][0] - points[0][0]) * 60
                assert payload > 0.4 * MIB, kept[name][pid]  # ~0.7 MiB/min of payloads kept per worker
                for rate in rates:  # the payloads, and the contexts holding them
                    assert payload < rate < 2.5 * payload, (pid, rate / MIB, payload / MIB)
                leak_rates += rates
            else:
                assert kept[name][pid]["leaked"] == 0 and kept[name][pid]["live_contexts"] == 0
                for rate in rates:  # flat after the warm-up: a fifth of the leak's rate at most
                    assert abs(rate) < 0.2 * sorted(leak_rates)[len(leak_rates) // 2], (pid, rate / MIB)

    # -- the command line: per worker, pid named, exit 1 for the leak, 0 for the fix ---------------
    out, err, code = results["sync_leak"]
    assert code == 1, out + err
    frames["sync_leak"] = leakkit.load_watch(outs["sync_leak"])
    out_fixed, err_fixed, code_fixed = results["sync_fixed"]
    assert code_fixed == 0, out_fixed + err_fixed
    frames["sync_fixed"] = leakkit.load_watch(outs["sync_fixed"])
    assert "(the master: forks the workers, listed apart)" in out and f"pid {sync_leak.master_pid}:" in out

    figures = []
    for name in ("sync_leak", "uv_leak"):
        frame = frames[name]
        report = leakkit.forecast_workers(frame)
        workers = report.table[report.table["role"] == "worker"]
        assert len(workers) == 3 and not workers["ended"].any(), report
        assert sorted(report.leaking) == sorted(workers["pid"]), report
        for pid in workers["pid"]:
            result = report.forecasts[int(pid)]
            assert result.column == "rss" and result.shape == "linear", result
            assert result.limit_bytes == 256 * MIB and 0 < result.eta_s < float("inf"), result
            warm = reference_rate(frame, int(pid))
            figures.append((name, int(pid), result.rate_bytes_per_s * 60 / MIB, warm * 60 / MIB))
            assert 0.75 * warm <= result.rate_bytes_per_s <= 1.25 * warm, (name, pid, result, warm * 60 / MIB)
            if name == "sync_leak":
                assert str(pid) in out  # the command line's table names every worker
        master = report.table[report.table["role"] == "master"]
        assert len(master) == 1 and not master["leak"].any(), report
    with capsys.disabled():
        print("\ncold rate vs rate after a long warm-up (MiB/min):",
              "; ".join(f"{n} {p}: {cold:.2f} vs {warm:.2f}" for n, p, cold, warm in figures))

    for name in ("sync_fixed", "uv_fixed"):
        frame = frames[name]
        for pid in frame["pid"].unique():
            for column in ("rss", "uss", "pss"):
                result = leakkit.forecast(frame, pid=int(pid), column=column)
                assert result.shape in ("flat", "plateau"), (name, pid, column, str(result))

    # -- recycled workers: followed, each pid its own series, the exits end theirs ---------------
    frame = frames["recycled"]
    pids = set(int(p) for p in frame["pid"].unique())
    master = recycled.master_pid
    assert master in pids and frame.loc[frame["pid"] == master, "role"].eq("master").all()
    workers = pids - {master}
    assert len(workers) >= 4, workers  # two at a time, recycled at least twice over the watch
    ended = {int(p) for p in frame.attrs["ended"]}
    assert len(ended & workers) >= 2, (ended, workers)
    assert workers <= seen_recycled | workers
    for pid in workers:
        rows = frame[frame["pid"] == pid]
        assert rows["t"].is_monotonic_increasing and rows["t"].is_unique and (rows["role"] == "worker").all()
        assert (rows["ppid"] == master).all()
    with pytest.raises(leakkit.MixedProcessesError, match="pid"):
        leakkit.forecast(frame)  # several processes' rows as one series: refused, never fitted
    report = leakkit.forecast_workers(frame)
    assert set(report.table["pid"]) == pids
    assert report.table.set_index("pid").loc[sorted(ended & workers), "ended"].all()
    json.dumps(report.table.to_dict())  # a plain table

    # -- a preloaded master's pages copied by its workers: unsharing, never a leak ---------------
    frame = frames["preloaded"]
    report = leakkit.forecast_workers(frame, LIMIT)
    assert not report.leaking, report
    unshared = 0
    for pid in frame["pid"].unique():
        rows = frame[frame["pid"] == pid]
        uss_rise = rows["uss"].iloc[-5:].median() - rows["uss"].iloc[:5].median()
        rss_rise = rows["rss"].iloc[-5:].median() - rows["rss"].iloc[:5].median()
        result = report.forecasts[int(pid)]
        assert result.shape in ("flat", "plateau"), str(result)
        shapes = {b.column: b.shape for b in result.beside}
        assert set(shapes.values()) <= {"flat", "plateau", "unsharing"}, str(result)
        if rows["role"].iloc[0] == "worker" and uss_rise > 2 * MIB and rss_rise < 0.5 * uss_rise:  # ground truth
            unshared += 1
            if shapes["uss"] == "unsharing":
                assert any("copy-on-write unsharing" in note for note in result.notes), str(result)
    assert unshared >= 2, report  # the scenario is real: the workers' uss rose with rss flat
