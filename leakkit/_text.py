"""Text that reads: lines wrapped at a width instead of cut at the right edge, numbers with units.

Every report's ``__str__`` goes through :func:`wrap_lines`; tables shown in text or HTML go
through :func:`humanize` (DataFrames keep their raw numbers; only what is displayed changes).
"""
from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable
from typing import Any

from . import _checks
from ._sizes import format_size

WIDTH = 100


def wrap_lines(lines: Iterable[str], width: int = WIDTH) -> str:
    """Join lines, wrapping each longer than ``width`` under its own indent (plus four spaces).

    The first line, a report's headline, is never wrapped: tools read it as one line (a pytest
    warning quotes it, people grep for it).
    """
    out: list[str] = []
    for index, line in enumerate(lines):
        if len(line) <= width or index == 0:
            out.append(line)
            continue
        indent = " " * (len(line) - len(line.lstrip()))
        out.extend(textwrap.wrap(line.strip(), width, initial_indent=indent, subsequent_indent=indent + "    ",
                                 break_long_words=False, break_on_hyphens=False) or [line])
    return "\n".join(out)


def interval(low: float, high: float, fmt: Any = None) -> str:
    """'[+1.0 KiB, +1.2 KiB]' (``fmt`` formats one end; sizes by default); '' when either end is missing."""
    if not (_finite(low) and _finite(high)):
        return ""
    fmt = fmt or (lambda v: format_size(v, signed=True))
    return f"[{fmt(low)}, {fmt(high)}]"


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _is_bytes(column: str) -> bool:
    name = str(column)
    return ("bytes" in name or name in ("size", "size_delta", "size_per_call", "rss", "uss", "pss", "swap")
            or name.endswith(("_rss", "_uss", "_pss", "_swap")))


def _format_cell(column: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    name = str(column)
    if _is_bytes(name):
        signed = any(word in name for word in ("delta", "per_call", "per_loop", "growth", "native"))
        return format_size(value, signed=signed)
    if name.endswith("_s") and name != "unix_time_s":
        return f"{value:.3g} s"
    if name == "unix_time_s":
        import datetime

        return datetime.datetime.fromtimestamp(float(value)).isoformat(sep=" ", timespec="seconds")
    if float(value).is_integer():
        return f"{int(value):,}".replace(",", " ") if abs(value) >= 10_000 else str(int(value))
    return f"{value:.3g}"


@_checks.strict
def humanize(frame: Any) -> Any:
    """A copy of a DataFrame for display: byte columns as KiB/MiB, whole numbers without '.0',
    times as dates. For reading only: compute on the original, whose numbers are raw."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        from ._errors import expected

        raise expected("a DataFrame", "frame", frame)
    shown = pd.DataFrame(index=frame.index)
    for column in frame.columns:
        shown[column] = [_format_cell(column, value) for value in frame[column].tolist()]
    return shown
