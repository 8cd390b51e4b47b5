"""An order service whose handlers are decorated with an in-house ``@traced`` decorator built on
``wrapt.decorator``; the decorator wraps each result in a ``wrapt.ObjectProxy`` subclass that
carries its span, and appends the proxy to ``SPANS`` "for the exporter", which was never enabled.

Real leak (wrapt), in a proxy-heavy graph. The list keeps every proxy, and every proxy its
wrapped result (the order dict, ~2 KB). A proxy answers for its wrapped object: ``type(p)`` is
``TracedResult`` but ``p.__class__`` is ``dict``, ``isinstance(p, dict)`` is True, ``len(p)``,
``p == {...}``, ``hash`` and attribute reads go to the dict; the decorated handler at
``place_order`` is a ``wrapt.FunctionWrapper`` (a proxy of the function) that wrapt's C code
calls. The root is a plain list of proxies.
"""
import itertools
import sys
import time

import wrapt

SPANS: list = []
_seq = itertools.count()


class TracedResult(wrapt.ObjectProxy):
    """The handler's result, with its span on the proxy (``_self_`` attributes stay on the proxy)."""

    def __init__(self, wrapped, span: dict):
        super().__init__(wrapped)
        self._self_span = span


@wrapt.decorator
def traced(wrapped, instance, args, kwargs):
    started = time.perf_counter()
    result = wrapped(*args, **kwargs)
    proxy = TracedResult(result, {"name": wrapped.__name__, "ms": (time.perf_counter() - started) * 1e3})
    SPANS.append(proxy)  # the bug: kept for an exporter that never drains it
    return proxy


@traced
def place_order(customer: int, lines: list) -> dict:
    return {"id": next(_seq), "customer": customer, "lines": [dict(line, status="reserved") for line in lines],
            "audit": [f"reserved {line['sku']} for {customer}" for line in lines] * 3}


def workload():
    order = place_order(42, [{"sku": f"S{i}", "qty": i + 1} for i in range(6)])
    assert isinstance(order, dict) and order["customer"] == 42


def release():
    SPANS.clear()


TARGETS = [sys.modules[__name__], wrapt]
EXPECT = {"verdict": ["leak"], "culprit": ["place_order", "traced"],
          "root": ["rw48_wrapt_traced_results.SPANS"]}
TRUTH = {"kind": "leak", "calls": 300, "min_bytes_per_call": 1000, "root": "rw48_wrapt_traced_results.SPANS",
         "root_grows_by": 0.95, "release": "release"}
