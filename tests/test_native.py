"""heap_vs_native on a ctypes malloc leak, a Python list leak, and allocate-then-free churn."""
from __future__ import annotations

import ctypes
import platform

import pandas as pd
import pytest

from leakkit._errors import LeakkitError, WorkloadError
from leakkit.tracing.native import classify_growth, classify_readings, heap_vs_native, malloc_trim

MIB = 1024 * 1024
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.fixture
def native_leak():
    pointers: list[int] = []

    def leak():
        pointer = libc.malloc(MIB)
        ctypes.memset(pointer, 1, MIB)  # touched: resident
        pointers.append(pointer)

    yield leak
    for pointer in pointers:
        libc.free(pointer)


@pytest.fixture
def python_leak():
    kept: list = []
    yield lambda: kept.append([str(i) * 8 for i in range(12_000)])  # ~1 MiB of small objects
    kept.clear()


def test_a_ctypes_malloc_leak_is_native(native_leak):
    report = heap_vs_native(native_leak, calls=12)
    assert report.verdict == "native"
    assert report.native_bytes == pytest.approx(12 * MIB, rel=0.3)
    assert abs(report.heap_bytes) < MIB
    assert "native" in str(report) and "<table" in report._repr_html_()


def test_a_python_list_leak_is_python(python_leak):
    report = heap_vs_native(python_leak, calls=12)
    assert report.verdict == "python"
    assert report.heap_bytes > 8 * MIB
    # the plot carries the text's figures, and its heap line ends at the growth the text gives
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from leakkit._sizes import format_size

    ax = report.plot()
    per_call = format_size(report.heap_bytes_per_call, signed=True)
    assert per_call in str(report) and any(per_call in t.get_text() for t in ax.get_legend().get_texts())
    heap_line = next(line for line in ax.get_lines() if line.get_label().startswith("Python heap"))
    unit = ax.get_ylabel().rsplit("(", 1)[1].rstrip(")")
    divisor = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[unit]
    assert heap_line.get_ydata()[-1] * divisor == pytest.approx(report.heap_bytes)
    plt.close("all")


def test_allocate_then_free_is_retention_or_clean_and_trim_is_reported():
    pins = []

    def churn():
        scratch = [bytes(1000) for _ in range(20_000)]  # 20 MB in malloc-sized blocks
        pins.append(bytes(1000))  # allocated after them: pins the heap top, as live data does
        del scratch

    report = heap_vs_native(churn, calls=1, warmup=0)
    assert report.verdict in ("allocator retention", "clean")
    if GLIBC:
        assert report.trimmed_bytes is not None
        if report.verdict == "allocator retention":
            assert report.trimmed_bytes > report.tolerance_bytes
        assert report.readings["call"].iloc[-1] == -1


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_malloc_trim_gives_back_freed_native_memory():
    pointers = [libc.malloc(1024) for _ in range(20_000)]
    for pointer in pointers:
        ctypes.memset(pointer, 1, 1024)
    pin = libc.malloc(1024)
    for pointer in pointers:
        libc.free(pointer)
    try:
        assert malloc_trim() > 10 * MIB
    finally:
        libc.free(pin)


@pytest.mark.parametrize(
    ("heap", "process", "trimmed", "verdict"),
    [(10, 11, 0, "python"), (0, 10, 0, "native"), (0, 10, 9.5, "allocator retention"), (0, 0.5, None, "clean"),
     (2, 20, 0, "native"), (0, 10, None, "native")],
)
def test_classify_growth_on_numbers(heap, process, trimmed, verdict):
    scaled = None if trimmed is None else trimmed * MIB
    assert classify_growth(heap_bytes=heap * MIB, process_bytes=process * MIB, trimmed_bytes=scaled,
                           tolerance_bytes=MIB) == verdict


def test_classify_readings_uses_series_of_readings():
    frame = pd.DataFrame({"traced_bytes": [0, 1, 2, 3, 4, 5], "uss": [0, 3, 6, 9, 12, 15]}) * MIB
    assert classify_readings(frame) == "native"
    frame["traced_bytes"] = frame["uss"]
    assert classify_readings(frame) == "python"
    with pytest.raises(LeakkitError, match="column"):
        classify_readings(frame, heap_column="heap")


def test_bad_workloads_and_options_are_leakkit_errors():
    with pytest.raises(WorkloadError):
        heap_vs_native(lambda x: x)
    with pytest.raises(WorkloadError, match="ZeroDivisionError"):
        heap_vs_native(lambda: 1 / 0, calls=2)
    with pytest.raises(LeakkitError, match="calls"):
        heap_vs_native(lambda: None, calls=0)
    with pytest.raises(LeakkitError, match="tolerance"):
        heap_vs_native(lambda: None, tolerance="some")
