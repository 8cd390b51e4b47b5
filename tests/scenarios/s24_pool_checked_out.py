"""A connection pool whose connections are checked out on an error path and never returned."""
EXPECT = {"verdict": ["leak"], "culprit": ["Pool.acquire", "Connection.__init__", "handle"], "root": ["_in_use", "POOL"]}


class Connection:
    def __init__(self, n):
        self.n = n
        self.buffer = bytearray(256)


class Pool:
    def __init__(self):
        self._free = []
        self._in_use = []

    def acquire(self, n):
        conn = self._free.pop() if self._free else Connection(n)
        self._in_use.append(conn)
        return conn

    def release(self, conn):
        self._in_use.remove(conn)
        self._free.append(conn)


POOL = Pool()
_n = [0]


def handle(n):
    conn = POOL.acquire(n)
    if n % 2:
        return None  # forgot to release on this path
    POOL.release(conn)
    return n


def workload():
    _n[0] += 1
    handle(_n[0])
