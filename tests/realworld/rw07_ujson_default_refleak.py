"""An API that serialises responses with ujson and a ``default=`` fallback for its own objects
(their display name, which may hold non-ASCII letters).

Real C-extension reference leak (ujson 5.12.0, fixed in 5.12.1: ultrajson issue #631, PR #714).
When ``default()`` returns a str with non-ASCII characters, the C encoder overwrites its only
reference to it while making the UTF-8 copy, without a ``Py_DECREF``: every such string stays
alive with a reference count of one and no Python object referring to it (ASCII strings and
structures take another path: the fixed app returns a dict). The report should
name the fallback (where the strings are made) and say that nothing in Python holds them.
"""
import itertools
import sys

import ujson

_seq = itertools.count()


class Customer:
    __slots__ = ("id", "name", "city")

    def __init__(self, id: int, name: str, city: str) -> None:
        self.id, self.name, self.city = id, name, city


def _json_fallback(obj: object) -> str:
    if isinstance(obj, Customer):
        return f"{obj.name} ({obj.city}) #{obj.id:06d}"
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def render_order(order_id: int, customer: Customer, total_cents: int) -> str:
    return ujson.dumps({"order": order_id, "customer": customer, "total": total_cents}, default=_json_fallback)


def _json_fallback_fixed(obj: object) -> dict:
    if isinstance(obj, Customer):
        return {"id": obj.id, "name": obj.name, "city": obj.city}
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def render_order_fixed(order_id: int, customer: Customer, total_cents: int) -> str:
    return ujson.dumps({"order": order_id, "customer": customer, "total": total_cents},
                       default=_json_fallback_fixed)


def workload():
    n = next(_seq)
    render_order(n, Customer(n, "Zoë Brontë", "Zürich"), 4200 + n % 100)


def workload_fixed():
    n = next(_seq)
    render_order_fixed(n, Customer(n, "Zoë Brontë", "Zürich"), 4200 + n % 100)


def refleak_probe():
    """(the string default() returns, a call that serialises it): for the referrer check."""
    label = "Zoë Brontë (Zürich) #000001"
    return label, lambda: ujson.dumps({"c": object()}, default=lambda o: label)


TARGETS = [sys.modules[__name__], ujson]
EXPECT = {"verdict": ["leak"], "culprit": ["_json_fallback"], "root": [],
          "says": ["no python referrer", "no referrer", "held from c", "from c code", "reference leak",
                   "no python object refers"]}
TRUTH = {"kind": "leak", "calls": 300, "min_bytes_per_call": 60, "refleak": "refleak_probe"}
FIXED_RELEASE = "ujson==5.12.1"
