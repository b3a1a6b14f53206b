//! `SharedRegion<T, A>`: an rkyv-archived value (strings, vectors, maps)
//! shared between processes and read without deserialising: in place by a
//! read-write handle, from a validated copy by a read-only one.
//!
//! The segment holds a control block and several buffers (4 by default). The
//! current archive is named by one word, `current = (version << 8) |
//! buffer`: the region's one commit point, from which `version()`,
//! `wait_for_change` and every read derive. A writer, under the robust
//! mutex, serialises the new value straight into a buffer that is neither
//! current nor pinned by a live reader (`pin_slot.rs` argues why no pinned
//! buffer is ever chosen), stores its length and the version it holds
//! (`buffers.rs`), then stores `current`, then wakes waiters
//! (`sync/notify.rs`). A writer killed at any point before the `current`
//! store leaves the current archive and its length untouched; one killed
//! after it has published, and the next writer that recovers the lock wakes
//! the waiters it may not have woken.
//!
//! One handle type serves both accesses; what differs is written once per
//! access, each in its file:
//! - a [`ReadWrite`] handle publishes (`publish.rs`) and reads in place
//!   (`in_place.rs`): it pins the buffer `current` names, re-checks, and
//!   hands out the `&Archived<T>` in the segment, valid for as long as the
//!   guard lives since no writer touches a pinned buffer;
//! - a [`ReadOnly`] handle (`SHM_RDONLY`) cannot pin, and reads a validated
//!   private copy (`copies.rs`).
//!
//! Either validates each archive once (rkyv's bytecheck) and keeps what it
//! validated, never the control block's words again, so a peer scribbling
//! on the control block cannot move a reader onto unvalidated bytes. What a
//! writer that scribbles on a published buffer's bytes can do is in
//! ARCHITECTURE.md ("Guarantees and their limits").
//!
//! Why four buffers: one is current, one is kept by readers still finishing
//! with the previous version, one is being written; the fourth lets a slow
//! reader hold an older version without making `publish` wait.
//!
//! What is unsafe about reading rkyv in place (the bytes of a pinned or a
//! free buffer, unchecked access to bytes validated before) is in
//! `archive.rs`; the control block's kept address is the store's
//! (`RegionStore`).

use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rkyv::Archive;

use crate::error::{Error, Result, Target};
use crate::format::{Current, RegionControl};
use crate::key::Key;
use crate::store::{Access, ReadOnly, ReadWrite, RegionStore, Store};
use crate::sync::atomic::Std;
use crate::sys::shm::SegmentInfo;

mod archive;
#[cfg(loom)]
pub mod buffers;
#[cfg(not(loom))]
pub(crate) mod buffers;
mod copies;
pub(crate) use copies::copy_current;
mod in_place;
mod options;
#[cfg(loom)]
pub mod pin_slot;
#[cfg(not(loom))]
pub(crate) mod pin_slot;
mod pins;
mod publish;
pub(crate) use archive::check_archive;
pub(crate) use archive::rkyv_format;
pub use archive::{Publishable, Readable, RegionRef};
pub(crate) use options::region_layout;
pub use options::{RegionCreator, RegionOpener, RegionSettings};

/// The number of buffers a region has unless told otherwise.
pub const DEFAULT_BUFFERS: usize = 4;
/// How long `publish` waits for a buffer no live reader pins, by default.
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

/// An rkyv-archived value shared between processes, read in place.
///
/// `A` is the access: a [`ReadWrite`] handle (the default) publishes and
/// reads in place, a [`RegionReader`] (a `SHM_RDONLY` attachment) reads
/// validated private copies and has no write methods at all.
///
/// ```
/// use shmstore::{Key, RegionReader, SharedRegion, Target};
///
/// #[derive(rkyv::Archive, rkyv::Serialize)]
/// struct Config {
///     name: String,
///     ports: Vec<u16>,
/// }
///
/// let region = SharedRegion::<Config>::create(Key::PRIVATE, 4096)?;
/// let v = region.publish(&Config { name: "edge".into(), ports: vec![80, 443] })?;
/// assert_eq!(v, 1);
/// let cfg = region.read()?; // zero-copy: derefs to ArchivedConfig in the segment
/// assert_eq!(cfg.name.as_str(), "edge");
/// assert_eq!(cfg.ports.len(), 2);
/// drop(cfg);
///
/// let reader = RegionReader::<Config>::open(Target::Id(region.id()))?;
/// assert_eq!(reader.read()?.ports[1], 443);
/// region.remove()?;
/// # Ok::<(), shmstore::Error>(())
/// ```
pub struct SharedRegion<T, A: Access = ReadWrite> {
    /// The store, with its control block's address kept for the read path.
    store: RegionStore,
    /// What reads in place keep (a read-write handle's reads; a read-only
    /// handle never uses it).
    in_place: in_place::InPlace,
    /// What reads from copies keep (a read-only handle's reads; a
    /// read-write handle never uses it).
    copies: copies::Copies,
    /// What a read-write handle keeps for publishing; `None` for read-only
    /// handles.
    writer: Option<publish::Writer>,
    _t: PhantomData<fn() -> (T, A)>,
}

/// A read-only attachment (`SHM_RDONLY`) of a [`SharedRegion`]: it reads
/// validated private copies, waits, and has no write methods at all.
pub type RegionReader<T> = SharedRegion<T, ReadOnly>;

impl<T, A: Access> Drop for SharedRegion<T, A> {
    fn drop(&mut self) {
        // No guard lives (they borrow the handle) and the segment is still
        // attached (`store` is dropped after this).
        // A read-only handle claimed no slot: it has none to release.
        self.in_place.pins.release_all(self.store.control());
    }
}

/// Opening, and the reading methods, for every access.
impl<T: Archive, A: Access> SharedRegion<T, A> {
    pub(crate) fn wrap(store: Store, settings: &RegionSettings) -> Self {
        let store = RegionStore::new(store);
        let writer =
            (!A::READ_ONLY).then(|| publish::Writer::new(settings, store.layout().slot_count));
        SharedRegion {
            in_place: in_place::InPlace::new(store.link()),
            copies: copies::Copies::default(),
            store,
            writer,
            _t: PhantomData,
        }
    }

    /// A builder for opening an existing region with this handle's access:
    /// `SharedRegion::<T>::opener()` read-write,
    /// `RegionReader::<T>::opener()` read-only.
    pub fn opener() -> RegionOpener<T, A> {
        RegionOpener::with(RegionSettings::default())
    }

    /// Open the existing region at `target` (a [`Key`], or a segment's id
    /// as [`Target::Id`]) with this handle's access; fails if absent or of
    /// another type.
    pub fn open(target: impl Into<Target>) -> Result<Self> {
        Self::opener().open(target)
    }

    #[inline]
    pub(crate) fn control(&self) -> &RegionControl {
        self.store.control()
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// The current value: borrowed in place from the segment by a
    /// read-write handle, from a validated private copy (made once per
    /// version) by a read-only one. Each archive is validated the first time
    /// this handle meets its version; later reads of the same version cost
    /// a few atomic operations whatever its size.
    #[inline(always)]
    pub fn read(&self) -> Result<RegionRef<'_, T>>
    where
        T: Readable,
    {
        // Chosen by the type, not by a field: the read path of each access
        // is the only one compiled into it.
        if A::READ_ONLY {
            self.read_copy(&self.copies)
        } else {
            self.read_in_place(&self.in_place)
        }
    }

    /// How many copies this handle made again because the writer reused
    /// their buffer while they ran (0 for a read-write handle, which reads
    /// in place): a reader that copies slower than the writer reuses
    /// buffers starves; the writer's
    /// [`reuse_grace`](crate::Options::reuse_grace) bounds it.
    pub fn retries(&self) -> u64 {
        self.copies.retries.load(Ordering::Relaxed)
    }

    /// The bytes each buffer can hold.
    pub fn capacity(&self) -> usize {
        self.store.layout().slot_stride
    }

    /// The version of the current value (0 before the first publish).
    pub fn version(&self) -> u64 {
        Current::from_raw(self.control().current.load(Ordering::Acquire)).version()
    }

    /// Wait until the version differs from `since` or `timeout` passes;
    /// returns the version then (equal to `since` on timeout). `None`, or a
    /// timeout too long to represent, waits for as long as it takes; a zero
    /// timeout looks once. A read-only attachment cannot tell writers it
    /// waits, so it wakes within a few milliseconds of a change rather than
    /// at once. Once the region is removed, returns [`Error::Removed`]
    /// instead.
    pub fn wait_for_change(&self, since: u64, timeout: Option<Duration>) -> Result<u64> {
        let current = &self.control().current;
        self.store.wait_for_change(since, timeout, || {
            Current::from_raw(current.load(Ordering::SeqCst)).version()
        })
    }

    /// Times a writer found the lock's owner dead and recovered it.
    pub fn recoveries(&self) -> u64 {
        self.store.header().recoveries.load(Ordering::Relaxed)
    }

    /// `IPC_STAT` of the segment.
    pub fn info(&self) -> Result<SegmentInfo> {
        self.store.info()
    }

    /// `IPC_SET` of the permission bits (low 9 bits of `mode`, such as
    /// `0o660` to share with the segment's group); only the owner, the
    /// creator or root may.
    pub fn set_mode(&self, mode: u32) -> Result<()> {
        self.store.set_mode(mode)
    }

    /// `IPC_SET` of the owner's uid and gid; only the owner, the creator or
    /// root may.
    pub fn set_owner(&self, uid: u32, gid: u32) -> Result<()> {
        self.store.set_owner(uid, gid)
    }

    /// Whether this region was removed (by any process, or by `ipcrm`): it
    /// still reads its last value, but no key reaches it any more. One
    /// `IPC_STAT`.
    pub fn is_removed(&self) -> Result<bool> {
        self.store.is_removed()
    }

    /// The segment's kernel id.
    pub fn id(&self) -> i32 {
        self.store.id()
    }

    /// Whether the buffer `current` names holds the version it names: the
    /// check a reader makes once it pinned it (`buffers.rs`).
    #[inline(always)]
    fn holds(&self, current: u64) -> bool {
        let (version, buffer) = (
            Current::from_raw(current).version(),
            Current::from_raw(current).buffer(),
        );
        buffer < self.store.layout().slot_count
            && buffers::holds::<Std>(&self.meta(buffer), version)
    }

    /// A buffer's description.
    fn meta(&self, buffer: usize) -> buffers::Meta<'_, std::sync::atomic::AtomicU64> {
        let m = &self.control().buffers[buffer];
        buffers::Meta {
            len: &m.len,
            version: &m.version,
        }
    }
}

/// Making a region, and removing it.
impl<T: Archive> SharedRegion<T, ReadWrite> {
    /// A builder for creating a region.
    pub fn creator() -> RegionCreator<T> {
        RegionCreator::with(RegionSettings::default())
    }

    /// A builder for creating a region: [`creator`](Self::creator).
    pub fn options() -> RegionCreator<T> {
        Self::creator()
    }

    /// Create the region at `key` with buffers of `capacity` bytes.
    pub fn create(key: Key, capacity: usize) -> Result<Self> {
        Self::creator().create(key, capacity)
    }

    /// Open the region at `key`, or create it with buffers of `capacity` bytes.
    pub fn open_or_create(key: Key, capacity: usize) -> Result<Self> {
        Self::creator().open_or_create(key, capacity)
    }

    /// Open the region at `key`, or create it with buffers of `capacity`
    /// bytes, replacing an object of another type at the key (see
    /// [`RegionCreator::open_or_replace`]).
    pub fn open_or_replace(key: Key, capacity: usize) -> Result<Self> {
        Self::creator().open_or_replace(key, capacity)
    }

    /// Attach the region at `target` read-only: the same as
    /// [`RegionReader::<T>::open`](SharedRegion::open).
    pub fn open_read_only(target: impl Into<Target>) -> Result<RegionReader<T>> {
        RegionReader::open(target)
    }

    /// What this handle keeps for publishing.
    fn writer(&self) -> &publish::Writer {
        self.writer
            .as_ref()
            .expect("a read-write handle is made with its writer")
    }

    /// `IPC_RMID`: the key is free at once; the region stays usable by every
    /// attached process until its last detach, and every process waiting in
    /// `wait_for_change` returns [`Error::Removed`].
    pub fn remove(&self) -> Result<()> {
        self.store.remove()
    }
}

#[cold]
fn corrupt(reason: std::fmt::Arguments<'_>) -> Error {
    Error::Corrupt {
        reason: reason.to_string(),
    }
}

// Handles serve every thread of a process.
const _: () = {
    const fn send_sync<X: Send + Sync>() {}
    send_sync::<SharedRegion<String>>();
    send_sync::<RegionReader<String>>();
};
