"""Which rows and which limit a forecast reads: one process's series, never several mixed.

Why apart: every forecast (one process, every worker of a server, ``leakkit report``) must refuse
a series that mixes processes the same way, and find its limit the same way (given, recorded
with the watch, or the cgroup's), so that a number means the same wherever it is printed.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._errors import InvalidArgumentError, MixedProcessesError, expected
from .._sizes import parse_size
from ..analysis.forecast import MIN_SAMPLES


def one_process(frame: pd.DataFrame, pid: int | None = None) -> pd.DataFrame:
    """The rows of one process: refuse a series that mixes processes, never fit it.

    A frame with a ``pid`` column and rows of several pids needs ``pid``; a file several
    processes appended to with no pid column (``attrs["mixed_processes"]``), or a frame with two
    rows at one time and no pid column, cannot be split and is refused (MixedProcessesError).
    """
    if frame.attrs.get("mixed_processes"):
        raise MixedProcessesError(f"frame: expected one process's samples, received rows of several: "
                                  f"{frame.attrs['mixed_processes']}. Record one file per process (a pid in "
                                  f"its name) or with a pid column; these rows cannot be told apart")
    if "pid" in frame.columns:
        pids = sorted(int(p) for p in pd.unique(frame["pid"].dropna()))
        if pid is not None:
            if pid not in pids:
                raise expected(f"a pid of the frame ({', '.join(map(str, pids))})", "pid", pid)
            return frame[frame["pid"] == pid]
        if len(pids) > 1:
            shown = ", ".join(map(str, pids[:12])) + (", ..." if len(pids) > 12 else "")
            root = frame.attrs.get("pid")
            watched = f"pid={root} for the process watched" if root in pids else "pid=PID"
            raise MixedProcessesError(
                f"frame: expected one process's series, received rows of {len(pids)} processes (pids {shown}): "
                f"a memory limit is per process, and a line through several is no one's. Forecast one with "
                f"forecast(frame, {watched}), every one with leakkit.forecast_workers(frame), or watch the "
                f"process alone with watch(..., children=False) (the default before watch followed workers)")
        return frame
    if pid is not None:
        raise expected("a frame with a pid column (from leakkit.watch), or no pid", "pid", pid)
    times = pd.to_numeric(frame["t"], errors="coerce").dropna()
    if len(times) >= MIN_SAMPLES and times.duplicated().sum() > 0.1 * len(times):
        raise MixedProcessesError(f"frame: expected one process's series, received {int(times.duplicated().sum())} "
                                  f"rows at a time another row already has and no pid column: several processes' "
                                  f"samples, which cannot be told apart")
    return frame


def series(frame: pd.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Times and bytes of column ``name``, sorted, checked (finite, >= 0, enough samples over time)."""
    data = frame[["t", name]].apply(pd.to_numeric, errors="coerce").dropna().sort_values("t")
    bad = ~np.isfinite(data.to_numpy(dtype=float)).all(axis=1) | (data[name].to_numpy(dtype=float) < 0)
    if bad.any():  # an inf or negative reading is a broken probe, not memory: "now inf GiB" helps nobody
        row = data[bad].iloc[0]
        raise InvalidArgumentError(f"frame: expected finite times and byte counts >= 0 in 't' and {name!r}, "
                                   f"received t={row['t']!r}, {name}={row[name]!r} ({int(bad.sum())} such rows)")
    if len(data) < MIN_SAMPLES or data["t"].iloc[-1] <= data["t"].iloc[0]:
        raise InvalidArgumentError(
            f"frame: expected at least {MIN_SAMPLES} samples of {name!r} spread over time, received {len(data)}"
        )
    return data["t"].to_numpy(dtype=float), data[name].to_numpy(dtype=float)


def pick_limit(frame: pd.DataFrame, limit: Any) -> tuple[int | None, str | None]:
    """The limit and where it came from: given, recorded with the watch, or the cgroup's."""
    if limit is not None:
        return parse_size(limit, "limit"), "given"
    if frame.attrs.get("limit_bytes"):
        return parse_size(frame.attrs["limit_bytes"], "limit"), "recorded"
    if frame.attrs.get("cgroup_limit_bytes"):
        return (parse_size(frame.attrs["cgroup_limit_bytes"], "limit"),
                str(frame.attrs.get("cgroup_limit_source") or "the cgroup's memory limit"))
    return None, None


def without_snapshots(rows: pd.DataFrame) -> pd.DataFrame:
    """A monitor recording's byte columns less what leakkit's own snapshots added (``snapshot_<column>``):
    that memory is not the application's, and left in it reads as growth."""
    own = [c for c in ("rss", "uss", "pss") if c in rows.columns and f"snapshot_{c}" in rows.columns]
    if not own:
        return rows
    rows = rows.copy()
    for column in own:
        mine = pd.to_numeric(rows[f"snapshot_{column}"], errors="coerce").fillna(0)
        rows[column] = pd.to_numeric(rows[column], errors="coerce") - mine
    return rows
