"""The live view of a watch: every process's memory, rate and verdict so far, redrawn as samples come.

Why: the engineer watching a server wants the table while it runs (which worker grows, how fast,
when it meets its limit), not only after the watch ends. :func:`watch` is
:func:`leakkit.recording.watch.watch` with a :class:`LiveTable` fed each sample:

- on a terminal: the table redrawn in place (ANSI cursor moves, a few lines);
- not a terminal (a log, a pipe, CI): the table printed as plain lines, at most every
  ``lines_every`` seconds and when a worker appears or exits;
- in a notebook: one display updated in place (an HTML table).

The table is :func:`leakkit.reports.workers.forecast_workers` on the samples so far: the same
numbers as the report at the end. Its cost is bounded: it is recomputed at most every
``refresh`` seconds and never more often than 20 times its own last cost, so a watch of many
workers spends at most ~5% of its time drawing.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import IO, Any

import pandas as pd

from .. import _checks
from .._errors import expected
from ..recording.timeline import COLUMNS
from ..recording.tree import Tree
from ..recording.watch import watch as _watch
from .fleet_feed import FleetFeed, writer_for
from .workers import forecast_workers

MODES = ("tty", "lines", "notebook")


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except Exception:  # noqa: BLE001 - an odd IPython: no live display rather than no watch
        return False
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def pick_mode(live: Any, stream: IO[str]) -> str | None:
    """The display mode for ``live`` (None: auto, True, False, or one of :data:`MODES`)."""
    if live is False:
        return None
    if isinstance(live, str):
        if live not in MODES:
            raise expected(f"one of {', '.join(MODES)}, True, False or None", "live", live)
        return live
    if live is not None and live is not True:
        raise expected(f"one of {', '.join(MODES)}, True, False or None", "live", live)
    if _in_notebook():
        return "notebook"
    if hasattr(stream, "isatty") and stream.isatty():
        return "tty"
    return "lines" if live is True else None


class LiveTable:
    """Accumulates a watch's rows and redraws the per-process table (see the module docstring)."""

    def __init__(self, mode: str, *, limit: Any = None, attrs: dict | None = None, stream: IO[str] | None = None,
                 refresh: float = 2.0, lines_every: float = 30.0) -> None:
        self.mode = mode
        self.limit = limit
        self.attrs = dict(attrs or {})
        self.stream = stream or sys.stderr
        self.refresh = refresh
        self.lines_every = lines_every
        self.rows: list[tuple] = []
        self.drawn = 0           # lines on screen (tty)
        self.cost = 0.0          # seconds the last table took
        self.last = -float("inf")
        self.last_lines = -float("inf")
        self.pids: frozenset[int] = frozenset()
        self.handle: Any = None
        self.shown: Any = None   # the last WorkerForecasts drawn

    def frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.rows, columns=COLUMNS)
        frame.attrs.update(self.attrs)
        return frame

    def update(self, sample: Sequence[tuple], tree: Tree) -> None:
        """Called by the watch with each sample's rows; redraws when due."""
        self.rows.extend(sample)
        self.attrs["ended"] = dict(tree.ended)
        self.attrs["created"] = tree.created
        now = time.monotonic()
        pids = frozenset(tree.alive())
        changed = pids != self.pids
        self.pids = pids
        due = now - self.last >= max(self.refresh, 20 * self.cost)
        if self.mode == "lines":
            due = due and (changed or now - self.last_lines >= self.lines_every)
        if due:
            self.draw()

    def draw(self, final: bool = False) -> None:
        started = time.perf_counter()
        try:
            report = forecast_workers(self.frame(), self.limit)
        except Exception:  # noqa: BLE001 - too few samples yet, or a process gone mid-way: draw later
            return
        finally:
            self.cost = time.perf_counter() - started
            self.last = time.monotonic()
        self.shown = report
        if self.mode == "notebook":
            self._notebook(report)
        elif self.mode == "tty":
            lines = report.lines()
            width = os.get_terminal_size(self.stream.fileno()).columns if _has_size(self.stream) else 200
            text = "\n".join(line[:width - 1] for line in lines)
            clear = f"\x1b[{self.drawn}F\x1b[J" if self.drawn else ""
            self.stream.write(clear + text + "\n")
            self.stream.flush()
            self.drawn = len(lines)
        else:
            self.last_lines = self.last
            self.stream.write("\n".join(report.lines()) + "\n")
            self.stream.flush()

    def _notebook(self, report: Any) -> None:
        from IPython.display import HTML, display

        body = HTML(report._repr_html_())
        if self.handle is None:
            self.handle = display(body, display_id=True)
        else:
            self.handle.update(body)


def _has_size(stream: IO[str]) -> bool:
    try:
        os.get_terminal_size(stream.fileno())
        return True
    except (OSError, AttributeError, ValueError):
        return False


@_checks.strict
def watch(
    pid_or_command: Any,
    *,
    interval: float = 1.0,
    duration: float | None = None,
    out: str | os.PathLike | None = None,
    limit: int | float | str | None = None,
    children: bool = True,
    progress: bool | None = None,
    live: bool | str | None = None,
    fleet: Any = None,
) -> pd.DataFrame:
    """Watch a process and every process it forks, with a live table of each one's memory and verdict.

    Everything :func:`leakkit.recording.watch.watch` does (its arguments and the long DataFrame it
    returns), plus ``live``: None shows the table in a notebook or on a terminal and nothing
    elsewhere; True also prints plain lines when not on a terminal; ``"tty"``, ``"lines"`` or
    ``"notebook"`` force one; False shows none. A tqdm bar (``progress``) is shown only when the
    table is not. ``fleet``: a folder, or a ``FleetWriter(..., source="watch")`` for host, service
    and version labels: every watched process's row of that table also goes there as
    hive-partitioned Parquet (:mod:`leakkit.reports.fleet_feed`), which ``leakkit.fleet`` reads.

    Example::

        frame = leakkit.watch(master_pid, duration=300, limit="512MiB", out="server.csv")
        print(leakkit.forecast_workers(frame))
    """
    mode = pick_mode(live, sys.stderr)
    writer = None if fleet is None else writer_for(fleet)
    table = None if mode is None else LiveTable(mode, limit=limit, attrs={"interval": interval})
    feed = None if writer is None else FleetFeed(writer, limit=limit, interval=interval,
                                                 rows=None if table is None else table.rows)
    listeners = [f.update for f in (table, feed) if f is not None]

    def on_sample(sample: list[tuple], tree: Tree) -> None:
        for listener in listeners:
            listener(sample, tree)

    try:
        frame = _watch(pid_or_command, interval=interval, duration=duration, out=out, limit=limit,
                       children=children, progress=progress if table is None or progress is not None else False,
                       _on_sample=on_sample if listeners else None)
    finally:
        if feed is not None:
            feed.close()  # the final table's rows, whatever ended the watch
    if table is not None:
        table.attrs.update(frame.attrs)
        if table.rows:
            table.draw(final=True)
    return frame
