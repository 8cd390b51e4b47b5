"""An order-search API on peewee (SQLite in memory, 2 000 orders) that keeps every search's query
object in ``SAVED_SEARCHES`` so the user's "refresh" button can re-run it, and runs a copy of it
for the answer; nothing ever drops old searches.

Real leak (peewee), in a graph of hostile objects. Each kept ``ModelSelect`` holds its expression
tree (``Expression``, ``Value``, ``Ordering`` nodes, field and model references: ~1.4 KB). These
objects answer operators their own way: ``query == x`` and ``field == x`` build an
``Expression`` (always true), ``len(query)`` and ``bool(query)`` and iterating it run the SQL and
cache the rows in the query; the model fields are descriptors on the class. A memory tool that
compares, sizes or iterates them changes what it measures; nothing here does.
"""
import itertools
import sys

import peewee

DB = peewee.SqliteDatabase(":memory:")


class Order(peewee.Model):
    customer = peewee.CharField(index=True)
    status = peewee.CharField()
    total_cents = peewee.IntegerField()

    class Meta:
        database = DB


DB.connect()
DB.create_tables([Order])
with DB.atomic():
    Order.insert_many([{"customer": f"cus{i % 200:03d}", "status": ("paid", "open", "refunded")[i % 3],
                        "total_cents": 500 + i * 7 % 20_000} for i in range(2000)]).execute()
SAVED_SEARCHES: list = []
_seq = itertools.count()


def search_orders(customer: str, status: str, min_cents: int) -> list[dict]:
    query = (Order.select(Order.id, Order.status, Order.total_cents)
             .where((Order.customer == customer) & (Order.status == status) & (Order.total_cents >= min_cents))
             .order_by(Order.total_cents.desc()).limit(20))
    SAVED_SEARCHES.append(query)  # for "refresh": never dropped
    return list(query.dicts())  # .dicts() runs a copy: the kept query is never executed


def workload():
    n = next(_seq)
    search_orders(f"cus{n % 200:03d}", ("paid", "open")[n % 2], 1000 + n % 5000)


def release():
    SAVED_SEARCHES.clear()


def check_hostile() -> list[str]:
    """The kept queries answer == with an Expression and len() by running the SQL."""
    workload()
    q = SAVED_SEARCHES[-1]
    problems = []
    if not isinstance(q == object(), peewee.Expression):
        problems.append("query == x is not an Expression")
    if q._cursor_wrapper is not None:
        problems.append("the kept query was executed by the service")
    return problems


TARGETS = [sys.modules[__name__], peewee, peewee.ModelSelect]
EXPECT = {"verdict": ["leak"], "culprit": ["search_orders", "inner", "Node.clone", "ColumnBase.desc", "Expression.__init__"],
          "root": ["rw58_peewee_saved_queries.SAVED_SEARCHES"]}
TRUTH = {"kind": "leak", "calls": 300, "min_bytes_per_call": 1000, "root": "rw58_peewee_saved_queries.SAVED_SEARCHES",
         "root_grows_by": 0.95, "release": "release", "check": "check_hostile"}
