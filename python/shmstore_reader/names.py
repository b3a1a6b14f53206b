"""Names (FORMAT.md, "Names"): which names are valid, the sequence of keys
a name may be at, and which key of it holds the named object.

A name is 1 to 128 bytes of UTF-8 without control characters. Its key `i`
(0 to 7) is 32-bit FNV-1a over "shmstore:", the name and the byte `i`,
with the top bit set, so that it is never IPC_PRIVATE nor an ftok key of
a small project id. The object is at the first key whose segment holds
shmstore's magic and this name.

The creator of a named object writes the name before the magic, which it
stores with release ordering; a look that sees the magic (an acquire load
on x86-64, see host.py) therefore reads the name the object was made
under, and that name never changes. `_holds` checks it on the attachment
that is then used, so nothing can replace the segment between the check
and the read.

A look that sees no magic may still be looking at a creator at work, and
must not skip its key (FORMAT.md, "Names"). The creator stores the magic,
then `state = INITIALIZING` with relaxed ordering: loads of the magic
then the state may see the state without the magic, so with magic 0 a
state of 0, 1 or 2 is a creator at work, waited for while it lives and
its segment is less than 2 seconds old; only a magic that is neither 0
nor shmstore's, or a state above 2, is another program's. And a creator
may write its first words, finish and exit between the loads that saw no
magic and the judgement that finds it dead or its time passed: the magic
is loaded again after that judgement, and a key whose magic is there now
is looked at again.
"""

from __future__ import annotations

import ctypes
import time
import unicodedata
from typing import Optional

from .errors import ForeignOwner, InitTimeout, NotFound, PermissionDenied, UsageError
from .header import (
    HEADER_SIZE,
    MAGIC,
    NAME_MAX,
    NAME_PROBES,
    OFF_MAGIC,
    OFF_NAME,
    OFF_NAME_LEN,
    OFF_STATE,
    STATE_FRESH,
    STATE_READY,
    _creator_alive,
)
from .host import _u32, _u64
from .sysv import OpenOptions, _Attachment, _key_text, _shmget


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
            magic = _u64(addr + OFF_MAGIC)
            if magic == MAGIC:
                # The name was stored before the magic (release).
                length = _u32(addr + OFF_NAME_LEN)
                keep = length <= NAME_MAX and ctypes.string_at(addr + OFF_NAME, length) == name
                return att if keep else None
            state = _u32(addr + OFF_STATE)
            if magic != 0 or state > STATE_READY:
                return None
            # No magic seen: a creator at its first instructions (its
            # state, stored after the magic, may be seen first), one that
            # died there, or another program's zeroed segment.
            if (
                not _creator_alive(addr, att.info)
                or att.info.ctime <= 0
                or att.info.ctime + 2 < time.time()
            ):
                # It may have finished, and exited, since the magic was
                # loaded: then the object is there.
                if _u64(addr + OFF_MAGIC) == MAGIC:
                    continue
                return None
            waited = time.monotonic() - start
            if waited >= opts.wait:
                seen = "still all zeros" if state == STATE_FRESH else f"at state {state} with no magic yet"
                raise InitTimeout(
                    f"segment {att.info.id} ({what}) is {seen} after {waited:.3f} s "
                    f"while its creator (pid {att.info.cpid}) runs"
                )
            time.sleep(0.001)
    finally:
        if not keep:
            att.close()
