"""Running a pytest test's call phase again as if it were a fresh call.

pytest runs a call phase once; ``--leakcheck-all`` runs it many more times on the same item, with
its fixtures set up once. What pytest keeps per call phase (captured log records and warnings, a
unittest TestCase instance, the failures a TestCase reports to the item) would otherwise carry
over from run to run, grow with each, and read as the test's own leak, or hide its failures.
"""
from __future__ import annotations

import contextlib
import unittest
import warnings
from collections.abc import Iterator
from typing import Any

import pytest


def run_once(item: pytest.Function) -> None:
    """The test's call phase once more: fresh log capture and TestCase, its own error raised.

    A unittest TestCase reports its failures to the item instead of raising: this run's are
    taken off again (the test's own outcome is its first run's) and the first one is raised.
    """
    for handler in _log_handlers(item):
        handler.reset()
    before = len(getattr(item, "_excinfo", None) or ())
    with _fresh_testcase(item):
        item.runtest()
    recorded = getattr(item, "_excinfo", None)
    if recorded and len(recorded) > before:
        error = recorded[before].value
        del recorded[before:]
        raise error


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
def fresh_capture(item: pytest.Item) -> Iterator[None]:
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
