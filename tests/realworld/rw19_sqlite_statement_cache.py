"""A reporting endpoint that formats the customer id into the SQL text (no parameters), on one
long-lived sqlite3 connection: each request's SQL is new to the connection.

Look-alike (stdlib C module and the SQLite library). The connection keeps prepared statements
in an LRU cache of 128 by SQL text (``cached_statements``): every new text adds a statement
(a Python object and SQLite's malloc'd bytecode) until 128, then the oldest is finalized.
Bounded, never a leak.
"""
import itertools
import sqlite3
import sys

DB = sqlite3.connect(":memory:", check_same_thread=False)
DB.execute("create table invoices (id integer primary key, customer integer, cents integer)")
DB.executemany("insert into invoices (customer, cents) values (?, ?)", [(i % 997, i * 7 % 5000) for i in range(3000)])
_seq = itertools.count()


def customer_total(customer: int) -> int:
    sql = f"select coalesce(sum(cents), 0) from invoices where customer = {customer}"
    return DB.execute(sql).fetchone()[0]


def workload():
    customer_total(next(_seq) % 997)


TARGETS = [sys.modules[__name__], sqlite3]
EXPECT = {"verdict": ["plateau", "inconclusive"], "culprit": [None], "root": []}
TRUTH = {"kind": "bounded", "calls": 700}
