"""How far ``--leakcheck-all`` is, about how long it has left, and what it cost.

Kept in the process that reports (the only one, or xdist's controller, which hears of every
test): a line every ``every`` seconds, from the tests finished so far, and the cost summed from
each test's outcome (its repeated runs and its bisect), for the closing summary.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

FIRST_S = 10.0  # the first line, after this long
EVERY_S = 30.0
FREE_S = 1.0  # the session's first second of checks fits any budget
RESERVE_AFTER = 20  # tests done before the screens to come are projected from the pace so far
# The budget aims under its factor, so that the factor is a cap: the plain suite it is measured
# against is itself noisy (attrs' plain suite took 14.6 s to 17.5 s over six runs), and what
# the check cannot time (leakkit's imports, its share of pytest's reporting) counts as plain.
# Aimed at the factor itself, attrs' check ended at 5.07x its own plain session, 5.16x a plain run.
AIM = 0.95


class Progress:
    """Tests finished of ``total`` and the time left at the pace so far; the check's own cost."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.start = clock()
        self.total: int | None = None
        self.done = 0
        self.next_at = self.start + FIRST_S
        self.check_s = 0.0  # repeated runs, readings and bisects
        self.bisect_s = 0.0
        self.bisects = 0
        self.runs = 0
        self.looked_up = 0  # tests whose growth's holders were looked up
        self.parts = {"run_s": 0.0, "read_s": 0.0, "holders_s": 0.0}

    def add(self, outcome: dict[str, Any]) -> None:
        self.check_s += float(outcome.get("seconds", 0.0))
        for name in self.parts:
            self.parts[name] += float(outcome.get(name, 0.0))
        self.bisect_s += float(outcome.get("bisect_s", 0.0))
        self.bisects += 1 if outcome.get("bisect_s") else 0
        self.runs += int(outcome.get("runs", 0))
        self.looked_up += 1 if outcome.get("holders_s") else 0

    def finished(self) -> str | None:
        """One more test finished: a progress line when one is due, else None."""
        self.done += 1
        now = self.clock()
        if now < self.next_at:
            return None
        self.next_at = now + EVERY_S
        elapsed = now - self.start
        text = f"leakcheck-all: {self.done}"
        if self.total:
            text += f"/{self.total}"
        text += f" tests in {_duration(elapsed)}"
        if self.total and self.total > self.done:
            left = elapsed / self.done * (self.total - self.done)
            text += f", about {_duration(left)} left"
        if self.bisects:
            text += f" ({self.bisects} bisected, {_duration(self.bisect_s)})"
        return text

    def cost(self) -> str:
        """The check's own time, for the summary: repeated runs and readings, and bisects."""
        runs_s = max(self.check_s - self.bisect_s, 0.0)
        parts = self.parts
        text = (f"the check took {_duration(runs_s)} in {self.runs} repeated runs (the runs {_duration(parts['run_s'])}, "
                f"their readings {_duration(parts['read_s'])}, looking up holders {_duration(parts['holders_s'])}"
                f"{f' for {self.looked_up} tests' if self.looked_up else ''})")
        if self.bisects:
            text += f" and {_duration(self.bisect_s)} in {self.bisects} bisect{'s' if self.bisects > 1 else ''}"
        return text


def _process_age() -> float:
    """Seconds since this process started (0 when it cannot be read)."""
    try:
        import psutil

        return max(time.time() - psutil.Process().create_time(), 0.0)
    except Exception:
        return 0.0


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s"


class Budget:
    """The check's time against the plain suite's: at most ``factor`` times the plain suite in all,
    bisects aside. Every test gets its screen; a suspect's further runs (and a look-up of what
    holds its growth) go ahead only while they fit beside the screens of the tests still to come
    (an expensive suspect early in a session may not: it is listed, to be checked alone)."""

    def __init__(self, factor: float, clock: Callable[[], float] = time.perf_counter, *,
                 started: float | None = None) -> None:
        """``started``: when the plain session began on ``clock`` (default: when this process did,
        its start-up and imports being the plain suite's time as much as its tests)."""
        self.factor = factor
        self.clock = clock
        self.start = clock() - _process_age() if started is None else started
        self.check_s = 0.0  # repeated runs and readings of tests finished
        self.bisect_s = 0.0
        self.lookups = [0, 0.0]  # holders' look-ups made so far, and their seconds: what the next may cost
        self.total: int | None = None  # tests this process will run, when it knows (not an xdist worker)
        self.done = 0  # tests finished, checked or not
        self.screens_s = 0.0  # the screens of the tests checked so far

    def lookup_s(self) -> float:
        """What a holders' look-up has cost on average so far (0 before the first)."""
        return self.lookups[1] / self.lookups[0] if self.lookups[0] else 0.0

    def looked_up(self, seconds: float) -> None:
        self.lookups[0] += 1
        self.lookups[1] += seconds

    def add(self, check_s: float, bisect_s: float, screen_s: float = 0.0) -> None:
        """A test's check is over: ``check_s`` in all (``screen_s`` of it its screen), bisects aside."""
        self.check_s += check_s
        self.bisect_s += bisect_s
        self.screens_s += screen_s

    def finished(self) -> None:
        """A test finished (checked or not): one screen fewer to keep room for."""
        self.done += 1

    def plain_s(self, current: float = 0.0) -> float:
        """The session's own time so far: all of it but the check's (``current``: the running test's check)."""
        return max(self.clock() - self.start - self.check_s - self.bisect_s - current, 0.0)

    def allows(self, current: float, more: float) -> bool:
        """Whether ``more`` seconds of runs fit, the running test's check having taken ``current``.

        The session's first ``FREE_S`` seconds of checks always do (a small session would otherwise
        afford nothing); not each test's first second: on attrs' 1,300 tests that allowance alone
        paid for 1 min 50 s of holders' look-ups, past 12x the plain suite. Past them, the session so
        far must be within the factor (aimed at :data:`AIM` of it) of the plain session so far and, once ``RESERVE_AFTER``
        tests are done, leave room for the screens of the tests to come (at the pace of the
        screens so far, against the plain session projected by the share of tests done): every
        test gets its screen, so spending the budget early on confirmations and look-ups took
        attrs' check to 5.8x, its last screens paid past the budget."""
        spent = self.check_s + current + more
        if self.factor == float("inf") or spent <= FREE_S:
            return True
        plain = self.plain_s(current)
        if spent > self.over * plain:
            return False
        if not self.total or self.done < RESERVE_AFTER or self.done >= self.total:
            return True
        left = self.total - self.done - 1  # the running test's screen is in ``current``
        reserve = self.screens_s / self.done * left
        projected = plain * self.total / (self.done + 1)
        return spent + reserve <= self.over * projected

    @property
    def over(self) -> float:
        """The check's time the budget aims at, per second of the plain session (see :data:`AIM`)."""
        return max(self.factor * AIM - 1.0, 0.0)

    def reserved(self) -> str:
        """What the budget keeps room for, for a suspect it cannot afford ("" when nothing)."""
        left = (self.total or 0) - self.done - 1
        if left <= 0 or self.done < RESERVE_AFTER:
            return ""
        return f" beside the screens of the {left} tests still to come (~{self.screens_s / self.done * left:.0f} s)"
