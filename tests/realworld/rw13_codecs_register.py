"""A feed importer that registers a codec search function per feed, to map the feed's declared
charset alias (``x-feed-<id>``) onto a real codec.

Real leak (stdlib). ``codecs.register`` appends the search function to the interpreter's codec
search path, a list held by the interpreter state itself: no module attribute refers to it and
``gc.get_referrers`` finds only that list. Each closure (with the feed's settings) stays until
``codecs.unregister`` (3.10+). The fix registers one search function at start.
"""
import codecs
import gc
import itertools
import sys

_seq = itertools.count()


def import_feed(feed_id: int, payload: bytes) -> str:
    alias = f"x-feed-{feed_id}"
    settings = {"feed": feed_id, "charset": "latin-1", "notes": "x" * 100}

    def search(name: str):
        if name == alias.replace("-", "_"):
            return codecs.lookup(settings["charset"])
        return None

    codecs.register(search)
    return payload.decode("latin-1")


def workload():
    import_feed(next(_seq), b"caf\xe9 cr\xe8me")


def _registered() -> list:
    return [o for o in gc.get_objects() if getattr(o, "__qualname__", "") == "import_feed.<locals>.search"]


def release():
    for search in _registered():
        codecs.unregister(search)


def check_holder() -> list[str]:
    """The search functions are held by one list that nothing in Python refers to (the
    interpreter's codec search path)."""
    sample = _registered()[-1]
    holders = [r for r in gc.get_referrers(sample) if isinstance(r, list) and r is not _registered]
    problems = []
    search_path = [h for h in holders if sum(1 for x in h if callable(x)) >= 10]
    if len(search_path) != 1:
        problems.append(f"expected one list holding the search functions, found {len(search_path)}")
    else:
        mine = (holders, search_path)
        others = [r for r in gc.get_referrers(search_path[0])
                  if not isinstance(r, type(sys._getframe())) and not any(r is m for m in mine)]
        if others:
            problems.append(f"the codec search path has Python referrers: {[type(r) for r in others]}")
    return problems


TARGETS = [sys.modules[__name__], codecs]
EXPECT = {"verdict": ["leak"], "culprit": ["import_feed"], "root": ["codec", "codecs.register"]}
TRUTH = {"kind": "leak", "calls": 200, "min_bytes_per_call": 300, "release": "release", "check": "check_holder"}
