"""A payments service that logs an audit event per charge through structlog (stdlib integration,
JSON lines), into a ``logging.handlers.MemoryHandler(capacity=200, flushLevel=ERROR)`` meant to
batch records to the audit file. The handler's target is set only when ``AUDIT_FILE`` is
configured, which it is not here.

Real leak (structlog + stdlib logging), a bound that is declared but not enforced.
``MemoryHandler.flush`` empties its buffer only when it has a target (documented): with none,
``shouldFlush`` fires at 200 records and flushes nothing, so the buffer of "capacity" 200 keeps
every ``LogRecord`` (with its rendered JSON message, ~1 KB) forever. The fix gives the handler a
target (or no MemoryHandler without one).
"""
import itertools
import logging
import logging.handlers
import os
import sys

import structlog
import structlog.processors
import structlog.stdlib

AUDIT_HANDLER = logging.handlers.MemoryHandler(capacity=200, flushLevel=logging.ERROR)
if os.environ.get("AUDIT_FILE"):
    AUDIT_HANDLER.setTarget(logging.FileHandler(os.environ["AUDIT_FILE"]))
_audit_std = logging.getLogger("payments.audit")
_audit_std.setLevel(logging.INFO)
_audit_std.addHandler(AUDIT_HANDLER)
_audit_std.propagate = False

structlog.configure(
    processors=[structlog.stdlib.add_log_level, structlog.processors.TimeStamper(fmt="iso"),
                structlog.processors.JSONRenderer()],
    logger_factory=structlog.stdlib.LoggerFactory(),
    wrapper_class=structlog.stdlib.BoundLogger,
    cache_logger_on_first_use=True,
)
AUDIT = structlog.get_logger("payments.audit")
_seq = itertools.count()


def charge(customer: str, cents: int, card: str) -> str:
    charge_id = f"ch_{next(_seq):010d}"
    AUDIT.info("charge.captured", charge_id=charge_id, customer=customer, amount_cents=cents,
               card_last4=card[-4:], risk={"score": cents % 97, "rules": ["velocity", "geo", "bin"]},
               note="captured after 3-D Secure challenge " * 4)
    return charge_id


def workload():
    charge("cus_Q81", 1999, "4242424242424242")


def release():
    AUDIT_HANDLER.buffer.clear()


def check_past_capacity() -> list[str]:
    for _ in range(450):
        workload()
    n = len(AUDIT_HANDLER.buffer)
    return [] if n > 2 * AUDIT_HANDLER.capacity else [f"buffer holds {n} records, capacity {AUDIT_HANDLER.capacity}"]


TARGETS = [sys.modules[__name__], structlog.stdlib, structlog.processors, logging.handlers]
EXPECT = {"verdict": ["leak"],
          "culprit": ["charge", "JSONRenderer.__call__", "Logger.makeRecord", "LogRecord.__init__",
                      "BoundLogger.info", "BoundLogger._proxy_to_logger", "BufferingHandler.emit"],
          "root": ["rw45_structlog_memoryhandler.AUDIT_HANDLER.buffer", "payments.audit').handlers[0].buffer"]}
TRUTH = {"kind": "leak", "calls": 400, "min_bytes_per_call": 600, "root": "rw45_structlog_memoryhandler.AUDIT_HANDLER.buffer",
         "root_grows_by": 0.95, "release": "release", "check": "check_past_capacity"}
