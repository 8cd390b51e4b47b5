"""Matplotlib plots of recordings and verdicts; each takes ``ax=None`` and returns the Axes."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ._sizes import format_size

LEAK_COLORS = {"leak": "#c0392b", "plateau": "#d68910", "clean": "#1e8449", "inconclusive": "#7f8c8d"}


def _axes(ax: Any) -> Any:
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(7, 3.5))
    return ax


def retained(x: Any, y: Any, *, verdict: str = "", rate: float = float("nan"), unit: str = "bytes",
             label: str = "retained after GC", title: str | None = None, ax: Any = None) -> Any:
    """Retained memory against calls, with the tail's fitted rate as a dashed line."""
    ax = _axes(ax)
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    color = LEAK_COLORS.get(verdict, "#2c3e50")
    base = ys[0] if len(ys) else 0.0
    ax.plot(xs, ys - base, "o-", color=color, label=label, markersize=3)
    if len(xs) >= 2 and np.isfinite(rate):
        start = (len(xs) - 1) // 2
        x0, y0 = xs[start], np.median(ys[start:] - base - rate * (xs[start:] - xs[start]))
        ax.plot([x0, xs[-1]], [y0, y0 + rate * (xs[-1] - x0)], "--", color="black", linewidth=1,
                label=f"fit: {rate:+.3g} {unit}/call")
    ax.set_xlabel("call")
    ax.set_ylabel(f"{unit} kept since first reading")
    ax.set_title(title or (f"verdict: {verdict}" if verdict else "retained memory"))
    ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def deltas(calls: pd.DataFrame, *, column: str = "blocks_delta", ax: Any = None) -> Any:
    """Per-call deltas (one dot per call) with their running sum."""
    ax = _axes(ax)
    ax.plot(calls["call"], calls[column], ".", markersize=3, alpha=0.6, label=column)
    ax2 = ax.twinx()
    ax2.plot(calls["call"], calls[column].cumsum(), color="#8e44ad", linewidth=1, label="running sum")
    ax.set_xlabel("call")
    ax.set_ylabel(column)
    ax2.set_ylabel("running sum")
    ax.set_title(f"per-call {column}")
    ax.grid(alpha=0.3)
    return ax


def growing_types(types: pd.DataFrame, *, top: int = 10, ax: Any = None) -> Any:
    """Horizontal bars of the types whose total size grew most."""
    ax = _axes(ax)
    rows = types.head(top).iloc[::-1] if len(types) else types
    if len(rows):
        ax.barh(rows["type"].astype(str), rows["size_delta"], color="#c0392b")
        for i, (size, count) in enumerate(zip(rows["size_delta"], rows["count_delta"], strict=False)):
            ax.text(size, i, f"  {format_size(size, signed=True)} ({int(count):+d})", va="center", fontsize="small")
    ax.set_xlabel("bytes gained")
    ax.set_title("growing types")
    return ax
