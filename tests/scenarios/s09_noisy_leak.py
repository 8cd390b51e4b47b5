"""A small leak (one tuple per call) hidden under heavy temporary churn."""
import random

EXPECT = {"verdict": ["leak"], "culprit": ["audit"], "root": ["AUDIT_LOG"]}

_rng = random.Random(3)
AUDIT_LOG = []


def churn():
    junk = [bytearray(_rng.randint(10, 4000)) for _ in range(_rng.randint(5, 60))]
    return sum(map(len, junk))


def audit(n):
    AUDIT_LOG.append((n, f"user-{n}"))


_n = [0]


def workload():
    _n[0] += 1
    churn()
    audit(_n[0])
