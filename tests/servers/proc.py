"""Ground truth of the test servers, without leakkit: memory read straight from ``/proc``.

RSS and USS (the sum of the Private_* lines) from one read of ``/proc/<pid>/smaps_rollup``, and a
plain least-squares slope: what the end-to-end tests check against, first of all that the
leaking release really grows and the fixed one really stays flat after a hand-chosen warm-up
(if that fails, no test of leakkit on these servers means anything).
"""
from __future__ import annotations

MIB = 1024 * 1024


def rollup(pid: int) -> tuple[int, int] | None:
    """(rss, uss) in bytes from one read of smaps_rollup; None once the process is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
            lines = handle.read().splitlines()[1:]
    except OSError:
        return None
    fields = {}
    for line in lines:
        name, _, rest = line.partition(b":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[name.strip()] = int(parts[0]) * 1024
    return fields.get(b"Rss", 0), sum(v for k, v in fields.items() if k.startswith(b"Private_"))


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope (bytes per second) of (t, bytes) points."""
    n = len(points)
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    return sum((t - mt) * (y - my) for t, y in points) / sum((t - mt) ** 2 for t, _ in points)


def sample_until(pids_of, done, period: float = 1.0) -> dict[int, list[tuple[float, int, int]]]:
    """(t, rss, uss) of every pid ``pids_of()`` lists, every ``period`` s until ``done`` is set."""
    import time

    series: dict[int, list[tuple[float, int, int]]] = {}
    start = time.monotonic()
    while not done.wait(period):
        for pid in pids_of():
            reading = rollup(pid)
            if reading is not None:
                series.setdefault(pid, []).append((time.monotonic() - start, *reading))
    return series
