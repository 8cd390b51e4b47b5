"""Every call registers an atexit callback that closes over the request."""
import atexit

EXPECT = {"verdict": ["leak"], "culprit": ["handle"], "root": ["atexit"]}
_n = [0]


def handle(n):
    payload = {"n": n, "body": "x" * 100}

    def flush():
        return payload

    atexit.register(flush)


def workload():
    _n[0] += 1
    handle(_n[0])
