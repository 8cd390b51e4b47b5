"""Columnar, thread-safe, bounded-memory recording of per-call and per-checkpoint readings.

Per-call rows live in ``array`` buffers (47 bytes a call, so 1 M calls take ~47 MB) and become
pandas DataFrames on demand. A recording can stream append-only to a CSV file, one flushed line per
row, so a crash loses no finished call; it can be saved as CSV (always) or Parquet (with pyarrow)
and loaded back.

DataFrame columns (bytes are bytes, times are seconds):

``calls``
    ``call`` (0-based), ``function`` (qualname), ``thread`` (thread name), ``start`` (s since the
    recording started), ``duration_s``, ``blocks_delta`` (allocated blocks kept by the call,
    leakkit's own readings subtracted; NaN on the calls whose memory was not read: fast functions
    in a big heap get it read on a sample of calls, see :meth:`leakkit.tracing.Trace._adapt`),
    ``bytes_delta`` (traced bytes kept, NaN unless tracemalloc
    was on), ``rss_delta``, ``fds_delta`` (NaN unless per-call fds were asked for), ``error``
    (exception type name or None), ``depth`` (0 for an outermost call, 1 for a call made inside
    another traced call, ...).
``checkpoints``
    ``call`` (calls finished when it was taken), ``t`` (s since start), ``blocks``,
    ``traced_bytes`` (NaN unless tracemalloc was on), ``heap_bytes`` (total shallow size of all
    Python objects when a type summary was taken, else NaN), ``rss``, ``uss``, ``pss``, ``swap``,
    ``fds``, ``gc_collections``, ``allocated_bytes`` (bytes held through pymalloc and malloc
    together, :func:`leakkit._malloc.allocated_bytes`, leakkit's own buffers and tracemalloc's
    tables taken out; NaN where the allocators cannot be read); read right after a full garbage
    collection.
``summaries``
    ``call``, ``type``, ``count``, ``size`` (bytes): pympler-style type summaries at checkpoints.
"""
from __future__ import annotations

import csv
import io
import math
import os
import threading
from array import array
from collections.abc import Iterable
from typing import Any

import pandas as pd

from ._errors import NotARecordingError, expected

CALL_COLUMNS = ["call", "function", "thread", "start", "duration_s", "blocks_delta", "bytes_delta",
                "rss_delta", "fds_delta", "error", "depth"]
CHECKPOINT_COLUMNS = ["call", "t", "blocks", "traced_bytes", "heap_bytes", "rss", "uss", "pss", "swap",
                      "fds", "gc_collections", "allocated_bytes"]
SUMMARY_COLUMNS = ["call", "type", "count", "size"]
FILE_COLUMNS = ["table"] + CALL_COLUMNS + [c for c in CHECKPOINT_COLUMNS if c != "call"] + ["type", "count", "size"]
MAGIC = "# leakkit recording v1"
_TYPE_CODES: dict[str, int] = {}
_TYPE_NAMES: list[str] = []
_MISSING = -(2**63)
_MISSING_I = -(2**31)


def _num(value: Any) -> Any:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else value


class Recorder:
    """Holds one recording; safe to append to from several threads at once."""

    def __init__(self, stream: str | os.PathLike | None = None) -> None:
        self._lock = threading.Lock()
        self._stream_path = None if stream is None else os.fspath(stream)
        self._stream: io.TextIOBase | None = None
        self._writer: Any = None
        self._clear()

    # -- appending ---------------------------------------------------------------------------
    def _clear(self) -> None:
        self._start = array("d")
        self._duration = array("f")
        self._blocks = array("q")
        self._bytes = array("q")
        self._rss = array("q")
        self._fds = array("i")
        self._function = array("H")
        self._thread = array("H")
        self._error = array("H")
        self._depth = array("B")
        self._names: dict[str, int] = {}
        self._name_list: list[str] = []
        self._threads: dict[str, int] = {}
        self._thread_list: list[str] = []
        self._errors: dict[str, int] = {"": 0}
        self._error_list: list[str | None] = [None]
        self._checkpoints: list[array] = [array("d") for _ in CHECKPOINT_COLUMNS]
        self._summaries: list[tuple[int, array, array, array]] = []

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
        """Append one call's row (and stream it when streaming)."""
        with self._lock:
            call = len(self._start)
            self._function.append(self._code(self._names, self._name_list, function))
            self._thread.append(self._code(self._threads, self._thread_list, thread))
            self._start.append(start)
            self._duration.append(duration)
            self._blocks.append(_MISSING if blocks_delta is None else blocks_delta)
            self._bytes.append(_MISSING if bytes_delta is None else bytes_delta)
            self._rss.append(_MISSING if rss_delta is None else rss_delta)
            self._fds.append(_MISSING_I if fds_delta is None else fds_delta)
            self._error.append(0 if error is None else self._code(self._errors, self._error_list, error))
            self._depth.append(min(depth, 255))
            if self._stream_path is not None:
                self._write({"table": "calls", "call": call, "function": function, "thread": thread,
                             "start": start, "duration_s": duration, "blocks_delta": _num(blocks_delta),
                             "bytes_delta": _num(bytes_delta), "rss_delta": _num(rss_delta),
                             "fds_delta": _num(fds_delta), "error": error or "", "depth": depth})

    def add_checkpoint(self, row: dict) -> None:
        """Append one checkpoint row (keys from CHECKPOINT_COLUMNS; None for a probe not read).

        Stored in float arrays, not dicts: a checkpoint must not add Python objects that the next
        checkpoint would count as the user's.
        """
        with self._lock:
            for column, values in zip(CHECKPOINT_COLUMNS, self._checkpoints, strict=False):
                value = row.get(column)
                values.append(math.nan if value is None else float(value))
            if self._stream_path is not None:
                self._write({"table": "checkpoints", **{c: _num(row.get(c)) for c in CHECKPOINT_COLUMNS}})

    def own_objects(self) -> list:
        """The recorder's own buffers (arrays), which type summaries should not count as the user's."""
        with self._lock:
            own = [self._start, self._duration, self._blocks, self._bytes, self._rss, self._fds,
                   self._function, self._thread, self._error, self._depth, *self._checkpoints]
            for _, codes, counts, sizes in self._summaries:
                own.extend((codes, counts, sizes))
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
            if self._stream_path is not None:
                for name, count, size in zip(names, counts, sizes, strict=False):
                    self._write({"table": "summaries", "call": call, "type": name, "count": count, "size": size})

    def _write(self, row: dict) -> None:
        if self._writer is None:
            new = not os.path.exists(self._stream_path) or os.path.getsize(self._stream_path) == 0
            self._stream = open(self._stream_path, "a", newline="", encoding="utf-8")  # noqa: SIM115
            if new:
                self._stream.write(MAGIC + "\n")
            self._writer = csv.DictWriter(self._stream, FILE_COLUMNS, extrasaction="ignore")
            if new:
                self._writer.writeheader()
        self._writer.writerow(row)
        self._stream.flush()

    def close(self) -> None:
        """Close the stream file (appending again reopens it)."""
        with self._lock:
            if self._stream is not None:
                self._stream.close()
            self._stream = None
            self._writer = None

    def reset(self) -> None:
        """Forget every row (the stream file, if any, keeps what it has)."""
        with self._lock:
            self._clear()

    # -- reading -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._start)

    @property
    def calls(self) -> pd.DataFrame:
        with self._lock:
            n = len(self._start)
            names = pd.Categorical.from_codes(list(self._function), categories=self._name_list) if n else []
            threads = pd.Categorical.from_codes(list(self._thread), categories=self._thread_list) if n else []
            frame = pd.DataFrame({
                "call": pd.RangeIndex(n),
                "function": pd.Series(names, dtype=object),
                "thread": pd.Series(threads, dtype=object),
                "start": pd.Series(self._start, dtype="float64"),
                "duration_s": pd.Series(self._duration, dtype="float64"),
                "blocks_delta": _with_nan(self._blocks, _MISSING),
                "bytes_delta": _with_nan(self._bytes, _MISSING),
                "rss_delta": _with_nan(self._rss, _MISSING),
                "fds_delta": _with_nan(self._fds, _MISSING_I),
                "error": pd.Series([self._error_list[c] for c in self._error], dtype=object),
                "depth": pd.Series(self._depth, dtype="int64"),
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
        """Write the recording to ``path`` as CSV, or Parquet for a ``.parquet`` path (needs pyarrow)."""
        return save(Recording(self.calls, self.checkpoints, self.summaries), path, format=format)


def _with_nan(values: Iterable[int], missing: int) -> pd.Series:
    series = pd.Series(values, dtype="float64")
    return series.mask(series == float(missing))


class Recording:
    """A loaded (or copied) recording: the same three frames as a live :class:`Recorder`."""

    def __init__(self, calls: pd.DataFrame, checkpoints: pd.DataFrame, summaries: pd.DataFrame) -> None:
        self.calls = calls
        self.checkpoints = checkpoints
        self.summaries = summaries

    def __repr__(self) -> str:
        return (f"<Recording {len(self.calls)} calls, {len(self.checkpoints)} checkpoints, "
                f"{self.summaries['call'].nunique() if len(self.summaries) else 0} summaries>")


def _combined(rec: Recording) -> pd.DataFrame:
    parts = [rec.calls.assign(table="calls"),
             rec.checkpoints.assign(table="checkpoints"),
             rec.summaries.assign(table="summaries")]
    frame = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else \
        pd.DataFrame(columns=FILE_COLUMNS)
    for column in FILE_COLUMNS:
        if column not in frame:
            frame[column] = None
    return frame[FILE_COLUMNS]


def save(rec: Recording, path: str | os.PathLike, *, format: str | None = None) -> str:
    """Write a recording: CSV (a magic first line, then one table of all rows) or Parquet."""
    path = os.fspath(path)
    fmt = (format or ("parquet" if path.endswith((".parquet", ".pq")) else "csv")).lower()
    frame = _combined(rec)
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError as error:
            raise NotARecordingError("saving as Parquet needs pyarrow; install it or save as .csv") from error
        frame = frame.astype({c: "string" for c in ("function", "thread", "error", "type", "table")})
        frame.to_parquet(path, index=False)
    elif fmt == "csv":
        with open(path, "w", newline="", encoding="utf-8") as handle:
            handle.write(MAGIC + "\n")
            frame.to_csv(handle, index=False)
    else:
        raise expected("'csv' or 'parquet'", "format", format)
    return path


def load(path: str | os.PathLike) -> Recording:
    """Read a recording saved (or streamed) by leakkit; a truncated last line is dropped."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise NotARecordingError(f"expected a leakkit recording file, received a path that does not exist: {path}")
    if path.endswith((".parquet", ".pq")):
        try:
            frame = pd.read_parquet(path)
        except Exception as error:  # pyarrow raises many types
            raise NotARecordingError(f"{path}: expected a leakkit recording in Parquet, could not read it: {error}") from error
    else:
        with open(path, encoding="utf-8", errors="replace") as handle:
            first = handle.readline().rstrip("\n")
            if first != MAGIC:
                raise NotARecordingError(
                    f"{path}:1: expected a leakkit recording starting with {MAGIC!r}, received {first[:60]!r}")
            text = handle.read()
        if text and not text.endswith("\n"):  # the writer died mid-line: keep every finished row
            text = text[: text.rfind("\n") + 1]
        try:
            frame = pd.read_csv(io.StringIO(text), keep_default_na=True, low_memory=False,
                                dtype={c: object for c in ("table", "function", "thread", "error", "type")})
        except Exception as error:
            raise NotARecordingError(f"{path}: expected CSV rows after the header line: {error}") from error
    missing = [c for c in ("table", "call") if c not in frame.columns]
    if missing:
        raise NotARecordingError(f"{path}: expected columns {FILE_COLUMNS}, missing {missing}")
    calls = frame[frame["table"] == "calls"][CALL_COLUMNS].reset_index(drop=True)
    calls["error"] = pd.Series([e if isinstance(e, str) and e else None for e in calls["error"]], dtype=object)
    for column in ("function", "thread"):
        calls[column] = pd.Series([str(v) for v in calls[column]], dtype=object)
    for column in ("depth", "call"):
        calls[column] = pd.to_numeric(calls[column]).fillna(0).astype("int64")
    for column in ("start", "duration_s", "blocks_delta", "bytes_delta", "rss_delta", "fds_delta"):
        calls[column] = pd.to_numeric(calls[column], errors="coerce").astype("float64")
    for column in FILE_COLUMNS:  # recordings made before a column existed
        if column not in frame.columns:
            frame[column] = math.nan
    checkpoints = frame[frame["table"] == "checkpoints"][CHECKPOINT_COLUMNS].reset_index(drop=True)
    for column in CHECKPOINT_COLUMNS:
        checkpoints[column] = pd.to_numeric(checkpoints[column], errors="coerce").astype("float64")
    checkpoints["call"] = checkpoints["call"].astype("int64")
    summaries = frame[frame["table"] == "summaries"][SUMMARY_COLUMNS].reset_index(drop=True)
    summaries = summaries.astype({"call": "int64", "count": "int64", "size": "int64"})
    summaries["type"] = pd.Series([str(v) for v in summaries["type"]], dtype=object)
    return Recording(calls, checkpoints, summaries)
