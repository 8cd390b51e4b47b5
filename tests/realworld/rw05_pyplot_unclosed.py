"""A dashboard worker that builds a latency chart per job with pyplot (the page embeds it later)
and never closes the figure.

Real leak (matplotlib). ``plt.subplots()`` registers each new figure's manager with pyplot's
figure registry, ``matplotlib._pylab_helpers.Gcf.figs`` (an OrderedDict by figure number), until
``plt.close(fig)``. Each figure is a heavy object graph (axes, ticks, lines, text, transforms:
~0.2 MB here). matplotlib warns after 20 open figures; services often silence that.
"""
import itertools
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

matplotlib.rcParams["figure.max_open_warning"] = 0
_jobs = itertools.count()


def render_latency_chart(job: int, samples: list[float]) -> object:
    fig, ax = plt.subplots(figsize=(4, 3), dpi=50)
    ax.plot(range(len(samples)), samples, label=f"job {job}")
    ax.set_title(f"latency, job {job}")
    ax.set_ylabel("ms")
    ax.legend(loc="upper right")
    return fig.get_size_inches()


def render_latency_chart_fixed(job: int, samples: list[float]) -> object:
    fig, ax = plt.subplots(figsize=(4, 3), dpi=50)
    try:
        ax.plot(range(len(samples)), samples, label=f"job {job}")
        ax.set_title(f"latency, job {job}")
        ax.set_ylabel("ms")
        ax.legend(loc="upper right")
        return fig.get_size_inches()
    finally:
        plt.close(fig)


def workload():
    job = next(_jobs)
    render_latency_chart(job, [10.0 + (job * i) % 7 for i in range(40)])


def workload_fixed():
    job = next(_jobs)
    render_latency_chart_fixed(job, [10.0 + (job * i) % 7 for i in range(40)])


def release():
    plt.close("all")


TARGETS = [sys.modules[__name__], plt]
# pyplot.new_figure_manager makes the manager each new entry of Gcf.figs holds (the contract's
# "function whose code made the objects the growing holder keeps"); its callers are right too.
EXPECT = {"verdict": ["leak"], "culprit": ["render_latency_chart", "pyplot.subplots", "pyplot.figure",
                                           "pyplot.new_figure_manager"],
          "root": ["matplotlib._pylab_helpers.Gcf.figs", "Gcf.figs"]}
TRUTH = {"kind": "leak", "calls": 60, "min_bytes_per_call": 100_000, "root": "matplotlib._pylab_helpers.Gcf.figs",
         "root_grows_by": 0.95, "release": "release", "checkpoints": 6}
