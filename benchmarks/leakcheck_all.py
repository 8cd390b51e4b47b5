"""``pytest --leakcheck-all`` over popular projects' own test suites: cost, flags, and the session's report.

For each suite (the project's PyPI source distribution, pinned by version and sha256), run in one
go, back to back: the plain suite, then the same command with ``--leakcheck-all``, each writing a
junitxml file. Prints, per suite: tests, CPU and wall time of each run (pytest's whole process,
start-up and collection included), the ratio (the target: at most 5x the plain suite plus the
confirmed leaks' bisects), every test the check flags, and whether the session's report is the
plain run's (the summary line, the test statuses, the warnings summary, junitxml modulo times).

With ``--planted``, each suite is run again with a leak planted in its library code (a
module-level ``_AUDIT`` list one function appends to on every call), on the tests that call it
and some that do not: the check must fail the first with that function as culprit and
``<module>._AUDIT`` as root, and nothing else.

    pip install -e '.[suites]'        # the suites' own test dependencies (hypothesis, ...)
    apt-get install locales-all       # natsort's locale tests (en_US, de_DE)
    python benchmarks/leakcheck_all.py [--suites more-itertools,idna] [--planted] [--sdists DIR]

Sdists are fetched once with ``pip download --no-binary :all: --no-deps NAME==VERSION`` into
``--sdists`` (default ~/.cache/leakkit-suites) and checked against their sha256.
"""
from __future__ import annotations

import os
import sys

# benchmarks/bisect.py is named like the standard library's bisect module: keep this folder off the path.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]

import argparse  # noqa: E402
import ast  # noqa: E402
import hashlib  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import xml.etree.ElementTree as ET  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402


@dataclass
class Plant:
    """A leak planted in ``function`` of ``path``: the tests ``select`` runs, those expected to leak."""

    path: str
    function: str  # Class.method or function
    select: list[str]
    leaking: str  # regex on node ids expected to leak
    culprit: str


@dataclass
class Suite:
    name: str
    dist: str
    version: str
    sha256: str
    style: str
    pythonpath: str
    args: list[str]
    plant: Plant
    env: dict[str, str] = field(default_factory=dict)

    @property
    def sdist(self) -> str:
        return f"{self.dist}-{self.version}.tar.gz"


_ASYNC_SCOPE = ["-o", "asyncio_default_fixture_loop_scope=function"]
SUITES = [
    Suite("more-itertools", "more-itertools", "10.5.0",
          "5482bfef7849c25dc3c6dd53a6173ae4795da2a41a80faea6700d9f5846c5da6",
          "unittest classes with subTest", ".", ["tests"],
          Plant("more_itertools/more.py", "first", ["tests/test_more.py", "-k", "FirstTests or ChunkedTests"],
                r"::FirstTests::", "more_itertools.more.first")),
    Suite("attrs", "attrs", "24.2.0", "5cfb1b9148b5b086569baec03f20d7b6bf3bcacc9a42bebf87ffaaca362f6346",
          "pytest classes, hypothesis, parametrize", "src",
          ["tests", "--deselect", "tests/test_converters.py::TestPipe::test_wrapped_annotation"],
          Plant("src/attr/_funcs.py", "asdict", ["tests/test_funcs.py", "-k", "TestAsDict or TestHas"],
                r"::TestAsDict::", "attr._funcs.asdict")),
    Suite("boltons", "boltons", "24.1.0", "4a49b7d57ee055b83a458c8682a2a6f199d263a8aa517098bda9bab813554b87",
          "doctest modules and pytest functions", ".", ["--noconftest", "--doctest-modules", "boltons", "tests"],
          Plant("boltons/strutils.py", "slugify",
                ["--noconftest", "--doctest-modules", "boltons/strutils.py", "tests/test_strutils.py"],
                r"slugify|test_strutils\.py::test_slugify", "boltons.strutils.slugify")),
    Suite("asgiref", "asgiref", "3.8.1", "c343bd80a0bec947a9860adb4c432ffa7db769836c64238fc34bdc3fec84d590",
          "async tests (pytest-asyncio), threads", ".", ["tests"],
          Plant("asgiref/sync.py", "SyncToAsync.__call__",
                ["tests/test_sync.py", "-k", "test_sync_to_async or test_async_to_sync_fail"],
                r"test_sync\.py::test_sync_to_async(_decorator)?:", "asgiref.sync.SyncToAsync.__call__")),
    Suite("idna", "idna", "3.10", "12f65c9b470abda6dc35cf8e63cc574b1c52b11df2c86030af0ac09b01b13ea9",
          "unittest classes", ".", ["tests"],
          Plant("idna/core.py", "encode", ["tests/test_idna.py", "tests/test_intranges.py"],
                r"test_idna\.py::IDNATests::test_encode", "idna.core.encode")),
    Suite("natsort", "natsort", "8.4.0", "45312c4a0e5507593da193dedd04abb1469253b601ecaf63445ad80f0a1ea581",
          "hypothesis, pytest-mock, doctests", ".",
          ["--ignore=tests/profile_natsorted.py", "--doctest-modules", "natsort", "tests", "docs/examples.rst"],
          Plant("natsort/natsort.py", "natsorted", ["tests/test_natsorted.py"],
                r"test_natsorted\.py::test_natsorted", "natsort.natsort.natsorted")),
    Suite("packaging", "packaging", "24.2", "c228a6dc5e932d346bc5739379109d49e8853dd8223571c7c5b55260edc0b97f",
          "pytest parametrize (26 k tests), monkeypatch", "src", ["tests"],
          Plant("src/packaging/version.py", "Version.__init__",
                ["tests/test_version.py", "-k", "test_valid_versions or test_normalized_versions"],
                r"test_version\.py::TestVersion::test_(valid|normalized)_versions", "packaging.version.Version.__init__")),
    Suite("python-dateutil", "python-dateutil", "2.9.0.post0",
          "37dd54208da7e1cd875388217d5e00ebd4179249f90fb72437e91a35459a0ad3",
          "pytest and unittest, hypothesis, freezegun", "src",
          [*_ASYNC_SCOPE, "-W", "ignore::pytest.PytestUnknownMarkWarning", "-W",
           "ignore::pytest.PytestRemovedIn10Warning", "tests"],
          Plant("src/dateutil/easter.py", "easter", [*_ASYNC_SCOPE, "tests/test_easter.py"], r"test_easter\.py::",
                "dateutil.easter.easter")),
    Suite("aiofiles", "aiofiles", "24.1.0", "22a075c9e5a3810f0c2e48f3008c94d68c65d763b9b03857924c99e57355166c",
          "async tests (asyncio_mode=auto), files", "src", [*_ASYNC_SCOPE, "tests", "--deselect",
                                                             "tests/test_os.py::test_access"],
          Plant("src/aiofiles/threadpool/__init__.py", "_open", ["tests/threadpool/test_text.py", "tests/test_os.py",
                                                                 "--deselect", "tests/test_os.py::test_access"],
                r"threadpool/test_text\.py::", "aiofiles.threadpool._open")),
]


def fetch(suite: Suite, cache: Path) -> Path:
    path = cache / suite.sdist
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps",
                        "-d", str(cache), f"{suite.dist}=={suite.version}"], check=True)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != suite.sha256:
        raise SystemExit(f"{path}: sha256 {digest}, expected {suite.sha256}")
    return path


def extract(sdist: Path, into: Path) -> Path:
    with tarfile.open(sdist) as archive:
        archive.extractall(into, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    (root,) = [p for p in into.iterdir() if p.is_dir()]
    return root


def plant(root: Path, spec: Plant) -> None:
    """Insert ``_AUDIT.append({...})`` as the first statement of the function (after its docstring)."""
    path = root / spec.path
    text = path.read_text()
    tree = ast.parse(text)
    scope: list[ast.AST] = [tree]
    node = None
    for part in spec.function.split("."):
        node = next(n for s in scope for n in ast.iter_child_nodes(s)
                    if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name == part)
        scope = [node]
    body = node.body
    first = body[1] if isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
        and len(body) > 1 else body[0]
    lines = text.splitlines(keepends=True)
    indent = " " * first.col_offset
    lines.insert(first.lineno - 1, f"{indent}_AUDIT.append({{'call': {spec.function!r}}})  # PLANTED LEAK\n")
    path.write_text("".join(lines) + "\n\n_AUDIT = []  # PLANTED: never trimmed\n")


def run(root: Path, suite: Suite, args: list[str], junit: Path | None) -> dict:
    env = dict(os.environ, PYTHONPATH=str(root / suite.pythonpath), PYTHONDONTWRITEBYTECODE="1", **suite.env)
    for name in ("PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER", "PYTHONTRACEMALLOC"):
        env.pop(name, None)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-rfEsxXw", *args]
    if junit is not None:
        command.append(f"--junitxml={junit}")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=7200)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"out": done.stdout + done.stderr, "rc": done.returncode, "wall": wall, "cpu": cpu}


def summary_line(out: str) -> str:
    lines = [line for line in out.splitlines() if re.match(r"^=*\s*\d+ (passed|failed|error|skipped)", line.strip("= "))]
    return re.sub(r" in [\d.]+s.*$", "", lines[-1].strip("= ")) if lines else "?"


def statuses(out: str) -> str:
    """The status letters pytest printed, in order, leakkit's own lines left out."""
    body = re.split(r"\ncollected [^\n]*\n", out, maxsplit=1)[-1]
    letters = []
    for line in body.splitlines():
        if line.startswith(("=", "-", "leakcheck-all:")):
            if line.startswith(("=", "-")) and letters:
                break
            continue
        line = re.sub(r"\s*\[\s*\d+%\]\s*$", "", line).strip()
        token = line.rsplit(" ", 1)[-1] if line else ""
        if token and re.fullmatch(r"[.sFExXfRuw,]+", token):
            letters.append(token)
    return "".join(letters)


def section(out: str, title: str) -> str:
    match = re.search(rf"=+ {title} =+\n(.*?)(?=\n=+ |\Z)", out, re.S)
    text = match.group(1).strip() if match else ""
    return re.sub(r"\n-+ generated xml file: .*", "", text)


def junit_cases(path: Path) -> dict:
    """junitxml without times: per test case, its attributes and children (tag, attributes, text)."""
    tree = ET.parse(path)
    cases = {}
    for case in tree.iter("testcase"):
        attrs = {k: v for k, v in case.attrib.items() if k != "time"}
        children = [(c.tag, dict(c.attrib), (c.text or "").strip()) for c in case]
        cases[(attrs.get("classname"), attrs.get("name"))] = (attrs, children)
    suites = [{k: v for k, v in s.attrib.items() if k not in ("time", "timestamp", "hostname")}
              for s in tree.iter("testsuite")]
    return {"cases": cases, "suites": suites}


def leakkit_summary(out: str) -> str:
    match = re.search(r"=+ leakkit --leakcheck-all =+\n(.*?)(?=\n=+ |\Z)", out, re.S)
    return match.group(1) if match else ""


def compare(plain: dict, checked: dict, junits: tuple[Path, Path]) -> list[str]:
    """What differs between the plain session's report and the checked one's (leakkit's own lines aside)."""
    diffs = []
    if summary_line(plain["out"]) != summary_line(checked["out"]):
        diffs.append(f"summary: {summary_line(plain['out'])!r} vs {summary_line(checked['out'])!r}")
    if statuses(plain["out"]) != statuses(checked["out"]):
        diffs.append("test statuses differ")
    if section(plain["out"], "warnings summary") != section(checked["out"], "warnings summary"):
        diffs.append("warnings summary differs")
    if section(plain["out"], "short test summary info") != section(checked["out"], "short test summary info"):
        diffs.append("short test summary differs")
    if not (junits[0].exists() and junits[1].exists()):
        return diffs + [f"no junitxml from the {'plain' if not junits[0].exists() else 'checked'} run"]
    a, b = junit_cases(junits[0]), junit_cases(junits[1])
    if a["suites"] != b["suites"]:
        diffs.append(f"junitxml testsuite: {a['suites']} vs {b['suites']}")
    changed = [key for key in a["cases"].keys() | b["cases"].keys() if a["cases"].get(key) != b["cases"].get(key)]
    if changed:
        diffs.append(f"junitxml: {len(changed)} test cases differ, e.g. {sorted(map(str, changed))[:2]}")
    return diffs


def bisect_seconds(summary: str) -> float:
    """The bisects' wall time the summary gives ("and 1 min 02 s in 3 bisects")."""
    match = re.search(r"and (?:(\d+) min )?([\d.]+) s in \d+ bisects?", summary)
    return 0.0 if not match else 60.0 * int(match.group(1) or 0) + float(match.group(2))


def flagged(summary: str) -> list[str]:
    return [line for line in summary.splitlines() if re.match(r"(LEAK|UNCONFIRMED|INCONCLUSIVE|HARNESS|NOT REPEATED) ",
                                                               line)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suites", default=",".join(s.name for s in SUITES))
    parser.add_argument("--sdists", default=os.path.expanduser("~/.cache/leakkit-suites"))
    parser.add_argument("--planted", action="store_true", help="also check a planted leak in each suite")
    parser.add_argument("--keep", default=None, help="keep each run's output in this directory")
    options = parser.parse_args()
    wanted = options.suites.split(",")
    keep = Path(options.keep) if options.keep else None
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores); python {sys.version.split()[0]}")
    rows = []
    for suite in (s for s in SUITES if s.name in wanted):
        sdist = fetch(suite, Path(options.sdists))
        with tempfile.TemporaryDirectory() as tmp:
            root = extract(sdist, Path(tmp) / "released")
            junits = (Path(tmp) / "plain.xml", Path(tmp) / "checked.xml")
            plain = run(root, suite, suite.args, junits[0])
            checked = run(root, suite, [*suite.args, "--leakcheck-all"], junits[1])
            again = run(root, suite, suite.args, None)  # plain again: the ratio is to the mean of the two
            plain["cpu"], plain["wall"] = (plain["cpu"] + again["cpu"]) / 2, (plain["wall"] + again["wall"]) / 2
            if keep:
                (keep / f"{suite.name}-plain.txt").write_text(plain["out"])
                (keep / f"{suite.name}-checked.txt").write_text(checked["out"])
            diffs = compare(plain, checked, junits)
            summary = leakkit_summary(checked["out"])
            tests = summary_line(plain["out"])
            bisect_s = bisect_seconds(summary)
            row = [suite.name, tests, plain, checked, checked["cpu"] / plain["cpu"], checked["wall"] / plain["wall"],
                   flagged(summary), diffs, (checked["wall"] - bisect_s) / plain["wall"]]
            rows.append(row)
            _print_row(row, summary)
            if options.planted:
                _planted(suite, sdist, Path(tmp), keep)
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")
    print("\n| suite (sdist) | style | tests | plain CPU / wall | `--leakcheck-all` CPU / wall | ratio CPU / wall "
          "| wall without bisects | flagged |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, tests, plain, checked, r_cpu, r_wall, flags, _, r_runs in rows:
        suite = next(s for s in SUITES if s.name == name)
        print(f"| {name} {suite.version} | {suite.style} | {tests} | {plain['cpu']:.1f} s / {plain['wall']:.1f} s | "
              f"{checked['cpu']:.1f} s / {checked['wall']:.1f} s | {r_cpu:.1f}x / {r_wall:.1f}x | {r_runs:.1f}x | "
              f"{len(flags) or 'none'} |")


def _print_row(row: list, summary: str) -> None:
    name, tests, plain, checked, r_cpu, r_wall, flags, diffs, r_runs = row
    print(f"\n== {name}: {tests}")
    print(f"   plain   rc={plain['rc']} CPU {plain['cpu']:.1f} s wall {plain['wall']:.1f} s")
    print(f"   checked rc={checked['rc']} CPU {checked['cpu']:.1f} s wall {checked['wall']:.1f} s "
          f"(ratio {r_cpu:.2f}x CPU, {r_wall:.2f}x wall; {r_runs:.2f}x wall without the bisects)")
    print("   " + "\n   ".join(summary.strip().splitlines()[:3]))
    for line in flags:
        print(f"   {line[:300]}")
    print(f"   session report: {'same as the plain run' if not diffs else 'DIFFERS: ' + '; '.join(diffs)}")


def _planted(suite: Suite, sdist: Path, tmp: Path, keep: Path | None) -> None:
    root = extract(sdist, tmp / "planted")
    plant(root, suite.plant)
    checked = run(root, suite, [*suite.plant.select, "--leakcheck-all"], None)
    if keep:
        (keep / f"{suite.name}-planted.txt").write_text(checked["out"])
    summary = leakkit_summary(checked["out"])
    module = suite.plant.culprit.rsplit(".", 2 if "." in suite.plant.function else 1)[0]
    root_name = f"{module}._AUDIT["
    leaks = [line for line in summary.splitlines() if line.startswith("LEAK ")]
    right = [line for line in leaks if f"culprit {suite.plant.culprit};" in line and f"kept by {root_name}" in line]
    wrong = [line for line in leaks if line not in right]
    expected = [line for line in right if re.search(suite.plant.leaking, line)]
    judged = re.search(r"(\d+) tests judged", summary)
    print(f"   planted in {suite.plant.culprit}: {len(right)} tests LEAK with culprit and root {root_name}...] "
          f"({len(expected)} of them the tests expected, /{suite.plant.leaking}/), {len(wrong)} LEAK otherwise "
          f"({judged.group(1) if judged else '?'} judged; CPU {checked['cpu']:.1f} s)")
    for line in wrong[:5]:
        print(f"     {line[:300]}")
    others = [line for line in flagged(summary) if not line.startswith("LEAK ")]
    for line in others[:8]:
        print(f"     {line[:300]}")


if __name__ == "__main__":
    main()
