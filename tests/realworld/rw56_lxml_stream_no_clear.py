"""A chat gateway that reads one long-lived XML stream per connection (an XMPP-style
``<stream>`` opened once, then one ``<message>`` stanza per request) with an
``lxml.etree.XMLPullParser``, handling each stanza on its ``end`` event.

Real leak of native memory (lxml/libxml2) with a Python root. The handler reads each stanza and
drops its Python proxies, but never clears the element: libxml2 keeps every stanza's nodes (the
text, the attributes, ~1.5 KB of malloc'd memory per call) in the stream's document, which the
parser holds for as long as the connection lives. The Python heap stays flat: no Python object
grows. The fix: ``elem.clear()`` and delete the handled siblings (the usual ``iterparse`` idiom).
"""
import itertools
import sys

import lxml.etree

_seq = itertools.count()


def open_stream() -> lxml.etree.XMLPullParser:
    parser = lxml.etree.XMLPullParser(events=("end",), tag="{jabber:client}message")
    parser.feed(b"<stream xmlns='jabber:client' to='chat.example.com' version='1.0'>")
    return parser


STREAM = open_stream()


def consume(stanza: bytes, clear: bool = False) -> list[str]:
    STREAM.feed(stanza)
    bodies = []
    for _event, elem in STREAM.read_events():
        bodies.append(elem.findtext("{jabber:client}body"))
        if clear:
            elem.clear()
            while elem.getprevious() is not None:
                del elem.getparent()[0]
    return bodies


def _stanza(n: int) -> bytes:
    return (f"<message from='user{n}@chat.example.com/phone' to='room@chat.example.com' id='m{n}' type='groupchat'>"
            f"<body>{'message text ' * 60}{n}</body><thread>t{n % 10}</thread></message>").encode()


def workload():
    n = next(_seq)
    assert consume(_stanza(n)) == [f"{'message text ' * 60}{n}"]


def workload_fixed():
    n = next(_seq)
    assert consume(_stanza(n), clear=True) == [f"{'message text ' * 60}{n}"]


def check_release() -> list[str]:
    """Closing the stream (the root) gives the growth back to malloc."""
    global STREAM
    import gc

    import _truth
    gc.collect()
    before = _truth.malloc_in_use()
    for _ in range(300):
        workload()
    gc.collect()
    grown = _truth.malloc_in_use() - before
    STREAM.feed(b"</stream>")  # the peer closes its stream
    STREAM.close()
    STREAM = open_stream()
    gc.collect()
    freed = grown - (_truth.malloc_in_use() - before)
    return [] if grown > 300_000 and freed >= 0.7 * grown else [f"closing the stream freed {freed} of {grown} B"]


TARGETS = [sys.modules[__name__], lxml.etree]
EXPECT = {"verdict": ["leak"], "culprit": ["consume"], "root": [], "says": ["native", "outside python"]}
TRUTH = {"kind": "native", "calls": 300, "min_bytes_per_call": 800, "check": "check_release"}
