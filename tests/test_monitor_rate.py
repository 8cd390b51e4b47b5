"""The monitor's own judgement (leakkit.recording.monitor_rate) on synthetic series sampled every second.

The scenarios are the ones a worker shows: a leak of 1 MiB/min behind a warm-up, a warm-up
alone, a cache that fills in two minutes and stops, the copy-on-write unsharing step after a
fork, a flat worker, a slow leak that needs hours. Noise: 0.3 MiB per sample (requests in flight).
"""
from __future__ import annotations

import math
import random

import pytest

from leakkit.recording.monitor_rate import History, judge, theil_sen

MIB = 1024 * 1024
BASE = 30 * MIB


def warm(t):
    return BASE + 8 * MIB * (1 - math.exp(-t / 30))


SCENARIOS = {
    "leak 1 MiB/min after a warm-up": lambda t: warm(t) + t / 60 * MIB,
    "warm-up": warm,
    "cache filling for 2 min": lambda t: BASE + min(t / 120, 1) * 10 * MIB,
    "unsharing step after the fork": lambda t: BASE + (2 * MIB if t > 5 else 0),
    "flat": lambda t: BASE,
}


def first_leak(curve, *, minutes, seed, noise=0.3 * MIB, sustain=300.0):
    """Seconds until the rule first says leak (None: never), and the last judgement."""
    rnd = random.Random(seed)
    history = History(sustain)
    first = None
    judged = None
    for second in range(int(minutes * 60)):
        history.add(float(second), curve(second) + rnd.gauss(0, noise))
        if second % 10 == 0:
            judged = judge(history, MIB)
            if judged.verdict == "leak" and first is None:
                first = second
    return first, judged


@pytest.mark.parametrize("seed", range(5))
def test_a_1_mib_per_min_leak_fires_within_10_minutes_with_its_rate(seed):
    first, judged = first_leak(SCENARIOS["leak 1 MiB/min after a warm-up"], minutes=12, seed=seed)
    assert first is not None and first <= 600
    assert judged.verdict == "leak"
    assert judged.low * 60 <= 1.0 * MIB <= judged.high * 60  # the interval holds the true rate
    assert 0.8 * MIB <= judged.rate * 60 <= 1.25 * MIB


@pytest.mark.parametrize("name", ["warm-up", "cache filling for 2 min", "unsharing step after the fork", "flat"])
@pytest.mark.parametrize("seed", range(5))
def test_warm_up_a_filling_cache_and_unsharing_never_fire(name, seed):
    first, judged = first_leak(SCENARIOS[name], minutes=30, seed=seed)
    assert first is None
    assert judged.verdict == ("flat" if name in ("flat", "unsharing step after the fork") else "plateau")


def test_a_slow_leak_fires_on_the_long_scale():
    first, judged = first_leak(lambda t: BASE + t / 600 * MIB, minutes=180, seed=1)  # 0.1 MiB/min
    assert first is not None and judged.verdict == "leak"
    assert 0.08 * MIB <= judged.rate * 60 <= 0.12 * MIB


def test_a_young_growing_process_is_warming_up_not_a_leak():
    first, judged = first_leak(SCENARIOS["leak 1 MiB/min after a warm-up"], minutes=3, seed=0)
    assert first is None and judged.verdict == "warming up"


def test_too_few_samples_are_unknown():
    history = History(300.0)
    for second in range(30):
        history.add(float(second), BASE)
    assert judge(history, MIB).verdict == "unknown"


def test_theil_sen_interval_widens_for_serially_correlated_noise():
    rnd = random.Random(3)
    t = [float(i) for i in range(60)]
    white = [2.0 * i + rnd.gauss(0, 10) for i in range(60)]
    walk, level = [], 0.0
    for i in range(60):
        level = 0.9 * level + rnd.gauss(0, 10)
        walk.append(2.0 * i + level)
    _, low_w, high_w = theil_sen(t, white)
    _, low_r, high_r = theil_sen(t, walk)
    assert low_w < 2.0 < high_w
    assert high_r - low_r > high_w - low_w


@pytest.mark.parametrize("seed", range(3))
def test_a_start_up_step_with_a_slow_tail_is_not_a_leak(seed):
    """A loaded uvicorn worker's start-up as its monitor recorded it: nearly flat, a 12 MiB rise,
    then a slow tail that stops. Each third of the window grew and the last grew as fast as the
    nearly flat first, so the rule fired on a fixed server; the last third's growth is a tenth of
    the window's: it is slowing down, a warm-up."""
    def start_up(t):
        return (BASE + 0.2 * MIB * min(t / 100, 1) + 12 * MIB * min(max((t - 70) / 100, 0), 1)
                + 1 * MIB * min(max((t - 170) / 200, 0), 1))

    first, judged = first_leak(start_up, minutes=20, seed=seed, noise=0.01 * MIB)
    assert first is None and judged.verdict == "plateau"


@pytest.mark.parametrize("seed", range(6))
def test_the_workers_plain_python_estimator_is_the_analysis_one(seed):
    """A worker judges without numpy (its import would cost every worker megabytes): the monitor's
    Theil-Sen with the serial-correlation widening must give what the notebook's forecast gives
    on the same points, so a worker's snapshot and `leakkit forecast` of its CSV agree."""
    np = pytest.importorskip("numpy")
    from leakkit.analysis.forecast import theil_sen as analysis_theil_sen

    rnd = random.Random(seed)
    t = [float(i) + rnd.random() * 0.2 for i in range(8 + 9 * seed)]
    level, noise, y = BASE, 0.0, []
    for _ in t:  # a leak with AR(1) noise and a resize step now and then
        level += 0.02 * MIB + (MIB if rnd.random() < 0.05 else 0.0)
        noise = 0.8 * noise + rnd.gauss(0, 0.3 * MIB)
        y.append(level + noise)
    slope, low, high = theil_sen(t, y)
    a_slope, _, a_low, a_high = analysis_theil_sen(np.array(t), np.array(y), autocorrelation=True)
    assert (slope, low, high) == pytest.approx((a_slope, a_low, a_high), rel=1e-9)
    if seed >= 2:  # long enough for the widening to act: the interval is not Sen's alone
        _, _, n_low, n_high = analysis_theil_sen(np.array(t), np.array(y))
        assert high - low > n_high - n_low
