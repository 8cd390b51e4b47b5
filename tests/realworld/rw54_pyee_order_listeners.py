"""A checkout service on an in-process event bus (``pyee.EventEmitter``): each checkout
subscribes a receipt mailer to ``order.paid`` with the ``@BUS.on("order.paid")`` decorator inside
the request, so the mailer can close over the cart, and emits the event when the payment settles.

Real leak (pyee), a framework-held callable registered per request. ``EventEmitter.on`` keeps
every handler in ``BUS._events["order.paid"]`` (an ``OrderedDict`` keyed by the function) until
``remove_listener``: one closure per checkout, with the cart it closes over (~2 KB), forever; every
later ``order.paid`` also runs every old mailer (they check the order id and return). The fix
subscribes with ``BUS.once(...)`` or one mailer at start-up that looks the cart up.
"""
import itertools
import sys

import pyee
import pyee.base

BUS = pyee.EventEmitter()
SENT: list[int] = []
_seq = itertools.count()


def checkout(order_id: int, lines: list) -> None:
    cart = {"order": order_id, "lines": lines, "summary": [f"{line['sku']} x{line['qty']}" for line in lines] * 4,
            "footer": f"Thank you for order {order_id}. " * 10}

    @BUS.on("order.paid")
    def mail_receipt(paid_order: int) -> None:
        if paid_order == cart["order"]:
            SENT.append(paid_order)

    BUS.emit("order.paid", order_id)


def workload():
    n = next(_seq)
    checkout(n, [{"sku": f"S{n % 50}", "qty": 1 + n % 3}, {"sku": "GIFTWRAP", "qty": 1}])
    SENT.clear()


def release():
    BUS.remove_all_listeners("order.paid")


TARGETS = [sys.modules[__name__], pyee, pyee.base]
EXPECT = {"verdict": ["leak"], "culprit": ["checkout", "EventEmitter.on", "EventEmitter._add_event_handler"],
          "root": ["rw54_pyee_order_listeners.BUS._events"]}
TRUTH = {"kind": "leak", "calls": 300, "min_bytes_per_call": 800, "root": "rw54_pyee_order_listeners.BUS._events['order.paid']",
         "root_grows_by": 0.95, "release": "release"}
