"""A pricing service that holds five years of minute bars for 20 instruments in one
``pandas.DataFrame`` (~700 000 rows, ~40 MB of columns, an object column of instrument codes),
and answers each quote request with the last 30 bars of a column; it keeps every answered window
in ``SERVED_WINDOWS`` "for the audit export", which was never written.

Real leak (pandas) beside a huge standing heap, where each leaked object reaches all of it. A
column slice is a view: each kept ``Series`` is small (its index slice, its block manager, a few
hundred bytes, ~1.7 KB with the request's key) but holds a reference to the full 5.6 MB column it
views. What each call keeps is its own small objects; what each reaches is the whole frame's
column, shared by all of them. pandas objects refuse ``bool()``, compare elementwise with ``==``
and are unhashable.
"""
import itertools
import sys

import numpy as np
import pandas as pd
import pandas.core.indexing

ROWS = 700_000
_rng = np.random.default_rng(7)
BARS = pd.DataFrame({"close": 100 + _rng.standard_normal(ROWS).cumsum() * 0.01,
                     "volume": _rng.integers(1, 5000, ROWS),
                     "instrument": np.array([f"INS{i % 20:02d}" for i in range(ROWS)], dtype=object)})
SERVED_WINDOWS: list = []
_seq = itertools.count()


def quote_window(end: int, column: str = "close") -> float:
    window = BARS[column].iloc[end - 30:end]
    SERVED_WINDOWS.append((f"req-{end}", window))
    return float(window.mean())


def workload():
    n = next(_seq)
    quote_window(30 + (n * 7919) % (ROWS - 30))


def release():
    SERVED_WINDOWS.clear()


TARGETS = [sys.modules[__name__], pandas.core.indexing]
EXPECT = {"verdict": ["leak"], "culprit": ["quote_window", "_iLocIndexer._getitem_axis", "_LocationIndexer.__getitem__",
                                          "_iLocIndexer.__getitem__", "_iLocIndexer._get_slice_axis"],
          "root": ["rw61_pandas_windows_views.SERVED_WINDOWS"]}
TRUTH = {"kind": "leak", "calls": 300, "min_bytes_per_call": 500, "root": "rw61_pandas_windows_views.SERVED_WINDOWS",
         "root_grows_by": 0.95, "release": "release"}
