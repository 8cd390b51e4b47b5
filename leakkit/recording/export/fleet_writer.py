"""Monitor and watch samples as hive-partitioned Parquet, the layout fleets query across hosts.

Why: a fleet's question ("which workers on which hosts grow, since when, did the deploy start
it") spans thousands of processes; one small Parquet file per process per time slice, in
``host=/service=/pid=`` folders, is what DuckDB, Spark and Trino read in place with partition
pruning, with no server of leakkit's own. Layout under ``root``::

    host=web-3/service=api/pid=4242/monitor-1733475600-20241206T060000Z-0007.parquet
         ^ partition columns (not in the file)   ^ source, process start (Unix s), slice start (UTC), version

Each file's footer also holds a summary (key ``leakkit.summary``, JSON: its rows and first row,
the process's rows and first row so far, its last row, and since when the last verdict has
held), so ``leakkit fleet`` reads one footer per worker, its newest, not millions of rows.

While its slice fills, a process's file is written again every ``flush_s``, each time as a new
file (``-0000``, ``-0001``, ... after the slice's start), first under a hidden temporary name then
renamed, so a reader never sees half a file; a file once written never changes. The version it
replaces is deleted a flush later (at close at the latest), so a reader that listed it (DuckDB
lists a query's files, then opens them) still finds it whole: readers keep the highest version
of each slice (``leakkit fleet`` does; docs/fleet.md has the SQL for Spark). A crash loses at
most ``flush_s`` of samples. The file name carries the process's start time,
so a pid the system reuses is another recording. Columns (:data:`SCHEMA`; every one may be null):

- ``unix_time_s``: the sample's wall-clock time (Unix seconds); ``t_s``: seconds since the monitor started.
- ``started_unix_s``: when the process started (a pid and this identify one worker's life).
- ``source`` (``monitor`` or ``watch``), ``role`` (e.g. ``worker``, ``master``), ``version`` (the user's label).
- ``rss_bytes``, ``pss_bytes``, ``uss_bytes``, ``swap_bytes``, ``python_heap_bytes``: memory by kind.
- ``rate_bytes_per_s`` with ``rate_low_bytes_per_s`` / ``rate_high_bytes_per_s``: the growth rate and
  its ~95% interval; ``verdict``; ``limit_bytes``; ``seconds_to_limit``; ``snapshots`` taken so far.

Cost in a worker (``benchmarks/fleet_export.py``): no pandas, numpy or pyarrow (the file is
encoded by :mod:`leakkit.recording.export.parquet_file`); a slice's samples in :mod:`array`
columns, allocated once per slice, ~150 bytes a row (a 1 h slice at the default 10 s: ~53 KiB).
"""
from __future__ import annotations

import atexit
import math
import os
import socket
import threading
import time
import warnings
from array import array
from typing import Any

from ... import _checks
from ..._errors import InvalidArgumentError, RecordingStoppedWarning, expected
from . import forks
from .parquet_file import DOUBLE, INT64, INT64_NULL, STRING, Column, write_table

SCHEMA: list[tuple[str, str]] = [
    ("unix_time_s", DOUBLE), ("t_s", DOUBLE), ("started_unix_s", DOUBLE), ("source", STRING), ("role", STRING),
    ("version", STRING), ("rss_bytes", INT64), ("pss_bytes", INT64), ("uss_bytes", INT64), ("swap_bytes", INT64),
    ("python_heap_bytes", INT64), ("rate_bytes_per_s", DOUBLE), ("rate_low_bytes_per_s", DOUBLE),
    ("rate_high_bytes_per_s", DOUBLE), ("verdict", STRING), ("limit_bytes", INT64), ("seconds_to_limit", DOUBLE),
    ("snapshots", INT64),
]
PARTITIONS = ("host", "service", "pid")
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_TYPECODE = {INT64: "q", DOUBLE: "d"}


def partition_value(value: str) -> str:
    """A label as a hive partition value: characters outside ``[A-Za-z0-9._-]`` as ``%XX`` (Hive's escaping)."""
    return "".join(c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in value) or "%20"


def _number(value: Any, kind: str) -> float | int:
    """A status value as the column's type; anything missing or not a finite number is null."""
    try:
        if value is None or isinstance(value, bool):
            raise TypeError
        if kind == INT64:
            return int(value)
        return float(value)  # NaN stays NaN: a null in the file
    except (TypeError, ValueError, OverflowError):
        return INT64_NULL if kind == INT64 else math.nan


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


class _Slice:
    """One process's samples of one time slice, columnar (``array`` for numbers, shared str refs)."""

    __slots__ = ("columns", "nulls", "rows", "number", "started", "service", "written_at", "last_s", "name",
                 "verdict", "verdict_since", "version", "path", "previous", "life_first", "life_rows")

    def __init__(self, number: int, started: float, service: str, name: str, capacity: int) -> None:
        # allocated once for the rows a slice holds (up to 4096; beyond, they grow): growing them
        # row by row would leave a worker's malloc holding every size they passed through
        self.columns = [array(_TYPECODE[kind], bytes(8 * capacity)) if kind in _TYPECODE else [None] * capacity
                        for _n, kind in SCHEMA]
        self.nulls = [0] * len(SCHEMA)
        self.rows = 0
        self.number, self.started, self.service, self.name = number, started, service, name
        self.written_at = -math.inf
        self.last_s = -math.inf
        self.verdict: str | None = None   # the last verdict, and when its unbroken run began
        self.verdict_since = math.nan
        self.version = 0                  # files of this slice written so far
        self.path: str | None = None      # the current one
        self.previous: str | None = None  # the one before, deleted when the next is written
        self.life_first: dict[str, Any] | None = None  # the process's first row, and its rows so far
        self.life_rows = 0

    def carry(self, before: _Slice) -> None:
        """What the process's earlier slice knew: its first row, its rows, the verdict's run."""
        self.verdict, self.verdict_since = before.verdict, before.verdict_since
        self.life_first, self.life_rows = before.life_first, before.life_rows

    def row(self, index: int) -> dict[str, Any]:
        """One row as JSON-able values (a null, NaN or infinity as None)."""
        out: dict[str, Any] = {}
        index = index % self.rows
        for (name, kind), column in zip(SCHEMA, self.columns, strict=True):
            value = column[index]
            if kind == INT64 and value == INT64_NULL or kind == DOUBLE and not math.isfinite(value):
                value = None
            out[name] = value
        return out

    def summary(self) -> str:
        """The file's footer summary (key ``leakkit.summary``): rows, the first and last row, and
        since when the last verdict has held; what ``leakkit fleet`` reads instead of every row."""
        import json

        return json.dumps({"format": 1, "rows": self.rows, "rows_total": self.life_rows,
                           "first": self.row(0), "life_first": self.life_first, "last": self.row(-1),
                           "verdict_since_s": None if math.isnan(self.verdict_since) else self.verdict_since},
                          separators=(",", ":"))


class FleetWriter:
    """Write monitor/watch statuses as hive-partitioned Parquet under ``root`` (see the module doc).

    A monitor listener: ``monitor.add_listener(FleetWriter("/var/lib/leakkit/fleet", service="api"))``;
    a watch calls :meth:`add` with each worker's row (a dict with ``pid`` and the columns above).

    Args:
        root: the folder of the layout (created if missing).
        host: the ``host=`` partition (default: this machine's host name).
        service: the ``service=`` partition when a status carries none (default ``"unnamed"``).
        every: the fewest seconds between two rows of one process (statuses in between are skipped).
        slice_s: seconds of samples per file (slices are aligned on UTC; 1 h by default: a slice's
            rows are what the worker holds and rewrites, and ``leakkit fleet`` reads one file per
            worker whatever their number).
        flush_s: how often the open slice's file is rewritten (what a crash can lose).
        source: ``"monitor"`` or ``"watch"``, kept in each row and in the file names.
        compression: ``"gzip"`` or ``"none"``.
        version: the ``version`` column when a status carries none (a deploy's label, for a watch).
    """

    @_checks.strict
    def __init__(self, root: str | os.PathLike, *, host: str | None = None, service: str | None = None,
                 every: float = 10.0, slice_s: float = 3600.0, flush_s: float = 60.0,
                 source: str = "monitor", compression: str = "gzip", version: str | None = None) -> None:
        root = _checks.path(root, "root")
        for name, value in (("every", every), ("slice_s", slice_s), ("flush_s", flush_s)):
            _checks.seconds(value, name)
        if source not in ("monitor", "watch"):
            raise expected("'monitor' or 'watch'", "source", source)
        if compression not in ("gzip", "none"):
            raise expected("'gzip' or 'none'", "compression", compression)
        for name, value in (("host", host), ("service", service), ("version", version)):
            if value is not None and (not isinstance(value, str) or not value):
                raise expected("a non-empty str", name, value)
        self.root = os.path.abspath(os.fspath(root))
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise InvalidArgumentError(f"root: expected a folder, received {self.root!r}, a file")
        self.host = host or socket.gethostname()
        self.service = service or "unnamed"
        self.version = version
        self.every, self.slice_s, self.flush_s = float(every), float(slice_s), float(flush_s)
        self.source, self.compression = source, compression
        self.files: set[str] = set()   # every file written so far
        self.write_error: str | None = None
        self._slices: dict[int, _Slice] = {}
        self._lock = threading.Lock()
        self._owner = os.getpid()
        self._swept_at = time.time()
        # versions superseded by a closed slice's last one: deleted two sweeps later, or at close
        self._superseded: list[str | None] = []
        self._retired: list[str | None] = []
        self._closed = False
        atexit.register(self.close)
        forks.track(self)

    def _after_fork(self) -> None:
        """In a forked child: the parent's rows, files and lock are the parent's (:mod:`.forks`)."""
        self._lock = threading.Lock()
        self._slices.clear()
        self._superseded, self._retired = [], []
        self.files = set()
        self._owner = os.getpid()

    # -- rows ------------------------------------------------------------------------------------
    def __call__(self, status: dict[str, Any]) -> None:
        """The listener form of :meth:`add`."""
        self.add(status)

    def add(self, status: dict[str, Any], *, force: bool = False) -> None:
        """Keep one status (at most one row per ``every`` seconds per pid); write files when due.

        ``force``: keep it even within ``every`` of that pid's last row (a watch's final reading).
        """
        if self._closed:
            return
        pid = status.get("pid") if isinstance(status, dict) else None
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            raise expected("a status with an int 'pid'", "status", status)
        now = _number(status.get("unix_time_s"), DOUBLE)
        if not math.isfinite(now):
            now = time.time()
        with self._lock:
            if self._closed:
                return
            if os.getpid() != self._owner:  # forked: the parent's buffers are the parent's to write
                self._slices.clear()
                self._owner = os.getpid()
            current = self._slices.get(pid)
            if current is not None and (now - current.last_s < self.every * 0.98 and not force
                                        or now <= current.last_s):
                return
            number = int(now // self.slice_s)
            before = None
            if current is not None and current.number != number:
                self._write(pid, current)
                self._superseded.append(current.previous)
                before, current = current, None
            if current is None:
                current = self._open(pid, status, number)
                if before is not None:
                    current.carry(before)
            self._append(current, status, now)
            if now - current.written_at >= self.flush_s:
                self._write(pid, current)
            if now - self._swept_at >= self.flush_s:
                self._sweep(now)

    def _open(self, pid: int, status: dict[str, Any], number: int) -> _Slice:
        started = _number(status.get("started_unix_s"), DOUBLE)
        if not math.isfinite(started):
            started = _process_start(pid)
        service = _text(status.get("service")) or self.service
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(number * self.slice_s))
        name = f"{self.source}-{started:.0f}-{stamp}"
        capacity = max(16, min(4096, int(self.slice_s / self.every) + 2))
        self._slices[pid] = current = _Slice(number, started, service, name, capacity)
        return current

    def _append(self, current: _Slice, status: dict[str, Any], now: float) -> None:
        fixed = {"unix_time_s": now, "started_unix_s": current.started, "source": self.source,
                 "version": status.get("version") or self.version}
        nulls, row = current.nulls, current.rows
        for index, ((name, kind), column) in enumerate(zip(SCHEMA, current.columns, strict=True)):
            value = fixed[name] if name in fixed else status.get(name)
            value = _text(value) if kind == STRING else _number(value, kind)
            if value is None or value != value or value == INT64_NULL:
                nulls[index] += 1
            if row < len(column):
                column[row] = value
            else:
                column.append(value)
        current.rows = row + 1
        current.last_s = now
        current.life_rows += 1
        if current.life_first is None:
            current.life_first = current.row(0)
        verdict = _text(status.get("verdict"))
        if verdict != current.verdict or math.isnan(current.verdict_since):
            current.verdict, current.verdict_since = verdict, now

    @staticmethod
    def _delete(paths: list[str | None]) -> None:
        for path in paths:
            if path is not None:
                try:
                    os.unlink(path)
                except OSError:  # removed by someone else: what we wanted
                    pass

    def _sweep(self, now: float) -> None:
        """Write and drop the slices of processes not heard of for a while (a worker that ended)."""
        self._swept_at = now
        self._delete(self._retired)  # superseded for at least a flush
        self._retired, self._superseded = self._superseded, []
        idle = 2 * self.flush_s + self.every
        for pid, current in list(self._slices.items()):
            if now - current.last_s > idle:
                self._write(pid, current)
                self._superseded.append(current.previous)
                del self._slices[pid]

    # -- files -------------------------------------------------------------------------------------
    def folder(self, pid: int, service: str | None = None) -> str:
        """The partition folder of one process."""
        return os.path.join(self.root, f"host={partition_value(self.host)}",
                            f"service={partition_value(service or self.service)}", f"pid={pid}")

    def _write(self, pid: int, current: _Slice) -> None:
        if current.written_at == current.last_s or self.write_error is not None:
            return
        from ..files import open_replace

        folder = self.folder(pid, current.service)
        final = os.path.join(folder, f"{current.name}-{current.version:04d}.parquet")
        temporary = os.path.join(folder, f".{current.name}.tmp")
        rows = current.rows
        # views, not copies, of the rows so far: a copy of every column at once was most of a
        # write's peak memory, which the worker's malloc then keeps
        columns = [Column(name, kind, values if len(values) == rows else
                          (memoryview(values)[:rows] if kind in _TYPECODE else values[:rows]), nulls)
                   for (name, kind), values, nulls in zip(SCHEMA, current.columns, current.nulls, strict=True)]
        try:
            os.makedirs(folder, exist_ok=True)
            with os.fdopen(open_replace(temporary, "fleet file"), "wb") as handle:
                write_table(handle, columns, compression=self.compression,
                            metadata={"leakkit.summary": current.summary()})
            os.replace(temporary, final)
        except (OSError, InvalidArgumentError) as error:
            columns.clear()  # release the views before the arrays grow again
            self.write_error = f"writing {final!r} failed: {type(error).__name__}: {error}"
            try:
                os.unlink(temporary)
            except OSError:
                pass
            try:
                warnings.warn(f"leakkit fleet writer: {self.write_error}; no more files are written, "
                              "the monitor goes on", RecordingStoppedWarning, stacklevel=2)
            except Exception:  # warnings as errors: still nothing to raise into the application
                pass
            return
        columns.clear()  # release the views before the arrays grow again
        current.written_at = current.last_s
        current.version += 1
        # the version before the one superseded now has been superseded for a flush: a reader that
        # listed it has had that long to open it
        self._delete([current.previous])
        if current.path is not None:
            self.files.discard(current.path)
        current.previous, current.path = current.path, final
        self.files.add(final)

    def flush(self) -> None:
        """Write every open slice now (the files are replaced whole)."""
        with self._lock:
            if os.getpid() != self._owner:
                return
            for pid, current in list(self._slices.items()):
                self._write(pid, current)

    def forget(self, pid: int) -> None:
        """Write and drop one process's open slice (a watch saw it end)."""
        with self._lock:
            current = self._slices.pop(pid, None)
            if current is not None and os.getpid() == self._owner:
                self._write(pid, current)
                self._superseded.append(current.previous)

    def close(self) -> None:
        """Write what is open and stop taking rows; safe to call twice, never raises."""
        if self._closed:
            return
        try:
            with self._lock:  # one step: a status the monitor thread hands meanwhile finds it closed
                if self._closed:
                    return
                self._closed = True
                if os.getpid() == self._owner:
                    for pid, current in list(self._slices.items()):
                        self._write(pid, current)
                    self._delete(self._retired + self._superseded + [c.previous for c in self._slices.values()])
        finally:
            self._slices.clear()
            atexit.unregister(self.close)

    def __enter__(self) -> FleetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"FleetWriter({self.root!r}, host={self.host!r}, service={self.service!r}, every={self.every:g}, "
                f"{len(self.files)} file(s) written)")


def _process_start(pid: int) -> float:
    """When ``pid`` started (Unix seconds, whole): from /proc (psutil elsewhere); now when unknown."""
    try:
        import psutil

        return float(int(psutil.Process(pid).create_time()))
    except Exception:  # gone, or not ours to read: the recording still needs a name
        return float(int(time.time()))
