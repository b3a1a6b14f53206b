//! A safe wrapper of the System V shared-memory calls: `shmget`, `shmat`,
//! `shmdt` and `shmctl` (`IPC_STAT`, `IPC_SET`, `IPC_RMID`); see shmget(2),
//! shmat(2), shmctl(2).
//!
//! Every call into the kernel for segments is made in this module: the
//! calls themselves, returning `io::Result` (`raw.rs`), behind [`Segment`]
//! (an attachment that detaches on drop, this file), [`SegmentOptions`]
//! (how to find or create one, in the style of [`std::fs::OpenOptions`],
//! `options.rs`) and [`SegmentInfo`] (what `IPC_STAT` says, and `IPC_SET`
//! and `IPC_RMID` by id, `info.rs`). These public types return the crate's
//! `Result`: a failed call gets its meaning in one place (`failure.rs`).
#![allow(unsafe_code)]

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::{Error, Result, Target};
use crate::key::Key;

pub(super) mod failure;
mod info;
mod options;
pub(super) mod raw;

pub use info::SegmentInfo;
use info::{remove, set, stat};
pub use options::SegmentOptions;

/// A System V shared-memory segment attached to this process.
///
/// Dropping it detaches (`shmdt`); the segment itself lives on in the kernel
/// until it is [removed](Segment::remove) and every process has detached.
///
/// Other processes may write the memory at any time, so the bytes are reached
/// through atomics ([`read_at`](Self::read_at), [`write_at`](Self::write_at))
/// or through the raw pointer by layers that bring their own synchronisation.
#[derive(Debug)]
pub struct Segment {
    id: i32,
    key: Key,
    ptr: NonNull<u8>,
    len: usize,
    read_only: bool,
}

// SAFETY: the mapping belongs to the process, not a thread, and stays valid
// until the Segment is dropped; every access through &self is atomic.
unsafe impl Send for Segment {}
// SAFETY: as above: shared access from several threads only uses atomics.
unsafe impl Sync for Segment {}

impl Segment {
    /// Options to find, create and attach a segment.
    pub fn options() -> SegmentOptions {
        SegmentOptions::new()
    }

    /// Attach the segment with this id read-write, refusing foreign owners.
    pub fn attach_id(id: i32) -> Result<Segment> {
        SegmentOptions::new().attach_id(id)
    }

    /// `IPC_STAT` of the segment with this id, without attaching it.
    #[doc(alias = "shmctl")]
    pub fn info_by_id(id: i32) -> Result<SegmentInfo> {
        stat(id, Target::Id(id))
    }

    /// `IPC_RMID` of the segment with this id, without attaching it.
    #[doc(alias = "shmctl")]
    pub fn remove_by_id(id: i32) -> Result<()> {
        remove(id)
    }

    /// The kernel's id of the segment.
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The key the segment was found by, as the kernel had it at attach time
    /// ([`Key::PRIVATE`] for private segments).
    pub fn key(&self) -> Key {
        self.key
    }

    /// The segment's size in bytes, as the kernel has it (not the size asked
    /// for when opening).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the segment has no bytes (never true for a real segment).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the attachment is read-only (`SHM_RDONLY`).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The first byte of the mapping, valid for [`len`](Self::len) bytes while
    /// `self` lives. Writing through it faults if the attachment is read-only.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    fn check_range(&self, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(Error::OutOfBounds {
                offset,
                len,
                size: self.len,
            }),
        }
    }

    /// Copy `buf.len()` bytes at `offset` out of the segment. Bytes another
    /// process writes meanwhile may be seen half old, half new: the layers above
    /// bring the synchronisation that rules that out.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.check_range(offset, buf.len())?;
        for (i, out) in buf.iter_mut().enumerate() {
            // SAFETY: offset + i < len (checked), so the byte is inside the
            // mapping, which lives as long as self; u8 needs no alignment.
            let cell = unsafe { AtomicU8::from_ptr(self.ptr.as_ptr().add(offset + i)) };
            *out = cell.load(Ordering::Relaxed);
        }
        Ok(())
    }

    /// Copy `data` into the segment at `offset`. Fails with
    /// [`Error::ReadOnly`] on a read-only attachment.
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly { id: self.id });
        }
        self.check_range(offset, data.len())?;
        for (i, byte) in data.iter().enumerate() {
            // SAFETY: as in read_at; the mapping is writable (not read-only).
            let cell = unsafe { AtomicU8::from_ptr(self.ptr.as_ptr().add(offset + i)) };
            cell.store(*byte, Ordering::Relaxed);
        }
        Ok(())
    }

    /// `IPC_STAT`: size, mode, owner, creator, pids, attach count and times.
    #[doc(alias = "shmctl")]
    pub fn info(&self) -> Result<SegmentInfo> {
        stat(self.id, Target::Id(self.id))
    }

    /// `IPC_SET` of the permission bits (low 9 bits of `mode`). Only the
    /// owner, the creator or root may.
    #[doc(alias = "shmctl")]
    pub fn set_mode(&self, mode: u32) -> Result<()> {
        set(self.id, |perm| {
            perm.mode = (perm.mode & !0o777) | (mode & 0o777) as u16;
        })
    }

    /// `IPC_SET` of the owner's uid and gid. Only the owner, the creator or
    /// root may.
    #[doc(alias = "shmctl")]
    pub fn set_owner(&self, uid: u32, gid: u32) -> Result<()> {
        set(self.id, |perm| {
            perm.uid = uid;
            perm.gid = gid;
        })
    }

    /// `IPC_RMID`: the key is free at once; the memory stays usable by every
    /// process attached until its last detach, then it is gone.
    #[doc(alias = "shmctl")]
    pub fn remove(&self) -> Result<()> {
        remove(self.id)
    }

    /// Detach now (`shmdt`), reporting a failure that `drop` would ignore.
    #[doc(alias = "shmdt")]
    pub fn detach(self) -> Result<()> {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: the pointer came from shmat and is detached exactly once,
        // since `this` is never dropped; nothing borrowed from it outlives
        // `self`, which this call consumed.
        unsafe { raw::shmdt(this.ptr.as_ptr()) }
            .map_err(|e| failure::error(failure::Call::Detach { id: this.id }, e))
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: the pointer came from shmat and is detached exactly once;
        // nothing borrowed from self outlives it.
        let _ = unsafe { raw::shmdt(self.ptr.as_ptr()) };
    }
}
