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
``growers``
    One row per holder that grew during the run, each judged on its own (the leak first, then
    the caches still filling, then the rest): ``holder`` (the path from a root to the container),
    ``root``, ``culprit`` (the function whose code made the entries it gained), ``verdict``
    (``leak``; ``filling``: a bound something enforces, not reached yet; ``plateau``: at its
    bound, or growth that stopped; ``inconclusive``; ``clean``), ``bytes_per_call`` with
    ``bytes_per_call_low``/``_high`` (its own rate: the share of each function's kept bytes found
    under its new entries, per checkpoint, fitted like every other rate), ``entries_before`` /
    ``entries`` (its length after the warm-up and at the end), ``bound`` (what bounds it, as
    text; empty when nothing does), ``bound_kind`` (``implementation``: its type enforces it;
    ``code``: code that removes entries once the size reaches the limit; ``observed``: the run
    saw it replace old entries; ``declared``: only an attribute named like a limit, which bounds
    nothing), ``maxsize``, ``calls_to_fill`` (filling: calls until the bound is reached),
    ``kept_bytes`` (bytes the run made under its new entries), ``why``.
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
``untraced``
    ``call``, ``allocated_blocks`` (``sys.getallocatedblocks()`` after a collection: a count of
    blocks, not bytes), ``rss``, ``malloc_bytes`` (malloc's bytes in use, NaN without glibc): one
    row per reading of the untraced calls a heavy workload's verdict comes from (see
    ``untraced_blocks``, its growth in blocks per call); empty when every call was traced.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .._sizes import format_size
from .._text import interval, wrap_lines
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
    untraced: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)  # a heavy workload's untraced calls
    untraced_blocks: Growth | None = None  # their allocated blocks' growth: the verdict of a heavy run
    growers: pd.DataFrame = field(default_factory=pd.DataFrame)  # every holder that grew, judged on its own

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
        lines.extend(self._grower_lines())
        t = self.total
        if math.isfinite(t.rate):
            lines.append(f"  {'total kept per call, all growers together' if len(self.growers) > 1 else 'kept per call'}"
                         f" (Python heap): {format_size(t.rate, signed=True)} "
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

    def _grower_lines(self) -> list[str]:
        """Each grower with its own rate, verdict and bound: the leak first; a cache filling beside it
        is said to be one, and said not to be the leak."""
        shown = self.growers[self.growers["verdict"] != "clean"] if len(self.growers) else self.growers
        if not len(shown) or (len(shown) == 1 and shown["verdict"].iloc[0] == "leak" and self.verdict == "leak"
                              and not shown["bound"].iloc[0]):
            return []
        lines = ["  growers (each with its own rate per call):"]
        for row in shown.head(6).itertuples():
            rate = format_size(row.bytes_per_call, signed=True) if math.isfinite(row.bytes_per_call) else "?"
            span = interval(row.bytes_per_call_low, row.bytes_per_call_high)
            what = {"leak": "LEAK", "filling": "filling", "plateau": "plateau"}.get(row.verdict, row.verdict)
            detail = f"entries made by {row.culprit}, {row.entries_before} -> {row.entries}"
            if row.verdict != "leak" or row.bound:
                detail += f"; {row.why}"
            lines.append(f"    {what:12s} {row.holder}  {rate}/call {span}  ({detail})")
        if len(shown) > 6:
            lines.append(f"    ... {len(shown) - 6} more in report.growers")
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
        grows stands out from the ones that fill up and stop. For a heavy workload the verdict's
        series comes first: allocated blocks after each collection over the untraced calls (left
        axis, blocks), with the few traced calls' bytes on a right axis."""
        s = self.series
        t = self.total
        title = f"bisect: {self.verdict}" + (f" in {self.culprit}" if self.culprit else "")
        lines: list = []
        if len(self.untraced):
            g = self.untraced_blocks
            rate, interval = (g.rate, (g.rate_low, g.rate_high)) if g is not None else (float("nan"), None)
            ax = plots.retained(self.untraced["call"], self.untraced["allocated_blocks"], verdict=self.verdict,
                                rate=rate, interval=interval, unit="blocks", label="allocated blocks, untraced calls",
                                fit_from=g.extra.get("tail_from") if g is not None else None, title=title, ax=ax)
            ax.set_ylabel("allocated blocks since first reading")
            lines = ax.get_lines()
            if not len(s):
                return ax
            main, ax = ax, ax.twinx()  # the traced calls' bytes, on an axis of their own
        values = [s["retained_bytes"] - s["retained_bytes"].iloc[0]] if len(s) else []
        groups = list(self.function_series.groupby("function", sort=False))
        values += [group["retained_bytes"] - group["retained_bytes"].iloc[0] for _, group in groups]
        unit, divisor = plots.byte_unit(pd.concat(values)) if values else ("B", 1.0)
        # the rate, interval and fitted readings the text gives ("Python heap kept per call")
        ax = plots.retained(s["call"], s["retained_bytes"], verdict=self.verdict, rate=t.rate,
                            interval=(t.rate_low, t.rate_high), fit_from=t.extra.get("tail_from"),
                            label="all traced user memory", title=title, scale=(unit, divisor), ax=ax,
                            color="#2c3e50" if lines else None)
        if not len(s) and not lines:  # nothing to draw: say why instead of an empty frame
            ax.text(0.5, 0.5, "no call traced: the verdict comes from allocated blocks\nafter each "
                    "collection, over untraced calls (see the notes)", ha="center", va="center",
                    transform=ax.transAxes, color="0.4")
        for name, group in groups:
            short = name.rsplit(".", 1)[-1] if "<locals>" not in name else name.split(".", 1)[-1]
            style = "-" if name == self.culprit else ":"
            ax.plot(group["call"], (group["retained_bytes"] - group["retained_bytes"].iloc[0]) / divisor, style,
                    linewidth=1.5 if name == self.culprit else 1, label=f"{short} (own code)")
        if lines:  # heavy: one legend for both axes
            ax.set_ylabel(f"traced calls: kept ({unit})")
            ax.set_xlabel("")
            ax.set_title("")
            ax.grid(False)
            if ax.get_legend() is not None:
                ax.get_legend().remove()
            both = lines + ax.get_lines()
            main.legend(both, [line.get_label() for line in both], loc="upper center", bbox_to_anchor=(0.5, -0.15),
                        ncol=2, fontsize="small")  # below: two series rise across the frame
            main.set_title(title)
            return main
        ax.legend(loc="upper left", fontsize="small")
        return ax
