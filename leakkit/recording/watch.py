"""Watch a process's memory from outside, over time, so growth is confirmed before anyone bisects.

:func:`watch` samples a process (by pid, or a command it starts, like ``mprof run``) and every
process it forks (a server's workers, recycled or respawned: :mod:`leakkit.recording.tree`),
and returns a long DataFrame, one row per process per sample (columns in
:mod:`leakkit.recording.timeline`); with ``out`` it appends every sample to a file as it goes,
which :func:`leakkit.recording.timeline.load` reads back into the same shape.

Why a module of its own: sampling another process is its own trade. It may exit (or become a
zombie) between two readings, refuse to be read, or be a command watch() started and must not
leave running; a sample must never be of its teardown. memory-profiler's ``memory_usage``
samples one metric per run, so leakkit reads each process once per sample (rss, uss, pss and swap
from one ``smaps_rollup`` walk where Linux has it, else psutil's ``memory_full_info``) and keeps
mprof's file format.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import psutil
from tqdm.auto import tqdm

from .. import _checks
from .._errors import ProcessAccessError, RecordingStoppedWarning, expected
from .._sizes import format_size, parse_size
from ..probes import process as probes
from ..probes.cgroup import memory_limit
from .timeline import COLUMNS, close_quietly, open_out, open_sink
from .tree import Tree


def _check_interval(interval: Any, name: str = "interval") -> float:
    return _checks.seconds(interval, name)


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
        probes.read_memory(pid)
        return process
    except psutil.AccessDenied as error:
        raise ProcessAccessError(
            f"pid_or_command: expected a process we may read, received pid {pid} (access denied)"
        ) from error
    except psutil.NoSuchProcess as error:
        raise ProcessAccessError(f"pid_or_command: expected a running process, received pid {pid} (no such process)") from error


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


def _stop(popen: subprocess.Popen) -> None:
    """End a command we started and what it started, politely first: they are ours, and must not
    outlive the watch (:func:`leakkit._signals.end_tree`)."""
    from .._signals import end_tree

    end_tree(popen)


def watch(
    pid_or_command: int | str | Sequence[str] | subprocess.Popen,
    *,
    interval: float = 1.0,
    duration: float | None = None,
    out: str | os.PathLike | None = None,
    limit: int | float | str | None = None,
    children: bool = True,
    progress: bool | None = None,
    _on_sample: Callable[[list[tuple], Tree], None] | None = None,
) -> pd.DataFrame:
    """Sample the RSS, USS, PSS and swap of a process and of each of its descendants, every
    ``interval`` seconds, until it exits.

    Why from outside: a reading of the whole process is what a memory limit kills on, and it
    sees native memory the Python heap does not. Why each descendant apart: a server's memory
    limit is per worker, and its workers come and go.

    Args:
        pid_or_command: a pid (int), a ``subprocess.Popen``, or a command to start: a list of
            argv or a string split with ``shlex``. A command watch() started that is still
            running when the watch ends (duration, limit, Ctrl-C) is terminated; a pid or a
            Popen you pass is left running.
        interval: seconds between samples (> 0).
        duration: stop after this many seconds (None: until the process exits).
        out: file to append each sample to as it is taken (flushed per line): a plain CSV (the
            frame's columns; pid, command, interval and limit go to ``<out>.json`` beside it), or an
            mprof ``.dat`` (``MEM`` = rss in MiB) when the name ends in ``.dat``.
        limit: a size (``"256MiB"``, ``"1.5 GB"``, bytes), per process: the watch ends once the
            RSS of any process watched reaches it; kept in ``frame.attrs["limit_bytes"]`` for
            :func:`leakkit.reports.forecast.forecast`. Without one, the cgroup's memory limit (a
            container's) is kept in ``attrs["cgroup_limit_bytes"]`` and ``attrs["cgroup_limit_source"]``.
        children: also watch every descendant, each on rows of its own (its ``pid``, ``role``
            ``worker``); False: the process alone. (Earlier releases watched the process alone by
            default, and with ``children=True`` summed its descendants into its rows: no limit
            counts that sum. An older script's ``forecast(frame)`` on a process that forked now
            says which pids it holds; ``forecast(frame, pid=frame.attrs["pid"])`` reads the
            process watched, as it used to, and ``forecast_workers(frame)`` every one.)
        progress: tqdm bar when ``duration`` is set; None shows it only on a terminal.

    Returns:
        DataFrame with the columns of :mod:`leakkit.recording.timeline`, one row per process per
        sample; ``attrs`` holds ``pid`` (the process watched), ``cmdline``, ``interval``,
        ``limit_bytes``, ``ended_by`` ("exit", "duration", "limit", "interrupt"), ``returncode``
        (for a started command that exited), ``limit_pid`` (which process reached the limit),
        ``ended`` (pid -> when its series ended) and ``created`` (pid -> its start, Unix seconds).

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
    handle = open_out(out) if out is not None else None
    sink: Any = None
    out_error: str | None = None
    rows: list[tuple] = []
    ended_by = "exit"
    limit_pid: int | None = None
    finished = False  # only a command watch() started, and that did not end by itself, is ended here
    bar = None
    try:
        if argv is not None:
            process, popen = _start(argv)
        tree = Tree(process, follow=children)
        cgroup = memory_limit(process.pid)
        meta = {"pid": process.pid, "cmdline": cmdline, "interval": interval, "limit_bytes": limit_bytes,
                "cgroup_limit_bytes": cgroup.limit_bytes if cgroup else None,
                "cgroup_limit_source": cgroup.source if cgroup else None}

        def record(row: list[tuple] | None) -> None:
            """Write to ``out``; a full disk stops the file (warned once), never the watch."""
            nonlocal sink, out_error, handle
            if handle is None:
                return
            try:
                if sink is None:
                    sink = open_sink(handle, meta, os.fspath(out))
                if row is not None:
                    sink.write(row)
            except (OSError, ValueError) as error:
                out_error = f"writing {os.fspath(out)!r} failed: {type(error).__name__}: {error}"
                warnings.warn(f"leakkit watch: {out_error}; the file stops here, the samples go on in memory",
                              RecordingStoppedWarning, stacklevel=3)
                close_quietly(handle)
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
                now = time.monotonic()
                readings = tree.sample(now - start)
                if readings is None or _ended(process, popen):
                    break  # a reading of a process that ended meanwhile may be of its teardown: half unmapped
                stamp = time.time()
                sample = [(now - start, stamp, r.pid, r.ppid, r.role, r.rss, r.uss, r.pss, r.swap) for r in readings]
                rows.extend(sample)
                record(sample)
                elapsed = now - start
                if _on_sample is not None:
                    _on_sample(sample, tree)
                if bar is not None:
                    bar.n = min(elapsed, duration)
                    bar.set_postfix_str(f"rss {format_size(max(r.rss for r in readings))}", refresh=True)
                over = [r for r in readings if limit_bytes is not None and r.rss >= limit_bytes]
                if over:
                    ended_by, limit_pid = "limit", over[0].pid
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
        if finished and popen is not None:
            try:  # it exited (a zombie, or reaped): its code is what a failed command is judged by
                popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
    finally:
        if bar is not None:
            if finished:  # the process ended before the duration: the bar is full, not failed (a red bar)
                bar.total = bar.n
            bar.close()
        if handle is not None:
            close_quietly(handle)
        if argv is not None and popen is not None and not finished:
            _stop(popen)  # ended by duration, limit, Ctrl-C, or an error of ours: it must not outlive the watch
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame = frame.astype({c: "float64" for c in COLUMNS if c not in ("pid", "ppid", "role")})
    frame = frame.astype({"pid": "int64", "ppid": "int64", "role": "object"})
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
        limit_pid=limit_pid,
        cgroup_limit_bytes=cgroup.limit_bytes if cgroup else None,
        cgroup_limit_source=cgroup.source if cgroup else None,
        ended=dict(tree.ended),
        created=dict(tree.created),
    )
    return frame

