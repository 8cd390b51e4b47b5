"""A mutable default argument used as a memo: every distinct key stays forever."""
EXPECT = {"verdict": ["leak"], "culprit": ["lookup"], "root": ["lookup"]}


def lookup(key, _memo={}):  # noqa: B006 - the leak under test
    if key not in _memo:
        _memo[key] = [key] * 6
    return _memo[key]


_n = [0]


def workload():
    _n[0] += 1
    lookup(f"k{_n[0]}")
