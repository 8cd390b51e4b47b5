"""``pytest --leakcheck-all`` over a real project's own test suite: cachetools 5.5.2.

The suite is the project's PyPI sdist, vendored byte for byte (tests/realsuites/README.md says
why and how it was fetched; MIT, its LICENSE is inside). Each test extracts it and runs pytest in
a subprocess on the project's own tests, as a user of leakkit would:

* as released, every test passes with and without --leakcheck-all and none is judged leaking
  (the suite has none: ground truth, a plain run keeps nothing; this is the false-leak check
  on 216 real tests of caches, pickling and decorators);
* with a leak planted in the project's code (``cachetools.keys.hashkey`` appends every key it
  makes to a module-level list), the tests that call it fail with the culprit
  ``cachetools.keys.hashkey`` and the root ``cachetools.keys._AUDIT`` in their failure report,
  also where the key function is reached through ``cached(key=keys.hashkey)``'s default.
"""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

SDIST = Path(__file__).parent / "realsuites" / "cachetools-5.5.2.tar.gz"
SDIST_SHA256 = "1a661caa9175d26759571b2e19580f9d6393969e5dfca11fdb1f947a23e640d4"
ORIGINAL = '''    if kwargs:
        return _HashedTuple(args + sum(sorted(kwargs.items()), _kwmark))
    else:
        return _HashedTuple(args)
'''
PLANTED = '''    if kwargs:
        key = _HashedTuple(args + sum(sorted(kwargs.items()), _kwmark))
    else:
        key = _HashedTuple(args)
    _AUDIT.append(("hashkey", key))  # PLANTED LEAK: an audit trail nobody trims
    return key


_AUDIT = []
'''
# the planted run: two tests that call hashkey (directly, and through cached()'s default key
# function), and tests of the same suite that do not (their caches and pickling stay clean)
LEAKING = ["tests/test_keys.py::CacheKeysTest::test_hashkey",
           "tests/test_cached.py::CacheWrapperTest::test_decorator_info"]
NOT_LEAKING = ["tests/test_lru.py", "tests/test_ttl.py::TTLCacheTest::test_pickle_maxsize"]
TIMEOUT_S = 600


def _extract(into: Path) -> Path:
    data = SDIST.read_bytes()
    assert hashlib.sha256(data).hexdigest() == SDIST_SHA256, "the vendored sdist is not cachetools 5.5.2's"
    with tarfile.open(SDIST) as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(into, filter="data")
        else:  # 3.10 before 3.10.12: members checked by hand
            for member in archive.getmembers():
                assert not (member.name.startswith("/") or ".." in Path(member.name).parts), member.name
            archive.extractall(into)
    return into / "cachetools-5.5.2"


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _extract(tmp_path_factory.mktemp("released"))


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = _extract(tmp_path_factory.mktemp("planted"))
    keys = root / "src" / "cachetools" / "keys.py"
    text = keys.read_text()
    assert text.count(ORIGINAL) == 1, "cachetools.keys.hashkey is not the one this test plants a leak in"
    keys.write_text(text.replace(ORIGINAL, PLANTED))
    return root


def _run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The project's own suite, its own code first on the path (src/, not an installed copy)."""
    env = dict(os.environ, PYTHONPATH=str(project / "src"), PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:asyncio",
                           "-p", "no:randomly", "-q", *args], cwd=project, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT_S)


def _summary(out: str) -> str:
    assert "leakkit --leakcheck-all =" in out, out[-3000:]
    return out.split("leakkit --leakcheck-all =", 1)[1].split("short test summary", 1)[0]


def test_the_released_suite_passes_with_and_without_the_flag_and_nothing_is_judged_leaking(released):
    plain = _run(released)
    assert plain.returncode == 0, plain.stdout[-3000:]
    passed = int(re.search(r"(\d+) passed", plain.stdout).group(1))
    assert passed >= 200, plain.stdout[-500:]
    checked = _run(released, "--leakcheck-all")
    assert checked.returncode == 0, checked.stdout[-5000:]
    assert f"{passed} passed" in checked.stdout
    summary = _summary(checked.stdout)
    # every test judged (unittest TestCases get a fresh instance per run, so a counter a test
    # keeps on self does not make it unrepeatable), none leaking, none left unconfirmed
    assert f"{passed} tests judged, 0 leaking, 0 not repeated" in summary, summary
    assert not re.search(r"^(LEAK|UNCONFIRMED|INCONCLUSIVE|NOT REPEATED) ", summary, re.M), summary


def test_the_planted_leak_fails_the_tests_that_call_it_with_its_culprit_and_root(planted):
    # ground truth without leakkit: each call of the planted hashkey keeps its key, and the
    # project's suite still passes (the leak changes no result)
    truth = subprocess.run([sys.executable, "-c", "from cachetools import keys\n"
                            "for i in range(5): keys.hashkey(i)\nprint(len(keys._AUDIT), keys.__file__)"],
                           env=dict(os.environ, PYTHONPATH=str(planted / "src")), capture_output=True,
                           text=True, timeout=60)
    assert truth.returncode == 0, truth.stderr
    count, where = truth.stdout.split()
    assert count == "5" and where.startswith(str(planted)), truth.stdout
    plain = _run(planted, *LEAKING, *NOT_LEAKING)
    assert plain.returncode == 0, plain.stdout[-3000:]

    # bisect's default budget: the probe of what a traced call costs times the call apart from
    # its checkpoint (inside pytest a checkpoint costs a hundred times this 1 ms test)
    checked = _run(planted, "--leakcheck-all", *LEAKING, *NOT_LEAKING)
    out = checked.stdout
    assert checked.returncode == 1, out[-5000:]
    failures = out.split("= FAILURES =", 1)[1].split("leakkit --leakcheck-all =", 1)[0]
    for nodeid in LEAKING:
        report = failures.split(f"leakcheck-all: {nodeid} keeps ", 1)
        assert len(report) == 2, (nodeid, failures[-5000:])
        body = report[1].split("\n____", 1)[0]
        assert "culprit: cachetools.keys.hashkey" in body, body
        assert re.search(r"kept alive by:\s*\n\s*cachetools\.keys\._AUDIT\[", body), body
    summary = _summary(out)
    assert re.search(rf"^\d+ tests judged, {len(LEAKING)} leaking, 0 not repeated", summary, re.M), summary
    for nodeid in LEAKING:
        assert re.search(rf"^LEAK {re.escape(nodeid)}: \+.*/run .*; culprit cachetools\.keys\.hashkey; "
                         r"kept by cachetools\.keys\._AUDIT\[", summary, re.M), summary
    assert not re.search(r"^(UNCONFIRMED|INCONCLUSIVE|NOT REPEATED) ", summary, re.M), summary
    assert re.search(rf"{len(LEAKING)} failed, \d+ passed", out), out[-1000:]
