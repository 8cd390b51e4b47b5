"""``leakkit watch``: sample a process's memory from outside, then forecast when it meets its limit."""
from __future__ import annotations

import argparse
from typing import Any

from ..._errors import InvalidArgumentError, printable
from ..check import leaks
from ._common import check_plot_path, note, save_plot

EXIT_COMMAND_FAILED = 2  # the command watched or run failed and no leak was found (see leakkit.frontends.cli)


def add_watch_options(parser: argparse.ArgumentParser, *, interval: float) -> None:
    """Options ``watch`` and ``run`` share."""
    parser.add_argument("--interval", type=float, default=interval, metavar="SECONDS",
                        help=f"seconds between samples (default: {interval:g})")
    parser.add_argument("--limit", metavar="SIZE",
                        help="memory limit per process such as 512MiB or 2GB: stop when a process reaches it, and "
                             "forecast when each will (default: the cgroup's memory limit, in a container)")
    parser.add_argument("--children", action="store_true", default=True,
                        help="watch every descendant too, each on its own rows (the default; it no longer sums)")
    parser.add_argument("--no-children", dest="children", action="store_false",
                        help="watch the process alone, not its workers or other children")
    parser.add_argument("--plot", metavar="PNG", help="save the timeline and forecast as an image")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no live table (and no progress bar)")
    parser.add_argument("--fleet", metavar="DIR",
                        help="also write every process's row of the table as hive-partitioned Parquet under DIR "
                             "(host=/service=/pid=), which `leakkit fleet DIR` reads")
    parser.add_argument("--fleet-host", metavar="NAME", help="the host= label of --fleet (default: this machine's name)")
    parser.add_argument("--fleet-service", metavar="NAME", help="the service= label of --fleet (default: unnamed)")
    parser.add_argument("--fleet-version", metavar="LABEL", help="the version label of --fleet's rows (a deploy's)")


def fleet_of(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Any:
    """The FleetWriter --fleet asks for (labels from --fleet-host/-service/-version), or None."""
    labels = {"host": args.fleet_host, "service": args.fleet_service, "version": args.fleet_version}
    if args.fleet is None:
        given = [f"--fleet-{name}" for name, value in labels.items() if value is not None]
        if given:
            parser.error(f"expected --fleet DIR with {', '.join(given)} (it labels --fleet's recordings), "
                         "received no --fleet")
        return None
    from ... import FleetWriter

    return FleetWriter(args.fleet, source="watch", **labels)


def summarize(frame: Any, *, limit: str | None, plot: str | None, picked_plot: bool = False) -> int:
    """Print what a watch saw and its forecast; returns the exit code.

    1 if it reached the limit or grows steadily; else 2 if a command the watch started failed
    (a non-zero exit code, or killed by a signal): CI must not read a crashed worker as a pass;
    else 0.
    """
    from ... import forecast, forecast_workers

    attrs = frame.attrs
    command = printable(" ".join(attrs.get("cmdline") or []) or f"pid {attrs.get('pid')}")
    duration = float(frame["t"].iloc[-1]) if len(frame) else 0.0
    samples = frame["t"].nunique() if len(frame) else 0
    pids = frame["pid"].nunique() if "pid" in frame.columns and len(frame) else 1
    print(f"leakkit watch: pid {attrs.get('pid')}: {command}: {samples} samples of {pids} process(es) over "
          f"{duration:.1f} s, ended by {attrs.get('ended_by')}"
          + (f" (pid {attrs['limit_pid']} reached the limit)" if attrs.get("limit_pid") else ""))
    returncode = attrs.get("returncode")
    failed = attrs.get("ended_by") == "exit" and returncode not in (None, 0)
    if failed:
        how = f"was killed by signal {-returncode}" if returncode < 0 else f"exited with code {returncode}"
        print(f"  the command {how}")
    if attrs.get("out_error"):
        print(f"  recording stopped early: {printable(attrs['out_error'])} (every sample is in this summary)")
    if attrs.get("path"):
        print(f"  recording: {printable(attrs['path'])}")
    reached = attrs.get("ended_by") == "limit"
    otherwise = EXIT_COMMAND_FAILED if failed else 0
    try:
        result = forecast_workers(frame, limit) if pids > 1 else forecast(frame, limit)
    except InvalidArgumentError as error:  # too short to judge: say so, it is not a finding
        note(f"leakkit: no forecast: {error}")
        return 1 if reached else otherwise
    print("\n".join(f"  {line}" for line in str(result).splitlines()))
    if plot:
        note(f"leakkit: plot saved to {printable(save_plot(result, plot, picked=picked_plot))}")
    return 1 if reached or leaks(result) else otherwise


def live_mode(args: argparse.Namespace) -> str | bool:
    """The live table on stderr: redrawn in place on a terminal, plain lines otherwise; none with -q."""
    import sys

    if args.quiet:
        return False
    return "tty" if sys.stderr.isatty() else "lines"


class WatchCommand:
    """Watch a running process (PID) or a command (after --) and every process it forks, and forecast each.

    Samples RSS, USS, PSS and swap of the process and of each descendant (a server's workers,
    followed as they are recycled or respawned) every --interval seconds until the process exits,
    --duration passes or a process reaches --limit (with --fleet DIR, every process's row of the
    table also goes to DIR as Parquet for `leakkit fleet DIR`). A live table shows one row per worker (pid,
    age, memory, rate, time to the limit, verdict), the master apart: redrawn on a terminal, as
    plain lines otherwise. Each process's timeline is then classified after its warm-up (linear
    leak, step, sawtooth, plateau, flat, warm-up) and forecast to the limit, which is per process
    (default: the cgroup's memory.max in a container). Exit code 1 when a process grows steadily
    (linear or step growth, or the limit was reached); else 2 when a command given after --
    exited with a non-zero code or was killed; else 0.

    Examples: leakkit watch 4242 --duration 600 --limit 512MiB --out server.csv   (4242: gunicorn's master)
              leakkit watch --interval 0.5 -- python worker.py
              leakkit watch 4242 --fleet /var/lib/leakkit/fleet --fleet-service api --fleet-version 1.4
    """

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("pid", nargs="?", type=int, help="process id to watch (or give a command after --)")
        parser.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long (default: until exit)")
        parser.add_argument("--out", metavar="FILE",
                            help="append every sample to FILE as it is taken (.csv, or .dat for mprof)")
        add_watch_options(parser, interval=1.0)

    def run(self, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
        from ... import watch

        if (args.pid is None) == (not args.command):
            parser.error("expected a PID or a command after --, and not both")
        if args.plot:
            check_plot_path(args.plot)
        target: Any = args.pid if args.pid is not None else args.command
        fleet = fleet_of(args, parser)
        frame = watch(target, interval=args.interval, duration=args.duration, out=args.out, limit=args.limit,
                      children=args.children, progress=False if args.quiet else None, live=live_mode(args),
                      fleet=fleet)
        return summarize(frame, limit=args.limit, plot=args.plot)
