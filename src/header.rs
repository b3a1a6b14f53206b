//! The header at the start of every shmstore segment, and its validation.
//!
//! The layout is fixed, little-endian and documented in `FORMAT.md`; every
//! offset is asserted at compile time below. Every field is an atomic, so a
//! `&Header` over memory that other processes write is sound whatever they
//! write, and [`validate`] checks every field against the segment's real
//! length before any of it is trusted, returning the [`Layout`] it checked:
//! callers keep that copy and never read the layout fields again. A
//! `&Header` is only ever made from a raw pointer to mapped (or private,
//! aligned) memory, never from a `&[u8]`, whose bytes Rust would take as
//! frozen. `validate` makes no system call, so that it can be fuzzed and run
//! under Miri.

use std::cell::UnsafeCell;
use std::mem::{align_of, offset_of, size_of};
use std::sync::atomic::{AtomicI32, AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};

use crate::error::{Error, Result};
pub use crate::identity::{Abi, Kind, TypeDesc};

#[cfg(not(target_endian = "little"))]
compile_error!(
    "shmstore's on-segment format is little-endian; big-endian targets are not supported"
);

/// The first eight bytes of every shmstore segment: `"shmstore"`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"shmstore");
/// The version of the on-segment format this build reads and writes.
pub const FORMAT_VERSION: u32 = 3;
/// The size of the header; the data begins at or after it.
pub const HEADER_SIZE: usize = 512;
/// The most bytes of a type name kept in the header.
pub const TYPE_NAME_MAX: usize = 128;
/// The room reserved for the platform's `pthread_mutex_t`.
pub const MUTEX_ROOM: usize = 64;
/// The most data slots a segment may declare.
pub const MAX_SLOTS: u32 = 64;
/// The largest alignment a stored type may ask for.
pub const MAX_ALIGN: u32 = 4096;

/// The `state` word: zero-filled by the kernel, not yet initialised.
pub const STATE_FRESH: u32 = 0;
/// The `state` word: the creator is writing the header.
pub const STATE_INITIALIZING: u32 = 1;
/// The `state` word: the header and the first value are written.
pub const STATE_READY: u32 = 2;

/// Room for the process-shared `pthread_mutex_t`, on its own cache line.
#[repr(C, align(64))]
pub struct MutexRoom(pub(crate) UnsafeCell<[u8; MUTEX_ROOM]>);

// SAFETY: the bytes are only ever touched through pthread_mutex_* calls, which
// are made for concurrent use from any thread or process.
unsafe impl Sync for MutexRoom {}

/// The header of a shmstore segment, as it lies at offset 0.
///
/// Every field is atomic: other processes may write it at any time, and a
/// buggy one may write anything. Read it only after [`validate`].
#[repr(C, align(64))]
pub struct Header {
    /// [`MAGIC`].
    pub magic: AtomicU64,
    /// [`FORMAT_VERSION`].
    pub format_version: AtomicU32,
    /// [`Kind`] as a number.
    pub kind: AtomicU32,
    /// The creation protocol's word (see `raw.rs`):
    ///
    /// | value | meaning | written by |
    /// |---|---|---|
    /// | [`STATE_FRESH`] | zero-filled by the kernel | `shmget` |
    /// | [`STATE_INITIALIZING`] | the creator is writing the header | the creator, relaxed |
    /// | [`STATE_READY`] | header, mutex and first value written | the creator, release |
    ///
    /// Nothing but `magic` and `state` may be read before an acquire load
    /// of this word gives `STATE_READY`; it never changes afterwards.
    pub state: AtomicU32,
    /// [`HEADER_SIZE`].
    pub header_size: AtomicU32,
    /// The pid of the process that initialised the segment.
    pub creator_pid: AtomicI32,
    /// [`Abi::arch`].
    pub abi_arch: AtomicU32,
    /// [`Abi::pointer_width`].
    pub abi_pointer_width: AtomicU32,
    /// [`Abi::libc`].
    pub abi_libc: AtomicU32,
    /// [`Abi::mutex_size`].
    pub abi_mutex_size: AtomicU32,
    /// [`TypeDesc::size`].
    pub value_size: AtomicU32,
    /// [`TypeDesc::align`].
    pub value_align: AtomicU32,
    /// [`TypeDesc::schema_version`].
    pub schema_version: AtomicU32,
    /// [`TypeDesc::fingerprint`].
    pub type_hash: AtomicU64,
    /// [`TypeDesc::extra`].
    pub type_extra: AtomicU64,
    /// The number of bytes of `type_name` in use.
    pub type_name_len: AtomicU32,
    /// The number of data slots.
    pub slot_count: AtomicU32,
    /// The offset of slot 0 from the start of the segment.
    pub data_offset: AtomicU64,
    /// The distance between slots.
    pub slot_stride: AtomicU64,
    /// `data_offset + slot_count * slot_stride`: the bytes the segment needs.
    pub used_len: AtomicU64,
    /// The start time of the process that initialised the segment (clock
    /// ticks after boot, field 22 of `/proc/PID/stat`; 0 unknown): with
    /// `creator_pid`, it names the creator even if its pid is reused.
    pub creator_start: AtomicU64,
    _reserved0: [AtomicU64; 2],
    /// The type's name, UTF-8, truncated to [`TYPE_NAME_MAX`] bytes.
    pub type_name: [AtomicU8; TYPE_NAME_MAX],
    /// Cells: the commit counter, the number of values committed after the
    /// first; the value of version `v` is in slot `v % slot_count`. Written
    /// (release) under the mutex only, it is the cell's one commit point.
    /// Unused (0) in regions, whose commit point is `RegionControl::current`.
    pub seq: AtomicU64,
    /// The event count waiters sleep on (`sync/notify.rs`):
    ///
    /// | bits | meaning | written by |
    /// |---|---|---|
    /// | 0 (`WAITING`) | a read-write waiter may be asleep on this word | waiters set it (CAS) |
    /// | 1..32 | epoch | a writer that saw `WAITING` clears it and adds 2 (CAS), then wakes |
    ///
    /// A writer commits, then (after a seq-cst fence) looks at `WAITING`;
    /// a waiter sets `WAITING`, then (after a seq-cst fence) looks at the
    /// commit point, then sleeps on the word's value: one of them sees the
    /// other, and a change of epoch makes the kernel refuse the sleep.
    pub notify: AtomicU32,
    _reserved1: AtomicU32,
    /// Times a writer found the lock's owner dead and recovered it.
    pub recoveries: AtomicU64,
    /// Cells: the version a writer is filling a slot for (see `cell.rs`):
    ///
    /// | value | meaning |
    /// |---|---|
    /// | `seq` | no write under way (the last writer committed) |
    /// | `seq + 1` | a writer is filling slot `(seq + 1) % slot_count`, or died doing so |
    /// | anything else | scribbled by a faulty peer: readers still finish |
    ///
    /// Only grows, under the mutex; 0 in regions.
    pub writing: AtomicU64,
    _reserved2: [AtomicU64; 4],
    /// The process-shared robust mutex that serialises writers.
    pub mutex: MutexRoom,
    _reserved3: [AtomicU64; 16],
}

const _: () = {
    assert!(size_of::<Header>() == HEADER_SIZE);
    assert!(align_of::<Header>() == 64);
    assert!(offset_of!(Header, magic) == 0);
    assert!(offset_of!(Header, format_version) == 8);
    assert!(offset_of!(Header, kind) == 12);
    assert!(offset_of!(Header, state) == 16);
    assert!(offset_of!(Header, header_size) == 20);
    assert!(offset_of!(Header, creator_pid) == 24);
    assert!(offset_of!(Header, abi_arch) == 28);
    assert!(offset_of!(Header, abi_pointer_width) == 32);
    assert!(offset_of!(Header, abi_libc) == 36);
    assert!(offset_of!(Header, abi_mutex_size) == 40);
    assert!(offset_of!(Header, value_size) == 44);
    assert!(offset_of!(Header, value_align) == 48);
    assert!(offset_of!(Header, schema_version) == 52);
    assert!(offset_of!(Header, type_hash) == 56);
    assert!(offset_of!(Header, type_extra) == 64);
    assert!(offset_of!(Header, type_name_len) == 72);
    assert!(offset_of!(Header, slot_count) == 76);
    assert!(offset_of!(Header, data_offset) == 80);
    assert!(offset_of!(Header, slot_stride) == 88);
    assert!(offset_of!(Header, used_len) == 96);
    assert!(offset_of!(Header, creator_start) == 104);
    assert!(offset_of!(Header, type_name) == 128);
    assert!(offset_of!(Header, seq) == 256);
    assert!(offset_of!(Header, notify) == 264);
    assert!(offset_of!(Header, recoveries) == 272);
    assert!(offset_of!(Header, writing) == 280);
    assert!(offset_of!(Header, mutex) == 320);
    assert!(offset_of!(Header, _reserved3) == 384);
    assert!(size_of::<libc::pthread_mutex_t>() <= MUTEX_ROOM);
};

/// The number of reader pin slots of a region.
pub const PIN_SLOTS: usize = 128;

/// A buffer's description in a region's control block.
#[repr(C)]
pub struct BufferMeta {
    /// The length of the archive in the buffer.
    pub len: AtomicU64,
    /// The version the buffer holds.
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

/// The control block of a region, right after the header.
#[repr(C, align(64))]
pub struct RegionControl {
    /// The region's one commit point: `(version << 8) | buffer`, the archive
    /// readers use.
    ///
    /// | value | meaning |
    /// |---|---|
    /// | version 0 | nothing published yet |
    /// | version `v`, buffer `b` | buffer `b` holds version `v`, `buffers[b].len` bytes; no writer touches `b` while it is current or pinned |
    ///
    /// Stored (release, then a seq-cst fence) only under the mutex, after
    /// the archive and its `len`; versions only grow. `version()` and
    /// `wait_for_change` both read this word.
    pub current: AtomicU64,
    /// One more than the highest pin slot ever claimed: writers scan the
    /// pins below it only. Readers claim the lowest free slot, then raise it
    /// (read-modify-write, so that a writer's read-modify-write of it orders
    /// the two).
    pub pin_high: AtomicU32,
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
    assert!(offset_of!(RegionControl, pin_high) == 8);
    assert!(offset_of!(RegionControl, buffers) == 64);
    assert!(offset_of!(RegionControl, pins) == 64 + 16 * MAX_SLOTS as usize);
    assert!(size_of::<Pin>() == 64);
    assert!(REGION_CONTROL_SIZE == 64 + 16 * 64 + 64 * PIN_SLOTS);
};

/// Where the data lies, as a validated header declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Offset of slot 0.
    pub data_offset: usize,
    /// Distance between slots (a multiple of 8).
    pub slot_stride: usize,
    /// Number of slots.
    pub slot_count: usize,
    /// Bytes of the value in each slot (at most `slot_stride`).
    pub value_size: usize,
    /// `data_offset + slot_count * slot_stride`, within the image.
    pub used_len: usize,
}

impl Layout {
    /// The layout of a new cell for values of `size` bytes aligned to
    /// `align`, in `slot_count` slots.
    pub fn for_value(size: usize, align: usize, slot_count: usize) -> Result<Layout> {
        Self::with_prefix(HEADER_SIZE, size, align, slot_count)
    }

    /// The layout of a new region: a control block after the header, then
    /// `buffers` buffers of `capacity` bytes, each aligned to 64.
    pub fn for_region(capacity: usize, buffers: usize) -> Result<Layout> {
        Self::with_prefix(HEADER_SIZE + REGION_CONTROL_SIZE, capacity, 64, buffers)
    }

    fn with_prefix(prefix: usize, size: usize, align: usize, slot_count: usize) -> Result<Layout> {
        let align = align.max(8);
        let too_big = || Error::InvalidLayout {
            reason: format!("{slot_count} slots of {size} bytes do not fit in a segment"),
        };
        let data_offset = prefix.next_multiple_of(align.max(64));
        let slot_stride = size
            .max(1)
            .checked_next_multiple_of(align.max(8))
            .ok_or_else(too_big)?;
        let used_len = slot_stride
            .checked_mul(slot_count)
            .and_then(|n| n.checked_add(data_offset))
            .filter(|&n| n <= isize::MAX as usize)
            .ok_or_else(too_big)?;
        Ok(Layout {
            data_offset,
            slot_stride,
            slot_count,
            value_size: size,
            used_len,
        })
    }
}

impl Header {
    /// The state word, loaded with acquire ordering.
    pub fn state(&self) -> u32 {
        self.state.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The kind, if the number is a known one.
    pub fn kind(&self) -> Option<Kind> {
        Kind::from_raw(self.kind.load(Relaxed))
    }

    /// The ABI the creator wrote.
    pub fn abi(&self) -> Abi {
        Abi {
            arch: self.abi_arch.load(Relaxed),
            pointer_width: self.abi_pointer_width.load(Relaxed),
            libc: self.abi_libc.load(Relaxed),
            mutex_size: self.abi_mutex_size.load(Relaxed),
        }
    }

    /// The type stored, as the header describes it (name truncated to
    /// [`TYPE_NAME_MAX`] bytes, invalid UTF-8 replaced).
    pub fn stored_type(&self) -> TypeDesc {
        let len = (self.type_name_len.load(Relaxed) as usize).min(TYPE_NAME_MAX);
        let bytes: Vec<u8> = self.type_name[..len]
            .iter()
            .map(|b| b.load(Relaxed))
            .collect();
        TypeDesc {
            kind: self.kind().unwrap_or(Kind::Cell),
            name: String::from_utf8_lossy(&bytes).into_owned(),
            size: self.value_size.load(Relaxed),
            align: self.value_align.load(Relaxed),
            schema_version: self.schema_version.load(Relaxed),
            extra: self.type_extra.load(Relaxed),
        }
    }

    /// Say who is creating the segment: the creator's first writes, so that
    /// openers can tell a live creator from a dead one by more than its pid.
    pub fn write_creator(&self, pid: i32, start: u64) {
        self.creator_start.store(start, Relaxed);
        self.creator_pid.store(pid, Relaxed);
        // Release: an opener that sees the magic (acquire) sees the two.
        self.magic
            .store(MAGIC, std::sync::atomic::Ordering::Release);
    }

    /// Write every field of a fresh header except `state`, the creator, the
    /// sync words and the mutex. Called by the creator only, before it
    /// publishes [`STATE_READY`].
    pub fn write_fresh(&self, ty: &TypeDesc, layout: &Layout) {
        let abi = Abi::current();
        self.format_version.store(FORMAT_VERSION, Relaxed);
        self.kind.store(ty.kind as u32, Relaxed);
        self.header_size.store(HEADER_SIZE as u32, Relaxed);
        self.abi_arch.store(abi.arch, Relaxed);
        self.abi_pointer_width.store(abi.pointer_width, Relaxed);
        self.abi_libc.store(abi.libc, Relaxed);
        self.abi_mutex_size.store(abi.mutex_size, Relaxed);
        self.value_size.store(ty.size, Relaxed);
        self.value_align.store(ty.align, Relaxed);
        self.schema_version.store(ty.schema_version, Relaxed);
        self.type_hash.store(ty.fingerprint(), Relaxed);
        self.type_extra.store(ty.extra, Relaxed);
        let name = truncate_utf8(&ty.name, TYPE_NAME_MAX);
        for (slot, b) in self.type_name.iter().zip(name.as_bytes()) {
            slot.store(*b, Relaxed);
        }
        self.type_name_len.store(name.len() as u32, Relaxed);
        self.slot_count.store(layout.slot_count as u32, Relaxed);
        self.data_offset.store(layout.data_offset as u64, Relaxed);
        self.slot_stride.store(layout.slot_stride as u64, Relaxed);
        self.used_len.store(layout.used_len as u64, Relaxed);
    }
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn corrupt(reason: impl Into<String>) -> Error {
    Error::Corrupt {
        reason: reason.into(),
    }
}

/// The header at `ptr`, if `len` bytes there can hold one and `ptr` is
/// aligned for it.
///
/// # Safety
/// `ptr` must be valid for reads (and, through the atomics, writes if the
/// memory is writable) of `len` bytes for `'a`, and derived from a mutable
/// pointer or a mapping (not from a `&[u8]`): other processes and threads
/// may write the bytes at any time.
pub unsafe fn header_at<'a>(ptr: *const u8, len: usize) -> Result<&'a Header> {
    if len < HEADER_SIZE {
        return Err(Error::NotShmstore {
            reason: format!("{len} bytes, fewer than a shmstore header ({HEADER_SIZE})"),
        });
    }
    if !(ptr as usize).is_multiple_of(align_of::<Header>()) {
        return Err(corrupt("the segment is not aligned to 64 bytes"));
    }
    // SAFETY: at least size_of::<Header>() bytes at an address aligned for
    // Header (both checked), valid for 'a (the caller's promise). Header is
    // made of atomics and an UnsafeCell of bytes, valid for any bit pattern
    // and sound to share while others write them.
    Ok(unsafe { &*ptr.cast::<Header>() })
}

/// Check a header against the length of its segment and return the layout
/// it declares.
///
/// Every field is read once, checked, and the checked values are what is
/// returned: the magic, format version, state, kind, ABI, and the layout
/// (slot count, stride, offsets and alignment). When this returns `Ok`,
/// every slot of the [`Layout`] lies inside `segment_len` bytes from the
/// header, and a region's control block fits before its data. It never
/// panics and makes no system call. The type is checked separately with
/// [`Validated::check_type`], on the values read here.
///
/// Errors: [`Error::NotShmstore`] when the bytes are not a shmstore segment
/// at all, [`Error::IncompatibleFormat`] for another format version,
/// [`Error::AbiMismatch`] for a segment made on another platform, and
/// [`Error::Corrupt`] for anything inconsistent.
pub fn validate(header: &Header, segment_len: usize) -> Result<Validated> {
    let magic = header.magic.load(Relaxed);
    if magic != MAGIC {
        return Err(Error::NotShmstore {
            reason: format!("magic {magic:#018x} is not shmstore's"),
        });
    }
    let version = header.format_version.load(Relaxed);
    if version != FORMAT_VERSION {
        return Err(Error::IncompatibleFormat {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let state = header.state();
    if state != STATE_READY {
        return Err(corrupt(format!(
            "state {state} is not READY ({STATE_READY})"
        )));
    }
    let raw_kind = header.kind.load(Relaxed);
    let Some(kind) = Kind::from_raw(raw_kind) else {
        return Err(corrupt(format!("unknown kind {raw_kind}")));
    };
    let header_size = header.header_size.load(Relaxed);
    if header_size as usize != HEADER_SIZE {
        return Err(corrupt(format!(
            "header size {header_size}, expected {HEADER_SIZE}"
        )));
    }
    let abi = header.abi();
    if abi != Abi::current() {
        return Err(Error::AbiMismatch {
            stored: abi.to_string(),
            ours: Abi::current().to_string(),
        });
    }
    let value_align = header.value_align.load(Relaxed);
    let schema_version = header.schema_version.load(Relaxed);
    let type_hash = header.type_hash.load(Relaxed);
    let type_extra = header.type_extra.load(Relaxed);
    let name_len = header.type_name_len.load(Relaxed);
    if name_len as usize > TYPE_NAME_MAX {
        return Err(corrupt(format!(
            "type name length {name_len} > {TYPE_NAME_MAX}"
        )));
    }
    let align = value_align;
    if !align.is_power_of_two() || align > MAX_ALIGN {
        return Err(corrupt(format!("value alignment {align}")));
    }
    let count = header.slot_count.load(Relaxed);
    if !(2..=MAX_SLOTS).contains(&count) {
        return Err(corrupt(format!("{count} slots (2 to {MAX_SLOTS} allowed)")));
    }
    if kind == Kind::Cell && !count.is_power_of_two() {
        return Err(corrupt(format!(
            "{count} slots in a cell (a power of two is required)"
        )));
    }
    let data_offset = header.data_offset.load(Relaxed);
    let stride = header.slot_stride.load(Relaxed);
    let prefix = match kind {
        Kind::Region => HEADER_SIZE + REGION_CONTROL_SIZE,
        Kind::Cell => HEADER_SIZE,
    };
    let value_size = header.value_size.load(Relaxed);
    let size = u64::from(value_size);
    if data_offset < prefix as u64
        || !data_offset.is_multiple_of(u64::from(align.max(8)))
        || stride == 0
        || !stride.is_multiple_of(8)
        || (kind == Kind::Region && !stride.is_multiple_of(64))
        || size > stride
    {
        return Err(corrupt(format!(
            "inconsistent layout: data at {data_offset}, stride {stride}, value {size} bytes, align {align}"
        )));
    }
    let needed = stride
        .checked_mul(u64::from(count))
        .and_then(|n| n.checked_add(data_offset));
    let used = header.used_len.load(Relaxed);
    match needed {
        Some(n) if n == used && n <= segment_len as u64 => Ok(Validated {
            kind,
            value_size,
            value_align,
            schema_version,
            type_hash,
            type_extra,
            layout: Layout {
                data_offset: data_offset as usize,
                slot_stride: stride as usize,
                slot_count: count as usize,
                value_size: size as usize,
                used_len: n as usize,
            },
        }),
        _ => Err(corrupt(format!(
            "{count} slots of {stride} bytes from {data_offset} need {} bytes; header says {used}, segment has {}",
            needed.map_or("too many".to_owned(), |n| n.to_string()),
            segment_len
        ))),
    }
}

/// What [`validate`] read and checked: the values to keep and use, never
/// to read from the header again (another process may change the header
/// between two reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validated {
    /// What the segment holds.
    pub kind: Kind,
    /// The stored value's size: at most `layout.slot_stride`.
    pub value_size: u32,
    /// The stored value's alignment.
    pub value_align: u32,
    /// The stored type's schema version.
    pub schema_version: u32,
    /// The stored type's fingerprint.
    pub type_hash: u64,
    /// Further facts of the stored form.
    pub type_extra: u64,
    /// Where its data lies, every slot inside the segment.
    pub layout: Layout,
}

impl Validated {
    /// Fail with [`Error::TypeMismatch`] unless the type validated is
    /// `want`, compared on the values validated (so the kind and the size
    /// that the layout was checked against are the ones matched). The
    /// header is read again only for the error's description.
    pub fn check_type(&self, header: &Header, want: &TypeDesc) -> Result<()> {
        let matches = self.kind == want.kind
            && self.value_size == want.size
            && self.value_align == want.align
            && self.schema_version == want.schema_version
            && self.type_extra == want.extra
            && self.type_hash == want.fingerprint();
        if matches {
            Ok(())
        } else {
            Err(Error::TypeMismatch {
                stored: header.stored_type().to_string(),
                requested: want.to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C, align(64))]
    struct Image([u8; 4096]);

    /// A fresh, valid cell header in private memory. The header is reached
    /// through the box's raw pointer, never through a reference to its
    /// bytes.
    fn fresh() -> *mut Image {
        let img = Box::into_raw(Box::new(Image([0; 4096])));
        // SAFETY: the image is 4096 bytes aligned to 64, enough for a Header,
        // and reached only through this pointer until `free`.
        let h = unsafe { header_at(img.cast(), 4096) }.unwrap();
        let ty = TypeDesc {
            kind: Kind::Cell,
            name: "u64".into(),
            size: 8,
            align: 8,
            schema_version: 0,
            extra: 0,
        };
        let layout = Layout::for_value(8, 8, 2).unwrap();
        h.write_creator(1, 0);
        h.write_fresh(&ty, &layout);
        h.state.store(STATE_READY, Relaxed);
        img
    }

    fn check(img: *mut Image, len: usize) -> Result<Validated> {
        // SAFETY: `img` is a live image of 4096 >= len bytes from `fresh`.
        validate(unsafe { header_at(img.cast(), len) }?, len)
    }

    fn free(img: *mut Image) {
        // SAFETY: made by Box::into_raw in `fresh`, freed once.
        drop(unsafe { Box::from_raw(img) });
    }

    #[test]
    fn fresh_header_validates() {
        let img = fresh();
        let v = check(img, 4096).unwrap();
        assert_eq!(v.kind, Kind::Cell);
        assert_eq!(v.layout.data_offset, 512);
        assert_eq!(v.layout.slot_stride, 8);
        // SAFETY: as in `check`.
        let h = unsafe { header_at(img.cast(), 4096) }.unwrap();
        assert_eq!(h.stored_type().name, "u64");
        free(img);
    }

    #[test]
    fn each_broken_field_is_refused() {
        let cases: [(usize, u8); 8] = [
            (0, b'x'),  // magic
            (8, 9),     // format version
            (12, 7),    // kind
            (16, 1),    // state
            (28, 99),   // arch
            (76, 0),    // slot count
            (88, 3),    // stride not a multiple of 8
            (96, 0xff), // used_len
        ];
        for (offset, byte) in cases {
            let img = fresh();
            // SAFETY: offset < 4096 inside the live image; nothing else
            // refers to it.
            unsafe { img.cast::<u8>().add(offset).write(byte) };
            assert!(check(img, 4096).is_err(), "byte {offset} = {byte} accepted");
            free(img);
        }
        let img = fresh();
        assert!(check(img, HEADER_SIZE + 8).is_err(), "truncated slots");
        assert!(check(img, 100).is_err());
        free(img);
    }
}
