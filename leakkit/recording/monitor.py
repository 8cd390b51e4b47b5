"""An always-on, low-overhead memory monitor for a long-running worker, from inside the process.

Why: a leak that needs hours to show cannot be reproduced on demand; the worker has to record
its own timeline and, when growth is confirmed, what was growing at that moment. A daemon thread
reads cheap counters every ``interval`` seconds (about 0.1 ms per sample: no heap walk, no
collection) and appends them to a CSV, one flushed line each, so a crash loses at most the
last interval. Heavy work (a type summary, tracemalloc sites) happens only at snapshots.

CSV columns, a plain header and rows (read it back with :func:`leakkit.recording.timeline.load`, or any CSV
reader; forecast it with :func:`leakkit.analysis.forecast.forecast`); pid, argv and interval of each
session go to the JSON sidecar ``<path>.json`` (:mod:`leakkit.recording.sidecar`):

- ``t`` (s since the monitor started), ``unix_time_s``.
- ``rss`` (bytes; from ``/proc/self/statm``, else psutil).
- ``allocated_blocks`` (``sys.getallocatedblocks()``: Python's live memory blocks).
- ``gc0``, ``gc1``, ``gc2`` (``gc.get_count()``), ``gc_collections`` (collections so far, all generations).
- ``open_fds``, ``threads``.
- ``traced_bytes`` (tracemalloc's traced heap; empty when it is off).
- ``monitor_cpu_s`` (CPU time the monitor thread has used: its own overhead).

Growth rule (``auto_snapshot``): over the last ``window`` samples, split into four quarters,
growth is confirmed when each quarter's highest RSS is above the previous quarter's (sustained,
not one jump; a sawtooth whose peaks rise still counts), and the last quarter's median RSS is at
least ``min_growth`` above the first quarter's. After a growth snapshot, the next one needs a new
full window and RSS ``min_growth`` above the RSS at that snapshot, so a steady leak gives one
report per ``min_growth`` of growth, not one per sample.

Snapshot reports are text files next to the recording: ``<name>.snapshot-001.txt``, ... with the
reason, the counters, the types that grew since the previous snapshot (or the start)
from :func:`leakkit.probes.heap.heap_summary` (a ``gc.get_objects()`` type count if that module is
missing), and, if tracemalloc is tracing, the allocation sites that grew.
"""
from __future__ import annotations

import atexit
import collections
import datetime
import gc
import os
import signal as signal_module
import statistics
import sys
import threading
import time
import tracemalloc
from typing import IO, Any

import pandas as pd
import psutil

from .. import _compat
from .._errors import InvalidArgumentError, check_options, expected
from .._sizes import format_size, parse_size
from . import sidecar as _sidecar

COLUMNS = ["t", "unix_time_s", "rss", "allocated_blocks", "gc0", "gc1", "gc2", "gc_collections",
           "open_fds", "threads", "traced_bytes", "monitor_cpu_s"]
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # leakkit/
_OPTIONS = frozenset({"interval", "window", "min_growth", "auto_snapshot", "signal", "baseline", "top"})


class _Counters:
    """The cheap readings, with the /proc file kept open so a sample costs one pread."""

    def __init__(self) -> None:
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        try:
            self._statm: int | None = os.open("/proc/self/statm", os.O_RDONLY)
        except OSError:
            self._statm = None
        self._process = psutil.Process()
        self._fd_dir = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else None

    def rss(self) -> int:
        if self._statm is not None:
            return int(os.pread(self._statm, 128, 0).split()[1]) * self._page
        return self._process.memory_info().rss

    def open_fds(self) -> int:
        if self._fd_dir is not None:
            return len(os.listdir(self._fd_dir)) - 1  # listdir's own descriptor
        try:
            return self._process.num_fds()
        except (AttributeError, psutil.Error):
            return -1

    def close(self) -> None:
        if self._statm is not None:
            os.close(self._statm)
            self._statm = None


def _type_summary(objs: list[Any] | None = None) -> pd.DataFrame:
    """type, count, size of the live objects, computed in slices (see :mod:`leakkit.recording.monitor_heap`).

    No full collection first: on a big heap it holds the GIL for a tenth of a second or more,
    which is exactly the stall an always-on monitor must not cause.
    """
    try:
        from ..probes.heap_scan import summarize  # noqa: F401 - what _sliced sums with
        from . import monitor_heap as _sliced
    except ImportError:  # leakkit.probes.heap (numpy) missing: a gc type count, in slices too
        counts: collections.Counter[str] = collections.Counter()
        sizes: collections.Counter[str] = collections.Counter()
        objects = gc.get_objects() if objs is None else objs
        try:
            for start in range(0, len(objects), 4000):
                for obj in objects[start:start + 4000]:
                    name = type(obj).__qualname__
                    counts[name] += 1
                    sizes[name] += sys.getsizeof(obj, 0)
                time.sleep(0.0005)
        finally:
            del objects
        return pd.DataFrame({"type": list(counts), "count": list(counts.values()),
                             "size": [sizes[name] for name in counts]})
    if objs is None:
        objs = _sliced.objects()
    return _sliced.type_summary(objs)


def _growing_types(before: pd.DataFrame | None, after: pd.DataFrame, top: int) -> pd.DataFrame:
    if before is None:
        return after.sort_values("size", ascending=False).head(top).assign(count_delta=pd.NA, size_delta=pd.NA)
    merged = pd.merge(after.groupby("type")[["count", "size"]].sum(), before.groupby("type")[["count", "size"]].sum(),
                      left_index=True, right_index=True, how="outer", suffixes=("", "_before")).fillna(0)
    merged["count_delta"] = merged["count"] - merged["count_before"]
    merged["size_delta"] = merged["size"] - merged["size_before"]
    grown = merged[(merged["count_delta"] > 0) | (merged["size_delta"] > 0)]
    grown = grown.sort_values(["size_delta", "count_delta"], ascending=False).head(top)
    return grown.reset_index()[["type", "count", "size", "count_delta", "size_delta"]]


def _reachable(start: Any, depth: int = 5) -> set[int]:
    """Ids of objects reachable from ``start`` within ``depth`` references: leakkit's own state."""
    seen: set[int] = {id(start)}
    level = [start]
    for _ in range(depth):
        nxt = [o for o in _compat.referents(*level) if id(o) not in seen and not isinstance(o, type)]
        seen.update(map(id, nxt))
        level = nxt
    return seen


def _retention_lines(type_names: list[str], objs: list[Any], *, own: set[int], per_type: int = 8,
                     budget_s: float = 1.0) -> list[str]:
    """Reference paths from roots to the newest instances of each growing type (GC-tracked types:
    the others cannot be enumerated without walking the whole heap). ``objs``: the tracked objects
    (``gc.get_objects()``, taken once for the snapshot); ``own``: ids of leakkit's objects, never
    sampled nor walked through. Every pass over the heap is sliced (:mod:`leakkit.recording.monitor_heap`)."""
    from ..probes.heap_scan import type_name as _type_name
    from ..retention import naming
    from . import monitor_heap as _sliced

    wanted = set(type_names)
    names: dict[type, str] = {}
    samples: dict[str, list[Any]] = {name: [] for name in type_names}
    done = False
    # the youngest generation first: the newest objects come first
    for start in range(0, len(objs), _sliced.SLICE):
        for obj in objs[start:start + _sliced.SLICE]:
            kind = type(obj)
            name = names.get(kind)
            if name is None:
                name = names[kind] = _type_name(kind)
            if name in wanted and len(samples[name]) < per_type and id(obj) not in own:
                samples[name].append(obj)
                if all(len(v) >= per_type for v in samples.values()):
                    done = True
                    break
        if done:
            break
        _sliced.pause()
    lines: list[str] = []
    index = naming.ModuleIndex()
    deadline = time.perf_counter() + budget_s
    for name, found in samples.items():
        if not found or time.perf_counter() > deadline:
            continue
        chains = naming.find_roots(found, index, ignore=own | {id(samples), id(found), id(names), id(objs)},
                                   deadline=deadline, referrers=lambda frontier: _sliced.referrers(frontier, objs))
        for chain in list(chains.values())[:2]:
            lines.append(f"  {name}: {naming.render(chain)}")
        del chains
    samples.clear()
    return lines


def growth_confirmed(values: list[float], *, min_growth: float) -> bool:
    """The monitor's growth rule over one window of RSS samples (see the module docstring)."""
    if len(values) < 8:
        return False
    size = len(values) // 4
    quarters = [values[i * size:(i + 1) * size] for i in range(3)] + [values[3 * size:]]
    peaks = [max(q) for q in quarters]
    rising = all(b > a for a, b in zip(peaks, peaks[1:], strict=False))
    return rising and statistics.median(quarters[-1]) - statistics.median(quarters[0]) >= min_growth


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
        self._counters: _Counters | None = None
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
            self._counters = _Counters()
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

    def _sample(self) -> dict[str, float]:
        counts = gc.get_count()
        traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None
        return {
            "t": time.monotonic() - self._start,
            "unix_time_s": time.time(),
            "rss": self._counters.rss(),
            "allocated_blocks": sys.getallocatedblocks(),
            "gc0": counts[0], "gc1": counts[1], "gc2": counts[2],
            "gc_collections": sum(s["collections"] for s in gc.get_stats()),
            "open_fds": self._counters.open_fds(),
            "threads": threading.active_count(),
            "traced_bytes": traced,
            "monitor_cpu_s": self._cpu_s,
        }

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
                    self._last_types = _type_summary()
                    if tracemalloc.is_tracing():
                        self._last_traces = self._traces()
        except Exception as error:  # no baseline: the first report compares with nothing
            self.last_error = error
        due = time.monotonic()
        while not self._stopping:
            try:
                row = self._sample()
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
    @staticmethod
    def _traces() -> tracemalloc.Snapshot:
        return tracemalloc.take_snapshot().filter_traces([
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, os.path.join(_PACKAGE, "*")),
        ])

    def _report(self, reason: str, row: dict[str, Any] | None = None) -> str:
        with self._lock:
            if row is None:
                row = self._sample()
            from . import monitor_heap as _sliced

            objs = _sliced.objects()  # once for the summary and the paths; dropped before we return
            try:
                types = _type_summary(objs)
                growing = _growing_types(self._last_types, types, self.top)
                since = "the previous snapshot" if self.snapshots else ("the start" if self._last_types is not None else None)
                self._last_types = types
                lines = [
                    f"leakkit monitor snapshot {len(self.snapshots) + 1}: {reason}",
                    f"time: {datetime.datetime.fromtimestamp(row['unix_time_s']).isoformat(timespec='seconds')} "
                    f"(t = {row['t']:.1f} s), pid {os.getpid()}",
                    f"rss: {format_size(row['rss'])}; allocated blocks: {row['allocated_blocks']}; open fds: "
                    f"{row['open_fds']}; threads: {row['threads']}; gc collections: {row['gc_collections']}",
                    "",
                    f"growing types since {since}:" if since else "largest types (no earlier summary to compare):",
                    growing.to_string(index=False) if len(growing) else "(none)",
                ]
                grown = [t for t, d in zip(growing["type"], growing["count_delta"], strict=True)
                         if not pd.isna(d) and d > 0]
                # the user's own classes first: a growing dict or str is more often a symptom of them
                grown_names = sorted(grown, key=lambda t: "." not in t)[:3]
                if grown_names:
                    paths = _retention_lines(grown_names, objs, own=_reachable(self) | {id(objs)})
                    lines += ["", "what keeps the newest of them alive (reference paths from roots):"]
                    lines += paths or ["  (no path to a module global found: held from a frame, a C extension or the interpreter)"]
            finally:
                del objs
            if tracemalloc.is_tracing():
                traces = self._traces()
                if self._last_traces is not None:
                    stats = [s for s in traces.compare_to(self._last_traces, "lineno") if s.size_diff > 0][: self.top]
                    lines += ["", "growth sites (tracemalloc, since the previous snapshot):"]
                else:
                    stats = traces.statistics("lineno")[: self.top]
                    lines += ["", "largest allocation sites (tracemalloc):"]
                lines += [f"  {stat}" for stat in stats] or ["  (none)"]
                self._last_traces = traces
            path = self._write_snapshot("\n".join(lines) + "\n")
            self.snapshots.append(path)
            self._since_snapshot = 0
            return path

    def _write_snapshot(self, text: str) -> str:
        """A new ``<stem>.snapshot-NNN.txt``, mode 0600 (it names the user's types and dict keys).

        Created exclusively and never through a link: the name is leakkit's, often in a shared
        directory, and leakkit often runs as root. A number already taken (an earlier run's
        report, or a link someone planted) is skipped, never overwritten.
        """
        from .files import create_new

        stem = os.path.splitext(self.path)[0]
        number = len(self.snapshots) + 1
        for _ in range(10_000):
            path = f"{stem}.snapshot-{number:03d}.txt"
            try:
                fd = create_new(path, "snapshot", mode=0o600)
            except FileExistsError:
                number += 1
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            return path
        raise InvalidArgumentError(f"snapshot: expected a free name {stem}.snapshot-NNN.txt, received 10000 taken")

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
        window: samples the growth rule looks at (see the module docstring).
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
