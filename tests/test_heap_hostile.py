"""Heap scans that trust no module (issue 24, class 7): a module whose ``__getattr__`` raises, a
module whose name is not text, a metaclass whose ``__repr__`` raises, an object whose
``__class__`` raises. heap_summary (the C scan and the Python path) and trace's type summaries
read what they need without running that code, and give their table."""
from __future__ import annotations

import sys
import types

import pytest

import leakkit
from leakkit.probes import heap


class _Raises(Exception):
    pass


def _module_getattr_raising(kind):
    module = types.ModuleType("leakkit_hostile_" + kind.__name__)

    def __getattr__(name):  # PEP 562: any attribute the module lacks, __file__ included
        raise kind(f"no {name} here")

    module.__getattr__ = __getattr__
    return module


class _BadStr:
    def __str__(self):
        raise _Raises("no str")


class _Meta(type):
    def __repr__(cls):
        raise _Raises("no repr")


class _LiesAboutClass:
    @property
    def __class__(self):
        raise _Raises("no class")


def _hostiles():
    """(name, objects to keep alive while summarizing, a type name that must appear)."""
    out = []
    for kind in (RuntimeError, ValueError, KeyError, _Raises, SystemError, TypeError):
        module = _module_getattr_raising(kind)
        out.append((f"module __getattr__ raising {kind.__name__}", module, f"module({module.__name__})"))
    nameless = types.ModuleType("placeholder")
    nameless.__dict__["__name__"] = _BadStr()
    out.append(("module whose __name__ has a raising __str__", nameless, "module(nameless, id:"))
    del_name = types.ModuleType("placeholder2")
    del del_name.__dict__["__name__"]
    del_name.__getattr__ = _module_getattr_raising(RuntimeError).__getattr__
    out.append(("module without __name__ or __file__, raising __getattr__", del_name, "module(nameless, id:"))
    hostile_class = _Meta("HostileClass", (), {})
    out.append(("metaclass whose __repr__ raises", [hostile_class, hostile_class()], "HostileClass"))
    out.append(("object whose __class__ raises", [_LiesAboutClass() for _ in range(3)], "_LiesAboutClass"))
    return out


# Only the names live as long as the module: the objects are made in each test and die with it
# (kept for the session, an object whose __class__ raises broke pympler's walk in a later test).
NAMES = [h[0] for h in _hostiles()]
PATHS = ["C scan", "Python path"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("index", range(len(NAMES)), ids=NAMES)
def test_heap_summary_reads_around_hostile_objects(monkeypatch, path, index):
    name, keep, expected_name = _hostiles()[index]
    if path == "Python path":
        monkeypatch.setattr(heap, "_heapscan", None)
    elif heap._heapscan is None:
        pytest.skip("the C scan is not built")
    module_name = f"leakkit_hostile_{index}"
    monkeypatch.setitem(sys.modules, module_name, keep if isinstance(keep, types.ModuleType) else
                        types.ModuleType(module_name))
    holder = [keep]
    table = leakkit.heap_summary()
    assert len(table) > 10 and table["count"].sum() > 1000
    assert table["type"].str.contains(expected_name, regex=False).any(), table.head()
    del holder


def test_trace_keeps_its_type_summaries_with_hostile_modules_loaded(monkeypatch):
    for index, (_, keep, _) in enumerate(_hostiles()):
        if isinstance(keep, types.ModuleType):
            monkeypatch.setitem(sys.modules, f"leakkit_hostile_trace_{index}", keep)
    kept = []
    traced = leakkit.trace(lambda: kept.append(bytearray(64)), checkpoint_every=10)
    for _ in range(40):
        traced()
    report = traced.report()  # its last checkpoint takes a type summary
    assert traced.last_error is None
    assert traced.summaries["call"].nunique() >= 2  # the baseline and the last one, both taken
    assert report.verdict == "leak" and "bytearray" in set(report.growing_types["type"])
