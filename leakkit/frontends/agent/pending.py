"""leakkit's own injector for CPython 3.10-3.13: one pending call, written into the process's memory.

CPython runs "pending calls" (``Py_AddPendingCall``) at its eval loop's safe points, where signal
handlers run, with the GIL held and no C code of the program half done. The injector writes
one entry into the main interpreter's pending-call queue (``PyRun_SimpleString`` and a pointer
to a few bytes of code it put in a library's unused tail page), and the flags that make the eval
loop look at the queue. It writes through ``/proc/PID/mem`` and never stops the process: no
ptrace stop, no register touched, no function called in it by the injector (gdb, the usual way,
stops every thread while it loads symbols: 1.2 s for a bare attach and detach of the attach tests'
server here; and its ``call`` writes the called thread's registers back, which failed on this
machine for memray's attach to a gunicorn worker, "Couldn't write extended state status", and the
worker died). 3.14's ``sys.remote_exec`` works the same way, through a field CPython added for it.

The layout of the queue differs per version: :data:`LAYOUTS` (offsets for 64-bit default builds,
from CPython's internal headers: ``tests/attach/pending_offsets.c`` prints them). Before writing,
the process's own memory must agree with it (``interp->runtime`` points back at ``_PyRuntime``,
the main interpreter's id is 0, the queue's indexes are in range and it is empty, the 3.13
queue's capacity is 300): a build with another layout is refused, not written to.

Who runs the call: 3.10 and 3.11 run pending calls in the main thread only (a main thread blocked
in C code for good never does: the caller times out and neutralizes the code); 3.12 and 3.13
run the interpreter's queue in whichever thread next reaches a safe point.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from ...probes.elf import Elf, maps


@dataclass(frozen=True)
class Layout:
    runtime_main: int  # offsetof(_PyRuntimeState, interpreters.main)
    interp_runtime: int  # offsetof(PyInterpreterState, runtime)
    interp_id: int
    pending: int  # offsetof(PyInterpreterState, ceval) + offsetof(struct _ceval_state, pending)
    eval_breaker: int | None  # offsetof(PyInterpreterState, ceval.eval_breaker); None: per thread (3.13)
    todo: int  # calls_to_do (3.10-3.12) or npending (3.13), in the pending struct
    calls: int
    call_size: int
    first: int
    last: int  # last (3.10-3.12) or next (3.13)
    slots: int
    busy: int | None = None  # 3.12 busy flag, 3.13 handling_thread pointer
    mutex: int | None = None  # 3.13 PyMutex (one byte)
    capacity: int | None = None  # 3.13 max


LAYOUTS = {
    (3, 10): Layout(40, 16, 24, 64 + 16, 64 + 4, 8, 16, 16, 528, 532, 32),
    (3, 11): Layout(48, 40, 48, 96 + 16, 96 + 4, 8, 16, 16, 528, 532, 32),
    (3, 12): Layout(48, 96, 8, 368 + 32, 368 + 0, 16, 24, 16, 536, 540, 32, busy=0),
    (3, 13): Layout(640, 7376, 7272, 0 + 32, None, 12, 24, 24, 7224, 7228, 300, busy=0, mutex=8, capacity=16),
}
SYMBOLS = {"_PyRuntime", "PyRun_SimpleString"}


class Refused(Exception):
    """The process is not one the injector can safely write to; the message says why."""


class Memory:
    """Reads and writes of another process's memory (``/proc/PID/mem``; the kernel checks ptrace access)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.fd = os.open(f"/proc/{pid}/mem", os.O_RDWR | os.O_CLOEXEC)

    def read(self, address: int, size: int) -> bytes:
        data = os.pread(self.fd, size, address)
        if len(data) != size:
            raise Refused(f"cannot read {size} bytes at {address:#x} of pid {self.pid}")
        return data

    def u64(self, address: int) -> int:
        return struct.unpack("<Q", self.read(address, 8))[0]

    def i32(self, address: int) -> int:
        return struct.unpack("<i", self.read(address, 4))[0]

    def write(self, address: int, data: bytes) -> None:
        if os.pwrite(self.fd, data, address) != len(data):
            raise OSError(f"short write at {address:#x} of pid {self.pid}")

    def close(self) -> None:
        os.close(self.fd)


@dataclass
class Plan:
    """Where everything is in one process: found and checked, nothing written yet."""

    pid: int
    version: tuple[int, int]
    layout: Layout
    runtime: int
    interp: int
    run_string: int
    slack: tuple[int, int]
    library: str


def locate(pid: int, version: tuple[int, int], libpython: str | None, exe: str | None) -> Plan:
    """Find ``_PyRuntime``, ``PyRun_SimpleString`` and a free tail page in ``pid``; check the layout."""
    layout = LAYOUTS.get(version)
    if layout is None:
        raise Refused(f"no pending-call layout for Python {version[0]}.{version[1]}")
    mapped = maps(pid)
    library = libpython or exe
    objects = [library] if library else []
    found: dict[str, int] = {}
    for path in objects:
        mine = _in_root(pid, path)
        loaded = [m for m in mapped if m.path == path]
        if not loaded or any(m.inode != os.stat(mine).st_ino for m in loaded):
            raise Refused(f"{path} on disk is not the file the process loaded (replaced since it started?)")
        elf = Elf(mine)
        bias = elf.bias(loaded)
        if bias is None:
            continue
        for name, (value, _size) in elf.symbols(SYMBOLS).items():
            found[name] = bias + value
    if set(found) != SYMBOLS:
        raise Refused(f"{library}: the symbols {', '.join(sorted(SYMBOLS - set(found)))} were not found "
                      "(a stripped or static build leakkit cannot drive)")
    with _memory(pid) as memory:
        runtime = found["_PyRuntime"]
        interp = memory.u64(runtime + layout.runtime_main)
        if not interp or memory.u64(interp + layout.interp_runtime) != runtime or \
                memory.u64(interp + layout.interp_id) != 0:
            raise Refused(f"Python {version[0]}.{version[1]} at {library}: its interpreter state is not laid out "
                          "as leakkit expects (another build or patch release)")
        check_queue(memory, interp, layout)
    slack = free_tail(pid, len(BOOT_TEMPLATE) + 256, mapped, preferred=library)  # room for the boot file path
    return Plan(pid, version, layout, runtime, interp, found["PyRun_SimpleString"], slack, library or "")


def _in_root(pid: int, path: str) -> str:
    """``path`` as the process sees it (its mount namespace may differ from ours)."""
    mine = f"/proc/{pid}/root{path}"
    return mine if os.path.exists(mine) else path


class _memory:
    def __init__(self, pid: int) -> None:
        self.pid = pid

    def __enter__(self) -> Memory:
        self.memory = Memory(self.pid)
        return self.memory

    def __exit__(self, *exc: object) -> None:
        self.memory.close()


def check_queue(memory: Memory, interp: int, layout: Layout) -> tuple[int, int]:
    """The queue's (first, last) after checking it is sane and empty, so that leakkit's entry is alone."""
    base = interp + layout.pending
    first, last = memory.i32(base + layout.first), memory.i32(base + layout.last)
    todo = memory.i32(base + layout.todo)
    if not (0 <= first < layout.slots and 0 <= last < layout.slots):
        raise Refused("the pending-call queue's indexes are out of range: another layout")
    if layout.capacity is not None and memory.i32(base + layout.capacity) != layout.slots:
        raise Refused("the pending-call queue's capacity is not CPython 3.13's: another layout")
    if layout.mutex is not None and memory.read(base + layout.mutex, 1) != b"\0":
        raise Refused("the pending-call queue is locked right now: try again")
    if first != last or todo != 0:
        raise Refused("the pending-call queue is not empty right now: try again")
    slot = base + layout.calls + last * layout.call_size
    if layout.capacity is not None and memory.read(slot, layout.call_size) != bytes(layout.call_size):
        raise Refused("the next pending-call slot is not empty: another layout")
    return first, last


def free_tail(pid: int, size: int, mapped: list, preferred: str | None) -> tuple[int, int]:
    """(address, length) of at least ``size`` zero bytes past the data segment of a loaded library."""
    paths = [preferred] if preferred else []
    paths += sorted({m.path for m in mapped if m.path.startswith("/") and m.path not in paths})
    with _memory(pid) as memory:
        for path in paths:
            try:
                elf = Elf(_in_root(pid, path))
            except (OSError, ValueError):
                continue
            bias = elf.bias([m for m in mapped if m.path == path])
            tail = elf.slack(bias) if bias is not None else None
            if tail is None or tail[1] < size:
                continue
            inside = any(m.start <= tail[0] and tail[0] + tail[1] <= m.end and m.perms.startswith("rw") for m in mapped)
            if inside and memory.read(*tail) == bytes(tail[1]):
                return tail
    raise Refused(f"no {size} free bytes found after a loaded library's data")


BOOT_TEMPLATE = ("try:\n __import__('builtins').exec(__import__('builtins').open({path!r}).read(),"
                 "{{'__name__': '__leakkit_boot__'}})\nexcept BaseException:\n pass\n")


def boot_code(path: str) -> bytes:
    """What the pending call runs (in ``__main__``'s namespace: it binds no name there): the boot file."""
    return BOOT_TEMPLATE.format(path=path).encode() + b"\0"


def write_call(plan: Plan, code: bytes) -> int:
    """Put ``code`` in the free tail and one pending call to ``PyRun_SimpleString`` on it; returns its address."""
    layout = plan.layout
    address = plan.slack[0]
    if len(code) > plan.slack[1]:
        raise Refused("the boot code does not fit in the free bytes found")
    with _memory(plan.pid) as memory:
        _first, last = check_queue(memory, plan.interp, layout)
        base = plan.interp + layout.pending
        slot = base + layout.calls + last * layout.call_size
        memory.write(address, code)
        memory.write(slot, struct.pack("<QQ", plan.run_string, address))
        memory.write(base + layout.last, struct.pack("<i", (last + 1) % layout.slots))
        memory.write(base + layout.todo, struct.pack("<i", 1))  # calls_to_do, or npending 0 -> 1
        if layout.eval_breaker is not None:
            memory.write(plan.interp + layout.eval_breaker, struct.pack("<i", 1))
    return address


def neutralize(plan: Plan, address: int, length: int, *, first_byte_only: bool = False) -> None:
    """Zero the boot code: a call still queued then runs an empty program. The first byte goes
    first (the parser copies the string when it starts: it sees the whole code or none)."""
    with _memory(plan.pid) as memory:
        memory.write(address, b"\0")
        if not first_byte_only:
            memory.write(address, bytes(length))
