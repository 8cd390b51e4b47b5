"""The pytest plugin's settings: the command line, else the ini file, else leakkit's default.

The plugin's options default to None, not False or a number, so that an ini setting is read when
the command line says nothing; each value is read once at configure time, so a bad one stops the
session with pytest's UsageError (what was expected, what came, and from where) before any test
runs. The marker, the fixture and ``--leakcheck-all`` read their settings here alike.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest


def given(config: pytest.Config, name: str) -> bool:
    """Whether the command line or the ini file sets option ``name`` (its dest, ``leakcheck_calls``)."""
    return config.getoption(name) is not None or bool(str(config.getini(name) or "").strip())


def flag(config: pytest.Config, name: str) -> bool:
    """A flag from the command line, else the ini file (the option defaults to None, not False)."""
    value = config.getoption(name)
    return bool(config.getini(name)) if value is None else bool(value)


def read_int(config: pytest.Config, name: str, *, default: int, minimum: int | Callable[[], int]) -> int:
    """An int option ``name`` (``--leakcheck-calls``, else ini ``leakcheck_calls``), at least ``minimum``.

    ``minimum`` may be a function: it is called only when a value was given, so that a bound kept
    in a module slow to import (``leakkit.engine.run.MIN_CALLS``) costs nothing in a session that
    sets nothing. Raises pytest.UsageError on a value that is not an int or is too small.
    """
    value, source = _raw(config, name)
    if value is None:
        return default
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise pytest.UsageError(f"{source}: expected an int, received {value!r}") from None
    bound = minimum() if callable(minimum) else minimum
    if value < bound:
        raise pytest.UsageError(f"{source}: expected an int >= {bound}, received {value}")
    return int(value)


def read_seconds(config: pytest.Config, name: str, *, default: float) -> float:
    """A duration option ``name`` in seconds; raises pytest.UsageError unless positive and finite."""
    value, source = _raw(config, name)
    if value is None:
        return default
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise pytest.UsageError(f"{source}: expected a number of seconds, received {value!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise pytest.UsageError(f"{source}: expected a positive number of seconds, received {value}")
    return float(value)


def _raw(config: pytest.Config, name: str) -> tuple[Any, str]:
    """The command line's value (typed by argparse), else the ini file's text stripped, else None;
    with where it came from, for the message."""
    value = config.getoption(name)
    if value is not None:
        return value, "--" + name.replace("_", "-")
    text = config.getini(name)
    if text is None or str(text).strip() == "":
        return None, ""
    return str(text).strip(), f"ini setting {name}"


def read_factor(config: pytest.Config, name: str, *, default: float, above: float) -> float:
    """A factor option ``name`` (``inf`` allowed: no limit); raises pytest.UsageError unless over ``above``."""
    value, source = _raw(config, name)
    if value is None:
        return default
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise pytest.UsageError(f"{source}: expected a number (or inf), received {value!r}") from None
    if math.isnan(value) or value <= above:
        raise pytest.UsageError(f"{source}: expected a number over {above:g} (or inf), received {value}")
    return float(value)
