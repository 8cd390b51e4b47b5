"""Lots of temporary churn of random sizes, and a short history trimmed to 50 entries: not a leak."""
import random

EXPECT = {"verdict": ["clean", "plateau"], "culprit": [None], "root": []}

_rng = random.Random(7)
RECENT = []


def churn():
    junk = [bytearray(_rng.randint(10, 4000)) for _ in range(_rng.randint(5, 60))]
    text = "".join(str(_rng.random()) for _ in range(50))
    return len(junk) + len(text)


def remember(n):
    RECENT.append({"n": n, "blob": bytearray(_rng.randint(10, 300))})
    del RECENT[:-50]


_n = [0]


def workload():
    _n[0] += 1
    churn()
    remember(_n[0])
