"""The workload fails one time in three (the error escapes) and leaks on every success."""
EXPECT = {"verdict": ["leak"], "culprit": ["save"], "root": ["SAVED"]}

SAVED = []
_n = [0]


def save(n):
    SAVED.append(f"record-{n}" * 4)


def workload():
    _n[0] += 1
    if _n[0] % 3 == 0:
        raise ConnectionError("upstream closed")
    save(_n[0])
