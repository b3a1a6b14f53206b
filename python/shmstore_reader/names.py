"""Names (FORMAT.md, "Names"): which names are valid, the sequence of keys
a name may be at, in a private namespace too, and what each key of it
holds.

A name is 1 to 128 bytes of UTF-8 without control characters. Its key `i`
(0 to 7) is 32-bit FNV-1a over the byte `i`, then "shmstore:", then the
name, with the top bit set, so that it is never IPC_PRIVATE nor an ftok key
of a small project id.

In a private namespace (FORMAT.md, "Names in a private namespace"), a
directory holding a 16-byte secret (DIR/shmstore.secret, which shmstore
makes on the first use of a name there), key `i` is the low 32 bits of
SipHash-2-4 under the secret of the same bytes, with the top bit set: a
user who cannot read the secret cannot compute a name's keys, and so
cannot take them. The secret is only read here, never made, and only
after the checks shmstore makes (`namespace_secret`): the directory is
this user's or root's and others may not write it; the secret is this
user's or root's, gives others no access and is 16 bytes.

What counts (`look_at_key`): a segment at one of the keys holds a *claim* of the
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
import os
import stat
import unicodedata

from .errors import ForeignOwner, NamespaceRefused, NotFound, PermissionDenied, ReaderError, UsageError
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
    same_process_alive,
)
from .host import load_i32, load_u32, load_u64
from .sysv import OpenOptions, Attachment, attach_key, key_text


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


# The secret of a private namespace: its file in the directory, its length.
SECRET_FILE = "shmstore.secret"
SECRET_LEN = 16

_M64 = 0xFFFFFFFFFFFFFFFF


def _sip_round(v: list) -> None:
    def rotl(x: int, b: int) -> int:
        return ((x << b) | (x >> (64 - b))) & _M64

    v[0] = (v[0] + v[1]) & _M64
    v[1] = rotl(v[1], 13) ^ v[0]
    v[0] = rotl(v[0], 32)
    v[2] = (v[2] + v[3]) & _M64
    v[3] = rotl(v[3], 16) ^ v[2]
    v[0] = (v[0] + v[3]) & _M64
    v[3] = rotl(v[3], 21) ^ v[0]
    v[2] = (v[2] + v[1]) & _M64
    v[1] = rotl(v[1], 17) ^ v[2]
    v[2] = rotl(v[2], 32)


def siphash24(key: bytes, data: bytes) -> int:
    """SipHash-2-4 (Aumasson and Bernstein) of `data` under the 16-byte
    `key` (k0 and k1: its bytes 0-7 and 8-15, little-endian), as an
    unsigned 64-bit integer."""
    if len(key) != SECRET_LEN:
        raise UsageError(f"a SipHash key is {SECRET_LEN} bytes, not {len(key)}")
    k0 = int.from_bytes(key[:8], "little")
    k1 = int.from_bytes(key[8:], "little")
    v = [k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D, k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573]
    whole = len(data) - len(data) % 8
    words = [int.from_bytes(data[k : k + 8], "little") for k in range(0, whole, 8)]
    # The last word: the bytes left, and the length's low byte on top.
    words.append(int.from_bytes(data[whole:], "little") | ((len(data) & 0xFF) << 56))
    for m in words:
        v[3] ^= m
        _sip_round(v)
        _sip_round(v)
        v[0] ^= m
    v[2] ^= 0xFF
    for _ in range(4):
        _sip_round(v)
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def name_key_in(secret: bytes, name: bytes, i: int) -> int:
    """Key `i` of a name's sequence in the private namespace whose secret
    is `secret`: the low 32 bits of SipHash-2-4, under the secret, of the
    byte `i`, then "shmstore:", then the name, with the top bit set."""
    return (siphash24(secret, bytes([i]) + b"shmstore:" + name) & 0xFFFFFFFF) | 0x80000000


def _trusted_owner(uid: int) -> bool:
    """Whether a namespace's directory or secret of user `uid` may be used:
    this process's effective user's, or root's."""
    return uid == os.geteuid() or uid == 0


def namespace_secret(directory) -> bytes:
    """The secret of the private namespace in `directory` (a path), checked
    as shmstore checks it (FORMAT.md, "Names in a private namespace"):
    NamespaceRefused if the directory is not one, is another user's (not
    root's) or others may write it, or if the secret is another user's (not
    root's), gives others any access (mode & 0o007) or is not 16 bytes, or
    if either cannot be looked at; NotFound if the directory has no secret
    yet (shmstore makes it on the first use of a name there, so no object
    is in the namespace; this reader never makes it). Symbolic links are
    followed, as shmstore follows them."""
    shown = os.fsdecode(directory)

    def refuse(reason: str) -> NamespaceRefused:
        return NamespaceRefused(
            f"the private namespace in {shown} cannot be used: {reason}; keep the directory this "
            f"user's (or root's), not writable by others, and its secret readable by nobody else",
            directory=shown,
        )

    try:
        st = os.stat(shown)
    except OSError as e:
        raise refuse(e.strerror or str(e))
    if not stat.S_ISDIR(st.st_mode):
        raise refuse("it is not a directory")
    if not _trusted_owner(st.st_uid):
        raise refuse(f"it belongs to uid {st.st_uid}, not to this user or root")
    if st.st_mode & 0o022:
        raise refuse(
            "its group or other users may write it (and so put a secret of theirs there): chmod go-w"
        )
    path = os.path.join(shown, SECRET_FILE)
    try:
        # Not blocked by a FIFO, not followed through a symbolic link;
        # Python's descriptors are close-on-exec.
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise NotFound(
            f"the private namespace in {shown} has no secret yet (shmstore makes {SECRET_FILE} on "
            f"the first use of a name there), so no object is in it"
        )
    except OSError as e:
        raise refuse(f"{SECRET_FILE}: {e.strerror or e}")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise refuse(f"{SECRET_FILE} is not a regular file")
        if not _trusted_owner(st.st_uid):
            raise refuse(f"{SECRET_FILE} belongs to uid {st.st_uid}, not to this user or root")
        if st.st_mode & 0o007:
            raise refuse(f"other users may read or use {SECRET_FILE}: chmod o-rwx")
        if st.st_size != SECRET_LEN:
            raise refuse(f"{SECRET_FILE} has {st.st_size} bytes, not {SECRET_LEN}")
        # Up to one byte more than a secret: a file that grew is refused.
        secret = b""
        while len(secret) <= SECRET_LEN:
            more = os.read(fd, SECRET_LEN + 1 - len(secret))
            if not more:
                break
            secret += more
    except OSError as e:
        raise refuse(f"{SECRET_FILE}: {e.strerror or e}")
    finally:
        os.close(fd)
    if len(secret) != SECRET_LEN:
        raise refuse(f"{SECRET_FILE} has {len(secret)} bytes, not {SECRET_LEN}")
    return secret


def name_keys_in(directory, name: str) -> list:
    """The 8 keys a named object may be at in the private namespace of
    `directory`, in the order they are tried (`namespace_secret` says when
    the namespace is refused)."""
    raw = check_name(name)
    secret = namespace_secret(directory)
    return [name_key_in(secret, raw, i) for i in range(NAME_PROBES)]


def _claims(att: Attachment, name: bytes) -> bool:
    """Whether the attached segment holds a claim of `name`: shmstore's
    magic, then (written before it) the name."""
    if att.size < HEADER_SIZE:
        return False
    addr = att.addr
    if load_u64(addr + OFF_MAGIC) != MAGIC:
        return False
    length = load_u32(addr + OFF_NAME_LEN)
    return length <= NAME_MAX and ctypes.string_at(addr + OFF_NAME, length) == name


def _claimant_alive(pid: int, start: int) -> bool:
    """Whether the creator a claim names (pid, start time) still runs."""
    return same_process_alive(pid, start)


# What a key of a name holds (`look_at_key`).
NOTHING = "nothing"  # no segment
OTHER = "other"  # anything that does not count
UNTRUSTED = "untrusted"  # an untrusted segment holding the name: its ForeignOwner
CLAIM = "claim"  # a trusted claim whose creator lives: its pid
OBJECT = "object"  # the name's object: its attachment


def look_at_key(key: int, name: bytes, opts: OpenOptions, shown: str) -> tuple:
    """What `key` holds for the name: (NOTHING, None), (OTHER, None),
    (UNTRUSTED, the ForeignOwner refusal), (CLAIM, creator pid) or (OBJECT,
    the attachment, which the caller then owns)."""
    what = f"name {shown} at key {key_text(key)}"
    try:
        att = attach_key(key, what, opts)
    except NotFound:
        return (NOTHING, None)
    except PermissionDenied:
        return (OTHER, None)
    except ForeignOwner as refusal:
        try:
            peek = attach_key(key, what, opts, trust=False)
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
        if load_u32(addr + OFF_STATE) == STATE_READY:
            keep = True
            return (OBJECT, att)
        pid = load_i32(addr + OFF_CREATOR_PID)
        if _claimant_alive(pid, load_u64(addr + OFF_CREATOR_START)):
            return (CLAIM, pid)
        # Judged dead: it may have finished, and exited, since the state
        # was loaded.
        if load_u32(addr + OFF_STATE) == STATE_READY:
            keep = True
            return (OBJECT, att)
        return (OTHER, None)
    finally:
        if not keep:
            att.close()
