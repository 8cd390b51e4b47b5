"""A cache whose entries expire after 15 ticks: it grows, then holds steady."""
EXPECT = {"verdict": ["plateau"], "culprit": [None], "root": []}

CACHE = {}
_tick = [0]


def get(key):
    now = _tick[0]
    for k in [k for k, (t, _) in CACHE.items() if now - t > 15]:
        del CACHE[k]
    CACHE[key] = (now, {"key": key, "body": "v" * 80})


def workload():
    _tick[0] += 1
    get(f"k{_tick[0]}")
