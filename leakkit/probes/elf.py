"""Where things are in another process: its mapped files (/proc/PID/maps) and their ELF symbols and segments.

Why: leakkit's injector (:mod:`leakkit.frontends.agent.pending`) writes into a running CPython
and must know where that process keeps ``_PyRuntime`` and ``PyRun_SimpleString``, and where a few
bytes nothing uses are (the tail of the last page of a library's data segment, past its ``.bss``).
Read-only: the files are parsed with :mod:`struct`, 64-bit little-endian ELF only (x86-64, arm64).
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass

PAGE = os.sysconf("SC_PAGE_SIZE")
PT_LOAD = 1
PF_W = 2


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    perms: str
    offset: int
    inode: int
    path: str


@dataclass(frozen=True)
class Segment:
    vaddr: int
    memsz: int
    filesz: int
    offset: int
    flags: int


def maps(pid: int) -> list[Mapping]:
    """The memory mappings of ``pid`` (file-backed or not)."""
    out = []
    with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            fields = line.split(maxsplit=5)
            if len(fields) < 5:
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            out.append(Mapping(start, end, fields[1], int(fields[2], 16), int(fields[4]),
                               fields[5].strip() if len(fields) > 5 else ""))
    return out


class Elf:
    """The program headers and symbols of one 64-bit little-endian ELF file."""

    def __init__(self, path: str) -> None:
        self.path = path
        with open(path, "rb") as handle:
            self.data = handle.read()
        ident = self.data[:16]
        if ident[:4] != b"\x7fELF" or ident[4] != 2 or ident[5] != 1:
            raise ValueError(f"{path}: not a 64-bit little-endian ELF file")
        (self.e_type, _machine, _version, _entry, phoff, shoff, _flags, _ehsize, phentsize, phnum, shentsize, shnum,
         _shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", self.data, 16)
        self.segments = []
        for i in range(phnum):
            p_type, p_flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, _align = struct.unpack_from(
                "<IIQQQQQQ", self.data, phoff + i * phentsize)
            if p_type == PT_LOAD:
                self.segments.append(Segment(p_vaddr, p_memsz, p_filesz, p_offset, p_flags))
        self.sections = [struct.unpack_from("<IIQQQQIIQQ", self.data, shoff + i * shentsize) for i in range(shnum)]

    def symbols(self, names: set[str]) -> dict[str, tuple[int, int]]:
        """{name: (value, size)} for the wanted names defined in ``.dynsym`` or ``.symtab``."""
        found: dict[str, tuple[int, int]] = {}
        for _name, sh_type, _flags, _addr, offset, size, link, _info, _align, entsize in self.sections:
            if sh_type not in (2, 11) or not entsize:  # SHT_SYMTAB, SHT_DYNSYM
                continue
            strtab = self.sections[link]
            str_off = strtab[4]
            for j in range(size // entsize):
                st_name, _st_info, _other, shndx, value, st_size = struct.unpack_from("<IBBHQQ", self.data,
                                                                                        offset + j * entsize)
                if not shndx or not value:  # undefined here
                    continue
                end = self.data.index(b"\0", str_off + st_name)
                name = self.data[str_off + st_name:end].decode(errors="replace")
                if name in names and name not in found:
                    found[name] = (value, st_size)
            if len(found) == len(names):
                break
        return found

    def bias(self, mapped: list[Mapping]) -> int | None:
        """Where the file is loaded in a process: its first mapping's start less its first segment's page."""
        first = min((s.vaddr - s.offset for s in self.segments if s.offset == 0), default=None)
        starts = [m.start for m in mapped if m.offset == 0]
        if first is None or not starts:
            return None
        return min(starts) - (first & ~(PAGE - 1))

    def slack(self, bias: int) -> tuple[int, int] | None:
        """(address, length) of the bytes past the end of the last writable segment, to its page's end:
        mapped, zero-filled, and used by nothing (the loader maps whole pages)."""
        writable = [s for s in self.segments if s.flags & PF_W]
        if not writable:
            return None
        last = max(writable, key=lambda s: s.vaddr)
        end = bias + last.vaddr + last.memsz
        start = (end + 15) & ~15
        page_end = (end + PAGE - 1) & ~(PAGE - 1)
        return (start, page_end - start) if page_end > start else None
