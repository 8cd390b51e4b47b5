"""A pricing worker that warns with the offending value in the message text.

Real leak (stdlib). ``warnings.warn`` records every (text, category, line) it has shown in the
calling module's ``__warningregistry__`` dict (created by the C ``_warnings`` module in the
module's globals), so a message that differs per call adds an entry per call, forever. The fix
keeps the text constant and puts the value elsewhere (here: a counter), or uses logging.
"""
import itertools
import sys
import warnings

_seq = itertools.count()
shown = [0]


def _quiet_showwarning(message, category, filename, lineno, file=None, line=None):
    shown[0] += 1  # a service would log it; the registry entry exists either way


warnings.showwarning = _quiet_showwarning


class StalePriceWarning(UserWarning):
    pass


def price_item(sku: str, cents: int, age_s: float) -> int:
    if age_s > 30:
        warnings.warn(f"price for {sku} is {age_s:.1f}s old", StalePriceWarning, stacklevel=1)
    return cents


def price_item_fixed(sku: str, cents: int, age_s: float) -> int:
    if age_s > 30:
        warnings.warn("price is stale", StalePriceWarning, stacklevel=1)
    return cents


def workload():
    n = next(_seq)
    price_item(f"SKU-{n:06d}", 1999, 31.0 + n % 1000 / 10)


def workload_fixed():
    n = next(_seq)
    price_item_fixed(f"SKU-{n:06d}", 1999, 31.0 + n % 1000 / 10)


def release():
    globals()["__warningregistry__"].clear()


TARGETS = [sys.modules[__name__], warnings]
EXPECT = {"verdict": ["leak"], "culprit": ["price_item", "workload"],
          "root": ["rw02_warnings_registry.__warningregistry__"]}
TRUTH = {"kind": "leak", "calls": 300, "min_bytes_per_call": 100,
         "root": "rw02_warnings_registry.__warningregistry__", "root_grows_by": 0.9,
         "release": "release"}
