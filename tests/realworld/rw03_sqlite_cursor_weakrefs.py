"""A read endpoint on one long-lived sqlite3 connection, ``conn.execute(...)`` per request.

Look-alike (stdlib C module). Every ``execute`` makes a cursor, and CPython's ``_sqlite``
(3.10-3.13) appends a weak reference to it to the connection's list of cursors, pruning the dead
ones only every 200 cursors: the list grows for 200 calls (~90 B per call, perfectly linear), then
drops back. The cursors themselves are freed at once. Dead weak references are pending cleanup,
not kept memory: never a leak.
"""
import itertools
import sqlite3
import sys

DB = sqlite3.connect(":memory:", check_same_thread=False)
DB.execute("create table users (id integer primary key, name text, plan text)")
DB.executemany("insert into users values (?, ?, ?)", [(i, f"user{i}", "free" if i % 3 else "pro")
                                                       for i in range(1, 501)])
_ids = itertools.cycle(range(1, 501))


def get_user(user_id: int) -> dict | None:
    row = DB.execute("select id, name, plan from users where id = ?", (user_id,)).fetchone()
    return None if row is None else {"id": row[0], "name": row[1], "plan": row[2]}


def workload():
    user = get_user(next(_ids))
    assert user is not None


TARGETS = [sys.modules[__name__], sqlite3]
EXPECT = {"verdict": ["clean", "plateau", "inconclusive"], "culprit": [None], "root": []}
TRUTH = {"kind": "bounded", "calls": 800}
