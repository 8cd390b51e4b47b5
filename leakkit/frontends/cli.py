"""The ``leakkit`` command: ``watch``, ``run``, ``report`` and ``bisect`` (see leakkit/frontends/commands/).

Exit codes (what CI reads, so a crash of leakkit never reads as a leak):

- 0: no leak found;
- 1: a leak found (or ``--limit`` reached);
- 2: a usage or input error: a bad option, a missing or malformed file, a module that does not
  import, a command that could not start, or (``run``/``watch`` of a command, no leak found) a
  command that exited with a non-zero code or was killed;
- 3: leakkit's own failure: a one-line message; ``--debug`` prints the traceback.
"""
from __future__ import annotations

import argparse
import inspect
import sys
import traceback
from collections.abc import Sequence

from .._errors import LeakkitError
from .commands import COMMANDS

EXIT_CLEAN, EXIT_LEAK, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
EPILOG = """exit codes:
  0  no leak found
  1  a leak found (or --limit reached)
  2  a usage or input error: a bad option, a missing or malformed file, a module that does not
     import, a command that could not start, or (run, watch of a command) a command that exited
     with a non-zero code or was killed while no leak was found
  3  leakkit's own failure: a one-line message (rerun with --debug for the traceback)
"""


def build_parser(prog: str = "leakkit") -> argparse.ArgumentParser:
    """The command line's parser, one subparser per command; the docs render its help, so the
    reference is what the command accepts."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Find which function makes a long-running Python process grow, "
        "and what keeps the memory alive.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="on leakkit's own failure, print the traceback")
    subparsers = parser.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)
    for name, command_class in COMMANDS.items():
        command = command_class()
        doc = inspect.getdoc(command_class) or ""
        sub = subparsers.add_parser(name, help=doc.splitlines()[0] if doc else None, description=doc,
                                    epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
        command.prepare_parser(sub)
        # accepted after the subcommand too; SUPPRESS keeps a --debug given before it
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="on leakkit's own failure, print the traceback")
        sub.set_defaults(entry=command, parser=sub)
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str = "leakkit") -> int:
    """Run the command line; returns the exit code (0 no leak, 1 leak found, 2 usage or input error, 3 failure)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in argv:  # everything after -- is the command to watch or run, options included
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1:]
    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse printed usage (2) or help (0)
        return _code(exit_)
    args.command = command
    if command and args.subcommand not in ("watch", "run"):
        args.parser.print_usage(sys.stderr)
        print(f"{args.parser.prog}: error: unexpected command after --: {' '.join(command)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return args.entry.run(args, args.parser)
    except SystemExit as exit_:  # parser.error() inside a command
        return _code(exit_)
    except LeakkitError as error:
        print(f"{prog}: error: {_one_line(str(error))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # leakkit's own fault: never exit 1, which reads as "a leak found"
        if args.debug:
            traceback.print_exc(file=sys.stderr)
        print(f"{prog}: internal error: {type(error).__name__}: {_one_line(str(error))}"
              + ("" if args.debug else f" (rerun with {prog} --debug ... for the traceback)"), file=sys.stderr)
        return EXIT_INTERNAL


def _code(exit_: SystemExit) -> int:
    code = exit_.code
    if code is None:
        return EXIT_CLEAN
    return code if isinstance(code, int) else EXIT_USAGE


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 400 else line[:397] + "..."


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
