"""The fixed twin of rw59: the booking service expands each room's recurrence rule with
``dateutil.rrule.rrulestr(rule, cache=True)``, memoized per rule string in a
``functools.lru_cache(maxsize=256)``, and sends its hold audit to the log instead of a list.

Look-alike (dateutil): only the big cache that fills and then evicts is left. Each cached rrule
keeps the occurrences it has computed (``rrule._cache``: ~3.6 KB per room) until the lru_cache
holds 256 rules (~256 calls), then the least recent rule and its occurrences are dropped.
Bounded, never a leak.
"""
import datetime
import functools
import itertools
import logging
import sys

import dateutil.rrule

START = datetime.datetime(2026, 1, 5, 9, 0)
RULES = [f"DTSTART:20260105T{9 + i % 8:02d}0000\nRRULE:FREQ=WEEKLY;BYDAY={('MO', 'TU,TH', 'WE', 'FR', 'MO,WE,FR')[i % 5]};"
         f"INTERVAL={1 + i % 3};COUNT={40 + i % 40}" for i in range(5000)]
HOLD_LOG = logging.getLogger("booking.holds")
_seq = itertools.count()


@functools.lru_cache(maxsize=256)
def schedule(rule: str) -> dateutil.rrule.rrule:
    return dateutil.rrule.rrulestr(rule, cache=True)


def openings(room: int, after: datetime.datetime, hold: bool) -> list[datetime.datetime]:
    rule = schedule(RULES[room])
    found = rule.between(after, after + datetime.timedelta(days=365))
    if hold and found:
        HOLD_LOG.debug("hold r%s %s", room, found[0])
    return found[:5]


def workload():
    n = next(_seq)
    openings(n % 5000, START, hold=True)


TARGETS = [sys.modules[__name__], dateutil.rrule]
EXPECT = {"verdict": ["plateau", "inconclusive", "clean"], "culprit": [None], "root": []}
TRUTH = {"kind": "bounded", "calls": 1200, "checkpoints": 24}
