//! The memory an object lives in: an attached System V segment, or (for
//! the fuzz targets) a private heap image of the same layout; and who created
//! it.

#[cfg(feature = "fuzzing")]
use crate::error::Error;
use crate::error::Result;
use crate::sys::shm::{Segment, SegmentInfo};

/// Where a store's bytes are.
#[derive(Debug)]
pub enum Memory {
    /// An attached segment.
    Segment(Segment),
    /// A heap image, seen through its first `len` bytes (a shorter view
    /// stands in for a truncated segment).
    #[cfg(feature = "fuzzing")]
    Heap {
        /// The shared image.
        image: std::sync::Arc<super::heap::HeapImage>,
        /// How many of its bytes this handle sees.
        len: usize,
    },
}

impl Memory {
    /// The first byte.
    pub fn as_ptr(&self) -> *mut u8 {
        match self {
            Memory::Segment(s) => s.as_ptr(),
            #[cfg(feature = "fuzzing")]
            Memory::Heap { image, .. } => image.as_ptr(),
        }
    }

    /// The bytes this handle may use.
    pub fn len(&self) -> usize {
        match self {
            Memory::Segment(s) => s.len(),
            #[cfg(feature = "fuzzing")]
            Memory::Heap { image, len } => (*len).min(image.len()),
        }
    }

    /// Whether writes through this handle would fault.
    pub fn is_read_only(&self) -> bool {
        match self {
            Memory::Segment(s) => s.is_read_only(),
            #[cfg(feature = "fuzzing")]
            Memory::Heap { .. } => false,
        }
    }

    /// The segment's id; -1 for a heap image.
    pub fn id(&self) -> i32 {
        match self {
            Memory::Segment(s) => s.id(),
            #[cfg(feature = "fuzzing")]
            Memory::Heap { .. } => -1,
        }
    }

    /// `IPC_STAT` of the segment.
    pub fn info(&self) -> Result<SegmentInfo> {
        match self {
            Memory::Segment(s) => s.info(),
            #[cfg(feature = "fuzzing")]
            Memory::Heap { .. } => Err(Error::Os {
                target: None,
                op: "IPC_STAT",
                source: std::io::Error::other("an in-memory image is not a segment"),
            }),
        }
    }

    /// `IPC_SET` of the permission bits.
    pub fn set_mode(&self, mode: u32) -> Result<()> {
        match self {
            Memory::Segment(s) => s.set_mode(mode),
            #[cfg(feature = "fuzzing")]
            Memory::Heap { .. } => Ok(()),
        }
    }

    /// `IPC_SET` of the owner.
    pub fn set_owner(&self, uid: u32, gid: u32) -> Result<()> {
        match self {
            Memory::Segment(s) => s.set_owner(uid, gid),
            #[cfg(feature = "fuzzing")]
            Memory::Heap { .. } => Ok(()),
        }
    }

    /// Whether the segment is marked for removal (a heap image never is).
    pub fn is_removed(&self) -> Result<bool> {
        match self {
            Memory::Segment(s) => match s.info() {
                Ok(info) => Ok(info.marked_for_removal),
                Err(crate::error::Error::IdNotFound { .. }) => Ok(true),
                Err(e) => Err(e),
            },
            #[cfg(feature = "fuzzing")]
            Memory::Heap { .. } => Ok(false),
        }
    }

    /// `IPC_RMID` of the segment; nothing for a heap image.
    pub fn remove(&self) -> Result<()> {
        match self {
            Memory::Segment(s) => s.remove(),
            #[cfg(feature = "fuzzing")]
            Memory::Heap { .. } => Ok(()),
        }
    }

    /// Who created the memory, as the kernel tells (nobody for a heap
    /// image, which no live process is still initialising).
    pub fn creator(&self) -> Result<Creator> {
        match self {
            Memory::Segment(s) => Creator::of(s),
            #[cfg(feature = "fuzzing")]
            Memory::Heap { .. } => Ok(Creator {
                pid: 0,
                created: None,
                uid: 0,
            }),
        }
    }
}

/// The creator of a segment, as `IPC_STAT` gives it.
#[derive(Debug, Clone, Copy)]
pub struct Creator {
    /// `shm_cpid`.
    pub pid: i32,
    /// `shm_ctime`: the creation (or last `IPC_SET`).
    pub created: Option<std::time::SystemTime>,
    /// `shm_perm.cuid`.
    pub uid: u32,
}

impl Creator {
    /// The creator of `seg`, as `IPC_STAT` gives it.
    pub fn of(seg: &Segment) -> Result<Creator> {
        let info = seg.info()?;
        Ok(Creator {
            pid: info.cpid,
            created: info.ctime,
            uid: info.cuid,
        })
    }

    /// Whether the creator is still running. A pid alone may have been taken
    /// over since the creator died: where the header names the creator (its
    /// first writes are its pid and start time), the process with that pid
    /// must have that start time; before that, it must have started before
    /// the segment was made and run as its user.
    pub fn alive(&self, header: &crate::format::Header) -> bool {
        use std::sync::atomic::Ordering::{Acquire, Relaxed};
        let named = header.magic.load(Acquire) == crate::format::MAGIC
            && header.creator_pid.load(Relaxed) == self.pid;
        let start = header.creator_start.load(Relaxed);
        if named && start != 0 {
            crate::sys::proc::same_process_alive(self.pid, Some(start))
        } else {
            crate::sys::proc::may_be_creator(self.pid, self.created, self.uid)
        }
    }
}
