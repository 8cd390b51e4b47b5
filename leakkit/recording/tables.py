"""A trace recording's three tables: their columns, the :class:`Recording` that holds them, and their file.

Why apart from the live :class:`leakkit.recording.recorder.Recorder`: a recording outlives the
process that made it. ``leakkit report`` and notebooks load files written by other processes
(and by older versions), so reading one is a boundary that checks every cell, and writing one
must give a file that plain tools read; neither needs the recorder's memory maps.

The file can be CSV (always) or Parquet (with pyarrow). The CSV is plain (one header, then rows;
``pandas.read_csv`` reads it with its defaults): column ``table`` (calls, checkpoints or
summaries) says which frame a row belongs to, and the other columns are the union of the three
frames'. Recordings written before it begin with a ``# leakkit recording v1`` line; they still
load and take appended rows.

DataFrame columns (bytes are bytes, times are seconds):

``calls``
    ``call`` (0-based), ``function`` (qualname), ``thread`` (thread name), ``start`` (s since the
    recording started), ``duration_s``, ``blocks_delta`` (allocated blocks kept by the call,
    leakkit's own readings subtracted; NaN on the calls whose memory was not read: fast functions
    in a big heap get it read on a sample of calls, see :class:`leakkit.tracing.checkpoints.Checkpoints`),
    ``bytes_delta`` (traced bytes kept, NaN unless tracemalloc
    was on), ``rss_delta``, ``fds_delta`` (NaN unless per-call fds were asked for), ``error``
    (exception type name or None), ``depth`` (0 for an outermost call, 1 for a call made inside
    another traced call, ...).
``checkpoints``
    ``call`` (calls finished when it was taken), ``t`` (s since start), ``blocks``,
    ``traced_bytes`` (NaN unless tracemalloc was on), ``heap_bytes`` (total shallow size of all
    Python objects when a type summary was taken, else NaN), ``rss``, ``uss``, ``pss``, ``swap``,
    ``fds``, ``gc_collections``, ``allocated_bytes`` (bytes held through pymalloc and malloc
    together, :func:`leakkit.probes.malloc.allocated_bytes`, leakkit's own buffers and tracemalloc's
    tables taken out; NaN where the allocators cannot be read, as while tracemalloc's hook hides
    pymalloc's count); read right after a full garbage
    collection.
``summaries``
    ``call``, ``type``, ``count``, ``size`` (bytes): pympler-style type summaries at checkpoints.
"""
from __future__ import annotations

import csv
import io
import math
import os
from typing import Any

import pandas as pd

from .. import _checks
from .._errors import NotARecordingError

CALL_COLUMNS = ["call", "function", "thread", "start", "duration_s", "blocks_delta", "bytes_delta",
                "rss_delta", "fds_delta", "error", "depth"]
CHECKPOINT_COLUMNS = ["call", "t", "blocks", "traced_bytes", "heap_bytes", "rss", "uss", "pss", "swap",
                      "fds", "gc_collections", "allocated_bytes"]
SUMMARY_COLUMNS = ["call", "type", "count", "size"]
FILE_COLUMNS = ["table"] + CALL_COLUMNS + [c for c in CHECKPOINT_COLUMNS if c != "call"] + ["type", "count", "size"]
HEADER = ",".join(FILE_COLUMNS)
MAGIC = "# leakkit recording v1"  # the first line of recordings written before the plain CSV (still read)


class Recording:
    """A loaded (or copied) recording: the same three frames as a live :class:`leakkit.recording.recorder.Recorder`."""

    def __init__(self, calls: pd.DataFrame, checkpoints: pd.DataFrame, summaries: pd.DataFrame) -> None:
        for name, frame, columns in (("calls", calls, CALL_COLUMNS), ("checkpoints", checkpoints, CHECKPOINT_COLUMNS),
                                     ("summaries", summaries, SUMMARY_COLUMNS)):
            _checks.frame(frame, name, columns=[c for c in columns if c not in _ADDED_LATER],
                          what=f"a DataFrame of {name} (columns in leakkit.recording.tables)")
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


def is_recording_header(line: str) -> bool:
    """Whether ``line`` is the header of a leakkit recording (a CSV whose columns start table,call,function)."""
    return line.rstrip("\r\n").split(",")[:3] == FILE_COLUMNS[:3]


def save(rec: Recording, path: str | os.PathLike, *, format: str | None = None) -> str:
    """Write a recording: CSV (one header, one table of all rows: plain readers read it with their
    defaults; ``table`` says which frame a row belongs to) or Parquet.

    The file is replaced only once the new one is whole and on disk
    (:func:`leakkit.recording.files.saving`): a failed save (a full disk) leaves the old file as
    it was and raises :class:`~leakkit.SaveError`.
    """
    from .files import saving

    path = _checks.path(path, "path")
    if format is not None:
        _checks.choice(format.lower() if isinstance(format, str) else format, "format", ("csv", "parquet"))
    fmt = (format or ("parquet" if path.endswith((".parquet", ".pq")) else "csv")).lower()
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError as error:
            raise NotARecordingError("saving as Parquet needs pyarrow; install it or save as .csv") from error
    frame = _combined(rec)
    if fmt == "parquet":
        frame = frame.astype({c: "string" for c in ("function", "thread", "error", "type", "table")})
        with saving(path, "path", binary=True) as handle:
            frame.to_parquet(handle, index=False)
    else:
        with saving(path, "path", newline="") as handle:
            frame.to_csv(handle, index=False)
    return path


@_checks.strict
def load(path: str | os.PathLike) -> Recording:
    """Read a recording saved (or streamed) by leakkit; a truncated last line is dropped.

    Every cell is checked (:class:`~leakkit.NotARecordingError` names the first bad line and
    column); the file must be a regular file of at most 1 GiB (a FIFO or a device is refused, never
    waited on or read without end).
    """
    from .files import read_bytes

    path = _checks.path(path, "path")
    data = read_bytes(path, "path")
    if path.endswith((".parquet", ".pq")):
        try:
            frame = pd.read_parquet(io.BytesIO(data))
        except Exception as error:  # pyarrow raises many types
            raise NotARecordingError(f"{path}: expected a leakkit recording in Parquet, could not read it: {error}") from error
        del data
        _distinct(list(map(str, frame.columns)), path, 1)
        return _tables(frame, path, first_line=1)
    text = data.decode("utf-8", "replace")
    del data
    first, _, rest = text.partition("\n")
    if first.rstrip("\r") == MAGIC:  # written before the plain CSV: the header is next
        first_line, text = 3, rest
        if not text.strip():
            raise NotARecordingError(f"{path}:2: expected the column header line after {MAGIC!r}, received the end of the file")
        header = text.partition("\n")[0]
    elif is_recording_header(first):
        first_line, header = 2, first
    else:
        raise NotARecordingError(
            f"{path}:1: expected a leakkit recording (a CSV header starting {','.join(FILE_COLUMNS[:4])},...), "
            f"received {first.rstrip(chr(13))[:60]!r}")
    _distinct(next(csv.reader([header.rstrip("\r")]), []), path, first_line - 1)
    if text and not text.endswith("\n"):  # the writer died mid-line: keep every finished row
        text = text[: text.rfind("\n") + 1]
    try:
        # only an empty cell is missing: a function named "NA" or "null" stays a name
        frame = pd.read_csv(io.StringIO(text), keep_default_na=False, na_values=[""], low_memory=False,
                            dtype={c: object for c in ("table", "function", "thread", "error", "type")})
    except Exception as error:
        raise NotARecordingError(f"{path}: expected CSV rows after the header line: {error}") from error
    return _tables(frame, path, first_line=first_line)


def _distinct(names: list[str], path: str, line: int) -> None:
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise NotARecordingError(f"{path}:{line}: expected distinct column names, received {', '.join(twice)} "
                                 "more than once")


_TABLES = {"calls": CALL_COLUMNS, "checkpoints": CHECKPOINT_COLUMNS, "summaries": SUMMARY_COLUMNS}
_TEXT = frozenset({"function", "thread", "error", "type", "table"})
_INTEGER = {"call": 0, "depth": 0, "count": 0, "size": 0}  # integer columns and their least value
_NON_NEGATIVE = frozenset({"start", "duration_s", "t", "blocks", "traced_bytes", "heap_bytes", "rss", "uss", "pss",
                           "swap", "fds", "gc_collections", "allocated_bytes"})
_INT64_MAX = 2.0**63  # an integer column's cell at or past it would wrap around in int64
_REQUIRED = frozenset({"call", "depth", "count", "size", "function", "type"})
_ADDED_LATER = ("allocated_bytes",)


def _tables(frame: pd.DataFrame, path: str, *, first_line: int) -> Recording:
    """The three frames of a recording file, every cell checked: a bad one names its line and column."""
    for column in _ADDED_LATER:  # recordings made before the column existed
        if column not in frame.columns:
            frame[column] = math.nan
    missing = [c for c in FILE_COLUMNS if c not in frame.columns]
    if missing:
        raise NotARecordingError(f"{path}: expected the columns {','.join(FILE_COLUMNS)}, missing {', '.join(missing)}")
    frame = frame.reset_index(drop=True)
    table = frame["table"].astype(object)
    unknown = ~table.isin(list(_TABLES))
    if unknown.any():
        row = int(unknown.to_numpy().argmax())
        raise NotARecordingError(f"{path}:{row + first_line}: expected a table name (calls, checkpoints or "
                                 f"summaries) in column 'table', received {_show(table.iloc[row])}")
    parts = {}
    for name, columns in _TABLES.items():
        part = frame[table == name]
        lines = part.index.to_numpy() + first_line
        converted = {column: _checked(part[column], column, lines, path) for column in columns}
        parts[name] = pd.DataFrame(converted).reset_index(drop=True)
    calls = parts["calls"]
    calls["error"] = pd.Series([e if isinstance(e, str) and e else None for e in calls["error"]], dtype=object)
    if len(calls) and int(calls["depth"].max()) > 255:
        row = int(calls["depth"].to_numpy().argmax())
        raise NotARecordingError(f"{path}: expected a depth of at most 255, received {int(calls['depth'].iloc[row])}")
    return Recording(calls, parts["checkpoints"], parts["summaries"])


def _show(value: Any) -> str:
    return "an empty cell" if value is None or (isinstance(value, float) and math.isnan(value)) else repr(str(value)[:40])


def _checked(values: pd.Series, column: str, lines: Any, path: str) -> pd.Series:
    """One column converted to its type; raises NotARecordingError at the first cell that is not."""
    values = values.reset_index(drop=True)
    empty = values.isna() | (values.astype(str) == "") if values.dtype == object else values.isna()
    if column in _TEXT:
        bad = empty if column in _REQUIRED else pd.Series(False, index=values.index)
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise NotARecordingError(f"{path}:{lines[row]}: expected a name in column {column!r}, received an empty cell")
        return pd.Series(["" if e else str(v) for v, e in zip(values, empty, strict=True)], dtype=object)
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    finite = numbers.abs() < float("inf")
    bad = ~empty & ~finite  # text that is not a number, inf, nan spelled out
    least = _INTEGER.get(column, 0 if column in _NON_NEGATIVE else None)
    if least is not None:
        bad |= finite & (numbers < least)
    if column in _INTEGER:
        bad |= finite & ((numbers != numbers.round()) | (numbers.abs() >= _INT64_MAX))
        if column in _REQUIRED:
            bad |= empty
    if bad.any():
        row = int(bad.to_numpy().argmax())
        huge = column in _INTEGER and bool(finite.iloc[row]) and abs(numbers.iloc[row]) >= _INT64_MAX
        what = ("an integer" + (f" >= {least}" if least is not None else "") + (" below 2**63" if huge else "")) \
            if column in _INTEGER else \
            ("a finite number >= 0" if least is not None else "a finite number")
        raise NotARecordingError(f"{path}:{lines[row]}: expected {what} in column {column!r}, "
                                 f"received {_show(values.iloc[row])}")
    return numbers.astype("int64") if column in _INTEGER else numbers
