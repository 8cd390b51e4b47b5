"""The ``--leakcheck-all`` pytest plugin object: which tests to repeat, each one's outcome, the summary.

Registered with pytest only when ``--leakcheck-all`` (or ``leakcheck_all = true``) asks, as
pytest-memray's manager is; it holds the session's settings and outcomes and calls the jobs of
its sibling modules: repeat the call phase (:mod:`.runs`), read and judge the counters
(:mod:`.counters`), and bisect a test that keeps memory, over the package under test
(:mod:`.project`).
"""
from __future__ import annotations

import contextlib
import gc
import os
import warnings
from dataclasses import dataclass
from typing import Any

import pytest

from ..._compat import freeze
from ..._errors import LeakkitError
from ..pytest_settings import flag, given, read_seconds
from ..targets import resolve_all
from .counters import COUNTS, FLOORS, MEMORY, UNITS, Series, judge, read_counters
from .project import package_under_test, with_submodules
from .runs import fresh_capture, run_once

DEFAULT_BISECT_BUDGET = 15.0  # seconds per leaking test's bisect (leakkit.bisect's time_budget)
DEFAULT_CALLS = 12  # the fewest a verdict needs (leakkit.engine.run.MIN_CALLS): the suite runs 15x, not 53x
PROPERTY = "leakcheck_all"


class LeakcheckAllWarning(UserWarning):
    """A test that keeps memory on every run, reported as a warning (``--leakcheck-warn``)."""


@dataclass
class Outcome:
    """What --leakcheck-all found for one test: a JSON-able dict crosses xdist as a user property."""

    nodeid: str
    verdict: str  # leak, clean, plateau, inconclusive, unrepeatable, skipped, unconfirmed
    counter: str = ""  # the counter that leaked: blocks, traced_bytes, fds, threads, tasks
    rate: str = ""  # per run, in the counter's unit
    culprit: str | None = None
    root: str | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def _repeatable_error(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}"[:200]


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
        terminal.write_line(text)


class LeakcheckAll:
    """The --leakcheck-all state, registered with pytest only when asked (as pytest-memray's manager)."""

    def __init__(self, config: pytest.Config, manager: Any) -> None:
        """``manager``: the plugin's LeakcheckManager, whose calls and warm-up settings are used."""
        self.config = config
        self.calls = manager.setting("calls") if given(config, "leakcheck_calls") else DEFAULT_CALLS
        self.warmup = manager.setting("warmup")
        self.warn = flag(config, "leakcheck_warn")
        self.target_spec = config.getoption("leakcheck_targets") or config.getini("leakcheck_targets") or None
        # read at configure time, before any test runs: a bad value is a usage error
        self.bisect_budget = read_seconds(config, "leakcheck_bisect_budget", default=DEFAULT_BISECT_BUDGET)
        self.outcomes: list[dict[str, Any]] = []
        self._default_targets: list[Any] | None = None
        self._running = False

    # -- pytest hooks ---------------------------------------------------------------------------
    def pytest_report_header(self, config: pytest.Config) -> str:
        return (f"leakkit --leakcheck-all: each test's call phase runs 1 + {self.warmup} warm-up + {self.calls} "
                f"measured times (~{1 + self.warmup + self.calls}x), plus a bisect of each leaking test")

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_call(self, item: pytest.Item) -> None:
        """After the test's own call passed: repeat it, judge, bisect if it leaks."""
        if self._running or not isinstance(item, pytest.Function):
            return
        marker = item.get_closest_marker("leakcheck")
        if marker is not None:
            if marker.kwargs.get("skip"):
                self._record(item, Outcome(item.nodeid, "skipped", detail="marked leakcheck(skip=True)"))
            return  # a marked test is checked by its own marker
        self._running = True
        try:
            outcome = self._check(item)
        finally:
            self._running = False
        self._record(item, outcome)
        if outcome.verdict == "leak":
            message = f"leakcheck-all: {item.nodeid} keeps {outcome.rate} on every run\n{outcome.detail}"
            if self.warn:
                warnings.warn(LeakcheckAllWarning(message), stacklevel=1)
            else:
                pytest.fail(message, pytrace=False)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        for name, value in getattr(report, "user_properties", ()):
            if name == PROPERTY and isinstance(value, dict):
                self.outcomes.append(value)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if os.environ.get("PYTEST_XDIST_WORKER"):
            return  # the controller prints what every worker found
        write = terminalreporter.write_line
        leaking = [o for o in self.outcomes if o["verdict"] == "leak"]
        listed = [o for o in self.outcomes if o["verdict"] in ("unrepeatable", "skipped")]
        others = [o for o in self.outcomes if o["verdict"] in ("unconfirmed", "inconclusive")]
        judged = [o for o in self.outcomes if o["verdict"] not in ("unrepeatable", "skipped")]
        terminalreporter.section("leakkit --leakcheck-all")
        write(f"{len(judged)} tests judged, {len(leaking)} leaking, {len(listed)} not repeated "
              f"({1 + self.warmup + self.calls} runs each)")
        for o in leaking:
            write(f"LEAK {o['nodeid']}: {o['rate']}; culprit {o['culprit'] or '?'}; kept by {o['root'] or '?'}")
        for o in others:
            write(f"{o['verdict'].upper()} {o['nodeid']}: {o['detail'].splitlines()[0] if o['detail'] else ''}")
        for o in listed:
            write(f"NOT REPEATED {o['nodeid']}: {o['detail']}")

    # -- the check ------------------------------------------------------------------------------
    def _record(self, item: pytest.Item, outcome: Outcome) -> None:
        item.user_properties.append((PROPERTY, outcome.as_dict()))

    def _check(self, item: pytest.Function) -> Outcome:
        series = Series(tuple(FLOORS), self.calls + 1)
        frozen = False
        with fresh_capture(item):
            try:
                for _ in range(self.warmup):
                    run_once(item)
                # Frozen before the first reading: its collection and every later one walk only
                # what the measured runs made, not the whole heap of the test process (a full
                # collection per test was most of the cost on a suite of fast tests). Garbage left
                # from before stays frozen, so it counts the same in every reading.
                frozen = freeze()
                series.add(read_counters())
                for _ in range(self.calls):
                    run_once(item)
                    series.add(read_counters())
            except (Exception, pytest.fail.Exception, pytest.skip.Exception, pytest.xfail.Exception) as error:
                return Outcome(item.nodeid, "unrepeatable", detail=f"a repeated run raised {_repeatable_error(error)}")
            finally:
                if frozen:
                    gc.unfreeze()
        verdicts = judge(series)
        counts = [n for n in COUNTS if n in verdicts and verdicts[n].verdict == "leak"]
        memory = [n for n in MEMORY if n in verdicts and verdicts[n].verdict == "leak"]
        if not counts and not memory:
            worst = verdicts.get("blocks")
            verdict = worst.verdict if worst is not None else "clean"
            return Outcome(item.nodeid, verdict, detail=str(worst) if worst is not None else "")
        counter = (counts or memory)[0]
        rate = f"{verdicts[counter].rate:+.3g} {UNITS[counter]}/run"
        report, problem = self._bisect(item)
        if report is None:
            detail = f"  {counter}: {verdicts[counter]}\n  (no bisect: {problem})"
            return Outcome(item.nodeid, "leak" if counts else "unconfirmed", counter, rate, detail=detail)
        root = report.retention[0] if report.retention else None
        detail = f"  {counter}: {verdicts[counter]}\n{report}"
        if report.verdict == "leak" and not counts:
            from ..._sizes import format_size

            rate = f"{format_size(report.total.rate, signed=True)}/run ({rate})"
        if report.verdict != "leak" and not counts:
            return Outcome(item.nodeid, "unconfirmed", counter, rate, detail=f"bisect says {report.verdict}\n{detail}")
        return Outcome(item.nodeid, "leak", counter, rate, report.culprit, root, detail)

    def _bisect(self, item: pytest.Function) -> tuple[Any, str]:
        from ... import bisect

        try:
            targets = self._targets(item)
        except LeakkitError as error:
            return None, str(error)
        _say(self.config, f"leakcheck-all: {item.nodeid} keeps memory on every run; bisecting it "
                          f"(at most ~{self.bisect_budget:.0f} s) ...")

        def workload() -> None:
            run_once(item)

        try:
            with fresh_capture(item):
                return bisect(workload, targets=targets, warmup=self.warmup, progress=False,
                              time_budget=self.bisect_budget), ""
        except LeakkitError as error:
            return None, str(error)

    def _targets(self, item: pytest.Function) -> list[Any]:
        found: list[Any] = [item.module] if item.module is not None else []
        if self.target_spec:
            found += resolve_all(self.target_spec)
        else:
            if self._default_targets is None:
                self._default_targets = package_under_test(str(self.config.rootpath), str(item.path.parent))
            found += self._default_targets
        unique: list[Any] = []
        for target in with_submodules(found):
            if all(target is not other for other in unique):
                unique.append(target)
        return unique
