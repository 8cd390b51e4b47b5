"""A service whose feature-flag client is a ``unittest.mock.MagicMock`` configured at start
(``FLAGS.checkout.new_flow.enabled = True``) and only read per request: attribute reads, no calls.

Look-alike (stdlib), walk hazard (issue 9 class 2). Reading an attribute a mock already has
returns the same child: nothing is recorded, nothing grows. But every *unknown* attribute makes
a new child mock, so a memory tool that walks the mock with ``getattr`` (or ``hasattr``, or
``dir``) creates objects at every step and never ends. Must be clean, and the bisect must finish.
"""
import itertools
import sys
from unittest import mock

FLAGS = mock.MagicMock(name="flags")
FLAGS.checkout.new_flow.enabled = True
FLAGS.checkout.new_flow.rollout = 0.25
FLAGS.search.fuzzy.enabled = False
_seq = itertools.count()


def checkout(cart_total: float) -> str:
    flow = FLAGS.checkout.new_flow
    if flow.enabled and (next(_seq) % 100) / 100 < flow.rollout:
        return f"new:{cart_total:.2f}"
    return f"old:{cart_total:.2f}"


def workload():
    checkout(19.99)


TARGETS = [sys.modules[__name__], mock]
EXPECT = {"verdict": ["clean"], "culprit": [None], "root": []}
TRUTH = {"kind": "clean", "calls": 400}
