"""The watchdog that cuts an overrunning bisect leaves the interpreter as it found it.

Taking back an interruption (``PyThreadState_SetAsyncExc(id, NULL)``), or sending one to a thread
that ends first, leaves CPython's "asynchronous exception pending" mark set until some thread
receives one: the eval breaker stays set for the rest of the process, and on 3.11 the next profile
function (bisect's own call counter, in the next test of the session) spun forever at a function
entry: a whole ``make test`` hung in tests/test_magics.py after tests/test_leakcheck_all.py cut a
bisect. Each case runs in a fresh interpreter with a timeout.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent('''
    import sys, threading, time
    from leakkit.frontends.leakcheck_all import watchdog
    from leakkit.frontends.leakcheck_all.runs import Interrupted

    def overrun():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pass

    def late():  # the interruption is sent while the call is ending: it is taken back
        watchdog._set_async(threading.get_ident(), None)

    case = sys.argv[1]
    if case == "cut":
        try:
            watchdog.within(0.3, overrun)
        except Interrupted:
            pass
    elif case == "taken-back":
        watchdog._set_async(threading.get_ident(), None)  # what a late interruption's cleanup did
        watchdog._clear_here()
    calls = []
    sys.setprofile(lambda frame, event, arg: calls.append(event))
    def f():
        return 1
    for _ in range(3):
        f()
    sys.setprofile(None)
    print("ok", len(calls) > 0)
''')


def run(case: str) -> str:
    result = subprocess.run([sys.executable, "-c", SCRIPT, case], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_cut_bisect_leaves_no_pending_mark_a_profiler_would_spin_on():
    assert run("cut") == "ok True"


def test_an_interruption_taken_back_is_cleared_too():
    assert run("taken-back") == "ok True"
