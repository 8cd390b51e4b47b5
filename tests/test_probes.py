"""Probes: each reading works, a probe that fails warns naming itself and leakkit carries on."""
from __future__ import annotations

import collections
import functools
import os
import sys
import time
import warnings

import psutil
import pytest

import leakkit
from leakkit import ProbeUnavailableWarning
from leakkit.probes import process as probes


@pytest.fixture(autouse=True)
def _forget_warnings():
    probes._warned.clear()
    yield
    probes._warned.clear()


def test_every_probe_reads_something_plausible():
    assert probes.blocks() > 1000
    assert probes.rss() > 1 << 20
    assert probes.fds() >= 3
    memory = probes.process_memory()
    assert memory.rss > 1 << 20 and memory.uss is not None and 0 < memory.uss <= memory.rss
    assert len(probes.gc_counts()) == 3 and probes.gc_collections() >= 0


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="no smaps_rollup here")
def test_the_rollup_reading_is_one_consistent_walk_that_agrees_with_psutil():
    import threading

    stop = threading.Event()

    def churn():  # another thread touching and freeing pages while we read
        while not stop.is_set():
            block = bytearray(8 << 20)
            block[::4096] = b"x" * len(block[::4096])
            del block

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        readings = [probes.process_memory() for _ in range(200)]
    finally:
        stop.set()
        worker.join()
    assert all(0 < m.uss <= m.rss and m.pss is not None and m.swap is not None for m in readings)
    ours, theirs = probes.smaps_rollup(), psutil.Process().memory_full_info()
    assert abs(ours.uss - theirs.uss) < 8 << 20 and abs(ours.pss - theirs.pss) < 8 << 20
    assert abs(ours.rss - theirs.rss) < 8 << 20


def test_a_gone_pid_is_no_such_process_and_a_zombie_is_left_to_psutil():
    import subprocess

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.01)
    assert probes.smaps_rollup(child.pid) in (None, probes.ProcessMemory(0, 0, 0, 0))
    child.wait()
    with pytest.raises(psutil.NoSuchProcess):
        probes.smaps_rollup(child.pid)


def test_cheap_probes_are_cheaper_than_the_smaps_reading():
    # relative, not absolute: blocks and RSS are read per call, smaps only at checkpoints
    def cost(func, n):
        t = time.perf_counter()
        for _ in range(n):
            func()
        return (time.perf_counter() - t) / n

    assert cost(probes.rss, 200) < cost(probes.process_memory, 20)


def test_rss_matches_psutil():
    assert abs(probes.rss() - psutil.Process().memory_info().rss) < 8 << 20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's and pymalloc's counts")
def test_the_python_heap_is_unknown_while_tracemalloc_hides_pymallocs_count_not_a_drop_to_malloc_alone():
    """While tracemalloc's hook sits over pymalloc, CPython's report says nothing; reading 0 made a
    monitored worker's python_heap fall by its whole small-object heap during an attach and jump back."""
    import subprocess
    import tracemalloc

    from leakkit.probes import malloc

    if tracemalloc.is_tracing():
        pytest.skip("tracemalloc already on")
    kept = [object() for _ in range(50_000)]
    small, total = malloc.pymalloc_in_use(), malloc.allocated_bytes()
    assert small > 50_000 * 16 and total > small
    tracemalloc.start()
    try:
        assert malloc.pymalloc_in_use() is None and malloc.allocated_bytes() is None
    finally:
        tracemalloc.stop()
    assert malloc.pymalloc_in_use() >= small - (1 << 20)
    del kept
    without = subprocess.run([sys.executable, "-c", "from leakkit.probes import malloc; print(malloc.pymalloc_in_use())"],
                             env={**os.environ, "PYTHONMALLOC": "malloc"}, capture_output=True, text=True)
    assert without.stdout.split() == ["0"], without.stderr  # no pymalloc: malloc holds everything


def test_traced_bytes_only_while_tracemalloc_is_on():
    import tracemalloc

    if tracemalloc.is_tracing():
        pytest.skip("tracemalloc already on")
    assert probes.traced_bytes() is None
    tracemalloc.start()
    try:
        start = probes.traced_bytes()
        kept = [bytearray(10_000) for _ in range(10)]
        assert probes.traced_bytes() - start >= 100_000
        del kept
    finally:
        tracemalloc.stop()


def test_fds_follow_open_files(tmp_path):
    before = probes.fds()
    handles = [open(tmp_path / f"f{i}", "w") for i in range(5)]  # noqa: SIM115
    try:
        assert probes.fds() - before == 5
    finally:
        for h in handles:
            h.close()


@pytest.mark.parametrize("rollup", [True, False], ids=["smaps_rollup", "psutil"])
def test_an_unavailable_probe_warns_once_by_name_and_tracing_carries_on(monkeypatch, rollup):
    def denied(self_or_pid=None):
        raise psutil.AccessDenied(os.getpid())

    monkeypatch.setattr(psutil.Process, "memory_full_info", denied)
    monkeypatch.setattr(probes, "smaps_rollup", denied if rollup else lambda pid=None: None)
    traced = leakkit.trace(lambda n: n, summaries=False, checkpoint_every=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(6):
            assert traced(i) == i
        report = traced.report()
    named = [w for w in caught if issubclass(w.category, ProbeUnavailableWarning)]
    assert len(named) == 1 and "'uss'" in str(named[0].message)
    assert traced.checkpoints["uss"].isna().all() and traced.checkpoints["rss"].notna().all()
    assert report.verdict in ("clean", "inconclusive")


def test_a_failing_type_summary_warns_and_tracing_carries_on(monkeypatch):
    import leakkit.probes.heap

    def broken(*args, **kwargs):
        raise RuntimeError("heap walk failed")

    monkeypatch.setattr(leakkit.probes.heap, "heap_summary", broken)
    with pytest.warns(ProbeUnavailableWarning, match="type summary"):
        traced = leakkit.trace(lambda n: n, checkpoint_every=2)
        for i in range(5):
            traced(i)
    assert traced.summaries.empty and len(traced.checkpoints) >= 3


def test_bounded_holders_finds_a_filling_cache_and_a_full_deque():
    @functools.lru_cache(maxsize=50)
    def cached(n):
        return [n]

    recent: collections.deque = collections.deque(maxlen=3)
    census = probes.bounded_census()
    for i in range(10):
        cached(i)
        recent.append([i])
    found = {h.description.split(" ")[0]: h for h in probes.bounded_holders(["list"], census)}
    lru = next(h for name, h in found.items() if "cached" in name)
    assert lru.gained == 10 and not lru.full and lru.explained["list"] >= 10
    deque_holder = found["deque(maxlen=3)"]
    assert deque_holder.full and deque_holder.explained["list"] == pytest.approx(3)


def test_bounded_holders_ignores_unbounded_containers():
    @functools.cache
    def cached(n):
        return [n]

    census = probes.bounded_census()
    keep = collections.deque()
    for i in range(10):
        cached(i)
        keep.append([i])
    assert not [h for h in probes.bounded_holders(["list"], census) if "cached" in h.description
                or h.description.startswith("deque")]
