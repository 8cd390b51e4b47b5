"""The ``leakkit`` command: ``watch``, ``run``, ``report`` and ``bisect`` (see leakkit/commands/).

Exit codes: 0 no leak found, 1 a leak found, 2 a usage or leakkit error (a message on stderr,
no traceback).
"""
from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Sequence

from ._errors import LeakkitError
from .commands import COMMANDS


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Find which function makes a long-running Python process grow, "
        "and what keeps the memory alive.",
        epilog="Exit codes: 0 no leak found, 1 a leak found, 2 a usage or leakkit error.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)
    for name, command_class in COMMANDS.items():
        command = command_class()
        doc = inspect.getdoc(command_class) or ""
        sub = subparsers.add_parser(name, help=doc.splitlines()[0] if doc else None, description=doc,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        command.prepare_parser(sub)
        sub.set_defaults(entry=command, parser=sub)
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str = "leakkit") -> int:
    """Run the command line; returns the exit code (0, 1 leak found, 2 error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in argv:  # everything after -- is the command to watch or run, options included
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1:]
    parser = _parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse printed usage (2) or help (0)
        return int(exit_.code or 0)
    args.command = command
    if command and args.subcommand not in ("watch", "run"):
        args.parser.print_usage(sys.stderr)
        print(f"{args.parser.prog}: error: unexpected command after --: {' '.join(command)}", file=sys.stderr)
        return 2
    try:
        return args.entry.run(args, args.parser)
    except SystemExit as exit_:  # parser.error() inside a command
        return int(exit_.code or 0)
    except LeakkitError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
