"""Each call starts a watcher thread that blocks forever."""
import threading

EXPECT = {"verdict": ["leak"], "culprit": ["start_watcher", "workload"], "root": ["threading", "_STOP"]}
_STOP = threading.Event()


def watch(n, blob):
    _STOP.wait()


def start_watcher(n):
    t = threading.Thread(target=watch, args=(n, bytearray(1024)), daemon=True)
    t.start()


_n = [0]


def workload():
    _n[0] += 1
    start_watcher(_n[0])
