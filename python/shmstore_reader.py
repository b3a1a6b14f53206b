#!/usr/bin/env python3
"""Read shmstore objects (System V shared memory) from Python.

A reader written from FORMAT.md alone, with the standard library only
(``ctypes`` for ``shmget``, ``shmat``, ``shmdt`` and ``shmctl``): it finds
an object by key, by segment id or by name, attaches it read-only
(``SHM_RDONLY``: it never writes a byte of the segment), validates the
header as FORMAT.md says and keeps the layout it validated, reads a cell's
value with the ring-of-slots seqlock, copies a region's current archive,
and decodes the common rkyv 0.8 types of such an archive from a schema
(FORMAT.md, "Region archives").

It runs on Linux x86-64 only; see "Why x86-64 only" below.

Command line (JSON on stdout; exit status 0 ok, 1 error, 2 usage)::

    shmstore_reader.py info   TARGET
    shmstore_reader.py cell   TARGET [--struct FORMAT] [--reads N]
    shmstore_reader.py region TARGET [--schema JSON|@FILE] [--reads N]
    shmstore_reader.py decode --schema JSON|@FILE [--hex] < ARCHIVE

A TARGET is a segment id (decimal, as ``ipcs -m`` prints it, or ``id:N``),
a key (``0x...`` in hex, or ``key:N`` in decimal), or an object's name
(``acme/config``, or ``name:TEXT`` for a name that looks like a number).

As a module::

    import shmstore_reader as sr
    with sr.ShmObject.open("acme/counters") as obj:
        version, (hits, misses) = obj.read_cell("<QQ")
    schema = sr.parse_schema([["id", "u64"], ["name", "str"], ["ports", "vec<u32>"]])
    with sr.ShmObject.open("0x2a01beef") as obj:
        version, config = obj.read_region(schema)
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import json
import math
import os
import platform
import re
import struct
import sys
import time
import unicodedata
from dataclasses import dataclass
from typing import Any, Optional

__all__ = [
    "ShmObject",
    "Layout",
    "SegmentInfo",
    "parse_schema",
    "decode_archive",
    "name_keys",
    "check_host",
    "ReaderError",
    "UsageError",
    "UnsupportedHost",
    "NotFound",
    "PermissionDenied",
    "ForeignOwner",
    "NotShmstore",
    "IncompatibleFormat",
    "AbiMismatch",
    "Corrupt",
    "InitTimeout",
    "CreatorDied",
    "WrongKind",
    "TypeMismatch",
    "NothingPublished",
    "Starved",
    "UnsupportedArchive",
    "DecodeError",
    "OsFailure",
    "Closed",
]

# ---------------------------------------------------------------------------
# The format (FORMAT.md, version 4)

MAGIC = 0x65726F74736D6873  # the bytes "shmstore", little-endian
FORMAT_VERSION = 4
HEADER_SIZE = 512
KIND_CELL = 1
KIND_REGION = 2
KIND_NAMES = {KIND_CELL: "cell", KIND_REGION: "region"}
STATE_FRESH = 0
STATE_INITIALIZING = 1
STATE_READY = 2
TYPE_NAME_MAX = 128
NAME_MAX = 128
MAX_SLOTS = 64
MAX_ALIGN = 4096
NAME_PROBES = 8
REGION_CONTROL_SIZE = 9280
PIN_SLOTS = 128
# rkyv's format word of a region (`type_extra`): rkyv 0.8 with its default
# features, little-endian (1 << 16), archived usize of 4 bytes (4 << 8),
# archived u32 aligned to 4 (4).
RKYV_FORMAT = 0x72010404

# Header offsets (FORMAT.md, "Header").
OFF_MAGIC = 0
OFF_FORMAT_VERSION = 8
OFF_KIND = 12
OFF_STATE = 16
OFF_HEADER_SIZE = 20
OFF_CREATOR_PID = 24
OFF_ABI_ARCH = 28
OFF_ABI_POINTER_WIDTH = 32
OFF_ABI_LIBC = 36
OFF_ABI_MUTEX_SIZE = 40
OFF_VALUE_SIZE = 44
OFF_VALUE_ALIGN = 48
OFF_SCHEMA_VERSION = 52
OFF_TYPE_HASH = 56
OFF_TYPE_EXTRA = 64
OFF_TYPE_NAME_LEN = 72
OFF_SLOT_COUNT = 76
OFF_DATA_OFFSET = 80
OFF_SLOT_STRIDE = 88
OFF_USED_LEN = 96
OFF_CREATOR_START = 104
OFF_NAME_LEN = 112
OFF_TYPE_NAME = 128
OFF_SEQ = 256
OFF_NOTIFY = 264
OFF_RECOVERIES = 272
OFF_WRITING = 280
OFF_NAME = 384

# A region's control block, from offset 512 (FORMAT.md, "Region data").
CTL_CURRENT = 0
CTL_PIN_HIGH = 8
CTL_BUFFERS = 64  # + 16 * i: len (u64), version (u64)
CTL_PINS = 1088  # + 64 * p: word (u64), start_time (u64)

M64 = (1 << 64) - 1

# Linux System V IPC (<sys/ipc.h>, <sys/shm.h>).
IPC_STAT = 2
SHM_RDONLY = 0o10000

# ---------------------------------------------------------------------------
# Errors. Each says what is wrong; `kind` is a stable word for scripts.


class ReaderError(Exception):
    """A failure to find, validate, read or decode an object."""

    kind = "error"
    exit_status = 1

    def __init__(self, message: str, field: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def to_json(self) -> dict:
        out = {"error": self.kind, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        return out


class UsageError(ReaderError):
    """A bad argument: a target, a name, a struct format or a schema."""

    kind = "usage"
    exit_status = 2


class UnsupportedHost(ReaderError):
    """Not Linux x86-64."""

    kind = "unsupported_host"
    exit_status = 2


class NotFound(ReaderError):
    kind = "not_found"


class PermissionDenied(ReaderError):
    kind = "permission_denied"


class ForeignOwner(ReaderError):
    kind = "foreign_owner"


class NotShmstore(ReaderError):
    kind = "not_shmstore"


class IncompatibleFormat(ReaderError):
    kind = "incompatible_format"


class AbiMismatch(ReaderError):
    kind = "abi_mismatch"


class Corrupt(ReaderError):
    kind = "corrupt"


class InitTimeout(ReaderError):
    kind = "init_timeout"


class CreatorDied(ReaderError):
    kind = "creator_died"


class WrongKind(ReaderError):
    kind = "wrong_kind"


class TypeMismatch(ReaderError):
    kind = "type_mismatch"


class NothingPublished(ReaderError):
    kind = "nothing_published"


class Starved(ReaderError):
    kind = "starved"


class UnsupportedArchive(ReaderError):
    kind = "unsupported_archive"


class DecodeError(ReaderError):
    kind = "decode"


class OsFailure(ReaderError):
    kind = "os"


class Closed(ReaderError):
    kind = "closed"


# ---------------------------------------------------------------------------
# Why x86-64 only, and how the shared words are read.
#
# Other processes write the header's changing words (`seq`, `writing`, a
# region's `current` and buffer lengths) and the data slots while this
# process reads them. FORMAT.md's reading protocols need (1) each aligned
# 8-byte word to be read by one load, so that it is never half old and half
# new, (2) acquire ordering on the loads of `seq` and `current`, and an
# acquire fence between the copy of a slot and the second look at
# `writing`, `seq` or `current`, so that the copy is not served later than
# those loads.
#
# (1) Every word is read with `ctypes.c_uint64.from_address(addr).value`
# (or an element of a `c_uint64` array made with `from_address`), whose C
# getter is `memcpy(&val, ptr, 8)` into a local: compilers turn that into a
# single 8-byte `mov` (checked in the CPython 3.11 builds this was tested
# with: `Q_get` is `mov (%rdi),%rdi`), and an aligned 8-byte load is
# single-copy atomic on x86-64. Slicing a `c_uint64` array (`arr[:]`)
# reads its elements one after the other through that same getter, in
# increasing order; only `c_char` and `c_wchar` arrays are sliced with a
# bulk `memcpy`, which may use string moves whose loads the processor may
# perform out of order, so they are never used on changing bytes.
#
# (2) x86-64 (TSO) never reorders a load with an older load: every plain
# load is an acquire load, and an acquire fence needs no instruction. The
# compiler cannot reorder the loads either: each is made by a separate call
# into ctypes from the interpreter loop. So reading the words one by one,
# in the protocol's order, is reading them as the protocol says.
#
# Elsewhere (aarch64, POWER, RISC-V) loads may be reordered with each other
# and Python has no way to issue the fences or load-acquire instructions the
# protocol needs, so a copy could mix two versions and pass the check: this
# reader refuses to run there rather than return torn values.


def check_host() -> None:
    """Raise UnsupportedHost unless this is Linux on x86-64 with a 64-bit
    Python."""
    system = platform.system()
    machine = platform.machine()
    bits = struct.calcsize("P") * 8
    if system == "Linux" and machine.lower() in ("x86_64", "amd64") and bits == 64:
        return
    raise UnsupportedHost(
        f"this reader runs on Linux x86-64 with a 64-bit Python only; this is "
        f"{system or 'an unknown system'} on {machine or 'an unknown machine'} "
        f"with a {bits}-bit Python. It reads the segment's shared words with plain "
        f"loads through ctypes: only x86-64 keeps loads in program order (so every "
        f"load acts as an acquire load) and makes each aligned 8-byte load a single "
        f"one; elsewhere Python cannot order its loads as the reading protocol "
        f"requires, and it could return torn values"
    )


def _u64(addr: int) -> int:
    return ctypes.c_uint64.from_address(addr).value


def _u32(addr: int) -> int:
    return ctypes.c_uint32.from_address(addr).value


def _i32(addr: int) -> int:
    return ctypes.c_int32.from_address(addr).value


def _words(addr: int, count: int) -> list:
    """`count` aligned 8-byte words from `addr`, each by one load, in order."""
    if count == 0:
        return []
    return (ctypes.c_uint64 * count).from_address(addr)[:]


def _pack_words(words: list, length: int) -> bytes:
    return struct.pack(f"<{len(words)}Q", *words)[:length]


# ---------------------------------------------------------------------------
# The C library.


class _IpcPerm(ctypes.Structure):
    _fields_ = [
        ("key", ctypes.c_int32),
        ("uid", ctypes.c_uint32),
        ("gid", ctypes.c_uint32),
        ("cuid", ctypes.c_uint32),
        ("cgid", ctypes.c_uint32),
        ("mode", ctypes.c_uint16),
        ("_pad1", ctypes.c_uint16),
        ("seq", ctypes.c_uint16),
        ("_pad2", ctypes.c_uint16),
        ("_reserved1", ctypes.c_uint64),
        ("_reserved2", ctypes.c_uint64),
    ]


class _ShmidDs(ctypes.Structure):
    _fields_ = [
        ("perm", _IpcPerm),
        ("segsz", ctypes.c_size_t),
        ("atime", ctypes.c_int64),
        ("dtime", ctypes.c_int64),
        ("ctime", ctypes.c_int64),
        ("cpid", ctypes.c_int32),
        ("lpid", ctypes.c_int32),
        ("nattch", ctypes.c_uint64),
        ("_reserved4", ctypes.c_uint64),
        ("_reserved5", ctypes.c_uint64),
    ]


_LIBC = None


def _libc():
    global _LIBC
    if _LIBC is None:
        check_host()
        if ctypes.sizeof(_ShmidDs) != 112 or _ShmidDs.segsz.offset != 48:
            raise UnsupportedHost("struct shmid_ds is not the x86-64 Linux one")
        lib = ctypes.CDLL(None, use_errno=True)
        lib.shmget.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_int]
        lib.shmget.restype = ctypes.c_int
        lib.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
        lib.shmat.restype = ctypes.c_void_p
        lib.shmdt.argtypes = [ctypes.c_void_p]
        lib.shmdt.restype = ctypes.c_int
        lib.shmctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_ShmidDs)]
        lib.shmctl.restype = ctypes.c_int
        _LIBC = lib
    return _LIBC


def _host_abi() -> tuple:
    """(arch, pointer width, libc, mutex size) as shmstore built for this
    host would write them."""
    try:
        libc_name = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        libc_name = ""
    if libc_name.startswith("glibc"):
        libc = 1
    elif os.path.exists("/lib/ld-musl-x86_64.so.1"):
        libc = 2
    else:
        libc = 0
    return (1, 64, libc, 40)


def _abi_text(abi: tuple) -> str:
    arch = {1: "x86_64", 2: "aarch64", 3: "riscv64", 4: "x86", 5: "arm"}.get(abi[0], "unknown arch")
    libc = {1: "glibc", 2: "musl"}.get(abi[2], "unknown libc")
    return f"{arch}, {abi[1]}-bit, {libc}, {abi[3]}-byte pthread mutex"


def _key_text(key: int) -> str:
    return f"{key & 0xFFFFFFFF:#010x}"


def _signed_key(key: int) -> int:
    if not -(1 << 31) <= key < (1 << 32):
        raise UsageError(f"key {key} does not fit in 32 bits")
    return key - (1 << 32) if key >= (1 << 31) else key


@dataclass(frozen=True)
class SegmentInfo:
    """What `shmctl(IPC_STAT)` says of a segment."""

    id: int
    key: int
    size: int
    mode: int
    uid: int
    gid: int
    cuid: int
    cgid: int
    cpid: int
    lpid: int
    nattch: int
    ctime: int

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "key": _key_text(self.key),
            "bytes": self.size,
            "mode": f"{self.mode & 0o777:04o}",
            "uid": self.uid,
            "gid": self.gid,
            "cuid": self.cuid,
            "cgid": self.cgid,
            "cpid": self.cpid,
            "lpid": self.lpid,
            "nattch": self.nattch,
            "ctime": self.ctime,
        }


def _segment_stat(shmid: int, what: str) -> SegmentInfo:
    ds = _ShmidDs()
    if _libc().shmctl(shmid, IPC_STAT, ctypes.byref(ds)) < 0:
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.EIDRM):
            raise NotFound(f"no segment has id {shmid}" + ("" if what == f"id {shmid}" else f" ({what})"))
        if err in (errno.EACCES, errno.EPERM):
            raise PermissionDenied(f"may not read segment {shmid} ({what}): {os.strerror(err)}")
        raise OsFailure(f"shmctl(IPC_STAT) on segment {shmid} ({what}): {os.strerror(err)}")
    p = ds.perm
    return SegmentInfo(
        id=shmid,
        key=p.key & 0xFFFFFFFF,
        size=ds.segsz,
        mode=p.mode,
        uid=p.uid,
        gid=p.gid,
        cuid=p.cuid,
        cgid=p.cgid,
        cpid=ds.cpid,
        lpid=ds.lpid,
        nattch=ds.nattch,
        ctime=ds.ctime,
    )


def _shmget(key: int) -> int:
    """The id of the segment at `key` (no create, no access asked)."""
    shmid = _libc().shmget(_signed_key(key), 0, 0)
    if shmid < 0:
        err = ctypes.get_errno()
        if err == errno.ENOENT:
            raise NotFound(f"no segment has key {_key_text(key)}")
        if err in (errno.EACCES, errno.EPERM):
            raise PermissionDenied(f"may not open the segment at key {_key_text(key)}: {os.strerror(err)}")
        raise OsFailure(f"shmget({_key_text(key)}): {os.strerror(err)}")
    return shmid


def _user_in_group(uid: int, gid: int) -> bool:
    import pwd

    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return False
    if entry.pw_gid == gid:
        return True
    try:
        return gid in os.getgrouplist(entry.pw_name, entry.pw_gid)
    except OSError:
        return False


@dataclass(frozen=True)
class OpenOptions:
    """How to open: how long to wait for a creator, which owners to trust,
    and how long a read may retry."""

    wait: float = 5.0
    allow_foreign_owner: bool = False
    trust_group: Optional[int] = None
    timeout: float = 10.0


def _check_owner(info: SegmentInfo, opts: OpenOptions, what: str) -> None:
    """Refuse a segment owned or created by a user other than this one or
    root (as shmstore does unless told otherwise): another user could have
    put anything at a known key."""
    if opts.allow_foreign_owner:
        return
    euid = os.geteuid()
    g = opts.trust_group

    def in_group(uid: int) -> bool:
        return (
            g is not None
            and info.gid == g
            and ((uid == info.cuid and info.cgid == g) or _user_in_group(uid, g))
        )

    def trusted(uid: int) -> bool:
        return uid == euid or uid == 0 or in_group(uid)

    if not trusted(info.uid) or not trusted(info.cuid):
        raise ForeignOwner(
            f"segment {info.id} ({what}) belongs to uid {info.uid} (created by uid {info.cuid}, "
            f"group {info.gid}), not to this user (uid {euid}) or root: pass --allow-foreign-owner "
            f"to read it anyway, or --trust-group GID for a group's object"
        )


class _Attachment:
    """A read-only attachment of a segment, with what IPC_STAT said of it."""

    def __init__(self, shmid: int, what: str, opts: OpenOptions):
        self.addr = None
        self.info = _segment_stat(shmid, what)
        _check_owner(self.info, opts, what)
        addr = _libc().shmat(shmid, None, SHM_RDONLY)
        if addr is None or addr == M64:
            err = ctypes.get_errno()
            if err in (errno.EACCES, errno.EPERM):
                raise PermissionDenied(
                    f"may not attach segment {shmid} ({what}) read-only: {os.strerror(err)}"
                )
            if err in (errno.EINVAL, errno.EIDRM):
                raise NotFound(f"segment {shmid} ({what}) is gone")
            raise OsFailure(f"shmat of segment {shmid} ({what}): {os.strerror(err)}")
        self.addr = addr
        self.size = self.info.size

    def close(self) -> None:
        if self.addr is not None:
            _libc().shmdt(self.addr)
            self.addr = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


# ---------------------------------------------------------------------------
# Processes: is a segment's creator alive (FORMAT.md, "Creation").


def _stat_fields(pid: int, path: Optional[str] = None) -> Optional[list]:
    try:
        with open(path or f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    cut = text.rfind(")")
    return text[cut + 1 :].split() if cut >= 0 else None


def _is_zombie(pid: int) -> bool:
    def dead(fields):
        return bool(fields) and fields[0] in ("Z", "X")

    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return dead(_stat_fields(pid))
    return all(dead(_stat_fields(pid, f"/proc/{pid}/task/{t}/stat")) for t in tasks)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OSError:
        return False
    return not _is_zombie(pid)


def _start_time(pid: int) -> Optional[int]:
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


def _started_at(pid: int) -> Optional[float]:
    ticks = _start_time(pid)
    if ticks is None:
        return None
    try:
        with open("/proc/stat") as f:
            btime = next(int(l.split()[1]) for l in f if l.startswith("btime "))
        hz = os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, ValueError):
        return None
    return btime + ticks / hz if hz > 0 else None


def _uids(pid: int) -> Optional[list]:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Uid:"):
                    return [int(u) for u in line.split()[1:]]
    except (OSError, ValueError):
        return None
    return None


def _creator_alive(addr: int, info: SegmentInfo) -> bool:
    """Whether the process that creates the segment still runs: by its pid
    and start time once the header names it, else by the kernel's creator
    pid, start time and user (FORMAT.md, "Creation")."""
    named = _u64(addr + OFF_MAGIC) == MAGIC and _i32(addr + OFF_CREATOR_PID) == info.cpid
    start = _u64(addr + OFF_CREATOR_START)
    if named and start != 0:
        return _alive(info.cpid) and _start_time(info.cpid) in (None, start)
    if not _alive(info.cpid):
        return False
    started = _started_at(info.cpid)
    if started is not None and info.ctime > 0 and started > info.ctime + 2:
        return False
    uids = _uids(info.cpid)
    return uids is None or info.cuid in uids


# ---------------------------------------------------------------------------
# Names (FORMAT.md, "Names").


def check_name(name: str) -> bytes:
    """The name's bytes, or UsageError if it cannot be a name."""
    raw = name.encode("utf-8", "surrogatepass")
    if not raw:
        raise UsageError("a name has at least one byte")
    if len(raw) > NAME_MAX:
        raise UsageError(f"a name has at most {NAME_MAX} bytes; this one has {len(raw)}")
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise UsageError("a name has no control character")
    return raw


def name_key(name: bytes, i: int) -> int:
    """Key `i` of a name's sequence: 32-bit FNV-1a over "shmstore:", the
    name and the byte `i`, with the top bit set."""
    h = 0x811C9DC5
    for b in b"shmstore:" + name + bytes([i]):
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h | 0x80000000


def name_keys(name: str) -> list:
    """The 8 keys a named object may be at, in the order they are tried."""
    raw = check_name(name)
    return [name_key(raw, i) for i in range(NAME_PROBES)]


# ---------------------------------------------------------------------------
# The header, validated once.


@dataclass(frozen=True)
class Layout:
    """What a validated header declares. Kept: the layout fields are never
    read from the segment again."""

    kind: int
    value_size: int
    value_align: int
    schema_version: int
    type_hash: int
    type_extra: int
    type_name: str
    type_name_len: int
    name: Optional[str]
    slot_count: int
    data_offset: int
    slot_stride: int
    used_len: int
    creator_pid: int
    abi: tuple

    @property
    def kind_name(self) -> str:
        return KIND_NAMES[self.kind]

    def fingerprint(self, type_name: bytes) -> int:
        """The type fingerprint these fields give (FORMAT.md, "Type
        fingerprint")."""
        h = 0xCBF29CE484222325
        data = (
            struct.pack("<IQ", self.kind, len(type_name))
            + type_name
            + struct.pack("<IIIQ", self.value_size, self.value_align, self.schema_version, self.type_extra)
        )
        for b in data:
            h = ((h ^ b) * 0x100000001B3) & M64
        return h


def _corrupt(message: str, field: str) -> Corrupt:
    return Corrupt(f"the segment is corrupt: {message}", field=field)


def _validate(addr: int, segment_len: int) -> tuple:
    """Check the header at `addr` of a segment of `segment_len` bytes as
    FORMAT.md says; return the layout and the raw type name. Every field is
    read once."""
    if segment_len < HEADER_SIZE:
        raise NotShmstore(f"{segment_len} bytes, fewer than a shmstore header ({HEADER_SIZE})")
    state = _u32(addr + OFF_STATE)
    magic = _u64(addr + OFF_MAGIC)
    if magic != MAGIC:
        raise NotShmstore(f"magic {magic:#018x} is not shmstore's")
    version = _u32(addr + OFF_FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise IncompatibleFormat(
            f"format version {version}; this reader reads version {FORMAT_VERSION}", field="format_version"
        )
    if state != STATE_READY:
        raise _corrupt(f"state {state} is not READY ({STATE_READY})", "state")
    kind = _u32(addr + OFF_KIND)
    if kind not in KIND_NAMES:
        raise _corrupt(f"unknown kind {kind}", "kind")
    header_size = _u32(addr + OFF_HEADER_SIZE)
    if header_size != HEADER_SIZE:
        raise _corrupt(f"header size {header_size}, expected {HEADER_SIZE}", "header_size")
    abi = (
        _u32(addr + OFF_ABI_ARCH),
        _u32(addr + OFF_ABI_POINTER_WIDTH),
        _u32(addr + OFF_ABI_LIBC),
        _u32(addr + OFF_ABI_MUTEX_SIZE),
    )
    host = _host_abi()
    if abi != host:
        raise AbiMismatch(
            f"the segment was made for {_abi_text(abi)}; this host is {_abi_text(host)}", field="abi"
        )
    value_size = _u32(addr + OFF_VALUE_SIZE)
    value_align = _u32(addr + OFF_VALUE_ALIGN)
    schema_version = _u32(addr + OFF_SCHEMA_VERSION)
    type_hash = _u64(addr + OFF_TYPE_HASH)
    type_extra = _u64(addr + OFF_TYPE_EXTRA)
    type_name_len = _u32(addr + OFF_TYPE_NAME_LEN)
    if type_name_len > TYPE_NAME_MAX:
        raise _corrupt(f"type name length {type_name_len} > {TYPE_NAME_MAX}", "type_name_len")
    name_len = _u32(addr + OFF_NAME_LEN)
    if name_len > NAME_MAX:
        raise _corrupt(f"name length {name_len} > {NAME_MAX}", "name_len")
    if value_align == 0 or value_align & (value_align - 1) or value_align > MAX_ALIGN:
        raise _corrupt(f"value alignment {value_align}", "value_align")
    count = _u32(addr + OFF_SLOT_COUNT)
    if not 2 <= count <= MAX_SLOTS:
        raise _corrupt(f"{count} slots (2 to {MAX_SLOTS} allowed)", "slot_count")
    if kind == KIND_CELL and count & (count - 1):
        raise _corrupt(f"{count} slots in a cell (a power of two is required)", "slot_count")
    data_offset = _u64(addr + OFF_DATA_OFFSET)
    stride = _u64(addr + OFF_SLOT_STRIDE)
    prefix = HEADER_SIZE + (REGION_CONTROL_SIZE if kind == KIND_REGION else 0)
    # A cell's slots are read as 8-byte words; a region's buffers start on
    # cache lines and at the root's alignment.
    unit = max(value_align, 64 if kind == KIND_REGION else 8)
    if data_offset < prefix or data_offset % unit:
        raise _corrupt(
            f"data at {data_offset}: it must be at least {prefix} and a multiple of {unit}",
            "data_offset",
        )
    stride_unit = unit if kind == KIND_REGION else 8
    if stride == 0 or stride % stride_unit or value_size > stride:
        raise _corrupt(
            f"slot stride {stride} for values of {value_size} bytes "
            f"(a nonzero multiple of {stride_unit}, at least the value size)",
            "slot_stride",
        )
    needed = data_offset + count * stride
    used = _u64(addr + OFF_USED_LEN)
    if needed != used or needed > segment_len:
        raise _corrupt(
            f"{count} slots of {stride} bytes from {data_offset} need {needed} bytes; "
            f"header says {used}, segment has {segment_len}",
            "used_len",
        )
    type_name = ctypes.string_at(addr + OFF_TYPE_NAME, type_name_len)
    name = ctypes.string_at(addr + OFF_NAME, name_len) if name_len else None
    layout = Layout(
        kind=kind,
        value_size=value_size,
        value_align=value_align,
        schema_version=schema_version,
        type_hash=type_hash,
        type_extra=type_extra,
        type_name=type_name.decode("utf-8", "backslashreplace"),
        type_name_len=type_name_len,
        name=name.decode("utf-8", "backslashreplace") if name is not None else None,
        slot_count=count,
        data_offset=data_offset,
        slot_stride=stride,
        used_len=used,
        creator_pid=_i32(addr + OFF_CREATOR_PID),
        abi=abi,
    )
    return layout, type_name


def _wait_ready(att: _Attachment, wait: float, what: str) -> None:
    """Wait while a live creator is initialising the segment (FORMAT.md,
    "Creation"); return at once for anything that is not being made by
    shmstore, which validation then describes."""
    if att.size < HEADER_SIZE:
        return
    addr = att.addr
    start = time.monotonic()
    pause = 0.0005
    while True:
        state = _u32(addr + OFF_STATE)
        magic = _u64(addr + OFF_MAGIC)
        if state == STATE_READY:
            return
        if state not in (STATE_FRESH, STATE_INITIALIZING) or magic not in (0, MAGIC):
            return
        if not _creator_alive(addr, att.info) and _u32(addr + OFF_STATE) != STATE_READY:
            raise CreatorDied(
                f"segment {att.info.id} ({what}) will never be ready: its creator (pid {att.info.cpid}) "
                f"died before it finished (state {state})"
            )
        waited = time.monotonic() - start
        if waited >= wait:
            raise InitTimeout(
                f"segment {att.info.id} ({what}) is still being initialised (state {state}) by pid "
                f"{att.info.cpid} after {waited:.3f} s"
            )
        time.sleep(min(pause, max(wait - waited, 0)))
        pause = min(pause * 2, 0.05)


# ---------------------------------------------------------------------------
# Objects.


class Versioned(tuple):
    """(version, value) of a read, with the number of times the read was
    retried because writers overwrote what it was copying."""

    retries: int

    def __new__(cls, version, value, retries):
        self = super().__new__(cls, (version, value))
        self.retries = retries
        return self


class ShmObject:
    """A shmstore object, attached read-only, its header validated."""

    def __init__(self, att: _Attachment, what: str, opts: OpenOptions):
        self._att = att
        self.what = what
        self.options = opts
        _wait_ready(att, opts.wait, what)
        self.layout, self._type_name_raw = _validate(att.addr, att.size)
        addr = att.addr
        self._seq = ctypes.c_uint64.from_address(addr + OFF_SEQ)
        self._writing = ctypes.c_uint64.from_address(addr + OFF_WRITING)
        lay = self.layout
        if lay.kind == KIND_CELL:
            words = (lay.value_size + 7) // 8
            self._slots = [
                _WordArray(addr + lay.data_offset + i * lay.slot_stride, words) for i in range(lay.slot_count)
            ]
        else:
            self._current = ctypes.c_uint64.from_address(addr + HEADER_SIZE + CTL_CURRENT)

    # -- finding

    @classmethod
    def open(cls, target, opts: Optional[OpenOptions] = None) -> "ShmObject":
        """Open a TARGET as the command line takes it: an id (`123`,
        `id:123`), a key (`0x2a01beef`, `key:704757487`) or a name
        (`acme/config`, `name:2024`)."""
        opts = opts or OpenOptions()
        kind, value = parse_target(target)
        if kind == "id":
            return cls.by_id(value, opts)
        if kind == "key":
            return cls.by_key(value, opts)
        return cls.by_name(value, opts)

    @classmethod
    def by_id(cls, shmid: int, opts: Optional[OpenOptions] = None) -> "ShmObject":
        opts = opts or OpenOptions()
        what = f"id {shmid}"
        try:
            att = _Attachment(shmid, what, opts)
        except NotFound as e:
            try:
                at_key = _shmget(shmid) if 0 < shmid < (1 << 32) else None
            except ReaderError:
                at_key = None
            if at_key is None:
                raise
            raise NotFound(
                f"{e.message}; the segment with key {_key_text(shmid)} ({shmid} in decimal) has id "
                f"{at_key}: give keys in hex with 0x, or as key:{shmid}"
            )
        return cls._from(att, what, opts)

    @classmethod
    def by_key(cls, key: int, opts: Optional[OpenOptions] = None) -> "ShmObject":
        opts = opts or OpenOptions()
        if key & 0xFFFFFFFF == 0:
            raise UsageError("key 0 is IPC_PRIVATE, which names no segment: give the segment's id")
        what = f"key {_key_text(key)}"
        return cls._from(_Attachment(_shmget(key), what, opts), what, opts)

    @classmethod
    def by_name(cls, name: str, opts: Optional[OpenOptions] = None) -> "ShmObject":
        """The object named `name`: the first key of the name's sequence
        whose segment holds it, checked on the attachment then used."""
        opts = opts or OpenOptions()
        raw = check_name(name)
        keys = [name_key(raw, i) for i in range(NAME_PROBES)]
        shown = json.dumps(name)
        for key in keys:
            att = _holds(key, raw, opts, shown)
            if att is not None:
                return cls._from(att, f"name {shown} at key {_key_text(key)}", opts)
        raise NotFound(f"no object is named {shown} (keys tried: {', '.join(_key_text(k) for k in keys)})")

    @classmethod
    def _from(cls, att: _Attachment, what: str, opts: OpenOptions) -> "ShmObject":
        try:
            return cls(att, what, opts)
        except BaseException:
            att.close()
            raise

    def close(self) -> None:
        self._att.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def id(self) -> int:
        return self._att.info.id

    @property
    def segment(self) -> SegmentInfo:
        return self._att.info

    # -- reading

    def _check_open(self) -> None:
        # The word objects point into the attachment: after shmdt, reading
        # them would fault.
        if self._att.addr is None:
            raise Closed(f"{self.what}: the object was closed")

    def version(self) -> int:
        """The current version: a cell's `seq`, a region's `current >> 8`."""
        self._check_open()
        if self.layout.kind == KIND_CELL:
            return self._seq.value
        return self._current.value >> 8

    def read_cell(self, fmt: Optional[str] = None) -> Versioned:
        """The cell's current value and its version: the value's bytes, or
        the tuple `struct.unpack(fmt, bytes)` if `fmt` is given (its size must
        be the stored value's size). Never torn: FORMAT.md's "Reading"
        protocol, retried while writers lap this reader."""
        self._check_open()
        lay = self.layout
        if lay.kind != KIND_CELL:
            raise WrongKind(f"{self.what} holds a region (SharedRegion), not a cell: read it with `region`")
        unpack = None
        if fmt is not None:
            unpack = _struct_for(fmt, lay)
        n = lay.slot_count
        mask = n - 1
        seq = self._seq
        writing = self._writing
        slots = self._slots
        retries = 0
        deadline = None
        while True:
            # FORMAT.md, "Reading": acquire load of seq, the slot's words one
            # by one, acquire fence (no instruction on x86-64), then the two
            # tests. Each `.value` and each array element is one load.
            s1 = seq.value
            words = slots[s1 & mask].load()
            if (writing.value - s1) & M64 < n or seq.value == s1:
                break
            retries += 1
            deadline = self._back_off(retries, deadline, "cell value")
        data = _pack_words(words, lay.value_size)
        return Versioned(s1, unpack(data) if unpack else data, retries)

    def copy_region(self) -> Versioned:
        """The region's current archive, copied: (version, bytes).
        FORMAT.md, "Reading without writing"."""
        self._check_open()
        lay = self.layout
        if lay.kind != KIND_REGION:
            raise WrongKind(f"{self.what} holds a cell (SharedCell), not a region: read it with `cell`")
        ctl = self._att.addr + HEADER_SIZE
        base = self._att.addr + lay.data_offset
        current = self._current
        retries = 0
        deadline = None
        while True:
            cur = current.value
            version, buf = cur >> 8, cur & 0xFF
            if version == 0:
                raise NothingPublished(f"{self.what}: nothing has been published yet (version 0)")
            if buf >= lay.slot_count:
                raise _corrupt(f"current buffer {buf} of {lay.slot_count}", "current")
            length = _u64(ctl + CTL_BUFFERS + 16 * buf)
            if length > lay.slot_stride:
                raise _corrupt(
                    f"archive of {length} bytes in a buffer of {lay.slot_stride}", f"buffers[{buf}].len"
                )
            words = _words(base + buf * lay.slot_stride, (length + 7) // 8)
            # Acquire fence: no instruction on x86-64.
            if current.value == cur:
                break
            retries += 1
            deadline = self._back_off(retries, deadline, "region archive")
        return Versioned(version, _pack_words(words, length), retries)

    def read_region(self, schema) -> Versioned:
        """The region's current value decoded with `schema` (see
        `parse_schema`): (version, value)."""
        root = schema if isinstance(schema, _T) else parse_schema(schema)
        lay = self.layout
        if lay.kind != KIND_REGION:
            raise WrongKind(f"{self.what} holds a cell (SharedCell), not a region: read it with `cell`")
        if lay.type_extra != RKYV_FORMAT:
            raise UnsupportedArchive(
                f"the region's archives are in rkyv format {lay.type_extra:#x}; this decoder reads "
                f"{RKYV_FORMAT:#x} (rkyv 0.8, little-endian, 32-bit offsets and lengths, aligned)",
                field="type_extra",
            )
        if (root.size, root.align) != (lay.value_size, lay.value_align):
            raise TypeMismatch(
                f"the schema's root ({root.describe()}) is {root.size} bytes aligned to {root.align}; "
                f"the region holds {lay.type_name!r}, whose archived root is {lay.value_size} bytes "
                f"aligned to {lay.value_align}"
            )
        copy = self.copy_region()
        return Versioned(copy[0], decode_archive(copy[1], root), copy.retries)

    def check_type(
        self,
        type_name: Optional[str] = None,
        schema_version: Optional[int] = None,
        size: Optional[int] = None,
    ) -> None:
        """Raise TypeMismatch unless the object holds what the caller
        expects: values (a region: archived roots) of `size` bytes, of the
        type named `type_name` (the fingerprint of that name with the
        header's other fields must be the stored one, as shmstore checks),
        at `schema_version`."""
        lay = self.layout
        problems = []
        if size is not None and size != lay.value_size:
            problems.append(f"{size} bytes were expected")
        if schema_version is not None and schema_version != lay.schema_version:
            problems.append(f"schema version {schema_version} was expected")
        if type_name is not None:
            raw = type_name.encode("utf-8")
            if lay.fingerprint(raw) != lay.type_hash:
                problems.append(f"the type {type_name!r} was expected")
        if problems:
            raise TypeMismatch(
                f"{self.what} holds {lay.type_name!r} ({lay.kind_name}, {lay.value_size} bytes, "
                f"align {lay.value_align}, schema {lay.schema_version}); " + "; ".join(problems)
            )

    def _back_off(self, retries: int, deadline: Optional[float], what: str) -> Optional[float]:
        """Between two tries of a read: spin a little, then yield the
        processor; fail once the read has been retried for the timeout."""
        if retries < 16:
            return deadline
        now = time.monotonic()
        if deadline is None:
            return now + self.options.timeout
        if now >= deadline:
            raise Starved(
                f"{self.what}: every copy of the {what} was overwritten while it was taken "
                f"({retries} tries in {self.options.timeout} s): the writers commit faster than this "
                f"reader copies; give the object more slots, or retry"
            )
        os.sched_yield()
        return deadline

    # -- description

    def info(self) -> dict:
        """What the header, the kernel and the shared words say now."""
        self._check_open()
        lay = self.layout
        addr = self._att.addr
        if lay.type_name_len < TYPE_NAME_MAX - 3:
            fp = "ok" if lay.fingerprint(self._type_name_raw) == lay.type_hash else "mismatch"
        else:
            fp = "unchecked (the type name may have been cut)"
        out = {
            "target": self.what,
            "segment": self.segment.to_json(),
            "name": lay.name,
            "kind": lay.kind_name,
            "type_name": lay.type_name,
            "value_size": lay.value_size,
            "value_align": lay.value_align,
            "schema_version": lay.schema_version,
            "type_hash": f"{lay.type_hash:#018x}",
            "type_extra": f"{lay.type_extra:#x}",
            "fingerprint": fp,
            "creator_pid": lay.creator_pid,
            "layout": {
                "slot_count": lay.slot_count,
                "data_offset": lay.data_offset,
                "slot_stride": lay.slot_stride,
                "used_len": lay.used_len,
            },
            "recoveries": _u64(addr + OFF_RECOVERIES),
            "waiting": bool(_u32(addr + OFF_NOTIFY) & 1),
        }
        if lay.kind == KIND_CELL:
            out["version"] = self._seq.value
            out["writing"] = self._writing.value
        else:
            ctl = addr + HEADER_SIZE
            cur = self._current.value
            pins = []
            for p in range(PIN_SLOTS):
                word = _u64(ctl + CTL_PINS + 64 * p)
                pid = word & ((1 << 22) - 1)
                buf = (word >> 22) & 0x7F
                if pid:
                    pins.append({"slot": p, "pid": pid, "buffer": buf - 1 if buf else None})
            out["version"] = cur >> 8
            out["region"] = {
                "current_version": cur >> 8,
                "current_buffer": cur & 0xFF,
                "pin_high": _u32(ctl + CTL_PIN_HIGH),
                "buffers": [
                    {"len": _u64(ctl + CTL_BUFFERS + 16 * i), "version": _u64(ctl + CTL_BUFFERS + 16 * i + 8)}
                    for i in range(lay.slot_count)
                ],
                "pins": pins,
            }
        return out


class _WordArray:
    """A slot's words, read one load each (see "Why x86-64 only")."""

    __slots__ = ("_array",)

    def __init__(self, addr: int, count: int):
        self._array = (ctypes.c_uint64 * count).from_address(addr) if count else None

    def load(self) -> list:
        return self._array[:] if self._array is not None else []


def _struct_for(fmt: str, lay: Layout):
    try:
        st = struct.Struct(fmt)
    except struct.error as e:
        raise UsageError(f"bad struct format {fmt!r}: {e}")
    if st.size != lay.value_size:
        raise TypeMismatch(
            f"the format {fmt!r} unpacks {st.size} bytes; the cell holds {lay.type_name!r}, "
            f"{lay.value_size} bytes aligned to {lay.value_align}"
        )
    return st.unpack


def _holds(key: int, name: bytes, opts: OpenOptions, shown: str) -> Optional[_Attachment]:
    """The attachment of the segment at `key` if it holds the object named
    `name`; None for no segment, another name, a plain key's object,
    another program's segment or one this user may not read."""
    what = f"name {shown} at key {_key_text(key)}"
    try:
        att = _Attachment(_shmget(key), what, opts)
    except (NotFound, PermissionDenied, ForeignOwner):
        return None
    keep = False
    try:
        if att.size < HEADER_SIZE:
            return None
        addr = att.addr
        start = time.monotonic()
        while True:
            if _u64(addr + OFF_MAGIC) == MAGIC:
                # The name was stored before the magic (release).
                length = _u32(addr + OFF_NAME_LEN)
                keep = length <= NAME_MAX and ctypes.string_at(addr + OFF_NAME, length) == name
                return att if keep else None
            if _u64(addr + OFF_MAGIC) != 0 or _u32(addr + OFF_STATE) != STATE_FRESH:
                return None
            # Not a word written yet: a creator at its first instructions,
            # one that died there, or another program's zeroed segment.
            if not _creator_alive(addr, att.info):
                return None
            if att.info.ctime <= 0 or att.info.ctime + 2 < time.time():
                return None
            waited = time.monotonic() - start
            if waited >= opts.wait:
                raise InitTimeout(
                    f"segment {att.info.id} ({what}) is still all zeros after {waited:.3f} s "
                    f"while its creator (pid {att.info.cpid}) runs"
                )
            time.sleep(0.001)
    finally:
        if not keep:
            att.close()


def parse_target(target) -> tuple:
    """("id" | "key" | "name", value) for a TARGET."""
    if isinstance(target, int):
        return ("key", target)
    text = str(target)

    def number(s: str, what: str) -> int:
        try:
            return int(s, 0) if s.lower().startswith(("0x", "-0x")) else int(s, 10)
        except ValueError:
            raise UsageError(f"bad {what} {s!r}: not a number")

    if text.startswith("name:"):
        return ("name", text[5:])
    if text.startswith("id:"):
        value = number(text[3:], "id")
        if value < 0:
            raise UsageError(f"bad id {value}: ids are not negative")
        return ("id", value)
    if text.startswith("key:"):
        return ("key", number(text[4:], "key"))
    if re.fullmatch(r"0[xX][0-9a-fA-F]{1,8}", text):
        return ("key", int(text, 16))
    if re.fullmatch(r"0[xX].*", text):
        raise UsageError(f"bad key {text!r}: a key is 1 to 8 hex digits after 0x")
    if re.fullmatch(r"[0-9]+", text):
        return ("id", int(text))
    return ("name", text)


# ---------------------------------------------------------------------------
# rkyv 0.8 archives (FORMAT.md, "Region archives: the rkyv 0.8 subset a
# reader needs").


def _round_up(n: int, align: int) -> int:
    return (n + align - 1) // align * align


def _layout_fields(types) -> tuple:
    """repr(C): (offsets, size, align) of fields of these types in order."""
    offset, align, offsets = 0, 1, []
    for t in types:
        offset = _round_up(offset, t.align)
        offsets.append(offset)
        offset += t.size
        align = max(align, t.align)
    return offsets, _round_up(offset, align), align


class _Archive:
    def __init__(self, data: bytes):
        self.data = bytes(data)
        self.len = len(self.data)
        self.items = 0

    def fail(self, path: str, message: str) -> DecodeError:
        return DecodeError(f"at {path or 'the root'}: {message}", field=path or "root")

    def target(self, at: int) -> int:
        """Where the relative pointer at `at` points: its own position plus
        the signed 32-bit offset it holds."""
        return at + struct.unpack_from("<i", self.data, at)[0]

    def check(self, at: int, size: int, align: int, path: str, what: str) -> None:
        if at < 0 or at + size > self.len:
            raise self.fail(
                path, f"{what} at bytes {at}..{at + size} lies outside the archive's {self.len} bytes"
            )
        if at % align:
            raise self.fail(path, f"{what} at byte {at} is not aligned to {align}")

    def count(self, n: int, path: str) -> None:
        self.items += n
        if self.items > 16 * (self.len + 1024) + (1 << 20):
            raise self.fail(path, "more items than an archive of this size can describe")


class _T:
    """An archived type: its size and alignment, and how to decode it."""

    size = 0
    align = 1

    def decode(self, a: _Archive, at: int, path: str):
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class _Prim(_T):
    def __init__(self, name: str, fmt: str, size: int):
        self.name, self.fmt, self.size, self.align = name, fmt, size, size

    def decode(self, a, at, path):
        return struct.unpack_from(self.fmt, a.data, at)[0]

    def describe(self):
        return self.name


class _Wide(_T):
    """u128 and i128: 16 bytes, aligned to 16."""

    size = align = 16

    def __init__(self, signed: bool):
        self.signed = signed

    def decode(self, a, at, path):
        return int.from_bytes(a.data[at : at + 16], "little", signed=self.signed)

    def describe(self):
        return "i128" if self.signed else "u128"


class _Bool(_T):
    size = align = 1

    def decode(self, a, at, path):
        b = a.data[at]
        if b > 1:
            raise a.fail(path, f"a bool holds {b}, not 0 or 1")
        return b == 1

    def describe(self):
        return "bool"


class _Char(_T):
    size = align = 4

    def decode(self, a, at, path):
        c = struct.unpack_from("<I", a.data, at)[0]
        if c > 0x10FFFF or 0xD800 <= c <= 0xDFFF:
            raise a.fail(path, f"a char holds {c:#x}, not a Unicode scalar value")
        return chr(c)

    def describe(self):
        return "char"


class _Unit(_T):
    size, align = 0, 1

    def decode(self, a, at, path):
        return None

    def describe(self):
        return "()"


class _Str(_T):
    """ArchivedString: 8 bytes, aligned to 4; inline up to 8 bytes (padded
    with 0xff), else a length with the marker bits 0b10 in bits 6-7 and an
    offset from the string's own start."""

    size, align = 8, 4

    def decode(self, a, at, path):
        first = a.data[at]
        if first & 0xC0 != 0x80:
            raw = a.data[at : at + 8]
            end = raw.find(b"\xff")
            raw = raw if end < 0 else raw[:end]
        else:
            word = struct.unpack_from("<I", a.data, at)[0]
            length = (word & 0x3F) | ((word & 0xFFFFFF00) >> 2)
            if length <= 8:
                raise a.fail(path, f"an out-of-line string of {length} bytes (at most 8 are kept inline)")
            start = at + struct.unpack_from("<i", a.data, at + 4)[0]
            a.check(start, length, 1, path, f"a string of {length} bytes")
            raw = a.data[start : start + length]
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise a.fail(path, f"a string is not UTF-8 ({e.reason} at byte {e.start})")

    def describe(self):
        return "str"


class _Vec(_T):
    """ArchivedVec<T> and the archived slice of Box<[T]>: a relative pointer
    to the elements and their number (u32)."""

    size, align = 8, 4

    def __init__(self, elem: _T, name: str = "vec"):
        self.elem, self.name = elem, name

    def decode(self, a, at, path):
        count = struct.unpack_from("<I", a.data, at + 4)[0]
        if count == 0:
            return []
        start = a.target(at)
        size = self.elem.size
        a.check(start, count * size, self.elem.align, path, f"{count} elements of {size} bytes")
        a.count(count, path)
        return [self.elem.decode(a, start + i * size, f"{path}[{i}]") for i in range(count)]

    def describe(self):
        return f"{self.name}<{self.elem.describe()}>"


class _BoxStr(_T):
    """ArchivedBox<str>: a relative pointer to the bytes and their number."""

    size, align = 8, 4

    def decode(self, a, at, path):
        count = struct.unpack_from("<I", a.data, at + 4)[0]
        start = a.target(at)
        if count:
            a.check(start, count, 1, path, f"a string of {count} bytes")
        try:
            return a.data[start : start + count].decode("utf-8") if count else ""
        except UnicodeDecodeError as e:
            raise a.fail(path, f"a string is not UTF-8 ({e.reason} at byte {e.start})")

    def describe(self):
        return "box<str>"


class _Box(_T):
    """ArchivedBox<T> of a sized T: a relative pointer."""

    size, align = 4, 4

    def __init__(self, elem: _T):
        self.elem = elem

    def decode(self, a, at, path):
        start = a.target(at)
        a.check(start, self.elem.size, self.elem.align, path, f"a boxed {self.elem.describe()}")
        a.count(1, path)
        return self.elem.decode(a, start, path)

    def describe(self):
        return f"box<{self.elem.describe()}>"


class _Option(_T):
    """ArchivedOption<T>: repr(u8) enum: tag byte 0 None / 1 Some, the value
    at the next multiple of its alignment."""

    def __init__(self, elem: _T):
        self.elem = elem
        offsets, some, align = _layout_fields([_U8, elem])
        self.payload = offsets[1]
        self.align = align
        self.size = _round_up(max(1, some), align)

    def decode(self, a, at, path):
        tag = a.data[at]
        if tag == 0:
            return None
        if tag != 1:
            raise a.fail(path, f"an option's tag is {tag}, not 0 (None) or 1 (Some)")
        return self.elem.decode(a, at + self.payload, path)

    def describe(self):
        return f"option<{self.elem.describe()}>"


class _Struct(_T):
    def __init__(self, fields: list):
        self.fields = fields
        self.offsets, self.size, self.align = _layout_fields([t for _, t in fields])

    def decode(self, a, at, path):
        return {
            name: t.decode(a, at + off, f"{path}.{name}")
            for (name, t), off in zip(self.fields, self.offsets)
        }

    def describe(self):
        return "{" + ", ".join(f"{n}: {t.describe()}" for n, t in self.fields) + "}"


class _Tuple(_T):
    def __init__(self, elems: list):
        self.elems = elems
        self.offsets, self.size, self.align = _layout_fields(elems)

    def decode(self, a, at, path):
        return [
            t.decode(a, at + off, f"{path}.{i}") for i, (t, off) in enumerate(zip(self.elems, self.offsets))
        ]

    def describe(self):
        return "(" + ", ".join(t.describe() for t in self.elems) + ")"


class _Array(_T):
    def __init__(self, elem: _T, count: int):
        self.elem, self.count = elem, count
        self.size, self.align = elem.size * count, elem.align

    def decode(self, a, at, path):
        a.count(self.count, path)
        return [self.elem.decode(a, at + i * self.elem.size, f"{path}[{i}]") for i in range(self.count)]

    def describe(self):
        return f"[{self.elem.describe()}; {self.count}]"


class _Enum(_T):
    """A derived enum (repr(u8)): a union of repr(C) structs, each the tag
    byte then the variant's fields. `variants` is a list of (name, tag,
    fields or None, tuple-like)."""

    def __init__(self, variants: list):
        if not variants:
            raise UsageError("an enum needs at least one variant")
        self.variants = {}
        size, align = 1, 1
        for name, tag, fields, tuple_like in variants:
            if not 0 <= tag <= 255 or tag in self.variants:
                raise UsageError(f"enum variant {name!r}: tag {tag} is out of 0..255 or repeated")
            types = [t for _, t in fields or []]
            offsets, vsize, valign = _layout_fields([_U8] + types)
            self.variants[tag] = (name, fields, offsets[1:], tuple_like)
            size, align = max(size, vsize), max(align, valign)
        self.size, self.align = _round_up(size, align), align

    def decode(self, a, at, path):
        tag = a.data[at]
        if tag not in self.variants:
            raise a.fail(path, f"enum tag {tag} names no variant of the schema")
        name, fields, offsets, tuple_like = self.variants[tag]
        if fields is None:
            return name
        values = [t.decode(a, at + off, f"{path}.{name}.{n}") for (n, t), off in zip(fields, offsets)]
        if tuple_like:
            return {name: values}
        return {name: {n: v for (n, _), v in zip(fields, values)}}

    def describe(self):
        return "enum{" + ", ".join(v[0] for v in self.variants.values()) + "}"


_U8 = _Prim("u8", "<B", 1)
_PRIMS = {
    "u8": _U8,
    "i8": _Prim("i8", "<b", 1),
    "u16": _Prim("u16", "<H", 2),
    "i16": _Prim("i16", "<h", 2),
    "u32": _Prim("u32", "<I", 4),
    "i32": _Prim("i32", "<i", 4),
    "u64": _Prim("u64", "<Q", 8),
    "i64": _Prim("i64", "<q", 8),
    "usize": _Prim("usize", "<I", 4),
    "isize": _Prim("isize", "<i", 4),
    "f32": _Prim("f32", "<f", 4),
    "f64": _Prim("f64", "<d", 8),
    "u128": _Wide(False),
    "i128": _Wide(True),
    "bool": _Bool(),
    "char": _Char(),
    "unit": _Unit(),
    "str": _Str(),
    "string": _Str(),
    "String": _Str(),
}

_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*|[0-9]+|[<>\[\];,()])")


class _TypeParser:
    """Type strings: u8 ... i128, f32, f64, bool, char, unit or (), str
    (String), vec<T>, option<T>, box<T>, box<str>, box<[T]>, [T; N],
    (A, B, ...), result<T, E>."""

    def __init__(self, text: str):
        self.text = text
        self.tokens = []
        pos = 0
        text = text.rstrip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                raise UsageError(f"bad type {self.text!r}: unexpected {text[pos:].strip()[:10]!r}")
            self.tokens.append(m.group(1))
            pos = m.end()
        self.i = 0

    def peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, want=None):
        tok = self.peek()
        if tok is None or (want is not None and tok != want):
            raise UsageError(f"bad type {self.text!r}: expected {want or 'a type'}, found {tok or 'the end'}")
        self.i += 1
        return tok

    def parse(self) -> _T:
        t = self.type()
        if self.peek() is not None:
            raise UsageError(f"bad type {self.text!r}: unexpected {self.peek()!r}")
        return t

    def type(self) -> _T:
        tok = self.take()
        if tok == "(":
            if self.peek() == ")":
                self.take()
                return _PRIMS["unit"]
            elems = [self.type()]
            while self.peek() == ",":
                self.take()
                if self.peek() == ")":
                    break
                elems.append(self.type())
            self.take(")")
            return _Tuple(elems)
        if tok == "[":
            elem = self.type()
            self.take(";")
            count = self.take()
            if not count.isdigit():
                raise UsageError(f"bad type {self.text!r}: an array length is a number")
            self.take("]")
            return _Array(elem, int(count))
        low = tok.lower()
        if low in ("vec", "option", "box", "result"):
            self.take("<")
            if low == "box" and self.peek() == "str":
                self.take()
                inner = _BoxStr()
            elif low == "box" and self.peek() == "[":
                self.take()
                elem = self.type()
                self.take("]")
                inner = _Vec(elem, "box<[..]>")
            elif low == "result":
                ok = self.type()
                self.take(",")
                err = self.type()
                inner = _Enum([("Ok", 0, [("0", ok)], True), ("Err", 1, [("0", err)], True)])
            else:
                elem = self.type()
                inner = {"vec": _Vec, "option": _Option, "box": _Box}[low](elem)
            self.take(">")
            return inner
        if tok in _PRIMS:
            return _PRIMS[tok]
        raise UsageError(f"bad type {self.text!r}: unknown type {tok!r}")


def parse_schema(spec) -> _T:
    """An archived type from a schema description:

    - a type string: "u64", "i32", "f64", "bool", "char", "str", "vec<u32>",
      "option<u64>", "box<str>", "[u8; 4]", "(u8, str)", "result<u32, str>";
    - a list of [field name, type] pairs: a struct, fields in declaration
      order (rkyv's archived structs are repr(C));
    - {"struct": [[name, type], ...]}, {"tuple": [type, ...]},
      {"vec": type}, {"option": type}, {"box": type},
      {"array": type, "len": N};
    - {"enum": [[variant, fields], ...]} for a derived enum, where fields is
      null (a unit variant), a list of [name, type] pairs (a struct variant)
      or a list of types (a tuple variant); variant i has tag i unless the
      entry is {"name": ..., "fields": ..., "tag": N}.
    """
    if isinstance(spec, _T):
        return spec
    if isinstance(spec, str):
        return _TypeParser(spec).parse()
    if isinstance(spec, list):
        return _Struct(_fields(spec, "struct"))
    if isinstance(spec, dict) and len(spec) >= 1:
        if "struct" in spec:
            return _Struct(_fields(spec["struct"], "struct"))
        if "tuple" in spec:
            return _Tuple([parse_schema(t) for t in _list(spec["tuple"], "tuple")])
        if "array" in spec:
            count = spec.get("len")
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise UsageError("an array schema needs a \"len\" of 0 or more")
            return _Array(parse_schema(spec["array"]), count)
        for key, cls in (("vec", _Vec), ("option", _Option), ("box", _Box)):
            if key in spec:
                return cls(parse_schema(spec[key]))
        if "enum" in spec:
            variants = []
            for i, v in enumerate(_list(spec["enum"], "enum")):
                if isinstance(v, dict):
                    name, fields, tag = v.get("name"), v.get("fields"), v.get("tag", i)
                elif isinstance(v, list) and len(v) == 2:
                    (name, fields), tag = v, i
                else:
                    raise UsageError(
                        f"enum variant {i}: give [name, fields] or an object with name, fields and tag"
                    )
                if not isinstance(name, str) or not isinstance(tag, int) or isinstance(tag, bool):
                    raise UsageError(f"enum variant {i}: a name is a string and a tag a number")
                if fields is None:
                    variants.append((name, tag, None, False))
                    continue
                fields = _list(fields, f"variant {name}")
                named = bool(fields) and all(
                    isinstance(f, list) and len(f) == 2 and isinstance(f[0], str) for f in fields
                )
                if named:
                    variants.append((name, tag, _fields(fields, f"variant {name}"), False))
                else:
                    positional = [(str(j), parse_schema(t)) for j, t in enumerate(fields)]
                    variants.append((name, tag, positional, True))
            return _Enum(variants)
    raise UsageError(
        f"bad schema {json.dumps(spec)[:80]}: give a type string, a list of [name, type] pairs or an object"
    )


def _list(value, what: str) -> list:
    if not isinstance(value, list):
        raise UsageError(f"bad {what} schema: a list is expected")
    return value


def _fields(pairs, what: str) -> list:
    out = []
    for p in _list(pairs, what):
        if not (isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], str)):
            raise UsageError(f"bad {what} schema: each field is [name, type], not {json.dumps(p)[:60]}")
        out.append((p[0], parse_schema(p[1])))
    return out


def decode_archive(data: bytes, schema) -> Any:
    """Decode an rkyv 0.8 archive (as a region holds it) whose root has the
    type `schema` (see `parse_schema`). Every pointer is checked to stay in
    the archive; DecodeError says where a check failed."""
    root = parse_schema(schema)
    a = _Archive(data)
    if a.len < root.size:
        raise DecodeError(f"the archive has {a.len} bytes, fewer than its root ({root.size})", field="root")
    at = a.len - root.size
    if at % root.align:
        raise DecodeError(f"the root at byte {at} is not aligned to {root.align}", field="root")
    return root.decode(a, at, "")


# ---------------------------------------------------------------------------
# Command line.


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


def _emit(obj) -> None:
    sys.stdout.write(json.dumps(_json_safe(obj), allow_nan=False) + "\n")


def _load_schema(text: str):
    if text.startswith("@"):
        try:
            with open(text[1:], encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise UsageError(f"cannot read the schema file {text[1:]!r}: {e.strerror}")
    try:
        spec = json.loads(text)
    except json.JSONDecodeError:
        spec = text.strip()  # a bare type string, e.g. vec<u32>
    return parse_schema(spec)


def _reads(args, read_once, render) -> None:
    """One read, or `--reads N` reads printing each that differs from the
    one before (the first always)."""
    last = None
    for _ in range(args.reads):
        result = read_once()
        key = (result[0], result[1])
        if key != last:
            out = {"version": result[0]}
            out.update(render(result[1]))
            out["retries"] = result.retries
            _emit(out)
            last = key


def _main(argv) -> int:
    parser = argparse.ArgumentParser(
        prog="shmstore_reader.py",
        description="Read shmstore objects (System V shared memory) read-only, as FORMAT.md says. "
        "A TARGET is a segment id (decimal, or id:N), a key (0x... hex, or key:N) or an object's name "
        "(or name:TEXT). Output is JSON; exit status 0 ok, 1 error, 2 usage.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("target", help="segment id, 0x key, key:N, id:N, or name")
        p.add_argument("--wait", type=float, default=5.0, metavar="SECS",
                       help="how long to wait for a creator to finish the segment (default 5)")
        p.add_argument("--timeout", type=float, default=10.0, metavar="SECS",
                       help="how long a read may retry while writers overwrite it (default 10)")
        p.add_argument("--allow-foreign-owner", action="store_true",
                       help="read segments owned by other users too")
        p.add_argument("--trust-group", type=int, metavar="GID",
                       help="trust segments of group GID whose owner is in it")
        p.add_argument("--type-name", metavar="NAME",
                       help="fail unless the object holds this type (its full name, as shmstore stored it)")
        p.add_argument("--schema-version", type=int, metavar="N",
                       help="fail unless the object's schema version is N")
        p.add_argument("--size", type=int, metavar="BYTES",
                       help="fail unless the value (a region: the archived root) has this size")

    p = sub.add_parser("info", help="the validated header, kernel facts and current version")
    common(p)
    p = sub.add_parser("cell", help="a cell's value and version")
    common(p)
    p.add_argument("--struct", metavar="FORMAT",
                   help="unpack the value with this struct format (e.g. '<QdI'); "
                   "its size must be the value's")
    p.add_argument("--reads", type=int, default=1, metavar="N",
                   help="read N times, printing each read that differs from the one before")
    p = sub.add_parser("region", help="a region's current archive, raw or decoded")
    common(p)
    p.add_argument("--schema", metavar="JSON",
                   help="decode with this schema (JSON, a type string, or @FILE); "
                   "without it, the bytes in hex")
    p.add_argument("--reads", type=int, default=1, metavar="N",
                   help="read N times, printing each read that differs from the one before")
    p = sub.add_parser("decode", help="decode an rkyv archive read from standard input (no segment)")
    p.add_argument("--schema", required=True, metavar="JSON",
                   help="the archive's root type (JSON, a type string, or @FILE)")
    p.add_argument("--hex", action="store_true", help="standard input holds the archive in hex")

    args = parser.parse_args(argv)
    if args.command == "decode":
        schema = _load_schema(args.schema)
        data = sys.stdin.buffer.read()
        if args.hex:
            try:
                data = bytes.fromhex(data.decode("ascii"))
            except (UnicodeDecodeError, ValueError):
                raise UsageError("standard input is not hex")
        _emit({"len": len(data), "value": decode_archive(data, schema)})
        return 0
    check_host()
    if getattr(args, "reads", 1) < 1:
        raise UsageError("--reads takes 1 or more")
    if args.wait < 0 or args.timeout < 0 or not math.isfinite(args.wait + args.timeout):
        raise UsageError("--wait and --timeout take a number of seconds, 0 or more")
    schema = _load_schema(args.schema) if getattr(args, "schema", None) else None
    opts = OpenOptions(
        wait=args.wait,
        allow_foreign_owner=args.allow_foreign_owner,
        trust_group=args.trust_group,
        timeout=args.timeout,
    )
    with ShmObject.open(args.target, opts) as obj:
        obj.check_type(args.type_name, args.schema_version, args.size)
        if args.command == "info":
            _emit(obj.info())
        elif args.command == "cell":
            if args.struct:
                _reads(args, lambda: obj.read_cell(args.struct), lambda v: {"value": list(v)})
            else:
                _reads(args, obj.read_cell, lambda v: {"bytes": v.hex()})
        elif schema is not None:
            _reads(args, lambda: obj.read_region(schema), lambda v: {"value": v})
        else:
            _reads(args, obj.copy_region, lambda v: {"len": len(v), "bytes": v.hex()})
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        status = _main(argv)
        sys.stdout.flush()
        return status
    except ReaderError as e:
        sys.stdout.flush()
        _emit(e.to_json())
        sys.stderr.write(f"shmstore_reader: {e.message}\n")
        return e.exit_status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of our output went away: nothing more to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
