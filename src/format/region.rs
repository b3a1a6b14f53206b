//! A region's control block, right after the header: the commit word
//! `current` (its value a [`Current`]), one description per buffer, and the
//! reader pin slots. Each shared word carries the table of its states; the
//! protocols on them are in `region/buffers.rs` (publishing and copying)
//! and `region/pin_slot.rs` (the pins).

use std::mem::{offset_of, size_of};
use std::sync::atomic::{AtomicU32, AtomicU64};

use super::header::MAX_SLOTS;

/// The number of reader pin slots of a region.
pub const PIN_SLOTS: usize = 128;

/// A buffer's description in a region's control block.
#[repr(C)]
pub struct BufferMeta {
    /// The length of the archive in the buffer.
    pub len: AtomicU64,
    /// The version the buffer holds, the buffer's own seqlock
    /// (`region/buffers.rs`):
    ///
    /// | value | meaning | written by |
    /// |---|---|---|
    /// | 0 | being filled (or never filled, or its writer died filling it) | the writer, release, before its release fence and the archive |
    /// | `v` | holds version `v`, `len` bytes | the writer, release, after the archive and `len`; or put back (release) by a writer that announced the buffer and then found it pinned |
    pub version: AtomicU64,
}

/// A reader pin slot, on a cache line of its own. The protocol on it is in
/// `region/pin_slot.rs`.
#[repr(C, align(64))]
pub struct Pin {
    /// Who holds the slot and what it pins, in one word so that a reclaimer
    /// can compare-and-swap exactly the claim it judged dead:
    ///
    /// | bits | field | meaning |
    /// |---|---|---|
    /// | 0..22 | pid | the holder; 0: the slot is free |
    /// | 22..29 | buf | the pinned buffer plus one; 0: none |
    /// | 29 | started | `start_time` holds this claim's start time |
    /// | 30..64 | tag | claims made of this slot so far (wrapping) |
    ///
    /// States: free (pid 0, buf 0, started 0) → claimed (pid, tag + 1, by
    /// CAS) → started (by the holder) ↔ pinned (buf set and cleared by the
    /// holder) → free (by the holder, or by a reclaimer's CAS once the holder
    /// is dead), the tag kept.
    pub word: AtomicU64,
    /// The holder's start time (clock ticks after boot, field 22 of
    /// `/proc/PID/stat`; 0 unknown), written before `started` is set.
    pub start_time: AtomicU64,
    _pad: [AtomicU64; 6],
}

/// The value of a region's commit word ([`RegionControl::current`]): the
/// version published last and the buffer that holds it, as
/// `(version << 8) | buffer` (FORMAT.md). Version 0: nothing published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Current(u64);

impl Current {
    /// The bits of the buffer, the low bits of the word.
    pub const BUFFER_BITS: u32 = 8;
    /// The mask of the buffer's bits.
    pub const BUFFER_MASK: u64 = (1 << Self::BUFFER_BITS) - 1;

    /// Version `version` in buffer `buffer`. The buffer must fit in
    /// [`BUFFER_BITS`](Self::BUFFER_BITS) and the version in the bits
    /// above them (debug builds check both).
    #[inline]
    pub const fn new(version: u64, buffer: usize) -> Current {
        debug_assert!(buffer as u64 <= Self::BUFFER_MASK);
        debug_assert!(version >> (u64::BITS - Self::BUFFER_BITS) == 0);
        Current((version << Self::BUFFER_BITS) | buffer as u64)
    }

    /// The word as loaded from the segment: any value is a `Current` (a
    /// buffer beyond the region's count is for readers to refuse).
    #[inline]
    pub const fn from_raw(raw: u64) -> Current {
        Current(raw)
    }

    /// The word as stored in the segment.
    #[inline]
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// The version (0: nothing published).
    #[inline]
    pub const fn version(self) -> u64 {
        self.0 >> Self::BUFFER_BITS
    }

    /// The buffer that holds the version.
    #[inline]
    pub const fn buffer(self) -> usize {
        (self.0 & Self::BUFFER_MASK) as usize
    }

    /// Whether any version is published.
    #[inline]
    pub const fn is_published(self) -> bool {
        self.version() != 0
    }
}

/// The control block of a region, right after the header.
#[repr(C, align(64))]
pub struct RegionControl {
    /// The region's one commit point: a [`Current`], `(version << 8) |
    /// buffer`, the archive readers use.
    ///
    /// | value | meaning |
    /// |---|---|
    /// | version 0 | nothing published yet |
    /// | version `v`, buffer `b` | buffer `b` holds version `v`, `buffers[b].len` bytes; no writer touches `b` while it is current or pinned |
    ///
    /// Stored (release) only under the mutex, after the archive, its `len`
    /// and its `version`; versions only grow (`region/buffers.rs`).
    /// `version()` and `wait_for_change` both read this word.
    pub current: AtomicU64,
    /// Reserved, zero: format 4's `pin_high`, which format 5 does not read
    /// (a writer scans every pin slot).
    _reserved: AtomicU32,
    _pad0: AtomicU32,
    _pad: [AtomicU64; 6],
    /// One description per buffer (the first `slot_count` are used).
    pub buffers: [BufferMeta; MAX_SLOTS as usize],
    /// Reader pins.
    pub pins: [Pin; PIN_SLOTS],
}

/// The size of a region's control block.
pub const REGION_CONTROL_SIZE: usize = size_of::<RegionControl>();

const _: () = {
    assert!(MAX_SLOTS as u64 <= Current::BUFFER_MASK + 1);
    assert!(offset_of!(RegionControl, _reserved) == 8);
    assert!(offset_of!(RegionControl, buffers) == 64);
    assert!(offset_of!(RegionControl, pins) == 64 + 16 * MAX_SLOTS as usize);
    assert!(size_of::<Pin>() == 64);
    assert!(REGION_CONTROL_SIZE == 64 + 16 * 64 + 64 * PIN_SLOTS);
};

#[cfg(test)]
mod tests {
    use super::Current;

    #[test]
    fn current_is_the_documented_word() {
        // FORMAT.md: `current` is `(version << 8) | buffer`.
        let c = Current::new(0x1234, 3);
        assert_eq!(c.raw(), (0x1234 << 8) | 3);
        assert_eq!((c.version(), c.buffer()), (0x1234, 3));
        assert_eq!(Current::from_raw(c.raw()), c);
        assert!(c.is_published());
        let none = Current::from_raw(0xff);
        assert_eq!((none.version(), none.buffer()), (0, 0xff));
        assert!(!none.is_published());
        let top = Current::from_raw(u64::MAX);
        assert_eq!((top.version(), top.buffer()), (u64::MAX >> 8, 0xff));
    }
}
