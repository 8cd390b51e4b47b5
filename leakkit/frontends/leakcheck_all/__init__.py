"""``pytest --leakcheck-all``: repeat every test's call phase and judge what each run keeps.

What CPython's ``regrtest -R`` does for its own suite, on any pytest suite and a release build:
fixtures are set up once, the call phase runs once as usual, then ``warmup`` more times unmeasured
and ``calls`` more times, each followed by a garbage collection and cheap readings: allocated
blocks, traced bytes (when tracemalloc is on), open file descriptors, live threads and pending
asyncio tasks. Each series gets leakkit's verdict (:func:`leakkit.analysis.classify`: warm-up
caches, cycles and growth that stops are not leaks). A test whose memory series says ``leak`` is
bisected (:func:`leakkit.bisect`, its body as the workload, the test's module and the package
under test as targets); bisect's longer run and its bounded-holder check confirm it or not, and
name the culprit function and the root that keeps its memory. A leak of threads, fds or tasks
needs no confirmation: every run left one more.

Cost: each test's call phase runs ``1 + warmup + calls`` times (15x with the defaults), plus a
bisect (~60 more runs) for each test judged leaking. Narrow it with ``-k``, a path, or a marker
(``-m``); ``@pytest.mark.leakcheck(skip=True)`` exempts a test that cannot be repeated.

The check is four jobs, one module each: :mod:`.plugin` (the pytest hooks: which tests, the
outcome of each, the bisect of a leaking one, the summary), :mod:`.runs` (running a test's call
phase again as a fresh call), :mod:`.counters` (the readings after each run and their verdicts)
and :mod:`.project` (the package under test, where bisect looks for the culprit).
"""
from __future__ import annotations

from .plugin import LeakcheckAll, LeakcheckAllWarning
from .stages import Outcome

__all__ = ["LeakcheckAll", "LeakcheckAllWarning", "Outcome"]
