"""The session as a plain run leaves it: what repeated runs of a test would change in pytest, kept out.

A repeated run is leakkit's, not the session's. pytest and its plugins keep per call phase what the
test hands them: the reports of its subtests (``TerminalReporter.stats``, junitxml, xdist's messages
to the controller, ``--lf``'s cache), its captured output, log records and warnings, its
``monkeypatch`` changes, its ``record_property`` entries. Repeated, each would grow with the runs
(read as the test's own leak: "69691 subtests passed" where the plain run says 2332) and change
what the session reports. :class:`Quiet` holds them as the first run left them:

* reporting hooks (``pytest_runtest_logreport``, ``pytest_exception_interact``,
  ``pytest_warning_recorded``) called during a repeated run reach no plugin; a failed report
  among them (a subtest that fails only on a repeated run) makes the test unrepeatable;
* the output a repeated run writes to pytest's capture (global, ``capsys``/``capfd``) is dropped,
  and the first run's is put back afterwards;
* log capture handlers start empty for each run (``caplog.records`` sees that run's records
  only); the first run's records are put back;
* warnings go to a recorder of the run's own, under the filters the plain run has (an ``error``
  filter still raises); a test's own ``recwarn`` sees that run's warnings only;
* ``monkeypatch`` changes and ``mocker`` (pytest-mock) patches the call phase made are undone
  after each run, so each run starts where the first one did and the fixtures' undo lists do
  not grow (a patch left in place is patched again by the next run: a chain of mocks, each
  call going through all of them); ``record_property`` entries beyond the first run's are
  dropped.

Fixture setup is left alone: the changes a fixture made before the call phase stay (a
:class:`Baseline` taken when the call phase starts says which are the call phase's).
"""
from __future__ import annotations

import contextlib
import io
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

MUTED = frozenset({"pytest_runtest_logreport", "pytest_exception_interact", "pytest_warning_recorded",
                   "pytest_assertion_pass"})


class Unrepeatable(Exception):
    """A repeated run failed in a way that raised nothing (a subtest that failed, reported only)."""


def _fixtures(item: pytest.Item, kind: type) -> list[Any]:
    values = getattr(item, "funcargs", None) or {}
    found: list[Any] = []
    for value in values.values():
        if isinstance(value, kind) and all(value is not other for other in found):
            found.append(value)
    return found


class Baseline:
    """Taken when the call phase starts: what fixtures set up, which repeated runs must not undo."""

    def __init__(self, item: pytest.Item) -> None:
        self.patches = [(mp, _patch_marks(mp)) for mp in _fixtures(item, pytest.MonkeyPatch)]
        self.mocks = [(m, len(_mock_list(m)), len(getattr(m, "_mocks", None) or ())) for m in _mockers(item)]
        self.properties = len(getattr(item, "user_properties", ()))
        dtest = getattr(item, "dtest", None)  # a doctest: its runner clears its globals after each run
        self.globs = dict(dtest.globs) if dtest is not None and isinstance(getattr(dtest, "globs", None), dict) else None


def _patch_marks(mp: Any) -> tuple[int, int, bool, bool] | None:
    """How far a MonkeyPatch's undo lists reach (None: a MonkeyPatch without them, left alone)."""
    try:
        return len(mp._setattr), len(mp._setitem), mp._savesyspath is not None, mp._cwd is not None
    except (AttributeError, TypeError):
        return None


def _undo_since(mp: Any, marks: tuple[int, int, bool, bool]) -> None:
    """Undo the changes a MonkeyPatch recorded after ``marks``, latest first (as its own undo does)."""
    n_attr, n_item, had_path, had_cwd = marks
    extra = pytest.MonkeyPatch()
    extra._setattr = mp._setattr[n_attr:]
    extra._setitem = mp._setitem[n_item:]
    del mp._setattr[n_attr:], mp._setitem[n_item:]
    if not had_path and mp._savesyspath is not None:
        extra._savesyspath, mp._savesyspath = mp._savesyspath, None
    if not had_cwd and mp._cwd is not None:
        extra._cwd, mp._cwd = mp._cwd, None
    extra.undo()


def _mockers(item: pytest.Item) -> list[Any]:
    """pytest-mock's ``mocker`` fixtures among the test's fixture values (any scope)."""
    values = getattr(item, "funcargs", None) or {}
    return [v for v in values.values() if type(v).__module__.startswith("pytest_mock")
            and callable(getattr(v, "stopall", None)) and _mock_list(v) is not None]


def _mock_list(mocker: Any) -> list | None:
    """The list a mocker keeps its patches in, to stop them at teardown (pytest-mock 3.x's two layouts)."""
    cache = getattr(getattr(mocker, "_mock_cache", None), "cache", None)
    if isinstance(cache, list):
        return cache
    patches = getattr(mocker, "_patches", None)
    return patches if isinstance(patches, list) else None


def _stop_since(mocker: Any, n: int, n_mocks: int) -> None:
    """Stop the patches a mocker started after its ``n``-th, latest first, and forget them (and,
    in pytest-mock's older layout, the mocks it made after its ``n_mocks``-th)."""
    entries = _mock_list(mocker)
    if entries is None:
        return
    for entry in reversed(entries[n:]):
        patch = getattr(entry, "patch", entry)  # a cache item holds its patcher; the old layout, the patcher
        if patch is not None and callable(getattr(patch, "stop", None)):
            try:
                patch.stop()
            except RuntimeError:  # already stopped by the test itself
                pass
    del entries[n:]
    mocks = getattr(mocker, "_mocks", None)
    if isinstance(mocks, list):
        del mocks[n_mocks:]


class Quiet:
    """The harness held as the first run left it while a test runs again (see the module docstring)."""

    def __init__(self, item: pytest.Item, baseline: Baseline | None) -> None:
        self.item = item
        self.baseline = baseline
        self.failures: list[str] = []
        self._stack = contextlib.ExitStack()
        self._recorded: list[Any] = []
        self._first_properties = len(getattr(item, "user_properties", ()))
        self._sinks: list[io.StringIO] = []  # with -s: what repeated runs print, dropped

    def __enter__(self) -> Quiet:
        stack = self._stack
        try:
            stack.callback(self._restore_properties)
            stack.enter_context(self._muted())
            stack.enter_context(self._subtest_counts())
            stack.enter_context(self._output())
            stack.enter_context(self._logs())
            stack.enter_context(self._warnings())
        except BaseException:
            stack.close()
            raise
        self.drop()  # the first run's own changes undone: each repeated run starts where it did
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()

    def before_run(self) -> None:
        """Fresh capture for the next run (log records, warnings, a doctest's globals), emptied in
        place: a new list and stream per run would be blocks the readings count."""
        for handler in _log_handlers(self.item):
            records, stream = getattr(handler, "records", None), getattr(handler, "stream", None)
            if isinstance(records, list) and isinstance(stream, io.StringIO):
                records.clear()
                stream.seek(0)
                stream.truncate()
            else:
                handler.reset()
        self._recorded.clear()
        for recorder in _fixtures(self.item, pytest.WarningsRecorder):
            recorder.clear()
        if self.baseline is not None and self.baseline.globs is not None:
            globs = self.item.dtest.globs
            globs.clear()
            globs.update(self.baseline.globs)

    def drop(self) -> None:
        """Drop what the run left with the harness: output, monkeypatch changes, properties."""
        self._drop_output()
        if self.baseline is not None:
            for mp, marks in self.baseline.patches:
                if marks is not None:
                    _undo_since(mp, marks)
            for mocker, n, n_mocks in self.baseline.mocks:
                _stop_since(mocker, n, n_mocks)
        props = getattr(self.item, "user_properties", None)
        if isinstance(props, list):
            del props[self._first_properties:]

    def check(self) -> None:
        """Raise Unrepeatable when the run reported a failure without raising (a subtest's)."""
        if self.failures:
            failure, self.failures[:] = self.failures[0], []
            raise Unrepeatable(failure)

    # -- reporting hooks -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _muted(self) -> Iterator[None]:
        pm = self.item.config.pluginmanager
        inner = getattr(pm, "_inner_hookexec", None)
        if inner is None:  # a pluggy without it: reports of repeated runs reach the session
            yield
            return
        failures = self.failures

        def hookexec(name: str, impls: Any, kwargs: Any, firstresult: bool) -> Any:
            if name not in MUTED:
                return inner(name, impls, kwargs, firstresult)
            report = kwargs.get("report") if name == "pytest_runtest_logreport" else None
            if report is not None and getattr(report, "failed", False):
                failures.append(f"a repeated run reported a failure ({_first_line(report)})")
            return None if firstresult else []

        pm._inner_hookexec = hookexec
        try:
            yield
        finally:
            if pm._inner_hookexec is hookexec:
                pm._inner_hookexec = inner

    @contextlib.contextmanager
    def _subtest_counts(self) -> Iterator[None]:
        """pytest counts failed subtests per test (and fails the test on them): as the first run left it."""
        try:
            from _pytest.subtests import failed_subtests_key
        except ImportError:  # pytest < 9: subtests are a plugin's, which keeps no such count
            yield
            return
        counts = self.item.config.stash.get(failed_subtests_key, None)
        saved = dict(counts) if counts is not None else None
        try:
            yield
        finally:
            if counts is not None and saved is not None:
                counts.clear()
                counts.update(saved)

    # -- output -----------------------------------------------------------------------------------
    def _capman(self) -> Any:
        return self.item.config.pluginmanager.get_plugin("capturemanager")

    @contextlib.contextmanager
    def _output(self) -> Iterator[None]:
        capman = self._capman()
        globally = capman is not None and capman.is_globally_capturing()
        first = capman.read_global_capture() if globally else None
        fixtures = [(f, f.readouterr()) for f in _fixtures(self.item, pytest.CaptureFixture)]
        sink = None
        if not globally and not fixtures:  # -s: what repeated runs print would reach the terminal
            sink = contextlib.ExitStack()
            self._sinks = [io.StringIO(), io.StringIO()]
            sink.enter_context(contextlib.redirect_stdout(self._sinks[0]))
            sink.enter_context(contextlib.redirect_stderr(self._sinks[1]))
        try:
            yield
        finally:
            if sink is not None:
                sink.close()
            self._drop_output()
            self._sinks = []
            if first is not None:
                capman.suspend_fixture()  # the global capture's streams, not the fixture's
                try:
                    _write(first)
                finally:
                    capman.resume_fixture()
            for _, text in fixtures:
                _write(text)

    def _drop_output(self) -> None:
        capman = self._capman()
        if capman is not None and capman.is_globally_capturing():
            capman.read_global_capture()
        for fixture in _fixtures(self.item, pytest.CaptureFixture):
            fixture.readouterr()
        for stream in self._sinks:
            stream.seek(0)
            stream.truncate()

    # -- logs and warnings ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _logs(self) -> Iterator[None]:
        saved = [(h, h.records, h.stream) for h in _log_handlers(self.item)]
        for handler, _, _ in saved:
            handler.reset()  # the repeated runs' own records and stream, the first run's kept aside
        try:
            yield
        finally:
            for h, records, stream in saved:
                h.records, h.stream = records, stream

    @contextlib.contextmanager
    def _warnings(self) -> Iterator[None]:
        recorders = [(r, list(r.list)) for r in _fixtures(self.item, pytest.WarningsRecorder)]
        try:
            if recorders:  # the test's recwarn, entered at setup, catches them: it sees each run's own
                yield
            else:  # a recorder of the runs' own, the plain run's filters left as they are
                with warnings.catch_warnings(record=True) as recorded:
                    self._recorded = recorded
                    yield
        finally:
            self._recorded = []
            for recorder, entries in recorders:
                recorder.list[:] = entries

    def _restore_properties(self) -> None:
        props = getattr(self.item, "user_properties", None)
        if isinstance(props, list):
            del props[self._first_properties:]


def _first_line(report: Any) -> str:
    text = str(getattr(report, "longreprtext", "") or getattr(report, "longrepr", "") or "").strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else "no detail")[:160]


def _write(result: Any) -> None:
    """Write captured text back through the current sys.stdout/err (str, or bytes for the binary fixtures)."""
    for text, stream in ((result[0], sys.stdout), (result[1], sys.stderr)):
        if not text:
            continue
        if isinstance(text, bytes):
            target = getattr(stream, "buffer", None)
            if target is not None:
                target.write(text)
        else:
            stream.write(text)
        stream.flush()


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
