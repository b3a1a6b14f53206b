"""The host this reader runs on, and how it reads the shared words.

It runs on Linux x86-64 with a 64-bit Python only (`check_host`), and
reads every word another process may write with the loads below. Why
that is correct there, and only there:

Other processes write the header's changing words (`seq`, `writing`, a
region's `current` and buffer lengths) and the data slots while this
process reads them. FORMAT.md's reading protocols need (1) each aligned
8-byte word to be read by one load, so that it is never half old and half
new, (2) acquire ordering on the loads of `seq` and `current`, and an
acquire fence between the copy of a slot and the second look at
`writing`, `seq` or `current`, so that the copy is not served later than
those loads.

(1) Every word is read with ``ctypes.c_uint64.from_address(addr).value``
(or an element of a `c_uint64` array made with `from_address`), whose C
getter is ``memcpy(&val, ptr, 8)`` into a local: compilers turn that into
a single 8-byte ``mov`` (checked in the CPython 3.11 builds this was
tested with: `Q_get` is ``mov (%rdi),%rdi``), and an aligned 8-byte load
is single-copy atomic on x86-64. Slicing a `c_uint64` array (``arr[:]``)
reads its elements one after the other through that same getter, in
increasing order; only `c_char` and `c_wchar` arrays are sliced with a
bulk `memcpy`, which may use string moves whose loads the processor may
perform out of order, so they are never used on changing bytes.

(2) x86-64 (TSO) never reorders a load with an older load: every plain
load is an acquire load, and an acquire fence needs no instruction. The
compiler cannot reorder the loads either: each is made by a separate call
into ctypes from the interpreter loop. So reading the words one by one,
in the protocol's order, is reading them as the protocol says.

Elsewhere (aarch64, POWER, RISC-V) loads may be reordered with each other
and Python has no way to issue the fences or load-acquire instructions the
protocol needs, so a copy could mix two versions and pass the check: this
reader refuses to run there rather than return torn values.

This module also says which ABI shmstore built for this host writes in a
header (`host_abi`), which validation compares with the segment's.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct

from .errors import UnsupportedHost

M64 = (1 << 64) - 1


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


def load_u64(addr: int) -> int:
    return ctypes.c_uint64.from_address(addr).value


def load_u32(addr: int) -> int:
    return ctypes.c_uint32.from_address(addr).value


def load_i32(addr: int) -> int:
    return ctypes.c_int32.from_address(addr).value


def load_words(addr: int, count: int) -> list:
    """`count` aligned 8-byte words from `addr`, each by one load, in order."""
    if count == 0:
        return []
    return (ctypes.c_uint64 * count).from_address(addr)[:]


def pack_words(words: list, length: int) -> bytes:
    return struct.pack(f"<{len(words)}Q", *words)[:length]


class WordArray:
    """A slot's words, read one load each (see the module's docstring)."""

    __slots__ = ("_array",)

    def __init__(self, addr: int, count: int):
        self._array = (ctypes.c_uint64 * count).from_address(addr) if count else None

    def load(self) -> list:
        return self._array[:] if self._array is not None else []


def host_abi() -> tuple:
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


def abi_text(abi: tuple) -> str:
    arch = {1: "x86_64", 2: "aarch64", 3: "riscv64", 4: "x86", 5: "arm"}.get(abi[0], "unknown arch")
    libc = {1: "glibc", 2: "musl"}.get(abi[2], "unknown libc")
    return f"{arch}, {abi[1]}-bit, {libc}, {abi[3]}-byte pthread mutex"
