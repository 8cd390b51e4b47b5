"""The monitor's state in one process: its samples, its judgement, its snapshots and their memory.

Why apart from :class:`leakkit.recording.monitor.Monitor` (its life cycle, its thread, the fork):
this is what a forked child starts afresh, and what both the monitor thread (sampling, the
automatic snapshot) and other threads (an on-demand snapshot, ``status()``) touch, one snapshot
at a time under :attr:`Runner.lock`.

leakkit's own memory: the RSS, USS and PSS a snapshot adds (its summaries, the modules it imports,
the pages its heap walk unshares after a fork, tracemalloc's traces while it traces, what the
allocator keeps afterwards) is measured around it: the step from just before it began to just
after it ended, less what the application's own growth rate predicts over that time. The steps
add up in the ``snapshot_*`` columns (during a snapshot, the rise beyond that prediction), and
the rate and verdict read the headline column less them.
"""
from __future__ import annotations

import threading
import time
from typing import Any

from .._sizes import format_duration, format_size
from . import monitor_rate
from .monitor_capture import Capture

MEMORY = ("rss", "uss", "pss")
FULL_EVERY_S = 10.0
WINDOWS_AT_MOST = 4  # an automatic snapshot watches at most this many trace windows (see Runner._watch_on)


class Runner:
    """One process's monitor state; ``owner`` is the :class:`~leakkit.recording.monitor.Monitor`."""

    def __init__(self, owner: Any, history: monitor_rate.History) -> None:
        self.owner = owner
        self.history = history
        self.judgement = monitor_rate.Judgement("unknown")
        self.row: dict[str, Any] | None = None
        self.own = dict.fromkeys(MEMORY, 0)
        self.lock = threading.Lock()  # one snapshot at a time
        self.capture: Capture | None = None
        self.capture_auto = False
        self.capture_due = 0.0
        self.capture_row: dict[str, Any] | None = None
        self.capture_rate = 0.0
        self.last_summary: dict[str, list[int]] | None = None
        self.armed_level: float | None = None
        self.requested: str | None = None  # a snapshot asked by the (discouraged) signal
        self.counters: Any = None
        self.start = 0.0
        self.cpu_s = 0.0
        self._judged_bins = -1
        self.full_at: float | None = None
        self.last_full: dict[str, Any] = {}

    # -- samples -------------------------------------------------------------------------------
    def sample(self, counters: Any, start: float, cpu_s: float) -> dict[str, Any]:
        """A row of the CSV, leakkit's own memory marked, fed to the history."""
        self.counters, self.start, self.cpu_s = counters, start, cpu_s
        # USS, PSS and swap every FULL_EVERY_S (the rollup's page walk is the costly reading): the
        # rows between have RSS alone, their uss/pss/swap cells empty
        due = self.full_at is None or time.monotonic() - start - self.full_at >= FULL_EVERY_S
        row = self._fresh_row(due or self.capture_row is not None)
        if row.get("uss") is not None:
            self.last_full = {k: row.get(k) for k in ("uss", "pss", "swap")}
        self.row = row
        headline = row.get("rss")
        if headline is not None and self.capture_row is None:  # a snapshot's own time is a gap, not a reading
            self.history.add(row["t"], headline - row["snapshot_rss"])
        return row

    def _fresh_row(self, full: bool = True) -> dict[str, Any]:
        row = self.counters.sample(self.start, self.cpu_s, full)
        if full:
            self.full_at = row["t"]
        row["snapshots"] = len(self.owner.snapshots)
        base = self.capture_row
        for column in MEMORY:
            extra = 0.0
            if base is not None and row.get(column) is not None and base.get(column) is not None:
                expected = self.capture_rate * (row["t"] - base["t"])
                extra = max(0.0, row[column] - base[column] - expected)
            row[f"snapshot_{column}"] = int(self.own[column] + extra)
        return row

    def judge(self) -> None:
        """A new judgement when the history closed a new bin (cheap otherwise)."""
        if self.history.bins != self._judged_bins:
            self._judged_bins = self.history.bins
            self.judgement = monitor_rate.judge(self.history, self.owner.min_growth)

    def headline(self, row: dict[str, Any] | None = None) -> float | None:
        row = row if row is not None else self.row
        if not row or row.get("rss") is None:
            return None
        return row["rss"] - row.get("snapshot_rss", 0)

    # -- snapshots ------------------------------------------------------------------------------
    def take_baseline(self) -> None:
        """A first type summary, what an instant snapshot compares with (the ``baseline`` option)."""
        with self.lock:
            capture = Capture(self.owner, "baseline", None)
            self.last_summary = capture.summary()

    def auto_snapshot(self) -> None:
        """From the monitor thread after each sample: a requested snapshot, the end of a watch under
        way, or a new one when a leak is sustained (again after a quarter more memory)."""
        if self.requested is not None:
            reason, self.requested = self.requested, None
            self.snapshot(reason, 0.0)
            return
        if self.capture is not None:
            if self.capture_auto and time.monotonic() >= self.capture_due and not self._watch_on():
                self._complete()
            return
        judgement = self.judgement
        level = self.headline()
        if not self.owner.auto_snapshot or judgement.verdict != "leak" or level is None:
            return
        if self.armed_level is not None and level < self.armed_level:
            return
        if not self.lock.acquire(blocking=False):
            return
        reason = (f"leak sustained: rss {format_size(judgement.rate * 60, signed=True)}/min (95% interval "
                  f"{format_size(judgement.low * 60, signed=True)} to {format_size(judgement.high * 60, signed=True)}"
                  f"/min) over the last {format_duration(judgement.window_s)}")
        self._begin(reason, self.owner.trace_window, auto=True)
        if self.owner.trace_window == 0:
            self._complete()

    def _watch_on(self) -> bool:
        """Whether an automatic snapshot's window is extended by one more trace window: the leak was
        idle in it (:meth:`Capture.extend`: its traced Python heap grew by under a quarter of what
        the rate that fired it predicts), up to :data:`WINDOWS_AT_MOST` windows in all. A snapshot
        asked for (``snapshot(duration=...)``, ``leakkit snapshot``) keeps the time it was given."""
        window = self.owner.trace_window
        if window <= 0 or len(self.capture.extended) + 1 >= WINDOWS_AT_MOST:
            return False
        if not self.capture.extend(self.capture_rate * (time.monotonic() - self.capture.began)):
            return False
        self.capture_due += window
        return True

    def snapshot(self, reason: str, duration: float) -> str:
        """A snapshot from the calling thread (waits for one under way); returns its path."""
        self.lock.acquire()
        self._begin(reason, duration, auto=False)
        if duration > 0:
            time.sleep(duration)
        return self._complete()

    def _begin(self, reason: str, duration: float, *, auto: bool) -> None:
        """With :attr:`lock` held: the memory before, then the capture's first half."""
        try:
            self.capture_row = self._fresh_row()
            judged = self.judgement
            self.capture_rate = max(0.0, judged.rate or 0.0) if judged.verdict in ("leak", "warming up") else 0.0
            self.capture = Capture(self.owner, reason, self.last_summary)
            self.capture_auto = auto
            self.capture.begin(duration, trace=duration > 0)
            self.capture_due = time.monotonic() + duration
        except BaseException:
            self._end()
            raise

    def _complete(self) -> str:
        """The capture's second half, the report written, leakkit's memory step added; releases :attr:`lock`."""
        from .monitor_snapshot import header_lines, write_snapshot

        capture = self.capture
        try:
            body, after = capture.finish(self.owner.top)
            capture = None
            self.last_summary = after
            number = len(self.owner.snapshots) + 1
            text = header_lines(number, self.owner_reason(), self._fresh_row(), self.status()) + [""] + body
            path = write_snapshot(self.owner.path, number, "\n".join(text) + "\n")
            self.owner.snapshots.append(path)
            return path
        finally:
            if capture is not None:
                capture.close()
            self._end()

    def owner_reason(self) -> str:
        return self.capture.reason if self.capture is not None else "snapshot"

    def _end(self) -> None:
        """Add the snapshot's memory step to leakkit's own, forget the capture, release the lock."""
        try:
            base = self.capture_row
            if base is not None and self.counters is not None:
                now = self.counters.sample(self.start, self.cpu_s)
                for column in MEMORY:
                    if now.get(column) is not None and base.get(column) is not None:
                        expected = self.capture_rate * (now["t"] - base["t"])
                        self.own[column] += int(max(0.0, now[column] - base[column] - expected))
                level = now["rss"] - self.own["rss"]
                self.armed_level = level + max(4 * self.owner.min_growth, 0.25 * level)
        finally:
            self.capture = None
            self.capture_row = None
            if self.lock.locked():
                self.lock.release()

    def abandon(self) -> None:
        """In a forked child: a capture the parent had under way is not this process's (stop its tracing)."""
        capture, self.capture = self.capture, None
        if capture is not None:
            capture.close()

    def close(self) -> None:
        """At stop: end a capture under way without a report."""
        capture = self.capture
        if capture is not None and self.lock.locked():
            capture.close()
            self._end()

    # -- status ---------------------------------------------------------------------------------
    def _latest(self, row: dict[str, Any], column: str) -> Any:
        """``column`` of this row, or of the last row that read it (USS, PSS and swap come every 10 s)."""
        value = row.get(column)
        return value if value is not None else self.last_full.get(column)

    def status(self) -> dict[str, Any]:
        owner, row, judged = self.owner, self.row or {}, self.judgement
        limit = owner.limit_bytes
        seconds = None
        if limit and judged.verdict == "leak" and judged.rate and judged.rate > 0 and row.get("rss") is not None:
            seconds = max(0.0, (limit - row["rss"]) / judged.rate)
        return {
            "pid": owner.pid, "role": owner.role, "service": owner.service, "version": owner.version,
            "t_s": row.get("t"), "rss_bytes": row.get("rss"), "pss_bytes": self._latest(row, "pss"),
            "uss_bytes": self._latest(row, "uss"), "swap_bytes": self._latest(row, "swap"),
            "python_heap_bytes": row.get("python_heap"),
            "column": "rss", "rate_bytes_per_s": judged.rate, "rate_low_bytes_per_s": judged.low,
            "rate_high_bytes_per_s": judged.high, "verdict": judged.verdict, "limit_bytes": limit,
            "seconds_to_limit": seconds, "snapshots": len(owner.snapshots),
            "last_snapshot": owner.snapshots[-1] if owner.snapshots else None,
            "snapshot_bytes": row.get("snapshot_rss", 0), "path": owner.path, "interval": owner.interval,
            "last_error": None if owner.last_error is None else f"{type(owner.last_error).__name__}: {owner.last_error}",
        }
