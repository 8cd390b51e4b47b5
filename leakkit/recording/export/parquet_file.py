"""A small Parquet file encoder in plain Python: flat tables of int64, double and string columns.

Why not pyarrow: the fleet writer runs inside production workers, beside the monitor, where its
cost must stay under 1 MiB of RSS; ``import pyarrow.parquet`` alone adds ~50 MiB (it imports
numpy). A fleet recording is a simple table (one row per sample, a dozen numeric columns and a
few short strings), and Parquet for that is a few dozen lines: PLAIN-encoded values packed by
:mod:`array` (C speed), definition levels as run-length runs, one data page per column, one row
group per file, GZIP (zlib's gzip stream) or no compression, the footer in Thrift's compact
protocol. Every column is OPTIONAL (a missing reading is a null), strings are UTF8, and each
column chunk carries min/max statistics and its null count, so DuckDB, pyarrow and Spark skip
files and row groups a time filter rules out. The tests read what this writes with pyarrow and
DuckDB; Spark reads it too (docs/fleet.md).

Format: https://github.com/apache/parquet-format (``parquet.thrift``); field numbers below are
those of that file.
"""
from __future__ import annotations

import struct
import sys
import zlib
from array import array
from collections.abc import Sequence

MAGIC = b"PAR1"
INT64, DOUBLE, STRING = "int64", "double", "string"
_TYPE = {INT64: 2, DOUBLE: 5, STRING: 6}  # parquet Type: INT64, DOUBLE, BYTE_ARRAY
_CODEC = {"none": 0, "gzip": 2}           # CompressionCodec: UNCOMPRESSED, GZIP
_PLAIN, _RLE = 0, 3                        # Encoding
_OPTIONAL = 1                              # FieldRepetitionType
_UTF8 = 0                                  # ConvertedType
# Thrift compact protocol type codes
_T_TRUE, _T_I32, _T_I64, _T_BINARY, _T_LIST, _T_STRUCT = 1, 5, 6, 8, 9, 12
#: The null stored in an int64 column's buffer (a reading that is missing); doubles use NaN.
INT64_NULL = -(2 ** 63)


class Column:
    """One column to encode: ``values`` is an ``array('q')`` (``INT64_NULL`` = null), an
    ``array('d')`` (NaN = null), a memoryview of either, or a list of ``str | None``; ``nulls``: how many are null, when the
    caller counted them (0 spares a scan of the values). A plain class, not a dataclass: making a
    dataclass compiles its methods at import, and that transient costs a worker ~0.6 MiB of RSS."""

    __slots__ = ("name", "kind", "values", "nulls")

    def __init__(self, name: str, kind: str, values: array | Sequence[str | None], nulls: int | None = None) -> None:
        self.name, self.kind, self.values, self.nulls = name, kind, values, nulls


# -- Thrift compact protocol ------------------------------------------------------------------
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _zigzag(value: int) -> bytes:
    return _varint((value << 1) ^ (value >> 63))


def _value(kind: int, value: object) -> bytes:
    if kind in (_T_I32, _T_I64):
        return _zigzag(value)  # type: ignore[arg-type]
    if kind == _T_BINARY:
        data = value.encode() if isinstance(value, str) else bytes(value)  # type: ignore[arg-type]
        return _varint(len(data)) + data
    if kind == _T_STRUCT:
        return _struct(value)  # type: ignore[arg-type]
    if kind == _T_LIST:
        element, items = value  # type: ignore[misc]
        head = bytes([(len(items) << 4) | element]) if len(items) < 15 else bytes([0xF0 | element]) + _varint(len(items))
        return head + b"".join(_value(element, item) for item in items)
    raise ValueError(f"thrift type {kind}")


def _struct(fields: Sequence[tuple[int, int, object]]) -> bytes:
    """A compact-protocol struct from ``(field id, type, value)`` in ascending id order."""
    out = bytearray()
    last = 0
    for field, kind, value in fields:
        if value is None:
            continue
        delta = field - last
        out += bytes([(delta << 4) | kind]) if 0 < delta <= 15 else bytes([kind]) + _zigzag(field)
        if kind != _T_TRUE:  # a true boolean is its type code, nothing follows
            out += _value(kind, value)
        last = field
    out.append(0)  # STOP
    return bytes(out)


# -- one column chunk -------------------------------------------------------------------------
class _AllPresent:
    """Presence flags of a column without nulls, without a list of them."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n



def _levels(present: Sequence[bool]) -> bytes:
    """Definition levels (bit width 1) as RLE runs, with the 4-byte length a v1 data page wants."""
    if isinstance(present, _AllPresent) or all(present):
        runs = _varint(len(present) << 1) + b"\x01" if present else b""
        return struct.pack("<i", len(runs)) + runs
    runs = bytearray()
    start = 0
    n = len(present)
    while start < n:
        end = start + 1
        while end < n and present[end] == present[start]:
            end += 1
        runs += _varint((end - start) << 1) + bytes([1 if present[start] else 0])
        start = end
    return struct.pack("<i", len(runs)) + runs


def _little(values: array | memoryview) -> bytes:
    if sys.byteorder != "little":  # pragma: no cover - every Linux leakkit runs on is little-endian
        values = array(values.typecode if isinstance(values, array) else values.format, values)
        values.byteswap()
    return values.tobytes()


def _encode_values(column: Column) -> tuple[bytes, list[bool], bytes | None, bytes | None]:
    """PLAIN bytes of the non-null values, the presence flags, and min/max as PLAIN bytes."""
    values = column.values
    if column.nulls == 0 and column.kind != STRING:
        present = _AllPresent(len(values))
        if not len(values):
            return b"", present, None, None
        code = "<q" if column.kind == INT64 else "<d"
        return _little(values), present, struct.pack(code, min(values)), struct.pack(code, max(values))  # type: ignore[arg-type]
    if column.kind == STRING:
        # a recording's strings repeat (verdict, role, version): each distinct one is encoded
        # once and joined by reference, so a column costs its result, not a bytes object a row
        distinct = {v: v.encode() for v in set(values) if v is not None}  # type: ignore[union-attr]
        plain = {v: struct.pack("<i", len(b)) + b for v, b in distinct.items()}
        present = [v is not None for v in values]
        data = b"".join([plain[v] for v in values if v is not None])
        kept = list(distinct.values())
        return data, present, (min(kept) if kept else None), (max(kept) if kept else None)
    if column.kind == INT64:
        present = [v != INT64_NULL for v in values]
        kept = array("q", [v for v in values if v != INT64_NULL]) if not all(present) else values
        code = "<q"
    else:
        present = [v == v for v in values]  # NaN != NaN
        kept = array("d", [v for v in values if v == v]) if not all(present) else values
        code = "<d"
    if not len(kept):
        return b"", present, None, None
    return _little(kept), present, struct.pack(code, min(kept)), struct.pack(code, max(kept))  # type: ignore[arg-type]


def _compress(data: bytes, codec: str) -> bytes:
    if codec == "none":
        return data
    # a gzip stream (wbits 16 + window), as Parquet's GZIP is; a 4 KiB window and memLevel 3
    # keep zlib's state at ~20 KiB instead of ~260 KiB (what a worker's malloc would keep after)
    packer = zlib.compressobj(6, zlib.DEFLATED, 16 + 12, 3)
    return packer.compress(data) + packer.flush()


def _chunk(column: Column, offset: int, codec: str, rows: int) -> tuple[bytes, list]:
    """The bytes of one column chunk (page header + page) and its ColumnChunk struct fields."""
    data, present, low, high = _encode_values(column)
    page = _levels(present) + data
    packed = _compress(page, codec)
    nulls = 0 if isinstance(present, _AllPresent) else rows - sum(present)
    stats = [(3, _T_I64, nulls), (5, _T_BINARY, high), (6, _T_BINARY, low)]
    header = _struct([(1, _T_I32, 0), (2, _T_I32, len(page)), (3, _T_I32, len(packed)),
                      (5, _T_STRUCT, [(1, _T_I32, rows), (2, _T_I32, _PLAIN), (3, _T_I32, _RLE),
                                      (4, _T_I32, _RLE), (5, _T_STRUCT, stats)])])
    meta = [(1, _T_I32, _TYPE[column.kind]), (2, _T_LIST, (_T_I32, [_PLAIN, _RLE])),
            (3, _T_LIST, (_T_BINARY, [column.name])), (4, _T_I32, _CODEC[codec]), (5, _T_I64, rows),
            (6, _T_I64, len(header) + len(page)), (7, _T_I64, len(header) + len(packed)),
            (9, _T_I64, offset), (12, _T_STRUCT, stats)]
    return header + packed, [(2, _T_I64, offset), (3, _T_STRUCT, meta)]


def _schema(columns: Sequence[Column]) -> list:
    schema: list = [[(4, _T_BINARY, "schema"), (5, _T_I32, len(columns))]]
    for column in columns:
        element = [(1, _T_I32, _TYPE[column.kind]), (3, _T_I32, _OPTIONAL), (4, _T_BINARY, column.name)]
        if column.kind == STRING:
            element += [(6, _T_I32, _UTF8), (10, _T_STRUCT, [(1, _T_STRUCT, [])])]  # LogicalType STRING
        schema.append(element)
    return schema


def write_table(handle, columns: Sequence[Column], *, compression: str = "gzip",
                metadata: dict[str, str] | None = None, created_by: str = "leakkit") -> int:
    """Write one Parquet file (one row group) of ``columns`` to the binary file ``handle``; returns
    the bytes written. Columns are encoded one at a time, so the transient memory is one column's."""
    if compression not in _CODEC:
        raise ValueError(f"compression: expected one of {sorted(_CODEC)}, received {compression!r}")
    rows = len(columns[0].values) if columns else 0
    if any(len(c.values) != rows for c in columns):
        raise ValueError("every column must have the same number of rows")
    handle.write(MAGIC)
    offset = len(MAGIC)
    chunks, uncompressed = [], 0
    for column in columns:
        body, fields = _chunk(column, offset, compression, rows)
        handle.write(body)
        meta = dict((f, v) for f, _k, v in fields[1][2])
        uncompressed += meta[6]
        chunks.append(fields)
        offset += len(body)
    group = [(1, _T_LIST, (_T_STRUCT, chunks)), (2, _T_I64, uncompressed), (3, _T_I64, rows),
             (5, _T_I64, len(MAGIC)), (6, _T_I64, offset - len(MAGIC))]
    pairs = [[(1, _T_BINARY, k), (2, _T_BINARY, v)] for k, v in (metadata or {}).items()]
    footer = _struct([(1, _T_I32, 1), (2, _T_LIST, (_T_STRUCT, _schema(columns))), (3, _T_I64, rows),
                      (4, _T_LIST, (_T_STRUCT, [group])), (5, _T_LIST, (_T_STRUCT, pairs) if pairs else None),
                      (6, _T_BINARY, created_by),
                      (7, _T_LIST, (_T_STRUCT, [[(1, _T_STRUCT, [])] for _ in columns]))])  # TypeDefinedOrder
    handle.write(footer + struct.pack("<i", len(footer)) + MAGIC)
    return offset + len(footer) + 8
