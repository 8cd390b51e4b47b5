"""A child process for tests that watch memory from outside: it paces itself on the watcher's samples.

Why: a child that allocates on its own clock races the watcher, and on a busy machine the samples
the test asserts on may all come before (or long after) the allocation. This child reads the
CSV the watcher appends to (one flushed line per sample) and acts on sample counts instead, and
writes a marks file saying which samples came after what it did:

    python _watched.py grow CSV MARKS CHUNKS CHUNK_BYTES [hold]
        one chunk per new sample (CHUNKS 0: until MemoryError, then exit 1), then waits for a sample
        taken after the last chunk; with ``hold`` it then sleeps until it is ended.
    python _watched.py plateau CSV MARKS BYTES SAMPLES
        all BYTES at once, then waits for SAMPLES samples taken after it, then exits.
    python _watched.py parent CSV MARKS BYTES
        starts a ``hold`` kid that allocates BYTES, waits for a sample taken after the kid's
        allocation, then ends the kid and exits.
    python _watched.py hold BYTES SIGNAL
        allocates BYTES, creates the file SIGNAL, sleeps until it is ended.

MARKS is JSON: ``begin`` (index of the first sample certainly taken after this script started),
``after`` (index of the first sample certainly taken after its last allocation) and ``end``
(index past the last sample it saw before it went on to exit: later ones may catch its teardown).
The watcher samples one row at a time, so after reading k rows, rows from index k+1 on were
taken after the read. Use ``frame.iloc[marks["after"]:marks["end"]]``. Every wait has a generous upper bound (``TIMEOUT_S``) only to end a
broken test.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

TIMEOUT_S = 300.0


def rows(csv: str) -> int:
    """Samples the watcher has written so far (data lines start with a digit: the ``t`` column)."""
    try:
        with open(csv, encoding="utf-8") as handle:
            return sum(1 for line in handle if line[:1].isdigit())
    except OSError:
        return 0


def wait_rows(csv: str, count: int) -> int:
    deadline = time.monotonic() + TIMEOUT_S
    while (seen := rows(csv)) < count:
        if time.monotonic() > deadline:
            sys.exit(f"_watched.py: no sample {count} in {csv} after {TIMEOUT_S:.0f} s")
        time.sleep(0.005)
    return seen


def wait_file(path: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            sys.exit(f"_watched.py: no {path} after {TIMEOUT_S:.0f} s")
        time.sleep(0.005)


def settle(csv: str, marks: str, begin: int, samples: int = 1) -> None:
    """Wait until ``samples`` samples were taken after now, and say which ones in the marks file."""
    after = rows(csv) + 1
    end = wait_rows(csv, after + samples)
    with open(marks + ".tmp", "w", encoding="utf-8") as handle:
        json.dump({"begin": begin, "after": after, "end": end}, handle)
    os.replace(marks + ".tmp", marks)


def hold(seconds: float = TIMEOUT_S) -> None:
    time.sleep(seconds)


def command(mode: str, *args: object) -> list[str]:
    """The argv that runs this script in ``mode`` (for tests: ``watch(command("grow", csv, ...))``)."""
    return [sys.executable, os.path.abspath(__file__), mode, *map(str, args)]


def read_marks(path: str | os.PathLike) -> dict:
    """The marks a child wrote (``begin``, ``after``, ``end``: sample indices)."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def main(argv: list[str]) -> None:
    mode = argv[0]
    if mode == "hold":
        keep = bytearray(int(argv[1]))  # bytearray(n) writes its zeros: the pages are resident
        open(argv[2], "w").close()
        hold()
        del keep
        return
    csv, marks = argv[1], argv[2]
    begin = rows(csv) + 1
    if mode == "grow":
        chunks, chunk_bytes = int(argv[3]), int(argv[4])
        keep = []
        seen = rows(csv)
        try:
            while chunks == 0 or len(keep) < chunks:
                seen = wait_rows(csv, seen + 1)
                keep.append(bytearray(chunk_bytes))
        except MemoryError:  # CHUNKS 0: at its limit; a sample taken while it holds it all, then exit 1
            settle(csv, marks, begin)
            sys.exit(1)
        settle(csv, marks, begin)
        if argv[5:] == ["hold"]:
            hold()
    elif mode == "plateau":
        keep = bytearray(int(argv[3]))
        settle(csv, marks, begin, samples=int(argv[4]))
    elif mode == "parent":
        signal = marks + ".kid"
        kid = subprocess.Popen([sys.executable, __file__, "hold", argv[3], signal])
        try:
            wait_file(signal)
            settle(csv, marks, begin)
        finally:
            kid.kill()
            kid.wait()
    else:
        sys.exit(f"_watched.py: unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
