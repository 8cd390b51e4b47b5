"""A multi-tenant service that makes a short-lived SQLAlchemy engine per tenant request, named
for the logs with ``create_engine(url, logging_name=f"tenant-{id}")``, and disposes it after.

Real leak (SQLAlchemy + stdlib logging). The engine and its pool are freed, but SQLAlchemy's
``instance_logger`` asked ``logging.getLogger("sqlalchemy.engine.Engine.tenant-<id>")`` (and one
for the pool): the logging manager keeps every such logger forever, in
``logging.Logger.manager.loggerDict`` (directly, and through the ``PlaceHolder`` of the parent
name, whose ``loggerMap`` indexes its children). Found through ``sqlalchemy.log``, which imports logging:
the root must still be named as a person types it (``logging.Logger.manager.loggerDict``), not
``sqlalchemy.log.logging.Logger.manager...``.
"""
import itertools
import sys

import sqlalchemy as sa
import sqlalchemy.log

_seq = itertools.count()


def tenant_count(tenant: int) -> int:
    engine = sa.create_engine("sqlite://", logging_name=f"tenant-{tenant}", pool_logging_name=f"tenant-{tenant}")
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("select 1")).scalar()
    finally:
        engine.dispose()


def workload():
    tenant_count(next(_seq))


def release():
    import logging

    loggers = logging.Logger.manager.loggerDict
    for name in [n for n in loggers if ".tenant-" in n]:
        del loggers[name]
    for holder in loggers.values():  # parents that are PlaceHolders index their children too
        if isinstance(holder, logging.PlaceHolder):
            for child in [c for c in holder.loggerMap if ".tenant-" in c.name]:
                del holder.loggerMap[child]


TARGETS = [sys.modules[__name__], sa.engine, sqlalchemy.log, sa.pool]
EXPECT = {"verdict": ["leak"], "culprit": ["instance_logger", "tenant_count", "Manager.getLogger"],
          "root": ["logging.Logger.manager.loggerDict", "logging.root.manager.loggerDict"]}
TRUTH = {"kind": "leak", "calls": 150, "min_bytes_per_call": 500, "root": "logging.Logger.manager.loggerDict",
         "root_grows_by": 1.9, "release": "release",
         "release_frees": 0.6}  # the dicts keep their grown tables after the entries go
