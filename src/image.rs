//! The memory a store lives in: an attached System V segment, or a private
//! zero-filled heap image of the same layout. The heap image lets the store's
//! protocols and validation run without system calls (fuzzing, model tests);
//! several handles can share one image the way processes share a segment.

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::segment::{Segment, SegmentInfo};

/// Page-aligned, zero-filled private memory standing in for a segment.
#[derive(Debug)]
pub struct HeapImage {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the image is plain memory owned by this value; every access by the
// stores goes through atomics or the process-shared mutex, as for a segment.
unsafe impl Send for HeapImage {}
// SAFETY: as above.
unsafe impl Sync for HeapImage {}

impl HeapImage {
    /// A zero-filled image of `len` bytes (at least 1), aligned to 4096 like
    /// an attached segment.
    pub fn new(len: usize) -> Result<Arc<HeapImage>> {
        let layout =
            Layout::from_size_align(len.max(1), 4096).map_err(|e| Error::InvalidLayout {
                reason: format!("an image of {len} bytes: {e}"),
            })?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or_else(|| Error::InvalidLayout {
            reason: format!("could not allocate an image of {len} bytes"),
        })?;
        Ok(Arc::new(HeapImage { ptr, layout }))
    }

    /// The image's size in bytes.
    pub fn len(&self) -> usize {
        self.layout.size()
    }

    /// The first byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for HeapImage {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this same layout, freed once.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// Where a store's bytes are.
#[derive(Debug)]
pub enum Backing {
    /// An attached segment.
    Segment(Segment),
    /// A heap image, seen through its first `len` bytes (a shorter view
    /// stands in for a truncated segment).
    Heap {
        /// The shared image.
        image: Arc<HeapImage>,
        /// How many of its bytes this handle sees.
        len: usize,
    },
}

impl Backing {
    /// The first byte.
    pub fn as_ptr(&self) -> *mut u8 {
        match self {
            Backing::Segment(s) => s.as_ptr(),
            Backing::Heap { image, .. } => image.as_ptr(),
        }
    }

    /// The bytes this handle may use.
    pub fn len(&self) -> usize {
        match self {
            Backing::Segment(s) => s.len(),
            Backing::Heap { image, len } => (*len).min(image.len()),
        }
    }

    /// Whether writes through this handle would fault.
    pub fn is_read_only(&self) -> bool {
        match self {
            Backing::Segment(s) => s.is_read_only(),
            Backing::Heap { .. } => false,
        }
    }

    /// The segment's id; -1 for a heap image.
    pub fn id(&self) -> i32 {
        match self {
            Backing::Segment(s) => s.id(),
            Backing::Heap { .. } => -1,
        }
    }

    /// `IPC_STAT` of the segment.
    pub fn info(&self) -> Result<SegmentInfo> {
        match self {
            Backing::Segment(s) => s.info(),
            Backing::Heap { .. } => Err(Error::Os {
                target: None,
                op: "IPC_STAT",
                source: std::io::Error::other("an in-memory image is not a segment"),
            }),
        }
    }

    /// `IPC_RMID` of the segment; nothing for a heap image.
    pub fn remove(&self) -> Result<()> {
        match self {
            Backing::Segment(s) => s.remove(),
            Backing::Heap { .. } => Ok(()),
        }
    }

    /// Who created the memory, as the kernel tells (nobody for a heap
    /// image, which no live process is still initialising).
    pub fn creator(&self) -> Result<Creator> {
        match self {
            Backing::Segment(s) => {
                let info = s.info()?;
                Ok(Creator {
                    pid: info.cpid,
                    created: info.ctime,
                    uid: info.cuid,
                })
            }
            Backing::Heap { .. } => Ok(Creator {
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
    /// Whether the creator is still running. A pid alone may have been taken
    /// over since the creator died: where the header names the creator (its
    /// first writes are its pid and start time), the process with that pid
    /// must have that start time; before that, it must have started before
    /// the segment was made and run as its user.
    pub fn alive(&self, header: &crate::header::Header) -> bool {
        use std::sync::atomic::Ordering::{Acquire, Relaxed};
        let named = header.magic.load(Acquire) == crate::header::MAGIC
            && header.creator_pid.load(Relaxed) == self.pid;
        let start = header.creator_start.load(Relaxed);
        if named && start != 0 {
            crate::sync::process::same_process_alive(self.pid, Some(start))
        } else {
            crate::sync::process::may_be_creator(self.pid, self.created, self.uid)
        }
    }
}
