"""An event bus that checks each incoming event against ``collections.abc.Mapping`` (to accept
dict-like payloads); events come in 400 kinds (one class per kind, made at start from a schema).

Look-alike (stdlib C module ``_abc``). ``isinstance(evt, Mapping)`` for a class it has not seen
adds a weak reference to that class to ``Mapping``'s negative cache: the cache grows by one entry
per new event kind for 400 calls, then stops. Bounded by the number of classes, which live
anyway: a plateau, never a leak.
"""
import collections.abc
import sys

KINDS = [type(f"Event{i:03d}", (), {"__slots__": ("payload",), "kind": i}) for i in range(400)]
_n = [0]
accepted = [0]


def dispatch(evt) -> None:
    if isinstance(evt, collections.abc.Mapping):
        accepted[0] += 1
    else:
        accepted[0] += len(evt.payload)


def workload():
    i = _n[0]
    _n[0] += 1
    evt = KINDS[i % len(KINDS)]()
    evt.payload = (i,)
    dispatch(evt)


TARGETS = [sys.modules[__name__], collections.abc, collections.abc.Mapping]
EXPECT = {"verdict": ["plateau", "inconclusive"], "culprit": [None], "root": []}
TRUTH = {"kind": "bounded", "calls": 1200}
