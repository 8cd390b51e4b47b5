"""An order workflow written as state classes that refer to each other through class attributes
(``Pending.next = Paid``, ``Paid.back = Pending``...), with constants in a class whose metaclass
forbids assignment, and a transition log that is never trimmed.

Real leak, in a target module whose classes form cycles (class attributes holding classes that
hold them back) and whose ``Limits`` class refuses ``setattr`` with its own exception: collecting the targets must
not recurse without end, nor stop half-way with functions left wrapped. The leak itself is small:
one tuple per transition in ``TRANSITIONS``.
"""
import itertools
import sys


class ReadOnlyError(Exception):
    """Raised on assignment to a constants class (not an AttributeError: a library's own error)."""


class Frozen(type):
    def __setattr__(cls, name, value):
        raise ReadOnlyError(f"{cls.__name__} is read-only")


def _over_limit(n_items: int, limit: int) -> bool:
    return n_items > limit


class Limits(metaclass=Frozen):
    MAX_ITEMS = 50

    @staticmethod
    def check(n_items: int) -> bool:
        return not _over_limit(n_items, Limits.MAX_ITEMS)


class State:
    next: type | None = None
    back: type | None = None

    @classmethod
    def advance(cls, order: dict) -> type:
        order["history"] += 1
        return cls.next or cls


class Pending(State):
    pass


class Paid(State):
    pass


class Shipped(State):
    def on_enter(self, order: dict) -> None:
        order["shipped"] = True


Pending.next, Paid.next, Paid.back, Shipped.back = Paid, Shipped, Pending, Paid
Pending.related = {"paid": Paid, "shipped": Shipped}
Shipped.related = {"pending": Pending}
TRANSITIONS: list[tuple] = []
_seq = itertools.count()


def process(order_id: int) -> str:
    order = {"id": order_id, "history": 0, "items": 3}
    assert Limits.check(order["items"])
    state: type = Pending
    while state is not Shipped:
        nxt = state.advance(order)
        TRANSITIONS.append((order_id, state.__name__, nxt.__name__))
        state = nxt
    return state.__name__


def workload():
    process(next(_seq))


def release():
    TRANSITIONS.clear()


TARGETS = [sys.modules[__name__], State, Limits]
EXPECT = {"verdict": ["leak"], "culprit": ["process"], "root": ["rw26_state_machine_classes.TRANSITIONS"]}
TRUTH = {"kind": "leak", "calls": 300, "min_bytes_per_call": 100, "root": "rw26_state_machine_classes.TRANSITIONS",
         "root_grows_by": 1.9, "release": "release"}
