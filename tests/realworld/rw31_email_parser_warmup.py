"""A mail-ingest worker that parses each incoming message with the modern email API
(``email.message_from_bytes(raw, policy=email.policy.default)``) and reads a few headers.

Look-alike: warm-up (stdlib). The first messages import the header registry's modules, build
its header classes (one class per header name and kind, made on first use and cached) and fill
small lookup caches; a few kilobytes settle over the first ~100 calls (datetime formatting
in ``DateHeader.parse``), then nothing more is kept per message (flat to 1 500 calls). Clean.
"""
import email
import email.policy
import itertools
import sys

_seq = itertools.count()
HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "Content-Type", "Reply-To", "X-Priority")


def make_raw(n: int) -> bytes:
    return (f"From: Alice <alice{n % 7}@example.org>\r\nTo: orders@example.com\r\n"
            f"Subject: order {n} confirmed\r\nDate: Tue, 01 Dec 2026 10:{n % 60:02d}:00 +0000\r\n"
            f"Message-ID: <{n}@example.org>\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Reply-To: alice{n % 7}@example.org\r\nX-Priority: 3\r\n\r\nThanks for order {n}.\r\n").encode()


def ingest(raw: bytes) -> dict:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    return {h: str(msg[h]) for h in HEADERS} | {"body": msg.get_content().strip()}


def workload():
    ingest(make_raw(next(_seq)))


TARGETS = [sys.modules[__name__], email, email.policy, email.headerregistry]
EXPECT = {"verdict": ["clean", "plateau"], "culprit": [None], "root": []}
TRUTH = {"kind": "clean", "calls": 600}
