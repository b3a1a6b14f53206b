//! An untyped shmstore object: one segment, created or opened, validated,
//! with its write lock and its waiting. `SharedCell` and `SharedRegion` are
//! typed containers over it, as `lock_api`'s containers are over raw locks.
//! One concept per file: the builder every kind shares, with its open and
//! create modes (`options.rs`), the life of an object: creating, naming,
//! opening, replacing, removing and collecting (`life/`), the write lock
//! (`lock.rs`), waiting for a change (`wait.rs`), and the memory an object
//! lives in (`memory.rs`, `heap.rs`).
//!
//! **Validation.** An open validates the header once, checks the type on
//! the values `format::validate` read, and keeps the kind and the layout it
//! returned: neither is read from the segment again, so a peer scribbling
//! on the header later cannot move a slot outside the mapping.
//!
//! **Raw memory.** This file holds the store's `unsafe` code, with
//! `heap.rs` (the fuzz targets' heap image, which allocates, frees and
//! scribbles on its own memory): the store keeps its memory's address, and
//! hands out the header, the slots' bytes (copied through `sync::copy`, or
//! as a raw pointer for rkyv's in-place access in `region/archive.rs`), a
//! region's control block ([`RegionStore`], and [`ControlLink`] for
//! threads' bookkeeping) and the write lock's mutex, each through a safe
//! method that checks what the validated layout does not already
//! guarantee. Each item here that needs `unsafe` allows it by itself, so
//! that the other modules below this one stay under the crate's
//! `deny(unsafe_code)`.

use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use bytemuck::Pod;
use parking_lot::Mutex;

use crate::error::Result;
use crate::format::{
    HEADER_SIZE, Header, Kind, Layout, Mapping, REGION_CONTROL_SIZE, RegionControl,
};
use crate::sync::copy;
use crate::sys::mutex;
use crate::sys::proc;
use crate::sys::shm::SegmentInfo;

#[cfg(feature = "fuzzing")]
pub mod heap;
#[cfg(loom)]
pub mod life;
#[cfg(not(loom))]
pub(crate) mod life;
mod lock;
pub mod memory;
pub mod options;
pub mod wait;

pub use lock::WriteGuard;
pub use memory::Memory;
pub use options::{Common, Create, Flavor, Open, Options, Writes};

/// Read-write access to an object: its handle has the write methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReadWrite;

/// Read-only access (`SHM_RDONLY`): its handle can read and wait, and has no
/// write methods at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReadOnly;

/// The access a handle has: [`ReadWrite`] or [`ReadOnly`].
pub trait Access: sealed::Sealed + Send + Sync + 'static {
    /// Whether the attachment is `SHM_RDONLY`.
    const READ_ONLY: bool;
}

impl Access for ReadWrite {
    const READ_ONLY: bool = false;
}

impl Access for ReadOnly {
    const READ_ONLY: bool = true;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::ReadWrite {}
    impl Sealed for super::ReadOnly {}
}

/// An attached, validated shmstore segment.
#[derive(Debug)]
pub struct Store {
    /// Shared with the stores [`Store::share`] made (a watcher's): the
    /// memory is detached when the last of them drops.
    memory: Arc<Attached>,
    /// `memory.as_ptr()`, kept for the hot paths.
    base: NonNull<u8>,
    /// What was validated at open (or made at create). Kept here, never
    /// re-read from the segment, so a peer scribbling on the header later
    /// cannot move a slot outside the mapping.
    kind: Kind,
    layout: Layout,
    /// The process that armed removal on drop (only once the open or
    /// create succeeded); 0: not armed. A forked child that drops its copy
    /// of the handle removes nothing.
    remove_on_drop: i32,
}

/// The memory, and what the stores sharing it remember of it.
#[derive(Debug)]
struct Attached {
    memory: Memory,
    /// When a wait last asked the kernel whether the object was removed
    /// and found it was not (`wait.rs`). Kept here rather than in `Store`,
    /// whose size the hot paths are sensitive to (a word more there made a
    /// 64-byte `load` 1.2 ns slower).
    asked: wait::Asked,
}

impl std::ops::Deref for Attached {
    type Target = Memory;

    fn deref(&self) -> &Memory {
        &self.memory
    }
}

impl Store {
    fn unarmed(memory: Memory, kind: Kind, layout: Layout) -> Store {
        Store {
            base: base_of(&memory),
            memory: Arc::new(Attached {
                memory,
                asked: wait::Asked::default(),
            }),
            kind,
            layout,
            remove_on_drop: 0,
        }
    }

    fn arm(&mut self, remove_on_drop: bool) {
        if remove_on_drop {
            self.remove_on_drop = proc::own_pid();
        }
    }

    /// Another store on the same attachment and the layout validated for
    /// it, which never removes the object when dropped: the memory stays
    /// attached until the last of them drops (a watcher keeps one while it
    /// watches the object).
    pub fn share(&self) -> Store {
        Store {
            memory: Arc::clone(&self.memory),
            base: self.base,
            kind: self.kind,
            layout: self.layout,
            remove_on_drop: 0,
        }
    }

    /// Whether `other` shares this store's attachment ([`Store::share`]).
    pub fn same_memory(&self, other: &Store) -> bool {
        Arc::ptr_eq(&self.memory, &other.memory)
    }

    /// The header (validated when the store was opened or created).
    #[inline]
    #[allow(unsafe_code)]
    pub fn header(&self) -> &Header {
        // SAFETY: `base` is the memory's first byte, reached through its
        // mutable pointer (a mapping or a heap image), and the memory is at
        // least HEADER_SIZE bytes (validated on open, checked on create),
        // page-aligned (shmat, HeapImage), and lives as long as self; Header
        // consists of atomics and the mutex's room, valid for any bytes and
        // sound to share while others write them.
        unsafe { &*self.base.as_ptr().cast::<Header>() }
    }

    /// Open the memory as whatever shmstore object it validates as, with no
    /// look at its type and no wait for its creator: for inspecting.
    pub fn open_untyped(memory: Memory) -> Result<Store> {
        let h = crate::format::header_of(&memory)?;
        let valid = crate::format::validate(h, memory.len())?;
        Ok(Self::unarmed(memory, valid.kind, valid.layout))
    }

    /// Copy the value a cell holds now into `out` (at most the validated
    /// value size), as readers copy (`cell/ring.rs`); its version.
    #[allow(unsafe_code)]
    pub fn read_cell(&self, out: &mut [u8]) -> u64 {
        assert!(out.len() <= self.layout.value_size, "a cell's value");
        // SAFETY: `out` is private memory of `out.len()` bytes, no more
        // than the validated value size (checked).
        unsafe { self.read_cell_raw(out.as_mut_ptr(), out.len()) }
    }

    /// The value a cell holds now, as readers copy it (`cell/ring.rs`):
    /// `size_of::<T>()` bytes of it, at most the validated value size.
    #[inline]
    #[allow(unsafe_code)]
    pub fn load_cell<T: Pod>(&self) -> T {
        assert!(size_of::<T>() <= self.layout.value_size, "a cell's value");
        let mut value = MaybeUninit::<T>::uninit();
        // SAFETY: `value` is this thread's, size_of::<T>() bytes, no more
        // than the validated value size (checked).
        unsafe { self.read_cell_raw(value.as_mut_ptr().cast(), size_of::<T>()) };
        // SAFETY: read_cell_raw wrote every byte of value, and any bytes are
        // a valid T (T: Pod).
        unsafe { value.assume_init() }
    }

    /// Copy the value a cell holds now into `out` (`size_of::<T>()` bytes,
    /// at most the validated value size); its version. While it runs `out`
    /// may hold bytes of a value being written; when it returns, a whole
    /// committed value.
    #[inline]
    #[allow(unsafe_code)]
    pub fn read_cell_into<T: Pod>(&self, out: &mut T) -> u64 {
        assert!(size_of::<T>() <= self.layout.value_size, "a cell's value");
        // SAFETY: `out` is the caller's exclusive borrow of size_of::<T>()
        // bytes, no more than the validated value size (checked); any bytes
        // are a valid T (T: Pod).
        unsafe { self.read_cell_raw(std::ptr::from_mut(out).cast(), size_of::<T>()) }
    }

    /// Copy the value a cell holds now to `out`, `len` bytes; its version.
    ///
    /// # Safety
    /// `out` is valid for writes of `len` bytes, private to this thread,
    /// and `len` is at most the validated value size.
    #[inline]
    #[allow(unsafe_code)]
    unsafe fn read_cell_raw(&self, out: *mut u8, len: usize) -> u64 {
        let header = self.header();
        let slots = self.layout.slot_count as u64;
        crate::cell::ring::read::<crate::sync::atomic::Std>(
            &header.seq,
            &header.writing,
            slots,
            |slot| {
                // SAFETY: the slot is one of the validated slots (slot_ptr
                // checks), 8-aligned and readable for its stride, at least
                // the value size rounded up to 8, which covers `len`, through
                // the memory's mutable pointer; `out` is the caller's, valid
                // for `len` bytes, and private, so no overlap.
                unsafe { copy::load_bytes(self.slot_ptr(slot), out, len) }
            },
        )
    }

    /// Copy the first `out.len()` bytes of slot `i` (at most its stride)
    /// into `out`, through relaxed atomic loads: a copy as readers make it,
    /// whole only if nobody writes the slot meanwhile (or a protocol says
    /// which copies to keep).
    #[inline]
    #[allow(unsafe_code)]
    pub fn read_slot(&self, i: usize, out: &mut [u8]) {
        assert!(out.len() <= self.layout.slot_stride, "a slot's bytes");
        let src = self.slot_ptr(i);
        // SAFETY: slot i is a validated slot (slot_ptr checks i), 8-aligned
        // (the layout's offset and stride are multiples of 8) and readable
        // for its stride, a multiple of 8 at least `out.len()` (checked),
        // inside the memory, reached through its mutable pointer; `out` is
        // private, so no overlap.
        unsafe { copy::load_bytes(src, out.as_mut_ptr(), out.len()) }
    }

    /// Write `data` (at most the slot's stride) into slot `i` through
    /// relaxed atomic stores, zero-padding its last word: as the holder of
    /// the write lock does, or the creator before READY (which the caller
    /// is).
    #[inline]
    #[allow(unsafe_code)]
    pub fn write_slot(&self, i: usize, data: &[u8]) {
        assert!(data.len() <= self.layout.slot_stride, "a slot's bytes");
        assert!(!self.memory.is_read_only(), "a write to a read-only store");
        let dst = self.slot_ptr(i);
        // SAFETY: slot i is a validated slot (slot_ptr checks i), 8-aligned
        // and spans its stride, a multiple of 8 at least data.len()
        // (checked), inside the memory, writable (not a read-only attachment:
        // checked) through its mutable pointer; every store is atomic, so
        // other writers and readers at the same time make no data race.
        unsafe { copy::store_bytes(dst, data) }
    }

    /// The control block after the header, for a store validated (or
    /// created) as a region.
    #[inline]
    pub fn region_control(&self) -> &RegionControl {
        assert!(
            self.kind == Kind::Region
                && self.layout.data_offset >= HEADER_SIZE + REGION_CONTROL_SIZE,
            "a region's control block of a {:?}",
            self.kind
        );
        // Validation (or creation) put the block inside the memory for a
        // region: data_offset (checked above) lies within it.
        crate::format::region_control_of(&self.memory.memory)
            .expect("a region's control block inside its memory")
    }

    /// The write lock's mutex, made by the creator (an open validated
    /// READY, which the creator publishes after making it); `None` for a
    /// read-only attachment, which cannot lock.
    #[allow(unsafe_code)]
    fn mutex(&self) -> Option<mutex::Mutex<'_>> {
        if self.memory.is_read_only() {
            return None;
        }
        // SAFETY: the room lies in the store's memory, writable (checked)
        // and mapped while self is borrowed. It holds the mutex the creator
        // made before READY: an open validated READY, and a creation locks
        // nothing before `init_mutex` (`life/mod.rs`, `finish`), whose room
        // holds until then the zeros of a fresh segment or heap image, a
        // valid static initialiser anyway. A guard is leaked only with a
        // forgotten lease (`cell/lease.rs`), whose share of the memory is
        // forgotten with it, so the memory then stays mapped for good.
        Some(unsafe { mutex::Mutex::made(&self.header().mutex) })
    }

    /// Make the write lock's mutex: the creator's, once, before READY.
    #[allow(unsafe_code)]
    fn init_mutex(&self) -> std::io::Result<()> {
        assert!(
            !self.memory.is_read_only(),
            "a creation of a read-only store"
        );
        // SAFETY: the room lies in the store's memory, writable (checked)
        // and mapped while self is borrowed; only the creator calls this,
        // once, between its claim and READY (`life/mod.rs`, `finish`), on
        // memory it made itself (`IPC_EXCL`, or a fresh heap image), so no
        // process uses the room as a mutex yet: openers wait for READY, and
        // nothing else locks. A guard is leaked only with a forgotten lease,
        // which keeps the memory mapped for good (see `mutex()`).
        unsafe { mutex::Mutex::init(&self.header().mutex) }.map(|_| ())
    }

    /// What the store holds, as validated.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The validated layout.
    #[inline]
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The memory the store lives in.
    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    /// The segment's id (-1 for a heap image).
    pub fn id(&self) -> i32 {
        self.memory.id()
    }

    /// The first byte of slot `i` (below the validated slot count: checked),
    /// reached through the memory's mutable pointer. Reading or writing
    /// through it is the caller's to argue (`region/archive.rs`).
    #[inline]
    #[allow(unsafe_code)]
    pub fn slot_ptr(&self, i: usize) -> *mut u8 {
        let layout = &self.layout;
        assert!(i < layout.slot_count, "slot {i} of {}", layout.slot_count);
        // SAFETY: validation (or creation) checked data_offset + slot_count *
        // stride <= len, so slot i (< slot_count, checked) starts inside the
        // memory's allocation.
        unsafe {
            self.base
                .as_ptr()
                .add(layout.data_offset + i * layout.slot_stride)
        }
    }

    /// The commit counter.
    #[inline]
    pub fn seq(&self) -> &AtomicU64 {
        &self.header().seq
    }

    /// `IPC_STAT` of the segment.
    pub fn info(&self) -> Result<SegmentInfo> {
        self.memory.info()
    }

    /// `IPC_SET` of the permission bits (low 9 bits of `mode`): only the
    /// owner, the creator or root may.
    pub fn set_mode(&self, mode: u32) -> Result<()> {
        self.memory.set_mode(mode)
    }

    /// `IPC_SET` of the owner's uid and gid: only the owner, the creator or
    /// root may.
    pub fn set_owner(&self, uid: u32, gid: u32) -> Result<()> {
        self.memory.set_owner(uid, gid)
    }

    /// Whether the object was removed (`IPC_RMID` by anyone): it lives on for
    /// the processes attached, but no key reaches it any more. One
    /// `IPC_STAT`.
    pub fn is_removed(&self) -> Result<bool> {
        self.memory.is_removed()
    }
}

fn base_of(memory: &Memory) -> NonNull<u8> {
    NonNull::new(memory.as_ptr()).expect("a mapping is never at address 0")
}

// SAFETY: `base` points into `memory`, which the store owns and which is
// Send + Sync (an attachment or a heap image); every access through it is
// atomic, or a region's buffer borrowed under the write lock or a reader's
// pin (`region/archive.rs`), whichever thread makes it.
#[allow(unsafe_code)]
unsafe impl Send for Store {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl Sync for Store {}

// SAFETY: an attachment's address and length never change while it lives,
// and its mapping lasts as long (`Segment`'s own impl says why); a heap
// view's pointer is its image's allocation's and its length at most the
// image's, which the view's `Arc` keeps alive (`heap.rs`).
#[allow(unsafe_code)]
unsafe impl Mapping for Memory {
    fn as_ptr(&self) -> *mut u8 {
        Memory::as_ptr(self)
    }

    fn len(&self) -> usize {
        Memory::len(self)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if self.remove_on_drop != 0 && self.remove_on_drop == proc::own_pid() {
            let _ = self.memory.remove();
        }
    }
}

/// A store validated (or created) as a region, with the address of its
/// control block kept for the read path.
pub struct RegionStore {
    store: Store,
    /// `store.region_control()`.
    ctl: NonNull<RegionControl>,
    /// The control block for threads' bookkeeping, cut when this drops.
    link: Arc<ControlLink>,
}

impl RegionStore {
    /// The store of a region (panics for another kind, as
    /// [`Store::region_control`] does).
    pub fn new(store: Store) -> RegionStore {
        let ctl = NonNull::from(store.region_control());
        RegionStore {
            store,
            ctl,
            link: Arc::new(ControlLink(Mutex::new(Some(ctl)))),
        }
    }

    /// The control block.
    #[inline(always)]
    #[allow(unsafe_code)]
    pub fn control(&self) -> &RegionControl {
        // SAFETY: `ctl` is the control block of `store`'s memory (taken from
        // `region_control` in `new`), which `store` keeps mapped for as
        // long as self lives; it consists of atomics.
        unsafe { self.ctl.as_ref() }
    }

    /// The control block for bookkeeping that may outlive this store (a
    /// thread's), reachable until the store is dropped or the link cut.
    pub fn link(&self) -> Arc<ControlLink> {
        self.link.clone()
    }
}

impl std::ops::Deref for RegionStore {
    type Target = Store;

    #[inline(always)]
    fn deref(&self) -> &Store {
        &self.store
    }
}

impl Drop for RegionStore {
    fn drop(&mut self) {
        // Before `store` detaches its memory (fields drop after this).
        self.link.cut();
    }
}

// SAFETY: `ctl` points at atomics (RegionControl is Sync) in the memory
// `store` owns, which is Send + Sync; sharing or sending the address is
// harmless.
#[allow(unsafe_code)]
unsafe impl Send for RegionStore {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl Sync for RegionStore {}

/// A region's control block for bookkeeping that may outlive its store (a
/// thread's slots): reachable under a lock until the [`RegionStore`] is
/// dropped, or [`cut`](Self::cut) earlier.
pub struct ControlLink(Mutex<Option<NonNull<RegionControl>>>);

impl ControlLink {
    /// Run `f` on the control block under the link's lock, if the link is
    /// not cut; `None` if it is.
    #[allow(unsafe_code)]
    pub fn with<R>(&self, f: impl FnOnce(&RegionControl) -> R) -> Option<R> {
        let ctl = self.0.lock();
        let ptr = (*ctl)?;
        // SAFETY: the RegionStore whose control block this is cuts the link
        // under this lock before its memory goes, and the lock is held until
        // `f` returns, which the reference does not outlive.
        Some(f(unsafe { ptr.as_ref() }))
    }

    /// Whether the link still reaches the control block.
    pub fn is_live(&self) -> bool {
        self.0.lock().is_some()
    }

    /// Cut the link: `with` reaches nothing from now on.
    pub fn cut(&self) {
        *self.0.lock() = None;
    }
}

// SAFETY: the pointer is only dereferenced under the lock, while the
// mapping lives (see `with`); it points at atomics (RegionControl is Sync).
#[allow(unsafe_code)]
unsafe impl Send for ControlLink {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl Sync for ControlLink {}
