"""``leakkit run``: run a command to its end under watch, keeping a recording and a plot."""
from __future__ import annotations

import argparse
import os
import time

from .watch import add_watch_options, summarize


class RunCommand:
    """Run a command to its end while watching its memory; write a recording, a plot and a report.

    The recording (leakkit CSV, or mprof .dat for a .dat name) defaults to
    leakkit-YYYYmmdd-HHMMSS.csv in the current directory, and the plot to the same name with .png.
    Exit code 1 when memory grows steadily (linear or step growth, or the limit was reached).

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
        from .. import watch

        command = args.command or args.argv
        if args.command and args.argv:
            parser.error("expected the command either after -- or at the end, not both")
        if not command:
            parser.error("expected a command to run, e.g. leakkit run -- python script.py")
        out = args.out or f"leakkit-{time.strftime('%Y%m%d-%H%M%S')}.csv"
        plot = None if args.no_plot else (args.plot or os.path.splitext(out)[0] + ".png")
        frame = watch(command, interval=args.interval, out=out, limit=args.limit, children=args.children,
                      progress=False if args.quiet else None)
        return summarize(frame, limit=args.limit, plot=plot)
