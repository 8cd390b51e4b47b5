"""A web handler that makes one logger per request id: ``logging.getLogger(f"req-{rid}")``.

Real leak (stdlib). The logging manager keeps every logger it ever made in
``logging.Logger.manager.loggerDict`` (also reachable as ``logging.root.manager``), with its
handlers list, filters and level cache: loggers are never freed. The fix is one logger per module
plus ``extra={"request_id": ...}`` or a ``LoggerAdapter``.
"""
import itertools
import logging
import sys

log = logging.getLogger("shop.api")
log.addHandler(logging.NullHandler())
log.propagate = False
_ids = itertools.count(1)


def _request_logger(request_id: str) -> logging.Logger:
    logger = logging.getLogger(f"shop.api.req-{request_id}")
    logger.propagate = False
    return logger


def handle_checkout(cart: dict) -> dict:
    request_id = f"{next(_ids):08x}"
    rlog = _request_logger(request_id)
    rlog.debug("checkout %s items", len(cart["items"]))
    total = sum(price * qty for price, qty in cart["items"])
    rlog.info("total %.2f", total)
    return {"request_id": request_id, "total": total}


def handle_checkout_fixed(cart: dict) -> dict:
    request_id = f"{next(_ids):08x}"
    adapter = logging.LoggerAdapter(log, {"request_id": request_id})
    adapter.debug("checkout %s items", len(cart["items"]))
    total = sum(price * qty for price, qty in cart["items"])
    adapter.info("total %.2f", total)
    return {"request_id": request_id, "total": total}


def workload():
    handle_checkout({"items": [(9.99, 2), (4.5, 1)]})


def workload_fixed():
    handle_checkout_fixed({"items": [(9.99, 2), (4.5, 1)]})


def release():
    for name in [n for n in logging.Logger.manager.loggerDict if n.startswith("shop.api.req-")]:
        del logging.Logger.manager.loggerDict[name]


TARGETS = [sys.modules[__name__], logging]
EXPECT = {"verdict": ["leak"],
          "culprit": ["Manager.getLogger", "_request_logger", "handle_checkout"],
          "root": ["logging.Logger.manager.loggerDict", "logging.root.manager.loggerDict",
                   "logging.getLogger('').manager.loggerDict"]}
TRUTH = {"kind": "leak", "calls": 200, "min_bytes_per_call": 400, "root": "logging.Logger.manager.loggerDict",
         "root_grows_by": 0.9, "release": "release"}
