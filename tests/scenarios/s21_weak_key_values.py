"""A WeakKeyDictionary whose values point back at their keys: the keys can never die."""
import weakref

EXPECT = {"verdict": ["leak"], "culprit": ["attach", "Session.__init__", "open_session"], "root": ["METADATA"]}


class Session:
    def __init__(self, n):
        self.n = n
        self.buffer = bytearray(200)


METADATA = weakref.WeakKeyDictionary()


def attach(session):
    METADATA[session] = {"owner": session, "tags": [session.n]}


def open_session(n):
    session = Session(n)
    attach(session)
    return session.n


_n = [0]


def workload():
    _n[0] += 1
    open_session(_n[0])
