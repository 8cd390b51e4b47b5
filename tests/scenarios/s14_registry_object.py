"""A module-level registry object keeps every subscriber in an instance attribute."""
EXPECT = {"verdict": ["leak"], "culprit": ["Registry.register"], "root": ["REGISTRY"]}


class Registry:
    def __init__(self):
        self.subscribers = {}

    def register(self, key):
        self.subscribers[key] = {"key": key, "since": key * 2}


REGISTRY = Registry()
_n = [0]


def workload():
    _n[0] += 1
    REGISTRY.register(f"sub-{_n[0]}")
