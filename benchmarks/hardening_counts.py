"""Count issue 24's bad-input and fault cases per class, in the tests of a checkout (the closing note's table).

Usage::

    python benchmarks/hardening_counts.py            # collect only: cases per class
    python benchmarks/hardening_counts.py --run      # run them too: how many give the clean error
    python benchmarks/hardening_counts.py --root /path/to/an/older/checkout   # the same count there

A case is one collected test id of the project's tables (one parametrized row). Each test file or
test function belongs to one class below (a row's id decides within the mixed tables of
tests/test_bad_input.py); "clean" is the number that pass, since each of these tests asserts the
clean outcome (leakkit's error naming expected and received, exit 2, no hang, the old file whole,
no orphan, the same behaviour as untraced).
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys

CLASSES = {
    1: "files that are not regular files block or exhaust memory",
    2: "saves that destroy what they replace",
    3: "children left behind",
    4: "exit codes that lie",
    5: "arguments checked by hand, unevenly",
    6: "nonsense accepted",
    7: "heap scans that trust modules",
    8: "trace is not invisible",
    9: "the plugin judges what it should not",
}
FILES = ["tests/test_files_hostile.py", "tests/test_signals.py", "tests/test_exit_codes.py", "tests/test_bad_input.py",
         "tests/test_checks.py", "tests/test_heap_hostile.py", "tests/test_trace_invisible.py",
         "tests/test_leakcheck_all.py", "tests/test_pytest_plugin.py", "tests/test_workload.py"]
_NONSENSE = re.compile(r"workload|sys\.exit|GeneratorExit|<call_1e20>|<dup_columns>|<neg_allocated>|<mprof_neg>|"
                       r"forecast(_workers)? (t |t$|duplicate|an inf|a negative|negative|text pids|fractional)|"
                       r"classify_readings negative|datetime")


def klass(test_id: str) -> int | None:
    """The class a collected test id counts for (None: not one of issue 24's tables)."""
    path, _, name = test_id.partition("::")
    base = os.path.basename(path)
    if base == "test_files_hostile.py":
        return 2 if re.search(r"save|full_disk|killed", name) and "refuse" not in name else 1
    if base == "test_signals.py":
        return 3
    if base == "test_exit_codes.py":
        return 1 if re.search(r"malformed.*\[(a FIFO|/dev/zero)\]", name) else 4
    if base == "test_checks.py":
        return 5
    if base == "test_heap_hostile.py":
        return 7
    if base == "test_trace_invisible.py":
        return 8
    if base in ("test_leakcheck_all.py", "test_pytest_plugin.py"):
        return 9 if re.search(r"monkeypatch|systemexit|unittest|tmp_path|not_repeated", name, re.I) else None
    if base == "test_workload.py":
        return 6 if re.search(r"generator|coroutine|refus|sys_exit|systemexit", name, re.I) else None
    if base == "test_bad_input.py":
        if re.search(r"test_(cli_bad_input|leakkits_own_failure|a_command_that_fails)", name):
            return 4
        if re.search(r"hardening|second_pass|datetime|entry_point", name):
            return 6 if _NONSENSE.search(name) else 5
        return None  # issue 12's table (before issue 24): counted apart
    return None


def collect(root: str) -> list[str]:
    files = [f for f in FILES if os.path.exists(os.path.join(root, f))]
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
                          cwd=root, capture_output=True, text=True)
    return [line.strip() for line in done.stdout.splitlines() if "::" in line]


def run(root: str, ids: list[str]) -> dict[str, str]:
    """Run the counted ids only (the plugin's files hold many other, slow tests)."""
    wanted = [i for i in ids if klass(i) is not None]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", *wanted],
                          cwd=root, capture_output=True, text=True)
    outcomes = {}
    for line in done.stdout.splitlines():
        outcome, _, test_id = line.partition(" ")
        if outcome in ("PASSED", "FAILED", "ERROR", "XFAIL", "XPASS") and "::" in test_id:
            if outcome != "PASSED" and test_id not in ids:
                test_id = test_id.rsplit(" - ", 1)[0]  # the failure's message after the id
            outcomes[test_id] = outcome
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser.add_argument("--run", action="store_true", help="run the cases and count those that pass")
    args = parser.parse_args(argv)
    ids = collect(args.root)
    cases = collections.Counter(c for c in map(klass, ids) if c is not None)
    clean: collections.Counter = collections.Counter()
    if args.run:
        outcomes = run(args.root, ids)
        clean.update(c for i, c in ((i, klass(i)) for i in ids) if c is not None and outcomes.get(i) == "PASSED")
    print(f"{'class':<58} {'cases':>6}" + (f" {'clean':>6}" if args.run else ""))
    for number, title in CLASSES.items():
        print(f"{number} {title:<56} {cases[number]:>6}" + (f" {clean[number]:>6}" if args.run else ""))
    print(f"{'total':<58} {sum(cases.values()):>6}" + (f" {sum(clean.values()):>6}" if args.run else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
