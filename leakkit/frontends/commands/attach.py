"""``leakkit attach PID`` and ``leakkit snapshot PID``: what grew in a running process, and what keeps it."""
from __future__ import annotations

import argparse
import sys
import threading

from ..._errors import printable
from ._common import note

EXIT_INJECTION = 3  # leakkit could not get into the process (it is left running and unchanged)


def _add_common(parser: argparse.ArgumentParser, duration: float | None, help_text: str) -> None:
    parser.add_argument("pid", type=int, help="the Python process (CPython 3.10-3.13)")
    parser.add_argument("--duration", type=float, default=duration, metavar="SECONDS", help=help_text)
    parser.add_argument("--out", metavar="DIR", help="directory for the report file (default: the current one)")
    parser.add_argument("--no-inject", action="store_true",
                        help="only use an agent already in the process (LEAKKIT_AGENT=1); never inject one")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")


def _enter_pressed() -> threading.Event:
    """Set when the user presses Enter (only when stdin is a terminal)."""
    event = threading.Event()
    if sys.stdin is not None and sys.stdin.isatty():
        def read() -> None:
            try:
                sys.stdin.readline()
            except (OSError, ValueError):
                return
            event.set()

        threading.Thread(target=read, name="leakkit-enter", daemon=True).start()
    return event


def _run(call, args: argparse.Namespace) -> int:
    from ..agent.inject import InjectionError

    progress = None if args.quiet else (lambda message: note(f"leakkit: {printable(message)}"))
    try:
        return call(progress)
    except InjectionError as error:
        print(f"leakkit {args.subcommand}: {printable(' '.join(str(error).split()))}", file=sys.stderr)
        return EXIT_INJECTION


class AttachCommand:
    """Attach to a running Python process: what grew, where it was allocated, what keeps it.

    Walks the process's heap, traces its allocations for --duration seconds (or until Enter),
    walks again, then prints the types that grew with their allocation sites, the containers
    that grew and the reference paths from a root; the report is also saved (JSON, which
    leakkit.load_attach reads). The process keeps running: leakkit's work yields every few
    milliseconds, and afterwards nothing of leakkit is left in it but imported modules.

    Ways in, in order: the agent of a process started with LEAKKIT_AGENT=1 (or a server
    integration), then injection. Exit codes: 0 a report was made; 2 the process cannot be
    attached to (not running, not CPython 3.10-3.13, another user's); 3 leakkit could not get
    in (the process is left running and unchanged).

    Examples: leakkit attach 4242 --duration 60 --out reports/
              LEAKKIT_AGENT=1 gunicorn app:app   (then: leakkit attach WORKER_PID)
    """

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        _add_common(parser, 30.0, "seconds between the two heap walks (default: 30; Enter ends it sooner)")
        parser.add_argument("--top", type=int, default=15, metavar="N", help="rows of the growing types table (default: 15)")
        parser.add_argument("--frames", type=int, default=10, metavar="N",
                            help="tracemalloc frames kept per allocation (default: 10)")
        parser.add_argument("--max-trace-memory", default="16MiB", metavar="SIZE",
                            help="tracemalloc's own memory in the process that ends the window early (default: 16MiB)")

    def run(self, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
        from ..agent.client import attach

        def call(progress) -> int:
            finish = _enter_pressed()
            if progress is not None and sys.stdin is not None and sys.stdin.isatty():
                progress("press Enter to end the window early")
            report = attach(args.pid, duration=args.duration, out=args.out, inject=not args.no_inject, top=args.top,
                            frames=args.frames, max_trace_memory=args.max_trace_memory, progress=progress,
                            finish=finish)
            print(printable(str(report)))
            return 0

        return _run(call, args)


class SnapshotCommand:
    """Ask a running process for a snapshot: its monitor's report, or else an attach.

    With a leakkit monitor running in the process (a server integration, leakkit.monitor), its
    snapshot report is written where the monitor writes, and printed (with --duration, the
    monitor watches that long first: what grew, where, what keeps it). Without one, this is
    leakkit attach, for --duration seconds (10 by default). Exit codes as for attach.
    """

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        _add_common(parser, None, "with a monitor, watch that long first (default: one look); without, "
                                  "the attach's window (default: 10)")
        parser.add_argument("--reason", default="on demand (leakkit snapshot)", help="said in the report's first line")

    def run(self, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
        from ..agent.client import snapshot

        def call(progress) -> int:
            result = snapshot(args.pid, reason=args.reason, duration=args.duration, out=args.out,
                              inject=not args.no_inject, progress=progress)
            if isinstance(result, dict):
                print(printable(result["text"] or ""))
                print(f"snapshot report: {printable(str(result['path']))} (written by the process's monitor)")
            else:
                print(printable(str(result)))
            return 0

        return _run(call, args)
