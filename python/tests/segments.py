"""Segment images for the tests: a READY header as FORMAT.md lays it out
(version 6, with or without a stored schema) followed by a cell's slots or
a region's control block and buffers, built in memory; and, where the
host allows it, a private System V segment holding such an image, which
the reader then opens by id."""

import ctypes
import os
import struct

from shmstore_reader import fnv1a64
from shmstore_reader.header import (
    HEADER_SIZE,
    KIND_CELL,
    KIND_REGION,
    MAGIC,
    OFF_ABI_ARCH,
    OFF_CREATOR_PID,
    OFF_DATA_OFFSET,
    OFF_FORMAT_VERSION,
    OFF_HEADER_SIZE,
    OFF_KIND,
    OFF_MAGIC,
    OFF_SCHEMA_HASH,
    OFF_SCHEMA_LEN,
    OFF_SEQ,
    OFF_SLOT_COUNT,
    OFF_SLOT_STRIDE,
    OFF_STATE,
    OFF_TYPE_EXTRA,
    OFF_TYPE_NAME,
    OFF_TYPE_NAME_LEN,
    OFF_USED_LEN,
    OFF_VALUE_ALIGN,
    OFF_VALUE_SIZE,
    OFF_WRITING,
    REGION_CONTROL_SIZE,
    RKYV_FORMAT,
    SCHEMA_OFFSETS,
    STATE_READY,
)
from shmstore_reader.host import host_abi

CTL = HEADER_SIZE  # a region's control block


def round_up(n, align):
    return (n + align - 1) // align * align


def image(kind, value_size, value_align, schema=b"", slots=4, stride=None, data_offset=None, version=6,
          type_name=b"demo::Value", schema_hash=None):
    """A READY object's bytes (bytearray): the header, the schema at its
    offset, and empty slots. `schema_hash` overrides the schema's hash."""
    schema = schema.encode() if isinstance(schema, str) else schema
    unit = max(value_align, 64 if kind == KIND_REGION else 8)
    if data_offset is None:
        data_offset = round_up(SCHEMA_OFFSETS[kind] + len(schema), unit)
    if stride is None:
        stride = round_up(max(value_size, 8), unit if kind == KIND_REGION else 8)
    used = data_offset + slots * stride
    buf = bytearray(used)
    struct.pack_into("<Q", buf, OFF_MAGIC, MAGIC)
    struct.pack_into("<IIII", buf, OFF_FORMAT_VERSION, version, kind, STATE_READY, HEADER_SIZE)
    assert (OFF_KIND, OFF_STATE, OFF_HEADER_SIZE) == (12, 16, 20)
    struct.pack_into("<i", buf, OFF_CREATOR_PID, os.getpid())
    struct.pack_into("<IIII", buf, OFF_ABI_ARCH, *host_abi())
    struct.pack_into("<II", buf, OFF_VALUE_SIZE, value_size, value_align)
    assert OFF_VALUE_ALIGN == OFF_VALUE_SIZE + 4
    struct.pack_into("<Q", buf, OFF_TYPE_EXTRA, RKYV_FORMAT if kind == KIND_REGION else 0)
    struct.pack_into("<II", buf, OFF_TYPE_NAME_LEN, len(type_name), slots)
    assert OFF_SLOT_COUNT == OFF_TYPE_NAME_LEN + 4
    struct.pack_into("<QQQ", buf, OFF_DATA_OFFSET, data_offset, stride, used)
    assert (OFF_SLOT_STRIDE, OFF_USED_LEN) == (OFF_DATA_OFFSET + 8, OFF_DATA_OFFSET + 16)
    buf[OFF_TYPE_NAME : OFF_TYPE_NAME + len(type_name)] = type_name
    if version >= 6:
        struct.pack_into("<I", buf, OFF_SCHEMA_LEN, len(schema))
        h = (fnv1a64(schema) if schema else 0) if schema_hash is None else schema_hash
        struct.pack_into("<Q", buf, OFF_SCHEMA_HASH, h)
        at = SCHEMA_OFFSETS[kind]
        buf[at : at + len(schema)] = schema
    return buf


def put_cell_value(buf, value: bytes, seq=1):
    """Commit `value` as version `seq` into slot `seq % slot_count`."""
    count, = struct.unpack_from("<I", buf, OFF_SLOT_COUNT)
    data_offset, stride = struct.unpack_from("<QQ", buf, OFF_DATA_OFFSET)
    at = data_offset + (seq % count) * stride
    buf[at : at + len(value)] = value
    struct.pack_into("<Q", buf, OFF_SEQ, seq)
    struct.pack_into("<Q", buf, OFF_WRITING, seq)


def put_archive(buf, archive: bytes, version=1, buffer=0):
    """Publish `archive` as `version` in buffer `buffer` of a region."""
    data_offset, stride = struct.unpack_from("<QQ", buf, OFF_DATA_OFFSET)
    at = data_offset + buffer * stride
    buf[at : at + len(archive)] = archive
    struct.pack_into("<QQ", buf, CTL + 64 + 16 * buffer, len(archive), version)
    struct.pack_into("<Q", buf, CTL, version << 8 | buffer)


assert REGION_CONTROL_SIZE == 9280


class PrivateSegment:
    """A private System V segment (IPC_PRIVATE, mode 0600) holding `data`,
    removed (IPC_RMID) on close; `id` is its id."""

    def __init__(self, data: bytes):
        lib = ctypes.CDLL(None, use_errno=True)
        lib.shmget.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_int]
        lib.shmget.restype = ctypes.c_int
        lib.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
        lib.shmat.restype = ctypes.c_void_p
        lib.shmdt.argtypes = [ctypes.c_void_p]
        lib.shmctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
        self.lib = lib
        self.id = lib.shmget(0, len(data), 0o1000 | 0o600)  # IPC_PRIVATE, IPC_CREAT
        if self.id < 0:
            raise OSError(ctypes.get_errno(), "shmget")
        addr = lib.shmat(self.id, None, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            err = ctypes.get_errno()
            lib.shmctl(self.id, 0, None)
            raise OSError(err, "shmat")
        ctypes.memmove(addr, bytes(data), len(data))
        lib.shmdt(addr)

    def close(self):
        self.lib.shmctl(self.id, 0, None)  # IPC_RMID

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
