"""An always-on, light memory monitor that lives in a worker process, from inside it.

Why: a leak that needs hours to show cannot be reproduced on demand; the worker has to record its
own timeline and, when growth is sustained, what was growing at that moment. A daemon thread reads
cheap counters every ``interval`` seconds (:mod:`leakkit.recording.monitor_counters`: no heap walk,
no collection, no numpy or pandas: it adds well under 2 MiB and 0.5% of a core to a worker,
``benchmarks/monitor.py``), appends them to a CSV one row per write, judges its own growth rate
(:mod:`leakkit.recording.monitor_rate`), and takes a snapshot when a leak is sustained
(:mod:`leakkit.recording.monitor_capture`).

Fork-safe: a monitor started before a fork (gunicorn ``--preload``, a pool) goes on in every child
(``os.register_at_fork``) with its own thread, files and state; ``path`` may hold ``{pid}`` (one
recording per process, ``worker-{pid}.csv``), and every row has a ``pid`` column anyway. It
takes no signal (servers own them: gunicorn uses HUP, USR1, USR2, TTIN, TTOU, WINCH, QUIT, INT,
TERM, CHLD); a snapshot on demand is :meth:`Monitor.snapshot`, which ``leakkit snapshot PID`` calls.

CSV columns (read it back with :func:`leakkit.recording.timeline.load`, or any CSV reader; forecast
it with :func:`leakkit.reports.forecast.forecast`); pid, argv, interval, role, service, version and
limit of each session go to the JSON sidecar ``<path>.json`` (:mod:`leakkit.recording.sidecar`):

- ``t`` (s since the first row of the file), ``unix_time_s``, ``pid``.
- ``rss`` (bytes; ``/proc/self/statm``), ``uss``, ``pss``, ``swap`` (bytes; one
  ``/proc/self/smaps_rollup`` read every 10 s and around snapshots, RSS of those rows from the
  same read; their cells are empty in the rows between: the rollup's page walk is the one costly
  reading, 0.4-3 ms in a busy 60 MiB process).
- ``python_heap`` (bytes held through pymalloc and malloc; empty while tracemalloc traces, whose
  hook hides pymalloc's count), ``allocated_blocks``.
- ``gc0``, ``gc1``, ``gc2`` (``gc.get_count()``), ``gc_collections``, ``open_fds``, ``threads``.
- ``traced_bytes`` (tracemalloc's traced heap; empty when it is off).
- ``monitor_cpu_s`` (CPU time the monitor thread has used: its own overhead).
- ``snapshots`` (snapshots finished so far), ``snapshot_rss``, ``snapshot_uss``, ``snapshot_pss``
  (bytes: what leakkit's snapshots added to that column so far, tracemalloc while a snapshot
  traces included; subtract them to read the application alone, as forecasts do).
"""
from __future__ import annotations

import atexit
import os
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from .. import _checks
from .._errors import InvalidArgumentError, check_options, expected
from . import monitor_export, monitor_rate
from .monitor_counters import Counters
from .monitor_file import RowFile
from .monitor_options import SUSTAIN_S, checked, sustain_of
from .monitor_run import Runner

COLUMNS = ["t", "unix_time_s", "pid", "rss", "uss", "pss", "swap", "python_heap", "allocated_blocks", "gc0", "gc1",
           "gc2", "gc_collections", "open_fds", "threads", "traced_bytes", "monitor_cpu_s", "snapshots",
           "snapshot_rss", "snapshot_uss", "snapshot_pss"]
HEADLINE = "rss"  # what the rate, the verdict and the limit read: unsharing after a fork never moves it
_OPTIONS = frozenset({"interval", "window", "sustain", "min_growth", "auto_snapshot", "trace_window", "signal",
                      "baseline", "top", "role", "service", "version", "limit", "fork", "export"})
_MONITORS: list[Monitor] = []  # every monitor started in this process (or copied into it by a fork)
_REGISTRY_LOCK = threading.Lock()


def active() -> list[Monitor]:
    """The monitors running in this process, oldest first (a forked child's copies included)."""
    pid = os.getpid()
    return [m for m in list(_MONITORS) if m.running and m.pid == pid]


class Monitor:
    """A background recorder of this process's memory that judges its own growth and snapshots a leak.

    Use :func:`monitor` to create one. ``path`` is this process's CSV; ``snapshots`` lists the
    reports written; ``overhead`` is the monitor thread's CPU time over wall time so far;
    ``last_error`` the last failure the thread caught (it never raises into the application).
    """

    @_checks.strict
    def __init__(self, path: str | os.PathLike, *, interval: float = 1.0, window: int | None = None,
                 sustain: float = SUSTAIN_S, min_growth: int = 1 << 20, auto_snapshot: bool = True,
                 trace_window: float = 30.0, signal: bool = False, baseline: bool = False, top: int = 15,
                 role: str | None = None, service: str | None = None, version: str | None = None,
                 limit_bytes: int | None = None, fork: bool = True, export: Any = None) -> None:
        self.template = os.fspath(path)
        self.interval = interval
        self.sustain = sustain_of(window, sustain, interval)
        self.min_growth = min_growth
        self.auto_snapshot = auto_snapshot
        self.trace_window = trace_window
        self.top = top
        self.role, self.service, self.version = role, service, version
        self.limit_bytes = limit_bytes
        self.follow_fork = fork
        self.baseline = baseline
        self.last_error: Exception | None = None
        self._exports = monitor_export.exporters(export)  # checked first: nothing is started if it fails
        self._listeners: list[Callable[[dict[str, Any]], Any]] = list(self._exports)
        self._stopped_at: float | None = None
        self._signal = signal
        self._previous_handler: Any = None
        self._fresh_state()
        self.path = self._format_path()
        self._file = RowFile(self.path, COLUMNS, self._meta())  # checked first: nothing else is open if it fails
        try:
            self._counters = Counters()
            if signal:
                self._take_signal()
            self._start_thread()
        except BaseException:
            self._file.close()
            if getattr(self, "_counters", None) is not None:
                self._counters.close()
            raise
        with _REGISTRY_LOCK:
            _MONITORS.append(self)
        atexit.register(self.stop)

    @property
    def window(self) -> int:
        """Samples in the growth window (``sustain / interval``): the older spelling of ``sustain``."""
        return max(1, round(self.sustain / self.interval))

    def _fresh_state(self) -> None:
        """What belongs to one process: a forked child starts its own."""
        self.pid = os.getpid()
        self.snapshots: list[str] = []
        self._stopping = False
        self._wake = threading.Event()
        self._runner = Runner(self, monitor_rate.History(self.sustain))
        self._start = time.monotonic()
        self._cpu_s = 0.0

    def _format_path(self) -> str:
        return self.template.format(pid=os.getpid(), role=self.role or "process", service=self.service or "service")

    def _meta(self) -> dict[str, Any]:
        return {"interval": self.interval, "role": self.role, "service": self.service, "version": self.version,
                "limit_bytes": self.limit_bytes}

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leakkit-monitor", daemon=True)
        self._thread.start()

    # -- the thread --------------------------------------------------------------------------
    def _run(self) -> None:
        """Sample, write, judge, maybe snapshot, tell the listeners; nothing it meets ends it before stop()."""
        cpu0 = time.thread_time()
        due = time.monotonic()
        runner = self._runner
        if self.baseline:
            try:
                runner.take_baseline()
            except Exception as error:  # no baseline: the first snapshot compares with nothing
                self.last_error = error
        while not self._stopping:
            try:
                row = runner.sample(self._counters, self._start, self._cpu_s)
                self._file.write(row)
                if self._file.exception is not None:  # the file stopped (warned once): the owner may ask why
                    self.last_error, self._file.exception = self._file.exception, None
                runner.judge()
                runner.auto_snapshot()
                if self._listeners:
                    self._notify()
            except Exception as error:  # a failed sample or report must not end the monitor; kept for the owner
                self.last_error = error
            self._cpu_s = time.thread_time() - cpu0
            due = max(due + self.interval, time.monotonic())  # behind schedule: sample now, then on time
            self._wake.wait(max(0.0, due - time.monotonic()))
            self._wake.clear()
        self._cpu_s = time.thread_time() - cpu0

    def _notify(self) -> None:
        status = self.status()
        for listener in list(self._listeners):
            try:
                listener(dict(status))
            except Exception as error:  # an exporter's bug is the exporter's: never the application's
                self.last_error = error

    # -- what users ask ----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """This process's memory and the monitor's judgement now, as a plain JSON-able dict.

        Keys: pid, role, service, version, t_s, rss_bytes, pss_bytes, uss_bytes, swap_bytes,
        python_heap_bytes, column (the headline, ``rss``), rate_bytes_per_s, rate_low_bytes_per_s,
        rate_high_bytes_per_s (its growth rate and ~95% interval, leakkit's own snapshots left
        out; None until known), verdict ("unknown", "warming up", "leak", "plateau", "flat"),
        limit_bytes, seconds_to_limit (None without a limit or a leak), snapshots (int),
        last_snapshot (path or None), snapshot_bytes (what snapshots added to the headline),
        path, interval, last_error (str or None).
        """
        return self._runner.status()

    def add_listener(self, listener: Callable[[dict[str, Any]], Any]) -> None:
        """Call ``listener(status)`` from the monitor thread after each sample (a metrics exporter
        plugs in here); what it raises goes to :attr:`last_error`, never into the application."""
        if not callable(listener):
            raise expected("a callable taking the status dict", "listener", listener)
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[dict[str, Any]], Any]) -> None:
        """Stop calling ``listener`` (absent: nothing happens)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    @_checks.strict
    def snapshot(self, reason: str = "on demand", *, duration: float = 0.0) -> str:
        """Write a snapshot report now, from the calling thread; returns its path.

        ``duration`` > 0: watch that many seconds first (a type summary at each end, allocations
        traced in between), so the report says what grew, where it was allocated and what keeps it;
        0: one look, compared with the previous snapshot. Waits for a snapshot already under way.
        """
        duration = _checks.number(duration, "duration", minimum=0, maximum=_checks.SECONDS_MAX,
                                  what="a number of seconds >= 0")
        return self._runner.snapshot(str(reason), duration)

    @property
    def running(self) -> bool:
        """True until :meth:`stop` (a full disk or a failed report does not end the thread: see ``last_error``)."""
        return self._thread.is_alive() and not self._stopping

    @property
    def overhead(self) -> float:
        """The monitor thread's CPU time divided by wall time since start (0.01 = 1% of one core)."""
        wall = (self._stopped_at or time.monotonic()) - self._start
        return self._cpu_s / wall if wall > 0 else 0.0

    @property
    def write_error(self) -> str | None:
        """Why the CSV stopped (a full disk, ...), or None; sampling and snapshots go on."""
        return self._file.error

    def stop(self) -> None:
        """Stop the thread, close the CSV and the ``export`` exporters; safe to call twice, never raises."""
        if self._stopping and self._stopped_at is not None:
            return
        self._stopping = True
        self._wake.set()
        if self._thread is not threading.current_thread() and self.pid == os.getpid():
            self._thread.join()
        self._stopped_at = time.monotonic()
        self._runner.close()
        self._file.close()
        self._counters.close()
        self._give_signal_back()
        for error in monitor_export.close(self._exports):  # theirs: FleetWriter's last rows, the endpoint
            self.last_error = error
        atexit.unregister(self.stop)
        with _REGISTRY_LOCK:
            if self in _MONITORS:
                _MONITORS.remove(self)

    def read(self) -> Any:
        """The recording so far as a DataFrame (the CSV columns above; imports pandas)."""
        from .timeline import load

        return load(self.path)

    # -- fork ------------------------------------------------------------------------------
    def _forked(self) -> None:
        """In a forked child, right after the fork: this process's own thread, files and state."""
        self._runner.abandon()  # the parent's snapshot under way is the parent's (tracemalloc stopped)
        if not self.follow_fork or self._stopping:
            self._stopping = True
            self._stopped_at = time.monotonic()
            self._file.close()
            self._counters.close()
            return
        if self.role == "master":
            self.role = "worker"
        self._fresh_state()
        self.last_error = None
        self._counters.reopen()
        self.path = self._format_path()
        self._file.reopen(self.path, self._meta())
        self._start_thread()

    # -- signal (discouraged) ------------------------------------------------------------------
    def _take_signal(self) -> None:
        import signal as signals

        if not hasattr(signals, "SIGUSR2"):
            raise InvalidArgumentError("signal: expected a platform with SIGUSR2, received one without it")
        if threading.current_thread() is not threading.main_thread():
            raise InvalidArgumentError("signal: expected monitor() called from the main thread (signal handlers live there)")
        warnings.warn("leakkit monitor: signal=True takes SIGUSR2, which servers use themselves (gunicorn and uWSGI "
                      "among them) and reset in their workers: there it kills the worker or is lost. Use "
                      "`leakkit snapshot PID` or Monitor.snapshot() instead.", RuntimeWarning, stacklevel=4)
        self._previous_handler = signals.signal(signals.SIGUSR2, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._runner.requested = "signal SIGUSR2"  # only a flag: the thread writes the report
        self._wake.set()

    def _give_signal_back(self) -> None:
        if self._signal and self._previous_handler is not None and self.pid == os.getpid():
            import signal as signals

            try:
                signals.signal(signals.SIGUSR2, self._previous_handler)
            except ValueError:  # not the main thread: leave it, our handler only sets a flag
                pass

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __str__(self) -> str:
        state = "running" if self.running else "stopped"
        status = self.status()
        return (f"leakkit monitor ({state}, pid {self.pid}) -> {self.path}: every {self.interval:g} s, "
                f"{status['verdict']}, {len(self.snapshots)} snapshot(s), overhead {self.overhead:.2%} of one core")

    def _repr_html_(self) -> str:
        import html

        return f"<p>{html.escape(str(self))}</p>"


def _after_fork_in_child() -> None:
    global _REGISTRY_LOCK
    _REGISTRY_LOCK = threading.Lock()  # the parent's may have been held by another thread at the fork
    for mon in list(_MONITORS):
        try:
            mon._forked()
        except Exception as error:  # the child runs on without its monitor, never fails for it
            mon.last_error = error
        if not mon.running:
            _MONITORS.remove(mon)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def monitor(
    path: str | os.PathLike,
    *,
    interval: float = 1.0,
    window: int | None = None,
    sustain: float = SUSTAIN_S,
    min_growth: int | float | str = "1MiB",
    auto_snapshot: bool = True,
    trace_window: float = 30.0,
    signal: bool = False,
    baseline: bool = False,
    top: int = 15,
    role: str | None = None,
    service: str | None = None,
    version: str | None = None,
    limit: int | float | str | None = "auto",
    fork: bool = True,
    export: Any = None,
    **unknown: Any,
) -> Monitor:
    """Start recording this process's memory to ``path`` in a daemon thread, judging its growth.

    Args:
        path: the CSV to append to (created if missing); ``{pid}`` in it (and ``{role}``,
            ``{service}``) is filled in, in each process: ``"/var/log/app/worker-{pid}.csv"``.
        interval: seconds between samples (> 0).
        window: the older spelling of ``sustain``, in samples (an int >= 8): ``window=30`` at
            ``interval=2`` is ``sustain=60``. Earlier releases judged the last ``window`` samples'
            rise against ``min_growth``; the rule now asks that rise to be steady too (each third
            of the window growing), so an old call watches the same span with a stricter rule.
        sustain: seconds of steady growth that make a leak (:mod:`leakkit.recording.monitor_rate`);
            give this or ``window``, not both.
        min_growth: growth over ``sustain`` that counts ("1MiB", bytes).
        auto_snapshot: take a snapshot when a leak is sustained (again each time the memory
            grew by a quarter, or 4 ``min_growth``, since the last one).
        trace_window: seconds a snapshot watches (allocations traced with tracemalloc meanwhile);
            0: one look, no allocation sites. An automatic snapshot whose window saw the leak idle
            (traced growth under a quarter of what the rate predicts) watches on, up to 4 windows.
        signal: discouraged: write a snapshot on SIGUSR2, a signal servers use (it warns).
        baseline: take a type summary at the start, so that a first instant snapshot says what grew
            since (a walk of the heap: in a forked worker it unshares the pages it touches).
        top: rows per table in snapshot reports.
        role, service, version: labels in the status, the sidecar and the reports ("worker",
            "checkout", "1.4.2"); a forked child of a ``"master"`` is a ``"worker"``.
        limit: the memory limit the time to limit counts to (a size, None); default ("auto"):
            the cgroup's ``memory.max`` inside a container, else none.
        fork: go on in forked children (each with its own thread and ``{pid}`` file).
        export: exporters fed each status and closed when the monitor stops: a
            :class:`~leakkit.PrometheusExporter`, :class:`~leakkit.OpenTelemetryExporter`,
            :class:`~leakkit.FleetWriter`, any callable taking the status dict, or a list of them.

    Example::

        mon = monitor("/var/log/app/worker-{pid}.csv", role="worker", service="checkout")
        mon.status()["verdict"]       # 'unknown', 'warming up', 'leak', 'plateau' or 'flat'
    """
    check_options("monitor", unknown, _OPTIONS)
    template, settings = checked(path, interval=interval, window=window, sustain=sustain, min_growth=min_growth,
                                 auto_snapshot=auto_snapshot, trace_window=trace_window, signal=signal,
                                 baseline=baseline, top=top, role=role, service=service, version=version, limit=limit,
                                 fork=fork)
    return Monitor(template, **settings, export=export)
