"""The bad-input table (issue 12): nonsense given to the API, the CLI, the magics and the plugin.

Every case must end in leakkit's clean error: a LeakkitError subclass (the API), exit code 2 with
a message and no traceback (the CLI), IPython's UsageError (the magics), a failed test with a
``leakcheck:`` message and no traceback (the plugin); each message names what was expected and
what was received. None may be silently accepted.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

import leakkit
from leakkit import LeakkitError, UnknownOptionError
from leakkit.frontends.cli import main
from leakkit.recording.tables import FILE_COLUMNS, MAGIC

pytest_plugins = ["pytester"]


# -- files the cases point at ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")

    def write(name: str, text: str) -> str:
        path = root / name
        path.write_text(text)
        return str(path)

    header = ",".join(FILE_COLUMNS)

    def row(**cells) -> str:
        return ",".join(str(cells.get(c, "")) for c in FILE_COLUMNS)

    call = {"table": "calls", "call": 0, "function": "f", "thread": "Main", "start": 0, "duration_s": 1, "depth": 0}
    ckpt = {"table": "checkpoints", "call": 0, "blocks": 3, "rss": 100}
    watch_header = "t,unix_time_s,rss,uss,pss,swap,children"
    out = {
        "dir": str(root),
        "missing_dir": str(root / "no" / "such" / "x.csv"),
        "missing": str(root / "missing.csv"),
        "notes": write("notes.csv", "name,amount\nrent,900\n"),
        "magic_only": write("magic_only.csv", MAGIC + "\n"),
        "bad_table": write("bad_table.csv", f"{MAGIC}\n{header}\n{row(table='evil', call=0)}\n"),
        "bad_depth": write("bad_depth.csv", f"{MAGIC}\n{header}\n{row(**{**call, 'depth': 'deep'})}\n"),
        "depth_300": write("depth_300.csv", f"{MAGIC}\n{header}\n{row(**{**call, 'depth': 300})}\n"),
        "empty_call": write("empty_call.csv", f"{MAGIC}\n{header}\n{row(**{**ckpt, 'call': ''})}\n"),
        "inf_rss": write("inf_rss.csv", f"{MAGIC}\n{header}\n{row(**{**ckpt, 'rss': 'inf'})}\n"),
        "neg_rss": write("neg_rss.csv", f"{MAGIC}\n{header}\n{row(**{**ckpt, 'rss': -5})}\n"),
        "nan_count": write("nan_count.csv", f"{MAGIC}\n{header}\n{row(table='summaries', call=0, type='x', count='nan', size=1)}\n"),
        "frac_call": write("frac_call.csv", f"{MAGIC}\n{header}\n{row(**{**call, 'call': 1.5})}\n"),
        "text_duration": write("text_duration.csv", f"{MAGIC}\n{header}\n{row(**{**call, 'duration_s': 'slow'})}\n"),
        "no_function": write("no_function.csv", f"{MAGIC}\n{header}\n{row(**{**call, 'function': ''})}\n"),
        "few_columns": write("few_columns.csv", f"{MAGIC}\ntable,call\ncalls,0\n"),
        "watch_inf": write("watch_inf.csv", f"{watch_header}\n0,1,inf,,,,\n"),
        "watch_neg": write("watch_neg.csv", f"{watch_header}\n0,1,-100,,,,\n"),
        "watch_nan": write("watch_nan.csv", f"{watch_header}\n0,1,nan,,,,\n"),
        "watch_text": write("watch_text.csv", f"{watch_header}\n0,1,lots,,,,\n"),
        "watch_cells": write("watch_cells.csv", f"{watch_header}\n0,1,100\n0.1,1.1,100,,,,\n"),
        "watch_no_header": write("watch_no_header.csv", "# leakkit watch {}\n"),
        "watch_bad_header": write("watch_bad_header.csv", "when,memory\n1,2\n"),
        "mprof_bad": write("bad.dat", "MEM 12.5 1700000000\nMEM lots 1700000001\n"),
        "mprof_nan": write("nan.dat", "MEM nan 1700000000\n"),
        "mprof_line": write("line.dat", "MEM 12.5 1700000000\nGARBAGE here\n"),
        "mprof_empty": write("empty.dat", "CMDLINE python x.py\n"),
        "binary": write("binary.csv", "\x00\x01\x02" * 5000),
        "two_samples": write("two.csv", f"{watch_header}\n0,1,100,,,,\n1,2,200,,,,\n"),
    }
    out["call_1e20"] = write("call_1e20.csv", f"{header}\n{row(**{**call, 'call': '1e20'})}\n")
    out["dup_columns"] = write("dup_columns.csv", f"{header},rss\n{row(**call)},1\n")
    out["neg_allocated"] = write("neg_allocated.csv", f"{header}\n{row(**{**ckpt, 'allocated_bytes': -5})}\n")
    out["mprof_neg"] = write("neg.dat", "MEM 12.5 1700000000\nMEM -3 1700000001\n")
    steady = "\n".join(f"{i},{1700000000 + i},{100_000_000 + i},,,," for i in range(10))
    out["steady"] = write("steady.csv", f"{watch_header}\n{steady}\n")
    return out


def _frame(n: int = 10, rss=None) -> pd.DataFrame:
    return pd.DataFrame({"t": [float(i) for i in range(n)],
                         "rss": rss if rss is not None else [100e6 + i for i in range(n)]})


def _needs_args(x):
    return x


async def _async_needs_args(x):
    return x


# -- the API table: (case, call, expected error class, a fragment of what was received) -------------
def api_cases(f):
    trace, monitor, watch, forecast, load, load_watch = (leakkit.trace, leakkit.monitor, leakkit.watch,
                                                         leakkit.forecast, leakkit.load, leakkit.load_watch)
    E, U = LeakkitError, UnknownOptionError
    ok = lambda: None  # noqa: E731
    cases = []
    # trace
    for value, fragment in ((0, "int 0"), (-1, "int -1"), (1.5, "float 1.5"), ("often", "str 'often'"),
                            (True, "bool True"), (None, "NoneType None")):
        cases.append((f"trace checkpoint_every={value!r}", lambda v=value: trace(ok, checkpoint_every=v), E, fragment))
    for option in ("summaries", "tracemalloc", "fds"):
        for value, fragment in (("no", "str 'no'"), (1, "int 1"), (None, "NoneType None")):
            cases.append((f"trace {option}={value!r}", lambda o=option, v=value: trace(ok, **{o: v}), E, fragment))
    for value, fragment in ((0, "int 0"), (2, "int 2"), (True, "bool True"), ("0.1", "str '0.1'"),
                            (math.nan, "float nan"), (-0.1, "float -0.1")):
        cases.append((f"trace overhead_budget={value!r}", lambda v=value: trace(ok, overhead_budget=v), E, fragment))
    for value, fragment in ((3, "int 3"), ("", "str ''"), (b"f", "bytes b'f'")):
        cases.append((f"trace name={value!r}", lambda v=value: trace(ok, name=v), E, fragment))
    cases += [
        ("trace stream=3", lambda: trace(ok, stream=3), E, "int 3"),
        ("trace stream=<directory>", lambda: trace(ok, stream=f["dir"]), E, "a directory"),
        ("trace stream=<missing directory>", lambda: trace(ok, stream=f["missing_dir"]), E, "does not exist"),
        ("trace stream=<not a recording>", lambda: trace(ok, stream=f["notes"]), E, "name,amount"),
        ("trace func=42", lambda: trace(42), E, "int 42"),
        ("trace func='handler'", lambda: trace("handler"), E, "str 'handler'"),
        ("trace unknown option", lambda: trace(ok, every=3), U, "every"),
        ("trace traced with options", lambda: trace(trace(ok), summaries=False), E, "Trace"),
        ("Trace.save format", lambda: trace(ok).save(f["dir"] + "/x.bin", format="pickle"), E, "str 'pickle'"),
    ]
    # monitor
    for value, fragment in ((0, "int 0"), (-1, "int -1"), (True, "bool True"), ("1", "str '1'"),
                            (math.inf, "float inf"), (math.nan, "float nan")):
        cases.append((f"monitor interval={value!r}", lambda v=value: monitor(f["missing"], interval=v), E, fragment))
    for value, fragment in ((7, "int 7"), (0, "int 0"), (True, "bool True"), ("60", "str '60'")):
        cases.append((f"monitor sustain={value!r}", lambda v=value: monitor(f["missing"], sustain=v), E, fragment))
    for value, fragment in ((0, "int 0"), (True, "bool True")):
        cases.append((f"monitor top={value!r}", lambda v=value: monitor(f["missing"], top=v), E, fragment))
    for value, fragment in (("0.5", "str '0.5'"), (0, "int 0"), (-1, "int -1"), ("lots", "str 'lots'"),
                            (True, "bool True"), ("1e400", "str '1e400'")):
        cases.append((f"monitor min_growth={value!r}", lambda v=value: monitor(f["missing"], min_growth=v), E, fragment))
    for option in ("auto_snapshot", "signal", "baseline"):
        cases.append((f"monitor {option}='yes'", lambda o=option: monitor(f["missing"], **{o: "yes"}), E, "str 'yes'"))
    cases += [
        ("monitor path=3", lambda: monitor(3), E, "int 3"),
        ("monitor path=<directory>", lambda: monitor(f["dir"]), E, "a directory"),
        ("monitor path=<missing directory>", lambda: monitor(f["missing_dir"]), E, "does not exist"),
        ("monitor path=<not a monitor CSV>", lambda: monitor(f["notes"]), E, "notes.csv"),
        ("monitor unknown option", lambda: monitor(f["missing"], intervall=1), U, "intervall"),
    ]
    # watch (nothing is started: every case fails first)
    cmd = [sys.executable, "-c", "pass"]
    for value, fragment in ((0, "int 0"), ("fast", "str 'fast'"), (math.nan, "float nan"), (True, "bool True")):
        cases.append((f"watch interval={value!r}", lambda v=value: watch(cmd, interval=v), E, fragment))
    for value, fragment in ((-1, "int -1"), (True, "bool True"), (math.inf, "float inf")):
        cases.append((f"watch duration={value!r}", lambda v=value: watch(cmd, duration=v), E, fragment))
    for value, fragment in (("0.5", "str '0.5'"), ("lots", "str 'lots'"), (0, "int 0"), (-5, "int -5"),
                            (0.5, "float 0.5"), ("12 parsecs", "str '12 parsecs'")):
        cases.append((f"watch limit={value!r}", lambda v=value: watch(cmd, limit=v), E, fragment))
    for value, fragment in ((0, "int 0"), (-1, "int -1"), (True, "bool True"), ([], "list []"), ("", "str ''"),
                            ("'unclosed", "str \"'unclosed\""), ([1, 2], "list [1, 2]"), (3.5, "float 3.5"),
                            (2**22 + 12345, "no such process"), (["/no/such/binary"], "/no/such/binary")):
        cases.append((f"watch pid_or_command={value!r}", lambda v=value: watch(v, interval=0.1), E, fragment))
    cases += [
        ("watch out=3", lambda: watch(cmd, out=3), E, "int 3"),
        ("watch out=<directory>", lambda: watch(cmd, out=f["dir"]), E, "a directory"),
        ("watch out=<missing directory>", lambda: watch(cmd, out=f["missing_dir"]), E, "does not exist"),
        ("watch out=<not a watch CSV>", lambda: watch(cmd, out=f["notes"]), E, "notes.csv"),
        ("watch out=<not an mprof .dat>", lambda: watch(cmd, out=f["notes"].replace(".csv", ".csv")), E, "notes"),
        ("watch children='yes'", lambda: watch(cmd, children="yes"), E, "str 'yes'"),
        ("watch progress='bar'", lambda: watch(cmd, progress="bar"), E, "str 'bar'"),
    ]
    # forecast
    cases += [
        ("forecast frame=list", lambda: forecast([1, 2, 3]), E, "list [1, 2, 3]"),
        ("forecast frame without t", lambda: forecast(pd.DataFrame({"rss": [1.0, 2.0]})), E, "['rss']"),
        ("forecast limit='0.5'", lambda: forecast(_frame(), "0.5"), E, "str '0.5'"),
        ("forecast limit=0.5", lambda: forecast(_frame(), 0.5), E, "float 0.5"),
        ("forecast limit=-1", lambda: forecast(_frame(), -1), E, "int -1"),
        ("forecast limit='2 GB please'", lambda: forecast(_frame(), "2 GB please"), E, "2 GB please"),
        ("forecast tolerance='x'", lambda: forecast(_frame(), tolerance="x"), E, "str 'x'"),
        ("forecast confidence=1.5", lambda: forecast(_frame(), confidence=1.5), E, "float 1.5"),
        ("forecast confidence=95", lambda: forecast(_frame(), confidence=95), E, "int 95"),
        ("forecast confidence='0.9'", lambda: forecast(_frame(), confidence="0.9"), E, "str '0.9'"),
        ("forecast column='heap'", lambda: forecast(_frame(), column="heap"), E, "str 'heap'"),
        ("forecast 2 samples", lambda: forecast(_frame(2)), E, "received 2"),
        ("forecast inf samples", lambda: forecast(_frame(10, [math.inf] * 10)), E, "inf"),
        ("forecast negative samples", lambda: forecast(_frame(10, [-1.0] * 10)), E, "-1"),
    ]
    # load (trace recordings)
    for name, fragment in (("missing", "does not exist"), ("dir", "a directory"), ("notes", "name,amount"),
                           ("magic_only", "end of the file"), ("bad_table", "'evil'"), ("bad_depth", "'deep'"),
                           ("depth_300", "300"), ("empty_call", "an empty cell"), ("inf_rss", "'inf'"),
                           ("neg_rss", "'-5'"), ("nan_count", "'nan'"), ("frac_call", "'1.5'"),
                           ("text_duration", "'slow'"), ("no_function", "an empty cell"),
                           ("few_columns", "missing function"), ("binary", "received")):
        cases.append((f"load <{name}>", lambda n=name: load(f[n]), E, fragment))
    cases.append(("load path=3", lambda: load(3), E, "int 3"))
    # load_watch (timelines)
    for name, fragment in (("missing", "missing.csv"), ("dir", "a directory"), ("watch_inf", "'inf'"),
                           ("watch_neg", "'-100'"), ("watch_nan", "'nan'"), ("watch_text", "'lots'"),
                           ("watch_cells", "received 3"), ("watch_no_header", "received no data"),
                           ("watch_bad_header", "when,memory"), ("mprof_bad", "'lots'"), ("mprof_nan", "'nan'"),
                           ("mprof_line", "GARBAGE"), ("mprof_empty", "received none")):
        cases.append((f"load_watch <{name}>", lambda n=name: load_watch(f[n]), E, fragment))
    cases.append(("load_watch path=3", lambda: load_watch(3), E, "int 3"))
    # growth_sites and bisect: refused before anything runs
    sites = leakkit.growth_sites
    for option, value, fragment in (("loops", 2, "int 2"), ("loops", "ten", "str 'ten'"), ("loops", True, "bool True"),
                                    ("calls_per_loop", 0, "int 0"), ("nframes", True, "bool True"),
                                    ("nframes", 0, "int 0"), ("top", 0, "int 0"), ("threads", "no", "str 'no'"),
                                    ("progress", "bar", "str 'bar'")):
        cases.append((f"growth_sites {option}={value!r}", lambda o=option, v=value: sites(ok, **{o: v}), E, fragment))
    cases += [
        ("growth_sites workload=3", lambda: sites(3), E, "3"),
        ("growth_sites unknown option", lambda: sites(ok, loop=3), U, "loop"),
    ]
    bisect = leakkit.bisect
    for option, value, fragment in (("calls", 5, "int 5"), ("calls", True, "bool True"), ("calls", "60", "str '60'"),
                                    ("warmup", -1, "int -1"), ("checkpoints", 3, "int 3"),
                                    ("nframe", True, "bool True"), ("nframe", 0, "int 0"), ("nframe", 2000, "int 2000"),
                                    ("time_budget", "2", "str '2'"), ("time_budget", -1, "int -1"),
                                    ("time_budget", True, "bool True"), ("progress", "bar", "str 'bar'"),
                                    ("freeze", 1, "int 1")):
        cases.append((f"bisect {option}={value!r}",
                      lambda o=option, v=value: bisect(ok, targets=[sys.modules[__name__]], **{o: v}), E, fragment))
    cases += [
        ("bisect workload=3", lambda: bisect(3, targets=[sys.modules[__name__]]), E, "int 3"),
        ("bisect workload needing arguments", lambda: bisect(_needs_args, targets=[sys.modules[__name__]]), E, "_needs_args"),
        ("bisect unknown option", lambda: bisect(ok, targets=[sys.modules[__name__]], warm_up=2), U, "warm_up"),
        ("heap_summary objects='x'", lambda: leakkit.heap_summary("x"), E, "str 'x'"),
        ("heap_summary collect='yes'", lambda: leakkit.heap_summary(collect="yes"), E, "str 'yes'"),
        ("summary_diff before=list", lambda: leakkit.summary_diff([], pd.DataFrame()), E, "list []"),
        ("write_mprofile frame=dict", lambda: leakkit.write_mprofile({}, f["dir"] + "/x.dat"), E, "dict {}"),
        ("write_mprofile column='heap'", lambda: leakkit.write_mprofile(_frame(), f["dir"] + "/x.dat", column="heap"),
         E, "str 'heap'"),
    ]
    return cases


# -- issue 24: one argument-checking layer (class 5) and nonsense no longer accepted (class 6) ---------
def _gen_workload():
    yield 1


async def _agen_workload():
    yield 1


async def _coro_workload():
    return 1


class _BadRepr:
    def __repr__(self):
        raise RuntimeError("no repr")


def hardening_cases(f):
    """(case, call, error class, fragment): huge ints, paths that are not paths, unknown options,
    series that are not series, workloads that never run their body, recordings that are nonsense."""
    E, U, W = LeakkitError, UnknownOptionError, leakkit.WorkloadError
    ok = lambda: None  # noqa: E731
    huge = 10**400
    frame = _frame()
    cases = []
    # huge ints, everywhere a number goes (the limit=10**400 family)
    for case, call in (
        ("trace checkpoint_every=10**400", lambda: leakkit.trace(ok, checkpoint_every=huge)),
        ("watch limit=10**400", lambda: leakkit.watch([sys.executable, "-c", "pass"], limit=huge)),
        ("monitor min_growth=10**400", lambda: leakkit.monitor(f["missing"], min_growth=huge)),
        ("forecast limit=10**400", lambda: leakkit.forecast(_frame(), huge)),
        ("heap_vs_native calls=10**400", lambda: leakkit.heap_vs_native(ok, calls=huge)),
        ("heap_vs_native warmup=10**400", lambda: leakkit.heap_vs_native(ok, warmup=huge)),
        ("heap_vs_native tolerance=10**400", lambda: leakkit.heap_vs_native(ok, tolerance=huge)),
        ("heap_vs_native tolerance='1e999GiB'", lambda: leakkit.heap_vs_native(ok, tolerance="1e999GiB")),
        ("growth_sites loops=10**400", lambda: leakkit.growth_sites(ok, loops=huge)),
        ("growth_sites nframes=10**400", lambda: leakkit.growth_sites(ok, nframes=huge)),
        ("growth_sites calls_per_loop=10**400", lambda: leakkit.growth_sites(ok, calls_per_loop=huge)),
        ("classify_readings tolerance=10**400", lambda: leakkit.classify_readings(frame.assign(traced_bytes=1.0), tolerance=huge)),
        ("classify_readings trimmed_bytes=10**400", lambda: leakkit.classify_readings(frame.assign(traced_bytes=1.0), trimmed_bytes=huge)),
        ("verdict floor=10**400", lambda: leakkit.verdict([1.0, 2.0, 3.0, 4.0], floor=huge)),
    ):
        cases.append((case, call, E, "digits" if "'" not in case else "1e999GiB"))
    # paths that are not paths, for every reader and writer of files
    traced = leakkit.trace(ok, summaries=False, checkpoint_every=10**9)
    for value, fragment in ((None, "NoneType None"), (3, "int 3"), ("", "str ''"), ("a\0b", "NUL"),
                            (b"x.csv", "bytes b'x.csv'"), (["x.csv"], "list ['x.csv']")):
        cases += [
            (f"Trace.save path={value!r}", lambda v=value: traced.save(v), E, fragment),
            (f"load path={value!r}", lambda v=value: leakkit.load(v), E, fragment),
            (f"read_mprofile path={value!r}", lambda v=value: leakkit.read_mprofile(v), E, fragment),
            (f"write_mprofile path={value!r}", lambda v=value: leakkit.write_mprofile(_frame(), v), E, fragment),
        ]
    for case, call, fragment in (
        ("Trace.save <directory>", lambda: traced.save(f["dir"]), "a directory"),
        ("Trace.save <missing directory>", lambda: traced.save(f["missing_dir"]), "does not exist"),
        ("read_mprofile <directory>", lambda: leakkit.read_mprofile(f["dir"]), "a directory"),
        ("read_mprofile <missing>", lambda: leakkit.read_mprofile(f["missing"]), "does not exist"),
        ("write_mprofile <directory>", lambda: leakkit.write_mprofile(_frame(), f["dir"]), "a directory"),
        ("write_mprofile <missing directory>", lambda: leakkit.write_mprofile(_frame(), f["missing_dir"]), "does not exist"),
    ):
        cases.append((case, call, E, fragment))
    # unknown options, missing and extra arguments: leakkit's errors, not a bare TypeError
    for case, call, kind, fragment in (
        ("load unknown option", lambda: leakkit.load(f["missing"], bogus=1), U, "bogus"),
        ("load no argument", lambda: leakkit.load(), E, "missing a required argument"),
        ("read_mprofile unknown option", lambda: leakkit.read_mprofile(f["missing"], bogus=1), U, "bogus"),
        ("read_mprofile two paths", lambda: leakkit.read_mprofile(f["missing"], f["missing"]), E, "too many"),
        ("write_mprofile unknown option", lambda: leakkit.write_mprofile(_frame(), f["missing"], col="rss"), U, "col"),
        ("heap_vs_native unknown option", lambda: leakkit.heap_vs_native(ok, call=3), U, "call"),
        ("heap_vs_native no workload", lambda: leakkit.heap_vs_native(), E, "missing a required argument"),
        ("classify_readings unknown option", lambda: leakkit.classify_readings(frame, column="rss"), U, "column"),
        ("verdict unknown option", lambda: leakkit.verdict([1, 2], flor=1), U, "flor"),
        ("heap_summary unknown option", lambda: leakkit.heap_summary(colect=False), U, "colect"),
        ("summary_diff unknown option", lambda: leakkit.summary_diff(pd.DataFrame(), pd.DataFrame(), top=3), U, "top"),
        ("malloc_trim an argument", lambda: leakkit.malloc_trim(0), E, "too many"),
        ("Trace unknown option", lambda: leakkit.Trace(ok, every=3), U, "every"),
        ("Trace.save unknown option", lambda: traced.save(f["missing"], fmt="csv"), U, "fmt"),
        ("Trace.plot ax='left'", lambda: traced.plot(ax="left"), E, "str 'left'"),
        ("Trace.report checkpoint='yes'", lambda: traced.report(checkpoint="yes"), E, "str 'yes'"),
        ("trace overhead_budget=10**400", lambda: leakkit.trace(ok, overhead_budget=huge), E, "digits"),
        ("trace a bad __repr__ as checkpoint_every", lambda: leakkit.trace(ok, checkpoint_every=_BadRepr()), E, "_BadRepr"),
    ):
        cases.append((case, call, kind, fragment))
    # series that are not series
    for value, fragment in (("abc", "str 'abc'"), (None, "NoneType None"), ([[1, 2], [3, 4]], "one-dimensional"),
                            (["a", "b"], "list ['a', 'b']"), ({"a": 1}, "dict"), ([1.0, math.inf], "without inf"),
                            ([True, False], "list [True, False]"), (3, "int 3"), ([1, "2"], "list [1, '2']")):
        cases.append((f"verdict series={value!r}", lambda v=value: leakkit.verdict(v), E, fragment))
    for case, call, fragment in (
        ("verdict calls of another length", lambda: leakkit.verdict([1, 2, 3], calls=[1, 2]), "3 values"),
        ("verdict calls that go back", lambda: leakkit.verdict([1, 2, 3], calls=[0, 2, 1]), "increase"),
        ("verdict floor='x'", lambda: leakkit.verdict([1, 2, 3], floor="x"), "str 'x'"),
        ("verdict floor=-1", lambda: leakkit.verdict([1, 2, 3], floor=-1), "int -1"),
        ("verdict floor=nan", lambda: leakkit.verdict([1, 2, 3], floor=math.nan), "float nan"),
        ("write_mprofile cmdline with a newline", lambda: leakkit.write_mprofile(_frame(), f["dir"] + "/c.dat",
                                                                                 cmdline="python x\nMEM 9 1"), "one line"),
        ("write_mprofile cmdline=3", lambda: leakkit.write_mprofile(_frame(), f["dir"] + "/c.dat", cmdline=3), "int 3"),
        ("write_mprofile cmdline=[1]", lambda: leakkit.write_mprofile(_frame(), f["dir"] + "/c.dat", cmdline=[1]), "[1]"),
        ("write_mprofile duplicate columns", lambda: leakkit.write_mprofile(
            pd.concat([_frame(), _frame()[["rss"]]], axis=1), f["dir"] + "/c.dat"), "rss more than once"),
        ("write_mprofile text column", lambda: leakkit.write_mprofile(_frame().assign(rss="lots"), f["dir"] + "/c.dat"),
         "numbers in column 'rss'"),
        ("write_mprofile column=3", lambda: leakkit.write_mprofile(_frame(), f["dir"] + "/c.dat", column=3), "int 3"),
        ("summary_diff text counts", lambda: leakkit.summary_diff(
            pd.DataFrame({"type": ["a"], "count": ["x"], "size": [1]}), pd.DataFrame({"type": ["a"], "count": [1], "size": [1]})),
         "numbers in column 'count'"),
        ("classify_readings frame=list", lambda: leakkit.classify_readings([1, 2]), "list [1, 2]"),
        ("classify_readings text column", lambda: leakkit.classify_readings(frame.assign(traced_bytes="x")),
         "numbers in column 'traced_bytes'"),
        ("classify_readings trimmed_bytes='x'", lambda: leakkit.classify_readings(frame.assign(traced_bytes=1.0),
                                                                                  trimmed_bytes="x"), "str 'x'"),
        ("heap_summary objects=set()", lambda: leakkit.heap_summary(set()), "set()"),
    ):
        cases.append((case, call, E, fragment))
    # workloads that never run their body (class 6): refused, not judged clean
    for name, workload, fragment in (("a generator function", _gen_workload, "generator function"),
                                     ("an async generator function", _agen_workload, "async generator function"),
                                     ("lambda: coroutine()", lambda: _coro_workload(), "returned a coroutine"),
                                     ("lambda: generator()", lambda: _gen_workload(), "returned a generator")):
        cases.append((f"growth_sites workload={name}", lambda w=workload: leakkit.growth_sites(w, loops=3), W, fragment))
        cases.append((f"heap_vs_native workload={name}", lambda w=workload: leakkit.heap_vs_native(w, calls=2), W, fragment))
    for call, fragment in ((lambda: sys.exit(1), "called sys.exit(1)"), (_raise_generator_exit, "raised GeneratorExit")):
        cases.append((f"growth_sites workload {fragment}", lambda c=call: leakkit.growth_sites(c, loops=3), W, fragment))
        cases.append((f"heap_vs_native workload {fragment}", lambda c=call: leakkit.heap_vs_native(c, calls=2), W, fragment))
    # recordings that are nonsense (class 6)
    for name, fragment in (("call_1e20", "below 2**63"), ("dup_columns", "more than once"),
                           ("neg_allocated", "'-5'"), ("mprof_neg", "a memory reading >= 0")):
        reader = leakkit.read_mprofile if name.startswith("mprof") else leakkit.load
        cases.append((f"{reader.__name__} <{name}>", lambda n=name, r=reader: r(f[n]), E, fragment))
    return cases


def _raise_generator_exit():
    raise GeneratorExit("from the workload")


def _workers(**columns) -> pd.DataFrame:
    """A watch's long table of two workers (pids 1 and 2), 5 samples each; ``columns`` replace its own."""
    table = {"t": [float(i % 5) for i in range(10)], "pid": [1] * 5 + [2] * 5, "rss": [1e8 + i for i in range(10)]}
    return pd.DataFrame({**table, **columns})


def second_pass_cases(f):
    """(case, call, error class, fragment) for what landed after the first pass: the monitor, the
    server watch, forecast_workers, the fleet (FleetWriter, fleet, the exporters), attach and
    load_attach, bisect's targets; and the datetime ``t`` read as seconds (class 6)."""
    E = LeakkitError
    huge = 10**400
    start = pd.Timestamp("2024-01-01")
    cases = []
    # huge ints (class 5): the seconds and counts of every entry point added since
    for case, call in (
        ("watch interval=10**400", lambda: leakkit.watch([sys.executable, "-c", "pass"], interval=huge)),
        ("watch duration=10**400", lambda: leakkit.watch([sys.executable, "-c", "pass"], duration=huge)),
        ("monitor interval=10**400", lambda: leakkit.monitor(f["missing"], interval=huge)),
        ("monitor sustain=10**400", lambda: leakkit.monitor(f["missing"], sustain=huge)),
        ("monitor window=10**400", lambda: leakkit.monitor(f["missing"], window=huge)),
        ("monitor trace_window=10**400", lambda: leakkit.monitor(f["missing"], trace_window=huge)),
        ("monitor top=10**400", lambda: leakkit.monitor(f["missing"], top=huge)),
        ("fleet stale=10**400", lambda: leakkit.fleet(f["dir"], stale=huge)),
        ("fleet since=10**400", lambda: leakkit.fleet(f["dir"], since=huge)),
        ("fleet top=10**400", lambda: leakkit.fleet(f["dir"], top=huge)),
        ("FleetWriter every=10**400", lambda: leakkit.FleetWriter(f["dir"], every=huge)),
        ("FleetWriter flush_s=10**400", lambda: leakkit.FleetWriter(f["dir"], flush_s=huge)),
        ("forecast_workers limit=10**400", lambda: leakkit.forecast_workers(_workers(), huge)),
        ("attach duration=10**400", lambda: leakkit.attach(os.getpid(), duration=huge)),
        ("bisect max_calls=10**400", lambda: leakkit.bisect(lambda: None, targets=[sys.modules[__name__]], max_calls=huge)),
        ("bisect time_budget=10**400", lambda: leakkit.bisect(lambda: None, targets=[sys.modules[__name__]],
                                                              time_budget=huge)),
        ("PrometheusExporter port=10**400", lambda: leakkit.PrometheusExporter(port=huge)),
    ):
        cases.append((case, call, E, "digits"))
    # paths that are not paths (class 5), options that are not options
    for value, fragment in ((None, "NoneType None"), (3, "int 3"), ("", "str ''")):
        cases += [
            (f"load_attach path={value!r}", lambda v=value: leakkit.load_attach(v), E, fragment),
            (f"load_watch path={value!r}", lambda v=value: leakkit.load_watch(v), E, fragment),
            (f"AttachReport.save path={value!r}", lambda v=value: leakkit.AttachReport({}, "x").save(v), E, fragment),
            (f"FleetWriter root={value!r}", lambda v=value: leakkit.FleetWriter(v), E, fragment),
        ]
    for value, fragment in ((3, "int 3"), ("", "str ''"), ("a\0b", "NUL")):  # None: the current directory
        cases.append((f"attach out={value!r}", lambda v=value: leakkit.attach(os.getpid(), out=v), E, fragment))
    for case, call, kind, fragment in (
        ("AttachReport.save <directory>", lambda: leakkit.AttachReport({}, "x").save(f["dir"]), E, "a directory"),
        ("FleetWriter.add None", lambda: leakkit.FleetWriter(f["dir"]).add(None), E, "NoneType None"),
        ("forecast_workers confidence=95", lambda: leakkit.forecast_workers(_workers(), confidence=95), E, "int 95"),
        ("forecast_workers column=3", lambda: leakkit.forecast_workers(_workers(), column=3), E, "int 3"),
        ("forecast from_start='y'", lambda: leakkit.forecast(_frame(), from_start="y"), E, "str 'y'"),
        ("classify_readings trimmed_bytes=-1", lambda: leakkit.classify_readings(
            _frame().assign(traced_bytes=1.0), trimmed_bytes=-1), E, "int -1"),
    ):
        cases.append((case, call, kind, fragment))
    # nonsense accepted (class 6): datetimes in nanoseconds, epoch milliseconds, negative readings
    for name, frame, fragment in (
        ("t in epoch nanoseconds", pd.DataFrame({"t": [start.value + i * 10**9 for i in range(10)], "rss": [1e8] * 10}),
         "milliseconds or nanoseconds"),
        ("t in epoch milliseconds", pd.DataFrame({"t": [1.7e12 + i * 1000 for i in range(10)], "rss": [1e8] * 10}),
         "milliseconds or nanoseconds"),
        ("t as text", _frame().assign(t="x"), "numbers (seconds) or datetimes"),
        ("duplicate columns", pd.concat([_frame(), _frame()[["rss"]]], axis=1), "rss more than once"),
        ("an inf uss beside rss", _frame().assign(uss=math.inf), "'uss'"),
        ("a negative pss", _frame().assign(pss=-1.0), "'pss'"),
    ):
        cases.append((f"forecast {name}", lambda fr=frame: leakkit.forecast(fr), E, fragment))
        cases.append((f"forecast_workers {name}", lambda fr=frame: leakkit.forecast_workers(fr.assign(pid=1)), E, fragment))
    for name, frame, fragment in (
        ("negative rss", _workers(rss=[-1.0] * 10), "'rss'"),
        ("text pids", _workers(pid=["a"] * 10), "column 'pid'"),
        ("fractional pids", _workers(pid=[1.5] * 10), "column 'pid'"),
    ):
        cases.append((f"forecast_workers {name}", lambda fr=frame: leakkit.forecast_workers(fr), E, fragment))
    cases.append(("classify_readings negative readings", lambda: leakkit.classify_readings(
        pd.DataFrame({"traced_bytes": [-1.0] * 5, "rss": [1e8] * 5})), E, "'traced_bytes'"))
    # bisect's targets (class 5): what is not a target, said before anything runs
    for value, fragment in ((3, "int 3"), (None, "NoneType None"), ([], "list []"), ("no_such_pkg_h2", "no_such_pkg_h2"),
                            ([3], "int 3"), ({"a": 1}, "dict")):
        cases.append((f"bisect targets={value!r}", lambda v=value: leakkit.bisect(lambda: None, targets=v), E, fragment))
    return cases


def _datetime_frame() -> pd.DataFrame:
    start = pd.Timestamp("2024-01-01")
    return pd.DataFrame({"t": [start + pd.Timedelta(seconds=i) for i in range(10)], "rss": [1e8 + i * 1e6 for i in range(10)]})


@pytest.mark.parametrize("kind", ["Timestamp objects", "datetime64", "datetime64 UTC", "timedelta64"])
def test_a_datetime_t_is_seconds_never_nanoseconds(kind):
    """Issue 24's example: ``forecast`` read a datetime ``t`` in nanoseconds as seconds ("10 samples
    over 104 d"). 10 samples a second apart growing 1 MB each: 9 s, 1 MB/s, whatever t's type."""
    frame = _datetime_frame()
    if kind != "Timestamp objects":
        times = pd.date_range("2024-01-01", periods=10, freq="s", tz="UTC" if "UTC" in kind else None)
        frame["t"] = times - times[0] if kind == "timedelta64" else times
    for result in (leakkit.forecast(frame), leakkit.forecast_workers(frame.assign(pid=7)).forecasts[7]):
        assert result.duration_s == pytest.approx(9.0)
        assert result.rate_bytes_per_s == pytest.approx(1e6, rel=1e-6)


class _Names(dict):
    """File names stand-in: enough to list the cases (their names) at collection time."""

    def __missing__(self, key: str) -> str:
        return ""


def _api_ids() -> list[str]:
    return [name for name, *_ in api_cases(_Names())]


@pytest.mark.parametrize("index", range(len(_api_ids())), ids=_api_ids())
def test_api_bad_input_gets_a_clean_error(files, index):
    name, call, kind, fragment = api_cases(files)[index]
    with pytest.raises(kind) as caught:
        call()
    message = str(caught.value)
    assert "expected" in message, message
    assert fragment in message, (fragment, message)


# -- the CLI table: exit 2, a message naming what was expected and received, no traceback ------------
def cli_cases(f):
    true = [sys.executable, "-c", "pass"]
    return [
        (["watch", "--interval", "0", "--", *true], "interval: expected a positive number of seconds, received float 0.0"),
        (["watch", "--interval", "abc", "--", *true], "invalid float value: 'abc'"),
        (["watch", "--duration", "-1", "--", *true], "duration: expected a positive number of seconds, received float -1.0"),
        (["watch", "--limit", "0.5", "--", *true], "limit: expected a size of at least 1 byte"),
        (["watch", "--limit", "lots", "--", *true], "received str 'lots'"),
        (["watch", "0"], "expected a positive pid, received int 0"),
        (["watch", str(2**22 + 12345)], "expected a running process, received pid"),
        (["watch", "--out", f["missing_dir"], "--", *true], "does not exist"),
        (["watch", "--out", f["dir"], "--", *true], "a directory"),
        (["watch", "--out", f["notes"], "--", *true], "a new file or a leakkit watch CSV"),
        (["watch", "--", "/no/such/binary"], "expected a command that starts, received '/no/such/binary'"),
        (["watch", "--plot", "x.notanext", "--", *true], "expected an image file name ending in one of"),
        (["run"], "expected a command to run"),
        (["run", "--out", f["missing_dir"], "--", *true], "does not exist"),
        (["run", "--plot", "forecast.xyz", "--", *true], "received 'forecast.xyz'"),
        (["run", "--plot", f["dir"], "--", *true], "a directory"),
        (["run", "--interval", "-1", "--", *true], "interval: expected a positive number of seconds, received float -1.0"),
        (["report", f["missing"]], "missing.csv"),
        (["report", f["dir"], "--no-plot"], "expected a regular file, received"),
        (["report", f["notes"], "--no-plot"], "expected a leakkit CSV header with columns t and rss"),
        (["report", f["magic_only"], "--no-plot"], "expected the column header line"),
        (["report", f["bad_depth"], "--no-plot"], "expected an integer >= 0 in column 'depth', received 'deep'"),
        (["report", f["inf_rss"], "--no-plot"], "received 'inf'"),
        (["report", f["watch_inf"], "--no-plot"], "received 'inf'"),
        (["report", f["steady"], "--limit", "0.5", "--no-plot"], "limit: expected a size of at least 1 byte"),
        (["report", f["steady"], "--column", "heap"], "invalid choice: 'heap'"),
        (["report", f["steady"], "--plot", "x.notanext"], "received 'x.notanext'"),
        (["report", f["steady"], "--plot", f["dir"]], "a directory"),
        (["report", f["two_samples"], "--no-plot"], "expected at least 4 samples"),
        (["bisect", "no_such_module_xyz:handle"], "No module named 'no_such_module_xyz'"),
        (["bisect", "bad_input_raises_at_import:handle"], "importing it raised ZeroDivisionError"),
        (["bisect", "json:dumps"], "expected a workload callable with no arguments"),
        (["bisect", "json:no_such_function"], "received no attribute 'no_such_function'"),
        (["bisect", "json:dumps", "-n", "many"], "invalid int value: 'many'"),
        (["bisect", "json:dumps", "--plot", "x.notanext"], "received 'x.notanext'"),
        (["report", "x.csv", "--bogus"], "unrecognized arguments: --bogus"),
    ]


@pytest.mark.parametrize("index", range(len(cli_cases(_Names()))),
                         ids=[" ".join(argv)[:60] for argv, _ in cli_cases(_Names())])
def test_cli_bad_input_exits_2_with_a_message_and_no_traceback(files, index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    (tmp_path / "bad_input_raises_at_import.py").write_text("1 / 0\n")
    argv, fragment = cli_cases(files)[index]
    try:
        code = main(argv)
    finally:
        sys.modules.pop("bad_input_raises_at_import", None)
    out, err = capsys.readouterr()
    assert code == 2, (argv, out, err)
    assert fragment in err, (fragment, err)
    assert "error" in err and "Traceback" not in out + err


def test_leakkits_own_failure_exits_3_with_one_line_and_a_debug_hint(monkeypatch, capsys, tmp_path):
    from leakkit.frontends.commands import report

    def broken(*args, **kwargs):
        raise RuntimeError("something inside leakkit broke\nover two lines")

    monkeypatch.setattr(report, "report_for", broken)
    assert main(["report", str(tmp_path / "x.csv"), "--no-plot"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "internal error: RuntimeError: something inside leakkit broke over two lines" in err
    assert "rerun with leakkit --debug" in err
    assert main(["--debug", "report", str(tmp_path / "x.csv"), "--no-plot"]) == 3
    assert "Traceback" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "x.csv"), "--no-plot", "--debug"]) == 3  # after the command too
    assert "Traceback" in capsys.readouterr().err


def test_a_command_that_fails_is_exit_2_for_run_and_watch(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["run", "-q", "--no-plot", "--", sys.executable, "-c", "import sys, time; time.sleep(0.5); sys.exit(7)"])
    out = capsys.readouterr().out
    assert code == 2 and "the command exited with code 7" in out
    code = main(["watch", "-q", "--interval", "0.05", "--", sys.executable, "-c",
                 "import os, time; time.sleep(0.3); os.kill(os.getpid(), 9)"])
    assert code == 2 and "the command was killed by signal 9" in capsys.readouterr().out


def test_escape_sequences_in_a_recording_are_not_sent_to_the_terminal(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    traced = leakkit.trace(lambda: None, summaries=False, name="\x1b]0;pwned\x07evil\x1b[2J")
    for _ in range(20):
        traced()
    traced.save("rec.csv")
    main(["report", "rec.csv", "--no-plot"])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;pwned\\x07evil" in out


# -- the magics: IPython's UsageError ------------------------------------------------------------
MAGIC_CASES = [
    ("leakcheck", "-n 0 1 + 1", "-n/--calls: expected an int in 1..100000, received 0"),
    ("leakcheck", "-n 5000000 1 + 1", "expected an int in 1..100000, received 5000000"),
    ("leakcheck", "-n many 1 + 1", "invalid int value: 'many'"),
    ("leakcheck", "--warmup -1 1 + 1", "--warmup: expected an int in 0..100000, received -1"),
    ("leakcheck", "--warmup 10000000 1 + 1", "received 10000000"),
    ("leakcheck", "-n 3 1 + 1", "calls: expected an int >= 12"),
    ("leakcheck", "", "expected code to run after the options"),
    ("leakcheck", "-n 20 def (", "expected Python code, received a syntax error"),
    ("leakcheck", "--bogus 1 + 1", "unrecognized arguments: --bogus"),
    ("leaktrace", "1 + 1", "the following arguments are required: --targets"),
    ("leaktrace", "--targets no_such_module_here 1 + 1", "no_such_module_here"),
    ("leaktrace", "--targets , 1 + 1", "targets: expected at least one module, class or function"),
    ("leaktrace", "--targets json -n 2 1 + 1", "calls: expected an int >= 12"),
]


@pytest.fixture(scope="module")
def ip():
    pytest.importorskip("IPython")
    from IPython.testing import globalipapp

    shell = globalipapp.start_ipython() or globalipapp.get_ipython()  # one shell per process: maybe started already
    shell.run_line_magic("load_ext", "leakkit")
    return shell


@pytest.mark.parametrize("magic, line, fragment", MAGIC_CASES)
def test_magic_bad_input_is_a_usage_error(ip, magic, line, fragment):
    from IPython.core.error import UsageError

    with pytest.raises(UsageError) as caught:
        ip.run_line_magic(magic, line)
    assert fragment in str(caught.value), str(caught.value)


def test_a_cell_magic_with_code_on_its_first_line_is_a_usage_error(ip):
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="the cell form takes options only on its first line, received '1 \\+ 1'"):
        ip.run_cell_magic("leakcheck", "1 + 1", "x = 2\n")


# -- the plugin: a failed test with a leakcheck message, no traceback ------------------------------
PLUGIN_CASES = [
    ("@pytest.mark.leakcheck(calls='many')\ndef test_x():\n    pass", "calls: expected an int >= 12"),
    ("@pytest.mark.leakcheck(calls=3)\ndef test_x():\n    pass", "received int 3"),
    ("@pytest.mark.leakcheck(calls=True)\ndef test_x():\n    pass", "received bool True"),
    ("@pytest.mark.leakcheck(calls=20, warmup=-1)\ndef test_x():\n    pass", "warmup: expected an int >= 0, received int -1"),
    ("@pytest.mark.leakcheck(calls=20, targets=[])\ndef test_x():\n    pass", "targets: expected at least one module"),
    ("@pytest.mark.leakcheck(calls=20, targets=['no_such_mod_q'])\ndef test_x():\n    pass", "no_such_mod_q"),
    ("@pytest.mark.leakcheck(20, 2, None, 'extra')\ndef test_x():\n    pass", "expected leakcheck(calls=..., warmup=..., targets=..."),
    ("@pytest.mark.leakcheck(calls=20, every=2)\ndef test_x():\n    pass", "expected leakcheck(calls=..., warmup=..., targets=..."),
    ("@pytest.mark.leakcheck(calls=20)\nasync def test_x():\n    pass", "expected a plain (not async) test function"),
    ("def test_x(leakcheck):\n    leakcheck(lambda request: None, calls=20)", "expected a function callable with no arguments"),
    ("def test_x(leakcheck):\n    leakcheck(42, calls=20)", "received int 42"),
    ("def test_x(leakcheck):\n    leakcheck(lambda: None, calls=20, fail='no')", "fail: expected True or False, received str 'no'"),
    ("def test_x(leakcheck):\n    leakcheck(lambda: None, calls=0)", "received int 0"),
    ("def test_x(leakcheck):\n    leakcheck(lambda: None, calls=20, targets='')", "targets: expected at least one module"),
]


@pytest.mark.parametrize("index", range(len(PLUGIN_CASES)))
def test_plugin_bad_input_fails_the_test_with_a_message(pytester, index):
    body, fragment = PLUGIN_CASES[index]
    pytester.makepyfile("import pytest\n\n" + body + "\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert fragment in output, output[-3000:]
    assert "Traceback" not in output and "During handling" not in output


@pytest.mark.parametrize("ini, option, fragment", [
    ("leakcheck_calls = many", [], "ini setting leakcheck_calls: expected an int, received 'many'"),
    ("leakcheck_warmup = -3", [], "ini setting leakcheck_warmup: expected an int >= 0, received -3"),
    ("", ["--leakcheck-calls=2"], "--leakcheck-calls: expected an int >= 12, received 2"),
])
def test_plugin_bad_settings_stop_the_session(pytester, ini, option, fragment):
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile("def test_never(): raise AssertionError('ran')")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{fragment}*"])


def test_the_table_has_at_least_150_cases(files):
    total = len(api_cases(files)) + len(cli_cases(files)) + len(MAGIC_CASES) + 1 + len(PLUGIN_CASES) + 3
    assert total >= 150, total
    assert len(hardening_cases(files)) >= 100


def test_nothing_starts_a_command_when_out_is_wrong(tmp_path):
    marker = tmp_path / "started"
    script = [sys.executable, "-c", f"import time; open({str(marker)!r}, 'w'); time.sleep(30)"]
    for out in (tmp_path, tmp_path / "no" / "x.csv"):
        with pytest.raises(LeakkitError):
            leakkit.watch(script, out=out)
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    with pytest.raises(LeakkitError):
        leakkit.watch(script, out=tmp_path / "notes.csv")
    done = subprocess.run(["pgrep", "-f", str(marker)], capture_output=True, text=True)
    assert not marker.exists() and not done.stdout.strip()  # no orphan left running
    assert (tmp_path / "notes.csv").read_text() == "a,b\n1,2\n"


def test_a_watch_header_that_is_not_leakkits_is_ignored_not_a_crash(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    for meta in ("[1, 2, 3]", deep, '{"limit_bytes": "lots", "pid": true, "cmdline": [1]}'):
        path = tmp_path / "w.csv"
        path.write_text(textwrap.dedent(f"""\
            # leakkit watch {meta}
            t,unix_time_s,rss,uss,pss,swap,children
            0,1,100,,,,
            1,2,100,,,,
        """))
        frame = leakkit.load_watch(path)
        assert len(frame) == 2 and "limit_bytes" not in frame.attrs and "pid" not in frame.attrs
    assert os.path.exists(path)


def _hardening_ids() -> list[str]:
    return [name for name, *_ in hardening_cases(_Names())]


@pytest.mark.parametrize("index", range(len(_hardening_ids())), ids=_hardening_ids())
def test_api_hardening_gets_a_clean_error(files, index):
    name, call, kind, fragment = hardening_cases(files)[index]
    with pytest.raises(kind) as caught:
        call()
    message = str(caught.value)
    assert "expected" in message, message
    assert fragment in message, (fragment, message)


def _second_pass_ids() -> list[str]:
    return [name for name, *_ in second_pass_cases(_Names())]


@pytest.mark.parametrize("index", range(len(_second_pass_ids())), ids=_second_pass_ids())
def test_api_second_pass_gets_a_clean_error(files, index):
    name, call, kind, fragment = second_pass_cases(files)[index]
    with pytest.raises(kind) as caught:
        call()
    message = str(caught.value)
    assert "expected" in message, message
    assert fragment in message, (fragment, message)


# -- every public entry point: an unknown option is UnknownOptionError, never a bare TypeError --------
def _entry_points(f):
    """How to call each public callable with nothing wrong but one unknown option ``bogus_option``."""
    ok = lambda: None  # noqa: E731
    here = [sys.modules[__name__]]
    return {
        "attach": lambda **kw: leakkit.attach(os.getpid(), **kw),
        "load_attach": lambda **kw: leakkit.load_attach(f["missing"], **kw),
        "bisect": lambda **kw: leakkit.bisect(ok, targets=here, **kw),
        "classify_readings": lambda **kw: leakkit.classify_readings(_frame(), **kw),
        "forecast": lambda **kw: leakkit.forecast(_frame(), **kw),
        "forecast_workers": lambda **kw: leakkit.forecast_workers(_workers(), **kw),
        "growth_sites": lambda **kw: leakkit.growth_sites(ok, **kw),
        "heap_summary": lambda **kw: leakkit.heap_summary(**kw),
        "heap_vs_native": lambda **kw: leakkit.heap_vs_native(ok, **kw),
        "humanize": lambda **kw: leakkit.humanize(_frame(), **kw),
        "load": lambda **kw: leakkit.load(f["missing"], **kw),
        "load_watch": lambda **kw: leakkit.load_watch(f["missing"], **kw),
        "malloc_trim": lambda **kw: leakkit.malloc_trim(**kw),
        "monitor": lambda **kw: leakkit.monitor(f["missing"], **kw),
        "read_mprofile": lambda **kw: leakkit.read_mprofile(f["missing"], **kw),
        "summary_diff": lambda **kw: leakkit.summary_diff(pd.DataFrame(), pd.DataFrame(), **kw),
        "trace": lambda **kw: leakkit.trace(ok, **kw),
        "verdict": lambda **kw: leakkit.verdict([1.0, 2.0], **kw),
        "watch": lambda **kw: leakkit.watch([sys.executable, "-c", "pass"], **kw),
        "write_mprofile": lambda **kw: leakkit.write_mprofile(_frame(), f["missing"], **kw),
        "fleet": lambda **kw: leakkit.fleet(f["dir"], **kw),
        "Monitor": lambda **kw: leakkit.Monitor(f["missing"], **kw),
        "Trace": lambda **kw: leakkit.Trace(ok, **kw),
        "FleetWriter": lambda **kw: leakkit.FleetWriter(f["dir"], **kw),
        "OpenTelemetryExporter": lambda **kw: leakkit.OpenTelemetryExporter(**kw),
        "PrometheusExporter": lambda **kw: leakkit.PrometheusExporter(**kw),
        "Trace.save": lambda **kw: leakkit.trace(ok).save(f["missing"], **kw),
        "AttachReport.save": lambda **kw: leakkit.AttachReport({}, "x").save(f["missing"], **kw),
    }


#: What leakkit returns (built by it, read by the user), not entry points a user calls.
RESULTS = {"AttachReport", "BisectReport", "Forecast", "Growth", "GrowthSites", "HeapNativeReport", "Recording",
           "TraceReport", "WorkerForecasts", "FleetReport"}


def test_the_entry_point_table_covers_every_public_callable():
    errors = {n for n in leakkit.__all__ if isinstance(getattr(leakkit, n), type)
              and issubclass(getattr(leakkit, n), BaseException)}
    listed = {n for n in _entry_points(_Names()) if "." not in n}
    assert set(leakkit.__all__) - errors - RESULTS == listed, set(leakkit.__all__) - errors - RESULTS ^ listed


@pytest.mark.parametrize("entry", list(_entry_points(_Names())))
def test_every_entry_point_refuses_an_unknown_option_by_name(files, entry):
    if entry == "OpenTelemetryExporter":
        pytest.importorskip("opentelemetry")
    with pytest.raises(UnknownOptionError, match="bogus_option") as caught:
        _entry_points(files)[entry](bogus_option=1)
    assert "expected one of" in str(caught.value) and "self" not in str(caught.value).split("expected one of")[1]
