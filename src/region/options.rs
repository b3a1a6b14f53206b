//! How a region is opened or created: [`RegionOpener`] and
//! [`RegionCreator`], the shared [`Options`] with what only a region has
//! (its buffers, for a creation; how long a publish waits for one, and the
//! reuse grace, for a writer).

use std::time::Duration;

use rkyv::Archive;

use super::archive::rkyv_format;
use super::{DEFAULT_BUFFERS, DEFAULT_PUBLISH_TIMEOUT, SharedRegion};
use crate::error::{Error, Result};
use crate::format::{Kind, Layout, MAX_SLOTS, TypeDesc};
use crate::key::Key;
use crate::store::{Access, Common, Create, Flavor, Open, Options, ReadWrite, Store, Writes};

/// What only a region's builders have: the number of buffers of a created
/// region, and a writer's publish timeout and reuse grace.
#[derive(Debug, Clone)]
pub struct RegionSettings {
    buffers: usize,
    pub(super) publish_timeout: Duration,
    pub(super) reuse_grace: Duration,
}

impl Default for RegionSettings {
    fn default() -> Self {
        RegionSettings {
            buffers: DEFAULT_BUFFERS,
            publish_timeout: DEFAULT_PUBLISH_TIMEOUT,
            reuse_grace: Duration::ZERO,
        }
    }
}

/// How to open an existing [`SharedRegion`] with access `A`: timeouts,
/// owner checks and the type's identity ([`Options`]), and for a
/// read-write handle the publish timeout and reuse grace. Made by
/// [`SharedRegion::opener`].
pub type RegionOpener<T, A = ReadWrite> = Options<T, RegionSettings, Open<A>>;

/// How to create a [`SharedRegion`]: what a read-write opener has, and the
/// mode, the group and the number of buffers. Made by
/// [`SharedRegion::creator`].
pub type RegionCreator<T> = Options<T, RegionSettings, Create>;

impl<T: Archive> Flavor<T> for RegionSettings {
    type Handle<A: Access> = SharedRegion<T, A>;

    fn type_desc(common: &Common) -> Result<TypeDesc> {
        common.type_desc::<T>(
            Kind::Region,
            size_of::<T::Archived>(),
            align_of::<T::Archived>(),
            rkyv_format(),
        )
    }

    fn handle<A: Access>(store: Store, settings: &RegionSettings) -> SharedRegion<T, A> {
        SharedRegion::wrap(store, settings)
    }
}

/// What only a region's writers have.
impl<T: Archive, M: Writes> Options<T, RegionSettings, M> {
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
}

/// What only a region's creation has.
impl<T: Archive> Options<T, RegionSettings, Create> {
    /// The number of buffers of a created region (2 to 64). Default 4.
    pub fn buffers(&mut self, n: usize) -> &mut Self {
        self.kind.buffers = n;
        self
    }

    pub(crate) fn layout(&self, capacity: usize) -> Result<Layout> {
        region_layout(
            capacity.max(size_of::<T::Archived>()),
            self.kind.buffers,
            align_of::<T::Archived>(),
            self.common.schema_len(),
        )
    }

    /// Create the region at `key` with buffers of `capacity` bytes (rounded
    /// up to 64); nothing is published yet. Fails if the key exists.
    pub fn create(&self, key: Key, capacity: usize) -> Result<SharedRegion<T>> {
        let ty = <RegionSettings as Flavor<T>>::type_desc(&self.common)?;
        let store = Store::create(key, &self.common, &ty, &self.layout(capacity)?, |_| Ok(()))?;
        Ok(SharedRegion::wrap(store, &self.kind))
    }

    /// Open the region at `key`, or create it with buffers of `capacity`
    /// bytes; if `key` reaches a shmstore object of another type (a new
    /// release of the program that made it), remove that one and create
    /// this one. Processes attached to the old object learn it: their waits
    /// return [`Error::Removed`].
    pub fn open_or_replace(&self, key: Key, capacity: usize) -> Result<SharedRegion<T>> {
        let ty = <RegionSettings as Flavor<T>>::type_desc(&self.common)?;
        let layout = self.layout(capacity)?;
        let store = Store::open_or_replace(key, &self.common, &ty, &layout, |_| Ok(()))?;
        Ok(SharedRegion::wrap(store, &self.kind))
    }

    /// Open the region at `key`, or create it with buffers of `capacity`
    /// bytes.
    pub fn open_or_create(&self, key: Key, capacity: usize) -> Result<SharedRegion<T>> {
        let ty = <RegionSettings as Flavor<T>>::type_desc(&self.common)?;
        let layout = self.layout(capacity)?;
        let store = Store::open_or_create(key, &self.common, &ty, &layout, |_| Ok(()))?;
        Ok(SharedRegion::wrap(store, &self.kind))
    }
}

/// The layout of a created region of `buffers` buffers (2 to 64) of
/// `capacity` bytes rounded up to 64, for a root aligned to `align`, after
/// a schema of `schema_len` bytes: for typed and raw handles alike.
pub(crate) fn region_layout(
    capacity: usize,
    buffers: usize,
    align: usize,
    schema_len: usize,
) -> Result<Layout> {
    if !(2..=MAX_SLOTS as usize).contains(&buffers) {
        return Err(Error::InvalidLayout {
            reason: format!("{buffers} buffers; a region has 2 to {MAX_SLOTS}"),
        });
    }
    let capacity = capacity
        .checked_next_multiple_of(64)
        .filter(|&c| c <= isize::MAX as usize)
        .ok_or_else(|| Error::InvalidLayout {
            reason: format!("a capacity of {capacity} bytes does not fit in a segment"),
        })?;
    Layout::for_region(capacity, buffers, align, schema_len)
}
