//! How a region is opened or created: [`RegionOptions`], the shared
//! [`Options`] with what only a region has (its buffers, how long a publish
//! waits for one).

use std::time::Duration;

use rkyv::Archive;

use super::archive::rkyv_format;
use super::{DEFAULT_BUFFERS, DEFAULT_PUBLISH_TIMEOUT, RegionReader, SharedRegion};
use crate::error::{Error, Result};
use crate::format::{Kind, Layout, MAX_SLOTS, TypeDesc};
use crate::key::Key;
use crate::store::{Flavor, Options, Store};

/// What only a region's options have: the number of buffers of a created
/// region, and how long `publish` waits for a free one.
#[derive(Debug, Clone)]
pub struct RegionSettings {
    buffers: usize,
    pub(super) publish_timeout: Duration,
    pub(super) reuse_grace: Duration,
}

/// How to open or create a [`SharedRegion`]: mode, removal on drop,
/// timeouts and the type's identity ([`Options`]), the number of buffers
/// and the publish timeout.
pub type RegionOptions<T> = Options<T, RegionSettings>;

impl<T: Archive> Flavor<T> for RegionSettings {
    type Handle = SharedRegion<T>;
    type Reader = RegionReader<T>;

    fn type_desc(options: &RegionOptions<T>) -> TypeDesc {
        options.common.type_desc::<T>(
            Kind::Region,
            size_of::<T::Archived>(),
            align_of::<T::Archived>(),
            rkyv_format(),
        )
    }

    fn handle(store: Store, options: &RegionOptions<T>) -> SharedRegion<T> {
        SharedRegion::wrap(store, &options.kind)
    }

    fn reader(store: Store, _: &RegionOptions<T>) -> RegionReader<T> {
        RegionReader::wrap(store)
    }
}

/// What only a region has.
impl<T: Archive> Options<T, RegionSettings> {
    pub(crate) fn new() -> Self {
        Options::with(RegionSettings {
            buffers: DEFAULT_BUFFERS,
            publish_timeout: DEFAULT_PUBLISH_TIMEOUT,
            reuse_grace: Duration::ZERO,
        })
    }

    /// The number of buffers of a created region (2 to 64). Default 4.
    pub fn buffers(&mut self, n: usize) -> &mut Self {
        self.kind.buffers = n;
        self
    }

    /// How long `publish` waits for a buffer no live reader pins before it
    /// fails with [`Error::ReadersBusy`]. Default 2 s.
    pub fn publish_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.kind.publish_timeout = timeout;
        self
    }

    /// How long a buffer that stopped being current is left alone before a
    /// publish of this handle writes it again. Readers that copy (read-only
    /// attachments, the C and Python readers) start a copy again when its
    /// buffer is rewritten meanwhile; with `n` buffers a copy survives
    /// `n - 1` publishes made while it runs, and with a grace at least as
    /// long as the copy takes it always survives. The cost is the writer's:
    /// once every free buffer stopped being current less than the grace
    /// ago, a publish sleeps until one did, so publishes come at most `n -
    /// 1` per grace. A buffer that stopped being current by another
    /// process's publish counts from when this handle first saw that.
    /// Default zero: no grace.
    pub fn reuse_grace(&mut self, grace: Duration) -> &mut Self {
        self.kind.reuse_grace = grace;
        self
    }

    pub(crate) fn layout(&self, capacity: usize) -> Result<Layout> {
        let buffers = self.kind.buffers;
        if !(2..=MAX_SLOTS as usize).contains(&buffers) {
            return Err(Error::InvalidLayout {
                reason: format!("{buffers} buffers; a region has 2 to {MAX_SLOTS}"),
            });
        }
        let capacity = capacity
            .max(size_of::<T::Archived>())
            .checked_next_multiple_of(64)
            .filter(|&c| c <= isize::MAX as usize)
            .ok_or_else(|| Error::InvalidLayout {
                reason: format!("a capacity of {capacity} bytes does not fit in a segment"),
            })?;
        Layout::for_region(capacity, buffers, align_of::<T::Archived>())
    }

    /// Create the region at `key` with buffers of `capacity` bytes (rounded
    /// up to 64); nothing is published yet. Fails if the key exists.
    pub fn create(&self, key: Key, capacity: usize) -> Result<SharedRegion<T>> {
        let ty = RegionSettings::type_desc(self);
        let store = Store::create(key, &self.common, &ty, &self.layout(capacity)?, |_| Ok(()))?;
        Ok(SharedRegion::wrap(store, &self.kind))
    }

    /// Open the region at `key`, or create it with buffers of `capacity`
    /// bytes; if `key` reaches a shmstore object of another type (a new
    /// release of the program that made it), remove that one and create
    /// this one. Processes attached to the old object learn it: their waits
    /// return [`Error::Removed`].
    pub fn open_or_replace(&self, key: Key, capacity: usize) -> Result<SharedRegion<T>> {
        let ty = RegionSettings::type_desc(self);
        let layout = self.layout(capacity)?;
        let store = Store::open_or_replace(key, &self.common, &ty, &layout, |_| Ok(()))?;
        Ok(SharedRegion::wrap(store, &self.kind))
    }

    /// Open the region at `key`, or create it with buffers of `capacity`
    /// bytes.
    pub fn open_or_create(&self, key: Key, capacity: usize) -> Result<SharedRegion<T>> {
        let ty = RegionSettings::type_desc(self);
        let layout = self.layout(capacity)?;
        let store = Store::open_or_create(key, &self.common, &ty, &layout, |_| Ok(()))?;
        Ok(SharedRegion::wrap(store, &self.kind))
    }
}
