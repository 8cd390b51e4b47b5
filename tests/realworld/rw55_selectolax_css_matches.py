"""A content-moderation filter that parses each submitted HTML fragment once with selectolax's
Lexbor parser and asks ``node.css_matches(selector)`` for each of its two rules (active content; inline
event handlers and ``javascript:`` links).

Real native leak in a C extension (selectolax 0.3.17; selectolax issue #107, fixed in 0.3.18):
``LexborNode.css_matches`` builds a Lexbor CSS parser, selectors object and selector list per
call and never destroys them, ~110 KB of malloc'd memory per ``css_matches``, with the Python heap flat. The
memory is allocated by the C call ``css_matches`` made from ``screen``.
"""
import itertools
import sys

import selectolax
import selectolax.lexbor

RULES = ["script, iframe, object, embed", "[onclick], a[href^='javascript:']"]
_seq = itertools.count()


def screen(fragment: str) -> list[str]:
    tree = selectolax.lexbor.LexborHTMLParser(fragment)
    body = tree.body
    return [rule for rule in RULES if body.css_matches(rule)]


def workload():
    n = next(_seq)
    screen(f"<div class='post'><p>comment {n}</p><a href='https://example.com/{n}'>link</a>"
           f"<img src='x{n}.png' onclick='track({n})'></div>")


TARGETS = [sys.modules[__name__], selectolax.lexbor]
EXPECT = {"verdict": ["leak"], "culprit": ["screen", "LexborNode.css_matches", "css_matches"], "root": [],
          "says": ["native", "outside python"]}
TRUTH = {"kind": "native", "calls": 300, "min_bytes_per_call": 50000}
FIXED_RELEASE = "selectolax==0.3.18"
