"""Watch a process's memory from outside, over time, so growth is confirmed before anyone bisects.

:func:`watch` samples a process (by pid, or a command it starts, like ``mprof run``) with psutil
and returns a DataFrame; with ``out`` it appends every sample to a file as it goes, one flushed
line per sample, so the timeline survives the watched process or the watcher dying.
:func:`load` reads such a file (or an mprof ``.dat``) back into the same shape.

Columns of the returned DataFrame (one row per sample; bytes are bytes):

- ``t``: seconds since the first sample (float).
- ``unix_time_s``: wall-clock time of the sample (Unix seconds), what mprof ``.dat`` files store.
- ``rss``: resident set size: pages in RAM, shared ones counted in full.
- ``uss``: unique set size: pages only this process maps; what it would give back if it exited.
  The figure to watch for a leak (smem's sense).
- ``pss``: proportional set size: shared pages divided among the processes sharing them.
- ``swap``: bytes swapped out (Linux).
- ``children``: number of live child processes summed into the row (``children=True``), else missing.

With ``children=True`` the byte columns are totals over the process and all its descendants.
memory-profiler's ``memory_usage`` samples one metric per run, so leakkit reads psutil directly
(one ``memory_full_info`` per process per sample gives all four) and keeps mprof's file format.
"""
from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from typing import IO, Any

import pandas as pd
import psutil
from tqdm.auto import tqdm

from .._errors import NotARecordingError, ProcessAccessError, RecordingStoppedWarning, describe, expected
from .._sizes import format_size, parse_size
from . import sidecar as _sidecar
from .mprof import FRAME_COLUMNS, MprofWriter, looks_like_mprofile, read_mprofile

COLUMNS = list(FRAME_COLUMNS)
_BYTES = ("rss", "uss", "pss", "swap")


def _check_interval(interval: Any, name: str = "interval") -> float:
    if isinstance(interval, bool) or not isinstance(interval, (int, float)):
        raise expected("a positive number of seconds", name, interval)
    if not math.isfinite(interval) or interval <= 0:
        raise expected("a positive number of seconds", name, interval)
    return float(interval)


def _argv(command: str | Sequence[str]) -> list[str]:
    if isinstance(command, str):
        try:
            argv = shlex.split(command)
        except ValueError as error:  # an unclosed quote
            raise expected(f"a command line shlex can split ({error})", "pid_or_command", command) from None
    else:
        if not all(isinstance(a, (str, bytes, os.PathLike)) for a in command):
            raise expected("a command as a list of str", "pid_or_command", command)
        argv = [os.fsdecode(a) for a in command]
    if not argv:
        raise expected("a pid or a non-empty command", "pid_or_command", command)
    return argv


def _start(argv: list[str]) -> tuple[psutil.Process, subprocess.Popen]:
    try:
        popen = subprocess.Popen(argv)
    except (OSError, ValueError) as error:
        raise ProcessAccessError(
            f"pid_or_command: expected a command that starts, received {shlex.join(argv)!r}: {error}"
        ) from error
    try:
        return psutil.Process(popen.pid), popen
    except psutil.Error as error:  # exited and was reaped before we looked: still a start
        popen.wait()
        raise ProcessAccessError(f"pid_or_command: {shlex.join(argv)!r} exited before it could be read") from error


def _attach(pid: int) -> psutil.Process:
    try:
        process = psutil.Process(pid)
        process.memory_full_info()
        return process
    except psutil.AccessDenied as error:
        raise ProcessAccessError(
            f"pid_or_command: expected a process we may read, received pid {pid} (access denied)"
        ) from error
    except psutil.NoSuchProcess as error:
        raise ProcessAccessError(f"pid_or_command: expected a running process, received pid {pid} (no such process)") from error


def _full_info(process: psutil.Process) -> tuple[float, float, float, float] | None:
    """rss, uss, pss, swap of one process; None once it is gone (or a zombie, which psutil reads as zeros)."""
    try:
        info = process.memory_full_info()
        if info.rss == 0 and process.status() == psutil.STATUS_ZOMBIE:
            return None
    except psutil.NoSuchProcess:  # includes ZombieProcess
        return None
    except psutil.AccessDenied as error:
        raise ProcessAccessError(f"pid {process.pid}: expected a process we may read (access denied)") from error
    return (
        float(info.rss),
        float(getattr(info, "uss", math.nan)),
        float(getattr(info, "pss", math.nan)),
        float(getattr(info, "swap", math.nan)),
    )


def _ended(process: psutil.Process, popen: subprocess.Popen | None) -> bool:
    """Whether the process has exited (a zombie counts): then its last reading is not trusted."""
    if popen is not None:
        return popen.poll() is not None
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


def _sample(process: psutil.Process, children: bool) -> tuple[float, ...] | None:
    """rss, uss, pss, swap, children for the process (and its descendants if asked); None when gone."""
    own = _full_info(process)
    if own is None:
        return None
    if not children:
        return (*own, math.nan)
    totals = list(own)
    count = 0
    try:
        kids = process.children(recursive=True)
    except psutil.NoSuchProcess:
        return None
    for kid in kids:
        try:
            reading = _full_info(kid)
        except ProcessAccessError:
            continue  # a child that dropped privileges: leave it out rather than end the watch
        if reading is None:
            continue
        totals = [a + b for a, b in zip(totals, reading, strict=False)]
        count += 1
    return (*totals, float(count))


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
                          stacklevel=4)

    def write(self, row: Sequence[float]) -> None:
        cells = [f"{row[0]:.4f}", f"{row[1]:.4f}"]
        cells += ["" if math.isnan(v) else str(int(v)) for v in row[2:]]
        self._handle.write(",".join(cells) + "\n")
        self._handle.flush()


class _DatSink:
    """mprof records one metric: RSS, what its default backend measures."""

    def __init__(self, handle: IO[str], meta: dict[str, Any], path: str) -> None:
        self._writer = MprofWriter(handle, meta.get("cmdline"))

    def write(self, row: Sequence[float]) -> None:
        self._writer.write(row[2], row[1])


def _first_record_line(path: str) -> str:
    """The first non-empty, non-comment line of an existing file (read at most 64 KiB: it may be anything)."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for _ in range(64):
            line = handle.readline(1024)
            if not line:
                return ""
            if line.strip() and not line.startswith("#"):
                return line.strip()
    return ""


def _open_out(out: str | os.PathLike) -> IO[str]:
    """Open ``out`` to append to, after checking it is a new file or a recording of the same kind.

    Done before a command is started, so that a bad ``out`` never leaves an orphan running.
    """
    from .files import check_writable_target, open_append

    if not isinstance(out, (str, os.PathLike)):
        raise expected("a file path (.csv, or .dat for mprof)", "out", out)
    path = os.fspath(out)
    check_writable_target(path, "out")
    if os.path.exists(path) and os.path.getsize(path) > 0:
        first = _first_record_line(path)
        if path.endswith(".dat"):
            if not looks_like_mprofile(first):
                raise expected("a new file or an mprof .dat to append to", "out", path)
        elif first != ",".join(COLUMNS):
            raise expected(f"a new file or a leakkit watch CSV to append to (header {','.join(COLUMNS)})", "out", path)
    return os.fdopen(open_append(path, "out"), "a", encoding="utf-8")


def _stop(popen: subprocess.Popen) -> None:
    """End a command we started, politely first: it is ours, and must not outlive the watch."""
    if popen.poll() is not None:
        return
    popen.terminate()
    try:
        popen.wait(timeout=2)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()


def watch(
    pid_or_command: int | str | Sequence[str] | subprocess.Popen,
    *,
    interval: float = 1.0,
    duration: float | None = None,
    out: str | os.PathLike | None = None,
    limit: int | float | str | None = None,
    children: bool = False,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Sample a process's RSS, USS, PSS and swap every ``interval`` seconds until it exits.

    Why from outside: a reading of the whole process is what a memory limit kills on, and it
    sees native memory the Python heap does not.

    Args:
        pid_or_command: a pid (int), a ``subprocess.Popen``, or a command to start: a list of
            argv or a string split with ``shlex``. A command watch() started that is still
            running when the watch ends (duration, limit, Ctrl-C) is terminated; a pid or a
            Popen you pass is left running.
        interval: seconds between samples (> 0).
        duration: stop after this many seconds (None: until the process exits).
        out: file to append each sample to as it is taken (flushed per line): a plain CSV (the
            columns above; pid, command, interval and limit go to ``<out>.json`` beside it), or an
            mprof ``.dat`` (``MEM`` = rss in MiB) when the name ends in ``.dat``.
        limit: a size (``"256MiB"``, ``"1.5 GB"``, bytes): the watch ends once RSS reaches it;
            kept in ``frame.attrs["limit_bytes"]`` for :func:`leakkit.analysis.forecast.forecast`.
        children: sum the process's descendants into each sample and count them.
        progress: tqdm bar when ``duration`` is set; None shows it only on a terminal.

    Returns:
        DataFrame with the columns described in this module's docstring; ``attrs`` holds ``pid``,
        ``cmdline``, ``interval``, ``limit_bytes``, ``ended_by`` ("exit", "duration", "limit",
        "interrupt") and ``returncode`` (for a started command that exited).

    Example::

        frame = watch(["python", "worker.py"], interval=0.5, duration=600, out="worker.csv")
        print(forecast(frame, "2GiB"))
    """
    interval = _check_interval(interval)
    if duration is not None:
        duration = _check_interval(duration, "duration")
    limit_bytes = parse_size(limit, "limit") if limit is not None else None
    for name, value in (("children", children),):
        if not isinstance(value, bool):
            raise expected("True or False", name, value)
    if progress is not None and not isinstance(progress, bool):
        raise expected("True, False or None", "progress", progress)
    popen: subprocess.Popen | None = None
    argv: list[str] | None = None
    if isinstance(pid_or_command, bool):
        raise expected("a pid, a Popen or a command", "pid_or_command", pid_or_command)
    if isinstance(pid_or_command, int):
        if pid_or_command <= 0:
            raise expected("a positive pid", "pid_or_command", pid_or_command)
        process = _attach(pid_or_command)
        try:
            cmdline: list[str] | None = process.cmdline()
        except psutil.Error:
            cmdline = None
    elif isinstance(pid_or_command, subprocess.Popen):
        popen = pid_or_command
        process = _attach(popen.pid)
        cmdline = [os.fspath(a) for a in popen.args] if isinstance(popen.args, (list, tuple)) else None
    elif isinstance(pid_or_command, (str, list, tuple)):
        argv = cmdline = _argv(pid_or_command)
    else:
        raise expected("a pid (int), a Popen, or a command (str or list of str)", "pid_or_command", pid_or_command)

    # out is opened (and checked) before a command starts: a bad out must never leave it running
    handle = _open_out(out) if out is not None else None
    sink: Any = None
    out_error: str | None = None
    rows: list[tuple[float, ...]] = []
    ended_by = "exit"
    finished = False  # only a command watch() started, and that did not end by itself, is ended here
    bar = None
    try:
        if argv is not None:
            process, popen = _start(argv)
        meta = {"pid": process.pid, "cmdline": cmdline, "interval": interval, "limit_bytes": limit_bytes}

        def record(row: tuple[float, ...] | None) -> None:
            """Write to ``out``; a full disk stops the file (warned once), never the watch."""
            nonlocal sink, out_error, handle
            if handle is None:
                return
            try:
                if sink is None:
                    sink = (_DatSink if os.fspath(out).endswith(".dat") else _CsvSink)(handle, meta, os.fspath(out))
                if row is not None:
                    sink.write(row)
            except (OSError, ValueError) as error:
                out_error = f"writing {os.fspath(out)!r} failed: {type(error).__name__}: {error}"
                warnings.warn(f"leakkit watch: {out_error}; the file stops here, the samples go on in memory",
                              RecordingStoppedWarning, stacklevel=3)
                _close_quietly(handle)
                handle = None

        record(None)
        # no tqdm object at all unless shown: even a disabled one starts tqdm's monitor thread, which
        # lives on in the process and perturbs later block counts (short traces' verdicts)
        show = progress if progress is not None else sys.stderr.isatty()
        bar = tqdm(total=duration, unit="s", desc=f"watch {process.pid}",
                   bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s{postfix}") if duration is not None and show else None
        start = time.monotonic()
        due = start
        try:
            while True:
                if popen is not None and popen.poll() is not None:
                    break
                reading = _sample(process, children)
                now = time.monotonic()
                if reading is None or _ended(process, popen):
                    break  # a reading of a process that ended meanwhile may be of its teardown: half unmapped
                row = (now - start, time.time(), *reading)
                rows.append(row)
                record(row)
                elapsed = now - start
                if bar is not None:
                    bar.n = min(elapsed, duration)
                    bar.set_postfix_str(f"rss {format_size(reading[0])}", refresh=True)
                if limit_bytes is not None and reading[0] >= limit_bytes:
                    ended_by = "limit"
                    break
                if duration is not None and elapsed >= duration:
                    ended_by = "duration"
                    break
                due = max(due + interval, now)  # a slow sample shifts the schedule instead of bunching samples
                if duration is not None:
                    due = min(due, start + duration)
                wait = max(0.0, due - time.monotonic())
                try:  # waiting on the process itself notices its exit at once
                    if popen is not None:
                        popen.wait(timeout=wait)
                    else:
                        process.wait(timeout=wait)
                    break
                except (subprocess.TimeoutExpired, psutil.TimeoutExpired):
                    pass
                except psutil.Error:
                    break
        except KeyboardInterrupt:
            ended_by = "interrupt"
        finished = ended_by == "exit"
    finally:
        if bar is not None:
            if finished:  # the process ended before the duration: the bar is full, not failed (a red bar)
                bar.total = bar.n
            bar.close()
        if handle is not None:
            _close_quietly(handle)
        if argv is not None and popen is not None and not finished:
            _stop(popen)  # ended by duration, limit, Ctrl-C, or an error of ours: it must not outlive the watch
    frame = pd.DataFrame(rows, columns=COLUMNS, dtype="float64")
    frame.attrs.update(
        source="watch",
        pid=process.pid,
        cmdline=cmdline,
        interval=interval,
        limit_bytes=limit_bytes,
        ended_by=ended_by,
        returncode=popen.returncode if popen is not None else None,
        path=os.fspath(out) if out is not None else None,
        out_error=out_error,
    )
    return frame


def _close_quietly(handle: IO[str]) -> None:
    try:
        handle.close()
    except OSError:  # the last flush on a full disk: the samples are in memory
        pass


_NON_NEGATIVE = frozenset({"t", "unix_time_s", "rss", "uss", "pss", "swap", "children", "allocated_blocks",
                           "traced_bytes", "gc0", "gc1", "gc2", "gc_collections", "threads", "monitor_cpu_s"})
_META_TYPES: dict[str, tuple[type, ...]] = {"pid": (int,), "interval": (int, float), "limit_bytes": (int, float),
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
            if key == "limit_bytes" and value <= 0:
                continue
            kept[key] = value
        elif key in ("cmdline", "argv") and isinstance(value, list) and all(isinstance(v, str) for v in value):
            kept[key] = value
    return kept


def _read_csv(path: str, handle: IO[str]) -> pd.DataFrame:
    header: list[str] | None = None
    header_line = 0
    meta: dict[str, Any] = {}
    rows: list[list[float]] = []
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
            continue
        try:
            if len(cells) != len(header):
                raise NotARecordingError(
                    f"{path}:{lineno}: expected {len(header)} comma-separated values ({','.join(header)}), "
                    f"received {len(cells)}"
                )
            rows.append([_cell(text, path, lineno, column) for text, column in zip(cells, header, strict=False)])
        except NotARecordingError:
            if lineno == len(lines) and not line.endswith("\n"):
                break  # the last line, cut short by a crash mid-write: everything before it stands
            raise
    if header is None:
        raise NotARecordingError(f"{path}: expected a leakkit CSV with a header line, received no data")
    frame = pd.DataFrame(rows, columns=header, dtype="float64")
    if "unix_time_s" in frame.columns and len(frame) and frame["unix_time_s"].notna().all():
        # recompute t: appended sessions each restart their own t at 0
        frame["t"] = frame["unix_time_s"] - frame["unix_time_s"].iloc[0]
    sidecar = _sidecar.read(path)
    if sidecar is not None and sidecar["sessions"]:
        sessions = [_checked_meta(session) for session in sidecar["sessions"]]
        meta = {**sessions[-1], "sessions": sessions}
    frame.attrs.update({key: value for key, value in meta.items()}, source="leakkit", path=path, header_line=header_line)
    return frame


def load(path: str | os.PathLike) -> pd.DataFrame:
    """Read a leakkit CSV (from :func:`watch` or the monitor) or an mprof ``.dat`` into a DataFrame.

    Why one reader: forecasts and plots should not care which tool recorded the timeline.
    The watch shape is described in this module's docstring; monitor CSVs keep their own extra
    columns. ``attrs`` gets the metadata of the sidecar ``<path>.json`` (the latest session's
    keys, and ``sessions``), or of a ``# leakkit ...`` first line in recordings made before
    there were sidecars. Raises NotARecordingError with the line number of the first malformed line; a
    malformed last line without a newline (cut short by a crash mid-write) is dropped instead.

    Example::

        frame = load("worker.csv")        # or load("mprofile_20240101.dat")
    """
    if not isinstance(path, (str, os.PathLike)):
        raise expected("a path to a recording", "path", path)
    path = os.fspath(path)
    try:
        handle = open(path, encoding="utf-8", errors="replace")
    except OSError as error:
        raise NotARecordingError(f"path: expected a readable recording, received {describe(path)}: {error}") from error
    with handle:
        first = next((line for line in handle if line.strip()), "")
        if looks_like_mprofile(first):
            handle.close()
            return read_mprofile(path)
        handle.seek(0)
        return _read_csv(path, handle)
