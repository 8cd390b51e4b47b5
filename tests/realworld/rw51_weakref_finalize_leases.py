"""A connection-lease service that hands out leases from a long-lived pool object and, "to be
safe", registers each lease's release with ``weakref.finalize(POOL, lease.release)``: meant to run
if the pool is garbage-collected, which it never is.

Real leak (stdlib weakref), a framework-held callable. ``weakref.finalize`` keeps every finalizer
it makes (the weak reference, the bound method ``lease.release`` and so the lease with its
request context: ~1.3 KB) in the class-level registry ``weakref.finalize._registry`` until the
object dies or the finalizer is called or detached: one per request, forever. The fix releases the
lease in a ``finally`` (or ``finalizer.detach()`` when done).
"""
import itertools
import sys
import weakref


class Pool:
    def __init__(self) -> None:
        self.free = 8


class Lease:
    def __init__(self, pool: Pool, request_id: int) -> None:
        self.pool = weakref.ref(pool)
        self.request_id = request_id
        self.context = {"request": request_id, "trace": [f"span-{request_id}-{k}" for k in range(12)],
                        "sql": "select * from orders where customer_id = ? " * 6}
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True


POOL = Pool()
_seq = itertools.count()


def with_lease(request_id: int) -> int:
    lease = Lease(POOL, request_id)
    weakref.finalize(POOL, lease.release)  # the bug: POOL lives for the whole process
    try:
        return len(lease.context["trace"])
    finally:
        lease.release()


def workload():
    with_lease(next(_seq))


def release():
    for finalizer in [f for f in list(weakref.finalize._registry) if f.peek() and f.peek()[0] is POOL]:
        finalizer.detach()


TARGETS = [sys.modules[__name__], weakref, weakref.finalize]
EXPECT = {"verdict": ["leak"], "culprit": ["with_lease", "Lease.__init__", "finalize.__init__"],
          "root": ["weakref.finalize._registry"]}
TRUTH = {"kind": "leak", "calls": 300, "min_bytes_per_call": 600, "root": "weakref.finalize._registry",
         "root_grows_by": 0.95, "release": "release"}
