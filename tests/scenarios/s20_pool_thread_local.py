"""Worker threads of a pool keep a per-thread scratch history in a threading.local, never cleared."""
import threading
from concurrent.futures import ThreadPoolExecutor

EXPECT = {"verdict": ["leak"], "culprit": ["scratch"], "root": ["SCRATCH"]}

SCRATCH = threading.local()
POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="worker")


def scratch(n):
    history = getattr(SCRATCH, "history", None)
    if history is None:
        history = SCRATCH.history = []
    history.append({"n": n, "note": f"job-{n}" * 3})


def job(n):
    scratch(n)
    return n


_n = [0]


def workload():
    base = _n[0]
    _n[0] += 2
    list(POOL.map(job, (base, base + 1)))
