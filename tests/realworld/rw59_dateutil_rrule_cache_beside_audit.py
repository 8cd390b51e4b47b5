"""A booking service that expands each room's recurrence rule (an RFC 5545 ``RRULE`` string per
room, 5 000 rooms) with ``dateutil.rrule.rrulestr(rule, cache=True)``, memoized per rule string in
a ``functools.lru_cache(maxsize=256)``, and lists the next openings; on its "hold" path it also
appends an audit tuple per request to ``HOLDS_AUDIT``, which nothing trims.

Two growers at once (dateutil), the small leak beside the big filling cache. Each cached rrule
keeps the occurrences it has computed (``cache=True``: ``rrule._cache``, a list of datetimes:
~3.6 KB per room) until the lru_cache holds 256 rules, then evicts; the audit list keeps ~180 B
per call, forever. The cache grows twenty times faster than the leak over a short run, and stops;
the leak does not. The fix drops the audit list (its twin, rw60): only the cache is left.
"""
import datetime
import functools
import itertools
import sys

import dateutil.rrule

START = datetime.datetime(2026, 1, 5, 9, 0)
RULES = [f"DTSTART:20260105T{9 + i % 8:02d}0000\nRRULE:FREQ=WEEKLY;BYDAY={('MO', 'TU,TH', 'WE', 'FR', 'MO,WE,FR')[i % 5]};"
         f"INTERVAL={1 + i % 3};COUNT={40 + i % 40}" for i in range(5000)]
HOLDS_AUDIT: list = []
_seq = itertools.count()


@functools.lru_cache(maxsize=256)
def schedule(rule: str) -> dateutil.rrule.rrule:
    return dateutil.rrule.rrulestr(rule, cache=True)


def openings(room: int, after: datetime.datetime, hold: bool) -> list[datetime.datetime]:
    rule = schedule(RULES[room])
    found = rule.between(after, after + datetime.timedelta(days=365))
    if hold and found:
        HOLDS_AUDIT.append((room, found[0], f"hold r{room} {found[0]:%Y-%m-%d %H:%M}"))
    return found[:5]


def workload():
    n = next(_seq)
    openings(n % 5000, START, hold=True)


def release():
    HOLDS_AUDIT.clear()


TARGETS = [sys.modules[__name__], dateutil.rrule]
EXPECT = {"verdict": ["leak"], "culprit": ["openings"], "root": ["rw59_dateutil_rrule_cache_beside_audit.HOLDS_AUDIT"],
          "says": ["schedule (lru_cache", "still filling"]}  # the cache is reported beside the leak
TRUTH = {"kind": "leak", "calls": 6000, "min_bytes_per_call": 150, "root": "rw59_dateutil_rrule_cache_beside_audit.HOLDS_AUDIT",
         "root_grows_by": 0.95, "release": "release"}  # 6000 calls: the leak still climbs long after the cache is full
