"""A 4 MB temporary per call, freed at the end of the call: a lot allocated, nothing kept."""
EXPECT = {"verdict": ["clean"], "culprit": [None], "root": []}


def render(n):
    frame = bytearray(4 << 20)
    frame[n % 100] = 1
    return sum(frame[:100])


def workload():
    render(3)
