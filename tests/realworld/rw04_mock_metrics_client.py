"""A service whose metrics client is a ``unittest.mock.MagicMock`` left in place of the real one
(a test double that shipped: ``METRICS = MagicMock()`` when the statsd host is unset).

Real leak (stdlib). A mock records every call: ``mock_calls``, ``method_calls`` and each child's
``call_args_list`` grow by a ``_Call`` (with its arguments) per call, forever. The walk of a
MagicMock must not use ``getattr`` (every unknown attribute makes a new child mock).
"""
import itertools
import os
import sys
from unittest import mock

METRICS = mock.MagicMock(name="statsd") if not os.environ.get("STATSD_HOST") else None
_seq = itertools.count()


def record_request(route: str, status: int, ms: float) -> None:
    METRICS.timing(f"http.{route}.latency", ms, tags={"status": str(status)})
    METRICS.incr(f"http.{route}.{status}")


def handle(route: str) -> int:
    n = next(_seq)
    status = 200 if n % 17 else 500
    record_request(route, status, 3.0 + n % 50)
    return status


def workload():
    handle("orders")


def release():
    METRICS.reset_mock()


TARGETS = [sys.modules[__name__], mock, mock.NonCallableMock, mock.CallableMixin]
EXPECT = {"verdict": ["leak"],
          "culprit": ["record_request", "handle", "CallableMixin._increment_mock_call",
                      "NonCallableMock._increment_mock_call", "_Call.__new__", "_Call.__init__",
                      "CallableMixin._mock_call"],
          "root": ["rw04_mock_metrics_client.METRICS"]}
TRUTH = {"kind": "leak", "calls": 200, "min_bytes_per_call": 500, "root": "rw04_mock_metrics_client.METRICS.mock_calls",
         "root_grows_by": 1.9, "release": "release"}
