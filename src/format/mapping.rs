//! The one place where a pointer and a length become a [`Header`] or a
//! [`RegionControl`]: over a [`Mapping`], memory that other threads and
//! processes may write at any time, which is why both are made of atomics
//! and are reached through a pointer, never through a `&[u8]` (whose bytes
//! Rust would take as frozen). [`header_of`] and [`region_control_of`] check
//! the length and the alignment; what a mapping promises makes the rest
//! sound.
//!
//! The mappings: an attached [`Segment`] (here), a private aligned copy of a
//! segment's first bytes ([`Snapshot`], here), and the store's memory and
//! the fuzz targets' heap image (`store/`).
#![allow(unsafe_code)]

use std::mem::align_of;
use std::sync::atomic::AtomicU8;
#[cfg(test)]
use std::sync::atomic::Ordering::Relaxed;

use super::header::{HEADER_SIZE, Header};
use super::region::{REGION_CONTROL_SIZE, RegionControl};
use crate::error::{Error, Result};
use crate::sys::shm::Segment;

/// Memory a header can be read over: `len()` bytes at `as_ptr()`.
///
/// # Safety
/// For as long as a value lives (a borrow of it), `as_ptr()` and `len()`
/// return the same pointer and length, and the `len()` bytes there are
/// mapped and readable, reached through a pointer that may also write
/// (derived from a mapping, an allocation's own pointer, or memory whose
/// every byte is in an `UnsafeCell`), never through a shared reference to
/// plain bytes: other threads and processes may write them at any time,
/// through atomics. Where the memory is writable, those bytes are writable
/// through the pointer too (where it is not, as in a read-only attachment,
/// only loads may be made through what this module returns).
pub unsafe trait Mapping {
    /// The first byte.
    fn as_ptr(&self) -> *mut u8;
    /// The bytes mapped from it.
    fn len(&self) -> usize;
}

// SAFETY: the attachment's address and length never change while the
// Segment lives, and the mapping lasts until it is dropped (`shmdt`); the
// pointer is shmat's, which may write where the attachment is read-write.
unsafe impl Mapping for Segment {
    fn as_ptr(&self) -> *mut u8 {
        Segment::as_ptr(self)
    }

    fn len(&self) -> usize {
        Segment::len(self)
    }
}

/// The header at the start of `m`, if `m` can hold one and is aligned for
/// it.
#[inline]
pub fn header_of(m: &impl Mapping) -> Result<&Header> {
    let (ptr, len) = (m.as_ptr(), m.len());
    if len < HEADER_SIZE {
        return Err(Error::NotShmstore {
            reason: format!("{len} bytes, fewer than a shmstore header ({HEADER_SIZE})"),
        });
    }
    if !(ptr as usize).is_multiple_of(align_of::<Header>()) {
        return Err(Error::Corrupt {
            reason: "the segment is not aligned to 64 bytes".into(),
        });
    }
    // SAFETY: at least size_of::<Header>() bytes (HEADER_SIZE, asserted in
    // header.rs) at an address aligned for Header (both checked), mapped
    // and reached through a pointer that may write while `m` is borrowed,
    // which the returned reference does not outlive (Mapping's promise).
    // Header is made of atomics and an UnsafeCell of bytes, valid for any
    // bit pattern and sound to share while others write them.
    Ok(unsafe { &*ptr.cast::<Header>() })
}

/// The region control block after the header of `m`, if `m` holds the
/// header and the block; the one place its offset is derived.
#[inline]
pub fn region_control_of(m: &impl Mapping) -> Option<&RegionControl> {
    let (ptr, len) = (m.as_ptr(), m.len());
    if len < HEADER_SIZE + REGION_CONTROL_SIZE
        || !(ptr as usize).is_multiple_of(align_of::<RegionControl>())
    {
        return None;
    }
    // SAFETY: the block lies within the `len` bytes (checked), at offset
    // HEADER_SIZE, a multiple of its alignment (asserted below), from
    // an aligned start (checked); it consists of atomics, valid for any
    // bytes and sound to share while others write them; mapped while `m` is
    // borrowed, which the reference does not outlive (Mapping's promise).
    Some(unsafe { &*ptr.add(HEADER_SIZE).cast::<RegionControl>() })
}

const _: () = assert!(HEADER_SIZE.is_multiple_of(align_of::<RegionControl>()));

/// The `len` bytes at `offset` of `m`, as atomics (which other processes
/// may write at any time), if they lie inside it.
#[inline]
pub fn bytes_of(m: &impl Mapping, offset: usize, len: usize) -> Option<&[AtomicU8]> {
    let end = offset.checked_add(len)?;
    if end > m.len() {
        return None;
    }
    // SAFETY: the `len` bytes from `offset` lie within the mapping's bytes
    // (checked), mapped and reached through a pointer that may write while
    // `m` is borrowed, which the slice does not outlive (Mapping's
    // promise); AtomicU8 has alignment 1 and is valid for any byte, and
    // sound to share while others write it.
    Some(unsafe { std::slice::from_raw_parts(m.as_ptr().add(offset).cast::<AtomicU8>(), len) })
}

/// One line of a snapshot: 64 bytes aligned to 64.
#[repr(C, align(64))]
struct Line([AtomicU8; 64]);

/// A private copy of a segment's first bytes, aligned to 64 like a
/// mapping, for decoding without trusting a byte (`inspect`) and for tests.
pub struct Snapshot {
    lines: Box<[Line]>,
    len: usize,
}

impl Snapshot {
    /// A copy of `bytes`.
    pub fn of(bytes: &[u8]) -> Snapshot {
        let lines = bytes
            .chunks(64)
            .map(|chunk| {
                Line(std::array::from_fn(|i| {
                    AtomicU8::new(chunk.get(i).copied().unwrap_or(0))
                }))
            })
            .collect();
        Snapshot {
            lines,
            len: bytes.len(),
        }
    }

    /// `len` zero bytes.
    #[cfg(test)]
    pub fn zeroed(len: usize) -> Snapshot {
        Snapshot::of(&vec![0; len])
    }

    /// Its bytes.
    #[cfg(test)]
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out: Vec<u8> = self
            .lines
            .iter()
            .flat_map(|l| l.0.iter().map(|b| b.load(Relaxed)))
            .collect();
        out.truncate(self.len);
        out
    }

    /// Set the byte at `offset` (below the length).
    #[cfg(test)]
    pub fn set(&self, offset: usize, byte: u8) {
        assert!(offset < self.len, "byte {offset} of {}", self.len);
        self.lines[offset / 64].0[offset % 64].store(byte, Relaxed);
    }
}

// SAFETY: the lines never move or change length while the snapshot lives
// (a boxed slice, never reallocated), and cover the `len` bytes (rounded up
// to 64); every byte is an atomic, so the pointer, derived from a shared
// reference to them, may read and write them while others do too.
unsafe impl Mapping for Snapshot {
    fn as_ptr(&self) -> *mut u8 {
        self.lines.as_ptr().cast::<u8>().cast_mut()
    }

    fn len(&self) -> usize {
        self.len
    }
}
