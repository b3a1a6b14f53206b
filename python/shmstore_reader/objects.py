"""Objects: finding one by id, key or name, and reading it.

`ShmObject` attaches a segment read-only, waits while its creator
finishes it, validates its header once and keeps the layout it validated
(header.py); every read after that stays within that layout.

A cell is read with FORMAT.md's "Reading a cell" protocol: load `seq`,
copy the slot `seq` designates, then accept the copy if fewer than
`slot_count` commits started since (`writing - seq`) or `seq` did not
move; else retry. A region is copied as "Reading a region by copying"
says: load `current` (version `v`, buffer `b`), check that
`buffers[b].version` is `v`, load `buffers[b].len` and check it against
the stride, copy the buffer, and accept the copy if `buffers[b].version`
is still `v`: publishes that write other buffers meanwhile do not matter.
If it is not, and `current` still reads what was first loaded, the
control block was scribbled on (Corrupt); else the copy is made again.
The loads are made in that order by single 8-byte loads, which x86-64
keeps in order (host.py): an accepted copy is never torn. Copies thrown
away are counted (`ShmObject.retries`, and each read's `retries`).
Copying word by word, Python is slower than a publisher that never pauses
reuses a buffer: the publisher's reuse grace (`RegionCreator::reuse_grace`
in Rust), set above this reader's copy time, lets every copy through. A
reader that writers keep lapping backs off, then gives up after its
timeout (Starved) rather than spin forever.

`ShmObject.wait_for_change` sleeps until the version changes, the object
is removed or a timeout passes, as wait.py says.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import struct
import time
from typing import Optional

from .errors import (
    Closed,
    ForeignOwner,
    InitTimeout,
    NoSchema,
    NotFound,
    NothingPublished,
    ReaderError,
    Starved,
    TypeMismatch,
    UnsupportedArchive,
    UsageError,
    WrongKind,
)
from .header import (
    CTL_BUFFERS,
    CTL_CURRENT,
    CTL_PINS,
    HEADER_SIZE,
    KIND_CELL,
    KIND_REGION,
    NAME_PROBES,
    OFF_LIFE,
    OFF_NOTIFY,
    OFF_RECOVERIES,
    OFF_SEQ,
    OFF_WRITING,
    PIN_SLOTS,
    RKYV_FORMAT,
    TYPE_NAME_MAX,
    Layout,
    corrupt,
    admit,
    validate,
    wait_ready,
)
from .host import M64, pack_words, load_u32, load_u64, WordArray, load_words
from .names import CLAIM, OBJECT, UNTRUSTED, look_at_key, check_name, name_key, name_key_in, namespace_secret
from .rkyv import ArchivedType, decode_archive, decode_cell, parse_schema
from .sysv import OpenOptions, SegmentInfo, Attachment, attach_key, key_text, shmget
from .wait import wait_for_version_change


class Versioned(tuple):
    """(version, value) of a read, with the number of times the read was
    retried because writers overwrote what it was copying."""

    retries: int

    def __new__(cls, version, value, retries):
        self = super().__new__(cls, (version, value))
        self.retries = retries
        return self


class _Removed(Exception):
    """The object attached is removed (its `life` word says so)."""


class ShmObject:
    """A shmstore object, attached read-only, its header validated."""

    def __init__(
        self,
        att: Attachment,
        what: str,
        opts: OpenOptions,
        deadline: Optional[float] = None,
        by_id: bool = False,
    ):
        """Wait for the object's creator, validate its header, and (with a
        `deadline`) admit it by its `life` word: _Removed if it is removed.
        An open `by_id` reaches removed objects too, and waits out only a
        live collector."""
        self._att = att
        self.what = what
        self.options = opts
        # Copies thrown away since the open because a writer rewrote what
        # they were copying (cell reads and region copies).
        self.retries = 0
        wait_ready(att, opts.wait, what)
        self.layout, self._type_name_raw = validate(att.addr, att.size)
        if deadline is not None and not admit(att, deadline, what, collector_only=by_id):
            raise _Removed()
        addr = att.addr
        self._seq = ctypes.c_uint64.from_address(addr + OFF_SEQ)
        self._writing = ctypes.c_uint64.from_address(addr + OFF_WRITING)
        lay = self.layout
        if lay.kind == KIND_CELL:
            words = (lay.value_size + 7) // 8
            self._slots = [
                WordArray(addr + lay.data_offset + i * lay.slot_stride, words) for i in range(lay.slot_count)
            ]
        else:
            ctl = addr + HEADER_SIZE
            self._current = ctypes.c_uint64.from_address(ctl + CTL_CURRENT)
            meta = [ctl + CTL_BUFFERS + 16 * b for b in range(lay.slot_count)]
            self._lens = [ctypes.c_uint64.from_address(m) for m in meta]
            self._versions = [ctypes.c_uint64.from_address(m + 8) for m in meta]

    # -- finding

    @classmethod
    def open(cls, target, opts: Optional[OpenOptions] = None, namespace=None) -> "ShmObject":
        """Open a TARGET as the command line takes it: an id (`123`,
        `id:123`), a key (`0x2a01beef`, `key:704757487`) or a name
        (`acme/config`, `name:2024`), in the private namespace of the
        directory `namespace` if given (which an id or a key ignores)."""
        opts = opts or OpenOptions()
        kind, value = parse_target(target)
        if kind == "id":
            return cls.by_id(value, opts)
        if kind == "key":
            return cls.by_key(value, opts)
        return cls.by_name(value, opts, namespace)

    @classmethod
    def by_id(cls, shmid: int, opts: Optional[OpenOptions] = None) -> "ShmObject":
        opts = opts or OpenOptions()
        what = f"id {shmid}"
        try:
            att = Attachment(shmid, what, opts)
        except NotFound as e:
            try:
                at_key = shmget(shmid) if 0 < shmid < (1 << 32) else None
            except ReaderError:
                at_key = None
            if at_key is None:
                raise
            raise NotFound(
                f"{e.message}; the segment with key {key_text(shmid)} ({shmid} in decimal) has id "
                f"{at_key}: give keys in hex with 0x, or as key:{shmid}"
            )
        return cls._from(att, what, opts, time.monotonic() + opts.wait, by_id=True)

    @classmethod
    def by_key(cls, key: int, opts: Optional[OpenOptions] = None) -> "ShmObject":
        """The object at `key`; one removed (or being removed by a process
        that died) is not found, one being removed or collected by a live
        process is waited for (FORMAT.md, "Removal")."""
        opts = opts or OpenOptions()
        if key & 0xFFFFFFFF == 0:
            raise UsageError("key 0 is IPC_PRIVATE, which names no segment: give the segment's id")
        what = f"key {key_text(key)}"
        deadline = time.monotonic() + opts.wait
        try:
            return cls._from(attach_key(key, what, opts), what, opts, deadline)
        except _Removed:
            raise NotFound(f"the object at key {key_text(key)} was removed")

    @classmethod
    def by_name(cls, name: str, opts: Optional[OpenOptions] = None, namespace=None) -> "ShmObject":
        """The object named `name` (FORMAT.md, "Opening by name"): the
        trusted segment at any of the name's 8 keys that has the magic, the
        name and READY, checked on the attachment then used. While there is
        none but a live creator's claim of the name, wait and look again (up
        to the options' `wait`: InitTimeout names the creator). With neither,
        a segment of an untrusted user that holds the name is reported
        (ForeignOwner) rather than "not found". With `namespace` (a
        directory), the name's keys are those of its private namespace
        (`named_in`)."""
        opts = opts or OpenOptions()
        raw = check_name(name)
        shown = json.dumps(name)
        if namespace is None:
            keys = [name_key(raw, i) for i in range(NAME_PROBES)]
        else:
            secret = namespace_secret(namespace)
            keys = [name_key_in(secret, raw, i) for i in range(NAME_PROBES)]
            shown += f" in the private namespace {os.fsdecode(namespace)}"
        start = time.monotonic()
        deadline = start + opts.wait
        pause = 0.0005
        while True:
            claimant = refused = None
            removed = False
            for key in keys:
                seen, found = look_at_key(key, raw, opts, shown)
                if seen == OBJECT:
                    # At most one object has the name: this one, unless it is
                    # removed (then a live claim may be its successor).
                    try:
                        return cls._from(found, f"name {shown} at key {key_text(key)}", opts, deadline)
                    except _Removed:
                        removed = True
                elif seen == CLAIM and claimant is None:
                    claimant = found
                elif seen == UNTRUSTED and refused is None:
                    refused = found
            if claimant is not None:
                now = time.monotonic()
                if now >= deadline:
                    raise InitTimeout(
                        f"name {shown}: a claim of the name by pid {claimant}, which still runs, did not "
                        f"become its object in {now - start:.3f} s"
                    )
                time.sleep(min(pause, deadline - now))
                pause = min(pause * 2, 0.005)
                continue
            if removed:
                raise NotFound(f"the object named {shown} was removed")
            if refused is not None:
                raise ForeignOwner(
                    f"no object is named {shown} among this user's trusted segments, but "
                    + refused.message,
                    uid=refused.uid,
                    cuid=refused.cuid,
                    gid=refused.gid,
                )
            raise NotFound(f"no object is named {shown} (keys tried: {', '.join(key_text(k) for k in keys)})")

    @classmethod
    def named_in(cls, directory, name: str, opts: Optional[OpenOptions] = None) -> "ShmObject":
        """The object named `name` in the private namespace of `directory`
        (FORMAT.md, "Names in a private namespace"; Rust's
        `Key::named_in(directory, name)`): opened as `by_name` opens one, at
        the keys the namespace's secret gives. NamespaceRefused if the
        directory or its secret may not be used (`names.namespace_secret`
        says when), NotFound if it has no secret yet."""
        return cls.by_name(name, opts, directory)

    @classmethod
    def _from(
        cls,
        att: Attachment,
        what: str,
        opts: OpenOptions,
        deadline: Optional[float] = None,
        by_id: bool = False,
    ) -> "ShmObject":
        try:
            return cls(att, what, opts, deadline, by_id)
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

    def wait_for_change(self, since: int, timeout: Optional[float] = None) -> int:
        """Wait until the version differs from `since` (above or below it),
        at most `timeout` seconds (None, or infinity, for as long as it
        takes; 0 looks once), and return the version then, as shmstore's
        `wait_for_change` on a read-only handle does (wait.py says how).
        Raises Removed once the object is removed (through shmstore, or by
        `ipcrm`) and the version did not change, and WaitTimeout (a
        TimeoutError) at the deadline. Writers do not wake a read-only
        reader: it wakes within a few milliseconds of a change (2 ms slices,
        shmstore's READ_ONLY_SLICE).

            seen = obj.version()
            while True:
                seen = obj.wait_for_change(seen)   # Removed ends the loop
                seen, (value,) = obj.read_cell("<Q")
        """
        self._check_open()
        if isinstance(since, bool) or not isinstance(since, int) or not 0 <= since <= M64:
            raise UsageError(f"since {since!r} is not a version (an integer from 0 to 2**64 - 1)")
        if timeout is not None and not timeout >= 0:
            raise UsageError(f"timeout {timeout!r} is not a number of seconds, 0 or more")
        if self.layout.kind == KIND_CELL:
            seq = self._seq

            def version() -> int:
                return seq.value

        else:
            current = self._current

            def version() -> int:
                return current.value >> 8

        return wait_for_version_change(self._att.addr, self.id, version, since, timeout, self.what)

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
            self.retries += 1
            deadline = self._back_off(retries, deadline, "cell value")
        data = pack_words(words, lay.value_size)
        return Versioned(s1, unpack(data) if unpack else data, retries)

    def copy_region(self) -> Versioned:
        """The region's current archive, copied: (version, bytes).
        FORMAT.md, "Reading a region by copying"."""
        self._check_open()
        lay = self.layout
        if lay.kind != KIND_REGION:
            raise WrongKind(f"{self.what} holds a cell (SharedCell), not a region: read it with `cell`")
        base = self._att.addr + lay.data_offset
        current = self._current
        lens, versions = self._lens, self._versions
        retries = 0
        deadline = None
        while True:
            # Each `.value` is one 8-byte load, in this order; x86-64 loads
            # are acquire loads and the acquire fence needs no instruction.
            cur = current.value
            version, buf = cur >> 8, cur & 0xFF
            if version == 0:
                raise NothingPublished(f"{self.what}: nothing has been published yet (version 0)")
            if buf >= lay.slot_count:
                raise corrupt(f"current buffer {buf} of {lay.slot_count}", "current")
            if versions[buf].value == version:
                length = lens[buf].value
                if length > lay.slot_stride:
                    raise corrupt(
                        f"archive of {length} bytes in a buffer of {lay.slot_stride}", f"buffers[{buf}].len"
                    )
                words = load_words(base + buf * lay.slot_stride, (length + 7) // 8)
                if versions[buf].value == version:
                    break
            # Buffer `buf` was rewritten: a publish moved `current` off it
            # before, and `current` never comes back to `cur`.
            if current.value == cur:
                raise corrupt(
                    f"current names buffer {buf}, which does not hold version {version}", f"buffers[{buf}].version"
                )
            retries += 1
            self.retries += 1
            deadline = self._back_off(retries, deadline, "region archive")
        return Versioned(version, pack_words(words, length), retries)

    def read_region(self, schema) -> Versioned:
        """The region's current value decoded with `schema` (see
        `parse_schema`): (version, value)."""
        root = schema if isinstance(schema, ArchivedType) else parse_schema(schema)
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

    def read_value(self) -> Versioned:
        """The current value decoded by the object's stored schema (FORMAT.md,
        "Schema (optional)"): (version, value). A cell's value or a region's
        archive becomes Python values: a struct a dict by field name, a
        tuple, array, vector or set a list, a map a dict (or a list of [key,
        value] pairs when its keys are not scalars), an enum its variant's
        name or {name: fields}. NoSchema if the object stores none."""
        self._check_open()
        lay = self.layout
        if lay.schema is None:
            raise NoSchema(
                f"{self.what} stores no schema (its creator did not give one): read it with a schema "
                f"of your own ({'read_cell(fmt)' if lay.kind == KIND_CELL else 'read_region(schema)'})"
            )
        if lay.kind == KIND_CELL:
            read = self.read_cell()
            return Versioned(read[0], decode_cell(read[1], lay.schema.root), read.retries)
        return self.read_region(lay.schema.root)

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
                f"reader copies; give the object more slots, a region's writer a reuse grace "
                f"longer than a copy, or retry"
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
            "format_version": lay.format_version,
            "schema": lay.schema.text if lay.schema is not None else None,
            "schema_hash": f"{lay.schema_hash:#018x}",
            "creator_pid": lay.creator_pid,
            "layout": {
                "slot_count": lay.slot_count,
                "data_offset": lay.data_offset,
                "slot_stride": lay.slot_stride,
                "used_len": lay.used_len,
            },
            "recoveries": load_u64(addr + OFF_RECOVERIES),
            "life": _life_json(load_u64(addr + OFF_LIFE)),
            "waiting": bool(load_u32(addr + OFF_NOTIFY) & 1),
        }
        if lay.kind == KIND_CELL:
            out["version"] = self._seq.value
            out["writing"] = self._writing.value
        else:
            ctl = addr + HEADER_SIZE
            cur = self._current.value
            pins = []
            for p in range(PIN_SLOTS):
                word = load_u64(ctl + CTL_PINS + 64 * p)
                pid = word & ((1 << 22) - 1)
                buf = (word >> 22) & 0x7F
                if pid:
                    pins.append({"slot": p, "pid": pid, "buffer": buf - 1 if buf else None})
            out["version"] = cur >> 8
            out["region"] = {
                "current_version": cur >> 8,
                "current_buffer": cur & 0xFF,
                "buffers": [
                    {"len": load_u64(ctl + CTL_BUFFERS + 16 * i), "version": load_u64(ctl + CTL_BUFFERS + 16 * i + 8)}
                    for i in range(lay.slot_count)
                ],
                "pins": pins,
            }
        return out


def _life_json(word: int) -> dict:
    """The `life` word as `info` shows it (FORMAT.md, "Removal")."""
    state = ("live", "collecting", "removing", "removing")[word & 3]
    out = {"state": state}
    if state != "live":
        out["pid"] = (word >> 2) & 0x3FFFFF
    return out


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
