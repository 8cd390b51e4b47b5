"""The live recording of a trace: columnar, thread-safe, bounded-memory buffers of per-call and per-checkpoint readings.

Why columnar and in memory maps: the recorder runs inside every traced call and its memory is
counted with the user's, so a row must cost a few bytes and no Python object. Per-call rows live
in typed columns, in chunks of memory maps (47 bytes a call, so 1 M calls take ~47 MB), and become
pandas DataFrames on demand; checkpoints and type summaries are float and int arrays. Rows can
stream append-only to a CSV file (:mod:`leakkit.recording.stream`), one flushed line per row, so
a crash loses no finished call. The frames' columns, :class:`leakkit.recording.tables.Recording`
and the file format are in :mod:`leakkit.recording.tables`.
"""
from __future__ import annotations

import math
import os
import threading
from array import array
from collections.abc import Iterable
from typing import Any

import pandas as pd

from .tables import CHECKPOINT_COLUMNS, FILE_COLUMNS, MAGIC, Recording, save

_TYPE_CODES: dict[str, int] = {}
_TYPE_NAMES: list[str] = []
_NAMES_SIZE = [0, 0]  # type names whose sizes are summed, and their bytes
_MISSING = -(2**63)
_MISSING_I = -(2**31)
_CALL_CODES = ("d", "f", "q", "q", "q", "i", "H", "H", "H", "B")  # start ... depth, see Recorder._new_chunk
_CALL_NAMES = ("start", "duration", "blocks", "bytes", "rss", "fds", "function", "thread", "error", "depth")
_ITEMSIZE = {code: array(code).itemsize for code in set(_CALL_CODES)}
# calls per chunk: 1 M first (47 MB of address space, of which only the pages written count in
# RSS), then doubling: the few Python objects a new chunk adds come once in millions of calls
_FIRST_CHUNK, _MAX_CHUNK = 1 << 20, 1 << 26


def _num(value: Any) -> Any:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else value


class Recorder:
    """Holds one recording; safe to append to from several threads at once."""

    def __init__(self, stream: str | os.PathLike | None = None) -> None:
        from .stream import Stream, check_stream_path

        self._lock = threading.Lock()
        self._owner: int | None = None  # the thread inside add_call
        self._pending: list[tuple] = []
        # checked now, when the trace is built: not at its first call, inside the user's code
        self._stream = None if stream is None else Stream(check_stream_path(stream, MAGIC, FILE_COLUMNS),
                                                          MAGIC, FILE_COLUMNS)  # MAGIC: old files append
        self._clear()

    @property
    def stream_path(self) -> str | None:
        """The file rows are streamed to (a sibling when another process holds the one asked for)."""
        return None if self._stream is None else self._stream.path

    @property
    def stream_error(self) -> str | None:
        """Why streaming stopped (a full disk, ...), or None while it works."""
        return None if self._stream is None else self._stream.error

    # -- appending ---------------------------------------------------------------------------
    def _clear(self) -> None:
        self._chunks: list[tuple[Any, tuple]] = []  # full chunks of the call columns: (map, views)
        self._done = 0  # calls in them
        self.own_blocks = 0  # allocated blocks the chunks after the first one hold (see _add_call)
        self._new_chunk(_FIRST_CHUNK)
        self._names: dict[str, int] = {}
        self._name_list: list[str] = []
        self._threads: dict[str, int] = {}
        self._thread_list: list[str] = []
        self._errors: dict[str, int] = {"": 0}
        self._error_list: list[str | None] = [None]
        self._checkpoints: list[array] = [array("d") for _ in CHECKPOINT_COLUMNS]
        self._summaries: list[tuple[int, array, array, array]] = []

    def _new_chunk(self, size: int) -> None:
        """Call columns for ``size`` more calls, in one fresh anonymous memory map.

        Why not growing arrays: reallocating an ever larger array leaves freed blocks that malloc
        keeps, and new chunks from malloc may reuse memory that is already resident, so the
        process's memory moved by more, or less, than the recording holds, and a fast clean
        function traced from many threads read as a native leak. Pages of a fresh map count in
        RSS exactly when a row is first written to them, which :meth:`footprint` reports.
        """
        import mmap

        offsets, total = [], 0
        for code in _CALL_CODES:
            offsets.append(total)
            total += -(-_ITEMSIZE[code] * size // mmap.PAGESIZE) * mmap.PAGESIZE
        # private: a forked child writing its rows must not write into its parent's recording
        flags = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_NORESERVE", 0)
        buffer = mmap.mmap(-1, total, flags=flags) if flags else mmap.mmap(-1, total)
        whole = memoryview(buffer)
        columns = tuple(whole[offset: offset + _ITEMSIZE[code] * size].cast(code)
                        for offset, code in zip(offsets, _CALL_CODES, strict=True))
        whole.release()
        (self._start, self._duration, self._blocks, self._bytes, self._rss, self._fds, self._function,
         self._thread, self._error, self._depth) = columns
        self._current = (buffer, columns)
        self._fill = 0
        self._size = size

    def _rotate(self) -> None:
        """Start the next chunk; count the allocated blocks its few Python objects (the map, its views) hold.

        Counted with the collector paused: a collection inside the window would free other garbage
        and make the count too low.
        """
        import gc
        import sys

        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            before = sys.getallocatedblocks()
            self._chunks.append(self._current)
            self._done += self._size
            self._new_chunk(min(2 * self._size, _MAX_CHUNK))
            self.own_blocks += sys.getallocatedblocks() - before - 1  # 1: the int `before` itself
        finally:
            if paused:
                gc.enable()

    def _column(self, index: int) -> array:
        """One call column, every chunk joined (a copy)."""
        joined = array(_CALL_CODES[index])
        for _, columns in self._chunks:
            joined.frombytes(columns[index].cast("B"))
        joined.frombytes(self._current[1][index][: self._fill].cast("B"))
        return joined

    def column(self, name: str) -> array:
        """A call column by name (start, duration, blocks, bytes, rss, fds), as raw values (a copy)."""
        with self._lock:
            return self._column(_CALL_NAMES.index(name))

    def recent_durations(self, count: int) -> list[float]:
        """The durations of the last ``count`` calls (fewer right after a chunk filled)."""
        with self._lock:
            return self._duration[max(0, self._fill - count): self._fill].tolist()

    @staticmethod
    def _code(table: dict, names: list, name: str) -> int:
        code = table.get(name)
        if code is None:
            code = table[name] = len(names)
            names.append(name)
        return code

    def warm(self, function: str, thread: str) -> None:
        """Learn a function and thread name before the baseline reading, so the first row adds nothing."""
        with self._lock:
            self._code(self._names, self._name_list, function)
            self._code(self._threads, self._thread_list, thread)

    def add_call(self, function: str, thread: str, start: float, duration: float, blocks_delta: int | None,
                 bytes_delta: int | None, rss_delta: int | None, fds_delta: int | None,
                 error: str | None, depth: int) -> None:
        """Append one call's row (and stream it when streaming).

        Re-entered from the same thread (a collection inside our own append finalized a traced
        generator, whose row comes here), the row waits for the outer append: the lock is not
        re-entrant, and the columns must never be half-appended.
        """
        if self._owner == threading.get_ident():
            self._pending.append((function, thread, start, duration, blocks_delta, bytes_delta, rss_delta,
                                  fds_delta, error, depth))
            return
        with self._lock:
            self._owner = threading.get_ident()
            try:
                self._add_call(function, thread, start, duration, blocks_delta, bytes_delta, rss_delta,
                               fds_delta, error, depth)
                while self._pending:
                    self._add_call(*self._pending.pop(0))
            finally:
                self._owner = None

    def _add_call(self, function: str, thread: str, start: float, duration: float, blocks_delta: int | None,
                  bytes_delta: int | None, rss_delta: int | None, fds_delta: int | None,
                  error: str | None, depth: int) -> None:
        i = self._fill
        call = self._done + i
        # written in place: a value out of range (OverflowError) leaves no half-written row behind,
        # as _fill only moves once all ten are in
        self._function[i] = self._code(self._names, self._name_list, function)
        self._thread[i] = self._code(self._threads, self._thread_list, thread)
        self._start[i] = start
        self._duration[i] = duration
        self._blocks[i] = _MISSING if blocks_delta is None else blocks_delta
        self._bytes[i] = _MISSING if bytes_delta is None else bytes_delta
        self._rss[i] = _MISSING if rss_delta is None else rss_delta
        self._fds[i] = _MISSING_I if fds_delta is None else fds_delta
        self._error[i] = 0 if error is None else self._code(self._errors, self._error_list, error)
        self._depth[i] = min(depth, 255)
        self._fill = i + 1
        if self._fill == self._size:
            self._rotate()
        if self._stream is not None and not self._stream.stopped:
            self._stream.write([{"table": "calls", "call": call, "function": function, "thread": thread,
                                 "start": start, "duration_s": duration, "blocks_delta": _num(blocks_delta),
                                 "bytes_delta": _num(bytes_delta), "rss_delta": _num(rss_delta),
                                 "fds_delta": _num(fds_delta), "error": error or "", "depth": depth}], call)

    def add_checkpoint(self, row: dict) -> None:
        """Append one checkpoint row (keys from CHECKPOINT_COLUMNS; None for a probe not read).

        Stored in float arrays, not dicts: a checkpoint must not add Python objects that the next
        checkpoint would count as the user's.
        """
        with self._lock:
            for column, values in zip(CHECKPOINT_COLUMNS, self._checkpoints, strict=False):
                value = row.get(column)
                values.append(math.nan if value is None else float(value))
            if self._stream is not None and not self._stream.stopped:
                cells = {"table": "checkpoints", **{c: _num(row.get(c)) for c in CHECKPOINT_COLUMNS}}
                cells["call"] = int(row["call"])
                self._stream.write([cells], self._done + self._fill)

    def checkpoint_count(self) -> int:
        """Checkpoints so far (without building a DataFrame)."""
        return len(self._checkpoints[0])

    def footprint(self) -> int:
        """Bytes the recorder's own buffers hold: they grow with every call, and are leakkit's, not the calls'."""
        import mmap
        import sys

        page = mmap.PAGESIZE
        with self._lock:
            mapped = sum(len(buffer) for buffer, _ in self._chunks)
            mapped += sum(-(-_ITEMSIZE[code] * self._fill // page) * page for code in _CALL_CODES)
            arrays = list(self._checkpoints)
            for _, codes, counts, sizes in self._summaries:
                arrays.extend((codes, counts, sizes))
        return mapped + sum(map(sys.getsizeof, arrays))

    def _buffers(self) -> list:
        buffers: list = [self._chunks, self._current]
        for chunk in (*self._chunks, self._current):
            buffers.extend((chunk, chunk[0], chunk[1], *chunk[1]))
        buffers.extend(self._checkpoints)
        for _, codes, counts, sizes in self._summaries:
            buffers.extend((codes, counts, sizes))
        return buffers

    def own_heap_bytes(self) -> int:
        """Bytes the recorder's own Python objects hold in the allocators (its memory maps aside):
        the checkpoint and summary arrays, and the process-wide type-name table, whose names are
        summed once each (the table only grows)."""
        import sys

        with self._lock:
            buffers = self._buffers()
        total = sum(map(sys.getsizeof, buffers)) + sys.getsizeof(_TYPE_NAMES) + sys.getsizeof(_TYPE_CODES)
        del buffers
        counted, size = _NAMES_SIZE
        if len(_TYPE_NAMES) > counted:
            size += sum(map(sys.getsizeof, _TYPE_NAMES[counted:]))
            _NAMES_SIZE[:] = [len(_TYPE_NAMES), size]
        return total + size

    def own_objects(self) -> list:
        """The recorder's own buffers (arrays), which type summaries should not count as the user's."""
        with self._lock:
            own = self._buffers()
        # the type-name table is shared by every recorder of the process, and only leakkit refers to it
        own.extend((_TYPE_NAMES, _TYPE_CODES))
        own.extend(_TYPE_NAMES)
        return own

    def learn_types(self, summary: pd.DataFrame) -> int:
        """Add the type names of ``summary`` to the name table without storing it; returns how many were new."""
        before = len(_TYPE_NAMES)
        for name in summary["type"].tolist():
            self._code(_TYPE_CODES, _TYPE_NAMES, name)
        return len(_TYPE_NAMES) - before

    def add_summary(self, call: int, summary: pd.DataFrame) -> None:
        """Append a type summary (columns type, count, size) taken at checkpoint ``call``.

        Kept as three arrays and codes into one type-name table, not as a DataFrame, so that the
        recording itself adds almost nothing to the heap that later summaries count.
        """
        names = summary["type"].tolist()
        codes = array("I", (self._code(_TYPE_CODES, _TYPE_NAMES, name) for name in names))
        counts = array("q", summary["count"].tolist())
        sizes = array("q", summary["size"].tolist())
        with self._lock:
            self._summaries.append((call, codes, counts, sizes))
            if self._stream is not None and not self._stream.stopped:
                self._stream.write([{"table": "summaries", "call": int(call), "type": name, "count": count, "size": size}
                                    for name, count, size in zip(names, counts, sizes, strict=False)],
                                   self._done + self._fill)

    def close(self) -> None:
        """Close the stream file (appending again reopens it); never raises (a full disk loses no row kept in memory)."""
        with self._lock:
            if self._stream is not None:
                self._stream.close()

    def reset(self) -> None:
        """Forget every row (the stream file, if any, keeps what it has, and its call ids go on)."""
        with self._lock:
            if self._stream is not None:
                self._stream.rebase(self._done + self._fill)
            self._clear()

    # -- reading -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._done + self._fill

    @property
    def calls(self) -> pd.DataFrame:
        with self._lock:
            n = self._done + self._fill
            (start, duration, blocks, nbytes, rss, fds, function, thread, error, depth) = (
                self._column(i) for i in range(len(_CALL_CODES)))
            names = pd.Categorical.from_codes(list(function), categories=self._name_list) if n else []
            threads = pd.Categorical.from_codes(list(thread), categories=self._thread_list) if n else []
            frame = pd.DataFrame({
                "call": pd.RangeIndex(n),
                "function": pd.Series(names, dtype=object),
                "thread": pd.Series(threads, dtype=object),
                "start": pd.Series(start, dtype="float64"),
                "duration_s": pd.Series(duration, dtype="float64"),
                "blocks_delta": _with_nan(blocks, _MISSING),
                "bytes_delta": _with_nan(nbytes, _MISSING),
                "rss_delta": _with_nan(rss, _MISSING),
                "fds_delta": _with_nan(fds, _MISSING_I),
                "error": pd.Series([self._error_list[c] for c in error], dtype=object),
                "depth": pd.Series(depth, dtype="int64"),
            })
        return frame

    @property
    def checkpoints(self) -> pd.DataFrame:
        with self._lock:
            frame = pd.DataFrame({c: pd.Series(v, dtype="float64") for c, v in zip(CHECKPOINT_COLUMNS, self._checkpoints, strict=False)})
        return frame.astype({"call": "int64"})

    @property
    def summaries(self) -> pd.DataFrame:
        with self._lock:
            parts = [pd.DataFrame({"call": call, "type": [_TYPE_NAMES[c] for c in codes],
                                   "count": pd.Series(counts, dtype="int64"), "size": pd.Series(sizes, dtype="int64")})
                     for call, codes, counts, sizes in self._summaries]
        if not parts:
            return pd.DataFrame({"call": pd.Series(dtype="int64"), "type": pd.Series(dtype=object),
                                 "count": pd.Series(dtype="int64"), "size": pd.Series(dtype="int64")})
        return pd.concat(parts, ignore_index=True)

    def save(self, path: str | os.PathLike, format: str | None = None) -> str:
        """Write the recording to ``path`` as CSV, or Parquet for a ``.parquet`` path (needs pyarrow).

        Saved over the stream's own file, the stream reopens the new file and appends after it
        (a save replaces the file: the stream must not go on writing into the old one).
        """
        with self._lock:
            calls = len(self)
        path = save(Recording(self.calls, self.checkpoints, self.summaries), path, format=format)
        if self._stream is not None and self._stream.writes_to(path):
            with self._lock:
                self._stream.saved_over(calls)
        return path


def _with_nan(values: Iterable[int], missing: int) -> pd.Series:
    series = pd.Series(values, dtype="float64")
    return series.mask(series == float(missing))

