"""Read shmstore objects (System V shared memory) from Python.

A reader written from FORMAT.md alone, with the standard library only
(``ctypes`` for ``shmget``, ``shmat``, ``shmdt`` and ``shmctl``): it finds
an object by key, by segment id or by name, attaches it read-only
(``SHM_RDONLY``: it never writes a byte of the segment), validates the
header as FORMAT.md says and keeps the layout it validated, reads a cell's
value with the ring-of-slots seqlock, copies a region's current archive
(checking the version of the buffer it copies), and decodes the common
rkyv 0.8 types of such an archive, maps and sets among them, from a schema
(FORMAT.md, "Region archives").

It runs on Linux x86-64 only; host.py says why.

The package, one concern per module:

- errors.py: the ReaderError hierarchy, with the stable `kind` of each;
- host.py: the host check, the single ordered loads of shared words, and
  why they are correct on x86-64 only;
- sysv.py: shmget, shmat and shmctl through ctypes, what the kernel says
  of a segment, whose segments are trusted, read-only attachment;
- proc.py: whether a process runs, since when and as whom (/proc);
- header.py: the header's layout, its validation, waiting for a creator;
- names.py: valid names, a name's keys (in a private namespace too:
  SipHash-2-4 and the namespace's checked secret), and which key holds the
  object;
- objects.py: ShmObject, finding an object and reading a cell or region;
- wait.py: waiting for an object's version to change (the futex through
  ctypes, in 2 ms slices, and removal: the `life` word and IPC_STAT);
- rkyv.py: the hand-written schema parser, the rkyv 0.8 archive decoder
  and the decoder of a cell's plain-data value;
- schema.py: the schema an object stores (FORMAT.md, "Schema
  (optional)"), parsed strictly and laid out for a cell or a region;
- cli.py and __main__.py: the command line.

Command line (JSON on stdout, text for ``value`` without ``--json``; exit
status 0 ok, 1 error, 2 usage), with the directory holding this package on
PYTHONPATH, or as
``python3 path/to/shmstore_reader`` on the package's directory::

    python3 -m shmstore_reader info   TARGET
    python3 -m shmstore_reader cell   TARGET [--struct FORMAT] [--reads N]
    python3 -m shmstore_reader region TARGET [--schema JSON|@FILE] [--reads N]
    python3 -m shmstore_reader value  TARGET [--json] [--reads N]
    python3 -m shmstore_reader decode --schema JSON|@FILE [--hex] < ARCHIVE

A TARGET is a segment id (decimal, as ``ipcs -m`` prints it, or ``id:N``),
a key (``0x...`` in hex, or ``key:N`` in decimal), or an object's name
(``acme/config``, or ``name:TEXT`` for a name that looks like a number).
With ``--namespace DIR``, a name is found in the private namespace of the
directory DIR (FORMAT.md, "Names in a private namespace"; Rust's
``Key::named_in(DIR, name)``): its keys come from the secret
DIR/shmstore.secret, which the reader reads (never makes) once it has
checked, as shmstore does, that the directory is this user's or root's and
not writable by others, and the secret this user's or root's, of no access
to others and 16 bytes (else the error ``namespace`` says which and what
to change).

As a package::

    import shmstore_reader as sr
    with sr.ShmObject.open("acme/counters") as obj:
        version, (hits, misses) = obj.read_cell("<QQ")
    schema = sr.parse_schema([["id", "u64"], ["name", "str"], ["ports", "vec<u32>"]])
    with sr.ShmObject.open("0x2a01beef") as obj:
        version, config = obj.read_region(schema)
    with sr.ShmObject.open("acme/config") as obj:   # it stores its schema
        version, config = obj.read_value()          # config["limits"]["max_conn"]
    with sr.ShmObject.named_in("/run/acme", "acme/counters") as obj:
        version, (hits, misses) = obj.read_cell("<QQ")
        try:
            version = obj.wait_for_change(version, timeout=5.0)
        except sr.WaitTimeout:          # also a TimeoutError
            pass                        # no change in 5 s
        except sr.Removed:
            pass                        # open the name again for a successor
"""

from .cli import main
from .errors import (
    AbiMismatch,
    BadSchema,
    Busy,
    Closed,
    Corrupt,
    CreatorDied,
    DecodeError,
    ForeignOwner,
    IncompatibleFormat,
    InitTimeout,
    NamespaceRefused,
    NoSchema,
    NotFound,
    NothingPublished,
    NotShmstore,
    OsFailure,
    PermissionDenied,
    ReaderError,
    Removed,
    Starved,
    TypeMismatch,
    UnsupportedArchive,
    UnsupportedHost,
    UsageError,
    WaitTimeout,
    WrongKind,
)
from .header import (
    FORMAT_VERSION,
    HEADER_SIZE,
    KIND_CELL,
    KIND_REGION,
    MAGIC,
    READ_FORMAT_VERSIONS,
    RKYV_FORMAT,
    Layout,
)
from .host import check_host
from .names import (
    SECRET_FILE,
    SECRET_LEN,
    check_name,
    name_key,
    name_key_in,
    name_keys,
    name_keys_in,
    namespace_secret,
    siphash24,
)
from .objects import ShmObject, Versioned, parse_target
from .rkyv import decode_archive, decode_cell, parse_schema
from .schema import SCHEMA_MAX_DEPTH, SCHEMA_MAX_LEN, Schema, fnv1a64, parse_stored_schema
from .sysv import OpenOptions, SegmentInfo

__all__ = [
    "ShmObject",
    "OpenOptions",
    "Versioned",
    "Layout",
    "SegmentInfo",
    "parse_schema",
    "decode_archive",
    "decode_cell",
    "parse_stored_schema",
    "Schema",
    "fnv1a64",
    "SCHEMA_MAX_LEN",
    "SCHEMA_MAX_DEPTH",
    "parse_target",
    "check_name",
    "name_key",
    "name_keys",
    "name_key_in",
    "name_keys_in",
    "namespace_secret",
    "siphash24",
    "SECRET_FILE",
    "SECRET_LEN",
    "check_host",
    "main",
    "MAGIC",
    "FORMAT_VERSION",
    "READ_FORMAT_VERSIONS",
    "HEADER_SIZE",
    "KIND_CELL",
    "KIND_REGION",
    "RKYV_FORMAT",
    "ReaderError",
    "UsageError",
    "UnsupportedHost",
    "NotFound",
    "PermissionDenied",
    "ForeignOwner",
    "NamespaceRefused",
    "NotShmstore",
    "IncompatibleFormat",
    "AbiMismatch",
    "Corrupt",
    "InitTimeout",
    "CreatorDied",
    "Busy",
    "Removed",
    "WaitTimeout",
    "WrongKind",
    "TypeMismatch",
    "NothingPublished",
    "Starved",
    "UnsupportedArchive",
    "DecodeError",
    "BadSchema",
    "NoSchema",
    "OsFailure",
    "Closed",
]
