"""Arguments checked in one layer, with one wording, at every public entry point.

Why one layer: checks written by hand at each entry point drifted apart (one took ``limit=10**400``
and raised OverflowError deep inside, another took a directory as a file and raised
IsADirectoryError, a third read ``"abc"`` as a series). Each check here takes the value and the
argument's name, returns the value in the form the caller works with (an ``int``, a ``float``, a
``str`` path, a DataFrame), or raises :class:`~leakkit.InvalidArgumentError` worded
``"NAME: expected WHAT, received TYPE VALUE"``; :func:`strict` turns an unknown keyword into
:class:`~leakkit.UnknownOptionError` and a missing or extra argument into InvalidArgumentError.

Numbers: ``bool`` is never a number (``True`` is not 1 call); numpy's ints and floats are (a value
read from a DataFrame is one); an int too large for a float is refused, not overflowed.
"""
from __future__ import annotations

import functools
import inspect
import math
import numbers as _numbers
import os
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from ._errors import InvalidArgumentError, check_options, describe, expected

F = TypeVar("F", bound=Callable[..., Any])

INT_MAX = 2**63 - 1  # what a recording's integer columns (int64) hold
SECONDS_MAX = 10**9  # ~31 years: beyond, time.sleep and timeouts overflow


def _integral(value: Any) -> bool:
    return isinstance(value, _numbers.Integral) and not isinstance(value, bool)


def _real(value: Any) -> bool:
    return isinstance(value, _numbers.Real) and not isinstance(value, bool)


def _range_text(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f" in {minimum}..{maximum}"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


def integer(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None,
            what: str | None = None) -> int:
    """An int (numpy's too, not a bool) in ``minimum..maximum`` (at most :data:`INT_MAX` in any case).

    ``what`` replaces the generated description ("an int >= 1").
    """
    if not _integral(value) or (minimum is not None and value < minimum) \
            or value > (INT_MAX if maximum is None else maximum) or value < -INT_MAX:
        raise expected(what or f"an int{_range_text(minimum, maximum)}", name, value)
    return int(value)


def number(value: Any, name: str, *, minimum: float | None = None, maximum: float | None = None,
           above: float | None = None, what: str | None = None) -> float:
    """A finite real number (not a bool, not a str) within the bounds; returned as a float.

    ``above``: the least value excluded (``above=0``: positive). ``what`` replaces the generated
    description (``"a positive number of seconds"``).
    """
    description = what or ("a finite number" + (f" > {above}" if above is not None else "")
                           + _range_text(minimum, maximum))
    if not _real(value):
        raise expected(description, name, value)
    try:
        result = float(value)
    except (OverflowError, ValueError, TypeError):
        raise expected(description, name, value) from None
    if (not math.isfinite(result) or (above is not None and result <= above)
            or (minimum is not None and result < minimum) or (maximum is not None and result > maximum)):
        raise expected(description, name, value)
    return result


def seconds(value: Any, name: str, *, maximum: float = SECONDS_MAX) -> float:
    """A positive finite number of seconds (at most ``maximum``)."""
    return number(value, name, above=0, maximum=maximum, what="a positive number of seconds"
                  + (f" (at most {maximum:g})" if _real(value) and _finite_float(value) > maximum else ""))


def _finite_float(value: Any) -> float:
    try:
        return float(value)
    except (OverflowError, ValueError, TypeError):
        return math.inf


def fraction(value: Any, name: str) -> float:
    """A fraction in (0, 1]."""
    return number(value, name, above=0, maximum=1, what="a fraction in (0, 1], e.g. 0.05")


def flag(value: Any, name: str) -> bool:
    """True or False (not 1, not "yes")."""
    if not isinstance(value, bool):
        raise expected("True or False", name, value)
    return value


def optional_flag(value: Any, name: str) -> bool | None:
    """True, False or None (None: decide for me, e.g. a progress bar only on a terminal)."""
    if value is not None and not isinstance(value, bool):
        raise expected("True, False or None", name, value)
    return value


def choice(value: Any, name: str, options: Iterable[str]) -> str:
    """One of ``options`` (str)."""
    options = [repr(o) for o in options]
    if not isinstance(value, str) or repr(value) not in options:
        listed = options[0] if len(options) == 1 else f"{', '.join(options[:-1])} or {options[-1]}"
        raise expected(listed, name, value)
    return value


def one_line(value: Any, name: str, *, empty: bool = False) -> str:
    """A str on one line: no line break or other control character (it goes into a line-based file)."""
    if not isinstance(value, str) or (not empty and not value.strip()) \
            or any(ord(c) < 0x20 and c != "\t" or c in "\x7f\x85\u2028\u2029" for c in value):
        raise expected("one line of text (no line break or control character)" if isinstance(value, str)
                       else "a str", name, value)
    return value


def size(value: Any, name: str) -> int:
    """Bytes from an int or a string such as '256MiB' (see :func:`leakkit._sizes.parse_size`)."""
    from ._sizes import parse_size

    return parse_size(value, name)


def path(value: Any, name: str, *, error: type[Exception] = InvalidArgumentError) -> str:
    """A file path: a str or an os.PathLike giving one, not empty, without a NUL character.

    Only its form is checked here; what is at the path is :mod:`leakkit.recording.files`' job,
    where it is opened.
    """
    what = "a file path (str or os.PathLike)"
    if not isinstance(value, (str, os.PathLike)):
        raise _error(error, f"{name}: expected {what}, received {describe(value)}")
    try:
        text = os.fspath(value)
    except Exception:
        raise _error(error, f"{name}: expected {what}, received {describe(value)}") from None
    if not isinstance(text, str) or not text or "\0" in text:
        raise _error(error, f"{name}: expected {what} (not empty, no NUL character), received {describe(value)}")
    return text


def _error(kind: type[Exception], message: str) -> Exception:
    return kind(message)


def frame(value: Any, name: str, *, columns: Iterable[str] = (), numeric: Iterable[str] = (),
          readings: Iterable[str] = (), what: str = "a DataFrame") -> Any:
    """A pandas DataFrame with distinct column names, the ``columns`` given, and numbers in ``numeric``.

    ``readings``: memory readings (bytes), which where present must be finite and >= 0: a
    negative or infinite reading is a broken probe, not memory, and fitted it reads as a leak or
    as a shrink.
    """
    import numpy as np
    import pandas as pd

    if not isinstance(value, pd.DataFrame):
        raise expected(what, name, value)
    names = list(value.columns)
    if len(set(map(str, names))) != len(names):
        twice = sorted({str(c) for c in names if list(map(str, names)).count(str(c)) > 1})
        raise InvalidArgumentError(f"{name}: expected {what} with distinct column names, received the column(s) "
                                   f"{', '.join(twice)} more than once")
    missing = [c for c in columns if c not in value.columns]
    if missing:
        raise InvalidArgumentError(f"{name}: expected {what} with the column(s) {', '.join(map(str, columns))}, "
                                   f"received columns {', '.join(map(str, names)) or '(none)'}")
    for column in numeric:
        if column in value.columns and not (pd.api.types.is_numeric_dtype(value[column])
                                             and not pd.api.types.is_bool_dtype(value[column])):
            raise InvalidArgumentError(f"{name}: expected numbers in column {column!r}, received dtype "
                                       f"{value[column].dtype}")
    for column in readings:
        if column not in value.columns:
            continue
        cells = pd.to_numeric(value[column], errors="coerce")
        bad = cells.notna() & ~(np.isfinite(cells.to_numpy(dtype="float64", na_value=np.nan)) & (cells >= 0))
        if bad.any():
            raise InvalidArgumentError(f"{name}: expected finite byte counts >= 0 in column {column!r}, received "
                                       f"{float(cells[bad].iloc[0])!r} ({int(bad.sum())} such rows)")
    return value


T_MAX = 1e11  # seconds (~3000 years): a larger t is milliseconds or nanoseconds read as seconds


def timeline(value: Any, name: str, *, readings: Iterable[str] = (), what: str = "a DataFrame") -> Any:
    """A memory timeline: :func:`frame` with a ``t`` column of seconds, returned with ``t`` as floats.

    Why: a ``t`` of datetimes (a frame a user built, or one resampled by pandas) read as numbers is
    nanoseconds taken for seconds ("10 samples over 104 days"). Datetimes and timedeltas become
    seconds (since the first sample); numbers beyond :data:`T_MAX` (epoch milliseconds or
    nanoseconds) and text are refused. ``readings``: byte columns whose values, where present,
    must be finite and >= 0 (a negative or infinite reading is a broken probe, not memory);
    a ``pid`` column must hold whole numbers.
    """
    import numpy as np
    import pandas as pd

    value = frame(value, name, columns=("t",), readings=readings, what=f"{what} with a 't' column (seconds)")
    t = value["t"]
    if pd.api.types.is_object_dtype(t) and len(t) and t.dropna().map(
            lambda v: isinstance(v, (pd.Timestamp, np.datetime64)) or hasattr(v, "tzinfo")).all():
        try:
            t = pd.to_datetime(t, utc=True)
        except (TypeError, ValueError):
            pass
    if pd.api.types.is_datetime64_any_dtype(t):
        seconds_ = (t - t.min()).dt.total_seconds()
    elif pd.api.types.is_timedelta64_dtype(t):
        seconds_ = t.dt.total_seconds()
    elif pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t):
        seconds_ = t.astype("float64")
        largest = float(np.nanmax(np.abs(seconds_.to_numpy()))) if seconds_.notna().any() else 0.0
        if largest > T_MAX:
            raise InvalidArgumentError(
                f"{name}: expected seconds in column 't' (at most {T_MAX:g}), received values up to {largest:.4g}: "
                "milliseconds or nanoseconds? Divide them, or give datetimes")
    else:
        raise InvalidArgumentError(f"{name}: expected numbers (seconds) or datetimes in column 't', received dtype "
                                   f"{t.dtype} ({describe(t.iloc[0]) if len(t) else 'empty'})")
    if "pid" in value.columns:
        pids = value["pid"].dropna()
        if not (pd.api.types.is_numeric_dtype(pids) and not pd.api.types.is_bool_dtype(pids)
                and bool((pids == pids.round()).all())):
            raise InvalidArgumentError(f"{name}: expected whole numbers (process ids) in column 'pid', received dtype "
                                       f"{pids.dtype} ({describe(pids.iloc[0]) if len(pids) else 'empty'})")
    if seconds_ is t or t.dtype == "float64" and seconds_.equals(value["t"]):
        return value
    return value.assign(t=seconds_.to_numpy(dtype="float64"))


def series(value: Any, name: str, *, finite: bool = True, length: int | None = None) -> Any:
    """A 1-D sequence of real numbers (a list, an array, a pandas Series), as a float64 ndarray.

    A str, a mapping, None, nested lists, text or bools are refused; ``finite``: no inf (NaN is a
    missing reading and is allowed); ``length``: exactly that many values.
    """
    import numpy as np

    what = "a sequence of numbers (list, array or Series)"
    if value is None or isinstance(value, (str, bytes, dict)) or not hasattr(value, "__len__"):
        raise expected(what, name, value)
    try:
        array = np.asarray(value)
    except Exception:
        raise expected(what, name, value) from None
    if array.ndim == 1 and array.dtype.kind == "O" and all(_real(v) or v is None for v in array.tolist()):
        array = np.array([math.nan if v is None else float(v) for v in array.tolist()], dtype="float64")
    if array.ndim != 1 or array.dtype.kind not in "iuf":
        raise expected(what if array.ndim == 1 else f"{what}, one-dimensional", name, value)
    array = array.astype("float64")
    if finite and np.isinf(array).any():
        raise expected(f"{what} without inf", name, value)
    if length is not None and len(array) != length:
        raise expected(f"{length} values (as many as the series)", name, value)
    return array


def strict(func: F) -> F:
    """A public function whose bad calls get leakkit's errors, not a bare TypeError.

    An unknown keyword raises :class:`~leakkit.UnknownOptionError` naming the known ones; a missing
    argument, or more positional ones than it takes, raises InvalidArgumentError.
    """
    signature = inspect.signature(func)
    parameters = signature.parameters.values()
    known = frozenset(p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
                      and p.name not in ("self", "cls"))
    open_keywords = any(p.kind is p.VAR_KEYWORD for p in parameters)
    qualname = getattr(func, "__qualname__", getattr(func, "__name__", "function"))
    # a constructor is named by its class (Monitor(), not __init__()), a method by Class.method
    title = qualname[: -len(".__init__")] if qualname.endswith(".__init__") else qualname
    title = title.rpartition("<locals>.")[2]

    @functools.wraps(func)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if not open_keywords and kwargs.keys() - known:
            check_options(title, kwargs, known)
        try:
            signature.bind(*args, **kwargs)
        except TypeError as error:
            raise InvalidArgumentError(f"{title}(): expected arguments {signature}, received "
                                       f"{len(args)} positional and {', '.join(kwargs) or 'no'} keyword: {error}") from None
        return func(*args, **kwargs)

    checked.__signature__ = signature  # type: ignore[attr-defined]
    return checked  # type: ignore[return-value]


__all__ = ["INT_MAX", "SECONDS_MAX", "T_MAX", "choice", "flag", "fraction", "frame", "integer", "number",
           "one_line", "optional_flag", "path", "series", "seconds", "size", "strict", "timeline"]
