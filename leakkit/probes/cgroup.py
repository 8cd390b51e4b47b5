"""The memory limit a process runs under: its cgroup's ``memory.max`` (v2) or ``memory.limit_in_bytes`` (v1).

Why: inside a container (Docker, Kubernetes, a systemd unit with ``MemoryMax=``) the kernel kills
on the cgroup's limit, which is often the only limit there is; a forecast without a limit says
nothing about when. The limit is found from ``/proc/<pid>/cgroup`` and the cgroup mounts of
``/proc/self/mountinfo``, walking up from the process's cgroup to the root of the hierarchy and
keeping the smallest limit set (a parent's limit binds its children too). ``max`` (v2) and v1's
"unlimited" (a value near 2**63) are no limit.

The cgroup counts every process in it together (and page cache): for a server whose workers
share one container the limit is the workers' total; the kernel's OOM killer then kills the
process that uses the most (RSS + swap), so a single leaking worker dies first.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

_UNLIMITED_V1 = 1 << 62  # v1 writes PAGE_COUNTER_MAX * page size (~2**63) for "no limit"


@dataclass(frozen=True)
class CgroupLimit:
    """A cgroup memory limit: bytes, and the file it was read from (what the reports name)."""

    limit_bytes: int
    source: str
    version: int


def _mounts(root: str) -> dict[str, str]:
    """Mount points of the cgroup hierarchies: ``{"2": path}`` for v2, ``{"memory": path}`` for v1."""
    found: dict[str, str] = {}
    try:
        with open(os.path.join(root, "proc/self/mountinfo"), encoding="utf-8", errors="replace") as handle:
            lines = handle.readlines()
    except OSError:
        return found
    for line in lines:
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        mount_root, point, fstype, options = fields[3], fields[4], tail[0], tail[2].split(",")
        if fstype == "cgroup2":
            found.setdefault("2", point)
            found.setdefault("2-root", mount_root)
        elif fstype == "cgroup" and "memory" in options:
            found.setdefault("memory", point)
            found.setdefault("memory-root", mount_root)
    return found


def _read_limit(path: str, version: int) -> int | None:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read(64).strip()
    except OSError:
        return None
    if version == 2 and text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    if value <= 0 or (version == 1 and value >= _UNLIMITED_V1):
        return None
    return value


def _smallest(mount: str, mount_root: str, cgroup_path: str, name: str, version: int,
              root: str) -> CgroupLimit | None:
    """The smallest limit from the process's cgroup up to the hierarchy's root."""
    relative = cgroup_path
    if mount_root not in ("/", "") and relative.startswith(mount_root):
        relative = relative[len(mount_root):]  # the mount shows a subtree (a container's namespace)
    parts = [p for p in relative.split("/") if p and p != ".."]
    best: CgroupLimit | None = None
    for depth in range(len(parts), -1, -1):
        directory = os.path.join(root + mount, *parts[:depth]) if root else os.path.join(mount, *parts[:depth])
        path = os.path.join(directory, name)
        value = _read_limit(path, version)
        if value is not None and (best is None or value < best.limit_bytes):
            shown = os.path.join(mount, *parts[:depth], name)
            best = CgroupLimit(value, f"cgroup v{version} {shown}", version)
    return best


def memory_limit(pid: int | None = None, *, root: str = "") -> CgroupLimit | None:
    """The cgroup memory limit of ``pid`` (this process by default), or None when it has none.

    ``root`` prefixes every path read (``/proc``, the mounts): tests give a fake tree.
    """
    where = "self" if pid is None else str(int(pid))
    try:
        with open(os.path.join(root or "/", f"proc/{where}/cgroup"), encoding="utf-8", errors="replace") as handle:
            lines = handle.read(1 << 16).splitlines()
    except OSError:
        return None
    mounts = _mounts(root or "/")
    v1_path = v2_path = None
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            v2_path = path
        elif "memory" in controllers.split(","):
            v1_path = path
    if v1_path is not None and "memory" in mounts:
        limit = _smallest(mounts["memory"], mounts["memory-root"], v1_path, "memory.limit_in_bytes", 1,
                          root.rstrip("/"))
        if limit is not None:
            return limit
    if v2_path is not None and "2" in mounts:
        return _smallest(mounts["2"], mounts["2-root"], v2_path, "memory.max", 2, root.rstrip("/"))
    return None
