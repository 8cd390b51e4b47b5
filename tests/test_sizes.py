"""Bytes kept per call are the bytes kept, whichever allocator holds them.

Each workload keeps objects of a known size per call (``sys.getsizeof``, which counts a
buffer's allocation with its object, plus the 8-byte slot in the list that keeps them): small
objects in pymalloc's blocks, blocks over 512 bytes and bytearrays that go to malloc, array.array
and numpy buffers. trace, the ``%leakcheck`` magic and heap_vs_native must report that rate
within 10%. Ground truth is checked without leakkit first: the sizes are what Python says.
"""
from __future__ import annotations

import array
import platform
import sys

import numpy as np
import pytest

import leakkit
from leakkit.probes import malloc as _malloc

GLIBC = platform.libc_ver()[0] == "glibc"
SLOT = 8  # one list entry per kept object (amortized over-allocation aside)

# name -> (make one call's objects, objects per call); sizes come from sys.getsizeof
KINDS = {
    "small objects (pymalloc)": (lambda: [bytes(95) for _ in range(10)], 10),  # 128-byte blocks
    "large blocks (> 512 B)": (lambda: [bytes(1967)], 1),
    "bytearray 64 KiB": (lambda: [bytearray(64 << 10)], 1),
    "bytearray 1 MiB": (lambda: [bytearray(1 << 20)], 1),
    "array.array": (lambda: [array.array("d", bytes(8 * 1000))], 1),
    "numpy buffer": (lambda: [np.zeros(10_000)], 1),
}
CALLS = {"bytearray 1 MiB": 40}


def truth(name: str) -> float:
    """Bytes one call keeps, measured on the objects themselves (no leakkit involved)."""
    make, _ = KINDS[name]
    objects = make()
    return float(sum(sys.getsizeof(o) + SLOT for o in objects))


def workload(name: str):
    make, _ = KINDS[name]
    kept: list = []

    def keep() -> None:
        kept.extend(make())

    keep.__qualname__ = keep.__name__ = "keep_" + name.split()[0]
    return keep, kept


def test_ground_truth_sizes_are_what_the_objects_say():
    assert truth("small objects (pymalloc)") == 10 * (128 + SLOT)
    assert truth("bytearray 64 KiB") >= 64 << 10
    assert truth("numpy buffer") >= 80_000  # an array that owns its data counts it


@pytest.mark.skipif(not GLIBC, reason="malloc's in-use count (mallinfo2) is glibc's")
def test_allocated_bytes_reads_every_allocator():
    before = _malloc.allocated_bytes()
    kept = [bytearray(1 << 20) for _ in range(8)] + [np.ones(1 << 17)] + [bytes(95) for _ in range(10_000)]
    grown = _malloc.allocated_bytes() - before
    expected = 8 * (1 << 20) + (1 << 20) + 10_000 * 128
    assert grown == pytest.approx(expected, rel=0.05)
    del kept


@pytest.mark.skipif(not GLIBC, reason="bytes from every allocator need glibc's mallinfo2")
@pytest.mark.parametrize("name", list(KINDS))
def test_trace_reports_the_bytes_each_call_keeps(name):
    keep, kept = workload(name)
    traced = leakkit.trace(keep, summaries=False)
    try:
        for _ in range(CALLS.get(name, 80)):
            traced()
        report = traced.report()
    finally:
        traced.stop()
        kept.clear()
    assert report.verdict == "leak", str(report)
    assert report.bytes_source.startswith("pymalloc")
    assert report.bytes_per_call == pytest.approx(truth(name), rel=0.10), str(report)
    text = str(report)
    from leakkit._sizes import format_size

    assert format_size(report.bytes_per_call, signed=True) in text  # the text shows the same figure


@pytest.mark.parametrize("name", list(KINDS))
def test_heap_vs_native_reports_the_bytes_each_call_keeps(name):
    keep, kept = workload(name)
    try:
        report = leakkit.heap_vs_native(keep, calls=CALLS.get(name, 40), trim=False)
    finally:
        kept.clear()
    assert report.heap_bytes_per_call == pytest.approx(truth(name), rel=0.10), str(report)
    assert report.verdict in ("python", "clean")  # all of it is the Python heap's (numpy's buffers too)


@pytest.fixture(scope="module")
def ip():
    pytest.importorskip("IPython")
    from IPython.testing.globalipapp import get_ipython, start_ipython

    shell = start_ipython() or get_ipython()  # one shell per process: another module may have started it
    shell.run_line_magic("load_ext", "leakkit")
    return shell


@pytest.mark.skipif(not GLIBC, reason="bytes from every allocator need glibc's mallinfo2")
@pytest.mark.parametrize("name", ["small objects (pymalloc)", "bytearray 64 KiB", "numpy buffer"])
def test_leakcheck_magic_reports_the_bytes_each_call_keeps(ip, name):
    from IPython.utils.capture import capture_output

    keep, kept = workload(name)
    ip.user_ns["keep_for_sizes"] = keep
    try:
        with capture_output():
            report = ip.run_line_magic("leakcheck", "-q -o -n 60 keep_for_sizes()")
    finally:
        kept.clear()
        ip.user_ns.pop("keep_for_sizes", None)
    assert report.verdict == "leak", str(report)
    assert report.bytes_per_call == pytest.approx(truth(name), rel=0.10), str(report)
