"""The in-process monitor's sample: this process's cheap counters, well under a millisecond a reading.

Why apart from the sampler thread (:mod:`leakkit.recording.monitor`): a sample is taken every
``interval`` for the life of a production worker, so each reading is the cheapest there is and
none walks the heap or runs a collection; and nothing here imports psutil, numpy or pandas,
which would cost a worker more memory than the whole monitor may (2 MiB): RSS from one ``pread``
of ``/proc/self/statm`` kept open; RSS/USS/PSS/swap from one read of ``/proc/self/smaps_rollup``
(the same page walk and the same sums as :func:`leakkit.probes.process.smaps_rollup`, so USS never
exceeds RSS); the Python heap from :func:`leakkit.probes.malloc.allocated_bytes` (pymalloc's and
malloc's bytes in use); the open descriptors from listing ``/proc/self/fd``; the collector's counts;
tracemalloc's total when it traces. psutil only where there is no ``/proc``.

The files are opened by :class:`Counters` in the process that reads them: ``/proc/self`` is
resolved at open, so a forked child makes its own (:meth:`Counters.reopen`).
"""
from __future__ import annotations

import gc
import os
import sys
import threading
import time
import tracemalloc
from typing import Any

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rollup(fd: int) -> tuple[int, int, int | None, int | None] | None:
    """(rss, uss, pss, swap) in bytes from an open smaps_rollup, or None when it reads empty."""
    chunks = []
    offset = 0
    while True:
        chunk = os.pread(fd, 4096, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    fields: dict[bytes, int] = {}
    for line in b"".join(chunks).splitlines()[1:]:
        name, _, rest = line.partition(b":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[name.strip()] = int(parts[0]) * 1024
    if not fields:
        return None
    uss = sum(v for k, v in fields.items() if k.startswith(b"Private_"))
    return fields.get(b"Rss", 0), uss, fields.get(b"Pss"), fields.get(b"Swap")


def cgroup_limit() -> int | None:
    """This process's cgroup memory limit in bytes (``memory.max``, v1 ``memory.limit_in_bytes``),
    or None outside a container or when unlimited: the limit a worker in a container dies at."""
    try:
        with open("/proc/self/cgroup", encoding="ascii", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    candidates = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        path = path.strip().lstrip("/")
        if controllers == "":  # cgroup v2
            candidates += [os.path.join("/sys/fs/cgroup", path, "memory.max"), "/sys/fs/cgroup/memory.max"]
        elif "memory" in controllers.split(","):
            candidates += [os.path.join("/sys/fs/cgroup/memory", path, "memory.limit_in_bytes"),
                           "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
    for candidate in candidates:
        try:
            with open(candidate, encoding="ascii") as handle:
                text = handle.read().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < (1 << 60):  # v1 says "unlimited" with a huge number
            return int(text)
        return None  # "max": this cgroup has no limit
    return None


class Counters:
    """The cheap readings, with the /proc files kept open so a sample costs a few preads."""

    def __init__(self) -> None:
        self._statm: int | None = None
        self._rollup: int | None = None
        self._fd_dir: str | None = None
        self._heap: Any = None
        self.reopen()

    def reopen(self) -> None:
        """(Re)open this process's /proc files: in a forked child, the inherited ones are the parent's."""
        self.close()
        flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
        for name, attribute in (("statm", "_statm"), ("smaps_rollup", "_rollup")):
            try:
                setattr(self, attribute, os.open(f"/proc/self/{name}", flags))
            except OSError:
                setattr(self, attribute, None)
        self._fd_dir = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else None
        try:
            from ..probes import malloc

            self._heap = malloc.allocated_bytes if malloc.allocated_bytes() is not None else None
        except Exception:  # no ctypes, not glibc: the column stays empty
            self._heap = None

    def memory(self, full: bool = True) -> tuple[int, int | None, int | None, int | None]:
        """(rss, uss, pss, swap) in bytes; USS/PSS/swap None where the kernel has no rollup, or when
        not ``full`` (RSS alone from statm: ~2 us, where the rollup's page walk costs 0.4-3 ms in a
        busy process of 60 MiB)."""
        if self._rollup is not None and full:
            try:
                read = _rollup(self._rollup)
                if read is not None:
                    return read
            except OSError:
                pass
        if self._statm is not None:
            try:
                return int(os.pread(self._statm, 128, 0).split()[1]) * _PAGE, None, None, None
            except OSError:
                pass
        import psutil  # no /proc: another platform, where psutil is what there is

        info = psutil.Process().memory_full_info()
        return info.rss, getattr(info, "uss", None), getattr(info, "pss", None), getattr(info, "swap", None)

    def python_heap(self) -> int | None:
        """Bytes held through pymalloc and malloc (:func:`leakkit.probes.malloc.allocated_bytes`)."""
        try:
            return self._heap() if self._heap is not None else None
        except Exception:
            return None

    def open_fds(self) -> int | None:
        if self._fd_dir is None:
            return None
        try:
            return len(os.listdir(self._fd_dir)) - 1  # listdir's own descriptor
        except OSError:
            return None

    def sample(self, start: float, cpu_s: float, full: bool = True) -> dict[str, Any]:
        """One row of the monitor's CSV (:data:`leakkit.recording.monitor.COLUMNS`) but the monitor's
        own columns; ``start``: the monitor's start (``time.monotonic()``), ``cpu_s``: its thread's CPU
        time; ``full``: USS, PSS and swap too (see :meth:`memory`)."""
        counts = gc.get_count()
        rss, uss, pss, swap = self.memory(full)
        return {
            "t": time.monotonic() - start,
            "unix_time_s": time.time(),
            "pid": os.getpid(),
            "rss": rss, "uss": uss, "pss": pss, "swap": swap,
            "python_heap": self.python_heap(),
            "allocated_blocks": sys.getallocatedblocks(),
            "gc0": counts[0], "gc1": counts[1], "gc2": counts[2],
            "gc_collections": sum(s["collections"] for s in gc.get_stats()),
            "open_fds": self.open_fds(),
            "threads": threading.active_count(),
            "traced_bytes": tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None,
            "monitor_cpu_s": cpu_s,
        }

    def close(self) -> None:
        for attribute in ("_statm", "_rollup"):
            fd = getattr(self, attribute)
            if fd is not None:
                setattr(self, attribute, None)
                try:
                    os.close(fd)
                except OSError:
                    pass
