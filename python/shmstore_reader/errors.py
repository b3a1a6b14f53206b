"""The errors of the reader: one class per way a read can fail.

Every failure to find, validate, read or decode an object raises a
ReaderError subclass whose message says what is wrong. Its `kind` is a
stable word for scripts (the command line prints it as ``{"error": kind,
"message": ...}``), and `exit_status` is the command's exit status: 2 for
a bad argument or an unsupported host, 1 for everything else. `field`,
when set, names the header field or the archive path at fault.
"""

from __future__ import annotations

from typing import Optional


class ReaderError(Exception):
    """A failure to find, validate, read or decode an object."""

    kind = "error"
    exit_status = 1

    def __init__(self, message: str, field: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def to_json(self) -> dict:
        out = {"error": self.kind, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        return out


class UsageError(ReaderError):
    """A bad argument: a target, a name, a struct format or a schema."""

    kind = "usage"
    exit_status = 2


class UnsupportedHost(ReaderError):
    """Not Linux x86-64."""

    kind = "unsupported_host"
    exit_status = 2


class NotFound(ReaderError):
    kind = "not_found"


class PermissionDenied(ReaderError):
    kind = "permission_denied"


class ForeignOwner(ReaderError):
    """A segment of a user this reader does not trust: its owner (`uid`),
    creator (`cuid`) and group (`gid`)."""

    kind = "foreign_owner"

    def __init__(self, message: str, uid: int = -1, cuid: int = -1, gid: int = -1):
        super().__init__(message)
        self.uid = uid
        self.cuid = cuid
        self.gid = gid


class NamespaceRefused(ReaderError):
    """A private namespace that may not be used (FORMAT.md, "Names in a
    private namespace"): its directory (`directory`) or its secret is
    another user's (not root's), others may write the directory or use the
    secret, the secret is not 16 bytes, or either cannot be looked at. The
    message says which, and the remedy."""

    kind = "namespace"

    def __init__(self, message: str, directory: str = ""):
        super().__init__(message)
        self.directory = directory


class NotShmstore(ReaderError):
    kind = "not_shmstore"


class IncompatibleFormat(ReaderError):
    kind = "incompatible_format"


class AbiMismatch(ReaderError):
    kind = "abi_mismatch"


class Corrupt(ReaderError):
    kind = "corrupt"


class InitTimeout(ReaderError):
    kind = "init_timeout"


class CreatorDied(ReaderError):
    kind = "creator_died"


class Removed(ReaderError):
    """The object waited on was removed and its version did not change:
    through shmstore (`remove()`, `shmstore remove`), which marks its
    `life` word, or by `IPC_RMID` alone, as `ipcrm` does, which the kernel
    says (SHM_DEST, or the segment gone). Open its key or name again for a
    successor."""

    kind = "removed"


class WaitTimeout(ReaderError, TimeoutError):
    """A wait for a change whose timeout passed with no change: also a
    TimeoutError, as Python's own timeouts are."""

    kind = "timeout"


class Busy(ReaderError):
    """The object is being removed or collected by a process that still
    runs, and the wait for it ran out."""

    kind = "busy"


class WrongKind(ReaderError):
    kind = "wrong_kind"


class TypeMismatch(ReaderError):
    kind = "type_mismatch"


class NothingPublished(ReaderError):
    kind = "nothing_published"


class Starved(ReaderError):
    kind = "starved"


class UnsupportedArchive(ReaderError):
    kind = "unsupported_archive"


class DecodeError(ReaderError):
    kind = "decode"


class BadSchema(ReaderError):
    """A stored schema that breaks FORMAT.md's grammar or rules ("Schema
    (optional)"): the message says what and at which byte. An object whose
    header holds one is refused as Corrupt."""

    kind = "bad_schema"


class NoSchema(ReaderError):
    """A read by the stored schema of an object that stores none: read it
    with a schema of your own (`read_region(schema)`, `read_cell(fmt)`)."""

    kind = "no_schema"


class OsFailure(ReaderError):
    kind = "os"


class Closed(ReaderError):
    kind = "closed"
