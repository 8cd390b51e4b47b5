"""A support tool's request log: the service keeps the 50 most recent requests in a
``collections.deque(maxlen=50)``, each with its user's profile as a ``lazy_object_proxy.Proxy``
(loaded from the profile store only if someone opens the request in the debug page; loading one
builds ~250 KB of history).

Look-alike (lazy-object-proxy), an enforced bound that fills beside a walk hazard. The deque keeps
50 small entries and drops the oldest: bounded. But every proxy evaluates its factory on the
first touch of almost anything: ``repr``, ``len``, ``==``, ``hash``, ``isinstance`` (through
``__class__``), ``getattr`` of an unknown name. A memory tool that touches them loads every
profile (+250 KB each, 12 MB for the deque) and measures its own doing. Nothing here touches them.
"""
import collections
import functools
import itertools
import sys

import lazy_object_proxy

RECENT = collections.deque(maxlen=50)
LOADED = [0]  # profiles actually loaded: stays 0 unless something touches a proxy
_seq = itertools.count()


def load_profile(user_id: int) -> dict:
    LOADED[0] += 1
    return {"id": user_id, "history": [{"order": i, "note": f"order {i} of user {user_id}"} for i in range(1500)]}


def handle(user_id: int, path: str) -> int:
    profile = lazy_object_proxy.Proxy(functools.partial(load_profile, user_id))
    RECENT.append({"path": path, "user": user_id, "profile": profile})
    return len(path)


def workload():
    n = next(_seq)
    handle(n % 997, f"/api/orders/{n}")


def check_untouched() -> list[str]:
    for _ in range(120):
        workload()
    return [] if LOADED[0] == 0 and len(RECENT) == 50 else [f"{LOADED[0]} profiles loaded, {len(RECENT)} held"]


TARGETS = [sys.modules[__name__], lazy_object_proxy]
EXPECT = {"verdict": ["plateau", "inconclusive", "clean"], "culprit": [None], "root": []}
TRUTH = {"kind": "bounded", "calls": 400, "checkpoints": 16, "check": "check_untouched"}
