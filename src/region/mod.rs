//! `SharedRegion<T>`: an rkyv-archived value (strings, vectors, maps) shared
//! between processes and read in place, without copying or deserialising.
//!
//! The segment holds a control block and several buffers (4 by default). The
//! current archive is named by one word, `current = (version << 8) |
//! buffer`: the region's one commit point, from which `version()`,
//! `wait_for_change` and every read derive. A writer, under the robust
//! mutex, serialises the new value straight into a buffer that is neither
//! current nor pinned by a live reader (`pin_slot.rs` argues why no pinned
//! buffer is ever chosen), stores its length, then stores `current`, then
//! wakes waiters (`sync/notify.rs`). A writer killed at any point before the
//! `current` store leaves the current archive and its length untouched; one
//! killed after it has published, and the next writer that recovers the lock
//! wakes the waiters it may not have woken.
//!
//! A reader pins the buffer `current` names, re-checks `current`, and then
//! uses the archive in place: no writer touches a pinned buffer, so the
//! `&Archived<T>` a guard hands out stays valid for as long as the guard
//! does. A handle validates each archive once (rkyv's bytecheck), the first
//! time one of its threads meets that `current` word, and keeps what it
//! validated (the `current` word and the archive's length, hence its root):
//! later reads of that version use the kept length, never the control
//! block's again, so a peer scribbling on the control block cannot move a
//! reader onto unvalidated bytes. What a writer that scribbles on a
//! published buffer's bytes can do is in README.md ("Guarantees").
//!
//! Writers fill a chosen buffer through a `&mut [u8]` (rkyv's serialiser).
//! That is sound: within this mapping nothing else reads or writes the
//! buffer meanwhile (readers of this process pin first, and a pinned buffer
//! is never chosen); a read-only reader of this process has a mapping of its
//! own, and copies with atomic loads, as do readers of other processes.
//!
//! Why four buffers: one is current, one is kept by readers still finishing
//! with the previous version, one is being written; the fourth lets a slow
//! reader hold an older version without making `publish` wait.
#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use parking_lot::Mutex;
use rkyv::Archive;
use rkyv::rancor;
use rkyv::ser::allocator::Arena;
use rkyv::ser::writer::Buffer;

use crate::error::{Error, Result};
use crate::format::RegionControl;
use crate::key::Key;
use crate::store::{Store, WriteGuard};
use crate::sync::atomic::Std;
use crate::sync::backoff::Backoff;
use crate::sys::shm::SegmentInfo;

mod archive;
#[cfg(loom)]
pub mod buffers;
#[cfg(not(loom))]
pub(crate) mod buffers;
mod options;
#[cfg(loom)]
pub mod pin_slot;
#[cfg(not(loom))]
pub(crate) mod pin_slot;
mod pins;
mod reader;
pub(crate) use archive::check_archive;
pub use archive::{Publishable, Readable};
pub use options::{RegionOptions, RegionSettings};
pub use reader::RegionReader;

/// The number of buffers a region has unless told otherwise.
pub const DEFAULT_BUFFERS: usize = 4;
/// How long `publish` waits for a buffer no live reader pins, by default.
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

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
    store: Store,
    arena: Mutex<Arena>,
    /// The archive this handle validated last: its `current` word and its
    /// length, the only length reads of that version use.
    validated: Mutex<Option<(u64, usize)>>,
    publish_timeout: Duration,
    /// How long a buffer that stopped being current is left alone before a
    /// publish reuses it (for copying readers slower than the writer).
    reuse_grace: Duration,
    /// When each buffer stopped being current, as this handle saw it.
    retired: Mutex<Retired>,
    /// The pin slots this handle claimed, lent to its reading threads.
    pins: Arc<pins::HandleSlots>,
    /// `store.region_control()`, kept for the read path.
    ctl: ControlPtr,
    _t: PhantomData<fn() -> T>,
}

/// When the buffers stopped being current, as one handle saw it: exactly
/// for the commits it made; for a commit another process made, the moment
/// this handle first saw it.
struct Retired {
    /// The `current` word this handle last saw or made.
    seen: u64,
    /// When each buffer stopped being current.
    at: Vec<Option<std::time::Instant>>,
}

/// The address of a handle's control block, valid while its `store` lives.
struct ControlPtr(std::ptr::NonNull<RegionControl>);

// SAFETY: it points at atomics (RegionControl is Sync) in a mapping that the
// owning handle keeps attached; sharing or sending the address is harmless.
unsafe impl Send for ControlPtr {}
// SAFETY: as above.
unsafe impl Sync for ControlPtr {}

impl<T> Drop for SharedRegion<T> {
    fn drop(&mut self) {
        // No guard lives (they borrow the handle) and the segment is still
        // attached (raw is dropped after this).
        self.pins.release_all(self.store.region_control());
    }
}

pub(crate) fn split(current: u64) -> (u64, usize) {
    (current >> 8, (current & 0xff) as usize)
}

impl<T: Archive> SharedRegion<T> {
    pub(crate) fn wrap(store: Store, settings: &RegionSettings) -> Self {
        let slots = store.layout().slot_count;
        let ctl = ControlPtr(std::ptr::NonNull::from(store.region_control()));
        SharedRegion {
            pins: pins::HandleSlots::new(store.region_control()),
            store,
            arena: Mutex::new(Arena::new()),
            validated: Mutex::new(None),
            publish_timeout: settings.publish_timeout,
            reuse_grace: settings.reuse_grace,
            retired: Mutex::new(Retired {
                seen: 0,
                at: vec![None; slots],
            }),
            ctl,
            _t: PhantomData,
        }
    }

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

    #[cfg(feature = "fuzzing")]
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// The bytes each buffer can hold.
    pub fn capacity(&self) -> usize {
        self.store.layout().slot_stride
    }

    /// The version of the current value (0 before the first publish).
    pub fn version(&self) -> u64 {
        self.control().current.load(Ordering::Acquire) >> 8
    }

    /// Wait until the version differs from `since` or `timeout` passes;
    /// returns the version then (equal to `since` on timeout). `None`, or a
    /// timeout too long to represent, waits for as long as it takes. Once
    /// the region is removed, returns [`Error::Removed`] instead.
    pub fn wait_for_change(&self, since: u64, timeout: Option<Duration>) -> Result<u64> {
        let current = &self.control().current;
        self.store
            .wait_for_change(since, timeout, || current.load(Ordering::SeqCst) >> 8)
    }

    /// Times a writer found the lock's owner dead and recovered it.
    pub fn recoveries(&self) -> u64 {
        self.store.header().recoveries.load(Ordering::Relaxed)
    }

    /// `IPC_STAT` of the segment.
    pub fn info(&self) -> Result<SegmentInfo> {
        self.store.info()
    }

    /// `IPC_SET` of the permission bits (low 9 bits of `mode`, such as
    /// `0o660` to share with the segment's group); only the owner, the
    /// creator or root may.
    pub fn set_mode(&self, mode: u32) -> Result<()> {
        self.store.set_mode(mode)
    }

    /// `IPC_SET` of the owner's uid and gid; only the owner, the creator or
    /// root may.
    pub fn set_owner(&self, uid: u32, gid: u32) -> Result<()> {
        self.store.set_owner(uid, gid)
    }

    /// `IPC_RMID`: the key is free at once; the region stays usable by every
    /// attached process until its last detach, and every process waiting in
    /// `wait_for_change` returns [`Error::Removed`].
    pub fn remove(&self) -> Result<()> {
        self.store.remove()
    }

    /// Whether this region was removed (by any process, or by `ipcrm`): it
    /// still reads its last value, but no key reaches it any more. One
    /// `IPC_STAT`.
    pub fn is_removed(&self) -> Result<bool> {
        self.store.is_removed()
    }

    /// The segment's kernel id.
    pub fn id(&self) -> i32 {
        self.store.id()
    }

    /// Serialise `value` into a free buffer and make it current; returns the
    /// new version. A value larger than [`capacity`](Self::capacity) is
    /// [`Error::CapacityExceeded`] and leaves the current value as it was.
    pub fn publish(&self, value: &T) -> Result<u64>
    where
        T: Publishable,
    {
        let guard = self.store.lock()?;
        crate::crash::point("region.after_lock");
        let capacity = self.capacity();
        let published = buffers::publish::<Std, Error>(
            &self.control().current,
            |b| self.meta(b),
            |current| self.free_buffer(&guard, current),
            |buffer, _| {
                // SAFETY: the buffer lies inside the mapping (validated
                // layout); it is neither current nor pinned by a live
                // reader, and we hold the write lock, so nothing in this
                // mapping reads or writes it until we make it current (see
                // the module's comment for other mappings).
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(self.store.slot_ptr(buffer), capacity)
                };
                let mut arena = self.arena.lock();
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
            },
        );
        match published {
            Ok(next) => Ok(self.committed(&guard, next)),
            Err(Error::CapacityExceeded { .. }) => {
                // Measured without the lock: others may publish meanwhile.
                drop(guard);
                Err(Error::CapacityExceeded {
                    needed: self.measure(value),
                    capacity,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// The size of `value`'s archive, for the error of a failed publish:
    /// serialised into scratch buffers of doubling size, up to 16 times the
    /// capacity (at least 1 MiB, at most 1 GiB; `None` beyond).
    fn measure(&self, value: &T) -> Option<usize>
    where
        T: Publishable,
    {
        const MOST: usize = 1 << 30;
        let limit = self.capacity().saturating_mul(64).clamp(1 << 20, MOST);
        let mut arena = self.arena.lock();
        let mut size = self.capacity().clamp(2048, MOST);
        while size < limit {
            size = size.saturating_mul(2).min(limit);
            let mut scratch = vec![0u8; size];
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
        let guard = self.store.lock()?;
        let next = buffers::publish::<Std, Error>(
            &self.control().current,
            |b| self.meta(b),
            |current| self.free_buffer(&guard, current),
            |buffer, _| {
                // SAFETY: as in publish: the buffer is ours alone until made
                // current, and holds at least `capacity >= archive.len()`
                // bytes.
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(self.store.slot_ptr(buffer), archive.len())
                };
                dst.copy_from_slice(archive);
                check_archive::<T>(dst)?;
                Ok(archive.len() as u64)
            },
        )?;
        Ok(self.committed(&guard, next))
    }

    /// Whether the buffer `current` names holds the version it names: the
    /// check a reader makes once it pinned it (`buffers.rs`).
    #[inline(always)]
    fn holds(&self, current: u64) -> bool {
        let (version, buffer) = split(current);
        buffer < self.store.layout().slot_count
            && buffers::holds::<Std>(&self.meta(buffer), version)
    }

    /// A buffer's description.
    fn meta(&self, buffer: usize) -> buffers::Meta<'_, std::sync::atomic::AtomicU64> {
        let m = &self.control().buffers[buffer];
        buffers::Meta {
            len: &m.len,
            version: &m.version,
        }
    }

    /// After the commit of version `next`: wake the waiters, and note when
    /// the buffer that was current stopped being so (the reuse grace).
    fn committed(&self, guard: &WriteGuard<'_>, next: u64) -> u64 {
        guard.committed();
        if !self.reuse_grace.is_zero() {
            let mut retired = self.retired.lock();
            if next > 1 {
                let before = split(retired.seen).1;
                retired.at[before] = Some(std::time::Instant::now());
            }
            retired.seen = self.control().current.load(Ordering::Relaxed);
        }
        next
    }

    /// A buffer that is neither `current` nor pinned by a live reader nor
    /// within the reuse grace, waiting up to the publish timeout for one.
    fn free_buffer(&self, _guard: &WriteGuard<'_>, current: Option<usize>) -> Result<usize> {
        let ctl = self.control();
        let now = ctl.current.load(Ordering::Relaxed);
        let count = self.store.layout().slot_count;
        let grace = self.reuse_grace;
        let mut retired = self.retired.lock();
        if !grace.is_zero() && retired.seen != now {
            // Another process committed since this handle last did: when
            // its buffers stopped being current is not known here; count
            // them from now.
            let at = std::time::Instant::now();
            for (b, t) in retired.at.iter_mut().enumerate() {
                if Some(b) != current {
                    *t = Some(at);
                }
            }
            retired.seen = now;
        }
        // (Held while waiting for a buffer: only publishes, which hold the
        // write lock, take it.)
        let grace_left = |b: usize| {
            if grace.is_zero() {
                return None;
            }
            retired.at[b]
                .and_then(|t| grace.checked_sub(t.elapsed()))
                .filter(|d| !d.is_zero())
        };
        pins::free_buffer(ctl, count, current, self.publish_timeout, grace_left)
    }

    /// Pin the current archive and borrow it in place. The archive is
    /// validated the first time this handle sees its version; later reads of
    /// the same version cost a few atomic operations whatever its size.
    #[inline(always)]
    pub fn read(&self) -> Result<RegionRef<'_, T>>
    where
        T: Readable,
    {
        // One construction of the guard, from scalars, for both paths: the
        // fast path's stay in registers.
        let p = match self.pin_fast() {
            Some(p) => p,
            None => self.read_slow()?,
        };
        Ok(self.guard(p.word, p.claim, p.lent, p.current, p.len))
    }

    /// The common case of `read`: this thread's own slot of this handle is
    /// free, and the archive `current` names is the one this thread read
    /// last through it. `None` (nothing left pinned) otherwise.
    #[inline(always)]
    fn pin_fast(&self) -> Option<PinnedArchive<'_>> {
        let ctl = self.control();
        let fast = pins::last_read(&self.pins)?;
        let word = &ctl.pins[fast.lease.slot].word;
        match pin_slot::pin::<Std>(&ctl.current, word, fast.lease.claim) {
            pin_slot::Pin::Pinned(c) if c == fast.current && self.holds(c) => Some(PinnedArchive {
                word,
                claim: fast.lease.claim,
                lent: true,
                current: c,
                len: fast.len,
            }),
            pin_slot::Pin::Pinned(_) => {
                pin_slot::unpin::<Std>(word, fast.lease.claim);
                None
            }
            // A commit came in between, the slot is pinned by an outer
            // guard of this thread, or it was revoked: the slow path sorts
            // it out.
            pin_slot::Pin::Moved | pin_slot::Pin::Lost => None,
        }
    }

    /// `read` when the fast path does not apply: pins through the thread's
    /// own slot if it is free (else one claimed for this read), claims a
    /// new slot if the thread's was revoked, and validates the archive if
    /// this handle has not yet. Also reports the errors.
    #[cold]
    #[inline(never)]
    fn read_slow(&self) -> Result<PinnedArchive<'_>>
    where
        T: Readable,
    {
        let ctl = self.control();
        let mut backoff = Backoff::new();
        let (lease, lent, hold, current) = loop {
            let slot = pins::acquire(ctl, &self.pins)?;
            let pinned = loop {
                match slot.pin(&ctl.current) {
                    pin_slot::Pin::Pinned(c) => break Some(c),
                    pin_slot::Pin::Moved => backoff.spin(),
                    pin_slot::Pin::Lost => break None,
                }
            };
            let Some(current) = pinned else {
                // Revoked while idle: the thread's slot is forgotten (a slot
                // claimed for this read is simply gone) and another claimed.
                if slot.lent {
                    pins::lost(&self.pins, slot.lease);
                }
                continue;
            };
            let (lease, lent) = (slot.lease, slot.lent);
            // From here the pin is held, and an error unpins it.
            let hold = slot.pinned();
            if current >> 8 == 0 {
                return Err(Error::NothingPublished);
            }
            if self.holds(current) {
                break (lease, lent, hold, current);
            }
            drop(hold);
            if ctl.current.load(Ordering::Relaxed) == current {
                let (version, buffer) = split(current);
                return Err(corrupt(format_args!(
                    "current names version {version} in buffer {buffer}, which does not hold it"
                )));
            }
            // A writer chose the buffer after `current` moved off it: read
            // what `current` names now.
            backoff.spin();
        };
        let len = self.validated_len(current)?;
        if lent {
            pins::remember(pins::LastRead {
                id: self.pins.id,
                lease,
                current,
                len,
            });
        }
        // The guard takes the hold over.
        let hold = std::mem::ManuallyDrop::new(hold);
        Ok(PinnedArchive {
            word: hold.word,
            claim: hold.claim,
            lent: hold.lent,
            current,
            len,
        })
    }

    /// The length of the archive `current` names, which this handle has
    /// validated: taken from what it kept if it validated this `current`
    /// already, else read once, checked against the layout, and the archive
    /// validated. The caller pins the buffer.
    fn validated_len(&self, current: u64) -> Result<usize>
    where
        T: Readable,
    {
        let mut validated = self.validated.lock();
        if let Some((c, len)) = *validated
            && c == current
        {
            return Ok(len);
        }
        let len = archive_len(&self.store, self.control(), current)?;
        // SAFETY: archive_len checked that the buffer and its `len` bytes lie
        // inside the mapping; the caller's pin keeps writers off them.
        let bytes =
            unsafe { std::slice::from_raw_parts(self.store.slot_ptr(split(current).1), len) };
        check_archive::<T>(bytes)?;
        *validated = Some((current, len));
        Ok(len)
    }

    /// The guard of the archive `current` names, pinned through `word` by
    /// `claim`, which this handle validated at `len` bytes. Built from
    /// scalars, so that the fast path makes it in registers.
    #[inline(always)]
    fn guard<'a>(
        &'a self,
        word: &'a std::sync::atomic::AtomicU64,
        claim: u64,
        lent: bool,
        current: u64,
        len: usize,
    ) -> RegionRef<'a, T>
    where
        T: Readable,
    {
        // SAFETY: `len` is the length this handle kept when it validated the
        // archive `current` names, which fits the buffer (archive_len
        // checked it); the buffer lies inside the mapping the handle keeps
        // attached, and the pin keeps every writer off it while the guard
        // lives.
        let bytes =
            unsafe { std::slice::from_raw_parts(self.store.slot_ptr(split(current).1), len) };
        // SAFETY: these bytes were validated as T::Archived by this handle,
        // at this length, and no writer has changed them since: the buffer
        // was current then and has been pinned since the re-check.
        let value = unsafe { rkyv::access_unchecked::<T::Archived>(bytes) };
        RegionRef {
            value,
            version: current >> 8,
            _hold: Hold::Pin(pins::PinHold { word, claim, lent }),
        }
    }
}

/// The length of the archive `current` names, its buffer index and length
/// checked against the layout; the reason as [`Error::Corrupt`] when they do
/// not fit. Read once: callers keep the result.
pub(crate) fn archive_len(raw: &Store, ctl: &RegionControl, current: u64) -> Result<usize> {
    let layout = raw.layout();
    let (_, buffer) = split(current);
    if buffer >= layout.slot_count {
        return Err(corrupt(format_args!(
            "current buffer {buffer} of {}",
            layout.slot_count
        )));
    }
    let len = ctl.buffers[buffer].len.load(Ordering::Acquire);
    if len > layout.slot_stride as u64 {
        return Err(corrupt(format_args!(
            "archive of {len} bytes in a buffer of {}",
            layout.slot_stride
        )));
    }
    Ok(len as usize)
}

#[cold]
fn corrupt(reason: std::fmt::Arguments<'_>) -> Error {
    Error::Corrupt {
        reason: reason.to_string(),
    }
}

/// A pinned archive this handle validated, for `read` to make a guard of:
/// the slot's word, the claim that pinned it, whether the slot is the
/// thread's own, the `current` word pinned and the kept length.
struct PinnedArchive<'a> {
    word: &'a std::sync::atomic::AtomicU64,
    claim: u64,
    lent: bool,
    current: u64,
    len: usize,
}

pub(crate) enum Hold<'a> {
    Pin(#[allow(dead_code)] pins::PinHold<'a>),
    Copy(#[allow(dead_code)] Arc<reader::ArchiveCopy>),
}

/// A validated archived value, borrowed in place (or, from a read-only
/// attachment, from a private copy). Derefs to `T::Archived`.
///
/// Not `Send`: the pin it holds belongs to this thread's slot.
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
