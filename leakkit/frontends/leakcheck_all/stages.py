"""One test's check in stages, each only for the tests the one before it suspects: what makes a
whole suite affordable.

1. **screen** (every test): ``screen`` more runs, a cheap reading after each; a counter is
   suspect only when every run raised it (``regrtest -R``'s rule). Most tests stop here: with
   the plain run that is ``1 + screen`` runs of the call phase, fixtures and reporting once.
2. **confirm** (suspects): ``confirm`` more runs; leakkit's verdict on the whole series. Growth
   that may still stop (a cache filling up one entry a run) runs on in doubling stages, within a
   share of the bisect's budget: a bisect costs far more.
3. **whose**: growth held only by the test harness (:mod:`.holders`) is not the test's.
4. **bisect** (confirmed memory growth, and threads, fds or tasks left on every run): the
   culprit function and the root that keeps its memory, within its budget (:mod:`.watchdog`),
   in a forked copy of the session where it can (:mod:`.forked`): its runs and tracemalloc's
   freed tables stay there.
"""
from __future__ import annotations

import gc
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from ..._compat import freeze
from ..._errors import LeakkitError
from ..._sizes import format_size
from ...engine.run import MIN_CALLS
from ...probes import process as probes
from . import holders
from .counters import COUNTS, FLOORS, MEMORY, UNITS, Series, judge, read_counters, screen, still_rising
from .forked import ChildDied, can_fork, run_forked
from .progress import Budget
from .quiet import Quiet
from .runs import Interrupted, describe_error, run_once, unrepeatable_error
from .watchdog import within

RUNAWAY_BYTES = 1 << 30  # a test whose runs grow the process by more is not repeated further
RUN_ON_MAX = 512  # readings in all, at most, for growth that may stop (a 128-entry cache fills in 128 runs)
RUN_ON_S = 3.0  # at most, running on to spare a bisect (and a fifth of the bisect's budget)


@dataclass
class Plan:
    """How many runs each stage makes."""

    warmup: int  # unmeasured runs before the screen (the plain run is a warm-up already)
    screen: int  # measured runs every test gets
    confirm: int  # more measured runs for a suspect
    bisect_budget: float  # seconds, each bisect


@dataclass
class Outcome:
    """What --leakcheck-all found for one test: a JSON-able dict crosses xdist on the report."""

    nodeid: str
    verdict: str  # leak, clean, plateau, inconclusive, harness, suspect, runaway, unrepeatable, skipped, unconfirmed
    counter: str = ""  # the counter that leaked: blocks, malloc_bytes, traced_bytes, fds, threads, tasks
    rate: str = ""  # per run, in the counter's unit
    culprit: str | None = None
    root: str | None = None
    detail: str = ""
    runs: int = 0  # repeated runs made (the plain run not counted)
    seconds: float = 0.0  # spent checking it, its bisect included
    bisect_s: float = 0.0
    run_s: float = 0.0  # of which: the repeated runs, their readings, the holders' look-up
    read_s: float = 0.0
    holders_s: float = 0.0
    screen_s: float = 0.0  # the screen's runs and readings: what every test's check costs at least

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


class Check:
    """The stages for one test; ``targets`` gives the bisect's targets, ``say`` a progress line."""

    def __init__(self, item: pytest.Item, quiet: Quiet, plan: Plan, *, harness: tuple[str, ...],
                 targets: Callable[[], list[Any]], say: Callable[[str], None], budget: Budget) -> None:
        self.item, self.quiet, self.plan = item, quiet, plan
        self.harness, self.targets, self.say, self.budget = harness, targets, say, budget
        self.started = 0.0
        self.rss0 = 0
        self.runs = 0
        # where the check's time went (runs, readings, holders), in an array: a float attribute
        # replaced after each run would be a block the check itself keeps at the next reading
        self.spent = array("d", [0.0, 0.0, 0.0])
        # start times, the last RSS and the screen's cost, kept out of the heap
        self.clock = array("d", [0.0, 0.0, 0.0, 0.0])
        self.measured = 0
        self.malloc_on = True
        self.series = Series(tuple(FLOORS), 1 + plan.screen + max(plan.confirm, RUN_ON_MAX))

    def run(self) -> Outcome:
        self.started = time.perf_counter()
        self.rss0 = probes.rss() or 0
        outcome = self._stages()
        outcome.runs = self.runs
        outcome.seconds = time.perf_counter() - self.started
        outcome.run_s, outcome.read_s, outcome.holders_s = self.spent
        outcome.screen_s = self.clock[3] or outcome.run_s + outcome.read_s
        return outcome

    def _affords(self, runs: int) -> bool:
        """Whether ``runs`` more runs (at the pace of the runs so far) fit the check's cost budget."""
        return self.budget.allows(time.perf_counter() - self.started, self.per_run_s * runs)

    # Between two readings the check itself must hold the same objects: a float or an int kept in
    # a local across a reading (a start time, the last RSS) reads as a block the test kept. Times
    # and readings go into arrays.
    def _once(self) -> None:
        self.runs += 1
        self.clock[0] = time.perf_counter()
        try:
            run_once(self.item, self.quiet)
        finally:
            self.spent[0] += time.perf_counter() - self.clock[0]

    def _read(self) -> dict[str, float | None]:
        self.clock[1] = time.perf_counter()
        reading = read_counters(malloc_too=self._malloc_wanted())
        self.spent[1] += time.perf_counter() - self.clock[1]
        return reading

    def _malloc_wanted(self) -> bool:
        """malloc's count (the costly reading) only while it can be suspect: through the screen
        while every run so far raised it, after the screen when every screened run did."""
        if self.malloc_on and 0 < self.series.n <= self.plan.screen + 1:
            self.malloc_on = still_rising(self.series, "malloc_bytes")
        return self.malloc_on

    def _measured(self, n: int) -> None:
        for _ in range(n):
            self._once()
            self.series.add(self._read())
            self.clock[2] = probes.rss() or 0
            if self.rss0 and self.clock[2] - self.rss0 > RUNAWAY_BYTES:
                raise _RanAway(f"its runs grew the process by {format_size(self.clock[2] - self.rss0)} in "
                               f"{self.runs} runs: not repeated further (run it alone to see what keeps it)")
        self.measured += n

    @property
    def per_run_s(self) -> float:
        """What a measured run has cost so far, with its reading."""
        return (self.spent[0] + self.spent[1]) / max(self.runs, 1)

    def _stages(self) -> Outcome:
        nodeid, plan = self.item.nodeid, self.plan
        frozen = False
        try:
            for _ in range(plan.warmup):
                self._once()
            # Frozen before the first reading: its collection and every later one walk only what
            # the runs made, not the whole heap of the test process. Garbage left from before
            # stays frozen, so it counts the same in every reading.
            frozen = freeze()
            self.series.add(self._read())
            self._measured(plan.screen - 1)
            table, held = None, None
            grew = frozen and screen(self.series, plan.screen - 1, MEMORY)
            if grew and self.budget.allows(time.perf_counter() - self.started,
                                           self.budget.lookup_s() + self.per_run_s):
                # memory grew on every run so far: the containers' lengths before the last run, to
                # tell by their holders whose its growth is (the harness's, a bounded cache's, or
                # maybe the test's) without more runs, if the look-up fits the cost budget (it
                # does whenever the confirming runs would)
                started = time.perf_counter()
                gc.unfreeze()
                table = holders.lengths()
                frozen = freeze()
                self.spent[2] += time.perf_counter() - started
                self.series.replace_last(self._read())  # the table itself is not the test's
            self._measured(1)
            suspects = screen(self.series, plan.screen)
            self.clock[3] = self.spent[0] + self.spent[1]
            if not suspects:
                return Outcome(nodeid, "clean", detail="no counter grew on every run")
            suspects.sort(key=lambda name: name not in COUNTS)  # a thread, fd or task first: the likelier leak
            if table is not None and suspects[0] in MEMORY:
                started = time.perf_counter()
                gc.unfreeze()
                frozen = False
                held = holders.whose(table, self.harness)
                frozen = freeze()
                self.spent[2] += time.perf_counter() - started
                self.budget.looked_up(self.spent[2])
                verdict = held.verdict(1)
                if verdict is not None:
                    steps = self.series.last_steps(suspects[0], plan.screen)
                    return Outcome(nodeid, verdict, suspects[0], f"{sum(steps) / len(steps):+.3g} {UNITS[suspects[0]]}/run",
                                   detail=f"{suspects[0]} grew, held by what is not the test's: {held}")
            looked = table is not None
            del table
            more = max(plan.confirm - (self.measured - plan.screen), 0)
            if not self._affords(more) or (grew and not looked and suspects[0] in MEMORY):
                steps = self.series.last_steps(suspects[0], self.measured)
                return Outcome(nodeid, "suspect", suspects[0], detail=(
                    f"{suspects[0]} grew on each of its {len(steps)} runs ({', '.join(f'{d:+.0f}' for d in steps)}); "
                    f"{more} more runs (~{self.per_run_s * more:.0f} s) would take the check past "
                    f"{self.budget.factor:g}x the plain suite{self.budget.reserved()}: check it alone: pytest {nodeid} --leakcheck-all "
                    "--leakcheck-cost=inf" + (f" (its last run's growth: {held})" if held is not None else "")))
            self._measured(more)
            verdicts = judge(self.series, suspects)
            leaking = [n for n in suspects if verdicts[n].verdict == "leak"]
            if not leaking:
                return self._not_leaking(verdicts)
            counter = ([n for n in leaking if n in COUNTS] or leaking)[0]
            if counter not in COUNTS:  # a thread, fd or task left by every run needs no more runs
                verdicts, leaking = self._run_on(suspects, verdicts, leaking)
                if not leaking:
                    return self._not_leaking(verdicts)
                counter = leaking[0]
        except Interrupted:
            raise
        except _RanAway as error:
            return Outcome(nodeid, "runaway", detail=str(error))
        except BaseException as error:
            if not unrepeatable_error(error):
                raise
            return Outcome(nodeid, "unrepeatable", detail=describe_error(error))
        finally:
            if frozen:
                # what the last run left (a run that raised: its tasks, their exceptions never
                # retrieved) is finalized now, while its logs and output are still set aside, and
                # cheaply (the heap frozen): collected later, an asyncio task's finalizer logged
                # its traceback from inside an unrelated ast.parse, and CPython 3.11 failed that
                # parse ("AST constructor recursion depth mismatch": asgiref's session summary)
                gc.collect()
                gc.unfreeze()
        return self._bisected(counter, verdicts)

    def _not_leaking(self, verdicts: dict[str, Any]) -> Outcome:
        worst = _worst(verdicts)
        return Outcome(self.item.nodeid, worst.verdict if worst is not None else "clean",
                       detail=str(worst) if worst is not None else "")

    def _run_on(self, suspects: list[str], verdicts: dict[str, Any], leaking: list[str]
                ) -> tuple[dict[str, Any], list[str]]:
        """Run on in doubling stages while the growth could still stop, within a share of the bisect budget."""
        budget = min(self.plan.bisect_budget / 5, RUN_ON_S)
        spent = 0.0
        while leaking and self.series.n < self.series.size:
            n = min(self.series.n, self.series.size - self.series.n)  # doubling
            if spent + self.per_run_s * n > budget or not self._affords(n):
                break
            started = time.perf_counter()
            self._measured(n)
            spent += time.perf_counter() - started
            verdicts = judge(self.series, suspects)
            leaking = [name for name in suspects if verdicts[name].verdict == "leak"]
        return verdicts, leaking

    def _bisected(self, counter: str, verdicts: dict[str, Any]) -> Outcome:
        """Bisect a confirmed growth: LEAK with the culprit and root, or unconfirmed."""
        nodeid = self.item.nodeid
        rate = _rate(verdicts[counter], counter)
        report, problem, spent = self._bisect()
        counts = counter in COUNTS
        if report is None:
            detail = f"  {counter}: {verdicts[counter]}\n  (no bisect: {problem})"
            return Outcome(nodeid, "leak" if counts else "unconfirmed", counter, rate, detail=detail, bisect_s=spent)
        root = report.retention[0] if report.retention else None
        detail = f"  {counter}: {verdicts[counter]}\n{report}"
        if report.verdict == "leak" and not counts:
            rate = f"{format_size(report.total.rate, signed=True)}/run ({rate})"
        if report.verdict != "leak" and not counts:
            return Outcome(nodeid, "unconfirmed", counter, rate, detail=f"bisect says {report.verdict}\n{detail}",
                           bisect_s=spent)
        return Outcome(nodeid, "leak", counter, rate, report.culprit, root, detail, bisect_s=spent)

    def _bisect(self) -> tuple[Any, str, float]:
        from ... import bisect

        started = time.perf_counter()
        try:
            targets = self.targets()
        except LeakkitError as error:
            return None, str(error), 0.0
        budget = self.plan.bisect_budget
        self.say(f"leakcheck-all: {self.item.nodeid} keeps memory on every run; bisecting it "
                 f"(at most ~{budget:.0f} s) ...")
        item, quiet = self.item, self.quiet
        calls, warmup = 60, 2  # bisect's defaults
        if self.per_run_s * (calls + warmup) > budget / 2:
            # a slow test (it sleeps, it waits on a thread pool) gets only a few calls in the
            # budget: planned so, each one read (60 planned gave a reading every 3, too few), and
            # one warm-up: its check has run it many times already
            calls, warmup = MIN_CALLS, 1

        def workload() -> None:
            run_once(item, quiet)

        limit = 2 * budget + 10

        def watched() -> Any:
            return within(limit, lambda: bisect(workload, targets=targets, progress=False, calls=calls,
                                                warmup=warmup, time_budget=budget),
                          memory=2 * RUNAWAY_BYTES)

        try:
            report = run_forked(watched, limit) if can_fork() else watched()
            return report, "", time.perf_counter() - started
        except ChildDied as died:
            return None, f"the bisect's forked process failed: {died}", time.perf_counter() - started
        except Interrupted as cut:
            spent = time.perf_counter() - started
            why = str(cut) or f"it overran its {budget:.0f} s budget"
            return None, f"the bisect was cut after {spent:.0f} s: {why}", spent
        except LeakkitError as error:
            return None, str(error), time.perf_counter() - started


class _RanAway(Exception):
    """A test's runs grew the process past RUNAWAY_BYTES."""


def _rate(growth: Any, counter: str) -> str:
    return f"{growth.rate:+.3g} {UNITS[counter]}/run"


def _worst(verdicts: dict[str, Any]) -> Any:
    """The verdict to report for a test that does not leak: the most doubtful of its counters."""
    order = {"inconclusive": 0, "plateau": 1, "clean": 2}
    ranked = sorted(verdicts.values(), key=lambda g: order.get(g.verdict, 3))
    return ranked[0] if ranked else None
