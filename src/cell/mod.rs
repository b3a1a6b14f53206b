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
//! shared memory.

use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytemuck::Pod;

use crate::error::{Error, Result};
use crate::header::{Kind, Layout, MAX_SLOTS, TypeDesc};
use crate::key::Key;
use crate::raw::{RawStore, Spec};
use crate::segment::SegmentInfo;
use crate::sync::atomic::Std;
use crate::sync::copy;

#[cfg(loom)]
pub mod ring;
#[cfg(not(loom))]
mod ring;

/// How to open or create a [`SharedCell`]: mode, removal on drop, timeouts
/// and the type's identity.
///
/// ```
/// use shmstore::{Key, SharedCell};
///
/// let cell = SharedCell::<[u64; 4]>::options()
///     .mode(0o640)
///     .type_name("acme.Counters")
///     .schema_version(2)
///     .remove_on_drop(true)
///     .create(Key::PRIVATE, [0; 4])?;
/// assert_eq!(cell.info()?.mode, 0o640);
/// # Ok::<(), shmstore::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct CellOptions<T> {
    spec: Spec,
    slots: usize,
    _t: PhantomData<fn() -> T>,
}

/// The slots of a new cell unless [`CellOptions::slots`] says otherwise.
pub const DEFAULT_CELL_SLOTS: usize = 4;

impl<T: Pod> CellOptions<T> {
    fn new() -> Self {
        CellOptions {
            spec: Spec::default(),
            slots: DEFAULT_CELL_SLOTS,
            _t: PhantomData,
        }
    }

    crate::raw::spec_setters!();

    /// The number of slots a created cell keeps the value in: a power of two
    /// from 2 to 64, [`DEFAULT_CELL_SLOTS`] by default. A reader's copy
    /// survives `slots - 1` commits made while it copies, so more slots help
    /// readers of large values keep up with a writer that never pauses; each
    /// costs one more `size_of::<T>()` of shared memory. Opening an existing
    /// cell takes the count it was created with.
    pub fn slots(&mut self, n: usize) -> &mut Self {
        self.slots = n;
        self
    }

    fn type_desc(&self) -> TypeDesc {
        self.spec
            .type_desc::<T>(Kind::Cell, size_of::<T>(), align_of::<T>(), 0)
    }

    fn layout(&self) -> Result<Layout> {
        let n = self.slots;
        if !(2..=MAX_SLOTS as usize).contains(&n) || !n.is_power_of_two() {
            return Err(Error::InvalidLayout {
                reason: format!("{n} slots; a cell has a power of two from 2 to {MAX_SLOTS}"),
            });
        }
        Layout::for_value(size_of::<T>(), align_of::<T>(), n)
    }

    /// Create the cell at `key` holding `initial`; fails with
    /// [`Error::AlreadyExists`] if the key is taken.
    pub fn create(&self, key: Key, initial: T) -> Result<SharedCell<T>> {
        let raw = RawStore::create(key, &self.spec, &self.type_desc(), &self.layout()?, |raw| {
            init(raw, &initial)
        })?;
        Ok(SharedCell::wrap(raw))
    }

    /// Open the existing cell at `key`, checking that it holds `T`.
    pub fn open(&self, key: Key) -> Result<SharedCell<T>> {
        let raw = RawStore::open(key, &self.spec, &self.type_desc(), false)?;
        Ok(SharedCell::wrap(raw))
    }

    /// Open the cell at `key`, or create it holding `initial`.
    pub fn open_or_create(&self, key: Key, initial: T) -> Result<SharedCell<T>> {
        let raw =
            RawStore::open_or_create(key, &self.spec, &self.type_desc(), &self.layout()?, |raw| {
                init(raw, &initial)
            })?;
        Ok(SharedCell::wrap(raw))
    }

    /// Attach the cell at `key` read-only (`SHM_RDONLY`).
    pub fn open_read_only(&self, key: Key) -> Result<CellReader<T>> {
        let raw = RawStore::open(key, &self.spec, &self.type_desc(), true)?;
        Ok(CellReader {
            raw,
            _t: PhantomData,
        })
    }

    /// Attach the cell in the segment with this id (as `ipcs -m` or
    /// [`SharedCell::id`] gives it); works for private and removed segments
    /// that no key reaches any more.
    pub fn attach_id(&self, id: i32) -> Result<SharedCell<T>> {
        let raw = RawStore::attach_id(id, &self.spec, &self.type_desc(), false)?;
        Ok(SharedCell::wrap(raw))
    }

    /// Attach the cell in the segment with this id read-only.
    pub fn attach_id_read_only(&self, id: i32) -> Result<CellReader<T>> {
        let raw = RawStore::attach_id(id, &self.spec, &self.type_desc(), true)?;
        Ok(CellReader {
            raw,
            _t: PhantomData,
        })
    }
}

/// Write the first value into slot 0; the commit counter is 0.
pub(crate) fn init<T: Pod>(raw: &RawStore, initial: &T) -> Result<()> {
    // SAFETY: slot 0 is 8-aligned and spans slot_stride >= size_of::<T>()
    // bytes rounded up to 8, inside the segment; nobody reads it before READY.
    unsafe { copy::store_bytes(raw.slot_ptr(0), bytemuck::bytes_of(initial)) };
    Ok(())
}

#[inline]
fn load<T: Pod>(raw: &RawStore) -> T {
    let mut value = MaybeUninit::<T>::uninit();
    load_into(raw, value.as_mut_ptr());
    // SAFETY: load_into wrote every byte of value, and any bytes are a valid
    // T (T: Pod).
    unsafe { value.assume_init() }
}

/// Copy the committed value to `out` (all `size_of::<T>()` bytes of it).
#[inline]
fn load_into<T: Pod>(raw: &RawStore, out: *mut T) {
    let header = raw.header();
    let slots = raw.layout().slot_count as u64;
    ring::read::<Std>(&header.seq, &header.writing, slots, |slot| {
        // SAFETY: the slot is one of the validated slots, 8-aligned and
        // readable for size_of::<T>() rounded up to 8 bytes; `out` is private
        // memory of size_of::<T>() bytes (the callers' locals and references).
        unsafe { copy::load_bytes(raw.slot_ptr(slot), out.cast(), size_of::<T>()) }
    });
}

/// The reading methods, the same on [`SharedCell`] and [`CellReader`].
macro_rules! read_methods {
    () => {
        /// The value last committed. Never blocks on a writer, never torn.
        #[inline]
        pub fn load(&self) -> T {
            load(&self.raw)
        }

        /// Copy the value last committed into `out`: `*out = self.load()`
        /// without the second copy that returning a large `T` by value
        /// often costs (measured at 64 KiB: a whole extra `memcpy`). While
        /// it runs `out` may hold bytes of a value being written; when it
        /// returns, it holds a whole committed value.
        #[inline]
        pub fn load_into(&self, out: &mut T) {
            load_into(&self.raw, out)
        }

        /// The number of values committed since the cell was created.
        pub fn version(&self) -> u64 {
            self.raw.seq().load(Ordering::Acquire)
        }

        /// Wait until the version differs from `since` or `timeout` passes,
        /// and return the version then (equal to `since` on timeout). `None`,
        /// or a timeout too long to represent, waits for as long as it
        /// takes. A read-only attachment cannot tell writers it waits, so it
        /// wakes within a few milliseconds of a change rather than at once.
        pub fn wait_for_change(&self, since: u64, timeout: Option<Duration>) -> Result<u64> {
            let seq = self.raw.seq();
            self.raw
                .wait_for_change(since, timeout, || seq.load(Ordering::SeqCst))
        }

        /// Times a writer found the lock's owner dead and recovered it.
        pub fn recoveries(&self) -> u64 {
            self.raw.header().recoveries.load(Ordering::Relaxed)
        }

        /// `IPC_STAT` of the segment.
        pub fn info(&self) -> Result<SegmentInfo> {
            self.raw.info()
        }

        /// The segment's kernel id.
        pub fn id(&self) -> i32 {
            self.raw.id()
        }
    };
}

/// A plain-data value shared between processes, read without locks.
///
/// `T` needs only [`bytemuck::Pod`]. Its identity (size, alignment, name,
/// schema version) is checked at every open.
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
pub struct SharedCell<T> {
    raw: RawStore,
    _t: PhantomData<fn() -> T>,
}

/// A read-only attachment (`SHM_RDONLY`) of a [`SharedCell`]: it can read and
/// wait, and has no write methods at all.
pub struct CellReader<T> {
    raw: RawStore,
    _t: PhantomData<fn() -> T>,
}

impl<T: Pod> SharedCell<T> {
    pub(crate) fn wrap(raw: RawStore) -> Self {
        SharedCell {
            raw,
            _t: PhantomData,
        }
    }

    /// Options for opening or creating a cell.
    pub fn options() -> CellOptions<T> {
        CellOptions::new()
    }

    /// Create the cell at `key` holding `initial` (fails if the key exists).
    pub fn create(key: Key, initial: T) -> Result<Self> {
        Self::options().create(key, initial)
    }

    /// Open the existing cell at `key` (fails if absent or of another type).
    pub fn open(key: Key) -> Result<Self> {
        Self::options().open(key)
    }

    /// Open the cell at `key`, or create it holding `initial`.
    pub fn open_or_create(key: Key, initial: T) -> Result<Self> {
        Self::options().open_or_create(key, initial)
    }

    /// Attach the cell at `key` read-only.
    pub fn open_read_only(key: Key) -> Result<CellReader<T>> {
        Self::options().open_read_only(key)
    }

    read_methods!();

    /// Replace the value.
    pub fn store(&self, value: T) -> Result<()> {
        let guard = self.raw.lock()?;
        crate::crash::point("cell.after_lock");
        self.commit_next(&value);
        guard.committed();
        Ok(())
    }

    /// Write `value` into the slot of the next version and commit it; the
    /// caller holds the write lock.
    fn commit_next(&self, value: &T) {
        let h = self.raw.header();
        let slots = self.raw.layout().slot_count as u64;
        ring::write::<Std>(&h.seq, &h.writing, slots, |slot| {
            // SAFETY: the slot is one of the validated slots, 8-aligned and
            // writable (lock() refused a read-only attachment); only lock
            // holders write it, and readers that copy it meanwhile see
            // `writing` moved.
            unsafe { copy::store_bytes(self.raw.slot_ptr(slot), bytemuck::bytes_of(value)) }
        });
    }

    /// Change the value under the write lock and return what `f` returns.
    /// Other processes see the old value until `f` returns and the new one is
    /// committed; if `f` panics, nothing is committed.
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> Result<R> {
        let guard = self.raw.lock()?;
        crate::crash::point("cell.after_lock");
        let s = self.raw.seq().load(Ordering::Relaxed);
        let mut value = T::zeroed();
        let slot = ring::slot_of(s, self.raw.layout().slot_count as u64);
        // SAFETY: the slot is valid as in `load`; holding the lock, no
        // writer changes the committed slot, so one copy is consistent.
        unsafe {
            copy::load_bytes(
                self.raw.slot_ptr(slot),
                (&raw mut value).cast(),
                size_of::<T>(),
            )
        };
        let result = f(&mut value);
        self.commit_next(&value);
        guard.committed();
        Ok(result)
    }

    /// `IPC_RMID`: the key is free at once; the cell stays usable by every
    /// attached process until its last detach.
    pub fn remove(&self) -> Result<()> {
        self.raw.remove()
    }
}

impl<T: Pod> CellReader<T> {
    read_methods!();
}

// Handles serve every thread of a process.
const _: () = {
    const fn send_sync<X: Send + Sync>() {}
    send_sync::<SharedCell<[u64; 8]>>();
    send_sync::<CellReader<[u64; 8]>>();
};

impl<T> std::fmt::Debug for SharedCell<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCell")
            .field("memory", self.raw.backing())
            .finish()
    }
}

impl<T> std::fmt::Debug for CellReader<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CellReader")
            .field("memory", self.raw.backing())
            .finish()
    }
}
