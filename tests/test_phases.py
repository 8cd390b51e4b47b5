"""Warm-up end, unsharing and sustained growth on synthetic series (deterministic), plain Python, and
the forecasts built on them: a cold start is never fitted as a leak."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from leakkit.analysis import phases
from leakkit.reports.forecast import forecast

MIB = 1024 * 1024
T = [i * 0.5 for i in range(200)]  # 100 s at 2 samples/s


def noise(n: int, sd: float, seed: int = 0) -> list[float]:
    return np.random.default_rng(seed).normal(0, sd, n).tolist()


def warm(t: float, size: float = 3 * MIB, tau: float = 8.0) -> float:
    """A cache filling: fast at first, slowing down, stopping (done by ~5 tau)."""
    return size * (1 - math.exp(-t / tau))


def test_the_rules_run_without_numpy_or_pandas():
    code = ("import sys; from leakkit.analysis import phases; "
            "t = [i * 0.5 for i in range(100)]; y = [1e6 + 1e4 * x for x in t]; "
            "assert phases.sustained_growth(t, y).growing and phases.warmup_end(t, y).index == 0; "
            "assert not {'numpy', 'pandas', 'matplotlib'} & set(sys.modules), sorted(sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_leak_alone_has_no_warm_up_and_grows():
    y = [30 * MIB + 1.0 * MIB / 60 * t + e for t, e in zip(T, noise(200, 20_000), strict=True)]
    end = phases.warmup_end(T, y)
    assert end.index == 0 and end.settled
    grown = phases.sustained_growth(T, y)
    assert grown.growing and grown.rate * 60 == pytest.approx(1.0 * MIB, rel=0.05)


@pytest.mark.parametrize("seed", range(5))
def test_a_warm_up_then_a_leak_is_found_to_end_and_the_rate_is_the_leaks(seed):
    rate = 1.0 * MIB / 60
    y = [30 * MIB + warm(t) + rate * t + e for t, e in zip(T, noise(200, 30_000, seed), strict=True)]
    end = phases.warmup_end(T, y)
    assert end.settled and 10 <= end.t <= 60, end  # the fill is 95% done at 24 s
    after = phases.sustained_growth(T[end.index:], y[end.index:])
    assert after.growing and after.rate == pytest.approx(rate, rel=0.2)
    naive = phases.slope(T, y)  # a line through the warm-up too (robust as it is) is too fast
    assert naive > 1.15 * rate


@pytest.mark.parametrize("seed", range(5))
def test_a_warm_up_that_stops_is_not_growth(seed):
    y = [30 * MIB + warm(t) + e for t, e in zip(T, noise(200, 30_000, seed), strict=True)]
    end = phases.warmup_end(T, y)
    assert end.settled and end.index > 0 and end.excess_bytes > 2 * MIB
    assert not phases.sustained_growth(T[end.index:], y[end.index:]).growing


def test_a_warm_up_still_slowing_at_the_end_is_not_settled():
    y = [30 * MIB + warm(t, size=10 * MIB, tau=40.0) for t in T]  # the rate halves every 28 s
    assert not phases.warmup_end(T, y).settled


def test_unsharing_is_uss_rising_while_rss_stays_flat():
    rss = [30 * MIB] * 10
    uss = [10 * MIB] * 5 + [12 * MIB] * 5  # a 2 MiB step of pages becoming private
    found = phases.unsharing(rss, uss)
    assert found.unshared == pytest.approx(2 * MIB) and found.share == pytest.approx(1.0)
    leak = phases.unsharing([30 * MIB + i * MIB for i in range(10)], [10 * MIB + i * MIB for i in range(10)])
    assert leak.unshared == 0 and leak.share == 0  # both rose together: new memory


def test_workers_stepping_together_are_found_and_one_alone_is_not():
    t = [float(i) for i in range(60)]
    step = [10 * MIB + (2 * MIB if i >= 30 else 0) for i in range(60)]
    late = [10 * MIB + (2 * MIB if i >= 31 else 0) for i in range(60)]
    flat = [10 * MIB] * 60
    together = phases.common_steps({1: (t, step), 2: (t, late), 3: (t, flat)}, floor=MIB, within=2.0)
    assert together == [(30.0, [1, 2])]
    assert phases.common_steps({1: (t, step), 3: (t, flat)}, floor=MIB, within=2.0) == []


def frame(t, **columns):
    return pd.DataFrame({"t": t, **{k: np.asarray(v, dtype=float) for k, v in columns.items()}})


def test_a_fixed_worker_started_cold_is_a_plateau_in_every_column():
    shared = 14 * MIB
    uss = [10 * MIB + warm(t) + (1.5 * MIB if t >= 12 else 0) + e for t, e in zip(T, noise(200, 10_000), strict=True)]
    rss = [shared + 10 * MIB + warm(t) + e for t, e in zip(T, noise(200, 10_000, 1), strict=True)]
    pss = [u + shared / 3 for u in uss]
    data = frame(T, rss=rss, uss=uss, pss=pss)
    for column in ("rss", "uss", "pss"):
        result = forecast(data, "256MiB", column=column)
        assert result.shape in ("flat", "plateau"), (column, str(result))
        assert result.eta_s == math.inf


def test_a_leaking_worker_started_cold_is_fitted_after_its_warm_up():
    rate = 1.0 * MIB / 60
    rss = [24 * MIB + warm(t) + rate * t + e for t, e in zip(T, noise(200, 20_000), strict=True)]
    result = forecast(frame(T, rss=rss, uss=[r - 14 * MIB for r in rss]), "256MiB")
    assert result.shape == "linear" and result.column == "rss"
    assert result.rate_bytes_per_s == pytest.approx(rate, rel=0.25)
    assert 10 < result.warmup_end_s < 70 and result.warmup_bytes > 2 * MIB
    assert "warm-up" in str(result) and "beside rss (what the limit counts): uss linear leak" in str(result)


def test_uss_rising_while_rss_is_flat_is_called_unsharing_in_every_column_that_shows_it():
    rss = [30 * MIB + e for e in noise(200, 10_000)]
    uss = [8 * MIB + 6 * MIB * t / T[-1] + e for t, e in zip(T, noise(200, 10_000, 2), strict=True)]
    data = frame(T, rss=rss, uss=uss, pss=[u + 4 * MIB for u in uss])
    result = forecast(data, "256MiB")
    assert result.column == "rss" and result.shape == "flat"
    assert [(b.column, b.shape) for b in result.beside] == [("uss", "unsharing"), ("pss", "unsharing")]
    assert len(result.notes) == 1 and "copy-on-write unsharing" in result.notes[0]
    assert result.notes[0].startswith("uss +") and " and pss +" in result.notes[0]
    assert "beside rss (what the limit counts): uss copy-on-write unsharing" in str(result)
    on_uss = forecast(data, "256MiB", column="uss")  # uss as the headline: still not a leak
    assert on_uss.shape == "unsharing" and on_uss.eta_s == math.inf and "not on course" in str(on_uss)
    leaking = forecast(frame(T, rss=[r + 0.5 * MIB * t / 10 for r, t in zip(rss, T, strict=True)],
                             uss=[u + 0.5 * MIB * t / 10 for u, t in zip(uss, T, strict=True)]), "256MiB")
    assert leaking.shape == "linear" and [b.shape for b in leaking.beside] == ["linear"]  # new memory: a leak


def test_pss_rising_as_siblings_unshare_is_unsharing_not_a_leak_and_new_memory_still_is():
    # seen in a fresh clone's run: a preloaded master, rss flat, uss +0.6 MiB/min (flat), pss read
    # "linear leak +1.5 MiB/min": its workers copied the pages they shared with it, so the pages it
    # still shares are shared by fewer processes and its share of each grew
    rss = [60 * MIB + e for e in noise(200, 10_000)]
    uss = [20 * MIB + e for e in noise(200, 10_000, 5)]
    sharers = [4 - min(2.0, t / 50) for t in T]  # 4 processes share 40 MiB, then 2
    pss = [u + 40 * MIB / n for u, n in zip(uss, sharers, strict=True)]
    result = forecast(frame(T, rss=rss, uss=uss, pss=pss), "256MiB")
    assert result.column == "rss" and result.shape == "flat", str(result)
    assert [(b.column, b.shape) for b in result.beside] == [("uss", "flat"), ("pss", "unsharing")], str(result)
    [note] = [n for n in result.notes if n.startswith("pss +")]
    assert "fewer processes share them" in note and "copy-on-write unsharing" in note
    assert not any("pss reads linear leak" in n for n in result.notes), str(result)
    # pss rising with uss, in new private memory, while rss is flat is still not called so
    found = phases.fewer_sharers(rss, [u + 0.5 * MIB * t / 10 for u, t in zip(uss, T, strict=True)],
                                 [p + 0.5 * MIB * t / 10 for p, t in zip(pss, T, strict=True)])
    assert found.share_growth == pytest.approx(40 * MIB / 2 - 40 * MIB / 4, rel=0.05)
    own = phases.fewer_sharers(rss, [u + 5 * MIB * t / 100 for u, t in zip(uss, T, strict=True)],
                               [u + 10 * MIB + 5 * MIB * t / 100 for u, t in zip(uss, T, strict=True)])
    assert own.pss_growth > 4 * MIB and own.share < 0.1  # all of it the process's own: no excuse


def test_shared_pages_the_kernel_reclaims_are_not_a_sawtooth_and_the_leak_stays_a_leak():
    # seen on a loaded machine: every process's rss fell 3-8 MiB at once (shared library pages
    # dropped under memory pressure) while uss did not move; the workers read "sawtooth, not on course"
    rate = 1.2 * MIB / 60
    uss = [15 * MIB + rate * t + e for t, e in zip(T, noise(200, 10_000), strict=True)]
    shared = [14 * MIB - (4 * MIB if 30 <= t < 70 else 0) - (3 * MIB if t >= 50 else 0) for t in T]
    rss = [u + s for u, s in zip(uss, shared, strict=True)]
    result = forecast(frame(T, rss=rss, uss=uss, pss=[u + s / 3 for u, s in zip(uss, shared, strict=True)]), "256MiB")
    assert result.shape == "linear", str(result)
    assert result.rate_bytes_per_s == pytest.approx(rate, rel=0.15)
    assert any("reclaiming shared file pages" in note for note in result.notes), str(result)
    assert [b.shape for b in result.beside] == ["linear", "linear"]
    unsharing_only = phases.reclaim_compensated(T, [30 * MIB] * 200, [10 * MIB + (3 * MIB if t > 50 else 0) for t in T],
                                                floor=256 * 1024)
    assert unsharing_only.events == []  # shared turning private (uss up, rss flat) is no reclaim


def test_unsharing_that_slows_down_as_it_converges_is_unsharing_not_a_warm_up():
    rss = [40 * MIB + e for e in noise(200, 10_000)]
    uss = [8 * MIB + warm(t, size=12 * MIB, tau=60.0) + e for t, e in zip(T, noise(200, 10_000, 3), strict=True)]
    result = forecast(frame(T, rss=rss, uss=uss), "256MiB")
    assert result.shape == "flat" and [b.shape for b in result.beside] == ["unsharing"], str(result)


def test_a_warm_up_longer_than_two_thirds_of_the_watch_that_stopped_at_the_end_is_a_plateau():
    # seen on 3.13's uvicorn workers: the fixed release grew for ~70 s of a 90 s watch, then stopped
    y = [28 * MIB + min(t, 75.0) * 0.04 * MIB + e for t, e in zip(T, noise(200, 10_000, 4), strict=True)]
    assert not phases.warmup_end(T, y).settled
    result = forecast(frame(T, rss=y), "256MiB")
    assert result.shape == "plateau" and result.eta_s == math.inf, str(result)
    still = [28 * MIB + warm(t, size=10 * MIB, tau=40.0) for t in T]  # still rising at the end
    assert forecast(frame(T, rss=still), "256MiB").shape == "warm-up"
