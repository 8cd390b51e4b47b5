"""A document converter that makes a scratch directory per job with ``tempfile.mkdtemp`` and
registers its removal with ``atexit.register(shutil.rmtree, path, True)`` "to be safe", instead of
removing it when the job ends.

Real leak (stdlib). Each ``atexit.register`` keeps the callback and its arguments (the path
string, the options) in the interpreter's atexit list until the process exits: nothing in Python
refers to them, and the directories pile up on disk too. The fix uses
``tempfile.TemporaryDirectory()`` as a context manager.
"""
import atexit
import itertools
import os
import shutil
import sys
import tempfile

_seq = itertools.count()
ROOT = tempfile.mkdtemp(prefix="rw28-")
atexit.register(shutil.rmtree, ROOT, True)


def convert(job: int, text: str) -> int:
    scratch = tempfile.mkdtemp(prefix=f"job{job}-", dir=ROOT)
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    path = os.path.join(scratch, "in.txt")
    with open(path, "w") as f:
        f.write(text)
    return os.path.getsize(path)


def convert_fixed(job: int, text: str) -> int:
    with tempfile.TemporaryDirectory(prefix=f"job{job}-", dir=ROOT) as scratch:
        path = os.path.join(scratch, "in.txt")
        with open(path, "w") as f:
            f.write(text)
        return os.path.getsize(path)


def workload():
    convert(next(_seq), "hello " * 20)


def workload_fixed():
    convert_fixed(next(_seq), "hello " * 20)


def release():
    atexit._clear()
    atexit.register(shutil.rmtree, ROOT, True)


TARGETS = [sys.modules[__name__], tempfile, shutil]
EXPECT = {"verdict": ["leak"], "culprit": ["convert", "tempfile.mkdtemp"], "root": ["atexit"]}
TRUTH = {"kind": "leak", "calls": 200, "min_bytes_per_call": 150, "release": "release"}
