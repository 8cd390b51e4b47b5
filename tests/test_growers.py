"""Every grower on its own, and bounds that something enforces (issue 20).

* Bounds read from the code that enforces them (leakkit/retention/enforced.py), on small modules
  written here and on the real caches of jinja2, SQLAlchemy, cachetools, urllib3 and ``re``; an
  attribute named ``capacity`` is declared, not a bound (``logging.handlers.MemoryHandler``).
* Each holder's own series, rate and verdict (leakkit/analysis/growers.py), and the judge on
  plain records: a leak beside a filling cache is the leak, a filling cache alone is not one.
* The MemoryHandler case end to end, with its ground truth checked without leakkit.
"""
from __future__ import annotations

import importlib.util
import logging
import logging.handlers
import re
import sys
import textwrap
import time
from typing import Any

import pytest

from leakkit.analysis.attribution import OUTSIDE
from leakkit.analysis.growers import grower_verdict, holder_series
from leakkit.engine.judge import judge
from leakkit.engine.record import BisectRecord, HolderRecord
from leakkit.retention import naming
from leakkit.retention.enforced import code_bound
from leakkit.retention.paths import Bound, holder_bound

CACHES = textwrap.dedent('''
    import collections

    DNS = {}
    MAX = 4


    def resolve(host):
        entry = DNS.get(host)
        if entry is None:
            if len(DNS) >= MAX:
                DNS.pop(next(iter(DNS)))
            entry = DNS[host] = [host]
        return entry


    TRIM = {}


    def trim(key):
        TRIM[key] = key
        if len(TRIM) > 50:
            for old in list(TRIM)[:10]:
                del TRIM[old]


    COND = {}


    def maybe(key, really):
        COND[key] = key
        if len(COND) > 5:
            if really:
                COND.clear()


    SHADOW = {}


    def shadow(key):
        SHADOW[key] = 1
        SHADOW_ = {}
        if len(SHADOW_) > 3:
            SHADOW_.clear()


    HELPED = {}


    def _evict_oldest(cache, keep):
        for key in list(cache)[:len(cache) - keep]:
            del cache[key]


    def remember(key):
        HELPED[key] = [key]
        if len(HELPED) > 20:
            _evict_oldest(HELPED, 10)


    UNCHECKED = []


    def add(item):
        UNCHECKED.append(item)


    def trim_unchecked():
        if len(UNCHECKED) > 5:
            UNCHECKED.pop(0)


    def memo(maxsize):
        def decorate(func):
            cache = {}

            def wrapper(*args):
                if args not in cache:
                    if len(cache) >= maxsize:
                        cache.pop(next(iter(cache)))
                    cache[args] = func(*args)
                return cache[args]
            return wrapper
        return decorate


    @memo(7)
    def slow(x):
        return [x]


    class Box:
        def __init__(self, capacity):
            self.capacity = capacity
            self.items = collections.OrderedDict()

        def put(self, key, value):
            self.items[key] = value
            if self._full():
                self._evict()

        def _full(self):
            return len(self.items) > self.capacity

        def _evict(self):
            self.items.popitem(last=False)


    class Liar:
        def __init__(self):
            self.capacity = 3
            self.items = []

        def add(self, item):
            self.items.append(item)
            if len(self.items) >= self.capacity:
                self.flush()

        def flush(self):
            if self.sink is not None:
                self.items.clear()

        sink = None
''')


@pytest.fixture(scope="module")
def caches(tmp_path_factory: Any) -> Any:
    path = tmp_path_factory.mktemp("growers") / "growers_caches.py"
    path.write_text(CACHES)
    spec = importlib.util.spec_from_file_location("growers_caches", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["growers_caches"] = module
    spec.loader.exec_module(module)
    for i in range(3):
        module.resolve(i)
        module.trim(i)
        module.maybe(i, False)
        module.shadow(i)
        module.slow(i)
        module.remember(i)
    for i in range(20):
        module.add(i)
    module.BOX = module.Box(5)
    module.BOX.put(1, 2)
    module.LIAR = module.Liar()
    module.LIAR.add(1)
    yield module
    sys.modules.pop("growers_caches", None)


def _bound(obj: Any) -> Bound | None:
    chain = naming.find_roots([obj], naming.ModuleIndex(), ignore=set(), deadline=time.perf_counter() + 10).get(id(obj))
    assert chain is not None
    return holder_bound(chain, deadline=time.perf_counter() + 10)


def test_a_hand_bounded_dict_reads_its_bound_from_the_code_that_evicts(caches: Any) -> None:
    bound = _bound(caches.DNS)
    assert bound is not None and bound.how == "code" and bound.enforced
    assert (bound.maxsize, bound.size) == (4, 3) and not bound.full
    assert bound.kind == "len(DNS) >= MAX" and "growers_caches.resolve (growers_caches.py:" in bound.where
    assert "bound of 4 enforced by growers_caches.resolve" in str(bound)


def test_a_trim_loop_under_the_size_test_is_a_bound(caches: Any) -> None:
    bound = _bound(caches.TRIM)
    assert bound is not None and bound.how == "code" and bound.maxsize == 50 and bound.slack == 1
    bound = _bound(caches.HELPED)  # the removal in a helper the cache is passed to
    assert bound is not None and bound.how == "code" and bound.maxsize == 20


def test_an_asyncio_queue_with_a_maxsize_is_bounded_by_its_type(caches: Any) -> None:
    import asyncio

    queue = asyncio.Queue(maxsize=7)
    queue.put_nowait([1])
    caches.QUEUE = queue
    try:
        bound = _bound(queue._queue)
    finally:
        del caches.QUEUE
    assert bound is not None and bound.how == "implementation" and (bound.maxsize, bound.size) == (7, 1)


@pytest.mark.parametrize("name", ["COND", "SHADOW", "UNCHECKED"])
def test_no_bound_without_an_unconditional_removal_of_that_holder_within_its_limit(caches: Any, name: str) -> None:
    """A removal under a further ``if``; a local of the same name; a list past the limit its
    trimming code tests (20 entries, trimmed only when something calls the trim, past 5)."""
    assert _bound(getattr(caches, name)) is None


def test_a_memoising_closure_and_an_object_whose_methods_evict(caches: Any) -> None:
    cache = caches.slow.__closure__[caches.slow.__code__.co_freevars.index("cache")].cell_contents
    bound = _bound(cache)
    assert bound is not None and bound.how == "code" and bound.maxsize == 7
    bound = _bound(caches.BOX.items)  # the test and the removal are in methods put() calls
    assert bound is not None and bound.how == "code" and bound.maxsize == 5 and "growers_caches.Box.put" in bound.where


def test_a_capacity_attribute_is_declared_not_a_bound(caches: Any) -> None:
    bound = _bound(caches.LIAR.items)
    assert bound is not None and bound.how == "declared" and not bound.enforced
    handler = logging.handlers.MemoryHandler(capacity=100)  # no target: flush() keeps the buffer
    caches.HANDLER = handler
    try:
        for i in range(150):
            handler.buffer.append(logging.LogRecord("x", logging.INFO, __file__, 1, "m %d", (i,), None))
        handler.flush()
        assert len(handler.buffer) == 150  # ground truth: nothing empties it
        bound = _bound(handler.buffer)
        assert bound is not None and not bound.enforced and bound.exceeded
        assert str(bound) == "declared MemoryHandler.capacity=100 (past it: growing), holding 150"
    finally:
        del caches.HANDLER


def _library_caches() -> list[tuple[str, Any, int]]:
    out = []
    jinja2 = pytest.importorskip("jinja2")
    env = jinja2.Environment(loader=jinja2.DictLoader({"a": "x"}))
    env.get_template("a")
    out += [("jinja2 mapping", lambda: (env, env.cache._mapping), 400), ("jinja2 queue", lambda: (env, env.cache._queue), 400)]
    cachetools = pytest.importorskip("cachetools")
    ttl, lru = cachetools.TTLCache(maxsize=20, ttl=600), cachetools.LRUCache(maxsize=30)
    ttl["a"] = lru["a"] = 1
    out += [("cachetools TTLCache", lambda: (ttl, ttl._Cache__data), 20), ("cachetools LRUCache", lambda: (lru, lru._Cache__data), 30)]
    util = pytest.importorskip("sqlalchemy.util")
    sql = util.LRUCache(10)
    sql["a"] = 1
    out.append(("sqlalchemy LRUCache", lambda: (sql, sql._data), 15))  # capacity + capacity * threshold
    urllib3 = pytest.importorskip("urllib3")
    pools = urllib3.PoolManager(num_pools=40)
    pools.connection_from_url("http://a.invalid/")
    out.append(("urllib3 PoolManager", lambda: (pools, pools.pools._container), 40))
    return out


def test_library_caches_are_bounded_by_their_own_code(caches: Any) -> None:
    for name, get, limit in _library_caches():
        owner, holder = get()
        caches.OWNER = owner
        try:
            bound = _bound(holder)
        finally:
            del caches.OWNER
        assert bound is not None and bound.how == "code" and bound.maxsize == limit, (name, bound)
    # the re module's cache: its bound is known, and its code says the same
    re.compile("leakkit-growers-(a|b)+")
    chain = naming.find_roots([re._cache], naming.ModuleIndex(), ignore=set(), deadline=time.perf_counter() + 10)
    found = code_bound(chain[id(re._cache)], deadline=time.perf_counter() + 10)
    assert found is not None and found.limit == re._MAXCACHE and found.source == "len(_cache) >= _MAXCACHE"


# -- each grower's own series and verdict ---------------------------------------------------------------
def test_a_holder_gets_its_share_of_each_maker_series() -> None:
    series = {"leak": [0, 100, 200, 300], "both": [0, 50, 100, 150]}
    made = {"leak": 300.0, "both": 75.0}  # all of leak's, half of both's
    placed = {"leak": 300.0, "both": 150.0}
    assert holder_series(made, series, placed, 4) == [0, 125, 250, 375]


def test_a_filling_bound_says_how_many_calls_fill_it_and_a_full_one_keeps_nothing_more() -> None:
    x = list(range(0, 61, 5))
    y = [100.0 * v for v in x]
    verdict, g, why, left = grower_verdict(x, y, floor=512, bound=Bound("code", 512, 62, how="code", where="f"),
                                           added=60, calls=60)
    assert verdict == "filling" and left == 450 and "about 450 more calls fill it" in why
    verdict, g, why, left = grower_verdict(x, y, floor=512, bound=Bound("lru_cache(maxsize)", 128, 128),
                                           added=60, calls=60)
    assert verdict == "plateau" and g.rate == 0.0 and left is None
    verdict, g, _, _ = grower_verdict(x, y, floor=512)
    assert verdict == "leak" and g.rate == pytest.approx(100.0)


def _holder(path: str, maker: str, made: dict, bound: Bound | None = None, added: int = 60) -> HolderRecord:
    holder = path.rsplit("[", 1)[0]
    return HolderRecord(path=path, holder=holder, root=holder.split(".")[0], kind="dict", old_len=2,
                        new_len=2 + added, made=made, objects=dict.fromkeys(made, added), side=None, bound=bound,
                        deep_bytes=None, deep_complete=False, how="grown", entry_makers={maker: added})


def _record(holders: list[HolderRecord], self_bytes: dict[str, list[float]]) -> BisectRecord:
    x = [float(v) for v in range(0, 61, 3)]
    total = [sum(s[i] for s in self_bytes.values()) for i in range(len(x))]
    return BisectRecord(
        planned_calls=60, calls=60, warmup=2, seconds=1.0, x=x, total_bytes=total, total_blocks=[t / 50 for t in total],
        rss=[0.0] * len(x), native_rss=[0.0] * len(x), native_malloc=[0.0] * len(x), self_bytes=self_bytes,
        self_blocks={k: [v / 50 for v in s] for k, s in self_bytes.items()}, incl_bytes={}, path_bytes={},
        rss_self={}, malloc_self={}, call_counts={k: 60 for k in self_bytes}, functions=list(self_bytes), sites={},
        holders=holders)


def _linear(x_rate: float) -> list[float]:
    return [x_rate * v for v in range(0, 61, 3)]


def test_the_leak_beside_a_filling_cache_is_the_leak_and_its_rate_is_its_own() -> None:
    dns = Bound("len(DNS) >= 512", 512, 62, how="code", where="svc.resolve (svc.py:9)")
    holders = [_holder("svc.DNS['h61']", "svc.resolve", {"svc.resolve": 96_000}, dns),  # the bigger one
               _holder("svc.CONTEXTS['r61']", "svc.open_context", {"svc.open_context": 6_000, "svc.handle": 54_000})]
    record = _record(holders, {"svc.resolve": _linear(1600), "svc.open_context": _linear(100),
                               "svc.handle": _linear(900), OUTSIDE: _linear(0)})
    report = judge(record)
    assert report.verdict == "leak" and report.culprit == "svc.open_context"
    assert report.retention[0] == "svc.CONTEXTS['r61']"
    rows = report.growers.set_index("holder")
    assert rows.loc["svc.CONTEXTS", "verdict"] == "leak" and rows.loc["svc.DNS", "verdict"] == "filling"
    assert rows.loc["svc.CONTEXTS", "bytes_per_call"] == pytest.approx(1000, rel=0.01)  # 100 + 900: its own
    assert rows.loc["svc.DNS", "bound_kind"] == "code" and rows.loc["svc.DNS", "calls_to_fill"] == 450
    assert list(report.growers["verdict"]) == ["leak", "filling"]  # the leak first
    text = " ".join(str(report).split())
    assert "svc.CONTEXTS keeps +1000 B per call" in text
    assert "total kept per call, all growers together (Python heap): +2.5 KiB" in text
    assert "bound of 512 enforced by svc.resolve" in text


def test_a_filling_cache_alone_is_not_a_leak() -> None:
    dns = Bound("len(DNS) >= 512", 512, 62, how="code", where="svc.resolve (svc.py:9)")
    record = _record([_holder("svc.DNS['h61']", "svc.resolve", {"svc.resolve": 96_000}, dns)],
                     {"svc.resolve": _linear(1600), OUTSIDE: _linear(0)})
    report = judge(record)
    assert report.verdict == "inconclusive" and report.culprit is None
    assert report.calls_to_decide == 450
    assert list(report.growers["verdict"]) == ["filling"]


def test_a_function_feeding_a_leak_and_a_bounded_cache_still_leaks() -> None:
    lru = Bound("lru_cache(maxsize)", 128, 62)
    holders = [_holder("svc.parse (lru_cache table)['ua']", "svc.handle", {"svc.handle": 40_000}, lru),
               _holder("svc.SEEN['r61']", "svc.handle", {"svc.handle": 20_000})]
    report = judge(_record(holders, {"svc.handle": _linear(1000), OUTSIDE: _linear(0)}))
    assert report.verdict == "leak" and report.culprit == "svc.handle"
    assert report.retention[0] == "svc.SEEN['r61']"


def test_a_declared_bound_does_not_bound() -> None:
    declared = Bound("MemoryHandler.capacity", 100, 186, how="declared")
    holder = _holder("svc.HANDLER.buffer[185]", "svc.audit", {"svc.audit": 120_000}, None, added=180)
    holder.declared = declared
    report = judge(_record([holder], {"svc.audit": _linear(2000), OUTSIDE: _linear(0)}))
    assert report.verdict == "leak" and report.culprit == "svc.audit"
    assert "declared MemoryHandler.capacity=100 (past it: growing)" in " ".join(str(report).split())


# -- the MemoryHandler case end to end ------------------------------------------------------------------
AUDIT = textwrap.dedent('''
    import itertools, logging, logging.handlers

    HANDLER = logging.handlers.MemoryHandler(capacity=100)  # no target: its buffer is never emptied
    AUDIT = logging.getLogger("growers.audit")
    AUDIT.addHandler(HANDLER)
    AUDIT.propagate = False
    AUDIT.setLevel(logging.INFO)
    _seq = itertools.count()


    def audit(order):
        AUDIT.info("order %s placed by %s for %s", order, f"user-{order % 977}", f"{order * 3.5:.2f} EUR")


    def workload():
        n = next(_seq)
        for i in range(3):
            audit(3 * n + i)
''')

RUN_AUDIT = r"""
import itertools, json, sys
sys.path.insert(0, sys.argv[1])
import growers_audit as m
for _ in range(62):  # ground truth first, without leakkit: 186 records in a buffer of "capacity" 100
    m.workload()
truth = {"records": len(m.HANDLER.buffer), "capacity": m.HANDLER.capacity}
m.HANDLER.flush()  # without a target, flush() keeps them
truth["after_flush"] = len(m.HANDLER.buffer)
truth["leakkit_imported"] = "leakkit" in sys.modules
m.HANDLER.buffer.clear()
m._seq = itertools.count()
import leakkit
from leakkit.frontends.check import check
report = leakkit.bisect(m.workload, targets=[m], calls=60, progress=False)
traced = check(m.workload, calls=50, progress=False)
print("AUDIT-JSON " + json.dumps({"truth": truth, "verdict": report.verdict, "culprit": report.culprit,
      "retention": report.retention[:1], "text": " ".join(str(report).split()), "trace": traced.verdict,
      "trace_growers": [[r.holder, r.verdict, r.bound_kind] for r in traced.growers.itertuples()],
      "trace_text": str(traced)}))
"""


def test_memoryhandler_without_a_target_is_a_leak_past_its_capacity(tmp_path: Any) -> None:
    """In a fresh interpreter (a test runner's log capture would hold the same records)."""
    import json
    import subprocess

    (tmp_path / "growers_audit.py").write_text(AUDIT)
    proc = subprocess.run([sys.executable, "-c", RUN_AUDIT, str(tmp_path)], capture_output=True, text=True,
                          timeout=600, env={**__import__("os").environ, "MPLBACKEND": "Agg"})
    lines = [line for line in proc.stdout.splitlines() if line.startswith("AUDIT-JSON ")]
    assert lines, proc.stderr[-3000:]
    got = json.loads(lines[-1][len("AUDIT-JSON "):])
    assert got["truth"] == {"records": 186, "capacity": 100, "after_flush": 186, "leakkit_imported": False}
    assert got["verdict"] == "leak" and got["culprit"] == "growers_audit.audit", got["text"]
    assert got["retention"][0].startswith("growers_audit.HANDLER.buffer["), got["text"]
    assert "declared MemoryHandler.capacity=100 (past it: growing)" in got["text"]
    assert got["trace"] == "leak", got["trace_text"]
    assert ["growers_audit.HANDLER.buffer", "leak", "declared"] in got["trace_growers"], got["trace_text"]


def test_rss_beyond_the_heap_is_no_native_leak_where_mallocs_count_reads_flat() -> None:
    # mako compiling a fresh template module per call under tracemalloc: RSS beyond the traced heap
    # rose ~17 KiB a call while malloc's bytes in use did not (untraced, the process stays flat)
    from dataclasses import replace

    record = _record([], {"mailer.render": [0.0] * 21, OUTSIDE: [0.0] * 21})
    rss = _linear(60_000)  # 60 calls: over the 768 KiB floor of RSS
    flat = replace(record, native_rss=rss, rss_self={"mailer.render": rss}, malloc_self={"mailer.render": [0.0] * 21})
    report = judge(flat)
    assert not report.native_leak and report.verdict != "leak" and report.culprit is None, str(report)
    assert any("malloc's bytes in use do not grow" in note for note in report.notes), report.notes
    # the same RSS with malloc's count growing with it is a native leak, named
    grown = replace(flat, native_malloc=_linear(56_000), malloc_self={"mailer.render": _linear(56_000)})
    report = judge(grown)
    assert report.native_leak and report.verdict == "leak" and report.culprit == "mailer.render", str(report)
    # and where malloc cannot be read (musl), RSS is the witness
    unread = replace(flat, native_malloc=[float("nan")] * 21)
    assert judge(unread).native_leak
