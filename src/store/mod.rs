//! An untyped shmstore object: one segment, created or opened, validated,
//! with its write lock and its waiting. `SharedCell` and `SharedRegion` are
//! typed containers over it, as `lock_api`'s containers are over raw locks.
//! One concept per file: the builder every kind shares, with its open and
//! create modes (`options.rs`), the life of an object: creating, naming,
//! opening, replacing, removing and collecting (`life/`), the write lock
//! (`lock.rs`), waiting for a change (`wait.rs`), and the memory an object
//! lives in (`memory.rs`, `heap.rs`).
//!
//! **Validation.** An open validates the header once and keeps what
//! `format::validate` checked (kind, layout, type): nothing of it is read
//! from the segment again, so a peer scribbling on the header later cannot
//! move a slot outside the mapping.
#![allow(unsafe_code)]

use std::sync::atomic::AtomicU64;

use crate::error::Result;
use crate::format::{HEADER_SIZE, Header, Kind, Layout, REGION_CONTROL_SIZE, RegionControl};
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
mod wait;

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
    memory: Memory,
    /// `memory.as_ptr()`, kept for the hot paths.
    base: std::ptr::NonNull<u8>,
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

impl Store {
    fn unarmed(memory: Memory, kind: Kind, layout: Layout) -> Store {
        Store {
            base: base_of(&memory),
            memory,
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

    /// The header (validated when the store was opened or created).
    #[inline]
    pub fn header(&self) -> &Header {
        // SAFETY: the memory is at least HEADER_SIZE bytes (checked on open,
        // made so on create), page-aligned (shmat, HeapImage), lives as long
        // as self, and Header consists of atomics, valid for any bytes.
        unsafe { &*self.base.as_ptr().cast::<Header>() }
    }

    /// Open the memory as whatever shmstore object it validates as, with no
    /// look at its type and no wait for its creator: for inspecting.
    pub fn open_untyped(memory: Memory) -> Result<Store> {
        // SAFETY: the pointer and length describe `memory`, which
        // lives as long as `memory`, and so as long as the header is used.
        let h = unsafe { crate::format::header_at(memory.as_ptr(), memory.len()) }?;
        let valid = crate::format::validate(h, memory.len())?;
        Ok(Self::unarmed(memory, valid.kind, valid.layout))
    }

    /// Copy the value a cell holds now into `out` (at most the validated
    /// value size), as readers copy (`cell/ring.rs`); its version.
    pub fn read_cell(&self, out: &mut [u8]) -> u64 {
        assert!(out.len() <= self.layout.value_size, "a cell's value");
        // SAFETY: `out` is private memory of `out.len()` bytes, no more
        // than the validated value size.
        unsafe { self.read_cell_raw(out.as_mut_ptr(), out.len()) }
    }

    /// Copy the value a cell holds now to `out`, `len` bytes; its version.
    ///
    /// # Safety
    /// `out` is valid for writes of `len` bytes, private to this thread,
    /// and `len` is at most the validated value size; the store is a cell.
    #[inline]
    pub unsafe fn read_cell_raw(&self, out: *mut u8, len: usize) -> u64 {
        let header = self.header();
        let slots = self.layout.slot_count as u64;
        crate::cell::ring::read::<crate::sync::atomic::Std>(
            &header.seq,
            &header.writing,
            slots,
            |slot| {
                // SAFETY: the slot is one of the validated slots, 8-aligned and
                // readable for the value size rounded up to 8 bytes, which
                // covers `len`; `out` is the caller's, valid for `len` bytes.
                unsafe { crate::sync::copy::load_bytes(self.slot_ptr(slot), out, len) }
            },
        )
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
        // SAFETY: the memory's pointer and length, mapped (or allocated) for
        // as long as self lives, which outlives the reference returned.
        let ctl =
            unsafe { crate::format::region_control_at(self.base.as_ptr(), self.memory.len()) };
        // Validation (or creation) put the block inside the memory for a
        // region: data_offset (checked above) lies within it.
        ctl.expect("a region's control block inside its memory")
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

    /// The first byte of slot `i`. The caller keeps `i` below the validated
    /// slot count.
    #[inline]
    pub fn slot_ptr(&self, i: usize) -> *mut u8 {
        let layout = &self.layout;
        assert!(i < layout.slot_count, "slot {i} of {}", layout.slot_count);
        // SAFETY: validation checked data_offset + slot_count * stride <= len,
        // so slot i (< slot_count) starts inside the mapping.
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

fn base_of(memory: &Memory) -> std::ptr::NonNull<u8> {
    std::ptr::NonNull::new(memory.as_ptr()).expect("a mapping is never at address 0")
}

// SAFETY: `base` points into `memory`, which the store owns and which is
// Send + Sync (an attachment or a heap image); every access through it is
// atomic or under the process-shared lock, from any thread.
unsafe impl Send for Store {}
// SAFETY: as above.
unsafe impl Sync for Store {}

impl Drop for Store {
    fn drop(&mut self) {
        if self.remove_on_drop != 0 && self.remove_on_drop == proc::own_pid() {
            let _ = self.memory.remove();
        }
    }
}
