//! A private, zero-filled heap image standing in for a segment: it lets the
//! protocols and validation run without system calls (the fuzz targets and
//! their corpus replay, under Miri too). Several handles can share one
//! image the way processes share a segment. Only with feature `fuzzing`.
#![allow(unsafe_code)]

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::error::{Error, Result};

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
