"""Jobs run in a thread pool; the parse step stores every job's result in a registry, forever."""
import threading
from concurrent.futures import ThreadPoolExecutor

EXPECT = {"verdict": ["leak"], "culprit": ["store_result"], "root": ["RESULTS"]}

RESULTS = {}
_lock = threading.Lock()
POOL = ThreadPoolExecutor(max_workers=3)
_n = [0]


def store_result(job_id, text):
    with _lock:
        RESULTS[job_id] = {"text": text.title(), "tokens": text.split()}


def process(job_id):
    text = f"job {job_id} payload " * 4
    store_result(job_id, text)
    return len(text)


def workload():
    base = _n[0]
    _n[0] += 4
    list(POOL.map(process, range(base, base + 4)))
