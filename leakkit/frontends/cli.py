"""The ``leakkit`` command: ``watch``, ``run``, ``report`` and ``bisect`` (see leakkit/frontends/commands/).

Exit codes (what CI reads, so that nothing but a finding reads as a leak): :data:`EXIT_CODES`, the
one table ``--help``, docs/cli.md and the README give. How each comes about:

- a :class:`~leakkit.LeakkitError` (bad input, a malformed file, a workload that cannot be
  measured) is a one-line message and 2; so is code under investigation (a workload, a targets
  module) that calls ``sys.exit()`` or raises ``GeneratorExit``: it never passes for a verdict;
- any other exception is leakkit's own failure: one line and 3 (``--debug``: the traceback);
- Ctrl-C is 130, even when the command caught it and returned what it had (``run`` and ``watch``
  end the command they started and say so); SIGTERM or SIGHUP during ``run`` or ``watch`` ends
  the command first, then leakkit as the signal would have (:mod:`leakkit._signals`);
- output closed early (``leakkit report x.csv | head -1``) ends quietly with 141, 128 + SIGPIPE,
  what a shell reports for a program ended by a closed pipe.
"""
from __future__ import annotations

import argparse
import inspect
import os
import signal
import sys
import traceback
from collections.abc import Sequence

from .._errors import LeakkitError
from .._signals import ending_children
from .commands import COMMANDS

EXIT_CLEAN, EXIT_LEAK, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_INTERRUPTED, EXIT_PIPE = 130, 141
#: The exit-code table: --help prints it, docs/cli.md and the README repeat it (a test checks).
EXIT_CODES = (
    ("0", "no leak found"),
    ("1", "a leak found (or --limit reached)"),
    ("2", "a usage or input error: a bad option, a missing or malformed file, a module that does not "
          "import, a workload that cannot be measured (it needs arguments, calls sys.exit(), raises "
          "GeneratorExit), a command that could not start, or (run, watch of a command) a command that "
          "exited with a non-zero code or was killed while no leak was found"),
    ("3", "leakkit's own failure: a one-line message (rerun with --debug for the traceback)"),
    ("130", "interrupted (Ctrl-C); run and watch end the command they started"),
    ("141", "its output was closed early (a pipe into head): 128 + SIGPIPE, quietly"),
    ("143, 129", "ended by SIGTERM or SIGHUP (as the shell reports it), after ending the command it started"),
    ("attach, snapshot", "0 a report was made, 2 the process cannot be attached to, 3 leakkit could not get in "
                         "(the process is left running and unchanged)"),
)


def exit_code_table(width: int = 100) -> str:
    """EXIT_CODES as the indented text --help shows."""
    import textwrap

    lines = []
    for code, meaning in EXIT_CODES:
        if len(code) > 9:  # a row that names commands: its meaning on the lines below
            lines.append(f"  {code}")  # no colon: the row reads the same in --help as in the README
            code = ""
        lines.extend(textwrap.wrap(meaning, width, initial_indent=f"  {code:<9}", subsequent_indent=" " * 11))
    return "\n".join(lines)


EPILOG = "exit codes:\n" + exit_code_table() + "\n"


class _Parser(argparse.ArgumentParser):
    """argparse's exits (usage errors, --help) told apart from a ``sys.exit()`` in code leakkit runs."""

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        if message:
            self._print_message(message, sys.stderr)
        raise _ParserExit(status)


class _ParserExit(SystemExit):
    pass


def build_parser(prog: str = "leakkit") -> argparse.ArgumentParser:
    """The command line's parser, one subparser per command; the docs render its help, so the
    reference is what the command accepts."""
    parser = _Parser(
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
    """Run the command line; returns the exit code (:data:`EXIT_CODES`)."""
    try:
        code = _main(argv, prog)
        sys.stdout.flush()  # a closed pipe shows here, not as a traceback at exit
        return code
    except BrokenPipeError:
        if not _output_closed():
            raise
        _silence_output()
        return EXIT_PIPE


def _main(argv: Sequence[str] | None, prog: str) -> int:
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
    guard = ending_children()  # SIGTERM/SIGHUP end a command run or watched; Ctrl-C is noted
    try:
        if args.subcommand in ("watch", "run"):
            with guard:
                code = args.entry.run(args, args.parser)
        else:
            code = args.entry.run(args, args.parser)
    except _ParserExit as exit_:  # parser.error() inside a command
        return _code(exit_)
    except LeakkitError as error:
        print(f"{prog}: error: {_one_line(str(error))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit as exit_:  # the code under investigation (a workload, a targets module) exited
        print(f"{prog}: error: the code it ran called sys.exit({exit_.code!r}); expected a workload and modules "
              "that return (nothing was measured to the end)", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError as error:
        if _output_closed():
            raise  # the reader of our output has gone: main() ends quietly
        return _internal(error, args.debug, prog)
    except GeneratorExit as error:  # raised by the code under investigation, outside any generator
        print(f"{prog}: error: the code it ran raised GeneratorExit{': ' + _one_line(str(error)) if str(error) else ''}"
              "; expected a workload that returns", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # leakkit's own fault: never exit 1, which reads as "a leak found"
        return _internal(error, args.debug, prog)
    if guard.signal == signal.SIGINT:  # the command caught Ctrl-C and returned what it had: not a finished run
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code


def _internal(error: BaseException, debug: bool, prog: str) -> int:
    """leakkit's own failure: one line (the traceback with --debug), exit 3."""
    if debug:
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    print(f"{prog}: internal error: {type(error).__name__}: {_one_line(str(error))}"
          + ("" if debug else f" (rerun with {prog} --debug ... for the traceback)"), file=sys.stderr)
    return EXIT_INTERNAL


def _output_closed() -> bool:
    """Whether stdout or stderr is a pipe whose reader has gone (the BrokenPipeError was ours to write)."""
    import select

    if not hasattr(select, "poll"):
        return True
    poller = select.poll()
    for stream in (sys.stdout, sys.stderr):
        try:
            poller.register(stream.fileno(), select.POLLOUT)
        except (AttributeError, ValueError, OSError):
            continue
    try:
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except OSError:
        return True


def _silence_output() -> None:
    """Point stdout and stderr at /dev/null, so that the interpreter's last flush finds no closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (AttributeError, ValueError, OSError):
            pass
    os.close(devnull)


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
