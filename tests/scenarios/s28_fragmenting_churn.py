"""Heavy churn of random-size buffers (some above malloc's mmap threshold) with a small bounded
history: the allocator's footprint moves, but nothing grows without bound."""
import collections
import random

EXPECT = {"verdict": ["clean", "plateau"], "culprit": [None], "root": []}
_rng = random.Random(11)
HISTORY = collections.deque(maxlen=20)


def process(n):
    chunks = [bytearray(_rng.choice((512, 4096, 60_000, 300_000))) for _ in range(_rng.randint(10, 40))]
    HISTORY.append(chunks[_rng.randrange(len(chunks))])
    return sum(map(len, chunks))


_n = [0]


def workload():
    _n[0] += 1
    process(_n[0])
