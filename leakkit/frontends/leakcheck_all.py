"""``pytest --leakcheck-all``: repeat every test's call phase and judge what each run keeps.

What CPython's ``regrtest -R`` does for its own suite, on any pytest suite and a release build:
fixtures are set up once, the call phase runs once as usual, then ``warmup`` more times unmeasured
and ``calls`` more times, each followed by a garbage collection and cheap readings: allocated
blocks, traced bytes (when tracemalloc is on), open file descriptors, live threads and pending
asyncio tasks. Each series gets leakkit's verdict (:func:`leakkit.analysis.classify`: warm-up
caches, cycles and growth that stops are not leaks). A test whose memory series says ``leak`` is
bisected (:func:`leakkit.bisect`, its body as the workload, the test's module and the package
under test as targets); bisect's longer run and its bounded-holder check confirm it or not, and
name the culprit function and the root that keeps its memory. A leak of threads, fds or tasks
needs no confirmation: every run left one more.

Cost: each test's call phase runs ``1 + warmup + calls`` times (15x with the defaults), plus a
bisect (~60 more runs) for each test judged leaking. Narrow it with ``-k``, a path, or a marker
(``-m``); ``@pytest.mark.leakcheck(skip=True)`` exempts a test that cannot be repeated.
"""
from __future__ import annotations

import contextlib
import gc
import importlib
import math
import os
import sys
import threading
import types
import unittest
import warnings
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from .. import _compat

DEFAULT_BISECT_BUDGET = 15.0  # seconds per leaking test's bisect (leakkit.bisect's time_budget)
DEFAULT_CALLS = 12  # the fewest a verdict needs (leakkit.engine.run.MIN_CALLS): the suite runs 15x, not 53x
BLOCKS_FLOOR = 8  # a few blocks come and go with pytest's own bookkeeping between runs
BYTES_FLOOR = 1024
COUNT_FLOOR = 1  # threads, fds, tasks: one more per run is a leak
PROPERTY = "leakcheck_all"
_SKIP_DIRS = {"tests", "test", "testing", "docs", "doc", "examples", "example", "benchmarks", "bench",
              "scripts", "tools", "build", "dist", "site-packages"}
_SKIP_MODULES = {"setup", "conftest", "noxfile", "tasks", "fabfile", "manage", "docs_conf"}


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


class _Series:
    """Readings per counter in preallocated arrays: appending Python floats would keep a block
    per reading, the harness's own leak."""

    def __init__(self, names: tuple[str, ...], size: int) -> None:
        self.size = size
        self.n = 0
        self._values = {name: array("d", [math.nan]) * size for name in names}

    def add(self, reading: dict[str, float | None]) -> None:
        for name, column in self._values.items():
            value = reading.get(name)
            if value is not None:
                column[self.n] = value
        self.n += 1

    @property
    def x(self) -> list[int]:
        return list(range(self.n))

    @property
    def readings(self) -> dict[str, list[float]]:
        return {name: list(column[: self.n]) for name, column in self._values.items()
                if not any(math.isnan(v) for v in column[: self.n])}


def _pending_tasks() -> int | None:
    """Asyncio tasks not done yet, from asyncio's own registry (no import of asyncio if unused)."""
    tasks = sys.modules.get("asyncio.tasks")
    if tasks is None:
        return None
    count = 0
    for name in ("_all_tasks", "_scheduled_tasks", "_eager_tasks"):  # 3.10-3.11; 3.12+
        registry = getattr(tasks, name, None)
        if registry is None:
            continue
        try:
            count += sum(1 for task in list(registry) if not task.done())
        except Exception:
            continue
    return count


def read_counters() -> dict[str, float | None]:
    """The cheap counters, read right after a full collection and with the type attribute cache
    cleared: on 3.10/3.11 it keeps every attribute name it caches (each unpickled class name, each
    ``getattr`` with a new string), up to 4096 of them, which read as a few blocks per run."""
    from .. import _compat
    from ..probes import process as probes

    _compat.settle()
    gc.collect()
    return {"blocks": probes.blocks(), "traced_bytes": probes.traced_bytes(), "fds": probes.fds(),
            "threads": threading.active_count(), "tasks": _pending_tasks()}


_FLOORS = {"blocks": BLOCKS_FLOOR, "traced_bytes": BYTES_FLOOR, "fds": COUNT_FLOOR, "threads": COUNT_FLOOR,
           "tasks": COUNT_FLOOR}
_UNITS = {"blocks": "blocks", "traced_bytes": "bytes", "fds": "fds", "threads": "threads", "tasks": "tasks"}


def judge(series: _Series) -> dict[str, Any]:
    """leakkit's verdict on each counter's series (leakkit.analysis.classify)."""
    from ..analysis import classify

    verdicts = {}
    x = series.x
    for name, values in series.readings.items():  # a probe that came and went has no series
        verdicts[name] = classify(x, values, floor=_FLOORS[name])
    return verdicts


def _repeatable_error(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}"[:200]


def _log_handlers(item: pytest.Item) -> list[Any]:
    """pytest's log capture handlers: the test's caplog one and any on the root logger."""
    import logging

    try:
        from _pytest.logging import LogCaptureHandler, caplog_handler_key
    except ImportError:  # a pytest without these internals: the capture is just not reset
        return []
    found = [item.stash.get(caplog_handler_key, None)]
    found += [h for h in logging.getLogger().handlers if isinstance(h, LogCaptureHandler)]
    unique: list[Any] = []
    for handler in found:
        if handler is not None and hasattr(handler, "reset") and all(handler is not h for h in unique):
            unique.append(handler)
    return unique


@contextlib.contextmanager
def _fresh_capture(item: pytest.Item) -> Iterator[None]:
    """Each repeated run sees fresh log and warning capture, as a fresh call phase would.

    pytest keeps the call phase's log records and warnings in lists: repeated, they would grow
    with every run and read as the test's leak (and ``caplog.records`` would see earlier runs).
    The first run's records are put back afterwards, for pytest's own report.
    """
    saved = [(h, h.records, h.stream) for h in _log_handlers(item)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pytest.warns inside a test sets its own filter
            yield
    finally:
        for h, records, stream in saved:
            h.records, h.stream = records, stream


@contextlib.contextmanager
def _fresh_testcase(item: pytest.Function) -> Iterator[None]:
    """A unittest test's repeated run gets a new TestCase instance, as each run of the test in
    unittest or ``regrtest -R`` would: setUp and tearDown run inside the call phase, so nothing
    but what a test stores on ``self`` (a counter a helper method bumps) would carry over, and
    that is dropped with the instance at teardown. Plain pytest tests keep theirs: their fixtures
    (``setup_method`` included) were set up once, on that instance."""
    parent = getattr(item, "parent", None)
    cls = getattr(parent, "obj", None)
    if not (isinstance(cls, type) and issubclass(cls, unittest.TestCase) and type(item).__name__ == "TestCaseFunction"):
        yield
        return
    fresh = cls(item.name)
    slot = "_testcase" if "_testcase" in vars(item) else "_instance"  # pytest < 8.2 kept it in _testcase
    saved = {name: vars(item)[name] for name in (slot, "_obj") if name in vars(item)}
    setattr(item, slot, fresh)
    item._obj = getattr(fresh, item.name)
    try:
        yield
    finally:
        for name in (slot, "_obj"):
            if name in saved:
                setattr(item, name, saved[name])
            else:
                vars(item).pop(name, None)


def _reset_capture(item: pytest.Item) -> None:
    for handler in _log_handlers(item):
        handler.reset()


def _read_budget(config: pytest.Config) -> float:
    """--leakcheck-bisect-budget, else the ini setting, else 15 s; a usage error unless a positive
    finite number of seconds (read at configure time, before any test runs)."""
    value: Any = config.getoption("leakcheck_bisect_budget")
    source = "--leakcheck-bisect-budget"
    if value is None:
        text = config.getini("leakcheck_bisect_budget")
        if text is None or str(text).strip() == "":
            return DEFAULT_BISECT_BUDGET
        source = "ini setting leakcheck_bisect_budget"
        try:
            value = float(str(text).strip())
        except ValueError:
            raise pytest.UsageError(f"{source}: expected a number of seconds, received {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise pytest.UsageError(f"{source}: expected a positive number of seconds, received {value}")
    return float(value)


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

    def __init__(self, config: pytest.Config) -> None:
        from .pytest_plugin import MANAGER, _flag

        self.config = config
        manager = config.pluginmanager.get_plugin(MANAGER)
        given = config.getoption("leakcheck_calls") is not None or str(config.getini("leakcheck_calls") or "").strip()
        self.calls = manager.setting("calls") if given else DEFAULT_CALLS
        self.warmup = manager.setting("warmup")
        self.warn = _flag(config, "leakcheck_warn")
        self.target_spec = config.getoption("leakcheck_targets") or config.getini("leakcheck_targets") or None
        self.bisect_budget = _read_budget(config)
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

    def _run_once(self, item: pytest.Function) -> None:
        _reset_capture(item)
        before = len(getattr(item, "_excinfo", None) or ())
        with _fresh_testcase(item):
            item.runtest()
        recorded = getattr(item, "_excinfo", None)
        if recorded and len(recorded) > before:
            # a unittest TestCase reports its failures to the item instead of raising: take this
            # run's off again (the test's own outcome is its first run's) and raise the first
            error = recorded[before].value
            del recorded[before:]
            raise error

    def _check(self, item: pytest.Function) -> Outcome:
        series = _Series(tuple(_FLOORS), self.calls + 1)
        frozen = False
        with _fresh_capture(item):
            try:
                for _ in range(self.warmup):
                    self._run_once(item)
                # Frozen before the first reading: its collection and every later one walk only
                # what the measured runs made, not the whole heap of the test process (a full
                # collection per test was most of the cost on a suite of fast tests). Garbage left
                # from before stays frozen, so it counts the same in every reading.
                frozen = _compat.freeze()
                series.add(read_counters())
                for _ in range(self.calls):
                    self._run_once(item)
                    series.add(read_counters())
            except (Exception, pytest.fail.Exception, pytest.skip.Exception, pytest.xfail.Exception) as error:
                return Outcome(item.nodeid, "unrepeatable", detail=f"a repeated run raised {_repeatable_error(error)}")
            finally:
                if frozen:
                    gc.unfreeze()
        verdicts = judge(series)
        counts = [n for n in ("threads", "fds", "tasks") if n in verdicts and verdicts[n].verdict == "leak"]
        memory = [n for n in ("blocks", "traced_bytes") if n in verdicts and verdicts[n].verdict == "leak"]
        if not counts and not memory:
            worst = verdicts.get("blocks")
            verdict = worst.verdict if worst is not None else "clean"
            return Outcome(item.nodeid, verdict, detail=str(worst) if worst is not None else "")
        counter = (counts or memory)[0]
        rate = f"{verdicts[counter].rate:+.3g} {_UNITS[counter]}/run"
        report, problem = self._bisect(item)
        if report is None:
            detail = f"  {counter}: {verdicts[counter]}\n  (no bisect: {problem})"
            return Outcome(item.nodeid, "leak" if counts else "unconfirmed", counter, rate, detail=detail)
        root = report.retention[0] if report.retention else None
        detail = f"  {counter}: {verdicts[counter]}\n{report}"
        if report.verdict == "leak" and not counts:
            from .._sizes import format_size

            rate = f"{format_size(report.total.rate, signed=True)}/run ({rate})"
        if report.verdict != "leak" and not counts:
            return Outcome(item.nodeid, "unconfirmed", counter, rate, detail=f"bisect says {report.verdict}\n{detail}")
        return Outcome(item.nodeid, "leak", counter, rate, report.culprit, root, detail)

    def _bisect(self, item: pytest.Function) -> tuple[Any, str]:
        from .. import bisect
        from .._errors import LeakkitError

        try:
            targets = self._targets(item)
        except LeakkitError as error:
            return None, str(error)
        _say(self.config, f"leakcheck-all: {item.nodeid} keeps memory on every run; bisecting it "
                          f"(at most ~{self.bisect_budget:.0f} s) ...")

        def workload() -> None:
            self._run_once(item)

        try:
            with _fresh_capture(item):
                return bisect(workload, targets=targets, warmup=self.warmup, progress=False,
                              time_budget=self.bisect_budget), ""
        except LeakkitError as error:
            return None, str(error)

    def _targets(self, item: pytest.Function) -> list[Any]:
        from .commands._common import resolve_all

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


def with_submodules(targets: list[Any]) -> list[Any]:
    """Each package followed by its submodules imported so far: a module target stands for the
    functions defined in that module only, and a package's code mostly lives in its submodules
    (``cachetools.keys.hashkey``, not ``cachetools``). Read at bisect time, after the test has
    imported what it uses."""
    out: list[Any] = []
    for target in targets:
        out.append(target)
        if isinstance(target, types.ModuleType) and hasattr(target, "__path__"):
            prefix = target.__name__ + "."
            out += [module for name, module in sorted(sys.modules.items())
                    if name.startswith(prefix) and isinstance(module, types.ModuleType)]
    return out


def _project_name(root: str) -> str | None:
    """The distribution name a project directory declares (pyproject.toml, setup.cfg)."""
    pyproject = os.path.join(root, "pyproject.toml")
    if os.path.exists(pyproject):
        try:
            import tomllib
        except ImportError:  # 3.10
            tomllib = None
        try:
            with open(pyproject, "rb") as handle:
                if tomllib is not None:
                    name = tomllib.load(handle).get("project", {}).get("name")
                    if name:
                        return str(name)
        except Exception:
            pass
    setup_cfg = os.path.join(root, "setup.cfg")
    if os.path.exists(setup_cfg):
        import configparser

        parser = configparser.ConfigParser()
        try:
            parser.read(setup_cfg)
            return parser.get("metadata", "name", fallback=None)
        except Exception:
            return None
    return None


def _distribution_packages(name: str) -> list[str]:
    """Top-level import names of an installed distribution."""
    from importlib import metadata

    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return []
    top = (dist.read_text("top_level.txt") or "").split()
    if top:
        return top
    names = []
    for path in dist.files or ():
        head = path.parts[0] if path.parts else ""
        if head.endswith((".dist-info", ".egg-info", ".pth")) or head in ("..", "__pycache__") or head.startswith("__editable__"):
            continue
        head = head[:-3] if head.endswith(".py") else head
        if head.isidentifier() and head not in names:
            names.append(head)
    return names


def _scan(root: str) -> list[str]:
    """Top-level packages of a source tree (ROOT/* and ROOT/src/*); its loose modules only when it
    has no package. Beside a package, a top-level ``.py`` is the project's tooling (``setup.py``,
    ``versioneer.py``, ``noxfile.py``): importing it as a target runs it, and its warnings would
    land on the test being bisected."""
    packages: list[str] = []
    modules: list[str] = []
    for base in (root, os.path.join(root, "src")):
        try:
            entries = sorted(os.listdir(base))
        except OSError:
            continue
        for entry in entries:
            path = os.path.join(base, entry)
            if entry.startswith((".", "_")) or entry in _SKIP_DIRS:
                continue
            if os.path.isdir(path) and os.path.exists(os.path.join(path, "__init__.py")) and entry.isidentifier():
                packages.append(entry)
            elif entry.endswith(".py") and entry[:-3].isidentifier() and entry[:-3] not in _SKIP_MODULES \
                    and not entry.startswith("test"):
                modules.append(entry[:-3])
    return packages or modules


def package_under_test(rootdir: str, testdir: str) -> list[Any]:
    """The modules a test directory tests: the installed distribution of the project it sits in,
    else the top-level packages of the rootdir. Names that do not import are left out."""
    root = testdir
    names: list[str] = []
    while True:  # the nearest directory up from the tests that declares a project
        name = _project_name(root)
        if name:
            names = _distribution_packages(name)
            break
        if os.path.samefile(root, rootdir) or os.path.dirname(root) == root:
            break
        root = os.path.dirname(root)
    if not names:
        names = _scan(root) or _scan(rootdir)
    modules = []
    for name in names:
        if name in ("tests", "test", "conftest"):
            continue
        try:
            modules.append(importlib.import_module(name))
        except Exception:
            continue
    return modules
