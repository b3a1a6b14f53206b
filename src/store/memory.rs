//! The memory an object lives in: an attached System V segment, or (for
//! the fuzz targets) a private heap image of the same layout.

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
    /// The attached segment, unless this is a heap image.
    pub fn segment(&self) -> Option<&Segment> {
        match self {
            Memory::Segment(s) => Some(s),
            #[cfg(feature = "fuzzing")]
            Memory::Heap { .. } => None,
        }
    }

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
            Memory::Heap { .. } => Err(Error::Unsupported {
                reason: "IPC_STAT of an in-memory image, which is not a segment".into(),
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
}
