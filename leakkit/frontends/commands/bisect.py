"""``leakkit bisect``: which function of a module keeps memory, and what keeps it alive."""
from __future__ import annotations

import argparse
import inspect
import os
import sys

from ..._errors import expected, printable
from ..check import leaks
from ..targets import resolve, resolve_all
from ._common import check_plot_path, note, save_plot


def _bisect_default(name: str) -> int:
    from ... import bisect

    return inspect.signature(bisect).parameters[name].default


class BisectCommand:
    """Run a workload function many times and find the target function whose memory it keeps.

    WORKLOAD is module:function (imported with the current directory on sys.path), a function
    with no arguments that stands for one request, tick or message; an async function runs on
    its own event loop. --targets names the modules, classes or functions whose functions are
    the candidates (default: the workload's module). Prints the verdict, the culprit and the
    reference path that keeps its memory alive. Exit code 1 when a leak is found, 2 when the
    workload cannot be imported or measured.

    Example: leakkit bisect worker:handle_one --targets worker,worker.db --calls 60
    """

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        from ...engine.run import MIN_CALLS

        parser.add_argument("workload", metavar="WORKLOAD", help="module:function to call repeatedly")
        parser.add_argument("--targets", action="append", metavar="NAME",
                            help="module, class or function to search (repeat, or separate with commas)")
        parser.add_argument("-n", "--calls", type=int, default=_bisect_default("calls"),
                            help=f"measured calls, at least {MIN_CALLS} (default: %(default)s)")
        parser.add_argument("--warmup", type=int, default=2, help="calls before measuring (default: %(default)s)")
        parser.add_argument("--time-budget", type=float, default=_bisect_default("time_budget"), metavar="SECONDS",
                            help="CPU seconds for the whole bisect, analysis included (default: %(default)s)")
        parser.add_argument("--max-calls", type=int, default=None, metavar="N",
                            help="the most measured calls when the growth is not settled (default: 8 x --calls)")
        parser.add_argument("--plot", metavar="PNG", help="save the retained-memory plot")
        parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    def run(self, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
        from ... import bisect

        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())  # as `python -m` does: the user's modules are importable
        if args.plot:
            check_plot_path(args.plot)
        workload = resolve(args.workload)
        if not callable(workload):
            raise expected("module:function naming a function", "WORKLOAD", workload)
        targets = resolve_all(args.targets) if args.targets else [inspect.getmodule(workload)]
        if targets == [None]:
            raise expected("--targets (the workload's module could not be found)", "targets", args.workload)
        report = bisect(workload, targets=targets, calls=args.calls, warmup=args.warmup,
                        time_budget=args.time_budget, max_calls=args.max_calls,
                        progress=False if args.quiet else None)
        print(printable(str(report)))
        if args.plot:
            note(f"leakkit: plot saved to {printable(save_plot(report, args.plot))}")
        return 1 if leaks(report) else 0
