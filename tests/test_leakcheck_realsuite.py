"""``pytest --leakcheck-all`` over real projects' own test suites, vendored (tests/realsuites/).

Each suite is the project's PyPI sdist, vendored byte for byte (tests/realsuites/README.md says why,
how each was fetched and under which license; each LICENSE is inside its archive). A test extracts
it and runs pytest in a subprocess on the project's own tests, as a user of leakkit would:

* as released, the suite's report with ``--leakcheck-all`` is the plain run's (its summary line,
  subtests counted once, and its junitxml but for the times) and no test is judged leaking,
  unconfirmed or suspect (ground truth: a plain run keeps nothing; the false-leak check on real
  tests of caches, pickling, decorators, unittest classes with ``subTest`` and doctests);
* with a leak planted in the project's code (one function appends to a module-level list on every
  call), the tests that call it fail with that function as culprit and the list as root, in their
  failure report and the summary, and no other test is judged leaking.

cachetools 5.5.2 (pytest and unittest classes: caches, pickling, decorators), more-itertools
10.5.0 (unittest classes with ``self.subTest``: issue 21's case, 663 tests and 2332 subtests) and
boltons 24.1.0 (doctest modules and pytest functions, a deterministic part of it).
"""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).parent / "realsuites"
TIMEOUT_S = 900


@dataclass(frozen=True)
class Vendored:
    name: str  # the sdist's directory name, name-version
    sha256: str
    path: str  # what goes on PYTHONPATH, relative to the project
    args: tuple[str, ...]  # the suite as its project runs it (or a deterministic part of it)
    module: str  # file the leak is planted in
    original: str
    planted: str
    culprit: str
    root: str  # the list's name, as the retention path starts
    leaking: tuple[str, ...]  # tests that call the planted function (some of them)
    planted_args: tuple[str, ...]  # the planted run: those tests and some that do not call it
    call: str  # one call of the planted function, in its module's namespace (the ground truth)

    @property
    def sdist(self) -> Path:
        return HERE / f"{self.name}.tar.gz"


_AUDIT = "\n\n_AUDIT = []  # PLANTED: an audit trail nobody trims\n"
SUITES = [
    Vendored(
        "cachetools-5.5.2", "1a661caa9175d26759571b2e19580f9d6393969e5dfca11fdb1f947a23e640d4", "src", (),
        "src/cachetools/keys.py",
        "    if kwargs:\n        return _HashedTuple(args + sum(sorted(kwargs.items()), _kwmark))\n"
        "    else:\n        return _HashedTuple(args)\n",
        "    if kwargs:\n        key = _HashedTuple(args + sum(sorted(kwargs.items()), _kwmark))\n"
        "    else:\n        key = _HashedTuple(args)\n"
        "    _AUDIT.append((\"hashkey\", key))  # PLANTED LEAK\n    return key\n",
        "cachetools.keys.hashkey", "cachetools.keys._AUDIT[",
        # directly, and through cached()'s default key function
        ("tests/test_keys.py::CacheKeysTest::test_hashkey", "tests/test_cached.py::CacheWrapperTest::test_decorator_info"),
        ("tests/test_keys.py::CacheKeysTest::test_hashkey", "tests/test_cached.py::CacheWrapperTest::test_decorator_info",
         "tests/test_lru.py", "tests/test_ttl.py::TTLCacheTest::test_pickle_maxsize"), "hashkey(1, b=2)"),
    Vendored(
        "more-itertools-10.5.0", "5482bfef7849c25dc3c6dd53a6173ae4795da2a41a80faea6700d9f5846c5da6", ".", ("tests",),
        "more_itertools/more.py",
        "    for item in iterable:\n        return item\n    if default is _marker:\n",
        "    _AUDIT.append({\"call\": \"first\"})  # PLANTED LEAK\n"
        "    for item in iterable:\n        return item\n    if default is _marker:\n",
        "more_itertools.more.first", "more_itertools.more._AUDIT[",
        ("tests/test_more.py::FirstTests::test_many", "tests/test_more.py::FirstTests::test_default"),
        ("tests/test_more.py", "-k", "FirstTests or ChunkedTests or NthOrLastTests"), "first([3])"),
]


def _extract(vendored: Vendored, into: Path) -> Path:
    data = vendored.sdist.read_bytes()
    assert hashlib.sha256(data).hexdigest() == vendored.sha256, f"the vendored sdist is not {vendored.name}'s"
    with tarfile.open(vendored.sdist) as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(into, filter="data")
        else:  # 3.10 before 3.10.12: members checked by hand
            for member in archive.getmembers():
                assert not (member.name.startswith("/") or ".." in Path(member.name).parts), member.name
            archive.extractall(into)
    return into / vendored.name


def _run(vendored: Vendored, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The project's own suite, its own code first on the path (not an installed copy)."""
    env = dict(os.environ, PYTHONPATH=str(project / vendored.path), PYTHONDONTWRITEBYTECODE="1")
    for name in ("PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER", "PYTHONTRACEMALLOC"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:asyncio",
                           "-p", "no:randomly", *args], cwd=project, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S)


def _summary(out: str) -> str:
    assert "leakkit --leakcheck-all =" in out, out[-3000:]
    return out.split("leakkit --leakcheck-all =", 1)[1].split("short test summary", 1)[0]


def _last_line(out: str) -> str:
    lines = re.findall(r"^(\d+ (?:passed|failed).*) in [\d.]+s", out, re.M)
    assert lines, out[-2000:]
    return lines[-1]


def _junit(path: Path) -> dict:
    cases = {}
    for case in ET.parse(path).iter("testcase"):
        attrs = {k: v for k, v in case.attrib.items() if k != "time"}
        cases[(attrs.get("classname"), attrs.get("name"))] = (attrs, [(c.tag, dict(c.attrib)) for c in case])
    return cases


@pytest.mark.parametrize("vendored", SUITES, ids=lambda v: v.name)
def test_the_released_suite_reports_as_a_plain_run_and_nothing_is_judged_leaking(vendored, tmp_path):
    project = _extract(vendored, tmp_path)
    plain = _run(vendored, project, *vendored.args, f"--junitxml={tmp_path / 'plain.xml'}")
    assert plain.returncode == 0, plain.stdout[-3000:]
    checked = _run(vendored, project, *vendored.args, "--leakcheck-all", f"--junitxml={tmp_path / 'checked.xml'}")
    assert checked.returncode == 0, checked.stdout[-5000:]
    assert _last_line(checked.stdout) == _last_line(plain.stdout)  # subtests counted once, as plainly
    assert _junit(tmp_path / "checked.xml") == _junit(tmp_path / "plain.xml")
    summary = _summary(checked.stdout)
    passed = int(re.search(r"(\d+) passed", plain.stdout).group(1))
    assert re.search(rf"^{passed} tests judged, 0 leaking, 0 not repeated", summary, re.M), summary
    assert not re.search(r"^(LEAK|UNCONFIRMED|INCONCLUSIVE|SUSPECT|RAN AWAY|NOT REPEATED) ", summary, re.M), summary


@pytest.mark.parametrize("vendored", SUITES, ids=lambda v: v.name)
def test_a_planted_leak_fails_the_tests_that_call_it_with_its_culprit_and_root(vendored, tmp_path):
    project = _extract(vendored, tmp_path)
    module = project / vendored.module
    text = module.read_text()
    assert text.count(vendored.original) == 1, f"{vendored.culprit} is not the one this test plants a leak in"
    module.write_text(text.replace(vendored.original, vendored.planted) + _AUDIT)
    # ground truth without leakkit: each call of the planted function keeps one more entry, and the
    # project's tests still pass (the leak changes no result)
    package = vendored.culprit.rsplit(".", 1)[0]
    truth = subprocess.run([sys.executable, "-c", f"import {package} as m\nn = len(m._AUDIT)\n"
                            f"for i in range(5):\n    m.{vendored.call}\nprint(len(m._AUDIT) - n, m.__file__)"],
                           env=dict(os.environ, PYTHONPATH=str(project / vendored.path)), capture_output=True,
                           text=True, timeout=60)
    assert truth.returncode == 0, truth.stderr
    count, where = truth.stdout.split()
    assert count == "5" and where.startswith(str(project)), truth.stdout
    plain = _run(vendored, project, *vendored.planted_args)
    assert plain.returncode == 0, plain.stdout[-3000:]

    checked = _run(vendored, project, "--leakcheck-all", *vendored.planted_args)
    out = checked.stdout
    assert checked.returncode == 1, out[-5000:]
    failures = out.split("= FAILURES =", 1)[1].split("leakkit --leakcheck-all =", 1)[0]
    for nodeid in vendored.leaking:
        report = failures.split(f"leakcheck-all: {nodeid} keeps ", 1)
        assert len(report) == 2, (nodeid, failures[-5000:])
        body = report[1].split("\n____", 1)[0]
        assert f"culprit: {vendored.culprit}" in body, body
        assert re.search(rf"kept alive by:\s*\n\s*{re.escape(vendored.root)}", body), body
    summary = _summary(out)
    leaks = re.findall(r"^LEAK (\S+): .*$", summary, re.M)
    assert set(vendored.leaking) <= set(leaks), summary
    for line in re.findall(r"^LEAK .*$", summary, re.M):  # every test judged leaking calls it
        assert f"; culprit {vendored.culprit}; kept by {vendored.root}" in line, summary
