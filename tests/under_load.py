"""Run a command while every core is kept busy, to show that the tests hold on a loaded machine.

Why: CI runs on a shared 2-core machine; a test that waits on time instead of a condition passes
on an idle laptop and fails there. ``make test-under-load`` runs ``make test`` this way.

    python tests/under_load.py [--hogs N] [--runs R] -- COMMAND...

Starts N busy-looping processes (default: one per core) at the caller's priority, runs COMMAND
R times in a row (stopping at the first failure), ends the hogs, and exits with the command's
status. Each run's time and status are printed, and a last line sums them up.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HOG = "while True: pass"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="under_load.py", description=__doc__.splitlines()[0])
    parser.add_argument("--hogs", type=int, default=os.cpu_count() or 2, help="busy processes (default: one per core)")
    parser.add_argument("--runs", type=int, default=1, help="times to run the command (default 1)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command or args.hogs < 0 or args.runs < 1:
        parser.error("expected --hogs >= 0, --runs >= 1 and a command after --")
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(args.hogs)]
    code = 0
    passed = 0
    try:
        for run in range(1, args.runs + 1):
            start = time.monotonic()
            code = subprocess.call(command)
            took = time.monotonic() - start
            print(f"under_load: run {run}/{args.runs} with {args.hogs} CPU hogs: "
                  f"{'passed' if code == 0 else f'FAILED (exit {code})'} in {took:.0f} s", flush=True)
            if code != 0:
                break
            passed += 1
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait()
    print(f"under_load: {passed} of {args.runs} runs passed under {args.hogs} CPU hogs", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
