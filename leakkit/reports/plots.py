"""Matplotlib plots of recordings and verdicts; each takes ``ax=None`` and returns the Axes.

Byte axes are drawn in the binary unit that suits the data (B, KiB, MiB, GiB), named in the axis
label, never as raw bytes with a ``1e6`` offset; legends give rates the way the text reports do.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .._sizes import format_size

LEAK_COLORS = {"leak": "#c0392b", "plateau": "#d68910", "clean": "#1e8449", "inconclusive": "#7f8c8d"}
_UNITS = (("B", 1.0), ("KiB", 1024.0), ("MiB", 1024.0**2), ("GiB", 1024.0**3))


def axes(ax: Any, figsize: tuple[float, float] = (7, 3.5)) -> Any:
    """``ax`` if it is a matplotlib Axes, a new figure's Axes for None; anything else is refused
    before a line is drawn."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=figsize)
        return ax
    from matplotlib.axes import Axes

    if not isinstance(ax, Axes):
        from .._errors import expected

        raise expected("a matplotlib Axes or None", "ax", ax)
    return ax



def byte_unit(values: Any) -> tuple[str, float]:
    """The unit (name, divisor) whose numbers for ``values`` stay between 1 and 1024."""
    data = np.abs(np.asarray(values, dtype=float))
    data = data[np.isfinite(data)]
    top = float(data.max()) if len(data) else 0.0
    name, divisor = _UNITS[0]
    for name_, divisor_ in _UNITS:
        if top >= divisor_:
            name, divisor = name_, divisor_
    return name, divisor


def size_tick(value: float) -> str:
    """An axis tick in bytes: '512 B', '4 KiB', '1.5 MiB' (no '.0' on round numbers)."""
    for name, divisor in reversed(_UNITS):
        if abs(value) >= divisor or name == "B":
            number = value / divisor
            return f"{number:.0f} {name}" if float(number).is_integer() else f"{number:.3g} {name}"
    return f"{value:.0f} B"


def format_rate(rate: float, unit: str) -> str:
    """'+64.1 KiB/call' for bytes, '+2.00 blocks/call' otherwise."""
    if rate is None or not math.isfinite(rate):
        return "n/a"
    if unit == "bytes":
        return f"{format_size(rate, signed=True)}/call"
    return f"{rate:+.2f} {unit}/call"


def retained(x: Any, y: Any, *, verdict: str = "", rate: float = float("nan"), unit: str = "bytes",
             label: str = "kept after GC", title: str | None = None, fit_from: float | None = None,
             interval: tuple[float, float] | None = None, scale: tuple[str, float] | None = None,
             color: str | None = None, ax: Any = None) -> Any:
    """Memory kept since the first reading against calls, with the fitted rate as a dashed line.

    Args:
        x, y: call numbers and readings (bytes, or blocks with ``unit="blocks"``).
        rate: the rate per call the report gives (drawn over the readings it was fitted to).
        fit_from: first call of those readings; default: the later half, as
            :func:`leakkit.analysis.classify` fits.
        interval: the rate's interval, for the legend.
        scale: (unit name, divisor) for the y axis, when other series share it; default: the
            unit that suits ``y`` (see :func:`byte_unit`).
        color: of the readings; default: the verdict's.
    """
    ax = axes(ax)
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    ok = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[ok], ys[ok]
    color = color or LEAK_COLORS.get(verdict, "#2c3e50")
    base = ys[0] if len(ys) else 0.0
    name, divisor = scale or (byte_unit(ys - base) if unit == "bytes" else (unit, 1.0))
    ax.plot(xs, (ys - base) / divisor, "o-", color=color, label=label, markersize=3)
    if len(xs) >= 2 and np.isfinite(rate):
        start = (len(xs) - 1) // 2 if fit_from is None else int(np.searchsorted(xs, fit_from))
        start = min(max(start, 0), len(xs) - 2)
        x0 = xs[start]
        y0 = float(np.median(ys[start:] - base - rate * (xs[start:] - x0)))
        text = format_rate(rate, unit)
        if interval is not None and all(np.isfinite(interval)):
            text += f" [{format_rate(interval[0], unit).removesuffix('/call')}, " \
                    f"{format_rate(interval[1], unit).removesuffix('/call')}]"
        ax.plot([x0, xs[-1]], [y0 / divisor, (y0 + rate * (xs[-1] - x0)) / divisor], "--", color="black",
                linewidth=1, label=f"fit: {text}")
    ax.set_xlabel("call")
    ax.set_ylabel(f"kept since first reading ({name})")
    ax.set_title(title or (f"verdict: {verdict}" if verdict else "memory kept"))
    ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def deltas(calls: pd.DataFrame, *, column: str = "blocks_delta", ax: Any = None) -> Any:
    """Per-call deltas (one dot per call whose memory was read) and their running sum.

    Fast functions in a big heap have their memory read on a sample of calls (the others are
    NaN): the dots are the calls read, and the running sum adds only those, as the legend says.
    """
    ax = axes(ax)
    read = calls[["call", column]].dropna()
    sampled = len(read) < len(calls)
    bytes_column = "bytes" in column or column.startswith("rss")
    name, divisor = byte_unit(read[column]) if bytes_column else ("blocks" if "blocks" in column else column, 1.0)
    dots = ax.plot(read["call"], read[column] / divisor, ".", markersize=3, alpha=0.6,
                   label=f"{column} per call" + (" (calls read)" if sampled else ""))
    ax2 = ax.twinx()
    line = ax2.plot(read["call"], read[column].cumsum() / divisor, color="#8e44ad", linewidth=1,
                    label="running sum" + (" of the calls read" if sampled else ""))
    ax.set_xlabel("call")
    ax.set_ylabel(f"per call ({name})")
    ax2.set_ylabel(f"running sum ({name})", color="#8e44ad")
    if len(calls):
        ax.set_xlim(-0.5, float(calls["call"].max()) + 0.5)
    title = f"per-call {column}"
    if sampled and len(calls):
        title += f": memory read on {len(read)} of {len(calls)} calls"
    ax.set_title(title)
    ax.legend(dots + line, [d.get_label() for d in dots + line], loc="upper left", fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def growing_types(types: pd.DataFrame, *, top: int = 10, ax: Any = None) -> Any:
    """Horizontal bars of the types whose total size grew most (between the first and last summary)."""
    ax = axes(ax)
    rows = types.head(top).iloc[::-1] if len(types) else types
    name, divisor = byte_unit(rows["size_delta"]) if len(rows) else ("B", 1.0)
    if len(rows):
        ax.barh(rows["type"].astype(str), rows["size_delta"] / divisor, color="#c0392b")
        for i, (size, count) in enumerate(zip(rows["size_delta"], rows["count_delta"], strict=False)):
            ax.text(size / divisor, i, f"  {format_size(size, signed=True)} ({int(count):+d} objects)",
                    va="center", fontsize="small")
        ax.margins(x=0.35)
    ax.set_xlabel(f"size gained ({name})")
    ax.set_title("growing types")
    return ax
