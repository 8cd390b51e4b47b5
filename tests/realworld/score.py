#!/usr/bin/env python3
"""Score leakkit.bisect on the real-library corpus, each case in a fresh interpreter.

    python tests/realworld/score.py [CASE.py ...] [--json]     (default: every rwNN_*.py here)

Each case module defines ``workload``, ``TARGETS`` (what a user would pass: their module plus the
suspected library modules and classes) and ``EXPECT`` (verdicts, culprits matched as a suffix of
``report.culprit``, roots of which one must appear in one of the first three retention paths;
optionally ``says``: words of which one must appear in the report's text). Prints one row per
case and a last line:

    score: verdicts V/N culprits C/L roots R/M says S/K false-leaks F errors E over-10s O seconds T
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CALLS = 60
TARGET_S = 10.0  # issue 9: each case's bisect within 10 s
TIMEOUT_S = 30  # 3x the 10 s each case is allowed: past that the answer is wrong anyway

CHILD = r"""
import importlib.util, json, os, sys, time
path = sys.argv[1]
name = os.path.basename(path)[:-3]
spec = importlib.util.spec_from_file_location(name, path)
module = importlib.util.module_from_spec(spec)
sys.modules[name] = module
spec.loader.exec_module(module)
import leakkit
t0, c0 = time.perf_counter(), time.process_time()
report = leakkit.bisect(module.workload, targets=module.TARGETS, calls=int(sys.argv[2]))
elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
culprit = report.culprit
print("RW-JSON " + json.dumps({"verdict": str(report.verdict), "culprit": None if culprit is None else str(culprit),
                              "retention": [str(p) for p in list(report.retention or [])[:3]],
                              "seconds": elapsed, "cpu_s": cpu, "expect": module.EXPECT,
                              "text": str(report)}), flush=True)
"""


def cases(args: list[str] | None = None) -> list[str]:
    """Case files: the given ones, or every ``rwNN_*.py`` beside this script."""
    if args:
        return [os.path.abspath(a) for a in args]
    return sorted(os.path.join(HERE, f) for f in os.listdir(HERE)
                  if f.startswith("rw") and f[2:4].isdigit() and f.endswith(".py"))


def run_case(path: str, calls: int = CALLS, timeout_s: float = TIMEOUT_S) -> dict:
    """Bisect one case in a fresh interpreter: the child's answer, or ``error`` saying what went wrong."""
    t0 = time.perf_counter()
    env = dict(os.environ, MPLBACKEND="Agg")
    try:
        proc = subprocess.run([sys.executable, "-c", CHILD, path, str(calls)], capture_output=True, text=True,
                              timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"no answer in {timeout_s:.0f} s (hang or heavy walk)", "wall_s": time.perf_counter() - t0}
    for line in proc.stdout.splitlines():
        if line.startswith("RW-JSON "):
            got = json.loads(line[len("RW-JSON "):])
            got["wall_s"] = time.perf_counter() - t0
            return got
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit {proc.returncode}, no output"]
    return {"error": tail[0][:300], "stderr": proc.stderr[-3000:], "wall_s": time.perf_counter() - t0}


def culprit_ok(got: str | None, accepted: list) -> bool:
    if None in accepted:
        return got is None
    return got is not None and any(got == a or got.endswith("." + a) or got.endswith(":" + a) for a in accepted)


def grade(got: dict) -> dict[str, bool]:
    """Which parts of the answer match the case's EXPECT (root and ``says`` only matter for leaks)."""
    expect = got["expect"]
    is_leak = "leak" in expect["verdict"]
    verdict = got["verdict"] in expect["verdict"]
    culprit = culprit_ok(got["culprit"], expect["culprit"])
    root = not (is_leak and expect["root"]) or any(r in p for r in expect["root"] for p in got["retention"])
    text = " ".join(got["text"].lower().split())  # the report's long lines are wrapped
    says = not expect.get("says") or any(w.lower() in text for w in expect["says"])
    return {"verdict": verdict, "culprit": culprit, "root": root, "says": says,
            "false_leak": not is_leak and got["verdict"] == "leak"}


def main(argv: list[str]) -> int:
    as_json = "--json" in argv
    paths = cases([a for a in argv if a != "--json"])
    n = leaks = with_root = with_says = 0
    verdicts = culprits = roots = says = false_leaks = errors = slow = 0
    total_s = 0.0
    rows = []
    for path in paths:
        name = os.path.basename(path)[:-3]
        got = run_case(path)
        total_s += got["wall_s"]
        n += 1
        if "error" in got:
            errors += 1
            rows.append({"case": name, "error": got["error"]})
            print(f"{name:30s} ERROR {got['error'][:120]}  {got['wall_s']:.1f}s", flush=True)
            continue
        g = grade(got)
        expect = got["expect"]
        is_leak = "leak" in expect["verdict"]
        verdicts += g["verdict"]
        false_leaks += g["false_leak"]
        if is_leak:
            leaks += 1
            culprits += g["verdict"] and g["culprit"]
            if expect["root"]:
                with_root += 1
                roots += g["verdict"] and g["root"]
            if expect.get("says"):
                with_says += 1
                says += g["verdict"] and g["says"]
        slow += got["seconds"] > TARGET_S
        ok = all(g[k] for k in ("verdict", "culprit", "root", "says"))
        rows.append({"case": name, "ok": ok, **{k: got[k] for k in ("verdict", "culprit", "seconds")},
                     "retention": got["retention"][:1]})
        first = (got["retention"][:1] or ["-"])[0][:60]
        print(f"{name:30s} {'ok  ' if ok else 'MISS'} verdict={got['verdict']:12s} culprit={got['culprit']!s:40.40s} "
              f"retention={first}  bisect {got['seconds']:.1f}s ({got['cpu_s']:.1f}s CPU)"
              f"{' SLOW' if got['seconds'] > TARGET_S else ''}", flush=True)
    print(f"score: verdicts {verdicts}/{n} culprits {culprits}/{leaks} roots {roots}/{with_root} "
          f"says {says}/{with_says} false-leaks {false_leaks} errors {errors} over-10s {slow} seconds {total_s:.0f}")
    if as_json:
        print(json.dumps(rows))
    return 0 if verdicts == n and culprits == leaks and roots == with_root and says == with_says and not errors else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
