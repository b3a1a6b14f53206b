//! `SharedRegion<T>`: an rkyv-archived value (strings, vectors, maps) shared
//! between processes and read in place, without copying or deserialising.
//!
//! The segment holds a control block and several buffers (4 by default). The
//! current archive is named by one word, `(version << 8) | buffer`. A writer,
//! under the robust mutex, serialises the new value straight into a buffer
//! that is neither current nor pinned by a live reader, then makes it current
//! with one store. A writer killed at any point leaves the current archive
//! untouched.
//!
//! A reader pins the buffer it reads (hazard-pointer style): it claims a pin
//! slot (pid and start time), publishes the buffer in it, then re-checks that
//! the buffer is still current. All of these are sequentially consistent, as
//! are the writer's flip of `current` and its scan of the pins, so either the
//! writer sees the pin or the reader sees the flip and tries again. While a
//! pin lives, no writer touches that buffer: the `&Archived<T>` a guard hands
//! out stays valid for as long as the guard does. Each handle validates each
//! version once (rkyv's bytecheck); later reads of it are a few atomics.
//!
//! Why four buffers: one is current, one is kept by readers still finishing
//! with the previous version, one is being written; the fourth lets a slow
//! reader hold an older version without making `publish` wait.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering, fence};
use std::time::Duration;

use parking_lot::Mutex;
use rkyv::api::high::{HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor;
use rkyv::ser::allocator::{Arena, ArenaHandle};
use rkyv::ser::writer::Buffer;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Portable, Serialize};

use crate::error::{Error, Result};
use crate::header::RegionControl;
use crate::key::Key;
use crate::raw::{RawStore, WriteGuard};
use crate::segment::SegmentInfo;

mod options;
mod pins;
mod reader;
pub use options::RegionOptions;
pub use reader::RegionReader;

/// The number of buffers a region has unless told otherwise.
pub const DEFAULT_BUFFERS: usize = 4;
/// How long `publish` waits for a buffer no live reader pins, by default.
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

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

/// An rkyv-archived value shared between processes, read in place.
///
/// ```
/// use shmstore::{Key, SharedRegion};
///
/// #[derive(rkyv::Archive, rkyv::Serialize)]
/// struct Config {
///     name: String,
///     ports: Vec<u16>,
/// }
///
/// let region = SharedRegion::<Config>::create(Key::PRIVATE, 4096)?;
/// let v = region.publish(&Config { name: "edge".into(), ports: vec![80, 443] })?;
/// assert_eq!(v, 1);
/// let cfg = region.read()?; // zero-copy: derefs to ArchivedConfig in the segment
/// assert_eq!(cfg.name.as_str(), "edge");
/// assert_eq!(cfg.ports.len(), 2);
/// drop(cfg);
/// region.remove()?;
/// # Ok::<(), shmstore::Error>(())
/// ```
pub struct SharedRegion<T> {
    raw: RawStore,
    arena: Mutex<Arena>,
    /// The `current` word of the last archive this handle validated.
    validated: AtomicU64,
    publish_timeout: Duration,
    /// The pin slots this handle claimed, lent to its reading threads.
    pins: Arc<pins::PinCache>,
    /// `raw.region_control()`, kept for the read path.
    ctl: CtlPtr,
    _t: PhantomData<fn() -> T>,
}

/// The address of a handle's control block, valid while its `raw` lives.
struct CtlPtr(std::ptr::NonNull<RegionControl>);

// SAFETY: it points at atomics (RegionControl is Sync) in a mapping that the
// owning handle keeps attached; sharing or sending the address is harmless.
unsafe impl Send for CtlPtr {}
// SAFETY: as above.
unsafe impl Sync for CtlPtr {}

impl<T> Drop for SharedRegion<T> {
    fn drop(&mut self) {
        // No guard lives (they borrow the handle) and the segment is still
        // attached (raw is dropped after this).
        self.pins.release_all(self.raw.region_control());
    }
}

pub(crate) fn split(current: u64) -> (u64, usize) {
    (current >> 8, (current & 0xff) as usize)
}

impl<T: Archive> SharedRegion<T> {
    /// Options for opening or creating a region.
    pub fn options() -> RegionOptions<T> {
        RegionOptions::new()
    }

    /// Create the region at `key` with buffers of `capacity` bytes.
    pub fn create(key: Key, capacity: usize) -> Result<Self> {
        Self::options().create(key, capacity)
    }

    /// Open the existing region at `key`.
    pub fn open(key: Key) -> Result<Self> {
        Self::options().open(key)
    }

    /// Open the region at `key`, or create it with buffers of `capacity` bytes.
    pub fn open_or_create(key: Key, capacity: usize) -> Result<Self> {
        Self::options().open_or_create(key, capacity)
    }

    /// Attach the region at `key` read-only.
    pub fn open_read_only(key: Key) -> Result<RegionReader<T>> {
        Self::options().open_read_only(key)
    }

    #[inline]
    pub(crate) fn control(&self) -> &RegionControl {
        // SAFETY: `ctl` points at the control block of the mapping `raw`
        // keeps attached for as long as self lives.
        unsafe { self.ctl.0.as_ref() }
    }

    pub(crate) fn raw(&self) -> &RawStore {
        &self.raw
    }

    /// The bytes each buffer can hold.
    pub fn capacity(&self) -> usize {
        self.raw.layout().slot_stride
    }

    /// The version of the current value (0 before the first publish).
    pub fn version(&self) -> u64 {
        self.control().current.load(Ordering::Acquire) >> 8
    }

    /// Wait until the version differs from `since` or `timeout` passes;
    /// returns the version then (equal to `since` on timeout).
    pub fn wait_for_change(&self, since: u64, timeout: Option<Duration>) -> Result<u64> {
        Ok(self.raw.wait_for_change(since, timeout))
    }

    /// Times a writer found the lock's owner dead and recovered it.
    pub fn recoveries(&self) -> u64 {
        self.raw.header().recoveries.load(Ordering::Relaxed)
    }

    /// `IPC_STAT` of the segment.
    pub fn info(&self) -> Result<SegmentInfo> {
        self.raw.info()
    }

    /// `IPC_RMID`: the key is free at once; the region stays usable by every
    /// attached process until its last detach.
    pub fn remove(&self) -> Result<()> {
        self.raw.remove()
    }

    /// The segment's kernel id.
    pub fn id(&self) -> i32 {
        self.raw.id()
    }

    /// Serialise `value` into a free buffer and make it current; returns the
    /// new version. A value larger than [`capacity`](Self::capacity) is
    /// [`Error::CapacityExceeded`] and leaves the current value as it was.
    pub fn publish(&self, value: &T) -> Result<u64>
    where
        T: Publishable,
    {
        let guard = self.raw.lock()?;
        let (version, buffer) = self.free_buffer(&guard)?;
        let capacity = self.capacity();
        // SAFETY: the buffer lies inside the mapping (validated layout), is
        // neither current nor pinned by a live reader, and we hold the write
        // lock, so nothing else in any process writes or reads it as a value
        // until we make it current.
        let dst = unsafe { std::slice::from_raw_parts_mut(self.raw.slot_ptr(buffer), capacity) };
        let written = {
            let mut arena = self.arena.lock();
            rkyv::api::high::to_bytes_in_with_alloc::<_, _, rancor::Error>(
                value,
                Buffer::from(dst),
                arena.acquire(),
            )
            .map(|b| b.len())
        };
        let len = match written {
            Ok(len) => len,
            Err(_) => {
                return Err(Error::CapacityExceeded {
                    needed: self.measure(value),
                    capacity,
                });
            }
        };
        Ok(self.make_current(&guard, version, buffer, len))
    }

    /// The size of `value`'s archive, for the error of a failed publish.
    fn measure(&self, value: &T) -> Option<usize>
    where
        T: Publishable,
    {
        let mut size = self.capacity().max(4096);
        while size <= 1 << 32 {
            size *= 2;
            let mut scratch = vec![0u8; size];
            let mut arena = self.arena.lock();
            if let Ok(b) = rkyv::api::high::to_bytes_in_with_alloc::<_, _, rancor::Error>(
                value,
                Buffer::from(&mut scratch[..]),
                arena.acquire(),
            ) {
                return Some(b.len());
            }
        }
        None
    }

    /// Make an archive produced elsewhere current, after validating it as a
    /// `T`; returns the new version. Invalid bytes are [`Error::Corrupt`] and
    /// leave the current value as it was.
    pub fn publish_bytes(&self, archive: &[u8]) -> Result<u64>
    where
        T: Readable,
    {
        let capacity = self.capacity();
        if archive.len() > capacity {
            return Err(Error::CapacityExceeded {
                needed: Some(archive.len()),
                capacity,
            });
        }
        let guard = self.raw.lock()?;
        let (version, buffer) = self.free_buffer(&guard)?;
        // SAFETY: as in publish: the buffer is ours alone until made current,
        // and holds at least `capacity >= archive.len()` bytes.
        let dst =
            unsafe { std::slice::from_raw_parts_mut(self.raw.slot_ptr(buffer), archive.len()) };
        dst.copy_from_slice(archive);
        check_archive::<T>(dst)?;
        Ok(self.make_current(&guard, version, buffer, archive.len()))
    }

    fn make_current(&self, guard: &WriteGuard<'_>, version: u64, buffer: usize, len: usize) -> u64 {
        let ctl = self.control();
        let next = version + 1;
        ctl.buffers[buffer].len.store(len as u64, Ordering::Relaxed);
        ctl.buffers[buffer].version.store(next, Ordering::Relaxed);
        ctl.current
            .store((next << 8) | buffer as u64, Ordering::SeqCst);
        guard.commit(next);
        next
    }

    /// The current version and a buffer that is neither current nor pinned
    /// by a live reader, waiting up to the publish timeout for one.
    fn free_buffer(&self, guard: &WriteGuard<'_>) -> Result<(u64, usize)> {
        let ctl = self.control();
        let (version, current) = split(ctl.current.load(Ordering::SeqCst));
        if self.raw.seq().load(Ordering::Relaxed) != version {
            // A writer died between making its buffer current (the commit
            // point) and publishing the counter waiters watch: finish that.
            guard.commit(version);
        }
        let current = (version != 0).then_some(current);
        let buffer = pins::free_buffer(
            ctl,
            self.raw.layout().slot_count,
            current,
            self.publish_timeout,
        )?;
        // The buffer's bytes are written next, plainly. A read-only reader
        // may be copying them from when they were current; this fence (after
        // the loads that saw `current` move on) makes such a reader that
        // sees any new byte also see `current` moved, so it drops its copy.
        fence(Ordering::Release);
        Ok((version, buffer))
    }

    /// Pin the current archive and borrow it in place. The archive is
    /// validated the first time this handle sees its version; later reads of
    /// the same version cost a few atomic operations whatever its size.
    #[inline(always)]
    pub fn read(&self) -> Result<RegionRef<'_, T>>
    where
        T: Readable,
    {
        let pinned = match self.pin_validated() {
            Ok(pinned) => pinned,
            Err(pin) => self.read_slow(pin)?,
        };
        // SAFETY: this handle validated these bytes as T::Archived (on this
        // read or an earlier one of this same version and buffer, which no
        // writer has touched since: it was current then, and is pinned now).
        let value = unsafe { rkyv::access_unchecked::<T::Archived>(pinned.bytes) };
        Ok(RegionRef {
            value,
            version: pinned.current >> 8,
            _hold: Hold::Pin(pinned.pin),
        })
    }

    /// The common case of `read`, small enough to inline into the caller:
    /// this thread's slot is free, the version is one this handle
    /// validated, and no publish comes between the pin and its re-check.
    /// Otherwise the slot, if one was taken, for the long way.
    #[inline(always)]
    fn pin_validated(&self) -> std::result::Result<Pinned<'_>, Option<pins::PinHold<'_>>> {
        let ctl = self.control();
        let Some(pin) = pins::pin_fast(ctl, &self.pins) else {
            return Err(None);
        };
        if let Some(current) = pins::pin_current(ctl, pin.slot)
            && current >> 8 != 0
            && self.validated.load(Ordering::Acquire) == current
            && let Some(bytes) = archive_bytes_in(&self.raw, ctl, current)
        {
            return Ok(Pinned {
                pin,
                current,
                bytes,
            });
        }
        Err(Some(pin))
    }

    /// `read` when the fast path does not apply: claims or lends a slot
    /// (unless `pin` holds one already), pins whatever is current and
    /// validates it if this handle has not yet. Also reports the errors.
    #[cold]
    #[inline(never)]
    fn read_slow<'a>(&'a self, pin: Option<pins::PinHold<'a>>) -> Result<Pinned<'a>>
    where
        T: Readable,
    {
        let ctl = self.control();
        let pin = match pin {
            Some(pin) => pin,
            None => pins::pin_slow(ctl, &self.pins)?,
        };
        let current = loop {
            if let Some(current) = pins::pin_current(ctl, pin.slot) {
                break current;
            }
        };
        if current >> 8 == 0 {
            return Err(Error::NothingPublished);
        }
        let bytes = self.archive_bytes(current)?;
        if self.validated.load(Ordering::Acquire) != current {
            check_archive::<T>(bytes)?;
            self.validated.store(current, Ordering::Release);
        }
        Ok(Pinned {
            pin,
            current,
            bytes,
        })
    }

    /// The archive bytes of `current`, its length checked against the buffer.
    fn archive_bytes(&self, current: u64) -> Result<&[u8]> {
        archive_bytes(&self.raw, current)
    }
}

/// The archive bytes of `current`, its buffer index and length checked
/// against the layout; the reason as [`Error::Corrupt`] when they do not fit.
pub(crate) fn archive_bytes(raw: &RawStore, current: u64) -> Result<&[u8]> {
    let layout = raw.layout();
    let ctl = raw.region_control();
    archive_bytes_in(raw, ctl, current).ok_or_else(|| {
        let (_, buffer) = split(current);
        if buffer >= layout.slot_count {
            return corrupt(format_args!(
                "current buffer {buffer} of {}",
                layout.slot_count
            ));
        }
        let len = ctl.buffers[buffer].len.load(Ordering::Acquire);
        corrupt(format_args!(
            "archive of {len} bytes in a buffer of {}",
            layout.slot_stride
        ))
    })
}

/// The archive bytes of `current` in `raw`, whose control block is `ctl`;
/// `None` when its buffer index or length does not fit the layout.
#[inline]
fn archive_bytes_in<'a>(raw: &'a RawStore, ctl: &RegionControl, current: u64) -> Option<&'a [u8]> {
    let layout = raw.layout();
    let (_, buffer) = split(current);
    if buffer >= layout.slot_count {
        return None;
    }
    let len = ctl.buffers[buffer].len.load(Ordering::Acquire) as usize;
    if len > layout.slot_stride || len == 0 {
        return None;
    }
    // SAFETY: the buffer lies inside the mapping (validated layout, checked
    // index and length); it is current or pinned, so no writer changes it
    // while the returned borrow is used under a pin.
    Some(unsafe { std::slice::from_raw_parts(raw.slot_ptr(buffer), len) })
}

#[cold]
fn corrupt(reason: std::fmt::Arguments<'_>) -> Error {
    Error::Corrupt {
        reason: reason.to_string(),
    }
}

pub(crate) fn check_archive<T: Readable>(bytes: &[u8]) -> Result<()> {
    rkyv::access::<T::Archived, rancor::Error>(bytes)
        .map(|_| ())
        .map_err(|e| Error::Corrupt {
            reason: format!("the archive does not validate: {e}"),
        })
}

/// A pinned, validated archive: the pin, the `current` word it was read
/// under, and its bytes.
struct Pinned<'a> {
    pin: pins::PinHold<'a>,
    current: u64,
    bytes: &'a [u8],
}

pub(crate) enum Hold<'a> {
    Pin(#[allow(dead_code)] pins::PinHold<'a>),
    Copy(#[allow(dead_code)] Arc<AlignedVec>),
}

/// A validated archived value, borrowed in place (or, from a read-only
/// attachment, from a private copy). Derefs to `T::Archived`.
pub struct RegionRef<'a, T: Archive> {
    pub(crate) value: *const T::Archived,
    pub(crate) version: u64,
    pub(crate) _hold: Hold<'a>,
}

impl<T: Archive> RegionRef<'_, T> {
    /// The version this value was published as.
    pub fn version(&self) -> u64 {
        self.version
    }
}

impl<T: Archive> std::ops::Deref for RegionRef<'_, T> {
    type Target = T::Archived;

    fn deref(&self) -> &T::Archived {
        // SAFETY: `value` points into bytes that `_hold` keeps unchanged (a
        // pinned buffer, or a private copy) and that were validated as
        // T::Archived.
        unsafe { &*self.value }
    }
}

// Handles serve every thread of a process.
const _: () = {
    const fn send_sync<X: Send + Sync>() {}
    send_sync::<SharedRegion<String>>();
    send_sync::<RegionReader<String>>();
};
