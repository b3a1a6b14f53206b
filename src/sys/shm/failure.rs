//! What a failed call means: the one place where the `io::Error` of a
//! System V call (`raw.rs`) or of reading the kernel's list of segments
//! becomes the crate's [`Error`], with the key or id it is about and, for
//! the limits, which one was hit.
//!
//! The calls (`raw.rs`) return `io::Result`; the public API of this module
//! (`Segment`, `SegmentOptions`, `SegmentInfo`, `list_segments`) returns
//! the crate's `Result`, as the layers above use it, and calls [`error`]
//! wherever a call failed.

use std::io;

use super::raw;
use crate::error::{Error, Limit, Target};
use crate::key::Key;

/// A call that failed, with what its meaning depends on.
#[derive(Debug, Clone, Copy)]
pub enum Call {
    /// `shmget` at `key` of `size` bytes, with `SHM_HUGETLB` or not.
    Get {
        key: Key,
        size: usize,
        huge_pages: bool,
    },
    /// `shmat` of segment `id` (of `size` bytes), reached as `target`.
    Attach {
        id: i32,
        target: Target,
        size: usize,
    },
    /// `shmdt` of segment `id`.
    Detach { id: i32 },
    /// `shmctl` (`op`: `IPC_STAT`, `IPC_SET` or `IPC_RMID`) on segment
    /// `id`, reached as `target`.
    Ctl {
        op: &'static str,
        id: i32,
        target: Target,
    },
    /// Reading the kernel's list of segments (`/proc/sysvipc/shm`).
    List,
}

/// What `err`, from `call`, means.
pub fn error(call: Call, err: io::Error) -> Error {
    let errno = err.raw_os_error();
    match call {
        Call::Get {
            key,
            size,
            huge_pages,
        } => shmget_error(key, size, huge_pages, err),
        Call::Attach { id, target, size } => match errno {
            Some(libc::EACCES | libc::EPERM) => Error::PermissionDenied {
                target,
                op: "shmat",
                source: err,
            },
            Some(libc::EINVAL | libc::EIDRM) => Error::IdNotFound { id },
            Some(libc::ENOMEM) => Error::MapFailed {
                target,
                size,
                source: err,
            },
            _ => Error::Os {
                target: Some(target),
                op: "shmat",
                source: err,
            },
        },
        Call::Detach { id } => Error::Os {
            target: Some(Target::Id(id)),
            op: "shmdt",
            source: err,
        },
        Call::Ctl { op, id, target } => match errno {
            Some(libc::EACCES | libc::EPERM) => Error::PermissionDenied {
                target,
                op,
                source: err,
            },
            Some(libc::EINVAL | libc::EIDRM) => Error::IdNotFound { id },
            _ => Error::Os {
                target: Some(target),
                op,
                source: err,
            },
        },
        Call::List => Error::Os {
            target: None,
            op: "read /proc/sysvipc/shm",
            source: err,
        },
    }
}

/// What a failed `shmget` means; for `EINVAL` and `ENOSPC`, which say
/// little, the kernel's limits and the segment at the key are looked at.
fn shmget_error(key: Key, size: usize, huge_pages: bool, err: io::Error) -> Error {
    match err.raw_os_error() {
        Some(libc::EEXIST) => Error::AlreadyExists { key },
        Some(libc::ENOENT) => Error::NotFound { key },
        Some(libc::EACCES) => Error::PermissionDenied {
            target: Target::Key(key),
            op: "shmget",
            source: err,
        },
        Some(libc::EPERM) if huge_pages => Error::PermissionDenied {
            target: Target::Key(key),
            op: "shmget with SHM_HUGETLB (needs CAP_IPC_LOCK or the hugetlb group)",
            source: err,
        },
        Some(libc::EINVAL) => {
            // The segment exists but is smaller than asked for, or the size
            // is outside the kernel's bounds for a new segment.
            if !key.is_private() {
                // Size 0 and no flags only looks up.
                if let Ok(existing) = raw::shmget(key.raw(), 0, 0)
                    && let Ok(ds) = raw::stat(existing)
                    && ds.shm_segsz < size
                {
                    return Error::SizeMismatch {
                        requested: size,
                        actual: ds.shm_segsz,
                    };
                }
            }
            if size == 0 {
                Error::ZeroSize { key }
            } else if read_proc_u64(Limit::Shmmax).is_some_and(|max| size as u64 > max) {
                Error::LimitReached {
                    limit: Limit::Shmmax,
                    source: err,
                }
            } else {
                Error::Os {
                    target: Some(Target::Key(key)),
                    op: "shmget",
                    source: err,
                }
            }
        }
        Some(libc::ENOMEM) if huge_pages => Error::NoHugePages { source: err },
        Some(libc::ENOMEM) => Error::LimitReached {
            limit: Limit::Memory,
            source: err,
        },
        Some(libc::ENOSPC) => {
            let ids = std::fs::read_to_string(crate::sys::proc::PROC_SHM)
                .map(|s| s.lines().count().saturating_sub(1) as u64)
                .ok();
            let limit = match (ids, read_proc_u64(Limit::Shmmni)) {
                (Some(ids), Some(mni)) if ids >= mni => Limit::Shmmni,
                _ => Limit::Shmall,
            };
            Error::LimitReached { limit, source: err }
        }
        _ => Error::Os {
            target: Some(Target::Key(key)),
            op: "shmget",
            source: err,
        },
    }
}

/// The value of a limit's file under `/proc`, if it has one and it reads.
fn read_proc_u64(limit: Limit) -> Option<u64> {
    std::fs::read_to_string(limit.proc_path()?)
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errno(e: i32) -> io::Error {
        io::Error::from_raw_os_error(e)
    }

    #[test]
    fn each_errno_means_what_its_call_says() {
        let target = Target::Id(7);
        let ctl = Call::Ctl {
            op: "IPC_STAT",
            id: 7,
            target,
        };
        let attach = Call::Attach {
            id: 7,
            target,
            size: 4096,
        };
        assert!(matches!(
            error(ctl, errno(libc::EIDRM)),
            Error::IdNotFound { id: 7 }
        ));
        assert!(matches!(
            error(ctl, errno(libc::EPERM)),
            Error::PermissionDenied { op: "IPC_STAT", .. }
        ));
        assert!(matches!(
            error(attach, errno(libc::ENOMEM)),
            Error::MapFailed { size: 4096, .. }
        ));
        assert!(matches!(
            error(Call::Detach { id: 7 }, errno(libc::EINVAL)),
            Error::Os { op: "shmdt", .. }
        ));
        let get = |size, huge_pages| Call::Get {
            key: Key::PRIVATE,
            size,
            huge_pages,
        };
        assert!(matches!(
            error(get(4096, false), errno(libc::EEXIST)),
            Error::AlreadyExists { .. }
        ));
        assert!(matches!(
            error(get(0, false), errno(libc::EINVAL)),
            Error::ZeroSize { .. }
        ));
        assert!(matches!(
            error(get(4096, true), errno(libc::ENOMEM)),
            Error::NoHugePages { .. }
        ));
        assert!(matches!(
            error(get(4096, false), errno(libc::ENOMEM)),
            Error::LimitReached {
                limit: Limit::Memory,
                ..
            }
        ));
    }
}
