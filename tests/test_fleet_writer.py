"""The fleet's Parquet: leakkit's own encoder read back by pyarrow and DuckDB, the hive layout, slices,
atomic replacement, fork safety, and a writer that stays light (no pandas, numpy or pyarrow)."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
import warnings
from array import array

import duckdb
import pyarrow.parquet as pq
import pytest

from leakkit import FleetWriter, InvalidArgumentError, RecordingStoppedWarning
from leakkit.recording.export.parquet_file import INT64_NULL, Column, write_table

T0 = 1_733_443_200.0  # 2024-12-06 00:00 UTC


def status(pid: int, t: float, **extra) -> dict:
    return {"pid": pid, "unix_time_s": t, "t_s": t - T0, "started_unix_s": T0 - 5, "role": "worker", "version": "1.0",
            "rss_bytes": 100 << 20, "uss_bytes": 60 << 20, "verdict": "flat", "rate_bytes_per_s": 0.0, **extra}


def test_the_encoder_round_trips_through_pyarrow_and_duckdb(tmp_path):
    path = tmp_path / "t.parquet"
    doubles = array("d", [1.5, float("nan"), -2.0, float("inf")] * 250)
    ints = array("q", [1, INT64_NULL, -(2 ** 62), 2 ** 62] * 250)
    texts = ["a", None, "héllo, 世界", ""] * 250
    with open(path, "wb") as handle:
        write_table(handle, [Column("d", "double", doubles), Column("i", "int64", ints), Column("s", "string", texts),
                             Column("empty", "double", array("d", [float("nan")] * 1000))], metadata={"k": "v"})
    table = pq.read_table(path).to_pydict()
    assert table["d"][:4] == [1.5, None, -2.0, math.inf]
    assert table["i"][:4] == [1, None, -(2 ** 62), 2 ** 62]
    assert table["s"][:4] == ["a", None, "héllo, 世界", ""]
    assert table["empty"] == [None] * 1000
    assert pq.read_metadata(path).metadata[b"k"] == b"v"
    stats = pq.ParquetFile(path).metadata.row_group(0).column(1).statistics
    assert (stats.min, stats.max, stats.null_count) == (-(2 ** 62), 2 ** 62, 250)
    got = duckdb.sql(f"SELECT count(*), count(d), sum(i) FILTER (WHERE i > 0), count(s) FROM '{path}'").fetchall()[0]
    assert got == (1000, 750, 250 * (1 + 2 ** 62), 750)
    assert duckdb.sql(f"SELECT count(*) FROM '{path}' WHERE s = 'héllo, 世界'").fetchall()[0] == (250,)


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_column_null_hints_give_the_same_file_as_a_scan(tmp_path, compression):
    values = array("d", [float(i) for i in range(100)])
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    with open(a, "wb") as handle:
        write_table(handle, [Column("x", "double", values)], compression=compression)
    with open(b, "wb") as handle:
        write_table(handle, [Column("x", "double", values, nulls=0)], compression=compression)
    assert a.read_bytes() == b.read_bytes()
    assert pq.read_table(a)["x"].to_pylist() == list(values)


def test_the_layout_is_hive_partitioned_one_file_per_process_and_slice(tmp_path):
    writer = FleetWriter(tmp_path, host="web 1", service="api/v2", every=10, slice_s=3600, flush_s=600)
    for i in range(720):  # two hours at 10 s
        for pid in (101, 102):
            writer.add(status(pid, T0 + 10 * i, uss_bytes=(60 << 20) + i * (pid - 100) * 1000,
                              verdict="leak" if pid == 102 and i >= 100 else "flat"))
            writer.add(status(pid, T0 + 10 * i + 1))  # within `every`: skipped
    writer.close()
    files = sorted(os.path.relpath(f, tmp_path) for f in writer.files)
    assert files == [f"host=web%201/service=api%2Fv2/pid={pid}/monitor-{T0 - 5:.0f}-20241206T0{h}0000Z-000{v}.parquet"
                     for pid in (101, 102) for h, v in (("0", "6"), ("1", "6"))]  # written every 10 min, then at the end
    on_disk = sorted(os.path.relpath(os.path.join(r, n), tmp_path) for r, _d, names in os.walk(tmp_path) for n in names)
    assert on_disk == files  # superseded versions are gone once the writer is closed
    rows = duckdb.sql(f"SELECT host, service, pid, count(*) AS n, max(uss_bytes) AS top FROM "
                      f"read_parquet('{tmp_path}/**/*.parquet', hive_partitioning = true) GROUP BY ALL ORDER BY pid").fetchall()
    assert rows == [("web 1", "api/v2", 101, 720, (60 << 20) + 719 * 1000), ("web 1", "api/v2", 102, 720, (60 << 20) + 719 * 2000)]
    # the footer summary of the last slice: rows, first and last row, and a verdict run that began in the slice before
    last = [f for f in writer.files if "pid=102" in f and "T01" in f][0]
    summary = json.loads(pq.read_metadata(last).metadata[b"leakkit.summary"])
    assert summary["rows"] == 360 and summary["first"]["unix_time_s"] == T0 + 3600
    assert summary["rows_total"] == 720 and summary["life_first"]["unix_time_s"] == T0
    assert summary["last"]["verdict"] == "leak" and summary["verdict_since_s"] == T0 + 1000
    assert summary["last"]["uss_bytes"] == (60 << 20) + 719 * 2000 and summary["last"]["seconds_to_limit"] is None


def test_a_reader_never_sees_half_a_file(tmp_path):
    """A file a reader lists stays whole and unchanged while the writer writes new versions as
    fast as it can (DuckDB lists a query's files, then opens each again to read its rows)."""
    writer = FleetWriter(tmp_path, host="h", service="s", every=0.001, flush_s=0.001)
    stop, failures, reads = threading.Event(), [], [0]
    con = duckdb.connect()

    def read():
        while not stop.is_set():
            for root, _dirs, names in os.walk(tmp_path):
                for name in names:
                    if name.endswith(".parquet"):
                        path = os.path.join(root, name)
                        try:
                            with open(path, "rb") as handle:
                                table = pq.read_table(handle)
                                summary = json.loads(pq.read_metadata(handle).metadata[b"leakkit.summary"])
                            assert table.num_rows == summary["rows"]
                            assert table["unix_time_s"].to_pylist()[-1] == summary["last"]["unix_time_s"]
                            con.execute(f"SELECT count(*), max(uss_bytes) FROM read_parquet('{path}')").fetchall()
                            reads[0] += 1
                        except FileNotFoundError:  # superseded and deleted since it was listed
                            pass
                        except duckdb.IOException as error:
                            if "No files found" not in str(error) and "No such file" not in str(error):
                                failures.append(repr(error))
                        except Exception as error:  # a torn file
                            failures.append(f"{type(error).__module__}.{error!r}")

    reader = threading.Thread(target=read)
    reader.start()
    try:
        i, deadline = 0, time.monotonic() + 120
        while (i < 250 or reads[0] <= 10) and time.monotonic() < deadline:  # until the reader has read enough
            writer.add(status(7, T0 + i * 0.01, uss_bytes=i))
            i += 1
    finally:
        stop.set()
        reader.join()
        writer.close()
    assert not failures and reads[0] > 10
    assert [n for _r, _d, names in os.walk(tmp_path) for n in names] == [os.path.basename(f) for f in writer.files]


def test_a_forked_child_never_rewrites_its_parents_files(tmp_path):
    """A writer made before a fork (a server's preload): the child writes its own rows only. Run in
    a fresh single-threaded interpreter: forking pytest's threaded process is not safe."""
    code = f"""
import os
from leakkit import FleetWriter
T0 = {T0!r}
def status(pid, t, **extra):
    return {{"pid": pid, "unix_time_s": t, "started_unix_s": T0 - 5, "uss_bytes": 1, **extra}}
writer = FleetWriter({str(tmp_path)!r}, host="h", service="s", every=1, flush_s=1000)
writer.add(status(os.getpid(), T0))
writer.flush()
(parent_file,) = writer.files
before = open(parent_file, "rb").read()
pid = os.fork()
if pid == 0:  # the child: its own rows only; the parent's buffer is not its to write
    try:
        writer.add(status(os.getpid(), T0 + 5, uss_bytes=1))
        writer.add(status(os.getpid(), T0 + 10, uss_bytes=2))
        writer.close()
    finally:
        os._exit(0)
os.waitpid(pid, 0)
assert open(parent_file, "rb").read() == before
print(len([n for _r, _d, names in os.walk({str(tmp_path)!r}) for n in names]))
writer.close()
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2"  # the parent's file, and the child's one


def test_a_write_that_fails_warns_once_and_never_raises(tmp_path):
    blocker = tmp_path / "host=h"
    blocker.write_text("not a folder")  # the partition folder cannot be made
    writer = FleetWriter(tmp_path, host="h", service="s", every=1, flush_s=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(5):
            writer.add(status(9, T0 + 2 * i))
        writer.close()
    assert [w.category for w in caught] == [RecordingStoppedWarning]
    assert writer.write_error and "host=h" in writer.write_error


@pytest.mark.parametrize("options, message", [
    ({"every": 0}, "every: expected a positive number of seconds"),
    ({"slice_s": float("inf")}, "slice_s: expected a positive number"),
    ({"source": "cron"}, "source: expected 'monitor' or 'watch'"),
    ({"compression": "zstd"}, "compression: expected 'gzip' or 'none'"),
    ({"host": ""}, "host: expected a non-empty str"),
])
def test_bad_options_say_what_was_expected(tmp_path, options, message):
    with pytest.raises(InvalidArgumentError, match=message):
        FleetWriter(tmp_path, **options)


def test_a_status_without_a_pid_is_refused(tmp_path):
    with FleetWriter(tmp_path) as writer, pytest.raises(InvalidArgumentError, match="status: expected a status with an int 'pid'"):
        writer.add({"rss_bytes": 1})


def test_the_exporters_import_no_pandas_numpy_or_pyarrow(tmp_path):
    code = (
        "import os, sys, time\n"
        "from leakkit.recording.export.fleet_writer import FleetWriter\n"
        "from leakkit.recording.export.prometheus import PrometheusExporter\n"
        f"w = FleetWriter({str(tmp_path)!r}, every=0.001, flush_s=0.001)\n"
        "e = PrometheusExporter(port=0)\n"
        "for i in range(50):\n"
        "    s = {'pid': os.getpid(), 'rss_bytes': i, 'verdict': 'flat', 'rate_bytes_per_s': 1.0}\n"
        "    w(s); e(s); e.render()\n"
        "w.close(); e.stop()\n"
        "heavy = sorted(m for m in ('pandas', 'numpy', 'pyarrow', 'matplotlib', 'prometheus_client', 'duckdb') if m in sys.modules)\n"
        "print(heavy, len(w.files))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[] 1"
