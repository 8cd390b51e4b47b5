"""The fleet's questions answered by DuckDB, in-process, over the hive-partitioned Parquet layout.

Why DuckDB: it reads the recordings where they are (no import, no server) and answers a day of
a thousand workers in about a second on one machine (``benchmarks/fleet.py``). The per-worker
table comes from the files' footer summaries (:mod:`leakkit.analysis.fleet_sql` says why);
every other answer (hosts, rates, versions, the closest to their limit) is read from that small
table; rows are read only for plots, and only from the plotted workers' own folders. The
statements are kept as run.
"""
from __future__ import annotations

import glob as globbing
import os
import re
import time
from dataclasses import dataclass, field

import pandas as pd

from .. import _checks
from .._errors import InvalidArgumentError, NotARecordingError, expected
from ..recording.export.fleet_writer import partition_value
from . import fleet_sql as sql

LAYOUT = os.path.join("host=*", "service=*", "pid=*", "*.parquet")


@dataclass
class FleetTables:
    """What the queries returned (DataFrames; columns documented in :func:`query`) and the SQL run."""

    path: str
    column: str
    last_s: float | None
    start_s: float | None
    workers: pd.DataFrame
    hosts: pd.DataFrame
    rates: pd.DataFrame
    versions: pd.DataFrame
    closest: pd.DataFrame
    statements: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _glob(path: str | os.PathLike) -> str:
    """The glob of a layout's files (a glob given is taken as it is)."""
    if not isinstance(path, (str, os.PathLike)):
        raise expected("a folder of fleet recordings (host=/service=/pid=/*.parquet)", "path", path)
    text = os.fspath(path)
    if any(c in text for c in "*?["):
        return text
    if not os.path.isdir(text):
        raise NotARecordingError(f"path: expected a folder of fleet recordings (host=/service=/pid=/*.parquet), "
                                 f"received {text!r}, {'a file' if os.path.exists(text) else 'which does not exist'}")
    return os.path.join(os.path.abspath(text), LAYOUT)


_NAME = re.compile(r"^(monitor|watch)-([0-9]+)-([0-9]{8}T[0-9]{6}Z)-([0-9]+)\.parquet$")


def layout_files(pattern: str) -> dict[tuple, dict[str, str]]:
    """Each worker life's current files, by name alone: ``{(host, service, pid, started): {slice: path}}``
    with the highest version of each slice (a superseded one may linger for a flush) and the
    monitor's files before a watch's for the same process. Partition values stay escaped."""
    lives: dict[tuple, dict[str, tuple[int, str]]] = {}
    sources: dict[tuple, str] = {}
    for path in _paths(pattern):
        folder, name = os.path.split(path)
        match = _NAME.match(name)
        parts = folder.split(os.sep)[-3:]
        if match is None or len(parts) < 3 or not parts[2].startswith("pid="):
            continue
        source, started, stamp, version = match.groups()
        key = (parts[0][5:], parts[1][8:], int(parts[2][4:]), float(started))
        if sources.setdefault(key, source) != source:
            if source == "watch":
                continue
            sources[key], lives[key] = source, {}
        slices = lives.setdefault(key, {})
        if int(version) >= slices.get(stamp, (-1, ""))[0]:
            slices[stamp] = (int(version), path)
    return {key: {stamp: path for stamp, (_v, path) in slices.items()} for key, slices in lives.items()}


def _paths(pattern: str):
    """The files a pattern matches; the layout's own pattern is walked folder by folder (a third
    of glob's time on 24,000 files: no pattern matching on every name)."""
    if not pattern.endswith(os.sep + LAYOUT):  # regular files only: DuckDB would wait on a FIFO forever
        yield from (path for path in globbing.iglob(pattern) if os.path.isfile(path))
        return
    level = [pattern[: -len(LAYOUT) - 1]]
    for prefix in ("host=", "service=", "pid="):
        level = [entry.path for folder in level for entry in _scan(folder) if entry.name.startswith(prefix)
                 and entry.is_dir()]
    for folder in level:
        for entry in _scan(folder):
            if entry.name.endswith(".parquet") and not entry.name.startswith(".") and _regular(entry):
                yield entry.path


def _regular(entry: os.DirEntry) -> bool:
    """A regular file (through a symlink too): a FIFO or a device planted among the slices is no
    recording, and DuckDB opening one would block (a FIFO) or read forever (/dev/zero)."""
    try:
        return entry.is_file()
    except OSError:
        return False


def _scan(folder: str) -> list:
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError:  # gone meanwhile (a worker's folder cleaned up)
        return []


def worker_files(pattern: str, host: str, service: str, pid: int, started: float) -> list[str]:
    """The current files of one worker's life, oldest slice first."""
    slices = layout_files(os.path.join(_root(pattern), f"host={partition_value(host)}",
                                       f"service={partition_value(service)}", f"pid={pid}", "*.parquet"))
    return [path for key, files in slices.items() if key[3] == float(f"{started:.0f}") for _s, path in sorted(files.items())]


def _root(pattern: str) -> str:
    return pattern.split(os.sep + "host=*")[0]


def _connect():
    try:
        import duckdb
    except ImportError:
        raise InvalidArgumentError("fleet: expected duckdb installed (pip install 'leakkit[fleet]'), "
                                   "received an environment without it") from None
    return duckdb.connect(":memory:")


def query(path: str | os.PathLike, *, column: str = "rss", since_s: float | None = None, stale_s: float = 300.0,
          top: int = 10) -> FleetTables:
    """Run the fleet's queries over ``path`` (a layout root, or a glob of its Parquet files).

    ``workers`` columns: host, service, pid, started_unix_s (one process life), role, version,
    samples, first_s, last_s (Unix seconds), first_bytes and memory_bytes (the ``column`` at the
    first and last sample), the monitor's last rate_bytes_per_s with rate_low/high_bytes_per_s,
    verdict, leaking (verdict in :data:`leakkit.analysis.fleet_sql.LEAK_VERDICTS`), leak_since_s
    (first sample of the last unbroken run of leak verdicts), limit_bytes, seconds_to_limit,
    snapshots, average_bytes_per_s (memory change over time between first and last sample),
    alive (last sample within ``stale_s`` of the fleet's newest). ``since_s``: only the files
    whose last sample is within that many seconds of the newest one.
    """
    if column not in sql.MEMORY_COLUMNS:
        raise expected(f"one of {', '.join(sql.MEMORY_COLUMNS)}", "column", column)
    for name, value in (("since_s", since_s), ("stale_s", stale_s)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
            raise expected("a positive number of seconds", name, value)
    top = _checks.integer(top, "top", minimum=1)
    started = time.perf_counter()
    pattern = _glob(path)
    newest = [files[max(files)] for files in layout_files(pattern).values()]
    if not newest:
        raise NotARecordingError(f"path: expected fleet recordings (host=/service=/pid=/*.parquet), received "
                                 f"{os.fspath(path)!r} with none")
    con = _connect()
    statements: list[str] = []

    def run(statement: str, shown: str | None = None):
        statements.append(shown or statement)
        return con.execute(statement)

    try:
        run(sql.files_table(newest), sql.files_table(newest, short=True))
        count, last = run(sql.COUNTS).fetchone()
        if not count:
            raise NotARecordingError(f"path: expected fleet recordings written by leakkit (a leakkit.summary in each "
                                     f"footer), received {os.fspath(path)!r} with none")
        start = None
        if since_s is not None and last is not None:
            start = float(last) - float(since_s)
        run(sql.workers(column, start))
        for statement in sql.alive(float(stale_s)).split(";\n"):
            run(statement)
        tables = FleetTables(path=os.fspath(path), column=column, last_s=None if last is None else float(last),
                             start_s=start, workers=run(sql.WORKERS_TABLE).df(), hosts=run(sql.HOSTS).df(),
                             rates=run(sql.RATES).df(), versions=run(sql.VERSIONS).df(),
                             closest=run(sql.closest(top)).df(), statements=statements)
    except Exception as error:
        if "duckdb" in type(error).__module__:
            raise NotARecordingError(f"path: expected fleet recordings DuckDB can read, received {os.fspath(path)!r}: "
                                     f"{type(error).__name__}: {error}".splitlines()[0]) from None
        raise
    finally:
        con.close()
    tables.seconds = time.perf_counter() - started
    return tables


def series(tables: FleetTables, workers: pd.DataFrame, *, points: int = 400) -> pd.DataFrame:
    """Memory over time (columns host, service, pid, started_unix_s, unix_time_s, memory_bytes) of
    the given rows of ``tables.workers``, averaged into about ``points`` buckets each."""
    pattern = _glob(tables.path)
    files = [f for row in workers.itertuples()
             for f in worker_files(pattern, row.host, row.service, int(row.pid), float(row.started_unix_s))]
    if not files:
        return pd.DataFrame(columns=["host", "service", "pid", "started_unix_s", "unix_time_s", "memory_bytes"])
    span = float((workers["last_s"] - workers["first_s"]).max() or 1.0)
    con = _connect()
    try:
        frame = con.execute(sql.series(files, tables.column, list(workers["started_unix_s"]),
                                       max(span / points, 1e-3))).df()
    finally:
        con.close()
    if tables.start_s is not None:
        frame = frame[frame["unix_time_s"] >= tables.start_s - 1]
    return frame
