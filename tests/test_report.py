"""TraceReport: numbers, text and HTML forms, growing types, plots that take ax=None and return it."""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import leakkit  # noqa: E402
from leakkit.recording.tables import CALL_COLUMNS, CHECKPOINT_COLUMNS, Recording  # noqa: E402
from leakkit.reports import plots  # noqa: E402
from leakkit.reports.trace_report import growing_types, trace_report  # noqa: E402


def synthetic(blocks_per_call: float, calls: int = 200, every: int = 20, seed: int = 0) -> Recording:
    """A recording as a trace would make it, with a known rate per call."""
    rng = np.random.default_rng(seed)
    call_numbers = np.arange(0, calls + 1, every)
    blocks = 300_000 + blocks_per_call * call_numbers + rng.integers(-2, 3, len(call_numbers))
    ckpt = pd.DataFrame({c: np.nan for c in CHECKPOINT_COLUMNS}, index=range(len(call_numbers)))
    ckpt["call"] = call_numbers
    ckpt["blocks"] = blocks
    ckpt["rss"] = 50e6
    ckpt["uss"] = 40e6
    calls_frame = pd.DataFrame({c: np.nan for c in CALL_COLUMNS}, index=range(calls))
    calls_frame["call"] = range(calls)
    calls_frame["function"] = "f"
    calls_frame["thread"] = "MainThread"
    calls_frame["error"] = None
    calls_frame["depth"] = 0
    calls_frame["blocks_delta"] = blocks_per_call
    calls_frame["rss_delta"] = 0.0
    summaries = pd.DataFrame({
        "call": [0, 0, calls, calls],
        "type": ["list", "dict", "list", "dict"],
        "count": [1000, 500, 1000 + int(blocks_per_call * calls), 500],
        "size": [56_000, 90_000, 56_000 + int(56 * blocks_per_call * calls), 90_000],
    })
    return Recording(calls_frame, ckpt.astype({"call": "int64"}), summaries)


def test_a_leaking_recording_reports_a_rate_with_an_interval():
    report = trace_report(synthetic(3.0), function="f")
    assert report.verdict == "leak"
    assert report.blocks_per_call == pytest.approx(3.0, abs=0.2)
    low, high = report.blocks_per_call_interval
    assert low <= 3.0 <= high
    assert math.isfinite(report.bytes_per_call) or report.bytes_source == "not measured"
    assert report.growing_types["type"].iloc[0] == "list"
    assert report.growing_types["count_delta"].iloc[0] == 600


def test_a_flat_recording_is_clean_with_no_growing_types():
    report = trace_report(synthetic(0.0), function="f")
    assert report.verdict == "clean" and report.growing_types.empty


def test_text_and_html_say_the_verdict_and_the_rate():
    report = trace_report(synthetic(3.0), function="handler")
    text = str(report)
    assert text.startswith("leakkit: handler: LEAK after 200 calls")
    assert "kept per call: +3.0" in text and "blocks" in text and "list" in text
    page = report._repr_html_()
    assert "LEAK" in page and "<img" in page


def test_inconclusive_reports_say_how_many_more_calls():
    rec = synthetic(0.0, calls=40, every=10)
    rec.checkpoints["blocks"] = [300_000, 300_010, 300_004, 300_016, 300_012]
    report = trace_report(rec, function="f")
    if report.verdict == "inconclusive" and report.blocks.calls_to_decide:
        assert "more calls would decide" in str(report)
    assert report.verdict != "leak"


def test_growing_types_needs_two_summaries():
    one = pd.DataFrame({"call": [0], "type": ["list"], "count": [1], "size": [56]})
    assert growing_types(one).empty


@pytest.mark.parametrize("draw", ["plot", "plot_deltas", "plot_types"])
def test_report_plots_take_ax_none_or_an_axes_and_return_it(draw):
    report = trace_report(synthetic(2.0), function="f")
    ax = getattr(report, draw)()
    assert isinstance(ax, plt.Axes)
    fig, given = plt.subplots()
    assert getattr(report, draw)(ax=given) is given
    plt.close("all")


def test_plot_draws_the_fitted_rate():
    report = trace_report(synthetic(2.0), function="f")
    ax = report.plot()
    labels = [line.get_label() for line in ax.get_lines()]
    assert any(label.startswith("fit: +2") for label in labels), labels
    plt.close("all")


def test_plots_of_empty_data_do_not_fail():
    ax = plots.growing_types(pd.DataFrame(columns=["type", "size_delta", "count_delta"]))
    assert isinstance(ax, plt.Axes)
    plt.close("all")


def test_trace_plot_and_report_of_a_live_trace():
    sink = []
    traced = leakkit.trace(lambda n: sink.append([n]), summaries=False)
    for i in range(20):
        traced(i)
    report = traced.report()
    assert report.verdict == "leak" and report.calls == 20
    assert isinstance(traced.plot(), plt.Axes)
    plt.close("all")


def test_one_rate_in_text_attribute_and_plot():
    rec = synthetic(3.0)
    rec.checkpoints["allocated_bytes"] = 40e6 + 200.0 * rec.checkpoints["call"]
    report = trace_report(rec, function="f")
    assert report.bytes_source.startswith("pymalloc") and report.bytes_per_call == pytest.approx(200, rel=0.01)
    shown = plots.format_rate(report.bytes_per_call, "bytes")
    assert shown.removesuffix("/call") in str(report)
    ax = report.plot()
    labels = [line.get_label() for line in ax.get_lines()]
    assert any(label.startswith(f"fit: {shown}") for label in labels), labels
    assert "(KiB)" in ax.get_ylabel() and ax.yaxis.get_offset_text().get_text() == ""
    plt.close("all")


def test_a_clean_report_lists_no_growing_types():
    rec = synthetic(0.0)
    rec.summaries.loc[rec.summaries["call"] == 200, "count"] += 3  # a few objects of noise
    report = trace_report(rec, function="f")
    assert report.verdict == "clean"
    assert "growing types" not in str(report)


def test_process_memory_line_carries_no_verdict_word_next_to_a_leak():
    report = trace_report(synthetic(3.0), function="f")
    line = next(line for line in str(report).splitlines() if "process memory" in line)
    assert not any(word in line for word in ("(clean)", "(leak)", "(inconclusive)", "(plateau)"))


def test_reprs_read():
    report = trace_report(synthetic(3.0), function="f")
    assert repr(report).startswith("<TraceReport f: leak, ") and "DataFrame" not in repr(report)


def test_deltas_plot_spans_every_call_when_memory_is_read_on_a_sample():
    rec = synthetic(2.0)
    rec.calls.loc[64:, "blocks_delta"] = np.nan
    rec.calls.loc[64::13, "blocks_delta"] = 2.0
    ax = plots.deltas(rec.calls)
    assert ax.get_xlim()[1] >= 199
    assert "memory read on" in ax.get_title()
    assert any("running sum" in t.get_text() for t in ax.get_legend().get_texts())
    plt.close("all")


def test_humanize_shows_units_and_keeps_the_data():
    frame = pd.DataFrame({"calls": [62.0], "retained_bytes_per_call": [65985.0], "rss": [209346560.0],
                          "unix_time_s": [1.796151e9], "verdict": ["leak"]})
    shown = leakkit.humanize(frame)
    assert list(shown.iloc[0]) == ["62", "+64.4 KiB", "199.6 MiB", shown.iloc[0]["unix_time_s"], "leak"]
    assert shown.iloc[0]["unix_time_s"].startswith("20")
    assert frame["rss"].iloc[0] == 209346560.0


def test_bisect_report_repr_text_and_html_read_and_carry_one_rate():
    import sys
    import types

    from leakkit._sizes import format_size

    module = types.ModuleType("leak_with_a_rather_long_module_name_for_wrapping_the_report_lines_here")
    module.KEPT = []

    def keep_a_record_of_each_request_in_a_module_level_list_that_nobody_ever_empties():
        module.KEPT.append(bytearray(3000))

    keep_a_record_of_each_request_in_a_module_level_list_that_nobody_ever_empties.__module__ = module.__name__
    module.keep = keep_a_record_of_each_request_in_a_module_level_list_that_nobody_ever_empties
    sys.modules[module.__name__] = module
    try:
        report = leakkit.bisect(module.keep, targets=[module], calls=30, progress=False)
    finally:
        del sys.modules[module.__name__]
    assert report.verdict == "leak", str(report)
    rate = format_size(report.total.rate, signed=True)
    assert repr(report) == f"<BisectReport leak in {report.culprit}, {rate}/call, {report.calls} calls>"
    text = str(report)
    # wrapped, not cut: only a single word longer than the width (a qualified name) stands out
    assert all(len(line) <= 100 or " " not in line.strip() for line in text.splitlines()[1:]), text
    assert len(text.splitlines()) > len(report._lines())
    flat = " ".join(text.split())
    assert rate in flat and " ".join(html_text(report._repr_html_()).split()).count(rate) == flat.count(rate)
    assert "white-space:pre'" not in report._repr_html_()
    legend = " ".join(t.get_text() for t in report.plot().get_legend().get_texts())
    assert f"fit: {rate}/call [" in legend  # the text's rate and interval
    import dataclasses

    untraced = dataclasses.replace(report, series=report.series.iloc[:0], function_series=report.function_series.iloc[:0])
    assert any("no call traced" in t.get_text() for t in untraced.plot().texts)  # not an empty frame
    plt.close("all")


@pytest.mark.parametrize("closes", [False, True])
def test_a_heavy_bisect_plots_the_untraced_calls_blocks(closes):
    """A workload too heavy to trace every call (pyplot figures: ~0.3 s a traced call) is judged on
    allocated blocks after each collection over untraced calls; its plot draws that series, in
    blocks and said so, with the few traced calls' bytes on an axis of their own."""
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "realworld"))
    try:
        import rw05_pyplot_unclosed as case
    finally:
        sys.path.pop(0)
    try:
        report = leakkit.bisect(case.workload_fixed if closes else case.workload, targets=case.TARGETS, calls=60,
                                progress=False)
    finally:
        case.release()
    assert report.verdict == ("clean" if closes else "leak"), str(report)
    readings = len(report.untraced)
    assert readings >= 10 and list(report.untraced.columns) == ["call", "allocated_blocks", "rss", "malloc_bytes"]
    assert len(report.series) < readings  # traced: a few calls at most
    ax = report.plot()
    blocks = [line for line in ax.get_lines() if len(line.get_xdata()) == readings]
    assert blocks and "blocks" in blocks[0].get_label() and "blocks" in ax.get_ylabel()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    rate = plots.format_rate(report.untraced_blocks.rate, "blocks")
    assert any(text.startswith(f"fit: {rate}") for text in legend), legend  # the note's figure
    assert any(rate in note for note in report.notes), report.notes
    twins = [other for other in ax.figure.axes if other is not ax]
    if closes:  # nothing grew, so nothing was traced: the blocks are the whole plot
        assert not len(report.series) and not twins
    else:
        (traced,) = twins
        assert "KiB" in traced.get_ylabel() or "MiB" in traced.get_ylabel()
        lines = {line.get_label(): line for line in traced.get_lines()}
        total = lines.pop("all traced user memory")
        assert len(total.get_xdata()) == len(report.series)
        own = [line for label, line in lines.items() if label.endswith("(own code)")]
        # every byte series on one scale: a function's own code keeps at most what all user code does
        assert own and all(max(line.get_ydata()) <= 1.01 * max(total.get_ydata()) for line in own)
    assert report._repr_html_().count("<img") == 1
    plt.close("all")


def html_text(page: str) -> str:
    import html
    import re

    return html.unescape(re.sub(r"<[^>]+>", "", page))
