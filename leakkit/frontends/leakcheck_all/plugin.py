"""The ``--leakcheck-all`` pytest plugin object: which tests to repeat, each one's outcome, the summary.

Registered with pytest only when ``--leakcheck-all`` (or ``leakcheck_all = true``) asks, as
pytest-memray's manager is; it holds the session's settings and outcomes and calls the jobs of
its sibling modules: keep the harness as a plain run leaves it (:mod:`.quiet`), check a test in
stages (:mod:`.stages`), and report progress and cost (:mod:`.progress`). The session's own
report stays what a plain run gives: a test's call-phase duration is its first run's, and its
outcome travels on the report (not in ``user_properties``, which junitxml writes out).
"""
from __future__ import annotations

import contextlib
import os
import time
import warnings
from typing import Any

import pytest

from ..._errors import LeakkitError
from ..pytest_settings import flag, given, read_factor, read_int, read_seconds
from ..targets import resolve_all
from . import forked
from .holders import harness_modules
from .progress import Budget, Progress
from .project import package_under_test, with_submodules
from .quiet import Baseline, Quiet
from .runs import repeatable
from .stages import Check, Outcome, Plan

DEFAULT_BISECT_BUDGET = 15.0  # seconds per leaking test's bisect (leakkit.bisect's time_budget)
DEFAULT_SCREEN = 3  # runs every test gets: regrtest -R's three
DEFAULT_CONFIRM = 12  # more for a suspect: the fewest a verdict needs (leakkit.engine.run.MIN_CALLS)
DEFAULT_WARMUP = 0  # the plain run is the warm-up
DEFAULT_COST = 5.0  # the check's time, bisects aside, at most this many times the plain suite
ATTRIBUTE = "leakkit_outcome"  # on the call phase's report: serialised by xdist, ignored by junitxml
_BASELINE = pytest.StashKey[Baseline]()
_ELAPSED = pytest.StashKey[float]()
_OUTCOME = pytest.StashKey[dict]()


class LeakcheckAllWarning(UserWarning):
    """A test that keeps memory on every run, reported as a warning (``--leakcheck-warn``)."""


def _say(config: pytest.Config, text: str) -> None:
    """A progress line on the terminal while a test runs: pytest's capture is suspended for it, or
    the line would land in the test's captured output. Nothing from xdist workers."""
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is None or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    capture = config.pluginmanager.get_plugin("capturemanager")
    suspended = capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext()
    with suspended:
        terminal.ensure_newline()
        if getattr(getattr(terminal, "_tw", None), "width_of_current_line", 0):
            # a test's status letter since the last line (pytest forgot the file's header after
            # the line before this one): the line must not run on after it
            terminal._tw.line()
        terminal.write_line(text)


class LeakcheckAll:
    """The --leakcheck-all state, registered with pytest only when asked (as pytest-memray's manager)."""

    def __init__(self, config: pytest.Config, manager: Any) -> None:
        """``manager``: the plugin's LeakcheckManager, whose calls and warm-up settings are used."""
        self.config = config
        confirm = manager.setting("calls") if given(config, "leakcheck_calls") else DEFAULT_CONFIRM
        warmup = manager.setting("warmup") if given(config, "leakcheck_warmup") else DEFAULT_WARMUP
        # read at configure time, before any test runs: a bad value is a usage error
        self.plan = Plan(warmup=warmup, screen=read_int(config, "leakcheck_screen", default=DEFAULT_SCREEN, minimum=2),
                         confirm=confirm,
                         bisect_budget=read_seconds(config, "leakcheck_bisect_budget", default=DEFAULT_BISECT_BUDGET))
        self.warn = flag(config, "leakcheck_warn")
        self.target_spec = config.getoption("leakcheck_targets") or config.getini("leakcheck_targets") or None
        self.outcomes: list[dict[str, Any]] = []
        self.progress = Progress()
        self.budget = Budget(read_factor(config, "leakcheck_cost", default=DEFAULT_COST, above=1.0))
        self._targets_given: list[Any] | None = None
        self._default_targets: list[Any] | None = None
        self._harness: tuple[str, ...] | None = None
        self._running = False
        forked.note_inherited()  # a bisect forks only while nothing but these is open to share

    # -- pytest hooks ---------------------------------------------------------------------------
    def pytest_report_header(self, config: pytest.Config) -> str:
        p = self.plan
        warm = f"{p.warmup} warm-up + " if p.warmup else ""
        return (f"leakkit --leakcheck-all: each test's call phase runs 1 + {warm}{p.screen} times; {p.confirm} more "
                f"for a test whose runs all grew, and a bisect of each confirmed leak")

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Targets named on the command line or in the ini file are resolved now: a name that does
        not import stops the session (a usage error), before any test runs."""
        if self.target_spec:
            try:
                self._targets_given = resolve_all(self.target_spec)
            except LeakkitError as error:
                raise pytest.UsageError(f"--leakcheck-targets: {error}") from None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.progress.total = len(session.items)
        if not os.environ.get("PYTEST_XDIST_WORKER"):  # a worker runs only some of what it collected
            self.budget.total = len(session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.progress.total = len(ids)  # the controller collects nothing itself

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Any:
        """After the test's setup: what its fixtures set up, which repeated runs leave in place."""
        result = yield
        if not self._running and result.excinfo is None and repeatable(item):
            item.stash[_BASELINE] = Baseline(item)

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_call(self, item: pytest.Item) -> None:
        """After the test's own call passed: repeat it in stages, bisect it if it leaks."""
        baseline = item.stash.get(_BASELINE, None)
        if self._running or baseline is None or getattr(item, "_excinfo", None):
            return  # a unittest test reports its failures and skips to the item: not passed
        marker = item.get_closest_marker("leakcheck")
        if marker is not None:
            if marker.kwargs.get("skip"):
                item.stash[_OUTCOME] = Outcome(item.nodeid, "skipped", detail="marked leakcheck(skip=True)").as_dict()
            return  # a marked test is checked by its own marker
        started = time.perf_counter()
        self._running = True
        try:
            with Quiet(item, baseline) as quiet:
                outcome = Check(item, quiet, self.plan, harness=self._harness_modules(), budget=self.budget,
                                targets=lambda: self._targets(item), say=lambda text: _say(self.config, text)).run()
        finally:
            self._running = False
            item.stash[_ELAPSED] = time.perf_counter() - started
        # all the time leakkit added to the test (its harness set aside and given back included), not
        # only the stages': counted as the plain suite's, it let attrs' check past its factor
        self.budget.add(item.stash[_ELAPSED] - outcome.bisect_s, outcome.bisect_s, outcome.screen_s)
        item.stash[_OUTCOME] = outcome.as_dict()
        if outcome.verdict == "leak":
            message = f"leakcheck-all: {item.nodeid} keeps {outcome.rate} on every run\n{outcome.detail}"
            if self.warn:
                warnings.warn(LeakcheckAllWarning(message), stacklevel=1)
            else:
                pytest.fail(message, pytrace=False)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo) -> Any:
        """The call phase's report: the first run's duration (repeated runs and bisects are the
        check's, not the test's: ``--durations`` and junitxml give what a plain run gives), and
        the outcome attached for the summary."""
        result = yield
        if call.when != "call" or self._running:
            return
        report = result.get_result()
        elapsed = item.stash.get(_ELAPSED, None)
        if elapsed is not None:
            report.duration = max(report.duration - elapsed, 0.0)
            report.stop = report.start + report.duration
        outcome = item.stash.get(_OUTCOME, None)
        if outcome is not None:
            setattr(report, ATTRIBUTE, outcome)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        outcome = getattr(report, ATTRIBUTE, None)
        if report.when == "call" and isinstance(outcome, dict):
            self.outcomes.append(outcome)
            self.progress.add(outcome)
        if report.when == "teardown" and not os.environ.get("PYTEST_XDIST_WORKER"):
            self.budget.finished()
            line = self.progress.finished()
            if line is not None:
                _say(self.config, line)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if os.environ.get("PYTEST_XDIST_WORKER"):
            return  # the controller prints what every worker found
        write = terminalreporter.write_line
        leaking = [o for o in self.outcomes if o["verdict"] == "leak"]
        listed = [o for o in self.outcomes if o["verdict"] in ("unrepeatable", "skipped")]
        others = [o for o in self.outcomes if o["verdict"] in ("unconfirmed", "inconclusive", "harness", "suspect", "runaway")
                  or (o["verdict"] == "plateau" and o.get("counter"))]
        judged = [o for o in self.outcomes if o["verdict"] not in ("unrepeatable", "skipped")]
        confirmed = sum(1 for o in judged if o.get("runs", 0) > self.plan.warmup + self.plan.screen)
        terminalreporter.section("leakkit --leakcheck-all")
        write(f"{len(judged)} tests judged, {len(leaking)} leaking, {len(listed)} not repeated "
              f"({self.plan.screen} more runs each, {self.plan.confirm}+ more for the {confirmed} whose runs all grew)")
        write(self.progress.cost())
        costly = sorted((o for o in self.outcomes if o.get("seconds", 0) >= 1.0), key=lambda o: -o["seconds"])[:3]
        if costly:
            write("costliest: " + "; ".join(f"{o['nodeid']} ({o['runs']} runs, {o['seconds']:.1f} s, "
                                            f"{o['verdict']})" for o in costly))
        for o in leaking:
            write(f"LEAK {o['nodeid']}: {o['rate']}; culprit {o['culprit'] or '?'}; kept by {o['root'] or '?'}")
        for o in others:
            name = "RAN AWAY" if o["verdict"] == "runaway" else o["verdict"].upper()
            write(f"{name} {o['nodeid']}: {o['detail'].splitlines()[0] if o['detail'] else ''}")
        for o in listed:
            write(f"NOT REPEATED {o['nodeid']}: {o['detail']}")

    # -- where bisect looks ---------------------------------------------------------------------
    def _harness_modules(self) -> tuple[str, ...]:
        if self._harness is None:
            self._harness = harness_modules(self.config)
        return self._harness

    def _targets(self, item: pytest.Item) -> list[Any]:
        module = getattr(item, "module", None)
        found: list[Any] = [module] if module is not None else []
        if self._targets_given is not None:
            found += self._targets_given
        else:
            if self._default_targets is None:
                self._default_targets = package_under_test(str(self.config.rootpath), str(item.path.parent))
            found += self._default_targets
        unique: list[Any] = []
        for target in with_submodules(found):
            if all(target is not other for other in unique):
                unique.append(target)
        return unique
