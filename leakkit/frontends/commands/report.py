"""``leakkit report``: the verdict and a plot from a recording file, long after it was taken."""
from __future__ import annotations

import argparse
import os
from typing import Any

from ..._errors import NotARecordingError, printable
from ..check import leaks
from ._common import check_plot_path, note, save_plot


def is_trace_recording(path: str) -> bool:
    """Whether ``path`` holds a ``leakkit.trace`` recording (rather than a watch/monitor CSV or mprof .dat)."""
    from ...recording.tables import MAGIC, is_recording_header

    if path.endswith((".parquet", ".pq")):
        return True
    from ...recording.files import open_to_read

    fd = open_to_read(path, "path")  # a FIFO, a device, a directory: refused, never waited on
    try:
        with open(fd, encoding="utf-8", errors="replace") as handle:
            first = handle.readline(4096)
    except OSError as error:
        raise NotARecordingError(f"path: expected a readable recording file, received {path!r}: "
                                 f"{error.strerror or error}") from None
    return first.rstrip("\r\n") == MAGIC or is_recording_header(first)


def report_for(path: str, *, limit: str | None = None, column: str | None = None) -> Any:
    """The report a recording file gives: a TraceReport for a trace, a Forecast for a timeline."""
    if is_trace_recording(path):
        from ... import load
        from ...reports.trace_report import trace_report

        recording = load(path)
        outer = recording.calls[recording.calls["depth"] == 0]["function"]
        function = str(outer.mode().iloc[0]) if len(outer) else os.path.basename(path)
        return trace_report(recording, function=function)
    from ... import forecast, forecast_workers, load_watch

    frame = load_watch(path)
    if "pid" in frame.columns and frame["pid"].nunique() > 1:
        return forecast_workers(frame, limit, column=column)  # a forecast per process, never one line through all
    return forecast(frame, limit, column=column)


class ReportCommand:
    """Print the verdict of a recording and save its plot.

    FILE is a leakkit.trace recording (.csv or .parquet, from Trace.save or stream=), a leakkit
    watch or monitor CSV, or a memory-profiler (mprof) .dat. A trace recording gets its verdict
    (leak, plateau, clean, inconclusive) and rates per call; a timeline gets its shape and a
    forecast to --limit, for each process of a watch of a server (one per pid). A file in which
    several processes wrote rows with no pid column is refused (exit code 2): its samples interleave. The plot goes next to FILE with .png unless --plot or --no-plot says
    otherwise. Exit code 1 when the recording shows a leak.

    Examples: leakkit report worker.csv --limit 2GiB
              leakkit report mprofile_20240101120000.dat --plot growth.png
    """

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("file", metavar="FILE", help="the recording")
        parser.add_argument("--limit", metavar="SIZE", help="memory limit for the forecast of a timeline, e.g. 2GiB")
        parser.add_argument("--column", choices=["uss", "rss", "pss", "swap"],
                            help="timeline column to forecast (default: rss, what a limit counts; uss if no rss)")
        output = parser.add_mutually_exclusive_group()
        output.add_argument("--plot", metavar="PNG", help="where to save the plot (default: FILE with .png)")
        output.add_argument("--no-plot", action="store_true", help="write no image")

    def run(self, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
        if args.plot:
            check_plot_path(args.plot)
        result = report_for(args.file, limit=args.limit, column=args.column)
        print(printable(str(result)))
        if not args.no_plot:
            # a name leakkit picks, next to a file that may sit in a shared directory: no link followed
            path = args.plot or os.path.splitext(args.file)[0] + ".png"
            note(f"leakkit: plot saved to {printable(save_plot(result, path, picked=not args.plot))}")
        return 1 if leaks(result) else 0
