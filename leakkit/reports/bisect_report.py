"""The report ``leakkit.bisect`` returns: verdict, culprit, retention paths, with text, HTML, plot.

Columns:

``suspects``
    ``function``, ``calls`` (counted by the wrapper; NaN for functions reached only through the
    line map), ``retained_bytes_per_call`` (growth of what the function's own code allocated and
    is still alive after GC, Theil-Sen slope over the second half of the run, with
    ``retained_bytes_low``/``_high``), ``retained_blocks_per_call``, ``inclusive_bytes_per_call``
    (the same for everything allocated while the function was on the stack), ``final_bytes`` (kept
    at the end of the run), ``growth_times`` (checkpoint intervals it grew), ``verdict``.
``growing_types``
    ``type``, ``count``, ``size`` (bytes, shallow), ``function`` (whose code created them),
    ``site`` (file:line), ``root`` (what keeps the culprit's objects alive): objects created during
    the run and alive at its end.
``paths``
    ``path`` (call path of target functions, outermost first), ``function``, ``bytes_per_call``,
    ``verdict``: which caller path leaks when only one of several does.
``tasks``
    ``task`` (the outermost target function on the stack: the coroutine an asyncio task runs,
    the function a pool thread runs, or the workload), ``bytes_per_call``, ``final_bytes``,
    ``verdict``: growth grouped by task/coroutine function.
``function_series``
    ``call``, ``function``, ``retained_bytes``: the top suspects' own kept bytes at each checkpoint
    (what ``plot()`` draws next to the total).
``series``
    ``call``, ``retained_bytes``, ``retained_blocks`` (all user allocations traced since the
    warm-up, after GC), ``rss``, ``native_bytes`` (RSS minus traced memory and tracemalloc's own),
    ``malloc_native_bytes`` (bytes malloc has handed out, minus Python's large blocks and
    tracemalloc's own: sees native leaks that reuse resident memory; NaN without glibc).
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .._sizes import format_size
from .._text import wrap_lines
from ..analysis import Growth
from . import plots
from .html import figure_html


def _real_leaks(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows judged leak that carry a real share of the growth: a path or task that only paid for a
    shared container's resize is not where the leak is."""
    leaking = frame[frame["verdict"] == "leak"] if len(frame) else frame
    if len(leaking):
        leaking = leaking[leaking["bytes_per_call"] >= 0.25 * float(leaking["bytes_per_call"].max())]
    return leaking


@dataclass
class BisectReport:
    verdict: str
    culprit: str | None
    retention: list[str]
    suspects: pd.DataFrame
    growing_types: pd.DataFrame
    paths: pd.DataFrame
    series: pd.DataFrame
    tasks: pd.DataFrame
    function_series: pd.DataFrame
    total: Growth
    native: Growth
    native_leak: bool
    reason: str
    calls: int
    warmup: int
    errors: int
    error_types: dict[str, int]
    calls_to_decide: int | None
    seconds: float
    retention_details: list = field(default_factory=list, repr=False)
    notes: list = field(default_factory=list)  # what was cut short or run on, side structures, C-held objects

    def __repr__(self) -> str:
        rate = (f", {format_size(self.total.rate, signed=True)}/call" if math.isfinite(self.total.rate) else "")
        culprit = f" in {self.culprit}" if self.culprit else ""
        return f"<BisectReport {self.verdict}{culprit}{rate}, {self.calls} calls>"

    def __str__(self) -> str:
        return wrap_lines(self._lines())

    def _lines(self) -> list[str]:
        lines = [f"leakkit bisect: {self.verdict.upper()} after {self.calls} calls "
                 f"(+{self.warmup} warm-up) in {self.seconds:.1f} s"]
        if self.reason:
            lines.append(f"  {self.reason}")
        if self.culprit:
            lines.append(f"  culprit: {self.culprit}")
        t = self.total
        if math.isfinite(t.rate):
            lines.append(f"  Python heap kept per call: {format_size(t.rate, signed=True)} "
                         f"[{format_size(t.rate_low, signed=True)}, {format_size(t.rate_high, signed=True)}]")
        if self.native_leak and math.isfinite(self.native.rate):
            lines.append(f"  native memory per call: {format_size(self.native.rate, signed=True)} "
                         "(outside Python's allocator)")
        if self.calls_to_decide:
            lines.append(f"  about {self.calls_to_decide} more calls would decide")
        if self.retention:
            lines.append("  kept alive by:")
            for path in self.retention[:3]:
                lines.append(f"    {path}")
        leaking_paths = _real_leaks(self.paths)
        if len(leaking_paths) and len(self.paths) > 1:
            lines.append("  leaking call paths:")
            for row in leaking_paths.head(3).itertuples():
                lines.append(f"    {row.path}  {format_size(row.bytes_per_call, signed=True)}/call")
        leaking_tasks = _real_leaks(self.tasks)
        if len(leaking_tasks) and len(self.tasks) > 1:
            lines.append("  by task/coroutine: " + ", ".join(
                f"{row.task} {format_size(row.bytes_per_call, signed=True)}/call" for row in leaking_tasks.head(3).itertuples()))
        top = self.suspects.head(5)
        if len(top):
            lines.append("  suspects (self-retained growth per call):")
            for row in top.itertuples():
                calls = "" if pd.isna(row.calls) else f"{int(row.calls)} calls, "
                lines.append(f"    {row.function:50s} {format_size(row.retained_bytes_per_call, signed=True):>11s}/call "
                             f"({calls}{row.verdict})")
        if len(self.growing_types):
            lines.append("  growing types:")
            for row in self.growing_types.head(5).itertuples():
                lines.append(f"    {row.type:20s} {row.count:6d} objects {format_size(row.size):>10s}  "
                             f"made at {row.site} ({row.function})")
        for note in self.notes:
            lines.append(f"  note: {note}")
        if self.errors:
            kinds = ", ".join(f"{k} x{v}" for k, v in self.error_types.items())
            lines.append(f"  the workload raised {self.errors} times: {kinds}")
        return lines

    def _repr_html_(self) -> str:
        color = plots.LEAK_COLORS.get(self.verdict, "#333")
        # pre-wrap: columns stay aligned, long lines wrap at the cell's edge instead of being cut
        body = "".join(f"<div style='font-family:monospace;white-space:pre-wrap'>{html.escape(line)}</div>"
                       for line in self._lines()[1:])
        return (f"<div><b>leakkit bisect</b>: <b style='color:{color}'>{self.verdict.upper()}</b> "
                f"after {self.calls} calls{body}{figure_html(self)}</div>")

    def plot(self, ax: Any = None) -> Any:
        """Kept bytes per checkpoint: all user memory, and each top suspect's own, so the one that
        grows stands out from the ones that fill up and stop."""
        s = self.series
        t = self.total
        # the rate, interval and fitted readings the text gives ("Python heap kept per call")
        ax = plots.retained(s["call"], s["retained_bytes"], verdict=self.verdict, rate=t.rate,
                            interval=(t.rate_low, t.rate_high), fit_from=t.extra.get("tail_from"),
                            label="all traced user memory", title=f"bisect: {self.verdict}"
                            + (f" in {self.culprit}" if self.culprit else ""), ax=ax)
        if not len(s):  # every call too slow to trace: judged on allocated blocks of untraced calls
            ax.text(0.5, 0.5, "no call traced: the verdict comes from allocated blocks\nafter each "
                    "collection, over untraced calls (see the notes)", ha="center", va="center",
                    transform=ax.transAxes, color="0.4")
        for name, group in self.function_series.groupby("function", sort=False):
            short = name.rsplit(".", 1)[-1] if "<locals>" not in name else name.split(".", 1)[-1]
            style = "-" if name == self.culprit else ":"
            ax.plot(group["call"], group["retained_bytes"], style, linewidth=1.5 if name == self.culprit else 1,
                    label=f"{short} (own code)")
        ax.legend(loc="upper left", fontsize="small")
        return ax
