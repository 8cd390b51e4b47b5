"""``leakkit fleet``: ask a fleet's Parquet recordings which workers grow (DuckDB, in-process)."""
from __future__ import annotations

import argparse

from ..._errors import printable
from ._common import check_plot_path, note, save_plot


class FleetCommand:
    """Answer from a fleet's recordings: which hosts and workers grow, since when, how fast.

    PATH is the root of the hive-partitioned Parquet layout the monitor or a watch writes
    (host=*/service=*/pid=*/*.parquet, see FleetWriter), or a glob of its files. DuckDB reads it
    in place: the leaking workers (their rate with its interval, since when, time to the limit),
    the workers closest to their limit, the rate distribution per service, growth by version
    (did a deploy start it) and by host. --sql prints the SQL it ran. Exit code 1 when a live
    worker leaks.

    Examples: leakkit fleet /var/lib/leakkit/fleet --since 24h
              leakkit fleet /var/lib/leakkit/fleet --sql --plot fleet.png
    """

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("path", metavar="PATH", help="the layout's root folder, or a glob of its .parquet files")
        parser.add_argument("--since", metavar="DURATION", help="only the last DURATION before the newest sample (6h, 30min, 2d)")
        parser.add_argument("--column", choices=["rss", "pss", "uss"], default="rss",
                            help="the memory shown (default: rss, the monitor's headline; rows without it use rss)")
        parser.add_argument("--stale", metavar="DURATION", default="5min",
                            help="a worker silent this long before the newest sample has ended (default: 5min)")
        parser.add_argument("--top", type=int, default=10, metavar="N", help="rows per table (default: 10)")
        parser.add_argument("--sql", action="store_true", help="print the SQL DuckDB ran, after the report")
        parser.add_argument("--plot", metavar="PNG", help="save the fastest-growing workers' memory over time")

    def run(self, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
        from ...reports.fleet import fleet

        if args.plot:
            check_plot_path(args.plot)
        report = fleet(args.path, column=args.column, since=args.since, stale=args.stale, top=args.top)
        print(printable(str(report)))
        if args.sql:
            print("\n-- the SQL DuckDB ran (leakkit.analysis.fleet_sql)")
            print(report.sql)
        if args.plot:
            note(f"leakkit: plot saved to {printable(save_plot(report, args.plot))}")
        return 1 if len(report.leaking) else 0
