"""An always-on, low-overhead memory monitor for a long-running worker, from inside the process.

Why: a leak that needs hours to show cannot be reproduced on demand; the worker has to record
its own timeline and, when growth is confirmed, what was growing at that moment. A daemon thread
reads cheap counters every ``interval`` seconds (about 0.1 ms per sample: no heap walk, no
collection) and appends them to a CSV, one flushed line each, so a crash loses at most the
last interval. Heavy work (a type summary, tracemalloc sites) happens only at snapshots: when
they are due and what they say is :mod:`leakkit.recording.monitor_snapshot`.

CSV columns, a plain header and rows (read it back with :func:`leakkit.recording.timeline.load`, or any CSV
reader; forecast it with :func:`leakkit.reports.forecast.forecast`); pid, argv and interval of each
session go to the JSON sidecar ``<path>.json`` (:mod:`leakkit.recording.sidecar`):

- ``t`` (s since the monitor started), ``unix_time_s``.
- ``rss`` (bytes; from ``/proc/self/statm``, else psutil).
- ``allocated_blocks`` (``sys.getallocatedblocks()``: Python's live memory blocks).
- ``gc0``, ``gc1``, ``gc2`` (``gc.get_count()``), ``gc_collections`` (collections so far, all generations).
- ``open_fds``, ``threads``.
- ``traced_bytes`` (tracemalloc's traced heap; empty when it is off).
- ``monitor_cpu_s`` (CPU time the monitor thread has used: its own overhead).
"""
from __future__ import annotations

import atexit
import collections
import os
import signal as signal_module
import statistics
import sys
import threading
import time
import tracemalloc
from typing import IO, Any

import pandas as pd

from .._errors import InvalidArgumentError, check_options, expected
from .._sizes import format_size, parse_size
from . import sidecar as _sidecar
from .monitor_counters import Counters
from .monitor_snapshot import (
    allocation_traces,
    growing_types,
    growth_confirmed,
    header_lines,
    site_lines,
    type_lines,
    type_summary,
    write_snapshot,
)

COLUMNS = ["t", "unix_time_s", "rss", "allocated_blocks", "gc0", "gc1", "gc2", "gc_collections",
           "open_fds", "threads", "traced_bytes", "monitor_cpu_s"]
_OPTIONS = frozenset({"interval", "window", "min_growth", "auto_snapshot", "signal", "baseline", "top"})


class Monitor:
    """A background recorder of cheap memory counters with growth-triggered snapshot reports.

    Use :func:`monitor` to create one. ``path`` is the CSV; ``snapshots`` lists the reports
    written; ``overhead`` is the monitor thread's CPU time over wall time so far.
    """

    def __init__(self, path: str | os.PathLike, *, interval: float, window: int, min_growth: int,
                 auto_snapshot: bool, signal: bool, baseline: bool, top: int) -> None:
        if signal:
            self._check_signal()  # before anything is opened
        self.path = os.fspath(path)
        self.interval = interval
        self.window = window
        self.min_growth = min_growth
        self.auto_snapshot = auto_snapshot
        self.top = top
        self.snapshots: list[str] = []
        self.last_error: Exception | None = None  # the thread's last failure (a report, the CSV); it goes on
        self._baseline_wanted = baseline
        self._counters: Counters | None = None
        self._recent: collections.deque[float] = collections.deque(maxlen=window)
        self._last_types: pd.DataFrame | None = None
        self._last_traces: tracemalloc.Snapshot | None = None
        self._armed_at: float | None = None  # RSS above which the next growth snapshot may come
        self._since_snapshot = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._signalled = False
        self._cpu_s = 0.0
        self._start = time.monotonic()
        self._stopped_at: float | None = None
        self._previous_handler: Any = None
        self._signal = signal
        self.write_error: str | None = None  # why the CSV stopped (a full disk, ...); sampling goes on
        self._warned = False
        self._handle: IO[str] | None = self._open()  # checked first: nothing else is open yet if it fails
        try:
            self._counters = Counters()
            if signal:
                self._previous_handler = signal_module.signal(signal_module.SIGUSR2, self._on_signal)
            self._thread = threading.Thread(target=self._run, name="leakkit-monitor", daemon=True)
            self._thread.start()
        except BaseException:
            self._close_file()
            if getattr(self, "_counters", None) is not None:
                self._counters.close()
            raise
        atexit.register(self.stop)

    # -- recording ---------------------------------------------------------------------------
    def _open(self) -> IO[str] | None:
        """Open the CSV to append to; refuse a path that can never be one (before any thread starts).

        A file that opens but cannot be written (an already full disk) is not refused: the monitor
        runs without it, with a warning (:attr:`write_error`), as it would if the disk filled later.
        """
        from .files import check_writable_target, open_append

        check_writable_target(self.path, "path")
        if os.path.exists(self.path) and os.path.getsize(self.path) > 0:
            from .timeline import first_record_line

            if first_record_line(self.path) != ",".join(COLUMNS):
                raise expected(f"a new file or a leakkit monitor CSV (header {','.join(COLUMNS)})", "path", self.path)
        handle = os.fdopen(open_append(self.path, "path"), "a", encoding="utf-8")
        try:
            if handle.tell() == 0:
                handle.write(",".join(COLUMNS) + "\n")
                handle.flush()
        except OSError as error:
            self._handle = handle
            self._file_failed(error)
            return None
        try:  # the context goes beside the CSV, which stays a plain header and rows
            _sidecar.add_session(self.path, "monitor", {"pid": os.getpid(), "argv": list(sys.argv),
                                                        "interval": self.interval})
        except OSError as error:  # the metadata is lost, not the samples
            self._warn_once(f"writing {_sidecar.path_for(self.path)!r} failed: {type(error).__name__}: {error}; "
                            f"{self.path!r} goes on without its pid, argv and interval")
        return handle

    def _file_failed(self, error: BaseException) -> None:
        """The CSV cannot be written any more: stop it (warned once), keep sampling and snapshots."""
        self.write_error = f"writing {self.path!r} failed: {type(error).__name__}: {error}"
        self.last_error = error if isinstance(error, Exception) else None
        self._close_file()
        self._warn_once(f"{self.write_error}; the recording stops there, the monitor goes on")

    def _warn_once(self, message: str) -> None:
        """One warning for the monitor's files in its life (the sidecar, then the CSV, on one full disk)."""
        if self._warned:
            return
        self._warned = True
        try:
            import warnings

            from .._errors import RecordingStoppedWarning

            warnings.warn(f"leakkit monitor: {message}", RecordingStoppedWarning, stacklevel=3)
        except Exception:  # warnings as errors: still nothing to raise into the application
            pass

    def _close_file(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            try:
                handle.close()
            except OSError:  # the last flush on a full disk
                pass

    def _write(self, row: dict[str, Any]) -> None:
        handle = self._handle
        if handle is None:
            return
        cells = [f"{row['t']:.4f}", f"{row['unix_time_s']:.4f}"]
        cells += ["" if row[c] is None else str(row[c]) for c in COLUMNS[2:-1]]
        cells.append(f"{row['monitor_cpu_s']:.6f}")
        try:
            handle.write(",".join(cells) + "\n")
            handle.flush()
        except ValueError:  # closed by stop() racing this sample
            pass
        except OSError as error:  # ENOSPC, EFBIG, EIO
            self._file_failed(error)

    def _run(self) -> None:
        """The thread: sample, write, maybe snapshot; nothing it meets ends it before stop()."""
        cpu0 = time.thread_time()
        try:
            if self._baseline_wanted:
                with self._lock:
                    self._last_types = type_summary()
                    if tracemalloc.is_tracing():
                        self._last_traces = allocation_traces()
        except Exception as error:  # no baseline: the first report compares with nothing
            self.last_error = error
        due = time.monotonic()
        while not self._stopping:
            try:
                row = self._counters.sample(self._start, self._cpu_s)
                self._write(row)
                self._recent.append(row["rss"])
                self._since_snapshot += 1
                if self._signalled:
                    self._signalled = False
                    self._report("signal SIGUSR2", row)
                elif self.auto_snapshot and self._growing(row["rss"]):
                    rise = statistics.median(list(self._recent)[-max(1, self.window // 4):]) - self._recent[0]
                    self._armed_at = row["rss"] + self.min_growth
                    self._report(f"growth confirmed: rss {format_size(rise, signed=True)} over the last "
                                 f"{len(self._recent)} samples", row)
            except Exception as error:  # a failed sample or report must not end the monitor; kept for the owner
                self.last_error = error
            self._cpu_s = time.thread_time() - cpu0
            due = max(due + self.interval, time.monotonic())  # behind schedule: sample now, then on time
            self._wake.wait(max(0.0, due - time.monotonic()))
            self._wake.clear()
        self._cpu_s = time.thread_time() - cpu0

    def _growing(self, rss: float) -> bool:
        if len(self._recent) < self.window or self._since_snapshot < self.window:
            return False
        if self._armed_at is not None and rss < self._armed_at:
            return False
        return growth_confirmed(list(self._recent), min_growth=self.min_growth)

    # -- snapshots ---------------------------------------------------------------------------
    def _report(self, reason: str, row: dict[str, Any] | None = None) -> str:
        with self._lock:
            if row is None:
                row = self._counters.sample(self._start, self._cpu_s)
            from . import monitor_heap

            number = len(self.snapshots) + 1
            lines = header_lines(number, reason, row)
            objs = monitor_heap.objects()  # once for the summary and the paths; dropped before we return
            try:
                types = type_summary(objs)
                growing = growing_types(self._last_types, types, self.top)
                since = "the previous snapshot" if self.snapshots else ("the start" if self._last_types is not None else None)
                self._last_types = types
                lines += type_lines(growing, since, objs, self)
            finally:
                del objs
            if tracemalloc.is_tracing():
                traces = allocation_traces()
                lines += site_lines(traces, self._last_traces, self.top)
                self._last_traces = traces
            path = write_snapshot(self.path, number, "\n".join(lines) + "\n")
            self.snapshots.append(path)
            self._since_snapshot = 0
            return path

    def snapshot(self, reason: str = "on demand") -> str:
        """Write a snapshot report now (from the calling thread); returns its path."""
        return self._report(reason)

    # -- signal ------------------------------------------------------------------------------
    @staticmethod
    def _check_signal() -> None:
        if not hasattr(signal_module, "SIGUSR2"):
            raise InvalidArgumentError("signal: expected a platform with SIGUSR2, received one without it")
        if threading.current_thread() is not threading.main_thread():
            raise InvalidArgumentError("signal: expected monitor() called from the main thread (signal handlers live there)")

    def _on_signal(self, signum: int, frame: Any) -> None:
        # only flag it: the report is written by the monitor thread, not inside a signal handler
        self._signalled = True
        self._wake.set()

    # -- life cycle --------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True until :meth:`stop` (a full disk or a failed report does not end the thread: see ``last_error``)."""
        return self._thread.is_alive()

    @property
    def overhead(self) -> float:
        """The monitor thread's CPU time divided by wall time since start (0.01 = 1% of one core)."""
        wall = (self._stopped_at or time.monotonic()) - self._start
        return self._cpu_s / wall if wall > 0 else 0.0

    def stop(self) -> None:
        """Stop the thread, close the CSV and restore the signal handler; safe to call twice, never raises."""
        if self._stopping and self._stopped_at is not None:
            return
        self._stopping = True
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        self._stopped_at = time.monotonic()
        self._close_file()
        self._counters.close()
        self._last_traces = None
        if self._signal and self._previous_handler is not None:
            try:
                signal_module.signal(signal_module.SIGUSR2, self._previous_handler)
            except ValueError:  # not the main thread: leave it, our handler only sets a flag
                pass
        atexit.unregister(self.stop)

    def read(self) -> pd.DataFrame:
        """The recording so far as a DataFrame (the CSV columns above)."""
        from .timeline import load

        return load(self.path)

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __str__(self) -> str:
        state = "running" if self.running else "stopped"
        return (f"leakkit monitor ({state}) -> {self.path}: every {self.interval:g} s, "
                f"{len(self.snapshots)} snapshot(s), overhead {self.overhead:.2%} of one core")

    def _repr_html_(self) -> str:
        import html

        return f"<p>{html.escape(str(self))}</p>"


def monitor(
    path: str | os.PathLike,
    *,
    interval: float = 1.0,
    window: int = 60,
    min_growth: int | float | str = "16MiB",
    auto_snapshot: bool = True,
    signal: bool = False,
    baseline: bool = True,
    top: int = 15,
    **unknown: Any,
) -> Monitor:
    """Start recording this process's memory counters to ``path`` in a daemon thread.

    Args:
        path: the CSV to append to (created if missing).
        interval: seconds between samples (> 0).
        window: samples the growth rule looks at (:mod:`leakkit.recording.monitor_snapshot`).
        min_growth: RSS growth over a window that counts ("16MiB", bytes).
        auto_snapshot: write a snapshot report when growth is confirmed.
        signal: write a snapshot on SIGUSR2 (opt-in: it replaces that signal's handler until
            :meth:`Monitor.stop`; call from the main thread).
        baseline: take a type summary at the start, so the first report shows what grew since.
        top: rows per table in snapshot reports.

    Example::

        with monitor("/var/log/worker-memory.csv", interval=5, signal=True) as mon:
            serve_forever()
        # later: forecast(load("/var/log/worker-memory.csv"), "2GiB")
    """
    check_options("monitor", unknown, _OPTIONS)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval > 0 \
            or interval == float("inf"):
        raise expected("a positive number of seconds", "interval", interval)
    for name, value, minimum in (("window", window, 8), ("top", top, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise expected(f"an int >= {minimum}", name, value)
    for name, value in (("auto_snapshot", auto_snapshot), ("signal", signal), ("baseline", baseline)):
        if not isinstance(value, bool):
            raise expected("True or False", name, value)
    if not isinstance(path, (str, os.PathLike)):
        raise expected("a file path", "path", path)
    return Monitor(path, interval=float(interval), window=window, min_growth=parse_size(min_growth, "min_growth"),
                   auto_snapshot=auto_snapshot, signal=signal, baseline=baseline, top=top)
