"""The fleet's exporters wired in: ``monitor(..., export=...)`` in real worker processes (Parquet read
by ``leakkit.fleet``, an endpoint scraped over HTTP), closed with the monitor and started over in a
forked child; and a watch of a forking process tree writing every process's row (``--fleet``),
with the same numbers as the watch's own table.

Real processes throughout; waits are on conditions (files, scrapes, sample counts), with a
generous bound only to end a broken test.
"""
from __future__ import annotations

import os
import socket
import sys
import textwrap
import time

import duckdb
import pytest
from test_fleet_e2e import Workers, _get, _wait_until

import leakkit
from leakkit.frontends.cli import main

MIB = 1 << 20

# a master that forks three workers, each with a start-up (8 MiB for each of its first 6 samples,
# then 6 samples still); then the first keeps 512 KiB (touched) for each new sample the watch writes
# to CSV, the others keep nothing; all exit once the watch has SAMPLES samples. (A worker forked
# during a watch whose growth is never seen to slow down is still starting up for the watch, never
# a leak: its start-up must stand out from the leak, as a real worker's import and caches do.)
TREE = textwrap.dedent("""
    import os, sys, time
    csv, kids_file, samples = sys.argv[1], sys.argv[2], int(sys.argv[3])
    def seen():
        try:
            with open(csv, encoding="utf-8") as handle:
                return len({line.split(",", 1)[0] for line in handle if line[:1].isdigit()})
        except OSError:
            return 0
    def keep(kept, kib):
        block = bytearray(kib << 10)
        block[::4096] = b"x" * len(block[::4096])
        kept.append(block)
    def worker(grow):
        kept, born, last, deadline = [], seen(), seen(), time.monotonic() + 120
        while (count := seen()) < samples and time.monotonic() < deadline:
            if count > last:  # samples missed (a busy machine) are caught up: growth per sample, exactly
                age, new, last = count - born, count - last, count
                if len(kept) < 6:
                    for _ in range(min(age, 6) - len(kept)):
                        keep(kept, 8 << 10)
                elif age > 12 and grow:
                    keep(kept, 512 * new)
            time.sleep(0.01)
        os._exit(0)
    kids = []
    for grow in (True, False, False):
        pid = os.fork()
        if pid == 0:
            worker(grow)
        kids.append(pid)
    with open(kids_file + ".tmp", "w") as handle:
        handle.write(" ".join(map(str, kids)))
    os.replace(kids_file + ".tmp", kids_file)
    for kid in kids:
        os.waitpid(kid, 0)
""")


def _tree(tmp_path, samples: int = 80) -> tuple[list[str], str, str]:
    csv, kids = str(tmp_path / "watch.csv"), str(tmp_path / "kids")
    return [sys.executable, "-c", TREE, csv, kids, str(samples)], csv, kids


def _kids(path: str) -> list[int]:
    with open(path) as handle:
        return [int(p) for p in handle.read().split()]


def _verdicts(body: str) -> dict[str, str]:
    """pid -> verdict of a /metrics scrape (the state set's series at 1)."""
    found = {}
    for line in body.splitlines():
        if line.startswith("leakkit_process_memory_verdict{") and line.endswith(" 1"):
            labels = dict(part.split("=", 1) for part in line[line.index("{") + 1:line.rindex("}")].split(","))
            found[labels["pid"].strip('"')] = labels["verdict"].strip('"')
    return found


def test_monitored_workers_export_parquet_through_the_monitor_option(tmp_path):
    root = tmp_path / "fleet"
    workers = Workers()
    try:
        leak = workers.start("leak", f"parquet={root}", "--via-export")
        flat = workers.start("flat", f"parquet={root}", "--via-export")

        def named():
            try:
                report = leakkit.fleet(root)
            except leakkit.NotARecordingError:  # no file written yet
                return None
            return report if set(report.leaking["pid"]) == {leak} and len(report.workers) == 2 else None

        _wait_until(named, "the fleet's files to name the leaking worker")
        _wait_until(lambda: workers.grown(leak) > 16 * MIB, "the leaking worker to grow 16 MiB")  # ground truth
        assert workers.grown(flat) < 8 * MIB
    finally:
        workers.stop()  # each monitor stops at exit and closes its writer: the last rows land
    report = leakkit.fleet(root)
    assert set(report.leaking["pid"]) == {leak}
    assert report.workers.set_index("pid").loc[flat, "verdict"] != "leak"


def test_monitored_workers_serve_their_gauges_through_the_monitor_option():
    workers = Workers()
    try:
        leak = workers.start("leak", "port", "--via-export")
        flat = workers.start("flat", "port", "--via-export")

        def scrape(pid):
            return _verdicts(_get(f"http://127.0.0.1:{workers.ports[pid]}/metrics") or "")

        _wait_until(lambda: scrape(leak).get(str(leak)) == "leak", "the leaking worker's endpoint to say leak")
        _wait_until(lambda: scrape(flat).get(str(flat)) in ("flat", "plateau"), "the flat worker to be judged")
        assert scrape(flat) == {str(flat): scrape(flat)[str(flat)]} and scrape(flat)[str(flat)] != "leak"
        assert workers.grown(leak) > 4 * MIB and workers.grown(flat) < 8 * MIB  # ground truth, from /proc
    finally:
        workers.stop()


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")  # the point: a monitor forked
def test_the_monitor_closes_its_exporters_and_a_forked_child_gets_its_own(tmp_path):
    writer = leakkit.FleetWriter(tmp_path / "fleet", host="h", every=0.05, flush_s=0.2)
    endpoint = leakkit.PrometheusExporter(port=0)
    port = endpoint.address[1]
    mon = leakkit.monitor(tmp_path / "m-{pid}.csv", interval=0.05, export=[writer, endpoint], limit=None)
    _wait_until(lambda: f'pid="{os.getpid()}"' in (_get(f"http://127.0.0.1:{port}/metrics") or ""), "a scrape")
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the monitor goes on here with copies of its exporters, made the child's own
        try:
            os.close(read)
            deadline = time.monotonic() + 30
            while not writer.files and time.monotonic() < deadline:
                time.sleep(0.02)
            pids = {s["pid"] for s in endpoint.statuses()}
            os.write(write, f"{endpoint.address} {sorted(pids)} {len(writer.files)}".encode())
            mon.stop()  # closes the child's copies: its writer's last rows, no endpoint of its own
        finally:
            os._exit(0)
    os.close(write)
    told = os.read(read, 1000).decode()
    os.close(read)
    os.waitpid(child, 0)
    assert told == f"None [{child}] 1", told  # no parent status, no endpoint, one file of its own
    # the parent's endpoint outlived the child's copy of its socket, and shows the parent alone
    body = _get(f"http://127.0.0.1:{port}/metrics")
    assert body is not None and f'pid="{os.getpid()}"' in body and f'pid="{child}"' not in body
    mon.stop()
    assert writer._closed and endpoint.address is None
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    folders = sorted(p.name for p in (tmp_path / "fleet" / "host=h" / "service=unnamed").iterdir())
    assert folders == sorted([f"pid={os.getpid()}", f"pid={child}"])
    pids = duckdb.sql(f"SELECT DISTINCT pid FROM read_parquet('{tmp_path}/fleet/**/*.parquet', "
                      "hive_partitioning = true) ORDER BY pid").fetchall()
    assert sorted(p for (p,) in pids) == sorted([os.getpid(), child])


@pytest.mark.parametrize("bad, message", [
    ("/var/lib/fleet", r"export: expected an exporter .* received str"),
    (leakkit.FleetWriter, r"an instance, e.g. FleetWriter\(\.\.\.\), not the class"),
    ([print, 3], r"export: expected an exporter .* received int 3"),
])
def test_a_bad_export_says_what_was_expected(tmp_path, bad, message):
    with pytest.raises(leakkit.LeakkitError, match=message):
        leakkit.monitor(tmp_path / "m.csv", export=bad)
    assert not (tmp_path / "m.csv").exists()  # refused before anything started


def test_leakkit_watch_fleet_then_leakkit_fleet_names_the_leaking_worker_alone(tmp_path, capsys):
    root = tmp_path / "fleet"
    command, csv, kids = _tree(tmp_path)
    code = main(["watch", "--interval", "0.1", "--out", csv, "--fleet", str(root), "--fleet-host", "web-3",
                 "--fleet-service", "api", "--fleet-version", "1.4", "-q", "--", *command])
    printed = capsys.readouterr().out
    assert code == 1, printed
    grower, *others = _kids(kids)
    capsys.readouterr()
    assert main(["fleet", str(root)]) == 1
    out = capsys.readouterr().out
    assert "LEAKING: 1 worker(s) on 1 host(s)" in out, out
    report = leakkit.fleet(root)
    assert list(report.leaking["pid"]) == [grower]
    workers = report.workers.set_index("pid")
    assert set(workers.index) >= {grower, *others}  # the master too
    assert (workers["host"] == "web-3").all() and (workers["service"] == "api").all()
    assert (workers["version"] == "1.4").all() and (workers.loc[others, "verdict"] != "leak").all()


def test_a_watchs_fleet_rows_are_the_numbers_of_its_own_table(tmp_path):
    root = tmp_path / "fleet"
    command, csv, kids = _tree(tmp_path)
    writer = leakkit.FleetWriter(root, source="watch", host="h", service="api")
    frame = leakkit.watch(command, interval=0.1, out=csv, limit="1GiB", fleet=writer, live=False)
    grower = _kids(kids)[0]
    table = leakkit.forecast_workers(frame, "1GiB").table.set_index("pid")
    assert table.loc[grower, "leak"] and table["leak"].sum() == 1
    workers = leakkit.fleet(root).workers.set_index("pid")
    assert sorted(workers.index) == sorted(table.index)
    for pid, row in table.iterrows():
        fleet_row = workers.loc[pid]
        assert fleet_row["memory_bytes"] == row["rss"]
        assert fleet_row["rate_bytes_per_s"] == pytest.approx(row["rate_bytes_per_s"], rel=1e-9, abs=1e-9)
        assert fleet_row["rate_low_bytes_per_s"] == pytest.approx(row["rate_low"], rel=1e-9, abs=1e-9)
        assert (fleet_row["verdict"] == "leak") == bool(row["leak"])
        assert fleet_row["limit_bytes"] == 1 << 30
        assert fleet_row["last_s"] == frame.loc[frame["pid"] == pid, "unix_time_s"].iloc[-1]
    assert workers.loc[grower, "seconds_to_limit"] == pytest.approx(table.loc[grower, "eta_s"], rel=1e-9)
    rows = duckdb.sql(f"SELECT DISTINCT source, python_heap_bytes, snapshots FROM read_parquet('{root}/**/*.parquet', "
                      "hive_partitioning = true)").fetchall()
    assert rows == [("watch", None, None)]  # what a watch cannot read from outside is null, not zero
    assert writer._closed


def test_watch_fleet_options_are_checked_before_anything_starts(tmp_path, capsys):
    with pytest.raises(leakkit.LeakkitError, match=r"fleet: expected a folder .* or a FleetWriter"):
        leakkit.watch([sys.executable, "-c", "pass"], fleet=3, live=False)
    with pytest.raises(leakkit.LeakkitError, match=r'source="watch"'):
        leakkit.watch([sys.executable, "-c", "pass"], fleet=leakkit.FleetWriter(tmp_path), live=False)
    assert main(["watch", "--fleet-service", "api", "--", sys.executable, "-c", "pass"]) == 2
    assert "expected --fleet DIR with --fleet-service" in capsys.readouterr().err
