"""IPython magics (``%load_ext leakkit``): ``%leakcheck`` and ``%leaktrace``, line and cell forms.

The magics hold no logic: they turn a line or a cell into a zero-argument workload evaluated in the
user's namespace and call :func:`leakkit.trace` (``%leakcheck``) or :func:`leakkit.bisect`
(``%leaktrace``) through the same loop the pytest plugin uses. Options are parsed with argparse
(as memray's magics do); a bad option or a leakkit error becomes IPython's ``UsageError``, shown
without a traceback. The report is displayed (HTML with its plot in a notebook, text in a
terminal); ``-o`` also returns it, like ``%timeit -o``.
"""
from __future__ import annotations

import argparse
import inspect
import re
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from .._errors import LeakkitError
from .check import DEFAULT_CALLS, DEFAULT_WARMUP, check
from .targets import resolve_all


class _Help(Exception):
    """``-h`` was given: the help has been printed, nothing more to do."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (with the usage) instead of exiting the kernel."""

    def error(self, message: str) -> Any:
        raise UsageError(f"{self.format_usage()}{self.prog}: error: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> Any:
        if status:
            raise UsageError(message or f"{self.prog}: error")
        raise _Help()


def _parser(prog: str, description: str, *, bisect: bool) -> _Parser:
    parser = _Parser(prog=prog, description=description, add_help=True,
                     epilog="Options come first; the rest of the line is the code to run (after -- if it "
                     "starts with -). The cell form runs the whole cell.")
    if bisect:
        from .. import bisect as _bisect
        from ..engine.run import MIN_CALLS

        default = inspect.signature(_bisect).parameters["calls"].default
        parser.add_argument("--targets", "-t", action="append", required=True, metavar="NAME",
                            help="module, class or function to search: a name in the notebook or an "
                            "importable one (repeat, or separate with commas)")
    else:
        from ..engine.run import MIN_CALLS

        default = DEFAULT_CALLS
    parser.add_argument("-n", "--calls", type=int, default=default, metavar="CALLS",
                        help=f"measured runs, at least {MIN_CALLS} (default: {default})")
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, metavar="N",
                        help=f"runs before measuring (default: {DEFAULT_WARMUP})")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.add_argument("-o", "--return", dest="return_report", action="store_true",
                        help="return the report too (report = %%leakcheck -o ...)")
    return parser


LEAKCHECK = _parser("%leakcheck", "Run code repeatedly under leakkit.trace and show whether it keeps memory: "
                    "the verdict, the rate per run and a plot.", bisect=False)
LEAKTRACE = _parser("%leaktrace", "Run code repeatedly under leakkit.bisect: which target function keeps "
                    "memory, and what keeps it alive.", bisect=True)
_VALUE_OPTIONS = {"-n", "--calls", "--warmup", "--targets", "-t"}
MAX_RUNS = 100_000  # per magic: more is a typo, or a job for the pytest plugin or a script
_TOKEN = re.compile(r"(\S+)\s*(.*)", re.S)


def _split(line: str) -> tuple[list[str], str]:
    """Leading option tokens, and the rest of the line verbatim (so the code keeps its quotes and spaces)."""
    options: list[str] = []
    rest = line.strip()
    while rest.startswith("-"):
        token, rest = _TOKEN.match(rest).groups()
        if token == "--":
            break
        options.append(token)
        if token in _VALUE_OPTIONS and rest:
            value, rest = _TOKEN.match(rest).groups()
            options.append(value)
    return options, rest


def _with_help(parser: argparse.ArgumentParser) -> Callable:
    def decorate(func: Callable) -> Callable:
        func.__doc__ = f"{func.__doc__}\n{parser.format_help()}"
        return func
    return decorate


class _Shown:
    """Displays a report: its ``__str__`` as plain text (a terminal), its ``_repr_html_`` in a notebook."""

    def __init__(self, report: Any) -> None:
        self.report = report

    def __repr__(self) -> str:
        return str(self.report)

    def _repr_html_(self) -> str:
        return self.report._repr_html_()


@magics_class
class LeakkitMagics(Magics):
    """``%leakcheck`` / ``%%leakcheck`` and ``%leaktrace`` / ``%%leaktrace``."""

    @line_cell_magic
    @_with_help(LEAKCHECK)
    def leakcheck(self, line: str, cell: str | None = None) -> Any:
        """Does this code keep memory each time it runs? ``%leakcheck -n 50 handle(request)``.

        Runs the line's expression (or the cell) ``--warmup`` times, then ``-n`` times under
        ``leakkit.trace``, in the notebook's namespace, and shows the report: leak / plateau /
        clean / inconclusive, what each run keeps (blocks, bytes), the growing types and a plot.
        """
        return self._run(LEAKCHECK, line, cell, bisect=False)

    @line_cell_magic
    @_with_help(LEAKTRACE)
    def leaktrace(self, line: str, cell: str | None = None) -> Any:
        """Which function keeps the memory, and who holds it? ``%leaktrace --targets worker worker.handle()``.

        Runs the code under ``leakkit.bisect`` with ``--targets`` (modules, classes or functions,
        by their name in the notebook or an importable name) and shows the verdict, the culprit
        function, the reference path that keeps its memory alive and a plot.
        """
        return self._run(LEAKTRACE, line, cell, bisect=True)

    def _run(self, parser: _Parser, line: str, cell: str | None, *, bisect: bool) -> Any:
        tokens, code = _split(line)
        try:
            args = parser.parse_args(tokens)
        except _Help:
            return None
        for option, value, least in (("-n/--calls", args.calls, 1), ("--warmup", args.warmup, 0)):
            if not least <= value <= MAX_RUNS:  # a typo such as -n 5000000 would tie up the kernel for hours
                raise UsageError(f"{parser.format_usage()}{parser.prog}: error: {option}: expected an int in "
                                 f"{least}..{MAX_RUNS}, received {value}")
        if cell is not None:
            if code:
                raise UsageError(f"{parser.format_usage()}{parser.prog}: error: the cell form takes options "
                                 f"only on its first line, received {code!r}")
            code, label = cell, "cell"
        else:
            if not code:
                raise UsageError(f"{parser.format_usage()}{parser.prog}: error: expected code to run after "
                                 "the options (or use the cell form)")
            label = code if len(code) <= 60 else code[:57] + "..."
        workload = self._workload(code, parser.prog)
        # bisect charges memory by tracemalloc to target functions: a bar (a widget in a notebook) cannot
        # disturb it. A trace reads the whole process, so its bar is shown only on a terminal, where a
        # plain text bar was measured to keep nothing.
        progress = False if args.quiet else (True if bisect else None)
        try:
            targets = resolve_all(args.targets, self.shell.user_ns) if bisect else None
            report = check(workload, calls=args.calls, warmup=args.warmup, targets=targets, progress=progress,
                           name=label)
        except LeakkitError as error:
            raise UsageError(f"{parser.prog}: {error}") from None
        from IPython.display import display

        display(_Shown(report))
        return report if args.return_report else None

    def _workload(self, code: str, prog: str) -> Callable[[], Any]:
        """A zero-argument function running ``code`` in the user's namespace (IPython syntax allowed)."""
        source = self.shell.transform_cell(code)
        namespace = self.shell.user_ns
        try:
            compiled = compile(source, f"<{prog.lstrip('%')}>", "eval")
            evaluate = eval
        except SyntaxError:
            try:
                compiled = compile(source, f"<{prog.lstrip('%')}>", "exec")
            except SyntaxError as error:
                raise UsageError(f"{prog}: expected Python code, received a syntax error: {error}") from None
            evaluate = exec

        def workload() -> Any:
            return evaluate(compiled, namespace)

        workload.__qualname__ = workload.__name__ = re.sub(r"\W+", "_", prog.lstrip("%"))
        return workload


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext leakkit``: register the magics."""
    ipython.register_magics(LeakkitMagics)
