"""bisect on the kinds of code real libraries are made of (issue 9's failure classes), in-process.

Each test builds the smallest module that has the property (classes that refer to each other, a
mock held by a global, a weak-reference cache, memory held from C) and checks the ground truth
without leakkit first where the property is about memory.
"""
from __future__ import annotations

import ctypes
import gc
import sys
import time
import types
import weakref

import pytest

import leakkit
from leakkit.probes import containers
from leakkit.retention import holders, naming


def make_module(name: str, source: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__file__ = f"/virtual/{name}.py"
    sys.modules[name] = module
    exec(compile(source, f"/virtual/{name}.py", "exec"), module.__dict__)
    return module


@pytest.fixture
def cleanup():
    names: list[str] = []
    yield names
    for name in names:
        sys.modules.pop(name, None)


def bisect(module: types.ModuleType, **options):
    options.setdefault("calls", 30)
    options.setdefault("progress", False)
    return leakkit.bisect(module.workload, targets=options.pop("targets", [module]), **options)


# -- 1. collecting targets -----------------------------------------------------------------------
def test_classes_that_refer_to_each_other_are_collected_once(cleanup):
    cleanup.append("lk_mutual")
    module = make_module("lk_mutual", '''
class A:
    def run(self):
        return 1
class B:
    partner = A
    def run(self):
        return 2
A.partner = B
A.Inner = B
B.Inner = A
KEPT = []
def workload():
    KEPT.append(A().run() + B().run())
''')
    report = bisect(module)
    assert {"lk_mutual.A.run", "lk_mutual.B.run"} <= set(report.suspects["function"])


def test_a_metaclass_that_forbids_setattr_is_still_a_target_and_left_as_it_was(cleanup):
    cleanup.append("lk_frozen")
    module = make_module("lk_frozen", '''
class Frozen(type):
    def __setattr__(cls, name, value):
        raise AttributeError(f"{cls.__name__} is frozen")
class Service(metaclass=Frozen):
    def handle(self, n):
        return n
class Later:
    def run(self):
        return 1
KEPT = []
def workload():
    KEPT.append(str(Service().handle(1)) * 20)
    Later().run()
''')
    before = {cls: dict(vars(cls)) for cls in (module.Service, module.Later)}
    before_module = dict(vars(module))
    report = bisect(module)
    assert report.verdict == "leak" and report.culprit == "lk_frozen.workload"
    for cls, raw in before.items():
        assert dict(vars(cls)) == raw
    assert {k: v for k, v in vars(module).items() if k in before_module} == before_module


def test_an_attribute_the_workload_replaces_is_left_as_the_workload_set_it(cleanup):
    cleanup.append("lk_replaced")
    module = make_module("lk_replaced", '''
def helper():
    return 1
def replacement():
    return 2
def workload():
    global helper
    helper()
    helper = replacement
''')
    bisect(module, calls=12)
    assert module.helper is module.replacement


def test_a_c_extension_module_is_a_target(cleanup):
    import _json
    import json

    cleanup.append("lk_uses_json")
    module = make_module("lk_uses_json", '''
import json
KEPT = []
def workload():
    KEPT.append(json.dumps({"n": len(KEPT), "body": "x" * 50}))
''')
    before = dict(vars(_json))
    report = bisect(module, targets=[module, json, _json])
    assert report.verdict == "leak"
    assert report.culprit in ("lk_uses_json.workload", "json.dumps")  # json.dumps makes the string kept
    assert dict(vars(_json)) == before


# -- 2. walking never runs user code -------------------------------------------------------------
def test_a_mock_held_by_a_global_is_walked_without_growing(cleanup):
    from unittest import mock

    cleanup.append("lk_mocked")
    module = make_module("lk_mocked", '''
from unittest import mock
CLIENT = mock.MagicMock()
SENT = []
def workload():
    SENT.append(("payload", len(SENT)) * 3)
''')
    children = len(module.CLIENT._mock_children)
    calls = len(module.CLIENT.mock_calls)
    report = bisect(module)
    assert report.verdict == "leak" and any("SENT" in p for p in report.retention[:1])
    assert len(module.CLIENT._mock_children) == children
    assert len(module.CLIENT.mock_calls) == calls
    assert isinstance(module.CLIENT, mock.MagicMock)


def test_proxies_whose_attributes_run_code_are_never_touched(cleanup):
    cleanup.append("lk_proxy")
    module = make_module("lk_proxy", '''
TOUCHED = []
class Lazy:
    def __getattr__(self, name):
        TOUCHED.append(name)
        return Lazy()
    def __getattribute__(self, name):
        if name not in ("__class__",):
            object.__getattribute__(self, "__dict__")
        return object.__getattribute__(self, name)
    @property
    def __class__(self):
        TOUCHED.append("__class__")
        return dict
    def __len__(self):
        TOUCHED.append("__len__")
        return 0
PROXY = Lazy()
CACHE = {}
def workload():
    CACHE[len(CACHE)] = ["entry"] * 4
''')
    report = bisect(module)
    assert report.verdict == "leak" and any("CACHE" in p for p in report.retention[:1])
    assert module.TOUCHED == []


# -- 4. the standing heap does not lead the search -----------------------------------------------
def test_a_big_index_beside_the_leak_does_not_hide_the_root(cleanup):
    cleanup.append("lk_big_index")
    module = make_module("lk_big_index", '''
INDEX = [{"id": i, "name": f"user-{i}"} for i in range(150_000)]
AUDIT = []
def audit(n):
    AUDIT.append(f"request {n}")
_n = [0]
def workload():
    _n[0] += 1
    audit(_n[0])
''')
    report = bisect(module)
    assert report.verdict == "leak" and report.culprit == "lk_big_index.audit"
    assert report.retention[0].startswith("lk_big_index.AUDIT[")


# -- 5. roots spelled as a person types them -----------------------------------------------------
def test_dunder_module_registries_are_roots(cleanup, monkeypatch):
    import warnings

    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    monkeypatch.setattr(warnings, "filters", list(warnings.filters))
    cleanup.append("lk_warns")
    module = make_module("lk_warns", '''
import warnings
warnings.filterwarnings("default", message="slow request", category=RuntimeWarning)
def quiet(*args, **kwargs):
    pass
warnings.showwarning = quiet
_n = [0]
def check(n):
    warnings.warn(f"slow request {n}", RuntimeWarning)   # "default": each new text is kept in the registry
def workload():
    _n[0] += 1
    check(_n[0])
''')
    report = bisect(module)
    assert report.verdict == "leak"
    assert any("__warningregistry__" in p for p in report.retention[:3]), report


def test_a_registry_is_named_by_its_defining_module_not_a_reimport(cleanup):
    cleanup += ["lk_registry_owner", "lk_registry_user"]
    make_module("lk_registry_owner", '''
class Registry:
    def __init__(self):
        self.handlers = []
REGISTRY = Registry()
''')
    user = make_module("lk_registry_user", '''
from lk_registry_owner import REGISTRY as registry
import lk_registry_owner as owner_alias
def on_request(n):
    registry.handlers.append(lambda: n)
_n = [0]
def workload():
    _n[0] += 1
    on_request(_n[0])
''')
    report = bisect(user)
    assert report.retention[0].startswith("lk_registry_owner.REGISTRY.handlers["), report


# -- 6. the culprit made what the holder keeps -----------------------------------------------------
def test_a_module_under_an_alias_is_named_by_its_own_name(cleanup):
    # toolz's tlz package puts toolz's modules in sys.modules under tlz.* names too: a registry in
    # toolz._signatures must read toolz._signatures.signatures, whichever name came first
    cleanup.extend(["lk_alias_first", "lk_aliased_mod"])
    module = types.ModuleType("lk_aliased_mod")
    sys.modules["lk_alias_first"] = module
    exec("SEEN = {}\ndef workload():\n    SEEN[len(SEEN)] = ('x', len(SEEN)) * 4\n", module.__dict__)
    sys.modules["lk_aliased_mod"] = module
    report = bisect(module, calls=30)
    assert report.verdict == "leak"
    assert str(report.retention[0]).startswith("lk_aliased_mod.SEEN["), report.retention


def test_a_module_whose_namespace_an_alias_package_copied_is_named_by_its_own_name(cleanup):
    # what toolz's tlz really does (0.12.1, tlz/_build_tlz.py): a module object of its own under
    # tlz.*, its dict updated from toolz's module, so both dicts bind the same registry; the alias's
    # name is the shorter, and the search may meet it first
    cleanup.extend(["lk_longer_original_mod", "lk_a", "lk_alias_user"])
    original = make_module("lk_longer_original_mod", "SEEN = {}\ndef note(n):\n    SEEN[n] = ('x', n) * 4\n")
    alias = types.ModuleType("lk_a")
    alias.__dict__.update({k: v for k, v in original.__dict__.items() if k not in ("__name__", "__spec__")})
    sys.modules["lk_a"] = alias
    assert alias.SEEN is original.SEEN and alias.__name__ == "lk_a" and alias.__file__ == original.__file__
    user = make_module("lk_alias_user", "import lk_a\n_n = [0]\ndef workload():\n    _n[0] += 1\n    lk_a.note(_n[0])\n")
    original.note(-1)
    chains = naming.find_roots([original.SEEN[-1]], naming.ModuleIndex(), ignore=set(), deadline=time.perf_counter() + 30)
    assert [chain[0].name for chain in chains.values()] == ["lk_longer_original_mod"]  # read without the run
    report = bisect(user, calls=30)
    assert report.verdict == "leak"
    assert str(report.retention[0]).startswith("lk_longer_original_mod.SEEN["), report.retention


def test_weak_reference_side_structures_are_not_blamed(cleanup):
    cleanup.append("lk_side")
    module = make_module("lk_side", '''
import weakref
SEEN = weakref.WeakSet()
SESSIONS = []
class Session:
    def __init__(self, n):
        self.n = n
def track(session):
    SEEN.add(session)
    for _ in range(3):
        weakref.ref(session)
def open_session(n):
    s = Session(n)
    SESSIONS.append(s)
    return s
_n = [0]
def workload():
    _n[0] += 1
    track(open_session(_n[0]))
''')
    report = bisect(module)
    assert report.verdict == "leak", report
    assert report.culprit in ("lk_side.open_session", "lk_side.Session.__init__")
    assert report.retention[0].startswith("lk_side.SESSIONS[")


# -- 7. growth that stops later is not a leak ----------------------------------------------------
def test_a_cache_that_fills_for_hundreds_of_calls_is_not_a_leak(cleanup):
    cleanup.append("lk_glyphs")
    module = make_module("lk_glyphs", '''
import random
GLYPHS = {}
_rng = random.Random(7)
def glyph(ch):
    if ch not in GLYPHS:
        GLYPHS[ch] = [ch] * 40
    return GLYPHS[ch]
def render(text):
    return [glyph(c) for c in text]
def workload():
    render("".join(chr(0x4E00 + int(_rng.paretovariate(1.2)) % 400) for _ in range(8)))
''')
    # ground truth: the cache settles (at most 400 glyphs)
    report = bisect(module, calls=60)
    assert report.verdict != "leak", report


def test_a_full_lru_cache_replacing_entries_others_hold_is_not_a_leak(cleanup):
    # typing's special forms, re.compile and many libraries memoize with a bounded lru_cache that
    # the imports before the workload already filled: each new entry evicts an old one whose value
    # something else still holds, so memory grows for maxsize calls with the cache's length flat.
    cleanup.append("lk_full_lru")
    module = make_module("lk_full_lru", '''
import functools
@functools.lru_cache(maxsize=96)
def shape(key):
    return [key] * 8
HELD = [shape(("boot", i)) for i in range(96)]  # the cache is full before the workload runs
_n = [0]
def workload():
    _n[0] += 1
    shape(("request", _n[0]))
''')
    report = bisect(module, calls=40)
    assert report.verdict in ("plateau", "inconclusive"), report
    assert any("shape" in p and "lru" in p for p in map(str, report.retention[:2])), report


def test_dead_weak_references_awaiting_a_prune_are_not_a_leak(cleanup):
    cleanup.append("lk_prune")
    module = make_module("lk_prune", '''
import weakref
class Cursor:
    pass
class Connection:
    def __init__(self):
        self.cursors = []
        self.created = 0
    def cursor(self):
        c = Cursor()
        self.created += 1
        if self.created % 500 == 0:
            self.cursors = [r for r in self.cursors if r() is not None]
        self.cursors.append(weakref.ref(c))
        return c
DB = Connection()
def workload():
    DB.cursor()
''')
    report = bisect(module, calls=60)
    assert report.verdict != "leak", report


# -- 8. small native leaks -----------------------------------------------------------------------
def test_a_small_native_leak_is_found_from_mallocs_own_count(cleanup):
    if containers.sys.platform != "linux":
        pytest.skip("mallinfo2 is glibc's")
    cleanup.append("lk_native_small")
    module = make_module("lk_native_small", '''
import ctypes, ctypes.util
_libc = ctypes.CDLL(ctypes.util.find_library("c"))
_libc.malloc.restype = ctypes.c_void_p
_libc.malloc.argtypes = [ctypes.c_size_t]
_libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
def decode(n):
    buf = _libc.malloc(8192)
    _libc.memset(buf, 1, 8192)
    return n
_n = [0]
def workload():
    _n[0] += 1
    decode(_n[0])
''')
    report = bisect(module, calls=60)
    assert report.verdict == "leak" and report.native_leak, report
    assert report.culprit == "lk_native_small.decode"
    assert "outside Python's allocator" in report.reason


# -- 9. reference leaks in C ---------------------------------------------------------------------
def test_objects_held_only_from_c_are_said_to_be(cleanup):
    cleanup.append("lk_c_held")
    module = make_module("lk_c_held", '''
import ctypes
_incref = ctypes.pythonapi.Py_IncRef
_incref.argtypes = [ctypes.py_object]
def parse(n):
    record = {"n": n, "fields": [n] * 20}
    _incref(record)          # a C extension forgetting its Py_DECREF
    return len(record)
_n = [0]
def workload():
    _n[0] += 1
    parse(_n[0])
''')
    report = bisect(module, calls=30)
    assert report.verdict == "leak" and report.culprit == "lk_c_held.parse"
    assert "held from C" in report.retention[0] or "no Python referrer" in report.retention[0], report


# -- the growth scan itself --------------------------------------------------------------------
@pytest.mark.parametrize("path", ["c", "python"])
def test_the_growth_scan_finds_the_containers_that_grew(path, monkeypatch):
    if path == "python":
        monkeypatch.setattr(containers, "_containerscan", None)
    elif containers._containerscan is None:
        pytest.skip("the C scan is not built")
    import collections

    grows_list, grows_dict, grows_deque, grows_set, grows_bytes = [], {}, collections.deque(), set(), bytearray()
    holder = {"inner": {"a": "b"}}  # an untracked dict inside a tracked one
    stays = [1, 2, 3]
    # held by a tracked object, as holders are (a running frame's locals are not GC objects)
    namespace = types.SimpleNamespace(d=grows_dict, b=grows_bytes, h=holder)
    gc.collect()
    objects = gc.get_objects()
    table = containers.sizes(objects)
    del objects
    grows_list.append(1)
    grows_dict["k"] = 1
    grows_deque.append(1)
    grows_set.add(1)
    grows_bytes.extend(b"abc")
    holder["inner"]["c"] = "d"
    objects = gc.get_objects()
    found = {id(c): (c, parent, old) for c, parent, old in containers.grown(objects, table)}
    del objects
    for container in (grows_list, grows_dict, grows_deque, grows_set, grows_bytes, holder["inner"]):
        assert id(container) in found
        assert found[id(container)][2] == len(container) - (3 if container is grows_bytes else 1)
    assert found[id(holder["inner"])][1] is holder
    assert id(stays) not in found
    del namespace


def test_the_c_type_filter_gives_what_a_python_loop_gives():
    if containers._containerscan is None:
        pytest.skip("the C scan is not built")
    import functools

    @functools.lru_cache(maxsize=4)
    def cached(n):
        return n

    class Sub(dict):
        pass

    objects = [*gc.get_objects(), Sub(), {"a": 1}, cached]
    for kind in (functools._lru_cache_wrapper, dict, Sub, type):
        found = containers.exactly(objects, kind)
        assert found == [obj for obj in objects if type(obj) is kind], kind
    assert cached in containers.exactly(objects, functools._lru_cache_wrapper)
    with pytest.raises(TypeError):
        containers.exactly(tuple(objects), dict)
    del objects


def test_deep_size_agrees_with_pympler_on_plain_data():
    from pympler import asizeof

    data = {"users": [{"id": i, "name": f"user-{i}", "tags": ("a", i)} for i in range(200)], "total": 3.5}
    mine, complete = holders.deep_size(data)
    theirs = asizeof.asizeof(data)
    assert complete
    assert abs(mine - theirs) <= 0.1 * theirs, (mine, theirs)


def test_weak_reference_checks_do_not_keep_referents_alive():
    class Thing:
        pass

    thing = Thing()
    ref = weakref.ref(thing)
    holder = holders.Holder([ref], None, 0, 1)
    del thing
    gc.collect()
    assert ref() is None
    assert holder.container[0] is ref
    _ = ctypes  # ctypes is used by the C-held test above
