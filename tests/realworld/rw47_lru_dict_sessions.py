"""An API gateway that keeps the 32 most recent session tokens it has verified (the decoded
claims, ~1.5 KB each) in an ``lru.LRU(32)`` from the ``lru-dict`` package (a C hash table with
LRU eviction); each request carries a new token.

Look-alike (lru-dict), an enforced bound in C that fills and evicts. The LRU keeps each verified
session until 32 are held, then drops the least recently used one for every new one: nothing in
Python code says so (no ``maxsize`` attribute, no removal in Python: the eviction is in the C
``__setitem__``), but the run sees it happen after 32 calls. Bounded, never a leak.
"""
import hashlib
import itertools
import sys

import lru

VERIFIED = lru.LRU(32)
_seq = itertools.count()


def verify(token: str) -> dict:
    claims = VERIFIED.get(token)
    if claims is None:
        digest = hashlib.sha256(token.encode()).hexdigest()
        claims = {"sub": token[:12], "scopes": [f"scope:{i}" for i in range(24)], "sig": digest,
                  "aud": "api.example.com", "raw": token * 8}
        VERIFIED[token] = claims
    return claims


def workload():
    n = next(_seq)
    verify(f"tok-{n:08d}-{n * 7919 % 100003:06d}")


def check_bound() -> list[str]:
    for _ in range(200):
        workload()
    return [] if len(VERIFIED) == 32 else [f"LRU holds {len(VERIFIED)} entries, expected 32"]


TARGETS = [sys.modules[__name__], lru]
EXPECT = {"verdict": ["plateau", "inconclusive", "clean"], "culprit": [None], "root": []}
TRUTH = {"kind": "bounded", "calls": 400, "checkpoints": 16, "check": "check_bound"}
