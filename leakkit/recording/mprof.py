"""Read and write memory-profiler's ``.dat`` recordings, so mprof and leakkit share files.

``mprof run`` writes one line per event, in MiB and Unix seconds::

    CMDLINE python worker.py
    MEM 53.214844 1700000000.1234
    FUNC module.handler 53.2 1700000000.2000 54.1 1700000000.3000 1
    CHLD 0 12.500000 1700000000.1300

leakkit reads these into the same DataFrame shape as :func:`leakkit.recording.watch.watch` returns (so
existing mprof recordings can be forecast) and writes its own watches in this format (so
``mprof plot`` draws them). mprof's default backend measures RSS, so ``MEM`` maps to ``rss``.
"""
from __future__ import annotations

import io
import math
import os
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO

import pandas as pd

from .. import _checks
from .._errors import NotARecordingError, expected

MIB = 1024 * 1024

#: Columns of the frame :func:`read_mprofile` returns (the watch shape; see leakkit.watch).
FRAME_COLUMNS = ["t", "unix_time_s", "rss", "uss", "pss", "swap", "children"]


@dataclass
class MprofRecording:
    """The parsed content of a ``.dat`` file, still in mprof's own units (MiB, Unix seconds)."""

    cmdline: str | None = None
    mem: list[tuple[float, float]] = field(default_factory=list)  # (MiB, timestamp)
    functions: list[tuple[str, float, float, float, float, int | None]] = field(default_factory=list)
    children: list[tuple[str, float, float]] = field(default_factory=list)  # (child, MiB, timestamp)


def _number(text: str, path: str, lineno: int, line: str, *, memory: bool = False) -> float:
    """A finite number (``memory``: a reading in MiB, which cannot be negative)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or (memory and value < 0):
        raise NotARecordingError(
            f"{path}:{lineno}: expected {'a memory reading >= 0' if memory else 'a number'} in an mprof line, "
            f"received {text!r} in {line.strip()[:80]!r}"
        )
    return value


def parse_mprofile(lines: Iterable[str], path: str = "<mprof>") -> MprofRecording:
    """Parse mprof ``.dat`` lines; raise NotARecordingError naming the first bad line."""
    recording = MprofRecording()
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        kind, _, rest = line.rstrip("\n").partition(" ")
        values = rest.split()
        if kind == "CMDLINE":
            recording.cmdline = rest.strip()
        elif kind == "MEM" and len(values) == 2:
            mem, stamp = _number(values[0], path, lineno, line, memory=True), _number(values[1], path, lineno, line)
            recording.mem.append((mem, stamp))
        elif kind == "FUNC" and len(values) in (5, 6):
            numbers = [_number(v, path, lineno, line, memory=i in (0, 2)) for i, v in enumerate(values[1:5])]
            level = int(_number(values[5], path, lineno, line)) if len(values) == 6 else None
            recording.functions.append((values[0], *numbers, level))  # type: ignore[arg-type]
        elif kind == "CHLD" and len(values) == 3:
            mem, stamp = _number(values[1], path, lineno, line, memory=True), _number(values[2], path, lineno, line)
            recording.children.append((values[0], mem, stamp))
        else:
            raise NotARecordingError(
                f"{path}:{lineno}: expected an mprof line (CMDLINE, 'MEM <MiB> <time>', FUNC or CHLD), "
                f"received {line.strip()[:80]!r}"
            )
    return recording


def looks_like_mprofile(first_line: str) -> bool:
    """True when a file's first non-empty line is an mprof record (how :func:`leakkit.recording.timeline.load` dispatches)."""
    return first_line.split(" ", 1)[0] in {"CMDLINE", "MEM", "FUNC", "CHLD"}


@_checks.strict
def read_mprofile(path: str | os.PathLike) -> pd.DataFrame:
    """Read an mprof ``.dat`` file into the watch DataFrame shape.

    Columns: ``t`` (s since the first sample), ``unix_time_s``, ``rss`` (bytes, from ``MEM``),
    ``uss``/``pss``/``swap`` (missing: mprof records one metric), ``children`` (missing).
    ``frame.attrs`` holds ``cmdline``, ``source`` ("mprof"), ``functions`` (DataFrame ``function``,
    ``start_s``, ``end_s``, ``start_bytes``, ``end_bytes``, ``level``; times relative like ``t``) and
    ``child_samples`` (DataFrame ``child``, ``t``, ``rss``).

    Example::

        frame = read_mprofile("mprofile_20240101120000.dat")
        forecast(frame, "2GiB")
    """
    from .files import read_text

    path = _checks.path(path, "path")
    recording = parse_mprofile(io.StringIO(read_text(path, "path")), path)  # a FIFO or a device is refused
    if not recording.mem:
        raise NotARecordingError(f"{path}: expected at least one 'MEM <MiB> <time>' line, received none")
    stamps = [stamp for _, stamp in recording.mem]
    start = stamps[0]
    frame = pd.DataFrame(
        {
            "t": [stamp - start for stamp in stamps],
            "unix_time_s": stamps,
            "rss": [round(mem * MIB) for mem, _ in recording.mem],
        }
    ).astype({"rss": "float64"})
    for column in ("uss", "pss", "swap", "children"):
        frame[column] = math.nan
    frame = frame[FRAME_COLUMNS]
    frame.attrs.update(
        source="mprof",
        path=path,
        cmdline=recording.cmdline,
        functions=pd.DataFrame(
            [
                (name, s - start, e - start, ms * MIB, me * MIB, level)
                for name, ms, s, me, e, level in recording.functions
            ],
            columns=["function", "start_s", "end_s", "start_bytes", "end_bytes", "level"],
        ),
        child_samples=pd.DataFrame(
            [(child, stamp - start, mem * MIB) for child, mem, stamp in recording.children],
            columns=["child", "t", "rss"],
        ),
    )
    return frame


class MprofWriter:
    """Append samples to an mprof ``.dat`` file, one flushed line each, as ``mprof run`` does.

    Why flush per line: the recording must survive the watcher or the watched process dying.
    """

    def __init__(self, handle: IO[str], cmdline: str | list[str] | None) -> None:
        self._handle = handle
        if cmdline is not None:
            text = cmdline if isinstance(cmdline, str) else shlex.join(map(str, cmdline))
            handle.write(f"CMDLINE {one_line(text)}\n")
            handle.flush()

    def write(self, nbytes: float, unix_time_s: float) -> None:
        """One ``MEM`` line (bytes converted to MiB, mprof's unit)."""
        self._handle.write(f"MEM {nbytes / MIB:.6f} {unix_time_s:.4f}\n")
        self._handle.flush()


def one_line(text: str) -> str:
    """``text`` with line breaks and control characters written as ``\\n``, ``\\xNN``: a command line
    (``python -c "a\\nb"``) must stay on its ``CMDLINE`` line, never start a line of its own."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


@_checks.strict
def write_mprofile(
    frame: pd.DataFrame, path: str | os.PathLike, *, column: str = "rss", cmdline: str | list[str] | None = None
) -> str:
    """Write a watch DataFrame as an mprof ``.dat`` file that ``mprof plot`` can draw; returns the path.

    ``column`` picks the byte column written as ``MEM`` (default ``rss``, what mprof measures).
    Times come from ``unix_time_s`` when present, else from ``t`` (seconds since the start).
    ``cmdline`` (default: the frame's ``attrs["cmdline"]``) is one line of text or a list of
    arguments. The file is replaced only once the new one is whole (a failed save leaves the old
    one and raises :class:`~leakkit.SaveError`).
    """
    from .files import saving

    frame = _checks.frame(frame, "frame", what="a DataFrame from leakkit.watch or leakkit.load")
    if not isinstance(column, str) or column not in frame.columns:
        raise expected(f"a column of the frame ({', '.join(map(str, frame.columns))})", "column", column)
    stamp_column = "unix_time_s" if "unix_time_s" in frame.columns else "t"
    _checks.frame(frame, "frame", columns=[stamp_column], numeric=[column, stamp_column],
                  what="a DataFrame from leakkit.watch or leakkit.load")
    if cmdline is not None:
        if isinstance(cmdline, str):
            _checks.one_line(cmdline, "cmdline")
        elif not (isinstance(cmdline, (list, tuple)) and all(isinstance(a, str) for a in cmdline)):
            raise expected("one line of text or a list of str", "cmdline", cmdline)
    else:
        cmdline = frame.attrs.get("cmdline")
        if not (cmdline is None or isinstance(cmdline, str)
                or (isinstance(cmdline, (list, tuple)) and all(isinstance(a, str) for a in cmdline))):
            cmdline = None  # attrs from elsewhere: not ours to write
    path = _checks.path(path, "path")
    values = frame[column].to_numpy(dtype="float64")
    stamps = frame[stamp_column].to_numpy(dtype="float64")
    with saving(path, "path") as handle:
        writer = MprofWriter(handle, cmdline)
        for nbytes, stamp in zip(values, stamps, strict=True):
            if math.isfinite(nbytes) and math.isfinite(stamp):
                writer.write(float(nbytes), float(stamp))
    return path
