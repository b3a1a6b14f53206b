"""The header (FORMAT.md, version 6): its layout, its validation, and
waiting for a creator to finish it.

`validate` reads every header field once, checks it as FORMAT.md's
"Validating" says, in that order (the magic, then the format version,
then the rest; and, as shmstore does, that the ABI fields are this
host's), and keeps what it read in a `Layout`: the layout fields are
never read from the segment again, so a later change to them (by a
faulty or hostile writer) cannot move a read outside the bounds checked
here. The stored schema, if any, is copied once, its hash checked on the
copy and the copy parsed (schema.py); its size and alignment must be the
header's. `state` is loaded first, and x86-64 loads are acquire loads (see
host.py): once it is READY, the fields read after it are those the
creator wrote before it stored READY (release).

A segment is first all zeros, then its creator stores `magic`, `state =
INITIALIZING`, the fields, and `state = READY`. `wait_ready` waits while
a creator is at work and lives (FORMAT.md, "Creation"), and says when it
died or took too long; anything else (a READY header, another program's
bytes) is left for validation to describe. `_creator_alive` judges the
creator: by the pid and start time the header names once its magic is
there, else by the kernel's creator pid, start time and user. No length
of time makes a creator dead: one stopped for minutes is waited for up to
the timeout.

Once READY, an object opened by key or by name is admitted by its `life`
word (`admit`, FORMAT.md "Removal"): marked REMOVING, it is removed if its
segment is marked SHM_DEST (or gone) or its remover died, and waited for
while its remover lives; marked COLLECTING, it is waited for while its
collector lives, and the mark of a dead one is ignored. An object opened
by id is opened whatever the word says (an id reaches removed objects
too), but a live collector's mark is waited for as well. This reader writes
nothing: it neither finishes a dead remover's removal nor clears a dead
collector's mark, as shmstore's read-write openers do.
"""

from __future__ import annotations

import ctypes
import struct
import time
from dataclasses import dataclass
from typing import Optional

from .errors import (
    AbiMismatch,
    BadSchema,
    Busy,
    Corrupt,
    CreatorDied,
    IncompatibleFormat,
    InitTimeout,
    NotFound,
    NotShmstore,
)
from .host import M64, abi_text, host_abi, load_i32, load_u32, load_u64
from .proc import process_alive, process_start_time, process_started_at, process_uids
from .schema import SCHEMA_MAX_LEN, Schema, fnv1a64, parse_stored_schema
from .sysv import SegmentInfo, Attachment, segment_stat

MAGIC = 0x65726F74736D6873  # the bytes "shmstore", little-endian
# The format FORMAT.md describes.
FORMAT_VERSION = 6
# The versions this reader opens: the one FORMAT.md describes.
READ_FORMAT_VERSIONS = (FORMAT_VERSION,)
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
# Where a stored schema lies (FORMAT.md, "Schema (optional)"): right after
# the header in a cell, after the control block in a region.
SCHEMA_OFFSETS = {KIND_CELL: HEADER_SIZE, KIND_REGION: HEADER_SIZE + REGION_CONTROL_SIZE}
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
OFF_SCHEMA_LEN = 116
OFF_SCHEMA_HASH = 120
OFF_TYPE_NAME = 128
OFF_SEQ = 256
OFF_NOTIFY = 264
OFF_RECOVERIES = 272
OFF_WRITING = 280
OFF_LIFE = 288
OFF_NAME = 384

# The `life` word (FORMAT.md, "Removal"): bits 0-1 the state, 2-23 the pid
# of the process collecting or removing the object, 24-63 the low 40 bits of
# its start time.
LIFE_LIVE = 0
LIFE_COLLECTING = 1
LIFE_REMOVING = 2  # 2 or 3
LIFE_START_MASK = (1 << 40) - 1

# A region's control block, from offset 512 (FORMAT.md, "Region data").
CTL_CURRENT = 0  # 8 to 63: reserved (format 4's pin_high, which readers never used)
CTL_BUFFERS = 64  # + 16 * i: len (u64), version (u64)
CTL_PINS = 1088  # + 64 * p: word (u64), start_time (u64)


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
    format_version: int = FORMAT_VERSION
    schema_len: int = 0
    schema_hash: int = 0
    # The stored schema, parsed (schema.Schema), or None when there is none.
    schema: Optional[Schema] = None

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


def corrupt(message: str, field: str) -> Corrupt:
    return Corrupt(f"the segment is corrupt: {message}", field=field)


def validate(addr: int, segment_len: int) -> tuple:
    """Check the header at `addr` of a segment of `segment_len` bytes as
    FORMAT.md says; return the layout and the raw type name. Every field is
    read once."""
    if segment_len < HEADER_SIZE:
        raise NotShmstore(f"{segment_len} bytes, fewer than a shmstore header ({HEADER_SIZE})")
    state = load_u32(addr + OFF_STATE)
    magic = load_u64(addr + OFF_MAGIC)
    if magic != MAGIC:
        raise NotShmstore(f"magic {magic:#018x} is not shmstore's")
    version = load_u32(addr + OFF_FORMAT_VERSION)
    if version not in READ_FORMAT_VERSIONS:
        raise IncompatibleFormat(
            f"format version {version}; this reader reads version "
            + " and ".join(str(v) for v in READ_FORMAT_VERSIONS)
            + ": read the object with a reader of its version",
            field="format_version",
        )
    if state != STATE_READY:
        raise corrupt(f"state {state} is not READY ({STATE_READY})", "state")
    kind = load_u32(addr + OFF_KIND)
    if kind not in KIND_NAMES:
        raise corrupt(f"unknown kind {kind}", "kind")
    header_size = load_u32(addr + OFF_HEADER_SIZE)
    if header_size != HEADER_SIZE:
        raise corrupt(f"header size {header_size}, expected {HEADER_SIZE}", "header_size")
    abi = (
        load_u32(addr + OFF_ABI_ARCH),
        load_u32(addr + OFF_ABI_POINTER_WIDTH),
        load_u32(addr + OFF_ABI_LIBC),
        load_u32(addr + OFF_ABI_MUTEX_SIZE),
    )
    host = host_abi()
    if abi != host:
        raise AbiMismatch(
            f"the segment was made for {abi_text(abi)}; this host is {abi_text(host)}", field="abi"
        )
    value_size = load_u32(addr + OFF_VALUE_SIZE)
    value_align = load_u32(addr + OFF_VALUE_ALIGN)
    schema_version = load_u32(addr + OFF_SCHEMA_VERSION)
    type_hash = load_u64(addr + OFF_TYPE_HASH)
    type_extra = load_u64(addr + OFF_TYPE_EXTRA)
    type_name_len = load_u32(addr + OFF_TYPE_NAME_LEN)
    if type_name_len > TYPE_NAME_MAX:
        raise corrupt(f"type name length {type_name_len} > {TYPE_NAME_MAX}", "type_name_len")
    name_len = load_u32(addr + OFF_NAME_LEN)
    if name_len > NAME_MAX:
        raise corrupt(f"name length {name_len} > {NAME_MAX}", "name_len")
    schema_len = schema_hash = 0
    if version >= 6:
        schema_len = load_u32(addr + OFF_SCHEMA_LEN)
        schema_hash = load_u64(addr + OFF_SCHEMA_HASH)
    if schema_len > SCHEMA_MAX_LEN:
        raise corrupt(f"schema length {schema_len} > {SCHEMA_MAX_LEN}", "schema_len")
    if schema_len == 0 and schema_hash != 0:
        raise corrupt(f"schema hash {schema_hash:#018x} with no schema (schema_len 0)", "schema_hash")
    if value_align == 0 or value_align & (value_align - 1) or value_align > MAX_ALIGN:
        raise corrupt(f"value alignment {value_align}", "value_align")
    count = load_u32(addr + OFF_SLOT_COUNT)
    if not 2 <= count <= MAX_SLOTS:
        raise corrupt(f"{count} slots (2 to {MAX_SLOTS} allowed)", "slot_count")
    if kind == KIND_CELL and count & (count - 1):
        raise corrupt(f"{count} slots in a cell (a power of two is required)", "slot_count")
    data_offset = load_u64(addr + OFF_DATA_OFFSET)
    stride = load_u64(addr + OFF_SLOT_STRIDE)
    # The data begins after the schema, if any.
    prefix = SCHEMA_OFFSETS[kind] + schema_len
    # A cell's slots are read as 8-byte words; a region's buffers start on
    # cache lines and at the root's alignment.
    unit = max(value_align, 64 if kind == KIND_REGION else 8)
    if data_offset < prefix or data_offset % unit:
        raise corrupt(
            f"data at {data_offset}: it must be at least {prefix} (the {schema_len} bytes of schema "
            f"end there) and a multiple of {unit}",
            "data_offset",
        )
    stride_unit = unit if kind == KIND_REGION else 8
    if stride == 0 or stride % stride_unit or value_size > stride:
        raise corrupt(
            f"slot stride {stride} for values of {value_size} bytes "
            f"(a nonzero multiple of {stride_unit}, at least the value size)",
            "slot_stride",
        )
    needed = data_offset + count * stride
    used = load_u64(addr + OFF_USED_LEN)
    if needed != used or needed > segment_len:
        raise corrupt(
            f"{count} slots of {stride} bytes from {data_offset} need {needed} bytes; "
            f"header says {used}, segment has {segment_len}",
            "used_len",
        )
    schema = None
    if schema_len:
        schema = read_schema(addr, kind, schema_len, schema_hash, value_size, value_align, abi[1])
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
        creator_pid=load_i32(addr + OFF_CREATOR_PID),
        abi=abi,
        format_version=version,
        schema_len=schema_len,
        schema_hash=schema_hash,
        schema=schema,
    )
    return layout, type_name


def read_schema(
    addr: int, kind: int, length: int, expected_hash: int, value_size: int, value_align: int, pointer_width: int
) -> Schema:
    """Copy the stored schema of a validated header once (it lies before the
    data, inside the segment: validation checked `data_offset` and
    `used_len` first), check its hash on the copy and parse the copy; its
    size and alignment must be the value's. Corrupt says which check
    failed."""
    raw = ctypes.string_at(addr + SCHEMA_OFFSETS[kind], length)
    found = fnv1a64(raw)
    if found != expected_hash:
        raise corrupt(
            f"the schema's {length} bytes hash to {found:#018x}, the header says {expected_hash:#018x}",
            "schema_hash",
        )
    try:
        schema = parse_stored_schema(raw, KIND_NAMES[kind], pointer_width)
    except BadSchema as e:
        raise corrupt(f"the stored schema cannot be used: {e.message}", "schema")
    if (schema.size, schema.align) != (value_size, value_align):
        raise corrupt(
            f"the stored schema {schema.text!r} lays out {schema.size} bytes aligned to {schema.align}; "
            f"the header says {value_size} bytes aligned to {value_align}",
            "schema",
        )
    return schema


def _creator_alive(addr: int, info: SegmentInfo) -> bool:
    """Whether the process that creates the segment still runs: by its pid
    and start time once the header names it, else by the kernel's creator
    pid, start time and user (FORMAT.md, "Creation")."""
    named = load_u64(addr + OFF_MAGIC) == MAGIC and load_i32(addr + OFF_CREATOR_PID) == info.cpid
    start = load_u64(addr + OFF_CREATOR_START)
    if named and start != 0:
        return process_alive(info.cpid) and process_start_time(info.cpid) in (None, start)
    if not process_alive(info.cpid):
        return False
    started = process_started_at(info.cpid)
    if started is not None and info.ctime > 0 and started > info.ctime + 2:
        return False
    uids = process_uids(info.cpid)
    return uids is None or info.cuid in uids


def wait_ready(att: Attachment, wait: float, what: str) -> None:
    """Wait while a live creator is initialising the segment (FORMAT.md,
    "Creation"); return at once for anything that is not being made by
    shmstore, which validation then describes."""
    if att.size < HEADER_SIZE:
        return
    addr = att.addr
    start = time.monotonic()
    pause = 0.0005
    while True:
        state = load_u32(addr + OFF_STATE)
        magic = load_u64(addr + OFF_MAGIC)
        if state == STATE_READY:
            return
        if state not in (STATE_FRESH, STATE_INITIALIZING) or magic not in (0, MAGIC):
            return
        if not _creator_alive(addr, att.info) and load_u32(addr + OFF_STATE) != STATE_READY:
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


def same_process_alive(pid: int, start: int, mask: int = M64) -> bool:
    """Whether process `pid` runs and started at `start` (its bits under
    `mask`; 0 unknown): a process with that pid but another start time took
    over a dead one's pid. Where /proc does not say, the pid alone decides."""
    if not process_alive(pid):
        return False
    now = process_start_time(pid)
    return start == 0 or now is None or now & mask == start


def admit(att: Attachment, deadline: float, what: str, collector_only: bool = False) -> bool:
    """Whether the validated object may be used, by its `life` word: True in
    use (or marked by a dead collector), False removed (see the module's
    docstring); while a live process removes or collects it, wait until
    `deadline` (time.monotonic()), then Busy. With `collector_only` (an open
    by id, which reaches removed objects too), only a live collector's mark
    is waited for, and a removal does not matter."""
    addr = att.addr
    pause = 0.0005
    while True:
        word = load_u64(addr + OFF_LIFE)
        state = word & 3
        if state == LIFE_LIVE or (collector_only and state >= LIFE_REMOVING):
            return True
        pid = (word >> 2) & 0x3FFFFF
        alive = same_process_alive(pid, word >> 24, LIFE_START_MASK)
        if state >= LIFE_REMOVING:
            try:
                if segment_stat(att.info.id, what).removed:
                    return False
            except NotFound:
                return False
            if not alive:
                return False
        elif not alive:
            return True
        now = time.monotonic()
        if now >= deadline:
            doing = "removed" if state >= LIFE_REMOVING else "collected"
            raise Busy(f"segment {att.info.id} ({what}) is being {doing} by pid {pid}, which still runs")
        time.sleep(min(pause, deadline - now))
        pause = min(pause * 2, 0.005)
