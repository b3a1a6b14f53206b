//! `SharedCell<T>`: one plain-data value shared between processes.
//!
//! Reads are lock-free and write nothing. The value lives in a ring of slots
//! (a power of two, 4 by default); the commit counter `seq` names the
//! current one, `seq % slots`, and is the cell's one commit point, which
//! `version()` and `wait_for_change` read too. A writer, holding the robust
//! mutex, announces the version it is about to write, fills the next slot
//! and then bumps `seq`; a reader copies the slot `seq` names and keeps the
//! copy unless a writer may have started refilling that slot meanwhile. The
//! protocol and why a kept copy is whole are in `ring.rs`. A writer killed
//! mid-copy leaves the committed slots intact, so readers never wait on it
//! and never see a torn value. Copies go through atomic words or the
//! processor's string move (see `sync::copy`), never through `&T` into
//! shared memory; the store makes them (`Store::load_cell`,
//! `Store::read_cell_into`, `Store::read_slot`, `Store::write_slot`).

use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytemuck::Pod;

use crate::error::{Result, Target};
use crate::key::Key;
use crate::store::{Access, ReadOnly, ReadWrite, Store};
use crate::sync::atomic::Std;
use crate::sys::shm::SegmentInfo;

mod lease;
mod options;
#[cfg(loom)]
pub mod ring;
#[cfg(not(loom))]
pub(crate) mod ring;

pub use lease::CellLease;
pub(crate) use options::cell_layout;
pub use options::{CellCreator, CellOpener, CellSettings, DEFAULT_CELL_SLOTS};

/// A plain-data value shared between processes, read without locks.
///
/// `T` needs only [`bytemuck::Pod`]. Its identity (size, alignment, name,
/// schema version) is checked at every open. `A` is the access: a
/// [`ReadWrite`] handle (the default) has the write methods, a
/// [`CellReader`] (a `SHM_RDONLY` attachment) has only the reading ones.
///
/// ```
/// use shmstore::{Key, SharedCell};
///
/// let cell = SharedCell::create(Key::PRIVATE, [0u64; 8])?;
/// cell.store([1; 8])?;
/// let n = cell.update(|v| {
///     v[0] += 1;
///     v[0]
/// })?;
/// assert_eq!(n, 2);
/// assert_eq!(cell.load()[0], 2);
/// assert_eq!(cell.version(), 2);
/// cell.remove()?;
/// # Ok::<(), shmstore::Error>(())
/// ```
pub struct SharedCell<T, A: Access = ReadWrite> {
    store: Store,
    _t: PhantomData<(fn() -> T, A)>,
}

/// A read-only attachment (`SHM_RDONLY`) of a [`SharedCell`]: it can read
/// and wait, and has no write methods at all.
///
/// ```
/// use shmstore::{CellReader, Key, SharedCell};
///
/// let cell = SharedCell::create(Key::PRIVATE, 7u32)?;
/// let reader = CellReader::<u32>::open(shmstore::Target::Id(cell.id()))?;
/// assert_eq!(reader.load(), 7);
/// cell.remove()?;
/// # Ok::<(), shmstore::Error>(())
/// ```
pub type CellReader<T> = SharedCell<T, ReadOnly>;

/// Write the first value into slot 0; the commit counter is 0.
pub(crate) fn init<T: Pod>(store: &Store, initial: &T) {
    // Nobody reads it before READY.
    store.write_slot(0, bytemuck::bytes_of(initial));
}

/// Opening, and the reading methods, for every access.
impl<T: Pod, A: Access> SharedCell<T, A> {
    pub(crate) fn wrap(store: Store) -> Self {
        SharedCell {
            store,
            _t: PhantomData,
        }
    }

    /// A builder for opening an existing cell with this handle's access:
    /// `SharedCell::<T>::opener()` read-write, `CellReader::<T>::opener()`
    /// read-only.
    pub fn opener() -> CellOpener<T, A> {
        CellOpener::with(CellSettings::default())
    }

    /// Open the existing cell at `target` (a [`Key`], or a segment's id as
    /// [`Target::Id`]) with this handle's access; fails if absent or of
    /// another type.
    pub fn open(target: impl Into<Target>) -> Result<Self> {
        Self::opener().open(target)
    }

    /// The untyped store under the cell.
    pub(crate) fn untyped(&self) -> &Store {
        &self.store
    }

    /// The value last committed. Never blocks on a writer, never torn.
    #[inline]
    pub fn load(&self) -> T {
        self.store.load_cell()
    }

    /// Copy the value last committed into `out`: `*out = self.load()`
    /// without the second copy that returning a large `T` by value often
    /// costs (measured at 64 KiB: a whole extra `memcpy`). While it runs
    /// `out` may hold bytes of a value being written; when it returns, it
    /// holds a whole committed value.
    #[inline]
    pub fn load_into(&self, out: &mut T) {
        self.store.read_cell_into(out);
    }

    /// The number of values committed since the cell was created.
    pub fn version(&self) -> u64 {
        self.store.seq().load(Ordering::Acquire)
    }

    /// Wait until the version differs from `since` or `timeout` passes, and
    /// return the version then (equal to `since` on timeout). `None`, or a
    /// timeout too long to represent, waits for as long as it takes; a zero
    /// timeout looks once. A read-only attachment cannot tell writers it
    /// waits, so it wakes within a few milliseconds of a change rather than
    /// at once. Once the cell is removed (by any process, or by `ipcrm`),
    /// it returns [`Error::Removed`](crate::Error::Removed) instead of
    /// waiting on, within a fraction of a second.
    pub fn wait_for_change(&self, since: u64, timeout: Option<Duration>) -> Result<u64> {
        let seq = self.store.seq();
        self.store
            .wait_for_change(since, timeout, || seq.load(Ordering::SeqCst))
    }

    /// Times a writer found the lock's owner dead and recovered it.
    pub fn recoveries(&self) -> u64 {
        self.store.header().recoveries.load(Ordering::Relaxed)
    }

    /// Whether this cell was removed (by any process, or by `ipcrm`): it
    /// still reads its last value, but no key reaches it any more, so a
    /// replacement may live at its key. One `IPC_STAT`.
    pub fn is_removed(&self) -> Result<bool> {
        self.store.is_removed()
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

    /// The segment's kernel id.
    pub fn id(&self) -> i32 {
        self.store.id()
    }
}

/// Making a cell, and the writing methods.
impl<T: Pod> SharedCell<T, ReadWrite> {
    /// A builder for creating a cell.
    pub fn creator() -> CellCreator<T> {
        CellCreator::with(CellSettings::default())
    }

    /// A builder for creating a cell: [`creator`](Self::creator).
    pub fn options() -> CellCreator<T> {
        Self::creator()
    }

    /// Create the cell at `key` holding `initial` (fails if the key exists).
    pub fn create(key: Key, initial: T) -> Result<Self> {
        Self::creator().create(key, initial)
    }

    /// Open the cell at `key`, or create it holding `initial`.
    pub fn open_or_create(key: Key, initial: T) -> Result<Self> {
        Self::creator().open_or_create(key, initial)
    }

    /// Open the cell at `key`, or create it holding `initial`, replacing an
    /// object of another type at the key (see
    /// [`CellCreator::open_or_replace`]).
    pub fn open_or_replace(key: Key, initial: T) -> Result<Self> {
        Self::creator().open_or_replace(key, initial)
    }

    /// Attach the cell at `target` read-only: the same as
    /// [`CellReader::<T>::open`](SharedCell::open).
    pub fn open_read_only(target: impl Into<Target>) -> Result<CellReader<T>> {
        CellReader::open(target)
    }

    /// Replace the value.
    pub fn store(&self, value: T) -> Result<()> {
        let guard = self.store.lock()?;
        crate::crash::point("cell.after_lock");
        self.commit_next(&value);
        guard.committed();
        Ok(())
    }

    /// Write `value` into the slot of the next version and commit it; the
    /// caller holds the write lock.
    fn commit_next(&self, value: &T) {
        let h = self.store.header();
        let slots = self.store.layout().slot_count as u64;
        ring::write::<Std>(&h.seq, &h.writing, slots, |slot| {
            // Only lock holders write the slot, and readers that copy it
            // meanwhile see `writing` moved.
            self.store.write_slot(slot, bytemuck::bytes_of(value))
        });
    }

    /// Change the value under the write lock and return what `f` returns.
    /// Other processes see the old value until `f` returns and the new one is
    /// committed; if `f` panics, nothing is committed.
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> Result<R> {
        let guard = self.store.lock()?;
        crate::crash::point("cell.after_lock");
        let result = self.update_locked(f);
        guard.committed();
        Ok(result)
    }

    /// Copy the committed value, let `f` change it and commit it as the
    /// next version; the caller holds the write lock.
    fn update_locked<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let s = self.store.seq().load(Ordering::Relaxed);
        let mut value = T::zeroed();
        let slot = ring::slot_of(s, self.store.layout().slot_count as u64);
        // Holding the lock, no writer changes the committed slot, so one
        // copy is consistent.
        self.store
            .read_slot(slot, bytemuck::bytes_of_mut(&mut value));
        let result = f(&mut value);
        self.commit_next(&value);
        result
    }

    /// `IPC_RMID`: the key is free at once; the cell stays usable by every
    /// attached process until its last detach, and every process waiting in
    /// `wait_for_change` returns [`Error::Removed`](crate::Error::Removed).
    pub fn remove(&self) -> Result<()> {
        self.store.remove()
    }
}

// Handles serve every thread of a process.
const _: () = {
    const fn send_sync<X: Send + Sync>() {}
    send_sync::<SharedCell<[u64; 8]>>();
    send_sync::<CellReader<[u64; 8]>>();
};

impl<T, A: Access> std::fmt::Debug for SharedCell<T, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(if A::READ_ONLY {
            "CellReader"
        } else {
            "SharedCell"
        })
        .field("memory", self.store.memory())
        .finish()
    }
}
