"""Follow a process tree from outside: the watched process (a server's master) and every descendant.

Why a module of its own: a server's memory limit is per worker, and its workers come and go
(gunicorn recycles one after ``max_requests``, respawns one that died, scales on TTIN/TTOU), so
a watch of the master must read each worker on its own and keep a worker's series apart from its
successor's: a worker that exits ends its series, a new pid starts a new one. Every reading is
one ``smaps_rollup`` read per process (:func:`leakkit.probes.process.read_memory`).

Roles: ``master`` is the process watched (the root); ``worker`` is any descendant (forked
workers, a multiprocessing pool's processes, a subprocess). ``ppid`` says where each hangs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import psutil

from .._errors import ProcessAccessError
from ..probes import process as probes

ROLES = ("master", "worker")


@dataclass(frozen=True)
class Reading:
    """One process's memory at one sample: bytes (``nan`` where the kernel gives none)."""

    pid: int
    ppid: int
    role: str
    rss: float
    uss: float
    pss: float
    swap: float


def _figure(value: int | None) -> float:
    return math.nan if value is None else float(value)


def read_one(process: psutil.Process) -> tuple[float, float, float, float] | None:
    """rss, uss, pss, swap of one process; None once it is gone (or a zombie, which reads as zeros)."""
    try:
        info = probes.read_memory(process.pid)
        if info.rss == 0 and process.status() == psutil.STATUS_ZOMBIE:
            return None
    except psutil.NoSuchProcess:  # includes ZombieProcess
        return None
    except psutil.AccessDenied as error:
        raise ProcessAccessError(f"pid {process.pid}: expected a process we may read (access denied)") from error
    return float(info.rss), _figure(info.uss), _figure(info.pss), _figure(info.swap)


@dataclass
class Tree:
    """The processes of a tree seen so far: which are alive, when each was first and last seen.

    ``follow=False`` reads the root only.
    """

    root: psutil.Process
    follow: bool = True
    first_seen: dict[int, float] = field(default_factory=dict)
    last_seen: dict[int, float] = field(default_factory=dict)
    ended: dict[int, float] = field(default_factory=dict)
    created: dict[int, float] = field(default_factory=dict)  # pid -> its start (Unix seconds): its age
    _known: dict[int, psutil.Process] = field(default_factory=dict)
    _ppid: dict[int, int] = field(default_factory=dict)
    skipped: set[int] = field(default_factory=set)  # descendants we may not read (dropped privileges)

    def _members(self) -> list[psutil.Process] | None:
        """The root and its live descendants, the root first; None once the root is gone."""
        members = [self.root]
        if self.follow:
            try:
                members += self.root.children(recursive=True)
            except psutil.NoSuchProcess:
                return None
        return members

    def sample(self, now: float) -> list[Reading] | None:
        """One reading of every process in the tree (the root first); None once the root is gone.

        A process seen before but missing now has ended: its series ends at its last reading.
        A pid that comes back is a new process only if its start time differs (pids are reused).
        """
        members = self._members()
        if members is None:
            return None
        readings: list[Reading] = []
        alive: set[int] = set()
        for process in members:
            pid = process.pid
            known = self._known.get(pid)
            if known is not None and known is not process and not _same(known, process):
                self.ended.setdefault(pid, self.last_seen.get(pid, now))  # a reused pid: a new series
            try:
                reading = read_one(process)
            except ProcessAccessError:
                if process is self.root:
                    raise
                self.skipped.add(pid)
                continue
            if reading is None:
                if process is self.root:
                    return None
                continue
            if pid not in self._known or pid in self.ended:
                self._known[pid] = process
                self.first_seen[pid] = now
                self.ended.pop(pid, None)
                self._ppid[pid] = _parent(process)
                try:
                    self.created[pid] = float(process.create_time())
                except psutil.Error:
                    pass
            alive.add(pid)
            self.last_seen[pid] = now
            role = "master" if process is self.root else "worker"
            readings.append(Reading(pid, self._ppid.get(pid, 0), role, *reading))
        for pid in list(self._known):
            if pid not in alive and pid not in self.ended:
                self.ended[pid] = self.last_seen.get(pid, now)
        return readings

    def alive(self) -> list[int]:
        """Pids seen at the last sample and not ended since."""
        return [pid for pid in self._known if pid not in self.ended]


def _same(a: psutil.Process, b: psutil.Process) -> bool:
    try:
        return a.create_time() == b.create_time()
    except psutil.Error:
        return False


def _parent(process: psutil.Process) -> int:
    try:
        return int(process.ppid())
    except psutil.Error:
        return 0
