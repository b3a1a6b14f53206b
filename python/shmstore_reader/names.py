"""Names (FORMAT.md, "Names"): which names are valid, the sequence of keys
a name may be at, and what each key of it holds.

A name is 1 to 128 bytes of UTF-8 without control characters. Its key `i`
(0 to 7) is 32-bit FNV-1a over the byte `i`, then "shmstore:", then the
name, with the top bit set, so that it is never IPC_PRIVATE nor an ftok key
of a small project id.

What counts (`_look`): a segment at one of the keys holds a *claim* of the
name when it is trusted (owner and creator: this user, root, or as the
options say), has shmstore's magic and has the name; the claim is the
name's *object* when its state is READY. The creator writes the name
before the magic, which it stores with release ordering; a look that sees
the magic (an acquire load on x86-64, see host.py) therefore reads the
name the object was made under, and that name never changes. The look is
made on the attachment that is then used, whose IPC_STAT (after shmat)
says who owns it: nothing can replace the segment between the check and
the read.

A segment whose magic is not there is no claim, however young or old: it
is skipped (no time window decides anything). A claim whose creator lives
(by the pid and start time its header names) is a creator at work, which
an open waits for; one whose creator is judged dead is passed over, after
a last look at its state (the creator may have finished, and exited,
since the state was loaded). An untrusted segment never counts; if it
holds the name (looked at read-only, if its mode lets this user), it is
what an open that finds no object and no live claim reports.
"""

from __future__ import annotations

import ctypes
import unicodedata

from .errors import ForeignOwner, NotFound, PermissionDenied, ReaderError, UsageError
from .header import (
    HEADER_SIZE,
    MAGIC,
    NAME_MAX,
    NAME_PROBES,
    OFF_CREATOR_PID,
    OFF_CREATOR_START,
    OFF_MAGIC,
    OFF_NAME,
    OFF_NAME_LEN,
    OFF_STATE,
    STATE_READY,
    _same_process_alive,
)
from .host import _i32, _u32, _u64
from .sysv import OpenOptions, _Attachment, _attach_key, _key_text


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
    """Key `i` of a name's sequence: 32-bit FNV-1a over the byte `i`, then
    "shmstore:", then the name, with the top bit set."""
    h = 0x811C9DC5
    for b in bytes([i]) + b"shmstore:" + name:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h | 0x80000000


def name_keys(name: str) -> list:
    """The 8 keys a named object may be at, in the order they are tried."""
    raw = check_name(name)
    return [name_key(raw, i) for i in range(NAME_PROBES)]


def _claims(att: _Attachment, name: bytes) -> bool:
    """Whether the attached segment holds a claim of `name`: shmstore's
    magic, then (written before it) the name."""
    if att.size < HEADER_SIZE:
        return False
    addr = att.addr
    if _u64(addr + OFF_MAGIC) != MAGIC:
        return False
    length = _u32(addr + OFF_NAME_LEN)
    return length <= NAME_MAX and ctypes.string_at(addr + OFF_NAME, length) == name


def _claimant_alive(pid: int, start: int) -> bool:
    """Whether the creator a claim names (pid, start time) still runs."""
    return _same_process_alive(pid, start)


# What a key of a name holds (`_look`).
NOTHING = "nothing"  # no segment
OTHER = "other"  # anything that does not count
UNTRUSTED = "untrusted"  # an untrusted segment holding the name: its ForeignOwner
CLAIM = "claim"  # a trusted claim whose creator lives: its pid
OBJECT = "object"  # the name's object: its attachment


def _look(key: int, name: bytes, opts: OpenOptions, shown: str) -> tuple:
    """What `key` holds for the name: (NOTHING, None), (OTHER, None),
    (UNTRUSTED, the ForeignOwner refusal), (CLAIM, creator pid) or (OBJECT,
    the attachment, which the caller then owns)."""
    what = f"name {shown} at key {_key_text(key)}"
    try:
        att = _attach_key(key, what, opts)
    except NotFound:
        return (NOTHING, None)
    except PermissionDenied:
        return (OTHER, None)
    except ForeignOwner as refusal:
        try:
            peek = _attach_key(key, what, opts, trust=False)
        except ReaderError:
            return (OTHER, None)
        try:
            return (UNTRUSTED, refusal) if _claims(peek, name) else (OTHER, None)
        finally:
            peek.close()
    keep = False
    try:
        if not _claims(att, name):
            return (OTHER, None)
        addr = att.addr
        if _u32(addr + OFF_STATE) == STATE_READY:
            keep = True
            return (OBJECT, att)
        pid = _i32(addr + OFF_CREATOR_PID)
        if _claimant_alive(pid, _u64(addr + OFF_CREATOR_START)):
            return (CLAIM, pid)
        # Judged dead: it may have finished, and exited, since the state
        # was loaded.
        if _u32(addr + OFF_STATE) == STATE_READY:
            keep = True
            return (OBJECT, att)
        return (OTHER, None)
    finally:
        if not keep:
            att.close()
