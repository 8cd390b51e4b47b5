"""Running a pytest test's call phase again as if it were a fresh call.

pytest runs a call phase once; ``--leakcheck-all`` runs it more times on the same item, with its
fixtures set up once. What a call phase leaves behind in pytest (reports, captured output, log
records, warnings, monkeypatch changes) is held as the first run left it by
:class:`~.quiet.Quiet`; what the test itself needs fresh is given here: a new unittest TestCase
instance per run (as unittest gives each run), a doctest's globals as its setup made them (its
runner clears them after each run), and the failures a TestCase reports to the item taken back.
"""
from __future__ import annotations

import contextlib
import unittest
from collections.abc import Iterator
from typing import Any

import pytest

from .quiet import Quiet, Unrepeatable


class Interrupted(BaseException):
    """Raised into a repeated run or a bisect that overran its time (see :mod:`.watchdog`)."""


def repeatable(item: pytest.Item) -> bool:
    """Tests whose call phase can run again: pytest and unittest functions, doctests."""
    if isinstance(item, pytest.Function):
        return True
    try:
        from _pytest.doctest import DoctestItem
    except ImportError:  # pragma: no cover - pytest always has it
        return False
    return isinstance(item, DoctestItem) and getattr(item, "dtest", None) is not None


def unrepeatable_error(error: BaseException) -> bool:
    """Whether a repeated run's exception says the test cannot be repeated (it is listed, not
    judged): anything the test raised, SystemExit and pytest's outcomes included, but not a
    KeyboardInterrupt nor leakkit's own interruption."""
    return not isinstance(error, (KeyboardInterrupt, Interrupted))


def describe_error(error: BaseException) -> str:
    if isinstance(error, Unrepeatable):
        return str(error)[:200]
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"a repeated run raised {type(error).__name__}: {text}"[:200]


def run_once(item: pytest.Item, quiet: Quiet) -> None:
    """The test's call phase once more: fresh capture and TestCase, its own error raised.

    A unittest TestCase reports its failures to the item instead of raising: this run's are
    taken off again (the test's own outcome is its first run's) and the first one is raised.
    What the run left with the harness is dropped afterwards (Unrepeatable for a failure it only
    reported, a subtest's).
    """
    quiet.before_run()
    before = len(getattr(item, "_excinfo", None) or ())
    try:
        with _fresh_testcase(item):
            item.runtest()
    finally:
        quiet.drop()
    recorded = getattr(item, "_excinfo", None)
    if recorded and len(recorded) > before:
        error = recorded[before].value
        del recorded[before:]
        raise error
    quiet.check()


@contextlib.contextmanager
def _fresh_testcase(item: pytest.Item) -> Iterator[None]:
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
    saved: dict[str, Any] = {name: vars(item)[name] for name in (slot, "_obj") if name in vars(item)}
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
