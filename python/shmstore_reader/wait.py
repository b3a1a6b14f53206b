"""Waiting for a change of an object's version (FORMAT.md, "Waiting for a
change"), as a read-only shmstore handle waits (`wait_for_change`,
src/store/wait.rs).

The version is a cell's `seq` or a region's `current >> 8`; the wait ends
when it differs from `since` (above or below it), when the object is
removed, or at the deadline. Writers wake only waiters that set WAITING in
the header's `notify` word, which this reader, attached read-only, cannot
write: it sleeps with FUTEX_WAIT on `notify` in slices of WAIT_SLICE (2 ms,
shmstore's READ_ONLY_SLICE), which a writer's or a remover's wake may end
early, and looks at the version and the `life` word after each. A removal
through shmstore marks `life` REMOVING first, which the next look sees;
`ipcrm` marks nothing, so the kernel is asked too (`IPC_STAT`: SHM_DEST
set, or the segment gone) when the wait starts and after a slice once
min(REMOVAL_CHECK, WAIT_SLICE) passed since it last asked (shmstore's
REMOVAL_CHECK is 100 ms).

Every sleep lasts at most a slice and what is left of the timeout, and
nothing read from the segment is used as an index or a length: a peer
writing any byte at any time (the `notify` word nonstop, say, so that
every FUTEX_WAIT returns at once) cannot hold a wait past its deadline.

The futex has no C library wrapper: it is called through `syscall(2)`
(`ctypes`), with its number for this machine (SYS_futex: 202 on x86-64, 98
on aarch64), FUTEX_WAIT and a relative timeout; the futex is a shared one
(no FUTEX_PRIVATE_FLAG), which the kernel keys by the page, so processes
meet on it whatever address they attached at, and waiting only reads it.
"""

from __future__ import annotations

import ctypes
import errno
import math
import os
import platform
import time
from typing import Callable, Optional

from .errors import NotFound, OsFailure, Removed, UnsupportedHost, WaitTimeout
from .header import LIFE_REMOVING, OFF_LIFE, OFF_NOTIFY
from .sysv import libc, segment_stat

# The slice a read-only waiter sleeps before it looks again (shmstore's
# READ_ONLY_SLICE), and how often, at most, it asks the kernel whether the
# segment was removed while nothing changed (shmstore's REMOVAL_CHECK; a
# read-only waiter asks after each slice, which is shorter).
WAIT_SLICE = 0.002
REMOVAL_CHECK = 0.1

FUTEX_WAIT = 0
_SYS_FUTEX = {"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98}


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_FUTEX = None


def _futex():
    """(syscall, SYS_futex) for this machine."""
    global _FUTEX
    if _FUTEX is None:
        machine = platform.machine()
        number = _SYS_FUTEX.get(machine.lower())
        if number is None:
            raise UnsupportedHost(f"no futex system call number is known for {machine or 'this machine'}")
        call = libc().syscall
        call.restype = ctypes.c_long
        _FUTEX = (call, number)
    return _FUTEX


def _futex_wait(addr: int, expected: int, seconds: float) -> None:
    """Sleep while the 32-bit word at `addr` holds `expected`, at most
    `seconds`. Returns when woken, at the timeout, at once if the word
    holds something else (EAGAIN), or when interrupted (EINTR); raises
    OsFailure for any other failure."""
    call, number = _futex()
    ns = max(0, int(seconds * 1e9))
    timeout = _Timespec(ns // 1_000_000_000, ns % 1_000_000_000)
    # syscall(2) reads its arguments as longs: pass every one as a long or
    # a pointer.
    rc = call(
        ctypes.c_long(number),
        ctypes.c_void_p(addr),
        ctypes.c_long(FUTEX_WAIT),
        ctypes.c_long(expected),
        ctypes.byref(timeout),
        ctypes.c_void_p(None),
        ctypes.c_long(0),
    )
    if rc == -1:
        err = ctypes.get_errno()
        if err not in (errno.EAGAIN, errno.EINTR, errno.ETIMEDOUT):
            raise OsFailure(f"futex(FUTEX_WAIT): {os.strerror(err)}")


def wait_for_version_change(
    addr: int, shmid: int, version: Callable[[], int], since: int, timeout: Optional[float], what: str
) -> int:
    """Wait, on the attachment at `addr` of segment `shmid`, until
    `version()` differs from `since`, at most `timeout` seconds (None, or
    infinity, for as long as it takes; 0 looks once): the version then;
    Removed once the object is removed and the version did not change;
    WaitTimeout at the deadline."""
    notify = ctypes.c_uint32.from_address(addr + OFF_NOTIFY)
    life = ctypes.c_uint64.from_address(addr + OFF_LIFE)
    deadline = None if timeout is None or math.isinf(timeout) else time.monotonic() + timeout

    def marked() -> bool:
        return life.value & 3 >= LIFE_REMOVING

    def kernel_removed() -> bool:
        try:
            return segment_stat(shmid, what).removed
        except NotFound:
            return True

    def by_mark() -> Removed:
        return Removed(f"{what} was removed (its life word is marked REMOVING) at version {since}")

    def by_kernel() -> Removed:
        return Removed(
            f"{what} was removed (the kernel marked segment {shmid} for destruction, or it is gone) "
            f"at version {since}"
        )

    now = version()
    if now == since and not marked() and kernel_removed():
        raise by_kernel()
    if now == since and marked():
        raise by_mark()
    checked = time.monotonic()
    check_every = min(REMOVAL_CHECK, WAIT_SLICE)
    while True:
        slice_ = WAIT_SLICE
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                # Out of time: one last look, so that even a zero timeout
                # sees a change made before the call.
                now = version()
                if now != since:
                    return now
                if marked():
                    raise by_mark()
                raise WaitTimeout(f"{what}: the version stayed {since} for {timeout} s")
            slice_ = min(left, WAIT_SLICE)
        # One round: load the word, look, and sleep while the word still
        # holds what was loaded (x86-64 keeps these loads in order).
        word = notify.value
        now = version()
        moved = now != since or marked()
        if not moved:
            _futex_wait(addr + OFF_NOTIFY, word, slice_)
            now = version()
            moved = now != since or marked()
        if moved:
            if now == since:
                raise by_mark()
            return now
        t = time.monotonic()
        if t - checked >= check_every:
            if kernel_removed():
                raise by_kernel()
            checked = t
