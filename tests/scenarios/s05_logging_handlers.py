"""Every request attaches a new handler to a named logger and never removes it."""
import io
import logging

EXPECT = {"verdict": ["leak"], "culprit": ["attach_handler", "handle"], "root": ["logging", "log"]}

log = logging.getLogger("scenario.s05")
log.propagate = False


def attach_handler(n):
    handler = logging.StreamHandler(io.StringIO())
    handler.set_name(f"request-{n}")
    log.addHandler(handler)


def handle(n):
    attach_handler(n)
    log.debug("request %s", n)


_n = [0]


def workload():
    _n[0] += 1
    handle(_n[0])
