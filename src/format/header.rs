//! The header at the start of every shmstore segment.
//!
//! The layout is fixed, little-endian and documented in `FORMAT.md`; every
//! offset is asserted at compile time below, and each shared word carries
//! the table of its states. Every field is an atomic, so a `&Header` over
//! memory that other processes write is sound whatever they write; nothing
//! in it is trusted before `validate` (`validate.rs`) checked it. A
//! `&Header` is only ever made over a mapping's pointer and length
//! ([`header_of`](super::header_of), `mapping.rs`), never from a `&[u8]`,
//! whose bytes Rust would take as frozen.

use std::mem::{align_of, offset_of, size_of};
use std::sync::atomic::{AtomicI32, AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};

use super::identity::{Abi, Kind, TypeDesc};
use super::validate::Layout;

#[cfg(not(target_endian = "little"))]
compile_error!(
    "shmstore's on-segment format is little-endian; big-endian targets are not supported"
);

/// The first eight bytes of every shmstore segment: `"shmstore"`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"shmstore");
/// The version of the on-segment format (`FORMAT.md`) this build reads and
/// writes; a segment of another version is
/// [`Error::IncompatibleFormat`](crate::Error::IncompatibleFormat).
pub const FORMAT_VERSION: u32 = 6;
/// The size of the header; the data begins at or after it.
pub const HEADER_SIZE: usize = 512;
/// The most bytes of an object's name.
pub const NAME_MAX: usize = crate::key::NAME_MAX;
/// The most bytes of a type name kept in the header.
pub const TYPE_NAME_MAX: usize = 128;
/// The room reserved for the platform's `pthread_mutex_t`.
pub const MUTEX_ROOM: usize = crate::sys::mutex::ROOM;
/// The most bytes of a stored schema.
pub const SCHEMA_MAX: usize = crate::schema::SCHEMA_MAX;
/// The most data slots a segment may declare.
pub const MAX_SLOTS: u32 = 64;
/// The largest alignment a stored type may ask for.
pub const MAX_ALIGN: u32 = 4096;

/// The `state` word's values, defined with the protocol that writes them
/// (`sync/ready.rs`).
pub use crate::sync::ready::{STATE_FRESH, STATE_INITIALIZING, STATE_READY};

/// The `life` word's state: in use.
pub const LIFE_LIVE: u64 = 0;
/// The `life` word's state: `shmstore gc` is judging whether anyone uses it.
pub const LIFE_COLLECTING: u64 = 1;
/// The `life` word's state: being removed, or removed, through shmstore.
pub const LIFE_REMOVING: u64 = 2;

/// Room for the process-shared `pthread_mutex_t`, on its own cache line:
/// bytes only `sys::mutex` touches.
pub use crate::sys::mutex::MutexRoom;

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
    /// The creation protocol's word (see `store/life/` and `sync/ready.rs`):
    ///
    /// | value | meaning | written by |
    /// |---|---|---|
    /// | [`STATE_FRESH`] | zero-filled by the kernel | `shmget` |
    /// | [`STATE_INITIALIZING`] | the creator is writing the header | the creator, relaxed |
    /// | [`STATE_READY`] | header, mutex and first value written | the creator, release |
    ///
    /// Nothing but `magic`, `state` and what the magic publishes (the
    /// creator's pid and start time, the name: [`Header::write_creator`])
    /// may be read before an acquire load of this word gives `STATE_READY`;
    /// it never changes afterwards.
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
    /// The number of bytes of `name` in use: 0 for an object made at a plain
    /// key, else its name's (at most [`NAME_MAX`]). Written before `magic`.
    pub name_len: AtomicU32,
    /// The number of bytes of the type's schema (`schema/`), at most
    /// [`SCHEMA_MAX`]; 0 when it has none. The schema lies at
    /// [`schema_offset`] of the kind, before the data; written before
    /// READY, never changed after.
    pub schema_len: AtomicU32,
    /// FNV-1a of the schema's bytes ([`fnv1a`]); 0 when there is none.
    pub schema_hash: AtomicU64,
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
    /// | 1..32 | epoch | a writer that saw `WAITING`, a writer that recovered the lock, or a removal: clears `WAITING` and adds 2 (CAS), then wakes |
    ///
    /// Every write to it is a read-modify-write, so all of them lie in one
    /// modification order. A writer commits, then reads the word with a
    /// read-modify-write that changes nothing; a waiter sets `WAITING` by
    /// compare-and-swap (or finds it set), then looks at the commit point,
    /// then sleeps while the word holds what it saw, `WAITING` set: either
    /// the waiter sees the commit, or the writer sees `WAITING` and moves
    /// the epoch on, and the kernel refuses the sleep or the wake reaches
    /// it (`sync/notify.rs` argues it).
    pub notify: AtomicU32,
    _reserved1: AtomicU32,
    /// Times a writer found the lock's owner dead and recovered it.
    pub recoveries: AtomicU64,
    /// Cells: the version a writer is filling a slot for (see `cell/ring.rs`):
    ///
    /// | value | meaning |
    /// |---|---|
    /// | `seq` | no write under way (the last writer committed) |
    /// | `seq + 1` | a writer is filling slot `(seq + 1) % slot_count`, or died doing so |
    /// | anything else | scribbled by a faulty peer: readers still finish |
    ///
    /// Only grows, under the mutex; 0 in regions.
    pub writing: AtomicU64,
    /// Whether the object is being collected or removed, and by whom (the
    /// removal protocol, `store/life/removal.rs`):
    ///
    /// | bits | field | meaning |
    /// |---|---|---|
    /// | 0..2 | state | [`LIFE_LIVE`], [`LIFE_COLLECTING`], [`LIFE_REMOVING`]; 3 counts as removing |
    /// | 2..24 | pid | the process collecting or removing it |
    /// | 24..64 | start | the low 40 bits of that process's start time |
    ///
    /// Set by compare-and-swap only; a removal, once marked, is never
    /// taken back except by the process whose `IPC_RMID` failed (a remover,
    /// or a collector that turned its mark into a removal).
    pub life: AtomicU64,
    _reserved2: [AtomicU64; 3],
    /// The process-shared robust mutex that serialises writers.
    pub mutex: MutexRoom,
    /// The object's name (`Key::named`), UTF-8, `name_len` bytes; written by
    /// the creator before `magic`, never changed after.
    pub name: [AtomicU8; NAME_MAX],
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
    assert!(offset_of!(Header, life) == 288);
    assert!(offset_of!(Header, mutex) == 320);
    assert!(offset_of!(Header, name_len) == 112);
    assert!(offset_of!(Header, schema_len) == 116);
    assert!(offset_of!(Header, schema_hash) == 120);
    assert!(offset_of!(Header, name) == 384);
    assert!(crate::sys::mutex::SIZE <= MUTEX_ROOM);
    assert!(size_of::<MutexRoom>() == MUTEX_ROOM);
};

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

    /// The object's name as stored (`None` if its length is out of range),
    /// read once.
    pub fn stored_name(&self) -> Option<Vec<u8>> {
        let len = self.name_len.load(Relaxed) as usize;
        (len <= NAME_MAX).then(|| self.name[..len].iter().map(|b| b.load(Relaxed)).collect())
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
            schema: None,
        }
    }

    /// Say who is creating the segment, and under which name: the creator's
    /// first writes, so that openers can tell a live creator from a dead one
    /// by more than its pid, and an object of their name from another; then
    /// store the magic (release), which publishes them.
    pub fn write_creator(&self, pid: i32, start: u64, name: Option<&str>) {
        self.creator_start.store(start, Relaxed);
        self.creator_pid.store(pid, Relaxed);
        let name = name.unwrap_or("").as_bytes();
        let name = &name[..name.len().min(NAME_MAX)];
        for (slot, b) in self.name.iter().zip(name) {
            slot.store(*b, Relaxed);
        }
        self.name_len.store(name.len() as u32, Relaxed);
        // Release: an opener that sees the magic (acquire) sees the two.
        self.magic
            .store(MAGIC, std::sync::atomic::Ordering::Release);
    }

    /// Write every field of a fresh header except `state`, the creator, the
    /// sync words and the mutex (the schema's bytes, after the header, are
    /// written by [`write_schema`](super::write_schema)). Called by the creator only, before it
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
        let schema = ty.schema.as_deref().unwrap_or("");
        self.schema_len.store(schema.len() as u32, Relaxed);
        self.schema_hash.store(
            if schema.is_empty() {
                0
            } else {
                fnv1a(schema.as_bytes())
            },
            Relaxed,
        );
        self.slot_count.store(layout.slot_count as u32, Relaxed);
        self.data_offset.store(layout.data_offset as u64, Relaxed);
        self.slot_stride.store(layout.slot_stride as u64, Relaxed);
        self.used_len.store(layout.used_len as u64, Relaxed);
    }
}

/// Where a segment of `kind` keeps its schema: right after the header,
/// and a region's control block.
pub fn schema_offset(kind: Kind) -> usize {
    match kind {
        Kind::Cell => HEADER_SIZE,
        Kind::Region => HEADER_SIZE + super::region::REGION_CONTROL_SIZE,
    }
}

/// 64-bit FNV-1a over `bytes` (FORMAT.md, "Type fingerprint").
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
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
