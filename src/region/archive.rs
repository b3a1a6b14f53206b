//! The glue between a region and rkyv: what `publish` and `read` need of a
//! type, the archive check, the facts of rkyv's format that a region's type
//! identity records, and what is inherently unsafe about reading rkyv in
//! place: the region's one room for `unsafe` code.
//!
//! rkyv serialises into a `&mut [u8]`, validates a `&[u8]`, and reads an
//! archive it validated before through a plain reference. Over a buffer in
//! shared memory, each of these holds only while the region's protocols
//! keep everyone else off the buffer's bytes, which nothing here can check:
//!
//! - [`check_pinned`] and [`RegionRef::in_place`] borrow the bytes of a
//!   buffer that the caller pinned (`pin_slot.rs`: no writer writes a pinned
//!   buffer) and re-checked to hold the version `current` names
//!   (`buffers.rs`), `len` bytes that fit the buffer (`archive_len`,
//!   `in_place.rs`), validated by `check_pinned` for `in_place`;
//! - [`serialize_into`] and [`copy_into`] borrow, mutably, the bytes of a
//!   buffer that the caller, holding the write lock, chose as neither
//!   current nor pinned by a live reader (`pins::free_buffer`), which nothing
//!   in this mapping reads until it is made current (reads of this handle
//!   pin first); a read-only handle of this process has a mapping of its
//!   own, and copies with atomic loads, as do readers of other processes;
//! - [`RegionRef::copied`] reads a private copy validated as `T::Archived`
//!   when it was cached (`copies.rs`).
//!
//! These functions are the region module's own (`pub(super)`), called only
//! where the bullet above says, and each says it again.
#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::sync::Arc;

use rkyv::api::high::{HighDeserializer, HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor;
use rkyv::ser::allocator::{Arena, ArenaHandle};
use rkyv::ser::writer::Buffer;
use rkyv::{Archive, Portable, Serialize};

use super::copies::ArchiveCopy;
use super::pins::PinHold;
use crate::error::{Error, Result};
use crate::store::{Store, WriteGuard};

/// The bound `publish` needs: rkyv can serialise `T` into a buffer.
pub trait Publishable:
    for<'a> Serialize<HighSerializer<Buffer<'a>, ArenaHandle<'a>, rancor::Error>>
{
}
impl<T> Publishable for T where
    T: for<'a> Serialize<HighSerializer<Buffer<'a>, ArenaHandle<'a>, rancor::Error>>
{
}

/// The bound `read` needs: rkyv can validate `T`'s archived form.
pub trait Readable:
    Archive<Archived: Portable + for<'a> CheckBytes<HighValidator<'a, rancor::Error>>>
{
}
impl<T> Readable for T where
    T: Archive<Archived: Portable + for<'a> CheckBytes<HighValidator<'a, rancor::Error>>>
{
}

/// Validate `bytes` as an archived `T` (rkyv's bytecheck).
pub(crate) fn check_archive<T: Readable>(bytes: &[u8]) -> Result<()> {
    rkyv::access::<T::Archived, rancor::Error>(bytes)
        .map(|_| ())
        .map_err(|e| Error::Corrupt {
            reason: format!("the archive does not validate: {e}"),
        })
}

/// rkyv's format facts that change the archived bytes: endianness, the size
/// of archived `usize` (pointer width) and whether primitives are aligned.
pub(crate) fn rkyv_format() -> u64 {
    let little = archives_little_endian();
    let usize_size = size_of::<rkyv::primitive::ArchivedUsize>() as u64;
    let u32_align = align_of::<rkyv::primitive::ArchivedU32>() as u64;
    0x7200_0000 | (u64::from(little) << 16) | (usize_size << 8) | u32_align
}

/// Whether rkyv stores a `u32` little-endian, read off its archived bytes.
fn archives_little_endian() -> bool {
    rkyv::to_bytes::<rancor::Error>(&0x0102_0304_u32)
        .is_ok_and(|bytes| bytes.as_slice() == [4, 3, 2, 1])
}

/// Validate the `len` bytes of buffer `buffer` as an archived `T`. The
/// caller pinned the buffer, and `len` fits it (see the module's comment).
pub(super) fn check_pinned<T: Readable>(store: &Store, buffer: usize, len: usize) -> Result<()> {
    // SAFETY: the buffer lies inside the mapping (slot_ptr checks its
    // index), `len` fits its stride (archive_len checked it), and the
    // caller's pin keeps every writer off these bytes while they are
    // borrowed here.
    let bytes = unsafe { std::slice::from_raw_parts(store.slot_ptr(buffer), len) };
    check_archive::<T>(bytes)
}

/// Serialise `value` into buffer `buffer`, `capacity` bytes (the buffer's
/// stride), with rkyv's scratch space `arena`; the archive's length. The
/// caller holds the write lock and chose the buffer as free (see the
/// module's comment).
pub(super) fn serialize_into<T: Publishable>(
    store: &Store,
    _guard: &WriteGuard<'_>,
    buffer: usize,
    capacity: usize,
    value: &T,
    arena: &mut Arena,
) -> Result<u64> {
    assert!(capacity <= store.layout().slot_stride, "a buffer's bytes");
    // SAFETY: the buffer lies inside the mapping (slot_ptr checks its
    // index) and spans `capacity` bytes (checked), writable (the guard's
    // lock refused a read-only attachment); it is neither current nor
    // pinned by a live reader, and we hold the write lock, so nothing in
    // this mapping reads or writes it until we make it current (see the
    // module's comment for other mappings).
    let dst = unsafe { std::slice::from_raw_parts_mut(store.slot_ptr(buffer), capacity) };
    rkyv::api::high::to_bytes_in_with_alloc::<_, _, rancor::Error>(
        value,
        Buffer::from(dst),
        arena.acquire(),
    )
    .map(|b| b.len() as u64)
    .map_err(|_| Error::CapacityExceeded {
        needed: None,
        capacity,
    })
}

/// Copy `archive` into buffer `buffer` and validate it there with `check`
/// (as an archived `T`: [`check_archive`]); its length. The caller holds
/// the write lock and chose the buffer as free (see the module's comment).
pub(super) fn copy_into(
    store: &Store,
    _guard: &WriteGuard<'_>,
    buffer: usize,
    archive: &[u8],
    check: impl FnOnce(&[u8]) -> Result<()>,
) -> Result<u64> {
    assert!(
        archive.len() <= store.layout().slot_stride,
        "a buffer's bytes"
    );
    // SAFETY: as in serialize_into: the buffer is ours alone until made
    // current, and holds at least its stride >= archive.len() (checked)
    // bytes.
    let dst = unsafe { std::slice::from_raw_parts_mut(store.slot_ptr(buffer), archive.len()) };
    dst.copy_from_slice(archive);
    check(dst)?;
    Ok(archive.len() as u64)
}

/// What keeps a [`RegionRef`]'s bytes in place and unchanged.
pub(super) enum Hold<'a> {
    Pin(#[allow(dead_code)] PinHold<'a>),
    Copy(#[allow(dead_code)] Arc<ArchiveCopy>),
}

/// A validated archived value, borrowed in place (or, from a read-only
/// attachment, from a private copy). Derefs to `T::Archived`.
///
/// # Not across an `.await`
///
/// A `RegionRef` is not `Send`: the pin it may hold lives in the reading
/// thread's slot of the region, and a writer waits for the pin to go before
/// it reuses the buffer, so a guard held across an `.await` of a task that
/// may move between threads would keep a writer waiting on a thread that
/// no longer runs the task. Take out what the task needs and drop the
/// guard first: an owned value with [`deserialize`](Self::deserialize), or
/// the archive's bytes with [`archive`](Self::archive).
///
/// ```
/// # use shmstore::{Key, SharedRegion};
/// let region = SharedRegion::<String>::create(Key::PRIVATE, 4096)?;
/// region.publish(&"retries = 3".to_string())?;
/// // The guard lives only inside this block; `config` is an owned String
/// // that may be held across any await.
/// let (version, config) = {
///     let r = region.read()?;
///     (r.version(), r.deserialize()?)
/// };
/// assert_eq!((version, config.as_str()), (1, "retries = 3"));
/// # region.remove()?;
/// # Ok::<(), shmstore::Error>(())
/// ```
///
/// Holding the guard where `Send` is needed does not compile:
///
/// ```compile_fail
/// fn spawnable<F: Send>(_: F) {}
/// fn hold(region: &shmstore::SharedRegion<String>) {
///     let r = region.read().unwrap();
///     spawnable(r);
/// }
/// ```
pub struct RegionRef<'a, T: Archive> {
    /// The archive's bytes, validated as `T::Archived` at this length,
    /// which `_hold` keeps in place and unchanged. The root is found from
    /// them on each deref (a subtraction) rather than kept: a guard of
    /// whole words, and fewer of them, is what lets a `read` that is
    /// inlined make it in registers.
    archive: *const [u8],
    /// Not `Send` nor `Sync` (see above).
    _value: PhantomData<*const T::Archived>,
    version: u64,
    _hold: Hold<'a>,
}

impl<'a, T: Readable> RegionRef<'a, T> {
    /// The archive of `len` bytes in buffer `buffer`, published as
    /// `version`, which `hold` pins. The handle validated these bytes with
    /// [`check_pinned`] at this length while the buffer held `version`, and
    /// the caller re-checked that it still does once `hold` pinned it (see
    /// the module's comment).
    #[inline(always)]
    pub(super) fn in_place(
        store: &'a Store,
        buffer: usize,
        len: usize,
        version: u64,
        hold: PinHold<'a>,
    ) -> RegionRef<'a, T> {
        // SAFETY: `len` is the length the handle kept when it validated the
        // archive, which fits the buffer (archive_len checked it); the buffer
        // lies inside the mapping the store keeps attached for 'a, and the
        // pin, which the guard holds, keeps every writer off it.
        let bytes = unsafe { std::slice::from_raw_parts(store.slot_ptr(buffer), len) };
        // These bytes were validated as T::Archived by this handle, at this
        // length, while the buffer held the version `current` names, which
        // is what `deref` relies on. No writer has changed them since: a writer that rewrote the
        // buffer would have left its version at 0 or a later one for good
        // (versions only grow, `buffers.rs`), which the caller's re-check
        // after this pin would have seen, and the pin keeps writers off it
        // from that re-check on.
        RegionRef {
            archive: bytes,
            _value: PhantomData,
            version,
            _hold: Hold::Pin(hold),
        }
    }
}

impl<T: Readable> RegionRef<'static, T> {
    /// The archive in `copy`, published as `version`. The copy was
    /// validated as `T::Archived` when it was cached (`copies.rs`).
    pub(super) fn copied(copy: Arc<ArchiveCopy>, version: u64) -> RegionRef<'static, T> {
        // The copy was validated as T::Archived when it was cached, and the
        // Arc held by the guard keeps it alive and unchanged (a cached copy
        // is never written again): what `deref` relies on.
        RegionRef {
            archive: copy.bytes(),
            _value: PhantomData,
            version,
            _hold: Hold::Copy(copy),
        }
    }
}

impl<T: Archive> RegionRef<'_, T> {
    /// The version this value was published as.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The archive's bytes, as they were published: what
    /// [`publish_bytes`](super::SharedRegion::publish_bytes) takes, and
    /// what `archive().to_vec()` keeps once the guard is gone.
    pub fn archive(&self) -> &[u8] {
        // SAFETY: `archive` points at the bytes `_hold` keeps alive and
        // unchanged (a pinned buffer, or a private copy), set by the
        // constructors above.
        unsafe { &*self.archive }
    }

    /// An owned `T`, deserialised from the archive (rkyv's `deserialize`):
    /// what a task keeps across an `.await` or sends to another thread.
    ///
    /// Fails with [`Error::Deserialize`] only when `T`'s own `Deserialize`
    /// refuses the validated archive (the standard types never do).
    pub fn deserialize(&self) -> Result<T>
    where
        T::Archived: rkyv::Deserialize<T, HighDeserializer<rancor::Error>>,
    {
        rkyv::deserialize::<T, rancor::Error>(&**self).map_err(|e| Error::Deserialize {
            reason: e.to_string(),
        })
    }
}

impl<T: Archive> std::ops::Deref for RegionRef<'_, T> {
    type Target = T::Archived;

    fn deref(&self) -> &T::Archived {
        // SAFETY: `archive` is bytes that `_hold` keeps alive and unchanged
        // (a pinned buffer, or a private copy) and that were validated as
        // T::Archived at this length (the constructors above say why);
        // access_unchecked finds the root where validation found it.
        unsafe { rkyv::access_unchecked::<T::Archived>(&*self.archive) }
    }
}
