"""The tables of a bisect report, built from the plain record the judge reads (duck-typed:
``x``, the series per function and path, the survivors): kept apart from the judge, which decides.

Columns are documented with :class:`leakkit.reports.bisect_report.BisectReport`.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from ..analysis import classify

FUNC_FLOOR = 512

def function_series(record: Any, names: list[str]) -> pd.DataFrame:
    """Long frame of the self-retained bytes of the given functions at each checkpoint."""
    rows = [{"call": call, "function": name, "retained_bytes": value - record.self_bytes[name][0]}
            for name in names if name in record.self_bytes
            for call, value in zip(record.x, record.self_bytes[name], strict=True)]
    return pd.DataFrame(rows, columns=["call", "function", "retained_bytes"])


def series_frame(record: Any) -> pd.DataFrame:
    return pd.DataFrame({"call": record.x, "retained_bytes": record.total_bytes,
                         "retained_blocks": record.total_blocks, "rss": record.rss,
                         "native_bytes": record.native_rss, "malloc_native_bytes": record.native_malloc})


def paths_and_tasks(record: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    x = record.x
    path_rows = []
    for path, series in record.path_bytes.items():
        g = classify(x, series, floor=FUNC_FLOOR)
        path_rows.append({"path": " -> ".join(path), "function": path[-1], "bytes_per_call": g.rate,
                          "verdict": g.verdict})
    paths_frame = pd.DataFrame(path_rows, columns=["path", "function", "bytes_per_call", "verdict"])
    if len(paths_frame):
        paths_frame = paths_frame.sort_values("bytes_per_call", ascending=False).reset_index(drop=True)
    # By task: the outermost target frame of each path is what a task or thread runs (an asyncio
    # task's stack starts at its coroutine, a pool thread's at the submitted function).
    task_series: dict[str, list[float]] = {}
    for path, series in record.path_bytes.items():
        acc = task_series.setdefault(path[0], [0.0] * len(series))
        for i, value in enumerate(series):
            acc[i] += value
    task_rows = []
    for task, series in task_series.items():
        g = classify(x, series, floor=FUNC_FLOOR)
        task_rows.append({"task": task, "bytes_per_call": g.rate, "final_bytes": series[-1] - series[0],
                          "verdict": g.verdict})
    tasks_frame = pd.DataFrame(task_rows, columns=["task", "bytes_per_call", "final_bytes", "verdict"])
    if len(tasks_frame):
        tasks_frame = tasks_frame.sort_values("bytes_per_call", ascending=False).reset_index(drop=True)
    return paths_frame, tasks_frame


def growing_types(record: Any, culprit: str | None, paths: list[Any]) -> pd.DataFrame:
    root = paths[0].root if paths else None
    rows = [{"type": t, "count": c, "size": s, "function": f, "site": site,
             "root": root if f == culprit else None} for t, f, site, c, s in record.survivors]
    frame = pd.DataFrame(rows, columns=["type", "count", "size", "function", "site", "root"])
    return frame.sort_values("size", ascending=False).reset_index(drop=True)


GROWER_COLUMNS = ["holder", "root", "culprit", "verdict", "bytes_per_call", "bytes_per_call_low", "bytes_per_call_high",
                  "entries_before", "entries", "bound", "bound_kind", "maxsize", "calls_to_fill", "kept_bytes", "why"]
_ORDER = {"leak": 0, "filling": 1, "inconclusive": 2, "plateau": 3, "clean": 4}


def growers_frame(growers: list[Any], calls: int) -> pd.DataFrame:
    """One row per holder that grew (judged on its own series), the leaks first, fastest first."""
    rows = []
    for g in growers:
        h = g.holder
        bound = h.bound if h.bound is not None else h.declared
        rows.append({
            "holder": h.holder, "root": h.root, "culprit": h.maker, "verdict": g.verdict,
            "bytes_per_call": g.growth.rate, "bytes_per_call_low": g.growth.rate_low,
            "bytes_per_call_high": g.growth.rate_high, "entries_before": h.old_len, "entries": h.new_len,
            "bound": "" if bound is None else str(bound), "bound_kind": None if bound is None else bound.how,
            "maxsize": float("nan") if bound is None else float(bound.maxsize),
            "calls_to_fill": float(g.left) if g.verdict == "filling" and g.left is not None else float("nan"),
            "kept_bytes": h.kept_bytes, "why": g.why})
    frame = pd.DataFrame(rows, columns=GROWER_COLUMNS)
    if len(frame):
        frame["_rank"] = frame["verdict"].map(_ORDER).fillna(5)
        frame = frame.sort_values(["_rank", "bytes_per_call"], ascending=[True, False]).drop(columns="_rank")
    return frame.reset_index(drop=True)
