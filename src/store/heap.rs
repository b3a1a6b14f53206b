//! A private, zero-filled heap image standing in for a segment: it lets the
//! protocols and validation run without system calls (the fuzz targets and
//! their corpus replay, under Miri too). Several handles can share one
//! image the way processes share a segment. Only with feature `fuzzing`.
#![allow(unsafe_code)]

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::{Error, Result};
use crate::format::Mapping;

/// Page-aligned, zero-filled private memory standing in for a segment.
#[derive(Debug)]
pub struct HeapImage {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the image is an allocation this value owns, tied to no thread;
// every access to it goes through atomics (`write_at`, `swap`, the stores'
// words and copies), or is a region's buffer borrowed under the write lock
// or a reader's pin, as for a segment.
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

    /// The byte at `offset` (below the length).
    fn byte(&self, offset: usize) -> &AtomicU8 {
        assert!(offset < self.len(), "byte {offset} of {}", self.len());
        // SAFETY: offset < len (checked), so the byte is inside the
        // allocation, which lives as long as self, reached through its own
        // pointer; u8 needs no alignment. As for a segment's bytes
        // (`Segment::read_at`), the byte is accessed atomically; a store's
        // writer that fills a buffer through rkyv at the same time in another
        // thread is the scribbling peer that ARCHITECTURE.md's trust model
        // rules out (the fuzz targets drive every handle from one thread).
        unsafe { AtomicU8::from_ptr(self.ptr.as_ptr().add(offset)) }
    }

    /// Write `data` at `offset` (the bytes inside the image), byte by byte
    /// through atomics, as another process writes a segment.
    pub fn write_at(&self, offset: usize, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            self.byte(offset + i).store(b, Ordering::Relaxed);
        }
    }

    /// Store `byte` at `offset` (inside the image) and return what was
    /// there: a buggy peer's scribble, made atomically.
    pub fn swap(&self, offset: usize, byte: u8) -> u8 {
        self.byte(offset).swap(byte, Ordering::SeqCst)
    }
}

// SAFETY: the allocation's own pointer, which may write, and its size; the
// allocation never moves and lives until the image is dropped.
unsafe impl Mapping for HeapImage {
    fn as_ptr(&self) -> *mut u8 {
        HeapImage::as_ptr(self)
    }

    fn len(&self) -> usize {
        HeapImage::len(self)
    }
}

impl Drop for HeapImage {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this same layout, freed once.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}
