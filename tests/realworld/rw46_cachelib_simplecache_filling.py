"""A catalogue front end that caches each rendered product card (~2 KB of HTML) in a
``cachelib.SimpleCache(threshold=300, default_timeout=3600)``, the in-process backend of
Flask-Caching; every request shows a product not seen yet (a long catalogue, browsed in order).

Look-alike (cachelib), an enforced bound that is still filling. ``SimpleCache.set`` prunes before
it stores: once the cache holds more than ``threshold`` entries it drops expired ones, then the
oldest until it is back at the threshold (``_prune`` / ``_remove_older``). For the first 300
calls every card is kept (pickled, ~2.3 KB each); from then on each new card replaces the oldest.
Bounded, never a leak; a short run sees only the filling.
"""
import itertools
import sys

import cachelib
import cachelib.simple

CARDS = cachelib.SimpleCache(threshold=300, default_timeout=3600)
_seq = itertools.count()


def render_card(product_id: int) -> str:
    html = CARDS.get(f"card:{product_id}")
    if html is None:
        rows = "".join(f"<li>spec {k}: value {product_id * k % 1000}</li>" for k in range(40))
        html = f"<article id='p{product_id}'><h2>Product {product_id}</h2><ul>{rows}</ul></article>"
        CARDS.set(f"card:{product_id}", html)
    return html


def workload():
    render_card(next(_seq))


def check_bound() -> list[str]:
    sizes = []
    for _ in range(700):
        workload()
        sizes.append(len(CARDS._cache))
    return [] if max(sizes) <= 301 and sizes[-1] >= 299 else [f"cache size {min(sizes)}..{max(sizes)}"]


TARGETS = [sys.modules[__name__], cachelib, cachelib.simple]
EXPECT = {"verdict": ["inconclusive", "plateau", "clean"], "culprit": [None], "root": []}
TRUTH = {"kind": "bounded", "calls": 1200, "checkpoints": 24, "check": "check_bound"}
