"""Timeline files: a watch's or the monitor's samples appended one flushed line at a time, and read back.

Why a module of its own: a timeline outlives the process that wrote it and is read by another
(``leakkit report``, a notebook, a forecast), so the same file rules hold for :func:`leakkit.recording.watch.watch`,
the in-process :mod:`leakkit.recording.monitor` and :func:`load`: a file to append to must be new or a
timeline of the same kind (checked before anything starts), each sample is one flushed line, so
the timeline survives the watched process or the watcher dying, and reading checks every cell.
A file is a plain CSV (its context in the JSON sidecar, :mod:`leakkit.recording.sidecar`) or an
mprof ``.dat`` (:mod:`leakkit.recording.mprof`).

Columns of a watch timeline: a long table, one row per process per sample (bytes are bytes):

- ``t``: seconds since the first sample (float); every process of one sample has the same ``t``.
- ``unix_time_s``: wall-clock time of the sample (Unix seconds), what mprof ``.dat`` files store.
- ``pid``: the process the row reads; ``ppid``: its parent.
- ``role``: ``master`` (the process watched) or ``worker`` (any descendant: a server's worker, a
  pool's process, a subprocess). A worker that exits ends its series; a new pid starts a new one.
- ``rss``: resident set size: pages in RAM, shared ones counted in full. What a per-process limit
  and the kernel's OOM killer count.
- ``uss``: unique set size: pages only this process maps; what it would give back if it exited.
  After a fork it rises as shared pages become private (copy-on-write), with RSS flat.
- ``pss``: proportional set size: shared pages divided among the processes sharing them; summed
  over the processes of a server, its total memory.
- ``swap``: bytes swapped out (Linux).

Recordings made before the pid column (one process a file, and a ``children`` column that
summed descendants) still load; a file in which several processes wrote rows with no pid column
(the ``t`` column going back again and again) loads with ``attrs["mixed_processes"]`` saying so,
and forecasts refuse it. Monitor timelines have their own columns (:mod:`leakkit.recording.monitor`).
"""
from __future__ import annotations

import io
import json
import math
import os
import warnings
from collections.abc import Sequence
from typing import IO, Any

import pandas as pd

from .. import _checks
from .._errors import InvalidArgumentError, NotARecordingError, RecordingStoppedWarning, expected
from . import sidecar as _sidecar
from .mprof import MprofWriter, looks_like_mprofile, read_mprofile

COLUMNS = ["t", "unix_time_s", "pid", "ppid", "role", "rss", "uss", "pss", "swap"]
TEXT_COLUMNS = frozenset({"role"})


class _CsvSink:
    """Append one flushed CSV line per sample; the context (pid, command, interval, limit) goes to
    the JSON sidecar (:mod:`leakkit.recording.sidecar`), so the CSV stays a plain header and rows."""

    def __init__(self, handle: IO[str], meta: dict[str, Any], path: str) -> None:
        self._handle = handle
        if handle.tell() == 0:
            handle.write(",".join(COLUMNS) + "\n")
            handle.flush()
        try:
            _sidecar.add_session(path, "watch", meta)
        except OSError as error:  # the metadata is lost, not the samples: the CSV reads on its own
            warnings.warn(f"leakkit watch: writing {_sidecar.path_for(path)!r} failed: {type(error).__name__}: "
                          f"{error}; {path!r} goes on without its pid, command and limit", RecordingStoppedWarning,
                          stacklevel=5)  # _CsvSink, open_sink, watch.record, watch, the caller

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        """One sample: a row per process (the COLUMNS' order), flushed together."""
        lines = []
        for row in rows:
            cells = [f"{row[0]:.4f}", f"{row[1]:.4f}", str(int(row[2])), str(int(row[3])), str(row[4])]
            cells += ["" if math.isnan(v) else str(int(v)) for v in row[5:]]
            lines.append(",".join(cells) + "\n")
        self._handle.write("".join(lines))
        self._handle.flush()


class _DatSink:
    """mprof records one metric: RSS, what its default backend measures; the master's as ``MEM``,
    each worker's as ``CHLD <pid>`` (mprof's line for a child process)."""

    def __init__(self, handle: IO[str], meta: dict[str, Any], path: str) -> None:
        self._handle = handle
        self._writer = MprofWriter(handle, meta.get("cmdline"))

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        for row in rows:
            if row[4] == "master":
                self._writer.write(row[5], row[1])
            else:
                self._handle.write(f"CHLD {int(row[2])} {row[5] / (1 << 20):.6f} {row[1]:.4f}\n")
        self._handle.flush()


def first_record_line(path: str) -> str:
    """The first non-empty, non-comment line of an existing file (read at most 64 KiB: it may be anything).

    How a file to append to is recognized: its header (a watch or monitor CSV) or an mprof record.
    """
    from .files import open_to_read

    fd = open_to_read(path, "out", error=InvalidArgumentError)  # never waits on a FIFO swapped in
    with open(fd, encoding="utf-8", errors="replace") as handle:
        for _ in range(64):
            line = handle.readline(1024)
            if not line:
                return ""
            if line.strip() and not line.startswith("#"):
                return line.strip()
    return ""


def open_out(out: str | os.PathLike) -> IO[str]:
    """Open ``out`` to append to, after checking it is a new file or a recording of the same kind.

    Done before a command is started, so that a bad ``out`` never leaves an orphan running.
    """
    from .files import check_writable_target, open_append

    if not isinstance(out, (str, os.PathLike)):
        raise expected("a file path (.csv, or .dat for mprof)", "out", out)
    path = os.fspath(out)
    check_writable_target(path, "out")
    if os.path.exists(path) and os.path.getsize(path) > 0:
        first = first_record_line(path)
        if path.endswith(".dat"):
            if not looks_like_mprofile(first):
                raise expected("a new file or an mprof .dat to append to", "out", path)
        elif first != ",".join(COLUMNS):
            raise expected(f"a new file or a leakkit watch CSV to append to (header {','.join(COLUMNS)})", "out", path)
    return os.fdopen(open_append(path, "out"), "a", encoding="utf-8")


def open_sink(handle: IO[str], meta: dict[str, Any], path: str) -> _CsvSink | _DatSink:
    """The writer of samples to ``handle`` (opened by :func:`open_out`): mprof's for a ``.dat`` path, else CSV.

    A new CSV gets its header; ``meta`` (pid, cmdline, interval, limit_bytes) goes to the sidecar,
    or to the ``CMDLINE`` line of a ``.dat``. Raises OSError when the file cannot be written.
    """
    return (_DatSink if path.endswith(".dat") else _CsvSink)(handle, meta, path)


def close_quietly(handle: IO[str]) -> None:
    """Close a timeline file; the last flush failing on a full disk loses nothing (the samples are in memory)."""
    try:
        handle.close()
    except OSError:
        pass


_NON_NEGATIVE = frozenset({"t", "unix_time_s", "rss", "uss", "pss", "swap", "children", "allocated_blocks",
                           "traced_bytes", "gc0", "gc1", "gc2", "gc_collections", "threads", "monitor_cpu_s",
                           "pid", "python_heap", "snapshots", "snapshot_rss", "snapshot_uss", "snapshot_pss",
                           "ppid"})
_META_TYPES: dict[str, tuple[type, ...]] = {"pid": (int,), "interval": (int, float), "limit_bytes": (int, float),
                                            "cgroup_limit_bytes": (int, float), "cgroup_limit_source": (str,),
                                            "started": (int, float), "started_unix_time_s": (int, float)}
_META_MAX = 1 << 16  # a context line longer than this is not leakkit's


def _cell(text: str, path: str, lineno: int, column: str) -> float:
    if text == "":
        return math.nan
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or (value < 0 and column in _NON_NEGATIVE):
        what = "a number" if column not in _NON_NEGATIVE else "a finite number >= 0"
        raise NotARecordingError(f"{path}:{lineno}: expected {what} in column {column!r}, received {text[:40]!r}")
    return value


def _meta(line: str) -> dict[str, Any]:
    """The context of a '# leakkit watch {json}' line (recordings made before the sidecar).

    The line is a comment: one that is not leakkit's (a list, a string, 100 000 nested brackets)
    is ignored rather than failing the samples below it.
    """
    text = line.split(" ", 3)[3] if line.count(" ") >= 3 else ""
    if len(text) > _META_MAX or not text.lstrip().startswith("{"):
        return {}
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    return _checked_meta(meta)


def _checked_meta(meta: Any) -> dict[str, Any]:
    """Only the keys leakkit writes, with their types: nothing from a file reaches frame.attrs
    unchecked (``limit_bytes`` there becomes a forecast's limit)."""
    if not isinstance(meta, dict):
        return {}
    kept: dict[str, Any] = {}
    for key, value in meta.items():
        types = _META_TYPES.get(key)
        if value is None and (types is not None or key == "cmdline"):  # not known when it was written
            kept[key] = None
        elif types is not None and isinstance(value, types) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                continue
            if key in ("limit_bytes", "cgroup_limit_bytes") and value <= 0:
                continue
            kept[key] = value
        elif key in ("cmdline", "argv") and isinstance(value, list) and all(isinstance(v, str) for v in value):
            kept[key] = value
        elif key in ("role", "service", "version") and isinstance(value, str):  # the monitor's labels
            kept[key] = value
    return kept


def _read_csv(path: str, handle: IO[str]) -> pd.DataFrame:
    header: list[str] | None = None
    header_line = 0
    meta: dict[str, Any] = {}
    rows: list[list[Any]] = []
    header_repeats = 0
    lines = handle.readlines()
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if line.startswith("#"):
            if line.startswith("# leakkit ") and not meta:
                meta = _meta(line.rstrip("\r\n"))
            continue
        cells = line.rstrip("\r\n").split(",")
        if header is None:
            header, header_line = cells, lineno
            if "t" not in header or "rss" not in header:
                raise NotARecordingError(
                    f"{path}:{lineno}: expected a leakkit CSV header with columns t and rss, received {line.strip()[:80]!r}"
                )
            continue
        if cells == header:  # a second session appended to the same file
            header_repeats += 1
            continue
        try:
            if len(cells) != len(header):
                raise NotARecordingError(
                    f"{path}:{lineno}: expected {len(header)} comma-separated values ({','.join(header)}), "
                    f"received {len(cells)}"
                )
            rows.append([text if column in TEXT_COLUMNS else _cell(text, path, lineno, column)
                         for text, column in zip(cells, header, strict=False)])
        except NotARecordingError:
            if lineno == len(lines) and not line.endswith("\n"):
                break  # the last line, cut short by a crash mid-write: everything before it stands
            raise
    if header is None:
        raise NotARecordingError(f"{path}: expected a leakkit CSV with a header line, received no data")
    frame = pd.DataFrame(rows, columns=header)
    numeric = [c for c in header if c not in TEXT_COLUMNS]
    frame[numeric] = frame[numeric].astype("float64")
    for column in ("pid", "ppid"):
        if column in frame.columns and frame[column].notna().all():
            frame[column] = frame[column].astype("int64")
    raw_t = frame["t"].to_numpy(dtype=float).copy() if "pid" not in frame.columns else None
    if "unix_time_s" in frame.columns and len(frame) and frame["unix_time_s"].notna().all():
        # recompute t: appended sessions each restart their own t at 0
        frame["t"] = frame["unix_time_s"] - frame["unix_time_s"].iloc[0]
    sidecar = _sidecar.read(path)
    if sidecar is not None and sidecar["sessions"]:
        sessions = [_checked_meta(session) for session in sidecar["sessions"]]
        meta = {**sessions[-1], "sessions": sessions}
    frame.attrs.update({key: value for key, value in meta.items()}, source="leakkit", path=path, header_line=header_line)
    sessions = frame.attrs.get("sessions") or []
    runs = _runs(raw_t, max(len(sessions), 1 + header_repeats))
    if runs is not None:
        pids = sorted({s["pid"] for s in sessions if isinstance(s.get("pid"), int)})
        frame.attrs["mixed_processes"] = (
            f"{path}: several processes appended rows with no pid column (the t column goes back {runs - 1} "
            f"times in {len(frame)} rows, written by {max(len(sessions), 1)} session(s)"
            + (f" of pids {', '.join(map(str, pids))}" if len(pids) > 1 else "") + "): their samples interleave")
    return frame


def _runs(t: Any, sessions: int) -> int | None:
    """For a file with no pid column: how many runs of increasing ``t`` it holds, when that says
    several writers interleaved (each session restarts ``t`` once; interleaved writers send it back
    at nearly every row): more runs than sessions, and at least one every ten rows. Else None."""
    if t is None or len(t) < 3:
        return None
    runs = 1 + int((t[1:] < t[:-1]).sum())
    return runs if runs > sessions and runs >= max(3, len(t) / 10) else None


@_checks.strict
def load(path: str | os.PathLike) -> pd.DataFrame:
    """Read a leakkit CSV (from :func:`leakkit.recording.watch.watch` or the monitor) or an mprof ``.dat`` into a DataFrame.

    Why one reader: forecasts and plots should not care which tool recorded the timeline.
    The watch columns are described in this module's docstring; monitor CSVs keep their own extra
    columns. ``attrs`` gets the metadata of the sidecar ``<path>.json`` (the latest session's
    keys, and ``sessions``), or of a ``# leakkit ...`` first line in recordings made before
    there were sidecars. Raises NotARecordingError with the line number of the first malformed line; a
    malformed last line without a newline (cut short by a crash mid-write) is dropped instead.

    Example::

        frame = load("worker.csv")        # or load("mprofile_20240101.dat")
    """
    from .files import read_text

    path = _checks.path(path, "path")
    # never blocks (a FIFO, a device are refused) and bounded (/dev/zero is not read to the end)
    handle = io.StringIO(read_text(path, "path"))
    first = next((line for line in handle if line.strip()), "")
    if looks_like_mprofile(first):
        return read_mprofile(path)
    handle.seek(0)
    return _read_csv(path, handle)
