"""``LEAKKIT_EXPORT`` under a real gunicorn: each worker makes its own exporters, with the same numbers.

The documented line in ``gunicorn.conf.py`` starts the monitor in every worker; with
``LEAKKIT_EXPORT=prometheus,fleet=DIR`` each worker also writes prometheus_client's multiprocess
gauge files (``PROMETHEUS_MULTIPROC_DIR``) and its Parquet under DIR. Read while the server runs
(the multiprocess collector, as the application's /metrics would) and after it stopped
(``leakkit.fleet``): one series and one fleet row per worker, labelled with the service and
version, and every figure the number the worker's own recording has. A value the workers cannot
understand is warned in the server's log and the workers serve on.
"""
from __future__ import annotations

import time

import pytest

import leakkit
from leakkit.recording.timeline import load
from servers.harness import driving, gunicorn

pytest.importorskip("gunicorn")
prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client import CollectorRegistry  # noqa: E402
from prometheus_client.multiprocess import MultiProcessCollector  # noqa: E402

SETTINGS = {"LEAKKIT_MONITOR_INTERVAL": "0.1", "LEAKKIT_LIMIT": "1GiB", "LEAKKIT_SERVICE": "leakapp",
            "LEAKKIT_VERSION": "2.0", "LEAKKIT_MONITOR_TRACE_WINDOW": "1"}
RSS = "leakkit_process_memory_rss_bytes"


def _gauges(folder: str) -> dict[int, dict[str, str | float]]:
    """pid -> the rss series' labels and value, as prometheus_client's multiprocess collector reads the files."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=folder)
    found: dict[int, dict[str, str | float]] = {}
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == RSS:
                found[int(sample.labels["pid"])] = {**sample.labels, "value": sample.value}
    return found


def _conf(tmp_path) -> list[str]:
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text("from leakkit.frontends.servers.gunicorn import *\n")  # the documented line
    return ["-c", str(conf)]


def test_leakkit_export_gives_every_gunicorn_worker_its_own_gauges_and_fleet_rows(tmp_path):
    multiproc, fleet_root, recordings = tmp_path / "prom", tmp_path / "fleet", tmp_path / "monitor"
    multiproc.mkdir()
    env = {**SETTINGS, "LEAKKIT_MONITOR_DIR": str(recordings), "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
           "LEAKKIT_EXPORT": f"prometheus,fleet={fleet_root}"}
    with gunicorn("sync", workers=2, leak_bytes=256 * 1024, env=env, args=_conf(tmp_path)) as srv:
        pids = srv.wait_ready()
        with driving(srv, seconds=120, rate=30):
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and set(_gauges(str(multiproc))) < set(pids):
                time.sleep(0.2)
            live = _gauges(str(multiproc))  # read while the workers run, as a scrape would
            time.sleep(1.0)
        assert srv.workers() == pids  # nothing died or restarted
    assert set(live) >= set(pids), (live, pids)
    frames = {pid: load(str(recordings / f"leakapp-worker-{pid}.csv")) for pid in pids}
    for pid in pids:
        gauge = live[pid]
        assert gauge["service"] == "leakapp" and gauge["version"] == "2.0", gauge
        assert gauge["value"] in set(frames[pid]["rss"]), (pid, gauge["value"])  # a sample the worker recorded
    workers = leakkit.fleet(fleet_root).workers.set_index("pid")
    assert set(workers.index) >= set(pids), workers
    for pid in pids:
        row = workers.loc[pid]
        assert row["service"] == "leakapp" and row["version"] == "2.0"
        assert row["memory_bytes"] in set(frames[pid]["rss"]), (pid, row["memory_bytes"])
        assert row["limit_bytes"] == 1 << 30


def test_a_leakkit_export_the_workers_cannot_read_is_warned_and_they_serve_on(tmp_path):
    env = {**SETTINGS, "LEAKKIT_MONITOR_DIR": str(tmp_path / "monitor"), "LEAKKIT_EXPORT": "statsd"}
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as err, gunicorn("sync", workers=2, env=env, args=_conf(tmp_path), stderr=err.fileno()) as srv:
        pids = srv.wait_ready()
        status, _ = srv.request("GET", "/")
        assert status == 200
        assert srv.workers() == pids
    text = log.read_text()
    assert "LEAKKIT_EXPORT: expected a comma-separated list of prometheus, opentelemetry, fleet=DIR, received 'statsd'" \
        in text, text[-3000:]
    assert not list((tmp_path / "monitor").glob("*.csv"))  # the monitor did not start: nothing half-made


def test_leakkit_export_in_the_master_is_not_a_worker_figure(tmp_path):
    """With ``--preload`` the app (and the monitor the documented line starts) are in the master
    first: each worker still writes gauges under its own pid, none under the master's."""
    multiproc = tmp_path / "prom"
    multiproc.mkdir()
    env = {**SETTINGS, "LEAKKIT_MONITOR_DIR": str(tmp_path / "monitor"), "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
           "LEAKKIT_EXPORT": "prometheus"}
    with gunicorn("sync", workers=2, preload=True, env=env, args=_conf(tmp_path)) as srv:
        pids = srv.wait_ready()
        master = srv.master_pid
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and set(_gauges(str(multiproc))) < set(pids):
            srv.request("GET", "/")
            time.sleep(0.2)
        seen = set(_gauges(str(multiproc)))
    assert seen >= set(pids) and master not in seen, (seen, pids, master)
