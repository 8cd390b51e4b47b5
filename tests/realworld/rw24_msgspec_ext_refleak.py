"""A telemetry collector that decodes msgpack frames whose payloads carry msgpack ``Ext`` values
(type 5: a compressed trace blob), with a ``msgspec.msgpack.Decoder``.

Real C-extension reference leak (msgspec 0.21.1; fixed in 0.23.0: msgspec issue #1108, PR
#1109). Decoding an ``Ext`` makes a bytes object for its payload and hands it to the ``Ext``
constructor, which takes its own reference; the decoder never drops the first one. Each
payload's bytes stay alive after the ``Ext`` is gone, with no Python referrer.
"""
import gc
import itertools
import sys

import msgspec

_seq = itertools.count()
DECODER = msgspec.msgpack.Decoder()
ENCODER = msgspec.msgpack.Encoder()


def collect(frame: bytes) -> int:
    record = DECODER.decode(frame)
    blob = record["trace"]
    return record["span"] + len(blob.data)


def workload():
    n = next(_seq)
    frame = ENCODER.encode({"span": n, "trace": msgspec.msgpack.Ext(5, bytes([n % 256]) * 600)})
    collect(frame)


def check_orphan_reference() -> list[str]:
    """A decoded payload outlives its Ext with one reference that no Python object holds."""
    ext = DECODER.decode(ENCODER.encode(msgspec.msgpack.Ext(5, b"abc" * 100)))
    data = ext.data
    del ext
    gc.collect()
    extra = sys.getrefcount(data) - 2  # minus our local and getrefcount's argument
    referrers = [r for r in gc.get_referrers(data) if not isinstance(r, type(sys._getframe()))]
    if extra != 1 or referrers:
        return [f"expected one reference held from C and no referrer, got {extra} extra, {len(referrers)} referrers"]
    return []


TARGETS = [sys.modules[__name__], msgspec, msgspec.msgpack]
EXPECT = {"verdict": ["leak"], "culprit": ["collect", "workload"], "root": [],
          "says": ["no python referrer", "no referrer", "held from c", "from c code", "reference leak",
                   "no python object refers"]}
TRUTH = {"kind": "leak", "calls": 200, "min_bytes_per_call": 500, "check": "check_orphan_reference"}
FIXED_RELEASE = "msgspec==0.23.0"
