"""A pricing service whose method is memoized with ``functools.lru_cache(maxsize=256)``; each
request prices a new (sku, region) pair.

Look-alike (stdlib). An ``lru_cache`` on a method keys on ``self`` too and keeps each result:
it fills for 256 calls, then evicts the least recent. Bounded: a plateau (the cache's
``cache_info()`` says so), never a leak. (It also keeps ``self`` alive: fine for a service
object that lives for the whole process.)
"""
import functools
import itertools
import sys

_seq = itertools.count()


class PriceBook:
    def __init__(self, currency: str) -> None:
        self.currency = currency
        self.rates = {"eu": 1.0, "us": 1.08, "uk": 0.86}

    @functools.lru_cache(maxsize=256)  # noqa: B019 - the method cache is the point
    def quote(self, sku: str, region: str) -> dict:
        base = 100 + sum(map(ord, sku)) % 900
        return {"sku": sku, "region": region, "cents": round(base * self.rates[region]),
                "currency": self.currency, "breakdown": [base, self.rates[region]]}


BOOK = PriceBook("EUR")


def handle_quote(n: int) -> int:
    return BOOK.quote(f"SKU-{n:06d}", ("eu", "us", "uk")[n % 3])["cents"]


def workload():
    handle_quote(next(_seq))


TARGETS = [sys.modules[__name__], PriceBook, functools]
EXPECT = {"verdict": ["plateau", "inconclusive"], "culprit": [None], "root": []}
TRUTH = {"kind": "bounded", "calls": 800}
