"""Prometheus and OpenTelemetry export of the monitor's status: names and units by each one's
conventions, the text format as prometheus_client parses it (and promtool checks it), the
multiprocess files prometheus_client's collector reads, the OpenTelemetry SDK's in-memory reader."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from leakkit import InvalidArgumentError, OpenTelemetryExporter, PrometheusExporter
from leakkit.recording.export.metrics import FIGURES
from leakkit.recording.export.prometheus import render

STATUS = {"pid": 4242, "role": "worker", "service": "api", "version": "1.4", "t_s": 120.0, "rss_bytes": 96 << 20,
          "pss_bytes": 80 << 20, "uss_bytes": 64 << 20, "swap_bytes": 0, "python_heap_bytes": 30 << 20,
          "rate_bytes_per_s": 17476.3, "rate_low_bytes_per_s": 15000.0, "rate_high_bytes_per_s": 20000.0,
          "verdict": "leak", "limit_bytes": 256 << 20, "seconds_to_limit": 11520.0, "snapshots": 1,
          "last_snapshot": "/var/log/worker-memory.snapshot-1.txt"}


def _samples(text: str) -> dict[str, list]:
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_every_figure_is_a_gauge_named_by_prometheus_conventions():
    families = list(text_string_to_metric_families(render([STATUS])))
    assert {f.type for f in families} == {"gauge"}
    for figure in FIGURES:
        assert figure.prometheus.startswith("leakkit_")
        # what OpenTelemetry's Prometheus translation makes of the OpenTelemetry name and unit
        suffix = {"By": "_bytes", "By/s": "_bytes_per_second", "s": "_seconds", "{snapshot}": ""}[figure.unit]
        assert figure.prometheus == figure.otel.replace(".", "_") + suffix, figure
    samples = _samples(render([STATUS]))
    (uss,) = samples["leakkit_process_memory_uss_bytes"]
    assert uss.value == 64 << 20 and uss.labels == {"pid": "4242", "role": "worker", "service": "api", "version": "1.4"}
    (verdict,) = samples["leakkit_process_memory_verdict"]
    assert verdict.labels["verdict"] == "leak" and verdict.value == 1
    assert samples["leakkit_process_memory_growth_rate_low_bytes_per_second"][0].value == 15000.0


def test_promtool_accepts_the_exposition(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    done = subprocess.run([promtool, "check", "metrics"], input=render([STATUS, {**STATUS, "pid": 7}]),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "" and done.stderr.strip() == ""  # no lint complaint either


def test_a_missing_figure_is_left_out_and_labels_are_escaped():
    text = render([{**STATUS, "seconds_to_limit": None, "limit_bytes": None, "verdict": None,
                    "service": 'a "quoted"\nname\\', "python_heap_bytes": float("nan")}], {"version": "ignored"})
    samples = _samples(text)
    for name in ("leakkit_process_memory_time_to_limit_seconds", "leakkit_process_memory_limit_bytes",
                 "leakkit_process_memory_verdict", "leakkit_process_memory_python_heap_bytes"):
        assert samples.get(name, []) == []
    assert samples["leakkit_process_memory_rss_bytes"][0].labels["service"] == 'a "quoted"\nname\\'
    assert samples["leakkit_process_memory_rss_bytes"][0].labels["version"] == "1.4"  # the status's, not the default
    defaulted = _samples(render([{"pid": 1, "rss_bytes": 5}], {"service": "cron"}))
    assert defaulted["leakkit_process_memory_rss_bytes"][0].labels == {"pid": "1", "role": "", "service": "cron", "version": ""}


def test_the_endpoint_serves_metrics_and_nothing_else():
    exporter = PrometheusExporter(port=0, service="api")
    try:
        host, port = exporter.address
        exporter(STATUS)
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
            assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
            body = response.read().decode()
        assert _samples(body)["leakkit_process_memory_rss_bytes"][0].value == 96 << 20
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(f"http://{host}:{port}/admin", timeout=10)
        assert error.value.code == 404
        exporter(STATUS | {"pid": 7, "uss_bytes": 1})
        exporter.forget(4242)
        assert [s.labels["pid"] for s in _samples(exporter.render())["leakkit_process_memory_uss_bytes"]] == ["7"]
    finally:
        exporter.stop()
    with pytest.raises(OSError):  # the port is closed
        urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5)


def test_bad_exporter_options_say_what_was_expected(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)
    with pytest.raises(InvalidArgumentError, match="port: expected a port to serve /metrics on"):
        PrometheusExporter()
    with pytest.raises(InvalidArgumentError, match="port: expected a TCP port number"):
        PrometheusExporter(port=70000)
    with pytest.raises(InvalidArgumentError, match="multiprocess: expected PROMETHEUS_MULTIPROC_DIR set"):
        PrometheusExporter(multiprocess=True)
    exporter = PrometheusExporter(port=0)
    try:
        with pytest.raises(InvalidArgumentError, match="status: expected a status with an int 'pid'"):
            exporter({"rss_bytes": 1})
    finally:
        exporter.stop()


def test_multiprocess_gauges_are_one_series_per_live_worker(tmp_path):
    """Workers write their files; the server's collector labels each with its pid (liveall), a
    verdict that changed reads 0 for the old one, and mark_process_dead drops an ended worker."""
    code = ("import os, sys\nfrom leakkit.recording.export.prometheus import PrometheusExporter\n"
            "e = PrometheusExporter()\n"
            "s = {'pid': os.getpid(), 'role': 'worker', 'service': 'api', 'uss_bytes': int(sys.argv[1]), 'verdict': 'warming up'}\n"
            "e(s); e(dict(s, verdict=sys.argv[2], seconds_to_limit=None)); e({'pid': 1, 'uss_bytes': 5})\n"
            "print(os.getpid())\n")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    pids = [int(subprocess.run([sys.executable, "-c", code, str(size), verdict], env=env, capture_output=True,
                               text=True, check=True, timeout=120).stdout) for size, verdict in ((100, "flat"), (200, "leak"))]
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

    def collect() -> dict:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(tmp_path))
        return {m.name: m.samples for m in registry.collect()}

    got = collect()
    assert sorted((s.labels["pid"], s.value) for s in got["leakkit_process_memory_uss_bytes"]) == \
        [(str(pids[0]), 100.0), (str(pids[1]), 200.0)]
    states = {(s.labels["pid"], s.labels["verdict"]): s.value for s in got["leakkit_process_memory_verdict"]}
    assert states == {(str(pids[0]), "warming up"): 0.0, (str(pids[0]), "flat"): 1.0,
                      (str(pids[1]), "warming up"): 0.0, (str(pids[1]), "leak"): 1.0}
    ttl = [s.value for s in got["leakkit_process_memory_time_to_limit_seconds"]]
    assert len(ttl) == 2 and all(v != v for v in ttl)  # unknown: NaN, which no alert compares true
    mark_process_dead(pids[1], str(tmp_path))
    assert [s.labels["pid"] for s in collect()["leakkit_process_memory_uss_bytes"]] == [str(pids[0])]


def test_opentelemetry_observes_the_same_figures_with_semantic_attributes():
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    exporter = OpenTelemetryExporter(meter_provider=provider, version="default")
    exporter(STATUS)
    exporter(STATUS | {"pid": 7, "seconds_to_limit": None, "verdict": "flat", "version": None})

    def points() -> dict:
        data = reader.get_metrics_data()
        return {m.name: (m.unit, {p.attributes["process.pid"]: (p.value, dict(p.attributes)) for p in m.data.data_points})
                for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}

    got = points()
    assert set(got) == {f.otel for f in FIGURES} | {"leakkit.process.memory.verdict"}
    unit, uss = got["leakkit.process.memory.uss"]
    assert unit == "By" and uss[4242][0] == 64 << 20
    assert uss[4242][1] == {"process.pid": 4242, "leakkit.role": "worker", "service.name": "api", "service.version": "1.4"}
    assert uss[7][1]["service.version"] == "default"
    assert got["leakkit.process.memory.growth_rate"][0] == "By/s"
    assert set(got["leakkit.process.memory.time_to_limit"][1]) == {4242}  # none for the worker without one
    assert {pid: a["leakkit.verdict"] for pid, (_v, a) in got["leakkit.process.memory.verdict"][1].items()} == \
        {4242: "leak", 7: "flat"}
    exporter.forget(7)
    assert set(points()["leakkit.process.memory.uss"][1]) == {4242}
    provider.shutdown()
