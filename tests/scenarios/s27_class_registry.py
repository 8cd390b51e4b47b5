"""Instances register themselves in a class-level dict in __init__ and never leave."""
EXPECT = {"verdict": ["leak"], "culprit": ["Job.__init__", "submit"], "root": ["Job", "_registry"]}


class Job:
    _registry = {}

    def __init__(self, n):
        self.n = n
        self.args = [n] * 10
        Job._registry[id(self)] = self


def submit(n):
    Job(n)


_n = [0]


def workload():
    _n[0] += 1
    submit(_n[0])
