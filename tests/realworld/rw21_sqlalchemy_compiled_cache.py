"""A reporting API that lets each request choose which columns and filters to return, building a
SQLAlchemy Core ``select`` for that shape (hundreds of distinct shapes over a day).

Look-alike (SQLAlchemy, with its C extensions). The engine caches the compiled form of each
statement shape in ``engine._compiled_cache``, an ``LRUCache`` of ``query_cache_size`` (500):
every new shape compiles and stays until the cache passes 500 by half, then it is pruned back
to 500 (a saw-tooth). Bounded, never a leak.
"""
import itertools
import sys

import sqlalchemy as sa

ENGINE = sa.create_engine("sqlite://")
META = sa.MetaData()
COLUMNS = [f"c{i:02d}" for i in range(12)]
ORDERS = sa.Table("orders", META, sa.Column("id", sa.Integer, primary_key=True),
                  *(sa.Column(c, sa.Integer) for c in COLUMNS))
META.create_all(ENGINE)
with ENGINE.begin() as conn:
    conn.execute(ORDERS.insert(), [{"id": i, **{c: i * j for j, c in enumerate(COLUMNS)}} for i in range(50)])
SHAPES = [(tuple(c for j, c in enumerate(COLUMNS) if (s >> j) & 1), s % 5) for s in range(1, 1 << 12)]
_seq = itertools.count()


def report(shape_index: int) -> int:
    columns, n_filters = SHAPES[shape_index]
    query = sa.select(*(ORDERS.c[c] for c in columns))
    for k in range(n_filters):
        query = query.where(ORDERS.c[COLUMNS[k]] >= k)
    with ENGINE.connect() as conn:
        return len(conn.execute(query).fetchall())


def workload():
    report(next(_seq) * 7 % len(SHAPES))


TARGETS = [sys.modules[__name__], sa, sa.engine, sa.engine.Engine, sa.sql.compiler]
EXPECT = {"verdict": ["plateau", "inconclusive"], "culprit": [None], "root": []}
TRUTH = {"kind": "bounded", "calls": 1600, "checkpoints": 32}
