"""The verdict on a trace recording: numbers first, with text and HTML forms and a plot."""
from __future__ import annotations

import html
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import _checks
from .._errors import expected
from .._sizes import format_size
from .._text import interval, wrap_lines
from ..analysis import Growth, classify
from ..recording.tables import Recording
from . import plots, trace_growers
from .html import figure_html

BLOCKS_FLOOR = 8  # noise after a full collection, in blocks (a shell or test runner adds a few)
BYTES_FLOOR = 512
BYTES_LEAK_FLOOR = 64 << 10  # bytes alone call a leak only past allocator noise (malloc's per-thread caches)
NATIVE_FLOOR = 1 << 20  # RSS/USS move by pages and arenas: below 1 MiB it is not a finding


@dataclass
class TraceReport:
    """Verdict on one traced function: ``verdict``, rates per call with ~95% intervals, growing types.

    Every rate is the Theil-Sen slope fitted to the later half of the checkpoints (readings after a
    full garbage collection), with Sen's rank-based ~95% interval; the text, the HTML and the plot
    show these same numbers. ``bytes_per_call`` comes from ``bytes_source``: bytes held through
    tracemalloc's traced bytes when it was on, else pymalloc and malloc together where they can
    be read (Linux/glibc), else the type summaries' total size.
    """

    function: str
    verdict: str
    calls: int
    errors: int
    blocks: Growth
    bytes_per_call: float
    bytes_per_call_low: float
    bytes_per_call_high: float
    bytes_source: str
    native: Growth | None
    growing_types: pd.DataFrame
    reason: str
    recording: Recording = field(repr=False)
    bytes: Growth | None = None  # the bytes series' full verdict (None when not measured)
    native_column: str = "uss"
    growers: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=trace_growers.COLUMNS))

    @property
    def blocks_per_call(self) -> float:
        return self.blocks.rate

    @property
    def blocks_per_call_interval(self) -> tuple[float, float]:
        return (self.blocks.rate_low, self.blocks.rate_high)

    @property
    def bytes_per_call_interval(self) -> tuple[float, float]:
        return (self.bytes_per_call_low, self.bytes_per_call_high)

    def __repr__(self) -> str:
        rate = (f"{format_size(self.bytes_per_call, signed=True)}/call" if math.isfinite(self.bytes_per_call)
                else f"{self.blocks.rate:+.2f} blocks/call")
        return f"<TraceReport {self.function}: {self.verdict}, {rate}, {self.calls} calls>"

    def _fit_note(self) -> str:
        g = self.bytes if self.bytes is not None else self.blocks
        readings = g.extra.get("tail_readings")
        start = g.extra.get("tail_from")
        if readings is None or start is None:
            return "Theil-Sen rate over the checkpoints, ~95% interval"
        return f"Theil-Sen fit to the {readings} checkpoints from call {start:.0f}, ~95% interval"

    def _lines(self) -> list[str]:
        lines = [f"leakkit: {self.function}: {self.verdict.upper()} after {self.calls} calls ({self.reason})"]
        b = self.blocks
        kept = []
        if math.isfinite(self.bytes_per_call):
            kept.append(f"{format_size(self.bytes_per_call, signed=True)} "
                        f"{interval(self.bytes_per_call_low, self.bytes_per_call_high)}".rstrip())
        if math.isfinite(b.rate):
            kept.append(f"{b.rate:+.2f} blocks {interval(b.rate_low, b.rate_high, lambda v: f'{v:+.2f}')}".rstrip())
        if kept:
            lines.append(f"  kept per call: {', '.join(kept)}")
            source = f"; bytes {_short(self.bytes_source)}" \
                if math.isfinite(self.bytes_per_call) else "; bytes not measured (a block is one allocation of any size)"
            lines.append(f"    {self._fit_note()}{source}")
            lines.append(f"  grew in {b.growth_times} of {b.intervals} checkpoint intervals")
        if self.native is not None and math.isfinite(self.native.rate):
            n = self.native
            lines.append(f"  process memory ({self.native_column}) per call: {format_size(n.rate, signed=True)} "
                         f"{interval(n.rate_low, n.rate_high)}")
        if self.verdict == "inconclusive" and b.calls_to_decide:
            lines.append(f"  about {b.calls_to_decide} more calls would decide")
        lines.extend(trace_growers.lines(self.growers))
        if self.errors:
            lines.append(f"  {self.errors} calls raised")
        types = _notable(self.growing_types)
        if len(types) and self.verdict != "clean":
            summaries = self.recording.summaries
            first, last = int(summaries["call"].min()), int(summaries["call"].max())
            lines.append(f"  growing types (type summaries at calls {first} and {last}; per call):")
            width = min(max(len(str(t)) for t in types["type"].head(5)), 48)
            for row in types.head(5).itertuples():
                lines.append(f"    {str(row.type):{width}s}  {row.count_per_call:+8.2f} objects  "
                             f"{format_size(row.size_per_call, signed=True):>11s}")
            seen = float(self.growing_types["size_per_call"].clip(lower=0).sum())
            rate = self.bytes_per_call
            if self.bytes is not None and math.isfinite(rate) and rate > 0 and seen < 0.5 * rate and rate - seen > 256:
                # type summaries count what pympler counts: objects the collector tracks and their
                # direct referents, not the values inside untracked containers
                lines.append(f"    these types hold {format_size(seen)} of the {format_size(rate)} kept per call; the rest "
                             "is where type summaries do not look (the values of plain dicts and tuples of "
                             "atoms: bytes, bytearray, str), or outside Python objects")
        return lines

    def __str__(self) -> str:
        return wrap_lines(self._lines())

    def _repr_html_(self) -> str:
        color = plots.LEAK_COLORS.get(self.verdict, "#333")
        lines = self._lines()
        items = []
        for line in lines[1:]:
            if line.startswith("    "):  # a detail of the line above
                items[-1] += f"<br><span style='margin-left:1.5em'>{html.escape(line.strip())}</span>"
            else:
                items.append(html.escape(line.strip()))
        rows = "".join(f"<li>{item}</li>" for item in items)
        return (f"<div style='white-space:normal'><b>leakkit</b> {html.escape(self.function)}: "
                f"<b style='color:{color}'>{self.verdict.upper()}</b> after {self.calls} calls "
                f"({html.escape(self.reason)})<ul>{rows}</ul>{figure_html(self)}</div>")

    def plot(self, ax: Any = None, *, series: str = "auto") -> Any:
        """Memory kept after GC at each checkpoint, with the fitted rate per call the text gives.

        ``series``: "bytes", "blocks", or "auto" (bytes when they were measured).
        """
        if not (isinstance(series, str) and series in ("auto", "bytes", "blocks")):
            raise expected("'auto', 'bytes' or 'blocks'", "series", series)
        ax = plots.axes(ax)
        ckpt = self.recording.checkpoints
        column = _BYTE_COLUMNS.get(self.bytes_source.split(" (")[0])
        use_bytes = series == "bytes" or (series == "auto" and column is not None and self.bytes is not None)
        title = f"{self.function}: {self.verdict}"
        if use_bytes and column is not None:
            g = self.bytes if self.bytes is not None else self.blocks
            return plots.retained(ckpt["call"], ckpt[column], verdict=self.verdict, rate=self.bytes_per_call,
                                  interval=self.bytes_per_call_interval, fit_from=g.extra.get("tail_from"),
                                  unit="bytes", label=f"bytes kept after GC ({_short(self.bytes_source)})",
                                  title=title, ax=ax)
        return plots.retained(ckpt["call"], ckpt["blocks"], verdict=self.verdict, rate=self.blocks.rate,
                              interval=self.blocks_per_call_interval, fit_from=self.blocks.extra.get("tail_from"),
                              unit="blocks", label="blocks kept after GC", title=title, ax=ax)

    def plot_deltas(self, ax: Any = None) -> Any:
        """Per-call blocks kept and their running sum."""
        return plots.deltas(self.recording.calls, ax=ax)

    def plot_types(self, ax: Any = None) -> Any:
        """The types that grew most between the first and last type summary (those the text lists)."""
        return plots.growing_types(_notable(self.growing_types), ax=ax)


_SHORT_SOURCE = {"pymalloc + malloc in use, after GC": "held by pymalloc + malloc",
                 "tracemalloc, after GC": "traced by tracemalloc",
                 "shallow size of all objects, from type summaries": "type summaries' total size"}


def _short(source: str) -> str:
    base, _, rest = source.partition(" (")
    return _SHORT_SOURCE.get(base, base) + (f" ({rest}" if rest else "")


def _notable(types: pd.DataFrame) -> pd.DataFrame:
    """Growing types worth a line: a real share of the top type's growth, or an object every few calls."""
    if types.empty:
        return types
    top = float(types["size_delta"].max())
    return types[(types["size_delta"] >= 0.05 * top) | (types["count_per_call"] >= 0.25)]


_BYTE_COLUMNS = {"pymalloc + malloc in use, after GC": "allocated_bytes", "tracemalloc, after GC": "traced_bytes",
                 "shallow size of all objects, from type summaries": "heap_bytes"}


def growing_types(summaries: pd.DataFrame) -> pd.DataFrame:
    """Types whose count or size grew between the first and the last summary, largest first.

    Columns: ``type``, ``count`` and ``size`` (bytes, shallow) at the last summary,
    ``count_delta`` and ``size_delta`` (bytes) since the first, and both per call between the
    two summaries (``count_per_call``, ``size_per_call``).
    """
    if summaries.empty or summaries["call"].nunique() < 2:
        return pd.DataFrame(columns=["type", "count", "size", "count_delta", "size_delta", "count_per_call",
                                     "size_per_call"])
    first_call, last_call = summaries["call"].min(), summaries["call"].max()
    first = summaries[summaries["call"] == first_call].set_index("type")[["count", "size"]]
    last = summaries[summaries["call"] == last_call].set_index("type")[["count", "size"]]
    joined = last.join(first.add_suffix("_before"), how="outer").fillna(0)
    frame = pd.DataFrame({
        "type": joined.index,
        "count": joined["count"].astype("int64").values,
        "size": joined["size"].astype("int64").values,
        "count_delta": (joined["count"] - joined["count_before"]).astype("int64").values,
        "size_delta": (joined["size"] - joined["size_before"]).astype("int64").values,
    })
    frame["count_per_call"] = frame["count_delta"] / max(last_call - first_call, 1)
    frame["size_per_call"] = frame["size_delta"] / max(last_call - first_call, 1)
    frame = frame[(frame["count_delta"] > 0) | (frame["size_delta"] > 0)]
    return frame.sort_values(["size_delta", "count_delta"], ascending=False).reset_index(drop=True)


def _bytes_rate(ckpt: pd.DataFrame) -> tuple[Growth | None, float, float, float, str]:
    """The bytes series a report uses (the first one measured, most complete first) and its rate."""
    # tracemalloc first when it ran: exact for every Python allocation and numpy's buffers, while
    # its own tables (a few dozen bytes per live block) blur malloc's count
    for column, source in (("traced_bytes", "tracemalloc, after GC"),
                           ("allocated_bytes", "pymalloc + malloc in use, after GC"),
                           ("heap_bytes", "shallow size of all objects, from type summaries")):
        if column not in ckpt.columns:
            continue
        points = ckpt[["call", column]].dropna()
        if len(points) >= 4:
            g = classify(points["call"], points[column], floor=BYTES_FLOOR)
            return g, g.rate, g.rate_low, g.rate_high, source
        if len(points) >= 2:
            dx = points["call"].iloc[-1] - points["call"].iloc[0]
            if dx > 0:
                rate = (points[column].iloc[-1] - points[column].iloc[0]) / dx
                return None, rate, math.nan, math.nan, source + (
                    f" (two readings, calls {points['call'].iloc[0]:.0f} and {points['call'].iloc[-1]:.0f}: no interval)")
    return None, math.nan, math.nan, math.nan, "not measured"


def trace_report(rec: Recording, *, function: str,
                 holders: Callable[[list[str]], Any] | None = None) -> TraceReport:
    """Judge a recording: leak / plateau / clean / inconclusive from its checkpoint series.

    Args:
        rec: the recording (its checkpoints decide; its summaries name the growing types).
        function: the name to report under.
        holders: for a live trace, a function returning the containers that grew since its
            baseline, named and bounded (:func:`leakkit.retention.grown.grown_holders`); called only
            when the verdict would be ``leak``. Growth that containers with an enforced bound
            explain is a ``plateau`` once they are full, ``inconclusive`` before; growth beside
            them stays a ``leak`` (:mod:`leakkit.reports.trace_growers`).
    """
    ckpt = rec.checkpoints
    calls = rec.calls
    types = growing_types(rec.summaries)
    blocks = classify(ckpt["call"], ckpt["blocks"], floor=BLOCKS_FLOOR)
    verdict, reason = blocks.verdict, blocks.reason
    growers, calls_to_fill = pd.DataFrame(columns=trace_growers.COLUMNS), None
    rise = _rise(ckpt)
    if verdict == "leak" and holders is not None and rise is not None:
        found = holders()
        if found:
            span = float(ckpt["call"].iloc[-1] - ckpt["call"].iloc[0])
            judged, why, growers, calls_to_fill = trace_growers.judge(found, verdict, rise, span)
            if judged != verdict:
                # growth bounded containers explain: it stops when they are full
                blocks = classify(ckpt["call"], ckpt["blocks"], floor=BLOCKS_FLOOR, bound_reached=judged == "plateau",
                                  bound_calls_left=calls_to_fill)
                verdict, reason = judged, f"{blocks.reason}: {why}"
            elif why:
                reason = f"{reason}; {why}"
    native = None
    memory_col = "uss" if ckpt["uss"].notna().sum() >= 4 else "rss"
    points = ckpt[["call", memory_col]].dropna()
    if len(points) >= 4:
        native = classify(points["call"], points[memory_col], floor=NATIVE_FLOOR)
        first, last = int(points["call"].iloc[0]), int(points["call"].iloc[-1])
        outer = calls[(calls["depth"] == 0) & (calls["call"] >= first) & (calls["call"] < last)]
        rise = float(points[memory_col].iloc[-1] - points[memory_col].iloc[0])
        in_calls = float(outer["rss_delta"].sum()) if len(outer) else 0.0
        if native.verdict == "leak" and verdict in ("clean", "plateau") and in_calls >= 0.5 * rise:
            held = _allocator_rise(ckpt, first, last)
            if held is not None and held < 0.5 * rise:
                # Pages the allocator keeps are not memory code holds: per-thread malloc arenas
                # touched by many threads, fragmentation. What C code keeps, malloc counts.
                reason = (f"{reason}; process memory ({memory_col}) grew by {format_size(rise)} while the "
                          f"bytes malloc and pymalloc hand out grew by {format_size(held)}: memory the "
                          "allocator keeps (per-thread arenas, fragmentation), not kept by code")
            else:
                verdict, reason = "leak", f"process memory ({memory_col}) grows while Python's blocks do not: native memory"
    kept, rate, low, high, source = _bytes_rate(ckpt)
    if (kept is not None and verdict in ("clean", "plateau") and source.startswith("pymalloc")
            and classify(ckpt["call"], ckpt["allocated_bytes"], floor=BYTES_LEAK_FLOOR).verdict == "leak"):
        # the same number of blocks holding more bytes: a buffer growing in place (bytearray,
        # list, dict tables), or C code's malloc; the bytes series is as exact as the blocks
        verdict, reason = "leak", "bytes kept grow while the number of blocks does not (a buffer growing in place, or malloc'd memory)"
    return TraceReport(
        function=function, verdict=verdict, calls=len(calls),
        errors=int(calls["error"].notna().sum()) if len(calls) else 0,
        blocks=blocks, bytes_per_call=rate, bytes_per_call_low=low, bytes_per_call_high=high,
        bytes_source=source, native=native, growing_types=types, reason=reason,
        recording=rec, bytes=kept, native_column=memory_col, growers=growers)


def _rise(ckpt: Any) -> float | None:
    """Bytes kept over the trace, from the most exact series read: from the first checkpoint after
    the first call (what the first call sets up once is a warm-up, not growth) to the last."""
    for column in ("traced_bytes", "allocated_bytes", "heap_bytes"):
        if column in ckpt:
            points = ckpt[["call", column]].dropna()
            if len(points) >= 3 and points["call"].iloc[0] == 0 and points["call"].iloc[1] <= 1:
                points = points.iloc[1:]
            if len(points) >= 2:
                return float(points[column].iloc[-1] - points[column].iloc[0])
    return None


def _allocator_rise(ckpt: Any, first: int, last: int) -> float | None:
    """Growth of the bytes pymalloc and malloc hand out between calls ``first`` and ``last``
    (None where malloc's count cannot be read)."""
    if "allocated_bytes" not in ckpt:
        return None
    span = ckpt[(ckpt["call"] >= first) & (ckpt["call"] <= last)][["call", "allocated_bytes"]].dropna()
    if len(span) < 2:
        return None
    return float(span["allocated_bytes"].iloc[-1] - span["allocated_bytes"].iloc[0])


@_checks.strict
def verdict(series: Any, calls: Any = None, *, floor: float = 0.0) -> Growth:
    """Classify any retained-memory series (a Series/array, or y with call numbers ``calls``).

    ``series``: readings after each call (NaN: a missing reading); ``calls``: their call numbers,
    increasing (default 0, 1, 2, ...); ``floor``: growth below this is noise (units of the series).
    """
    ys = _checks.series(series, "series")
    if calls is None:
        xs = np.arange(len(ys), dtype=float)
    else:
        xs = _checks.series(calls, "calls", length=len(ys))
        if np.isnan(xs).any() or (np.diff(xs) <= 0).any():
            raise expected("call numbers that increase, one per reading", "calls", calls)
    return classify(xs, ys, floor=_checks.number(floor, "floor", minimum=0))
