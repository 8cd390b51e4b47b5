"""A WeakValueDictionary cache: entries vanish as soon as nobody uses them."""
import weakref

EXPECT = {"verdict": ["clean"], "culprit": [None], "root": []}


class Session:
    def __init__(self, n):
        self.n = n
        self.data = bytearray(200)


SESSIONS = weakref.WeakValueDictionary()
_n = [0]


def open_session(n):
    session = Session(n)
    SESSIONS[n] = session
    return session.n


def workload():
    _n[0] += 1
    open_session(_n[0])
