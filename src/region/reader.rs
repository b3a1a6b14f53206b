//! The read-only side of a region: a `SHM_RDONLY` attachment cannot pin, so
//! it reads a validated private copy of the current archive.
#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};
use std::time::Duration;

use parking_lot::Mutex;
use rkyv::Archive;

use super::{Hold, Readable, RegionRef, archive_len, check_archive, split};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::sync::copy;
use crate::sys::shm::SegmentInfo;

/// A read-only attachment (`SHM_RDONLY`) of a [`SharedRegion`](super::SharedRegion). It cannot
/// pin, so `read` copies the current archive into a private aligned buffer
/// (once per version), checks it was not overwritten meanwhile, validates it
/// and hands that out.
pub struct RegionReader<T> {
    pub(super) store: Store,
    pub(super) cache: Mutex<Option<(u64, Arc<ArchiveCopy>)>>,
    pub(super) _t: PhantomData<fn() -> T>,
}

/// A private copy of an archive, starting at an address aligned as its
/// root type asks (rkyv aligns an archive's parts relative to its start).
pub(crate) struct ArchiveCopy {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl ArchiveCopy {
    /// `len` zero bytes at an address aligned to `align` (a power of two).
    fn zeroed(len: usize, align: usize) -> ArchiveCopy {
        let buf = vec![0u8; len + align - 1];
        // The heap buffer never moves: `buf` is never grown.
        let addr = buf.as_ptr().addr();
        let start = addr.next_multiple_of(align) - addr;
        ArchiveCopy { buf, start, len }
    }

    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.buf[self.start..self.start + self.len].as_mut_ptr()
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
}

impl<T: Archive> RegionReader<T> {
    pub(crate) fn wrap(store: Store) -> Self {
        RegionReader {
            store,
            cache: Mutex::new(None),
            _t: PhantomData,
        }
    }

    /// The current value, from a validated private copy.
    pub fn read(&self) -> Result<RegionRef<'_, T>>
    where
        T: Readable,
    {
        let ctl = self.store.region_control();
        loop {
            let current = ctl.current.load(Ordering::Acquire);
            if current >> 8 == 0 {
                return Err(Error::NothingPublished);
            }
            let mut cache = self.cache.lock();
            if let Some((seen, copy)) = cache.as_ref()
                && *seen == current
            {
                return Ok(Self::guard(copy.clone(), current));
            }
            let len = archive_len(&self.store, ctl, current)?;
            let mut bytes = ArchiveCopy::zeroed(len, align_of::<T::Archived>().max(16));
            let (_, buffer) = split(current);
            // SAFETY: the buffer is 64-aligned and readable for its whole
            // stride (>= len rounded up to 8) inside the mapping; `bytes` is
            // private and holds len writable bytes from its pointer.
            unsafe { copy::load_bytes(self.store.slot_ptr(buffer), bytes.as_mut_ptr(), len) };
            fence(Ordering::Acquire);
            if ctl.current.load(Ordering::Relaxed) != current {
                continue; // overwritten while we copied: copy the new one
            }
            check_archive::<T>(bytes.bytes())?;
            let copy = Arc::new(bytes);
            *cache = Some((current, copy.clone()));
            return Ok(Self::guard(copy, current));
        }
    }

    fn guard(copy: Arc<ArchiveCopy>, current: u64) -> RegionRef<'static, T>
    where
        T: Readable,
    {
        // SAFETY: the copy was validated as T::Archived when it was cached,
        // and the Arc held by the guard keeps it alive and unchanged.
        let value =
            unsafe { rkyv::access_unchecked::<T::Archived>(copy.bytes()) } as *const T::Archived;
        RegionRef {
            value,
            version: current >> 8,
            _hold: Hold::Copy(copy),
        }
    }

    /// The version of the current value.
    pub fn version(&self) -> u64 {
        self.store.region_control().current.load(Ordering::Acquire) >> 8
    }

    /// As [`SharedRegion::wait_for_change`](super::SharedRegion::wait_for_change), waking within a few
    /// milliseconds of a change (a read-only attachment cannot announce
    /// itself to writers).
    pub fn wait_for_change(&self, since: u64, timeout: Option<Duration>) -> Result<u64> {
        let current = &self.store.region_control().current;
        self.store
            .wait_for_change(since, timeout, || current.load(Ordering::SeqCst) >> 8)
    }

    /// Whether the region was removed (one `IPC_STAT`).
    pub fn is_removed(&self) -> Result<bool> {
        self.store.is_removed()
    }

    /// `IPC_STAT` of the segment.
    pub fn info(&self) -> Result<SegmentInfo> {
        self.store.info()
    }

    /// The segment's kernel id.
    pub fn id(&self) -> i32 {
        self.store.id()
    }
}
