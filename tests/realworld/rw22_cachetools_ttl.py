"""A user-profile lookup memoized with ``cachetools.cached(TTLCache(maxsize=256, ttl=600))``;
each request asks for a user it has not seen.

Look-alike (cachetools). The TTL cache keeps each profile until it expires or the cache is full,
then evicts: it fills for 256 calls, then stays at 256 entries. Bounded, never a leak.
"""
import itertools
import sys

import cachetools

_seq = itertools.count()
PROFILE_CACHE = cachetools.TTLCache(maxsize=256, ttl=600)


@cachetools.cached(PROFILE_CACHE)
def load_profile(user_id: int) -> dict:
    return {"id": user_id, "name": f"user {user_id}", "roles": ["reader"] + (["admin"] if user_id % 50 == 0 else []),
            "settings": {"tz": "Europe/Paris", "lang": "fr"}}


def handle(user_id: int) -> str:
    return load_profile(user_id)["name"]


def workload():
    handle(next(_seq))


TARGETS = [sys.modules[__name__], cachetools, cachetools.TTLCache]
EXPECT = {"verdict": ["plateau", "inconclusive"], "culprit": [None], "root": []}
TRUTH = {"kind": "bounded", "calls": 800}
