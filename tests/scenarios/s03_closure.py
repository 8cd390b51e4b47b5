"""A handler made by a factory keeps every event it saw in a closure variable."""
EXPECT = {"verdict": ["leak"], "culprit": ["make_handler.<locals>.handler"], "root": ["seen"]}


def make_handler():
    seen = []

    def handler(event):
        seen.append({"event": event, "copy": list(range(8))})
        return len(seen)

    return handler


HANDLER = make_handler()
_n = [0]


def workload():
    _n[0] += 1
    HANDLER(f"evt-{_n[0]}")
