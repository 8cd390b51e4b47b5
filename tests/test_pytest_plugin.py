"""The pytest plugin end to end with pytester: the leakcheck marker and fixture, and where settings come from."""
from __future__ import annotations

import textwrap

import pytest

# pytester's in-process runs drop the modules each run imported, and numpy refuses to load twice in
# one process: the unused plugin no longer imports it, so the engine (and numpy) is loaded here first
import leakkit.engine.run  # noqa: F401
from leakkit.frontends.check import DEFAULT_CALLS

pytest_plugins = ["pytester"]

WORKER = """
HISTORY = []

def record(n):
    HISTORY.append({"n": n, "body": bytearray(64)})

def handle():
    record(len(HISTORY))
"""


def test_marker_passes_a_clean_test_and_fails_leaking_ones_with_a_report(pytester):
    pytester.makepyfile(plugin_worker=WORKER)
    pytester.syspathinsert()
    pytester.makepyfile(test_marked=textwrap.dedent("""
        import pytest
        import plugin_worker

        CACHE = []

        @pytest.mark.leakcheck(calls=20)
        def test_clean():
            items = [bytearray(64) for _ in range(3)]
            assert len(items) == 3

        @pytest.mark.leakcheck(calls=20)
        def test_leaks():
            CACHE.append(bytearray(64))

        @pytest.mark.leakcheck(calls=20, targets=["plugin_worker"])
        def test_leaks_bisected():
            plugin_worker.handle()

        @pytest.mark.leakcheck(calls=3)
        def test_too_few_calls():
            pass

        @pytest.mark.leakcheck(20, 2, None, "extra")
        def test_bad_marker():
            pass
    """))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=4)
    output = result.stdout.str()
    # trace: the verdict and what each run keeps
    result.stdout.fnmatch_lines([
        "leakcheck: test_marked.py::test_leaks keeps memory on every run",
        "leakkit: test_marked.py::test_leaks: LEAK after 20 calls*",
        "*kept per call: +*",
    ])
    # bisect: the culprit and the path that keeps its memory alive
    result.stdout.fnmatch_lines([
        "leakcheck: test_marked.py::test_leaks_bisected keeps memory on every run",
        "leakkit bisect: LEAK after 20 calls*",
        "*culprit: plugin_worker.record",
        "*kept alive by:",
        "*plugin_worker.HISTORY*",
    ])
    result.stdout.fnmatch_lines(["leakcheck: calls: expected an int >= 12*received int 3"])
    result.stdout.fnmatch_lines(["leakcheck marker on test_marked.py::test_bad_marker: expected leakcheck(*"])
    assert "test_clean" not in output.split("short test summary")[1]
    assert "During handling" not in output and "Traceback" not in output  # user mistakes: no traceback


def test_fixture_returns_the_report_and_fails_on_a_leak(pytester):
    pytester.makepyfile(textwrap.dedent("""
        CACHE = []

        def test_leaking_function(leakcheck):
            leakcheck(lambda: CACHE.append(bytearray(64)), calls=20)
            raise AssertionError("not reached: the leak fails the test first")

        def test_leak_inspected_without_failing(leakcheck):
            report = leakcheck(lambda: CACHE.append(bytearray(64)), calls=20, fail=False)
            assert report.verdict == "leak" and report.blocks_per_call >= 1
    """))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["leakcheck: *::test_leaking_function: *<lambda> keeps memory on every run",
                                 "leakkit: *: LEAK after 20 calls*"])
    assert "not reached" not in result.stdout.str()


SETTINGS_TEST = """
from leakkit.frontends.pytest_plugin import MANAGER

def test_settings(request):
    manager = request.config.pluginmanager.get_plugin(MANAGER)
    print("SETTINGS", manager.setting("calls"), manager.setting("warmup"))
"""


@pytest.mark.parametrize("ini, options, expected", [
    ("", [], f"SETTINGS {DEFAULT_CALLS} 2"),  # leakkit's defaults
    ("leakcheck_calls = 33\nleakcheck_warmup = 4", [], "SETTINGS 33 4"),  # the ini file
    ("leakcheck_calls = 33\nleakcheck_warmup = 4", ["--leakcheck-calls", "44"], "SETTINGS 44 4"),  # option wins
    ("", ["--leakcheck-warmup=0"], f"SETTINGS {DEFAULT_CALLS} 0"),
])
def test_command_line_beats_ini_which_beats_the_default(pytester, ini, options, expected):
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile(SETTINGS_TEST)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-s", *options)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*{expected}*"])


def test_settings_reach_the_check_and_the_marker_beats_them(pytester):
    pytester.makeini("[pytest]\nleakcheck_calls = 30\n")
    pytester.makepyfile(textwrap.dedent("""
        import pytest

        def test_from_the_command_line(leakcheck):
            report = leakcheck(lambda: [1, 2, 3])  # a clean function: the report is returned
            assert report.verdict == "clean" and report.calls == 14

        RUNS = []

        @pytest.mark.leakcheck(calls=13, warmup=1)
        def test_from_the_marker():
            RUNS.append(1)

        def test_marker_ran_warmup_and_calls():
            assert len(RUNS) == 1 + 13
    """))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--leakcheck-calls=14")
    result.assert_outcomes(passed=3)


@pytest.mark.parametrize("ini, options, message", [
    ("leakcheck_calls = many", [], "ini setting leakcheck_calls: expected an int, received 'many'"),
    ("", ["--leakcheck-calls=5"], "--leakcheck-calls: expected an int >= 12, received 5"),
    ("leakcheck_warmup = -1", [], "ini setting leakcheck_warmup: expected an int >= 0, received -1"),
])
def test_bad_settings_stop_the_session_before_any_test(pytester, ini, options, message):
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile("def test_never_runs(): raise AssertionError('ran')")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *options)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_marker_is_documented_and_unmarked_tests_are_untouched(pytester):
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.leakcheck(calls=..., warmup=..., targets=..., skip=...): repeat the test body*"])
    pytester.makepyfile(textwrap.dedent("""
        RUNS = []

        def test_once():
            RUNS.append(1)

        def test_ran_once():
            assert RUNS == [1]
    """))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_mistakes_in_a_marker_or_fixture_call_fail_with_a_message_not_a_traceback(pytester):
    pytester.makepyfile(textwrap.dedent("""
        import pytest

        RUNS = []

        @pytest.mark.leakcheck(calls=20, targets=[])
        def test_empty_targets():
            RUNS.append(1)

        @pytest.mark.leakcheck(calls="many")
        def test_calls_text():
            pass

        def test_function_needing_an_argument(leakcheck):
            leakcheck(lambda request: None, calls=20)

        def test_fail_not_a_bool(leakcheck):
            leakcheck(lambda: None, calls=20, fail="no")

        def test_not_callable(leakcheck):
            leakcheck(42, calls=20)

        def test_empty_targets_never_ran():
            assert RUNS == []
    """))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=5)
    result.stdout.fnmatch_lines([
        "*leakcheck: targets: expected at least one module, class or function to search, received list []",
    ])
    result.stdout.fnmatch_lines(["*leakcheck: calls: expected an int >= 12*received str 'many'"])
    result.stdout.fnmatch_lines(["*leakcheck: workload: expected a function callable with no arguments*"])
    result.stdout.fnmatch_lines(["*leakcheck: fail: expected True or False, received str 'no'"])
    result.stdout.fnmatch_lines(["*leakcheck: workload: expected a zero-argument function, received int 42"])
    output = result.stdout.str()
    assert "Traceback" not in output and "During handling" not in output


def test_the_marker_on_a_unittest_method_checks_it(pytester):
    # pytest calls no pytest_pyfunc_call for a TestCase method: the marker once went unread there,
    # and a leaking test passed. The method repeats between one setUp and one tearDown.
    pytester.makepyfile(textwrap.dedent("""
        import unittest
        import pytest

        KEPT = []
        RUNS = []

        class Things(unittest.TestCase):
            def setUp(self):
                self.base = 1

            @pytest.mark.leakcheck(calls=20)
            def test_leaks(self):
                KEPT.append(bytearray(64))

            @pytest.mark.leakcheck(calls=20, warmup=1)
            def test_clean(self):
                RUNS.append(self.base)

            @pytest.mark.leakcheck(calls=20)
            async def test_async(self):
                pass

        def test_the_clean_method_ran_warmup_and_calls():
            assert RUNS == [1] * (1 + 20)
    """))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*leakcheck: test_*.py::Things::test_leaks keeps memory on every run",
                                 "*LEAK after 20 calls*"])
    result.stdout.fnmatch_lines(["*leakcheck marker on test_*.py::Things::test_async: expected a plain (not async) "
                                 "test function*"])


def test_a_test_writing_a_file_is_clean_at_20_calls(pytester):
    # opening a file looks up attribute names that are fresh strings: the type attribute cache kept
    # each (+0.94 blocks a call at 20 calls, clean only at 60); each checkpoint now reads it emptied
    pytester.makepyfile(textwrap.dedent("""
        import pytest

        @pytest.mark.leakcheck(calls=20)
        def test_writes_a_file(tmp_path):
            (tmp_path / "out.txt").write_text("hello")

        @pytest.mark.leakcheck(calls=20)
        def test_opens_a_file_by_name(tmp_path):
            with open(tmp_path / "out.bin", "wb") as handle:
                handle.write(b"x")
    """))
    # a fresh process, as a user's session: in this one the type cache has seen many files already
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(passed=2, warnings=0)  # not inconclusive either
