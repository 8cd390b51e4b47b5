"""bisect keeps its ``time_budget`` in every phase, and its search's memory stays capped.

The budget is counted as CPU time plus the workload's own waits (leakkit.retention.budget); each
child measures bisect's CPU time itself, and a run passes within 20% of the budget. Each case
runs in a fresh interpreter under an address-space cap, so a search that ran away fails the test
instead of exhausting the machine.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from leakkit.retention.budget import Clock, Deadline, analysis_deadline

CHILD = textwrap.dedent('''\
    import json, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    import leakkit
    {setup}
    c0 = time.process_time()
    report = leakkit.bisect(workload, targets=[sys.modules[__name__]], calls=60, progress=False,
                            time_budget={budget})
    cpu = time.process_time() - c0
    print("RESULT " + json.dumps({{"cpu": cpu, "verdict": report.verdict, "culprit": report.culprit,
          "root": report.retention[0] if report.retention else None, "notes": report.notes,
          "calls": int(report.suspects["calls"].max()) if len(report.suspects) else 0,
          "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}}))
''')

BIG_SET = '''
INDEX = {f"k{i}" for i in range(2_000_000)}        # held by the target module, grown by the leak
def remember(n):
    INDEX.add(f"req-{n}-" + "x" * 50)
def parse(n):
    return len(",".join(str(i) for i in range(300)))
_n = [0]
def workload():
    _n[0] += 1
    parse(_n[0])
    remember(_n[0])
'''

SLOW_CALLS = '''
KEPT = []
def remember(n):
    KEPT.append(str(n) * 10)
def work():
    t = time.process_time()
    while time.process_time() - t < 0.15:   # 0.15 s of CPU a call: 12 calls need 1.8 s
        sum(range(1000))
_n = [0]
def workload():
    _n[0] += 1
    work()
    remember(_n[0])
'''

MOCK_PATCH = '''
from unittest import mock
class Client:
    def send(self, to, body):
        return len(body)
CLIENT = Client()
def handle(n):
    p = mock.patch.object(CLIENT, "send", return_value=0)   # started per request, never stopped
    p.start()
    CLIENT.send(f"user{n}@example.com", "hello" * 20)
_n = [0]
def workload():
    _n[0] += 1
    handle(_n[0])
'''


def _child(setup: str, budget: float) -> dict:
    code = CHILD.format(setup=setup, budget=budget)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MPLBACKEND": "Agg"})
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def test_the_budget_holds_with_two_million_objects_held_by_the_target() -> None:
    """The retention search over a 2 M-member set the leak grows (2.4 s of CPU against a 3 s
    budget; 14.9 s before the search's walks checked their deadline and stopped copying it)."""
    got = _child(BIG_SET, 3)
    assert got["cpu"] <= 1.2 * 3, got
    assert got["verdict"] == "leak" and got["culprit"] == "__main__.remember", got


def test_the_budget_holds_when_each_call_is_slow() -> None:
    """Calls of 0.15 s CPU: the calls stop at their share of a 2 s budget, below the 12 a verdict
    needs, and the report says so."""
    got = _child(SLOW_CALLS, 2)
    assert got["cpu"] <= 1.2 * 2, got
    assert any("time budget" in note for note in got["notes"]), got


def test_mock_patch_started_per_request_is_found_in_bounded_memory() -> None:
    """mock.patch(...).start() without stop(): each MagicMock has a class of its own whose
    ``__sizeof__`` made a child mock when the search sized it (3.9 GB in 24 s before)."""
    got = _child(MOCK_PATCH, 15)
    assert got["cpu"] <= 1.2 * 15, got
    assert got["maxrss"] < 600 << 20, got
    assert got["culprit"] == "__main__.handle", got
    assert got["root"].startswith("unittest.mock._patch._active_patches"), got


def test_a_deadline_is_over_when_the_analysis_passes_its_memory_cap() -> None:
    clock = Clock()
    deadline = analysis_deadline(clock, 1e9)
    capped = Deadline(clock, 1e9, memory_base=deadline.memory_base, memory_cap=8 << 20, reason=deadline.reason)
    assert not capped.over()
    ballast = bytearray(64 << 20)
    ballast[::4096] = b"x" * len(ballast[::4096])  # touch every page: RSS, not just address space
    time.sleep(0.03)  # readings are refreshed every 20 ms
    assert capped.over()
    assert any("memory cap" in reason for reason in capped.reason)
    del ballast


def test_the_clock_counts_sleep_but_not_time_waiting_for_a_cpu() -> None:
    clock = Clock()
    time.sleep(0.3)
    clock.next_refresh = 0.0
    assert 0.25 <= clock.elapsed() <= 1.0
    if not clock.schedstat:
        pytest.skip("no schedstat here: the clock falls back to a third of the wall time")
