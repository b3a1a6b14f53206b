//! How a region is opened or created: [`RegionOptions`], and the facts of
//! rkyv's format that a region's type identity records.

use std::marker::PhantomData;
use std::time::Duration;

use parking_lot::Mutex;
use rkyv::Archive;
use rkyv::ser::allocator::Arena;

use super::{CtlPtr, DEFAULT_BUFFERS, DEFAULT_PUBLISH_TIMEOUT, RegionReader, SharedRegion, pins};
use crate::error::{Error, Result};
use crate::header::{Kind, Layout, MAX_SLOTS, TypeDesc};
use crate::key::Key;
use crate::raw::{RawStore, Spec};

/// rkyv's format facts that change the archived bytes: endianness, the size
/// of archived `usize` (pointer width) and whether primitives are aligned.
fn rkyv_format() -> u64 {
    let little = archives_little_endian();
    let usize_size = size_of::<rkyv::primitive::ArchivedUsize>() as u64;
    let u32_align = align_of::<rkyv::primitive::ArchivedU32>() as u64;
    0x7200_0000 | (u64::from(little) << 16) | (usize_size << 8) | u32_align
}

/// Whether rkyv stores a `u32` little-endian, read off its archived bytes.
fn archives_little_endian() -> bool {
    let archived = rkyv::primitive::ArchivedU32::from_native(0x0102_0304);
    // SAFETY: ArchivedU32 is a 4-byte plain integer wrapper with no padding.
    let bytes: [u8; 4] = unsafe { std::mem::transmute_copy(&archived) };
    bytes == [4, 3, 2, 1]
}

/// How to open or create a [`SharedRegion`].
#[derive(Debug, Clone)]
pub struct RegionOptions<T> {
    spec: Spec,
    buffers: usize,
    publish_timeout: Duration,
    _t: PhantomData<fn() -> T>,
}

impl<T: Archive> RegionOptions<T> {
    pub(super) fn new() -> Self {
        RegionOptions {
            spec: Spec::default(),
            buffers: DEFAULT_BUFFERS,
            publish_timeout: DEFAULT_PUBLISH_TIMEOUT,
            _t: PhantomData,
        }
    }

    crate::raw::spec_setters!();

    /// The number of buffers of a created region (2 to 64). Default 4.
    pub fn buffers(&mut self, n: usize) -> &mut Self {
        self.buffers = n;
        self
    }

    /// How long `publish` waits for a buffer no live reader pins before it
    /// fails with [`Error::ReadersBusy`]. Default 2 s.
    pub fn publish_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.publish_timeout = timeout;
        self
    }

    pub(crate) fn type_desc(&self) -> TypeDesc {
        self.spec.type_desc::<T>(
            Kind::Region,
            size_of::<T::Archived>(),
            align_of::<T::Archived>(),
            rkyv_format(),
        )
    }

    fn layout(&self, capacity: usize) -> Result<Layout> {
        if !(2..=MAX_SLOTS as usize).contains(&self.buffers) {
            return Err(Error::InvalidLayout {
                reason: format!("{} buffers; a region has 2 to {MAX_SLOTS}", self.buffers),
            });
        }
        let capacity = capacity
            .max(size_of::<T::Archived>())
            .checked_next_multiple_of(64)
            .filter(|&c| c <= isize::MAX as usize)
            .ok_or_else(|| Error::InvalidLayout {
                reason: format!("a capacity of {capacity} bytes does not fit in a segment"),
            })?;
        Layout::for_region(capacity, self.buffers)
    }

    pub(crate) fn wrap(&self, raw: RawStore) -> SharedRegion<T> {
        let ctl = CtlPtr(std::ptr::NonNull::from(raw.region_control()));
        SharedRegion {
            raw,
            arena: Mutex::new(Arena::new()),
            validated: Mutex::new(None),
            publish_timeout: self.publish_timeout,
            pins: pins::PinCache::new(),
            ctl,
            _t: PhantomData,
        }
    }

    /// Create the region at `key` with buffers of `capacity` bytes (rounded
    /// up to 64); nothing is published yet. Fails if the key exists.
    pub fn create(&self, key: Key, capacity: usize) -> Result<SharedRegion<T>> {
        let raw = RawStore::create(
            key,
            &self.spec,
            &self.type_desc(),
            &self.layout(capacity)?,
            |_| Ok(()),
        )?;
        Ok(self.wrap(raw))
    }

    /// Open the existing region at `key`, checking that it holds `T`.
    pub fn open(&self, key: Key) -> Result<SharedRegion<T>> {
        let raw = RawStore::open(key, &self.spec, &self.type_desc(), false)?;
        Ok(self.wrap(raw))
    }

    /// Open the region at `key`, or create it with buffers of `capacity` bytes.
    pub fn open_or_create(&self, key: Key, capacity: usize) -> Result<SharedRegion<T>> {
        let layout = self.layout(capacity)?;
        let raw =
            RawStore::open_or_create(key, &self.spec, &self.type_desc(), &layout, |_| Ok(()))?;
        Ok(self.wrap(raw))
    }

    /// Attach the region at `key` read-only (`SHM_RDONLY`).
    pub fn open_read_only(&self, key: Key) -> Result<RegionReader<T>> {
        let raw = RawStore::open(key, &self.spec, &self.type_desc(), true)?;
        Ok(Self::reader(raw))
    }

    /// Attach the region in the segment with this id; works for private and
    /// removed segments that no key reaches any more.
    pub fn attach_id(&self, id: i32) -> Result<SharedRegion<T>> {
        let raw = RawStore::attach_id(id, &self.spec, &self.type_desc(), false)?;
        Ok(self.wrap(raw))
    }

    /// Attach the region in the segment with this id read-only.
    pub fn attach_id_read_only(&self, id: i32) -> Result<RegionReader<T>> {
        let raw = RawStore::attach_id(id, &self.spec, &self.type_desc(), true)?;
        Ok(Self::reader(raw))
    }

    pub(crate) fn reader(raw: RawStore) -> RegionReader<T> {
        RegionReader {
            raw,
            cache: Mutex::new(None),
            _t: PhantomData,
        }
    }
}
