"""The fleet end to end with real parts: a Prometheus server (Debian's package, started here on
127.0.0.1) scraping real worker processes that run the monitor, and DuckDB over the Parquet that
real monitored workers wrote.

Ground truth first: each worker's growth is read from /proc/PID/status (VmRSS) by the test,
without leakkit: the leaking one really grows, the others stay within a few MiB.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import leakkit

WORKER = Path(__file__).with_name("_fleet_worker.py")
RULES = Path(__file__).resolve().parent.parent / "docs" / "fleet" / "leakkit-rules.yml"
TIMEOUT_S = 90.0


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing: .ci/run installs Debian's prometheus package")
        pytest.skip(f"{name} not installed (apt-get install prometheus)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _vm_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


class Workers:
    """Worker processes (tests/_fleet_worker.py), ended by closing their stdin."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = {**os.environ, **(env or {})}
        self.procs: dict[int, subprocess.Popen] = {}
        self.ports: dict[int, int] = {}
        self.rss0: dict[int, int] = {}

    def start(self, *args: str) -> int:
        proc = subprocess.Popen([sys.executable, str(WORKER), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True, env=self.env)
        line = proc.stdout.readline().split()
        assert line[:1] == ["ready"], f"worker {args} did not start: {line}"
        pid, port = int(line[1]), int(line[2])
        self.procs[pid], self.ports[pid], self.rss0[pid] = proc, port, _vm_rss(pid)
        return pid

    def grown(self, pid: int) -> int:
        return _vm_rss(pid) - self.rss0[pid]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.stdin.close()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()


def _wait_until(condition, what: str):
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {TIMEOUT_S:.0f} s waiting for {what}")


@pytest.fixture
def prometheus_server(tmp_path):
    """Start Prometheus on 127.0.0.1 with a config the test writes; yields (start(targets), query)."""
    binary = _tool("prometheus")
    port = _free_port()
    procs = []

    def start(targets: list[str]) -> None:
        config = tmp_path / "prometheus.yml"
        config.write_text(f"global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['{RULES}']\n"
                          "scrape_configs:\n"
                          "  - job_name: workers\n    static_configs:\n      - targets: [" +
                          ", ".join(f"'{t}'" for t in targets) + "]\n")
        proc = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                                stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "w"))
        procs.append(proc)
        _wait_until(lambda: _get(f"http://127.0.0.1:{port}/-/ready") is not None, "Prometheus to be ready")

    def query(promql: str) -> list[dict]:
        body = _get(f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        assert body is not None, (tmp_path / "prometheus.log").read_text()
        answer = json.loads(body)
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    yield start, query
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=30)


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()
    except OSError:
        return None


def _pids(result: list[dict]) -> set[int]:
    return {int(series["metric"]["pid"]) for series in result}


def test_prometheus_names_the_leaking_worker_and_no_other(tmp_path, prometheus_server):
    start, query = prometheus_server
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir()
    workers = Workers({"PROMETHEUS_MULTIPROC_DIR": str(multiproc)})
    metrics_port = _free_port()
    # the prefork server's one endpoint: prometheus_client's MultiProcessCollector over the workers' files
    server = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom prometheus_client import CollectorRegistry, start_http_server\n"
        "from prometheus_client.multiprocess import MultiProcessCollector\n"
        "registry = CollectorRegistry(); MultiProcessCollector(registry)\n"
        f"start_http_server({metrics_port}, addr='127.0.0.1', registry=registry)\nsys.stdin.read()\n")],
        stdin=subprocess.PIPE, env=workers.env)
    try:
        flat = workers.start("flat", "multiprocess")
        warm = workers.start("warm", "multiprocess")
        leak = workers.start("leak", "multiprocess")
        single = workers.start("flat", "port", "--service", "cron")  # a single process with its own endpoint
        start([f"127.0.0.1:{metrics_port}", f"127.0.0.1:{workers.ports[single]}"])
        everyone = {flat, warm, leak, single}
        _wait_until(lambda: _pids(query("leakkit_process_memory_uss_bytes")) == everyone, "all four workers scraped")
        # growth as Prometheus itself computes it from the scraped USS, then the monitor's own verdict
        found = _wait_until(lambda: (_pids(query("deriv(leakkit_process_memory_uss_bytes[10s]) > 1048576")) == {leak}
                                     and _pids(query('leakkit_process_memory_verdict{verdict="leak"} == 1')) == {leak}),
                            "deriv() and the verdict to name the leaking worker")
        assert found
        assert _pids(query("leakkit_process_memory_growth_rate_low_bytes_per_second > 65536")) == {leak}
        # the documented rules (docs/fleet/leakkit-rules.yml), loaded by this server: the recording
        # rule's hours to the limit, and the 6 h alert pending (its `for:` not yet served) for that worker only
        _wait_until(lambda: _pids(query("worker:leakkit_process_memory_hours_to_limit:deriv30m < 6")) == {leak},
                    "the recording rule to name the leaking worker")
        _wait_until(lambda: _pids(query('ALERTS{alertname="WorkerMemoryLimitWithin6h"}')) == {leak},
                    "the alert to be pending for the leaking worker")
        labels = query(f'leakkit_process_memory_uss_bytes{{pid="{single}"}}')[0]["metric"]
        assert labels["service"] == "cron" and labels["role"] == "worker" and labels["version"] == "1.0"
        # ground truth, without leakkit: the leaking worker goes on growing, the others do not
        _wait_until(lambda: workers.grown(leak) > 32 << 20, "the leaking worker to grow 32 MiB")
        assert all(workers.grown(pid) < 16 << 20 for pid in (flat, warm, single))
    finally:
        workers.stop()
        server.stdin.close()
        server.wait(timeout=30)
    # a dead worker's series go with it (liveall + mark_process_dead, gunicorn's child_exit)
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

    mark_process_dead(leak, str(multiproc))
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(multiproc))
    pids = {s.labels["pid"] for m in registry.collect() for s in m.samples if m.name.startswith("leakkit_process_memory")}
    assert pids == {str(flat), str(warm)}


def test_duckdb_over_parquet_written_by_monitored_workers(tmp_path):
    root = tmp_path / "fleet"
    workers = Workers()
    try:
        flat = workers.start("flat", f"parquet={root}", "--version", "1.0")
        warm = workers.start("warm", f"parquet={root}", "--version", "1.0")
        old = max(int(os.stat(f"/proc/{p}").st_mtime) for p in (flat, warm))
        _wait_until(lambda: time.time() > old + 1.5, "a later second for the next version's start")
        leak = workers.start("leak", f"parquet={root}", "--version", "2.0")

        def leaking():
            try:
                report = leakkit.fleet(root)
            except leakkit.NotARecordingError:  # no file written yet
                return None
            return report if set(report.leaking["pid"]) == {leak} and len(report.workers) == 3 else None

        _wait_until(leaking, "the fleet's files to show the leaking worker")
        # ground truth, without leakkit: it goes on growing, the others do not
        _wait_until(lambda: workers.grown(leak) > 32 << 20, "the leaking worker to grow 32 MiB")
        assert all(workers.grown(pid) < 16 << 20 for pid in (flat, warm))
    finally:
        workers.stop()  # each closes its writer: the last rows land
    report = leakkit.fleet(root)
    assert set(report.leaking["pid"]) == {leak}
    row = report.leaking.iloc[0]
    assert row["version"] == "2.0" and row["host"] == "test-host" and row["service"] == "api"
    assert row["rate_low_bytes_per_s"] > 0 and row["memory_bytes"] > row["first_bytes"] + (16 << 20)  # USS; /proc saw RSS +32 MiB
    assert row["leak_since_s"] >= row["first_s"]
    assert report.version_onsets() == [("api", "2.0")]
    # the files' rows agree with their footer summaries (what the report read)
    import duckdb

    rows = duckdb.sql(f"SELECT pid, count(*) AS n, max(unix_time_s) AS last_s FROM read_parquet('{root}/**/*.parquet', "
                      "hive_partitioning = true) GROUP BY pid").df().set_index("pid")
    for w in report.workers.itertuples():
        assert rows.loc[w.pid, "n"] == w.samples and rows.loc[w.pid, "last_s"] == w.last_s
    done = subprocess.run([sys.executable, "-m", "leakkit", "fleet", str(root), "--sql"], capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    assert "LEAKING: 1 worker(s) on 1 host(s)" in done.stdout and "parquet_kv_metadata" in done.stdout
