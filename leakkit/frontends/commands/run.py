"""``leakkit run``: run a command to its end under watch, keeping a recording and a plot."""
from __future__ import annotations

import argparse
import os
import time

from ..._errors import InvalidArgumentError
from ._common import check_plot_path
from .watch import add_watch_options, fleet_of, live_mode, summarize


class RunCommand:
    """Run a command to its end while watching its memory and its children's; write a recording, a plot and a report.

    Every process the command forks (a server's workers) is watched on its own rows, with the
    live table and the per-process forecasts of `leakkit watch`; e.g. leakkit run -- gunicorn app:app -w 3.

    The recording (leakkit CSV, or mprof .dat for a .dat name) defaults to a new file
    leakkit-YYYYmmdd-HHMMSS.csv in the current directory, and the plot to the same name with .png.
    Exit code 1 when memory grows steadily (linear or step growth, or the limit was reached);
    else 2 when the command exited with a non-zero code or was killed (the recording and the
    forecast are still written); else 0.

    Examples: leakkit run -- python worker.py --port 8000
              leakkit run --out worker.dat --limit 1GiB python worker.py
    """

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--out", metavar="FILE", help="recording to write (default: leakkit-<time>.csv)")
        parser.add_argument("--no-plot", action="store_true", help="write no image")
        add_watch_options(parser, interval=0.1)
        parser.add_argument("argv", nargs=argparse.REMAINDER, metavar="COMMAND",
                            help="the command to run (after -- when it has options of its own)")

    def run(self, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
        from ... import watch

        command = args.command or args.argv
        if args.command and args.argv:
            parser.error("expected the command either after -- or at the end, not both")
        if not command:
            parser.error("expected a command to run, e.g. leakkit run -- python script.py")
        if args.plot:
            check_plot_path(args.plot)
        fleet = fleet_of(args, parser)  # checked before a recording file is created
        out = args.out or _new_recording()
        plot = None if args.no_plot else (args.plot or os.path.splitext(out)[0] + ".png")
        frame = watch(command, interval=args.interval, out=out, limit=args.limit, children=args.children,
                      progress=False if args.quiet else None, live=live_mode(args), fleet=fleet)
        return summarize(frame, limit=args.limit, plot=plot, picked_plot=not args.plot)


def _new_recording() -> str:
    """A fresh leakkit-<time>.csv, created exclusively (a name leakkit picks: never an existing file or link)."""
    from ...recording.files import create_new

    stem = f"leakkit-{time.strftime('%Y%m%d-%H%M%S')}"
    for attempt in range(100):
        path = f"{stem}.csv" if attempt == 0 else f"{stem}-{attempt}.csv"
        try:
            os.close(create_new(path, "--out", mode=0o644))
        except FileExistsError:
            continue
        return path
    raise InvalidArgumentError(f"--out: expected a free name for the recording, received 100 taken ({stem}*.csv)")
