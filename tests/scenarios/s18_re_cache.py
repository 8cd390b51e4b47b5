"""Every call compiles a new regular expression: the re module caches them, up to its bound."""
import re

EXPECT = {"verdict": ["plateau", "inconclusive"], "culprit": [None], "root": []}

_n = [0]


def match(n):
    return re.match(f"item-{n}-[a-z]+", f"item-{n}-abc") is not None


def workload():
    _n[0] += 1
    match(_n[0])
