"""A queue consumer that builds a message class per incoming schema version (``type(...)``,
a ``Mapping`` so handlers can ``**`` it) and registers a pickle reducer for it with
``copyreg.pickle`` so the messages can be re-queued.

Real leak (stdlib). ``copyreg.pickle`` stores the class in ``copyreg.dispatch_table`` (a dict
keyed by class), so every schema class, with its methods and dict, lives forever. Side
structures grow with them and are not what holds them: weak references in the ABC caches of
``Mapping`` (``isinstance`` checks), and the base class's ``__subclasses__`` weak references.
The culprit is the function that makes the class.
"""
import collections.abc
import copyreg
import itertools
import pickle
import sys

_seq = itertools.count()


class MessageBase(collections.abc.Mapping):
    __slots__ = ("_data",)
    fields: tuple = ()

    def __init__(self, **data):
        self._data = data

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)


def _reduce_message(msg):
    return _rebuild, (type(msg).__name__, type(msg).fields, dict(msg))


def _rebuild(name, fields, data):
    return make_message_class(name, fields)(**data)


def make_message_class(name: str, fields: tuple) -> type:
    cls = type(name, (MessageBase,), {"__slots__": (), "fields": fields,
                                      "__doc__": f"message schema {name}: {', '.join(fields)}"})
    copyreg.pickle(cls, _reduce_message)
    return cls


def consume(raw: dict) -> bytes:
    cls = make_message_class(f"OrderPlaced_v{raw['schema']}", tuple(raw["body"]))
    msg = cls(**raw["body"])
    assert isinstance(msg, collections.abc.Mapping)
    return pickle.dumps(msg)


def workload():
    n = next(_seq)
    consume({"schema": n, "body": {"order": n, "total": 12.5, "currency": "EUR"}})


def release():
    for cls in [c for c in copyreg.dispatch_table if isinstance(c, type) and issubclass(c, MessageBase)]:
        del copyreg.dispatch_table[cls]


TARGETS = [sys.modules[__name__], copyreg, pickle]
EXPECT = {"verdict": ["leak"], "culprit": ["make_message_class"], "root": ["copyreg.dispatch_table"]}
TRUTH = {"kind": "leak", "calls": 200, "min_bytes_per_call": 800, "root": "copyreg.dispatch_table",
         "root_grows_by": 0.95, "release": "release"}
