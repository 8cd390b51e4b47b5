"""pytest plugin (entry point ``pytest11``): a no-op unless a test asks for it.

* ``@pytest.mark.leakcheck(calls=..., warmup=..., targets=[...])`` repeats the test body and fails
  the test when each run keeps memory, with leakkit's report (verdict, what each run keeps, and with
  ``targets`` the culprit function and the reference path that keeps its memory alive).
* the ``leakcheck`` fixture checks any function: ``report = leakcheck(handle, calls=50)``.

Settings, most specific first: the marker's or the fixture call's arguments, then
``--leakcheck-calls`` / ``--leakcheck-warmup``, then the ini settings ``leakcheck_calls`` /
``leakcheck_warmup``, then leakkit's defaults. State lives on one :class:`LeakcheckManager`
registered with pytest (as pytest-memray does); the marker's help comes from its docstring.
"""
from __future__ import annotations

import contextlib
import inspect
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .._errors import LeakkitError, expected
from .check import DEFAULT_CALLS, DEFAULT_WARMUP, check, leaks
from .pytest_settings import flag, read_int
from .targets import resolve_all

MANAGER = "leakkit-leakcheck-manager"
ALL_MANAGER = "leakkit-leakcheck-all"
_SETTINGS = {"calls": "number of measured runs of a leakcheck test (at least 12)",
             "warmup": "runs of a leakcheck test before measuring"}


class LeakcheckWarning(UserWarning):
    """A leakcheck could not decide (verdict ``inconclusive``): more calls would."""


def leakcheck_marker(calls: int | None = None, warmup: int | None = None, targets: Any = None, *,
                     skip: bool = False) -> None:
    """repeat the test body CALLS times after WARMUP runs and fail if each run keeps memory; TARGETS (modules, classes, functions, or their names) bisect to name the culprit function and what keeps its memory alive; SKIP=True: a test that cannot be repeated (--leakcheck-all lists it instead of judging it)."""


MARKERS = {"leakcheck": leakcheck_marker}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("leakkit", "leakkit: memory leak checks (@pytest.mark.leakcheck, leakcheck fixture)")
    for name, help_text in _SETTINGS.items():
        # default None, not a number: otherwise the ini setting could never be read
        group.addoption(f"--leakcheck-{name}", type=int, default=None, dest=f"leakcheck_{name}", metavar="N",
                        help=f"{help_text} (overrides the ini setting leakcheck_{name})")
        parser.addini(f"leakcheck_{name}", help=help_text, default=None)
    # --leakcheck-all and friends (leakkit/frontends/leakcheck_all/): default None, so the ini can say true
    group.addoption("--leakcheck-all", action="store_const", const=True, default=None, dest="leakcheck_all",
                    help="repeat every test and fail those that keep memory, threads, fds or tasks on every run, "
                         "with the culprit function and what keeps it (ini: leakcheck_all = true)")
    group.addoption("--leakcheck-warn", action="store_const", const=True, default=None, dest="leakcheck_warn",
                    help="with --leakcheck-all: a leaking test is a warning, not a failure (ini: leakcheck_warn)")
    group.addoption("--leakcheck-targets", default=None, dest="leakcheck_targets", metavar="PKG,...",
                    help="with --leakcheck-all: where bisect looks for the culprit besides the test's module "
                         "(default: the package under test)")
    group.addoption("--leakcheck-bisect-budget", type=float, default=None, dest="leakcheck_bisect_budget",
                    metavar="SECONDS", help="with --leakcheck-all: time budget of each leaking test's bisect "
                                            "(default 15; ini: leakcheck_bisect_budget)")
    group.addoption("--leakcheck-screen", type=int, default=None, dest="leakcheck_screen", metavar="N",
                    help="with --leakcheck-all: runs every test gets before a verdict; a test is checked further "
                         "only when each of them grew (default 3; ini: leakcheck_screen)")
    parser.addini("leakcheck_screen", default=None, help="leakcheck-all: runs every test gets (default 3)")
    group.addoption("--leakcheck-cost", type=float, default=None, dest="leakcheck_cost", metavar="FACTOR",
                    help="with --leakcheck-all: the check's time, bisects aside, at most FACTOR times the plain "
                         "suite's; a suspect whose further runs would pass it is listed, not confirmed "
                         "(default 5; inf: no limit; ini: leakcheck_cost)")
    parser.addini("leakcheck_cost", default=None, help="leakcheck-all: at most this many times the plain suite (default 5)")
    parser.addini("leakcheck_all", type="bool", default=False, help="repeat and leak-check every test")
    parser.addini("leakcheck_bisect_budget", default=None, help="leakcheck-all: seconds per bisect (default 15)")
    parser.addini("leakcheck_warn", type="bool", default=False, help="leakcheck-all: warn instead of failing")
    parser.addini("leakcheck_targets", default=None, help="leakcheck-all: bisect targets besides the test module")


def pytest_configure(config: pytest.Config) -> None:
    for name, marker in MARKERS.items():
        signature = ", ".join(f"{p}=..." for p in inspect.signature(marker).parameters)
        config.addinivalue_line("markers", f"{name}({signature}): {inspect.getdoc(marker)}")
    manager = LeakcheckManager(config)
    config.pluginmanager.register(manager, MANAGER)
    if flag(config, "leakcheck_all"):
        from .leakcheck_all import LeakcheckAll  # only then: the plugin costs nothing unless asked

        config.pluginmanager.register(LeakcheckAll(config, manager), ALL_MANAGER)


def _min_calls() -> int:
    """The fewest calls a verdict needs; bisect's engine is imported only when a count is given."""
    from ..engine.run import MIN_CALLS

    return MIN_CALLS


class LeakcheckManager:
    """The plugin's state: the settings read once per session, and the check every test goes through."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        # read once, at configure time, so that a bad value stops the session before any test runs
        self.settings = {"calls": read_int(config, "leakcheck_calls", default=DEFAULT_CALLS, minimum=_min_calls),
                         "warmup": read_int(config, "leakcheck_warmup", default=DEFAULT_WARMUP, minimum=0)}

    def setting(self, name: str) -> int:
        """``calls`` or ``warmup``: the command line's, else the ini file's, else leakkit's default."""
        return self.settings[name]

    def check(self, func: Callable[[], Any], *, calls: int | None = None, warmup: int | None = None,
              targets: Any = None, fail: bool = True, name: str | None = None,
              namespace: dict[str, Any] | None = None) -> Any:
        """Run ``func`` repeatedly through leakkit (bisect with ``targets``, else trace); fail the test on a leak."""
        calls = self.setting("calls") if calls is None else calls
        warmup = self.setting("warmup") if warmup is None else warmup
        try:
            if not isinstance(fail, bool):
                raise expected("True or False", "fail", fail)
            # an empty list is a mistake (nothing to search), not a request for a plain trace
            found = resolve_all(targets, namespace) if targets is not None else None
            report = check(func, calls=calls, warmup=warmup, targets=found, progress=False, name=name)
        except LeakkitError as error:
            problem = str(error)
        else:
            problem = None
        if problem is not None:  # failed outside the except block: no chained traceback for a usage mistake
            pytest.fail(f"leakcheck: {problem}", pytrace=False)
        if report.verdict == "inconclusive":
            warnings.warn(LeakcheckWarning(f"leakcheck {name or ''}: {str(report).splitlines()[0]}; "
                                           "give it more calls to decide"), stacklevel=2)
        if fail and leaks(report):
            pytest.fail(f"leakcheck: {name or getattr(func, '__qualname__', 'workload')} keeps memory on every run\n"
                        f"{report}", pytrace=False)
        return report

    @pytest.hookimpl(hookwrapper=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> Any:
        """A marked pytest function: its body, called with its fixtures' values, is what repeats."""
        with self._marked(pyfuncitem):
            yield

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Any:
        """A marked unittest method (pytest calls no pytest_pyfunc_call for those): the method
        repeats between one setUp and one tearDown, as a marked function's body between its fixtures."""
        if type(item).__name__ != "TestCaseFunction" or item.get_closest_marker("leakcheck") is None:
            yield
            return
        with self._marked(item):
            yield

    @contextlib.contextmanager
    def _marked(self, item: Any) -> Iterator[None]:
        """While the test runs, its ``obj`` is a wrapper that checks the real one (if marked)."""
        marker = item.get_closest_marker("leakcheck")
        if marker is None:
            yield
            return
        try:
            options = inspect.signature(leakcheck_marker).bind(*marker.args, **marker.kwargs).arguments
        except TypeError as error:
            options = None
            problem = f"expected leakcheck(calls=..., warmup=..., targets=..., skip=...), received {error}"
        if options is not None and options.pop("skip", False):
            yield  # not repeatable: run once, as without the marker
            return
        testfunction = item.obj
        if inspect.iscoroutinefunction(testfunction) or inspect.isasyncgenfunction(testfunction):
            options, problem = None, "expected a plain (not async) test function"
        module = getattr(item, "module", None)

        def wrapper(*args: Any, **kwargs: Any) -> None:
            if options is None:
                pytest.fail(f"leakcheck marker on {item.nodeid}: {problem}", pytrace=False)

            def run_test_body() -> None:
                testfunction(*args, **kwargs)

            self.check(run_test_body, name=item.nodeid, namespace=vars(module) if module is not None else None,
                       **options)

        item.obj = wrapper
        try:
            yield
        finally:
            item.obj = testfunction


@pytest.fixture(name="leakcheck")
def leakcheck_fixture(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """Check a function for leaks: ``report = leakcheck(func, calls=50, warmup=2, targets=None, fail=True)``.

    Runs ``func`` (no arguments) ``warmup`` times, then ``calls`` times under leakkit.trace, or
    leakkit.bisect when ``targets`` are given; fails the test when it keeps memory on every call
    (unless ``fail=False``) and returns the report otherwise.
    """
    manager: LeakcheckManager = request.config.pluginmanager.get_plugin(MANAGER)
    namespace = vars(request.module) if request.module is not None else None

    def leakcheck(func: Callable[[], Any], *, calls: int | None = None, warmup: int | None = None,
                  targets: Any = None, fail: bool = True) -> Any:
        return manager.check(func, calls=calls, warmup=warmup, targets=targets, fail=fail,
                             name=f"{request.node.nodeid}: {getattr(func, '__qualname__', repr(func))}",
                             namespace=namespace)

    return leakcheck
