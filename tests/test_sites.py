"""growth_sites on workloads that leak, warm up, rotate and make cycles."""
from __future__ import annotations

import asyncio
import collections
import os
import tracemalloc

import pytest

import leakkit
from leakkit._errors import LeakkitError, WorkloadError
from leakkit.tracing.sites import growth_sites, is_own

LEAKED: list = []
WARM: dict = {}
RING: collections.deque = collections.deque(maxlen=3)


def leaky_request():
    LEAKED.append(bytes(2000))  # the leak: one 2 kB block per call, kept forever
    WARM.setdefault("config", [0] * 5000)  # warm-up: first call only
    RING.append(bytearray(4000))  # bounded: rotates
    node = {"payload": bytearray(3000)}
    node["self"] = node  # cyclic garbage, freed by the collector


@pytest.fixture(autouse=True)
def _clean():
    yield
    LEAKED.clear()
    WARM.clear()
    RING.clear()


def test_the_leaking_line_grows_every_loop_and_ranks_first():
    result = growth_sites(leaky_request, loops=6, calls_per_loop=5, progress=False)
    first = result.frame.iloc[0]
    assert first["file"] == os.path.abspath(__file__)
    assert "LEAKED.append" in open(__file__).read().splitlines()[first["line"] - 1]
    assert first["growth_times"] == 5 and first["growth_loops"] == 5
    assert first["bytes_per_loop"] == pytest.approx(5 * 2000, rel=0.2)
    assert first["traceback"].splitlines()[-1] == first["site"]
    assert list(result.series.index) == list(range(6))


def test_warm_up_rotation_and_cycles_are_not_growth_sites():
    result = growth_sites(leaky_request, loops=6, calls_per_loop=5, progress=False)
    lines = open(__file__).read().splitlines()
    mine = result.frame[result.frame["file"] == os.path.abspath(__file__)]
    texts = [lines[line - 1] for line in mine["line"]]
    assert not any(("WARM" in t or "RING" in t or "payload" in t) for t in texts), texts


def test_leakkit_and_tracemalloc_allocations_are_left_out():
    result = growth_sites(leaky_request, loops=5, calls_per_loop=2, progress=False, top=100)
    package = os.path.dirname(leakkit.__file__)
    assert not result.frame["file"].str.startswith(package).any()
    assert not result.frame["file"].eq(tracemalloc.__file__).any()


def test_is_own_walks_from_the_allocating_frame_to_the_workload_call():
    import leakkit.tracing.sites as sites
    from leakkit.tracing.workload import CALL_FRAMES

    call = next(iter(CALL_FRAMES))
    here = (os.path.abspath(__file__), 1)
    inside = (os.path.join(os.path.dirname(sites.__file__), "sites.py"), 99)
    assert is_own([inside, call]) and not is_own([here, call, inside]) and not is_own([here])


def test_a_tracemalloc_started_by_the_user_is_kept_running():
    tracemalloc.start(7)
    try:
        result = growth_sites(leaky_request, loops=4, progress=False)
        assert tracemalloc.is_tracing() and result.nframes == 7
    finally:
        tracemalloc.stop()
    growth_sites(leaky_request, loops=3, progress=False)
    assert not tracemalloc.is_tracing()


def test_an_async_workload_runs_on_a_loop_leakkit_owns():
    async def handler():
        await asyncio.sleep(0)
        LEAKED.append(bytes(3000))

    result = growth_sites(handler, loops=5, calls_per_loop=3, progress=False)
    first = result.frame.iloc[0]
    assert first["growth_times"] == 4
    assert "bytes(3000)" in open(__file__).read().splitlines()[first["line"] - 1]


def test_the_text_listing_names_the_site_and_its_growth_times():
    result = growth_sites(leaky_request, loops=4, calls_per_loop=2, progress=False, top=3)
    text = str(result)
    assert "3/3" in text and result.frame.iloc[0]["site"] in text and "LEAKED.append" in text
    assert "<table>" in result._repr_html_()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    assert result.plot(ax=ax) is ax and len(ax.get_lines()) == len(result.frame)
    plt.close(fig)


def test_other_threads_allocations_count_only_when_asked():
    import threading

    stop = threading.Event()
    elsewhere: list = []

    def background():
        while not stop.is_set():
            elsewhere.append(bytes(500))  # another thread's leak, not the workload's
            stop.wait(0.001)

    thread = threading.Thread(target=background)
    thread.start()
    try:
        quiet = growth_sites(lambda: None, loops=4, progress=False)
        noisy = growth_sites(lambda: None, loops=4, progress=False, threads=True)
    finally:
        stop.set()
        thread.join()
    lines = open(__file__).read().splitlines()
    assert not any("elsewhere.append" in lines[line - 1] for line in quiet.frame["line"])
    assert any("elsewhere.append" in lines[line - 1] for line in noisy.frame["line"])


def test_a_clean_workload_has_no_growth_sites():
    result = growth_sites(lambda: [bytearray(1000) for _ in range(50)], loops=5, progress=False)
    assert result.frame.empty and "no site grew" in str(result), result.frame.to_dict("records")


def test_workloads_that_cannot_be_measured_are_workload_errors():
    with pytest.raises(WorkloadError, match="needs request"):
        growth_sites(lambda request: None, loops=3)

    def broken():
        raise KeyError("boom")

    with pytest.raises(WorkloadError, match="KeyError"):
        growth_sites(broken, loops=3, progress=False)
    assert not tracemalloc.is_tracing()


@pytest.mark.parametrize("options", [{"loops": 2}, {"calls_per_loop": 0}, {"nframes": "x"}, {"top": True}])
def test_bad_options_are_leakkit_errors(options):
    with pytest.raises(LeakkitError):
        growth_sites(leaky_request, **options)


def test_the_plot_shows_every_site_on_a_log_scale():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    from leakkit.tracing.sites import GrowthSites

    series = pd.DataFrame({f"/app/m.py:{i}": np.arange(8) * 10.0 ** i for i in range(1, 7)},
                          index=pd.RangeIndex(8, name="loop"))
    sites = GrowthSites(frame=pd.DataFrame(), series=series, loops=8, calls_per_loop=1, nframes=1)
    ax = sites.plot()
    assert ax.get_yscale() == "log"
    low, high = ax.get_ylim()
    for line in ax.get_lines():
        data = line.get_ydata()
        assert np.nanmin(data) >= low and np.nanmax(data) <= high  # none pressed flat at zero
    assert all("B" in t.get_text() for t in ax.get_yticklabels() if t.get_text())
    plt.close("all")
