"""``pytest --leakcheck-all`` end to end with pytester: verdicts, bisect, summary, ini, xdist, asyncio.

Runs go in a subprocess: in-process, pytester's hook recorder keeps a record of every hook call,
which every repeated run adds to (a real leak of the nested session, not of the tests).
"""
from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

PACKAGE = """
import functools, threading, time

REGISTRY = {}

def register(n):
    REGISTRY[n] = bytearray(100)

@functools.lru_cache(maxsize=8)
def cached(n):
    return [n] * 10

def start_worker():
    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
"""

TESTS = """
import itertools, logging, warnings
import pytest
import mypkg

_n = itertools.count()

def test_clean():
    assert sum([1, 2]) == 3

def test_leaks():
    mypkg.register(next(_n))

def test_bounded_cache():
    mypkg.cached(next(_n) % 20)

def test_cycles():
    a = []
    a.append(a)

def test_threads():
    mypkg.start_worker()

def test_logs(caplog):
    logging.getLogger("x").warning("hello")
    assert len(caplog.records) == 1  # each repeated run sees a fresh capture

def test_warns():
    warnings.warn("w")

def test_fails():
    assert False

RAN = []

def test_once_only():
    RAN.append(1)
    assert len(RAN) == 1

@pytest.mark.leakcheck(skip=True)
def test_skipped_by_marker():
    pass
"""


@pytest.fixture
def project(pytester):
    pytester.mkpydir("mypkg").joinpath("__init__.py").write_text(textwrap.dedent(PACKAGE))
    pytester.makepyprojecttoml('[project]\nname = "mypkg-not-installed"\n')
    pytester.makepyfile(test_things=TESTS)
    pytester.syspathinsert()
    return pytester


def test_leaking_tests_fail_with_culprit_and_root_and_the_rest_keep_their_own_outcome(project):
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--leakcheck-all")
    # test_fails fails for its own reason; the leak and the thread leak fail with leak reports;
    # caches, cycles, log and warning capture are not leaks
    result.assert_outcomes(passed=7, failed=3, warnings=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines([
        "leakkit --leakcheck-all: each test's call phase runs 1 + 3 times; 12 more for a test whose runs all grew*",
        "*leakcheck-all: test_things.py::test_leaks keeps +*B/run (+* blocks/run) on every run",
        "*culprit: mypkg.register",
        "*mypkg.REGISTRY*",
    ])
    result.stdout.fnmatch_lines(["*leakcheck-all: test_things.py::test_threads keeps +1 threads/run on every run"])
    summary = out.split("leakkit --leakcheck-all =")[1].split("short test summary")[0]
    assert "7 tests judged, 2 leaking, 2 not repeated" in summary  # test_fails is not judged
    assert "LEAK test_things.py::test_leaks: +" in summary and "culprit mypkg.register; kept by mypkg.REGISTRY[" in summary
    assert "LEAK test_things.py::test_threads: +1 threads/run; culprit mypkg.start_worker" in summary
    assert "NOT REPEATED test_things.py::test_once_only: a repeated run raised AssertionError" in summary
    assert "NOT REPEATED test_things.py::test_skipped_by_marker: marked leakcheck(skip=True)" in summary
    for clean in ("test_clean", "test_bounded_cache", "test_cycles", "test_logs", "test_warns", "test_fails"):
        assert f"::{clean}" not in summary, clean
    assert "Traceback" not in out


def test_the_ini_setting_turns_it_on_and_warn_mode_keeps_the_suite_green(project):
    project.makeini("[pytest]\nleakcheck_all = true\nleakcheck_warn = true\n")
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-k", "leaks or clean or once")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*LeakcheckAllWarning: leakcheck-all: test_things.py::test_leaks keeps*",
                                 "LEAK test_things.py::test_leaks: *culprit mypkg.register*"])


def test_without_the_flag_every_test_runs_once(pytester):
    pytester.makepyfile(textwrap.dedent("""
        RUNS = []

        def test_once():
            RUNS.append(1)

        def test_ran_once():
            assert RUNS == [1]
    """))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert "leakcheck-all" not in result.stdout.str()


# that the plugin imports nothing heavy until asked: tests/test_public_api.py


def test_async_tests_are_repeated_and_pending_tasks_counted(pytester):
    pytest.importorskip("pytest_asyncio")
    pytester.makepyfile(textwrap.dedent("""
        import asyncio
        import pytest

        @pytest.mark.asyncio
        async def test_spawns_a_task_each_run():
            asyncio.get_running_loop().create_task(asyncio.sleep(30))

        @pytest.mark.asyncio
        async def test_awaits_its_work():
            await asyncio.sleep(0)
    """))
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = module\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--leakcheck-all", "--leakcheck-targets=asyncio")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_spawns_a_task_each_run keeps +1 tasks/run on every run"])


def test_each_xdist_worker_checks_its_own_tests_and_the_summary_has_them_all(project):
    pytest.importorskip("xdist")
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--leakcheck-all", "-n", "2",
                                          "-k", "leaks or clean or cycles")
    result.assert_outcomes(passed=2, failed=1)
    summary = result.stdout.str().split("leakkit --leakcheck-all =")[1]
    assert "3 tests judged, 1 leaking" in summary
    assert "LEAK test_things.py::test_leaks: " in summary and "culprit mypkg.register" in summary


def test_culprits_in_a_packages_submodules_and_unittest_state_on_self(pytester):
    # the package under test is a package: its functions live in submodules, which the bisect
    # must search too; a unittest TestCase gets a fresh instance per repeated run, as unittest
    # itself gives each run, so a counter kept on self does not make the test unrepeatable
    package = pytester.mkpydir("deeppkg")
    package.joinpath("store.py").write_text("KEPT = []\n\n\ndef remember(n):\n    KEPT.append(bytearray(64))\n")
    pytester.makepyprojecttoml('[project]\nname = "deeppkg-not-installed"\n')
    pytester.makepyfile(test_deep=textwrap.dedent("""
        import unittest
        from deeppkg import store

        def test_remembers():
            store.remember(1)

        class CountsOnSelf(unittest.TestCase):
            def next_id(self):
                self.n = getattr(self, "n", 0) + 1
                return self.n

            def test_first_id_is_one(self):
                self.assertEqual(self.next_id(), 1)
    """))
    pytester.syspathinsert()
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--leakcheck-all")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*leakcheck-all: test_deep.py::test_remembers keeps memory on every run; bisecting it*",
                                 "*culprit: deeppkg.store.remember", "*deeppkg.store.KEPT*"])
    summary = result.stdout.str().split("leakkit --leakcheck-all =")[1].split("short test summary")[0]
    assert "2 tests judged, 1 leaking, 0 not repeated" in summary, summary
    assert "culprit deeppkg.store.remember; kept by deeppkg.store.KEPT[" in summary, summary


def test_a_bad_bisect_budget_is_a_usage_error(pytester):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--leakcheck-all", "--leakcheck-bisect-budget=0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--leakcheck-bisect-budget: expected a positive number of seconds, received 0.0*"])


def test_anyio_tests_are_repeated_and_their_leak_bisected(pytester):
    pytest.importorskip("anyio")
    package = pytester.mkpydir("asyncpkg")
    package.joinpath("store.py").write_text(
        "import anyio\n\nKEPT = []\n\n\nasync def remember(n):\n    await anyio.sleep(0)\n    KEPT.append(bytearray(64))\n")
    pytester.makepyprojecttoml('[project]\nname = "asyncpkg-not-installed"\n')
    pytester.makepyfile(test_anyio_things=textwrap.dedent("""
        import anyio
        import pytest
        from asyncpkg import store

        @pytest.fixture
        def anyio_backend():
            return "asyncio"

        @pytest.mark.anyio
        async def test_remembers():
            await store.remember(1)

        @pytest.mark.anyio
        async def test_awaits_its_work():
            async with anyio.create_task_group() as group:
                group.start_soon(anyio.sleep, 0)
    """))
    pytester.syspathinsert()
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:asyncio", "--leakcheck-all")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*culprit: asyncpkg.store.remember", "*asyncpkg.store.KEPT*"])
    summary = result.stdout.str().split("leakkit --leakcheck-all =")[1].split("short test summary")[0]
    assert "2 tests judged, 1 leaking, 0 not repeated" in summary, summary


def test_the_package_under_test_is_the_projects_package_not_its_tooling_modules(tmp_path, monkeypatch):
    from leakkit.frontends.leakcheck_all.project import package_under_test

    # a project with a package and tooling beside it (versioneer.py writes a file when imported:
    # the evidence that it would have run), and one that is a single module
    project = tmp_path / "proj"
    (project / "projpkg").mkdir(parents=True)
    (project / "projpkg" / "__init__.py").write_text("")
    (project / "versioneer.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').close()\n")
    (project / "tests").mkdir()
    single = tmp_path / "single"
    (single / "tests").mkdir(parents=True)
    (single / "onemod.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.syspath_prepend(str(single))
    found = package_under_test(str(project), str(project / "tests"))
    assert [m.__name__ for m in found] == ["projpkg"]
    assert not (tmp_path / "ran").exists()
    assert [m.__name__ for m in package_under_test(str(single), str(single / "tests"))] == ["onemod"]
