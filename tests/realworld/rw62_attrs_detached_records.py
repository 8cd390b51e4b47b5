"""An event-sourced account service whose domain objects are ``attrs`` classes: each request
loads the account's aggregate (``@attrs.define``: slotted, compared by value, so unhashable), and
appends the events it produced to the aggregate's ``pending`` list; the unit of work commits them
but keeps every aggregate it ever loaded in ``UNIT.identity_map`` (keyed by account id, each
request a new account) after the unit is "closed".

Real leak (attrs), objects with hostile dunders. The identity map keeps every aggregate and its
events (~1.6 KB per call). An aggregate is unhashable (``__hash__`` is None), compares by value
(``==`` walks the fields and may recurse into the events), and, once its unit is closed, its
``__getattr__`` raises ``DetachedError`` (a ``RuntimeError``, not an ``AttributeError``) for any
name it does not have, as ORM instances do: ``hasattr``/``getattr(x, name, default)`` propagate it.
"""
import itertools
import sys

import attrs


class DetachedError(RuntimeError):
    """Raised when a lazy attribute of an aggregate is read after its unit of work closed."""


@attrs.define
class Event:
    kind: str
    amount: int
    memo: str


@attrs.define
class Account:
    id: int
    owner: str
    balance: int = 0
    pending: list = attrs.Factory(list)
    _closed: bool = False

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise DetachedError(f"account {self.id}: {name!r} is not loaded and its unit of work is closed")

    def apply(self, event: Event) -> None:
        self.balance += event.amount if event.kind == "credit" else -event.amount
        self.pending.append(event)


class UnitOfWork:
    def __init__(self) -> None:
        self.identity_map: dict[int, Account] = {}

    def load(self, account_id: int) -> Account:
        account = self.identity_map.get(account_id)
        if account is None:
            account = self.identity_map[account_id] = Account(account_id, f"owner {account_id}")
        return account

    def commit(self) -> None:
        for account in self.identity_map.values():
            account._closed = True  # "closed", but still mapped: the bug


UNIT = UnitOfWork()
_seq = itertools.count()


def transfer_in(account_id: int, cents: int) -> int:
    account = UNIT.load(account_id)
    for k in range(4):
        account.apply(Event("credit", cents + k, f"incoming transfer {account_id}/{k} " * 3))
    UNIT.commit()
    return account.balance


def workload():
    transfer_in(next(_seq), 1250)


def release():
    UNIT.identity_map.clear()


def check_hostile() -> list[str]:
    workload()
    account = next(reversed(UNIT.identity_map.values()))
    problems = []
    if Account.__hash__ is not None:
        problems.append("Account is hashable")
    try:
        hasattr(account, "statement")
        problems.append("hasattr did not raise")
    except DetachedError:
        pass
    return problems


TARGETS = [sys.modules[__name__], attrs]
EXPECT = {"verdict": ["leak"], "culprit": ["transfer_in", "UnitOfWork.load", "Account.apply", "Account.__init__", "Event.__init__"],
          "root": ["rw62_attrs_detached_records.UNIT.identity_map"]}
TRUTH = {"kind": "leak", "calls": 300, "min_bytes_per_call": 800, "root": "rw62_attrs_detached_records.UNIT.identity_map",
         "root_grows_by": 0.95, "release": "release", "check": "check_hostile"}
