"""A per-thread scratch list that is appended to on every call and never cleared."""
import threading

EXPECT = {"verdict": ["leak"], "culprit": ["remember"], "root": ["LOCAL"]}

LOCAL = threading.local()


def remember(n):
    if not hasattr(LOCAL, "history"):
        LOCAL.history = []
    LOCAL.history.append(("req", n, f"/path/{n}" * 3))


_n = [0]


def workload():
    _n[0] += 1
    remember(_n[0])
