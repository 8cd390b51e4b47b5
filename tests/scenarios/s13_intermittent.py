"""One request in ten is slow and its trace is kept in a module list forever."""
EXPECT = {"verdict": ["leak"], "culprit": ["keep_slow_trace"], "root": ["SLOW"]}

SLOW = []


def keep_slow_trace(n):
    SLOW.append({"n": n, "frames": [f"frame-{i}" for i in range(20)]})


def handle(n):
    if n % 10 == 0:
        keep_slow_trace(n)


_n = [0]


def workload():
    _n[0] += 1
    handle(_n[0])
