"""System V shared memory through the C library: finding a segment by key
or id, what the kernel says of it, whom to trust, and attaching it.

`shmget`, `shmat`, `shmdt` and `shmctl` are called through `ctypes` with
the x86-64 Linux `struct shmid_ds` (its size and layout are checked before
the first call). Nothing here writes to a segment: `shmget` asks for no
access and creates nothing, and a segment is attached with `SHM_RDONLY`.

Before attaching, the segment's owner and creator are checked
(`_check_owner`), as shmstore checks them: a segment owned or created by
another user (not root, not a trusted user or group's member) is refused
unless the caller allows it, because anyone may put anything at a known
key. They are checked again with `IPC_STAT` after `shmat`: the attachment
keeps the id from naming another segment, so what `IPC_STAT` says then is
what is read, and a segment found at a key must still have that key (one
removed meanwhile has key 0: the key is looked up again, `attach_key`).
An attachment keeps what that `IPC_STAT` said (`SegmentInfo`): its size
bounds every read, and its creator pid and time are what telling a slow
creator from a dead one starts from (FORMAT.md, "Opening").
"""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass
from typing import Optional

from .errors import ForeignOwner, NotFound, OsFailure, PermissionDenied, UnsupportedHost, UsageError
from .host import M64, check_host

# Linux System V IPC (<sys/ipc.h>, <sys/shm.h>).
IPC_STAT = 2
SHM_RDONLY = 0o10000
SHM_DEST = 0o1000  # in shm_perm.mode: removed (IPC_RMID), gone at the last detach
# How many times a key is looked up again when the segment found there is
# removed before it is attached.
KEY_ROUNDS = 16


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


def libc():
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


def key_text(key: int) -> str:
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

    @property
    def removed(self) -> bool:
        """`IPC_RMID` was called on it (SHM_DEST)."""
        return bool(self.mode & SHM_DEST)

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "key": key_text(self.key),
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


def segment_stat(shmid: int, what: str) -> SegmentInfo:
    ds = _ShmidDs()
    if libc().shmctl(shmid, IPC_STAT, ctypes.byref(ds)) < 0:
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


def shmget(key: int) -> int:
    """The id of the segment at `key` (no create, no access asked)."""
    shmid = libc().shmget(_signed_key(key), 0, 0)
    if shmid < 0:
        err = ctypes.get_errno()
        if err == errno.ENOENT:
            raise NotFound(f"no segment has key {key_text(key)}")
        if err in (errno.EACCES, errno.EPERM):
            raise PermissionDenied(f"may not open the segment at key {key_text(key)}: {os.strerror(err)}")
        raise OsFailure(f"shmget({key_text(key)}): {os.strerror(err)}")
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
    """How to open: how long to wait for a creator (or a remover, or a
    collector), which owners to trust besides this user and root (one more
    user, a group's members, or anyone), and how long a read may retry."""

    wait: float = 5.0
    allow_foreign_owner: bool = False
    trust_group: Optional[int] = None
    timeout: float = 10.0
    trust_user: Optional[int] = None


def _foreign_owner(info: SegmentInfo, what: str) -> ForeignOwner:
    """The refusal of a segment of an untrusted owner or creator, naming
    them and the ways to trust them, as shmstore's Error::ForeignOwner
    does."""
    remedy = f"--trust-user {info.uid}, " if info.uid == info.cuid else ""
    return ForeignOwner(
        f"segment {info.id} ({what}) is owned by uid {info.uid} and was created by uid {info.cuid} "
        f"(group {info.gid}), not by this user (uid {os.geteuid()}) or root, so it is not trusted: "
        f"any local user can make a segment at a key. If that user is trusted: {remedy}"
        f"--trust-group {info.gid} when its owner and creator are members of group {info.gid}, or "
        f"--allow-foreign-owner; otherwise remove it",
        uid=info.uid,
        cuid=info.cuid,
        gid=info.gid,
    )


def _check_owner(info: SegmentInfo, opts: OpenOptions, what: str) -> None:
    """Refuse a segment owned or created by a user other than this one,
    root and the user or group the options trust (as shmstore does):
    another user could have put anything at a known key."""
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
        return uid == euid or uid == 0 or uid == opts.trust_user or in_group(uid)

    if not trusted(info.uid) or not trusted(info.cuid):
        raise _foreign_owner(info, what)


class _Gone(Exception):
    """The segment found at a key is gone, or no longer at that key (removed
    meanwhile): look the key up again."""


class Attachment:
    """A read-only attachment of a segment, with what IPC_STAT said of it
    once attached. With `key`, the segment must still be the one at `key`
    (else _Gone); with `trust` false, whoever owns it is attached (to see
    whether it holds a name, never to read an object)."""

    def __init__(self, shmid: int, what: str, opts: OpenOptions, key: Optional[int] = None, trust: bool = True):
        self.addr = None
        before = segment_stat(shmid, what)
        if trust:
            _check_owner(before, opts, what)
        addr = libc().shmat(shmid, None, SHM_RDONLY)
        if addr is None or addr == M64:
            err = ctypes.get_errno()
            if err in (errno.EACCES, errno.EPERM):
                raise PermissionDenied(
                    f"may not attach segment {shmid} ({what}) read-only: {os.strerror(err)}"
                )
            if err in (errno.EINVAL, errno.EIDRM):
                if key is not None:
                    raise _Gone()
                raise NotFound(f"segment {shmid} ({what}) is gone")
            raise OsFailure(f"shmat of segment {shmid} ({what}): {os.strerror(err)}")
        self.addr = addr
        try:
            self.info = segment_stat(shmid, what)
            if key is not None and self.info.key != key & 0xFFFFFFFF:
                raise _Gone()
            if trust:
                _check_owner(self.info, opts, what)
        except BaseException:
            self.close()
            raise
        self.size = self.info.size

    def close(self) -> None:
        if self.addr is not None:
            libc().shmdt(self.addr)
            self.addr = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def attach_key(key: int, what: str, opts: OpenOptions, trust: bool = True) -> Attachment:
    """Attach the segment at `key` (NotFound if there is none), looking the
    key up again while the segment found is removed before it is
    attached."""
    for _ in range(KEY_ROUNDS):
        try:
            return Attachment(shmget(key), what, opts, key=key, trust=trust)
        except _Gone:
            continue
    raise NotFound(
        f"the segment at key {key_text(key)} ({what}) was removed, and another made, "
        f"{KEY_ROUNDS} times while it was being attached; try again"
    )
