"""functools.cache (an lru_cache without maxsize) keyed by a value unique to every request."""
import functools

EXPECT = {"verdict": ["leak"], "culprit": ["render_profile"], "root": ["render_profile"]}


@functools.cache
def render_profile(user_id):
    return {"user": user_id, "html": f"<div>{user_id}</div>" * 5}


_n = [0]


def workload():
    _n[0] += 1
    render_profile(f"user-{_n[0]}")
