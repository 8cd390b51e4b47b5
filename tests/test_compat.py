"""What differs between CPython 3.10-3.13 (leakkit._compat), checked on the interpreter running.

`make test` runs this file on every supported CPython the machine has: each test states the
behaviour expected of that version, and checks the ground truth without leakkit where it can.
"""
from __future__ import annotations

import gc
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import types

import pytest

import leakkit
from leakkit import _compat
from leakkit.probes import process as probes
from leakkit.retention import paths as retention


def _run(source: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``source`` in a fresh interpreter (this one): a hang fails the test instead of the run."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(source)], capture_output=True, text=True,
                          timeout=timeout)


# -- the permanent generation and bisect's freeze ------------------------------------------------
def test_the_interpreters_own_frozen_objects_are_told_from_a_users() -> None:
    proc = _run("""
        import gc
        from leakkit import _compat
        start = gc.get_freeze_count()
        print(start, _compat.interpreter_frozen())
        assert _compat.freeze() is True          # nothing a user froze: bisect may freeze
        gc.unfreeze()
        gc.freeze()                              # now a user froze the heap
        n = gc.get_freeze_count()
        assert _compat.freeze() is False and gc.get_freeze_count() == n
        print("ok")
    """)
    assert proc.returncode == 0, proc.stderr
    start, own = map(int, proc.stdout.split()[:2])
    assert start == own  # 3.12: its static types' immortal tuples; 0 elsewhere
    if sys.version_info[:2] == (3, 12):
        assert own > 100
    else:
        assert own == 0


def _growing_workload():
    kept: list = []

    def workload() -> None:
        kept.append(bytearray(256))

    return workload


def test_bisect_freezes_the_warmed_up_heap_on_every_version() -> None:
    gc.collect()
    if gc.get_freeze_count() != _compat.interpreter_frozen():
        pytest.skip("something in this session froze objects")
    seen: list[int] = []
    workload = _growing_workload()

    def probe() -> None:
        seen.append(gc.get_freeze_count())
        workload()

    before = gc.get_freeze_count()
    leakkit.bisect(probe, targets=[probe], calls=12, warmup=1)
    assert max(seen[1:]) > before + 1000  # the warmed-up heap was frozen during the run
    assert gc.get_freeze_count() == 0  # and unfrozen after it (3.12's immortals included)


def test_bisect_respects_a_users_own_freeze() -> None:
    theirs = [[i] for i in range(1000)]  # tracked objects the user's freeze holds
    gc.collect()
    gc.freeze()  # what a pre-fork server does before starting workers
    try:
        assert not any(o is theirs for o in gc.get_objects())  # the permanent generation is not listed
        report = leakkit.bisect(_growing_workload(), targets=[sys.modules[__name__]], calls=12, warmup=1)
        assert not any(o is theirs or o is theirs[0] for o in gc.get_objects())  # none of theirs thawed
        assert report.verdict in {"leak", "inconclusive", "plateau"}
    finally:
        gc.unfreeze()


# -- CPython gh-122695: gc.get_referents of _asyncio's module (3.12.0-3.12.5) ----------------------
def test_the_affected_versions_are_named() -> None:
    assert _compat.MODULE_REFERENTS_UNSAFE == ((3, 12, 0) <= sys.version_info[:3] < (3, 12, 6))


def test_module_referents_never_reach_asyncios_free_list() -> None:
    import _asyncio

    assert _compat.module_dict(_asyncio) is vars(_asyncio)
    refs = _compat.referents(_asyncio, [1])
    if _compat.MODULE_REFERENTS_UNSAFE:
        assert not any(type(r).__name__ == "FutureIter" for r in refs)
        assert vars(_asyncio) in refs


ASYNC_THEN_EVERYTHING = """
    import asyncio, gc, sys, time
    import leakkit, leakkit.probes.heap as heap

    async def fill_the_free_list():      # freed future iterators go to _asyncio's free list
        loop = asyncio.get_running_loop()
        for _ in range(100):
            f = loop.create_future()
            loop.call_soon(f.set_result, 1)
            await f

    CONTEXT = {}

    async def workload():                # a per-task context kept forever
        await fill_the_free_list()
        CONTEXT[id(asyncio.current_task())] = bytearray(512)

    asyncio.run(fill_the_free_list())
    heap._heapscan = None                # the pure-Python heap summary (no C extension)
    heap.heap_summary()
    gc.collect()
    print("heap_summary ok", flush=True)
    module = sys.modules[__name__]
    report = leakkit.bisect(workload, targets=[module], calls=12, warmup=1, freeze=False)
    gc.collect()
    print("bisect ok", report.verdict, flush=True)
    with leakkit.monitor(sys.argv[1], interval=0.05) as mon:
        mon.snapshot("after asyncio")        # type summary and reference paths to growing types
    gc.collect()
    print("done", flush=True)
"""


def test_no_leakkit_call_after_asyncio_use_hangs_the_collector(tmp_path) -> None:
    # Ground truth first: on the affected versions the bare CPython sequence really hangs.
    bare = """
        import asyncio, gc, _asyncio
        loop = asyncio.new_event_loop()
        for _ in range(3):
            it = iter(loop.create_future()); del it
        evil = gc.get_referents(_asyncio); del evil
        gc.collect()
        print("collected")
    """
    try:
        hung = _run(bare, timeout=15).returncode != 0
    except subprocess.TimeoutExpired:
        hung = True
    assert hung == _compat.MODULE_REFERENTS_UNSAFE
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(ASYNC_THEN_EVERYTHING), str(tmp_path / "m.csv")],
                          capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "bisect ok" in proc.stdout and "done" in proc.stdout


# -- re's compiled-pattern caches ----------------------------------------------------------------
def test_both_re_caches_have_their_own_bounds() -> None:
    re.compile("leakkit-compat-(a|b)+")
    bound = retention.bound_of(re._cache)
    assert bound is not None and bound.maxsize == re._MAXCACHE == 512
    described = probes._bound_of(re._cache)
    assert described is not None and described[2] == re._MAXCACHE
    if sys.version_info >= (3, 12):
        assert re._MAXCACHE2 == 256 and len(re._cache2) <= 256
        bound = retention.bound_of(re._cache2)
        assert bound is not None and bound.maxsize == 256 and bound.size == len(re._cache2)
        assert probes._bound_of(re._cache2)[2] == 256
    else:
        assert not hasattr(re, "_cache2")


# -- the optional C extension ----------------------------------------------------------------------
def _compiler() -> str | None:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(cc)


@pytest.mark.skipif(_compiler() is None, reason="no C compiler: leakkit installs its pure-Python path")
def test_the_c_extension_is_built_where_a_compiler_is() -> None:
    # Building it is optional (setuptools drops it silently on a compile error): a machine that
    # has a compiler must have it, or a C API change went unnoticed.
    import leakkit.probes._containerscan as growth
    import leakkit.probes._heapscan as scan
    import leakkit.probes._stackcut as cut

    assert callable(scan.scan) and callable(scan.group_traces) and callable(cut.call_cut)
    assert callable(growth.sizes) and callable(growth.grown)
    assert hasattr(growth, "managed_traceback") == (sys.version_info[:2] == (3, 11))


@pytest.mark.skipif(_compiler() is None, reason="no C compiler")
@pytest.mark.parametrize("name", ["_heapscan.c", "_containerscan.c", "_stackcut.c"])
def test_the_c_extension_compiles_without_warnings(tmp_path, name) -> None:
    source = os.path.join(os.path.dirname(leakkit.__file__), "probes", name)
    include = sysconfig.get_paths()["include"]
    proc = subprocess.run([_compiler(), "-fsyntax-only", "-Wall", "-Werror=implicit-function-declaration",
                           "-Wdeprecated-declarations", f"-I{include}", source],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr, proc.stderr


def test_module_type_subclasses_count_as_modules() -> None:
    class Lazy(types.ModuleType):
        def __getattr__(self, name):  # a lazy module: any attribute read imports something
            raise AssertionError("leakkit ran a module's __getattr__")

    lazy = Lazy("lazy")
    assert _compat.module_dict(lazy) is lazy.__dict__
    assert isinstance(_compat.referents(lazy), list)


# -- interpreter caches that read as growth ----------------------------------------------------------
def test_settle_drops_the_attribute_names_the_type_cache_keeps() -> None:
    class Holder:
        value = 1

    name = "".join(["val", "ue"])  # a fresh, non-interned string, as C code's lookups make
    before = sys.getrefcount(name)
    getattr(Holder, name)
    assert sys.getrefcount(name) > before  # ground truth: the type cache holds the name itself
    _compat.settle()
    assert sys.getrefcount(name) == before


@pytest.mark.skipif(sys.version_info >= (3, 11), reason="only 3.10 builds an opcache on a function's 1024th run")
def test_leakkits_per_call_readings_have_their_opcache_before_anything_is_measured() -> None:
    def grows_when_run(function, runs: int) -> int:
        size = sys.getsizeof(function.__code__)
        for _ in range(runs):
            function()
        return sys.getsizeof(function.__code__) - size

    def fresh() -> int:
        return len("x")

    assert grows_when_run(fresh, 1100) > 0  # ground truth: 3.10 allocates it mid-way
    for reading in (probes.rss, probes.blocks, probes.traced_bytes):
        assert grows_when_run(reading, 1100) == 0, reading.__name__
