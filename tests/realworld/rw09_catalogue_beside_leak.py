"""A product-search service whose module holds its whole catalogue in memory (150 000 product
dicts, loaded at start) and, beside it, a list of every query it has answered (``RECENT_QUERIES``,
meant to be trimmed by a job that was never written).

Real leak beside a big standing heap (stdlib only). The query log grows by one small entry per
call (~200 B); the catalogue is large and never changes. Finding the root must be led by what
grew, not by walking everything the module reaches.
"""
import itertools
import sys

CATALOGUE = [{"sku": f"P{i:06d}", "title": f"product {i}", "price_cents": 100 + i % 5000,
              "tags": ("home", "garden") if i % 2 else ("kitchen",)} for i in range(150_000)]
BY_SKU = {p["sku"]: p for p in CATALOGUE}
RECENT_QUERIES: list[tuple[str, int]] = []
_seq = itertools.count()


def search(term: str, limit: int = 5) -> list[dict]:
    RECENT_QUERIES.append((term, limit))
    start = hash(term) % (len(CATALOGUE) - limit)
    return CATALOGUE[start:start + limit]


def workload():
    n = next(_seq)
    search(f"garden chair {n}")


def release():
    RECENT_QUERIES.clear()


TARGETS = [sys.modules[__name__]]
EXPECT = {"verdict": ["leak"], "culprit": ["workload", "search"], "root": ["rw09_catalogue_beside_leak.RECENT_QUERIES"]}
TRUTH = {"kind": "leak", "calls": 300, "min_bytes_per_call": 60, "root": "rw09_catalogue_beside_leak.RECENT_QUERIES",
         "root_grows_by": 0.95, "release": "release"}
