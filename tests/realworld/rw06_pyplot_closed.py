"""The fixed twin of rw05: the chart worker closes every figure (``plt.close(fig)``).

Look-alike (matplotlib). Each call still builds and frees a heavy figure graph (~0.2 MB, mostly
reference cycles the collector frees), and matplotlib's caches warm up on the first calls (font
lookup, text layout); a few more kilobytes settle over the first ~500 calls (tables sized by the
artists' attributes and strings, no artist survives: ``gc.get_objects()`` holds no Figure, Axes,
Line2D or Text after a collection), then nothing more is kept.
"""
import itertools
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

_jobs = itertools.count()
LABELS = ("p50", "p90", "p99")


def render_latency_chart(job: int, samples: list[float]) -> object:
    fig, ax = plt.subplots(figsize=(4, 3), dpi=50)
    try:
        ax.plot(range(len(samples)), samples, label=LABELS[job % 3])
        ax.set_title("latency")
        ax.set_ylabel("ms")
        ax.legend(loc="upper right")
        return fig.get_size_inches()
    finally:
        plt.close(fig)


def workload():
    job = next(_jobs)
    render_latency_chart(job, [10.0 + (job * i) % 7 for i in range(40)])


TARGETS = [sys.modules[__name__], plt]
EXPECT = {"verdict": ["clean", "plateau"], "culprit": [None], "root": []}
TRUTH = {"kind": "bounded", "calls": 600, "checkpoints": 12}
