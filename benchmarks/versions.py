"""bisect's time on each CPython, on the same scenarios, as ratios to 3.11 measured in one run.

Each (interpreter, scenario) pair runs in a fresh process; rounds are interleaved across
interpreters so that a noisy machine slows them all alike, and the median of the rounds is kept.
Scenarios: a sync leak in a process with ~450 k live objects (benchmarks/bisect.py's), an async
one (tests/scenarios/s15_crawler_story.py) and a threaded one (tests/scenarios/s01_thread_pool.py).

    python benchmarks/versions.py [PYTHON ...]     (default: every .venv*/bin/python of the repo)
"""
from __future__ import annotations

import glob
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROUNDS = 3

CHILD = r"""
import importlib.util, json, os, sys, time, types
kind, path = sys.argv[1], sys.argv[2]
if kind == "big-heap":
    BIG = [{"id": i, "tags": [i, str(i)], "name": f"obj-{i}"} for i in range(220_000)]
    module = types.ModuleType("bench_worker")
    exec('''
SEEN = {}
def parse(n):
    rows = [{"k": i, "v": str(i) * 3} for i in range(400)]
    return len(",".join(r["v"] for r in rows))
def remember(n):
    SEEN[f"req-{n}"] = (n, "seen")
_n = [0]
def workload():
    _n[0] += 1
    parse(_n[0])
    remember(_n[0])
''', module.__dict__)
    sys.modules["bench_worker"] = module
else:
    name = os.path.basename(path)[:-3]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
import leakkit
t0 = time.perf_counter()
report = leakkit.bisect(module.workload, targets=[module], calls=60, progress=False)
seconds = time.perf_counter() - t0
print("RESULT " + json.dumps({"seconds": seconds, "verdict": report.verdict, "culprit": report.culprit,
                              "root": str(report.retention[0]) if report.retention else None}))
"""

SCENARIOS = {
    "big-heap (sync)": ("big-heap", ""),
    "crawler (async)": ("file", os.path.join(ROOT, "tests", "scenarios", "s15_crawler_story.py")),
    "thread pool (threads)": ("file", os.path.join(ROOT, "tests", "scenarios", "s01_thread_pool.py")),
}


def version(python: str) -> str:
    return subprocess.run([python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                          capture_output=True, text=True, check=True).stdout.strip()


def run(python: str, kind: str, path: str) -> dict:
    proc = subprocess.run([python, "-c", CHILD, kind, path], capture_output=True, text=True, timeout=600)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{python} {kind} {path}: {proc.stderr[-800:]}")


def main(argv: list[str]) -> None:
    pythons = argv or sorted(glob.glob(os.path.join(ROOT, ".venv*", "bin", "python")))
    versions = {p: version(p) for p in pythons}
    results: dict[tuple[str, str], list[dict]] = {}
    for _ in range(ROUNDS):
        for name, (kind, path) in SCENARIOS.items():
            for python in pythons:
                results.setdefault((python, name), []).append(run(python, kind, path))
    base = next((p for p in pythons if versions[p].startswith("3.11.")), pythons[0])
    print(f"{'scenario':24} {'python':8} {'seconds':>8} {'vs ' + versions[base]:>10}  verdict, culprit, first root")
    for name in SCENARIOS:
        reference = statistics.median(r["seconds"] for r in results[(base, name)])
        for python in sorted(pythons, key=lambda p: tuple(map(int, versions[p].split(".")))):
            rows = results[(python, name)]
            seconds = statistics.median(r["seconds"] for r in rows)
            last = rows[-1]
            print(f"{name:24} {versions[python]:8} {seconds:8.2f} {seconds / reference:9.2f}x  "
                  f"{last['verdict']}, {last['culprit']}, {last['root']}")


if __name__ == "__main__":
    main(sys.argv[1:])
