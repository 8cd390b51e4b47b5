"""A cache that random requests fill and an eviction pass trims back to 40 entries whenever it
passes 50: it wanders between 40 and 50, never grows."""
import random

EXPECT = {"verdict": ["clean", "plateau"], "culprit": [None], "root": []}
_rng = random.Random(5)
CACHE = {}


def get(key):
    if key not in CACHE:
        CACHE[key] = ("v" * _rng.randint(50, 500), key)
    if len(CACHE) > 50:
        for k in list(CACHE)[:10]:
            del CACHE[k]


def workload():
    get(_rng.randint(0, 10_000))
