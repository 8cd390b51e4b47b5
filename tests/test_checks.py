"""The argument-checking layer (leakkit/_checks.py, issue 24 class 5): each validator over a table of
good values (returned in the caller's form) and bad ones (InvalidArgumentError worded
"NAME: expected WHAT, received TYPE VALUE"), and strict() over unknown, missing and extra arguments."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leakkit import InvalidArgumentError, UnknownOptionError, _checks
from leakkit._errors import describe

HUGE = 10**400

GOOD = [
    (lambda v: _checks.integer(v, "n", minimum=1), 3, 3),
    (lambda v: _checks.integer(v, "n", minimum=1), np.int64(7), 7),
    (lambda v: _checks.number(v, "x", above=0), np.float32(0.5), 0.5),
    (lambda v: _checks.seconds(v, "interval"), 2, 2.0),
    (lambda v: _checks.fraction(v, "share"), 1, 1.0),
    (lambda v: _checks.flag(v, "on"), False, False),
    (lambda v: _checks.optional_flag(v, "progress"), None, None),
    (lambda v: _checks.choice(v, "format", ("csv", "parquet")), "csv", "csv"),
    (lambda v: _checks.one_line(v, "cmdline"), "python -c 'a\tb'", "python -c 'a\tb'"),
    (lambda v: _checks.size(v, "limit"), "1.5 KiB", 1536),
    (lambda v: _checks.size(v, "limit"), np.int64(4096), 4096),
    (lambda v: _checks.path(v, "path"), Path("x.csv"), "x.csv"),
    (lambda v: list(_checks.series(v, "series")), [1, None, 3.5], [1.0, math.nan, 3.5]),
    (lambda v: list(_checks.series(v, "series")), pd.Series([1, 2], dtype="Int64").astype("float64"), [1.0, 2.0]),
]


@pytest.mark.parametrize("check, value, result", GOOD, ids=[repr(g[1])[:30] for g in GOOD])
def test_good_values_come_back_in_the_callers_form(check, value, result):
    got = check(value)
    assert got == result or (isinstance(result, list) and np.allclose(got, result, equal_nan=True))
    assert type(got) is type(result)


BAD = [
    ("integer: huge", lambda: _checks.integer(HUGE, "calls", minimum=1), "calls: expected an int >= 1, received int of about 401 digits"),
    ("integer: bool", lambda: _checks.integer(True, "calls"), "received bool True"),
    ("integer: float", lambda: _checks.integer(3.0, "calls"), "received float 3.0"),
    ("integer: above maximum", lambda: _checks.integer(11, "top", minimum=1, maximum=10), "expected an int in 1..10"),
    ("integer: str", lambda: _checks.integer("3", "calls"), "received str '3'"),
    ("number: huge int", lambda: _checks.number(HUGE, "floor"), "received int of about 401 digits"),
    ("number: nan", lambda: _checks.number(math.nan, "floor"), "received float nan"),
    ("number: inf", lambda: _checks.number(math.inf, "floor"), "received float inf"),
    ("number: str", lambda: _checks.number("1", "floor"), "received str '1'"),
    ("number: complex", lambda: _checks.number(1j, "floor"), "received complex 1j"),
    ("seconds: zero", lambda: _checks.seconds(0, "interval"), "expected a positive number of seconds"),
    ("seconds: a century", lambda: _checks.seconds(3.2e9, "interval"), "at most 1e+09"),
    ("fraction: 2", lambda: _checks.fraction(2, "share"), "a fraction in (0, 1]"),
    ("flag: 1", lambda: _checks.flag(1, "on"), "expected True or False, received int 1"),
    ("optional_flag: 'no'", lambda: _checks.optional_flag("no", "progress"), "True, False or None"),
    ("choice: other", lambda: _checks.choice("xml", "format", ("csv", "parquet")), "expected 'csv' or 'parquet'"),
    ("choice: not a str", lambda: _checks.choice(None, "format", ("csv",)), "received NoneType None"),
    ("one_line: newline", lambda: _checks.one_line("a\nb", "cmdline"), "one line of text"),
    ("one_line: carriage return", lambda: _checks.one_line("a\rb", "cmdline"), "one line of text"),
    ("one_line: escape", lambda: _checks.one_line("a\x1b[2Jb", "cmdline"), "one line of text"),
    ("one_line: line separator", lambda: _checks.one_line("a\u2028b", "cmdline"), "one line of text"),
    ("one_line: list", lambda: _checks.one_line(["a"], "cmdline"), "expected a str"),
    ("size: huge", lambda: _checks.size(HUGE, "limit"), "at most 8 EiB"),
    ("size: long text", lambda: _checks.size("1" * 10_000, "limit"), "limit: expected a size"),
    ("path: None", lambda: _checks.path(None, "path"), "received NoneType None"),
    ("path: bytes", lambda: _checks.path(b"x", "path"), "received bytes b'x'"),
    ("path: NUL", lambda: _checks.path("a\0b", "path"), "no NUL character"),
    ("path: empty", lambda: _checks.path("", "path"), "not empty"),
    ("frame: list", lambda: _checks.frame([], "frame"), "expected a DataFrame, received list []"),
    ("frame: duplicate columns", lambda: _checks.frame(pd.DataFrame([[1, 2]], columns=["a", "a"]), "frame"),
     "a more than once"),
    ("frame: missing column", lambda: _checks.frame(pd.DataFrame({"a": [1]}), "frame", columns=["t"]), "the column(s) t"),
    ("frame: text column", lambda: _checks.frame(pd.DataFrame({"a": ["x"]}), "frame", numeric=["a"]),
     "numbers in column 'a'"),
    ("frame: bool column", lambda: _checks.frame(pd.DataFrame({"a": [True]}), "frame", numeric=["a"]),
     "numbers in column 'a'"),
    ("series: str", lambda: _checks.series("abc", "series"), "received str 'abc'"),
    ("series: 2-D", lambda: _checks.series([[1]], "series"), "one-dimensional"),
    ("series: inf", lambda: _checks.series([1, math.inf], "series"), "without inf"),
    ("series: bools", lambda: _checks.series([True], "series"), "received list [True]"),
    ("series: wrong length", lambda: _checks.series([1, 2], "calls", length=3), "3 values"),
    ("series: a generator", lambda: _checks.series(iter([1, 2]), "series"), "received list_iterator"),
]


@pytest.mark.parametrize("case, call, fragment", BAD, ids=[b[0] for b in BAD])
def test_bad_values_get_one_wording(case, call, fragment):
    with pytest.raises(InvalidArgumentError) as caught:
        call()
    message = str(caught.value)
    assert ": expected " in message and ", received " in message or "more than once" in message, message
    assert fragment in message, (fragment, message)


@_checks.strict
def _entry(path, *, limit=None, quiet=False):
    return path, limit, quiet


@pytest.mark.parametrize("call, kind, fragment", [
    (lambda: _entry("x", limt=3), UnknownOptionError, "_entry() got unknown option(s) limt; expected one of: limit"),
    (lambda: _entry(), InvalidArgumentError, "missing a required argument: 'path'"),
    (lambda: _entry("x", "y"), InvalidArgumentError, "too many positional arguments"),
    (lambda: _entry("x", limit=1, path="y"), InvalidArgumentError, "multiple values"),
])
def test_strict_turns_a_bad_call_into_leakkits_errors(call, kind, fragment):
    with pytest.raises(kind, match=None) as caught:
        call()
    assert fragment in str(caught.value)
    assert _entry("x", limit=2) == ("x", 2, False)


def test_describe_never_raises_and_never_prints_a_huge_value():
    class Hostile:
        def __repr__(self):
            raise RuntimeError("no")

    assert describe(Hostile()).startswith("Hostile <")
    assert describe(10**100_000) == "int of about 100001 digits"
    assert len(describe(list(range(1_000_000)))) < 100
    assert describe(os.environ).startswith("_Environ")
