"""What ``leakkit attach`` found in a running process, as text, HTML and DataFrames, saved as one file.

Why apart from the measurement (:mod:`leakkit.recording.attach_session`, which runs in the
target and returns plain data): the report is built and written on the client's side, with pandas,
which the target never imports. The file is the session's result as JSON plus how leakkit got in;
:func:`load_attach` reads it back into the same object, so the CLI prints what a notebook loads.

Tables (DataFrames):

- ``types``: ``type``, ``count``, ``size`` (shallow bytes at the second walk), ``count_delta``,
  ``size_delta`` (since the first walk), ``new`` / ``new_size`` (objects the first walk did not
  meet), ``site`` (``file:line`` where most of the sampled new ones were allocated), ``site_share``
  (of ``sampled``), ``traceback`` (that site's commonest stack, most recent call first);
- ``holders``: ``path`` (``module.NAME...``), ``type``, ``old_len``, ``len``, ``entries`` (the
  types of its newest entries);
- ``paths``: ``type``, ``path``: reference paths from a root to sampled new instances.

The result's ``traced_bytes`` (when leakkit started tracemalloc) is what the window allocated and
still held at its end: a small figure says the leaking code hardly ran in the window.
"""
from __future__ import annotations

import datetime
import html
import json
import linecache
import os
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .. import _checks
from .._errors import NotARecordingError
from .._sizes import format_size

KIND = "leakkit attach report"
FORMAT = 1
MAX_REPORT = 256 << 20  # bytes: a report is a few hundred KiB; a bigger file is not one (never read whole)
_TYPE_COLUMNS = ["type", "count", "size", "count_delta", "size_delta", "new", "new_size", "site", "site_share",
                 "sampled", "traceback"]


@dataclass
class AttachReport:
    """The report of one attach: what grew in the window, where it was made, what keeps it.

    ``result`` is the session's plain data (as the agent sent it); ``way_in`` says how leakkit got
    into the process; ``path`` is the file it was saved to (None until saved).
    """

    result: dict[str, Any]
    way_in: str
    target: dict[str, Any] = field(default_factory=dict)
    path: str | None = None

    # -- tables ---------------------------------------------------------------------------
    @property
    def types(self) -> pd.DataFrame:
        rows = [dict(r, traceback=" <- ".join(f"{os.path.basename(f)}:{n}" for f, n in r.get("traceback") or []))
                for r in self.result.get("types", [])]
        return pd.DataFrame(rows, columns=_TYPE_COLUMNS)

    @property
    def holders(self) -> pd.DataFrame:
        rows = [dict(h, entries=", ".join(f"{k} x{v}" for k, v in (h.get("entries") or {}).items()))
                for h in self.result.get("holders", [])]
        return pd.DataFrame(rows, columns=["path", "type", "old_len", "len", "entries"])

    @property
    def paths(self) -> pd.DataFrame:
        return pd.DataFrame([p for p in self.result.get("paths", []) if p.get("path")], columns=["type", "path"])

    @property
    def pid(self) -> int:
        return int(self.result.get("pid", self.target.get("pid", 0)))

    # -- text -----------------------------------------------------------------------------
    def lines(self) -> list[str]:
        r = self.result
        walks = r.get("walks") or [{}, {}]
        command = " ".join(r.get("argv") or [])[:120]
        rss0, rss1 = r.get("rss_before", 0), r.get("rss_after", 0)
        out = [
            f"leakkit attach: pid {self.pid} ({command}), Python {r.get('python')}",
            f"way in: {self.way_in}",
            f"window: {r.get('window_s', 0):.1f} s, ended by {r.get('ended_by')}; heap walks: "
            f"{walks[0].get('objects', 0):,} -> {walks[-1].get('objects', 0):,} objects reachable from the roots"
            + (f"; allocated in it and still alive: {format_size(r['traced_bytes'])}"
               if r.get("traced_bytes") is not None else ""),
            f"process memory (RSS): {format_size(rss0)} before, {format_size(rss1)} after "
            f"({format_size(rss1 - rss0, signed=True)})",
            "",
            "growing types since the first walk:",
        ]
        types = self.types
        if len(types):
            table = types[["type", "count", "count_delta", "size", "size_delta", "new", "site"]].copy()
            table["size"] = [format_size(v) for v in table["size"]]
            table["size_delta"] = [format_size(v, signed=True) for v in table["size_delta"]]
            table["count_delta"] = [f"{v:+,}" for v in table["count_delta"]]
            table["site"] = [_short_site(s) for s in table["site"]]
            out += ["  " + line for line in table.to_string(index=False).splitlines()]
        elif r.get("traced_bytes") is not None:
            out.append(f"  (none: Python allocations made in the window and still alive came to "
                       f"{format_size(r['traced_bytes'])}; the leaking code may not have run meanwhile: attach "
                       "again while the process grows, or give a longer --duration)")
        else:
            out.append("  (none)")
        sited = [row for row in r.get("types", []) if row.get("traceback")]
        if sited:
            out += ["", "where the new ones were allocated (tracemalloc, the commonest stack of those sampled, "
                        "most recent call first):"]
            for row in sited[:5]:
                share = row.get("site_share") or 0
                out.append(f"  {row['type']}: {_short_site(row['site'])} ({share:.0%} of {row.get('sampled', 0)} sampled)")
                for file, line in row["traceback"][:4]:
                    source = _source(file, line, self.pid)
                    out.append(f"      {file}:{line}" + (f"  {source}" if source else ""))
        holders = r.get("holders") or []
        if holders:
            out += ["", "containers that grew (found by name from the modules' globals):"]
            for h in holders[:8]:
                entries = ", ".join(f"{k} x{v}" for k, v in (h.get("entries") or {}).items())
                out.append(f"  {h['path']}: {h['type']} {h['old_len']:,} -> {h['len']:,} entries "
                           f"({h['len'] - h['old_len']:+,}); newest: {entries}")
        out += ["", "what keeps them alive (reference paths from roots):"]
        paths = r.get("paths") or []
        out += [f"  {p['type']}: {p['path']}" if p.get("path") else f"  {p['type']}: ({p.get('note')})" for p in paths] \
            or ["  (no growing type with new instances to search from)"]
        out += ["", *self._footprint()]
        notes = r.get("notes") or []
        if notes:
            out += ["", "notes:", *(f"  - {n}" for n in notes)]
        return out

    def _footprint(self) -> list[str]:
        r = self.result
        tracing = r.get("tracing") or {}
        memory = r.get("memory") or {}
        gil = r.get("gil") or {}
        slowdown = tracing.get("slowdown")
        started = tracing.get("started_by_leakkit")
        lines = [
            "leakkit in the target:",
            f"  tracing: tracemalloc, {tracing.get('frames')} frames, "
            + ("started and stopped by leakkit" if started else "already running (left running)")
            + (f"; small allocations ran {slowdown:.1f}x slower while it traced (measured in the target)"
               if slowdown else ""),
            f"  memory: tracemalloc's own peaked at {format_size(memory.get('tracemalloc_peak', 0))}, the heap "
            f"walks' at {format_size(memory.get('walk_peak', 0))}",
            f"  time: longest stretch of work between two pauses {1000 * (gil.get('longest_cpu_s') or 0):.0f} ms of CPU, "
            f"{1000 * (gil.get('longest_hold_s') or 0):.0f} ms of wall time ({gil.get('longest_hold_in')}); "
            f"{gil.get('pauses', 0):,} pauses"
            + (f"; tracemalloc.stop() {1000 * gil['tracemalloc_stop_s']:.0f} ms" if gil.get("tracemalloc_stop_s") is not None else ""),
            f"  the interpreter's own collections that ran in leakkit's thread (not counted above): "
            f"{gil.get('collections') or 0}"
            + (f", the longest {1000 * gil['longest_collection_s']:.0f} ms of CPU (generation "
               f"{gil.get('longest_collection_generation')})" if gil.get("collections") else ""),
        ]
        mode = (r.get("agent") or {}).get("mode")
        if mode == "once":
            lines.append("  left behind: nothing but imported modules (tracing stopped, the injected agent's thread ended)")
        elif mode:
            lines.append("  left behind: the dormant agent, waiting (tracing stopped)")
        return lines

    def __str__(self) -> str:
        text = "\n".join(self.lines())
        return text + (f"\nreport saved to {self.path}" if self.path else "")

    def _repr_html_(self) -> str:
        head = "<br>".join(html.escape(line) for line in self.lines()[:4])
        parts = [f"<p>{head}</p>", "<b>growing types</b>", self.types.drop(columns=["traceback"]).to_html(index=False)]
        if len(self.holders):
            parts += ["<b>containers that grew</b>", self.holders.to_html(index=False)]
        parts += ["<b>what keeps them alive</b>", self.paths.to_html(index=False),
                  "<pre>" + html.escape("\n".join(self._footprint())) + "</pre>"]
        return "<div>" + "".join(parts) + "</div>"

    # -- file -----------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"kind": KIND, "format": FORMAT, "way_in": self.way_in, "target": self.target, "result": self.result}

    @_checks.strict
    def save(self, path: str | os.PathLike) -> str:
        """Write the report (JSON, mode 0600: it names the program's types and keys); returns the path."""
        return save_report(self, path)


def save_report(report: AttachReport, path: Any, *, picked: bool = False) -> str:
    """Save whole or not at all (a full disk leaves the old file, or none, never half a report).

    ``picked``: leakkit chose the name (:func:`default_name`, in a directory others may write), so a
    link planted there is replaced, never followed.
    """
    from ..recording.files import saving

    path = _checks.path(path, "path")
    with saving(path, "path", mode=0o600, picked=picked) as handle:
        json.dump(report.to_json(), handle, indent=1, default=str)
    report.path = path
    return path


def default_name(pid: int, directory: str | os.PathLike | None = None) -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join(os.fspath(directory or "."), f"leakkit-attach-{pid}-{stamp}.json")


@_checks.strict
def load_attach(path: str | os.PathLike) -> AttachReport:
    """Read a report ``leakkit attach`` saved (its text, HTML and tables come back as they were)."""
    from ..recording.files import read_text

    path = _checks.path(path, "path")
    text = read_text(path, "path", limit=MAX_REPORT)  # a FIFO, a device, a directory: refused, never waited on
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise NotARecordingError(f"path: expected an attach report (JSON), received {path!r}: {error}") from None
    if not isinstance(data, dict) or data.get("kind") != KIND or not isinstance(data.get("result"), dict):
        raise NotARecordingError(f"path: expected a {KIND} file, received {path!r}, which is not one")
    return AttachReport(result=data["result"], way_in=str(data.get("way_in", "")), target=data.get("target") or {},
                        path=path)


def _short_site(site: Any) -> str:
    if not isinstance(site, str):
        return "-"
    file, _, line = site.rpartition(":")
    return f"{os.path.basename(file)}:{line}"


def _source(file: str, line: int, pid: int) -> str:
    """The source line, read here (not in the target: its linecache would keep the file)."""
    for candidate in (file, f"/proc/{pid}/root{file}"):
        text = linecache.getline(candidate, line).strip()
        if text:
            return text[:100]
    return ""
