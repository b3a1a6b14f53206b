//! An untyped shmstore segment: the creation protocol, the validated header,
//! the write lock and change notification. `SharedCell` and `SharedRegion`
//! are typed containers over it, as `lock_api` containers are over raw locks.
//!
//! Creation: the kernel zero-fills a new segment. Exactly one process creates
//! it (`IPC_CREAT|IPC_EXCL`), writes the header and first value, initialises
//! the mutex, then publishes `state = READY` with release ordering. Openers
//! wait for `READY` with a bounded timeout, and report a creator that died
//! before it (`open_or_create` removes such a segment and creates it anew).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result, Target};
use crate::header::{
    self, HEADER_SIZE, Header, Kind, Layout, MAGIC, REGION_CONTROL_SIZE, RegionControl,
    STATE_FRESH, STATE_INITIALIZING, STATE_READY, TypeDesc,
};
use crate::image::Backing;
use crate::key::Key;
use crate::segment::{Segment, SegmentInfo};
use crate::sync::{futex, mutex, process};

/// How long openers wait for a creator to publish `READY`, by default.
pub const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(5);

/// What every typed container's options share.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Permission bits of a created segment.
    pub mode: u32,
    /// Remove the segment (`IPC_RMID`) when the handle is dropped.
    pub remove_on_drop: bool,
    /// How long to wait for a creator to finish.
    pub init_timeout: Duration,
    /// Accept segments owned by other users.
    pub allow_foreign_owner: bool,
    /// The stored type's name, if not the Rust type's own.
    pub type_name: Option<String>,
    /// The stored type's schema version.
    pub schema_version: u32,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            mode: 0o600,
            remove_on_drop: false,
            init_timeout: DEFAULT_INIT_TIMEOUT,
            allow_foreign_owner: false,
            type_name: None,
            schema_version: 0,
        }
    }
}

impl Spec {
    /// The identity of `T` stored as `kind` in `size` bytes aligned to
    /// `align`, with the name and schema version these options give.
    pub fn type_desc<T: ?Sized>(
        &self,
        kind: Kind,
        size: usize,
        align: usize,
        extra: u64,
    ) -> TypeDesc {
        TypeDesc {
            kind,
            name: self
                .type_name
                .clone()
                .unwrap_or_else(|| std::any::type_name::<T>().to_owned()),
            size: size as u32,
            align: align as u32,
            schema_version: self.schema_version,
            extra,
        }
    }
}

/// The option setters every typed container shares, for an options type
/// with a `spec: Spec` field.
macro_rules! spec_setters {
    () => {
        /// Permission bits of a created segment. Default `0o600`.
        pub fn mode(&mut self, mode: u32) -> &mut Self {
            self.spec.mode = mode & 0o777;
            self
        }

        /// Remove the segment (`IPC_RMID`) when this handle is dropped: it
        /// then disappears after the last process detaches. Default off.
        pub fn remove_on_drop(&mut self, yes: bool) -> &mut Self {
            self.spec.remove_on_drop = yes;
            self
        }

        /// How long `open` waits for a racing creator to finish. Default 5 s.
        pub fn init_timeout(&mut self, timeout: std::time::Duration) -> &mut Self {
            self.spec.init_timeout = timeout;
            self
        }

        /// Accept a segment owned or created by another user than this one
        /// and root. Default off (see
        /// [`Error::ForeignOwner`](crate::Error::ForeignOwner)).
        pub fn allow_foreign_owner(&mut self, yes: bool) -> &mut Self {
            self.spec.allow_foreign_owner = yes;
            self
        }

        /// The name the type is known by in the segment; by default
        /// `std::any::type_name::<T>()`, which changes when the type moves
        /// between crates or modules.
        pub fn type_name(&mut self, name: impl Into<String>) -> &mut Self {
            self.spec.type_name = Some(name.into());
            self
        }

        /// A version to bump when the meaning of `T` changes but its layout
        /// does not. Default 0.
        pub fn schema_version(&mut self, version: u32) -> &mut Self {
            self.spec.schema_version = version;
            self
        }
    };
}
pub(crate) use spec_setters;

/// An attached, validated shmstore segment.
#[derive(Debug)]
pub struct RawStore {
    backing: Backing,
    /// `backing.as_ptr()`, kept for the hot paths.
    base: std::ptr::NonNull<u8>,
    /// The layout as validated at open (or made at create). Kept here, never
    /// re-read from the segment, so a peer scribbling on the header later
    /// cannot move a slot outside the mapping.
    layout: Layout,
    remove_on_drop: bool,
}

impl RawStore {
    /// Create the segment at `key` exclusively, lay out the header for `ty`
    /// and `layout`, let `init` write the first value, and publish READY.
    pub fn create(
        key: Key,
        spec: &Spec,
        ty: &TypeDesc,
        layout: &Layout,
        init: impl FnOnce(&RawStore) -> Result<()>,
    ) -> Result<RawStore> {
        let seg = Segment::options()
            .size(layout.used_len)
            .create(true)
            .exclusive(true)
            .mode(spec.mode)
            .open(key)?;
        Self::create_in(Backing::Segment(seg), spec, ty, layout, init)
    }

    /// Lay out a store in fresh zero-filled memory, let `init` write the first
    /// value, and publish READY. On failure the memory is removed.
    pub fn create_in(
        backing: Backing,
        spec: &Spec,
        ty: &TypeDesc,
        layout: &Layout,
        init: impl FnOnce(&RawStore) -> Result<()>,
    ) -> Result<RawStore> {
        if backing.len() < layout.used_len {
            return Err(Error::SizeMismatch {
                requested: layout.used_len,
                actual: backing.len(),
            });
        }
        let store = RawStore {
            base: base_of(&backing),
            backing,
            layout: *layout,
            remove_on_drop: spec.remove_on_drop,
        };
        let written = (|| {
            let h = store.header();
            h.state.store(STATE_INITIALIZING, Ordering::Relaxed);
            h.write_fresh(ty, layout, std::process::id() as i32);
            // SAFETY: the mutex room is writable, aligned to 64 and large
            // enough (asserted in header.rs); nobody uses it before READY.
            unsafe { mutex::init(h.mutex.0.get().cast()) }.map_err(|source| Error::Lock {
                id: store.backing.id(),
                source,
            })?;
            init(&store)?;
            h.state.store(STATE_READY, Ordering::Release);
            Ok(())
        })();
        match written {
            Ok(()) => Ok(store),
            Err(e) => {
                let _ = store.backing.remove();
                Err(e)
            }
        }
    }

    /// Open the existing segment at `key`, wait until it is READY, validate it
    /// and check that it holds `ty`.
    pub fn open(key: Key, spec: &Spec, ty: &TypeDesc, read_only: bool) -> Result<RawStore> {
        let seg = Segment::options()
            .read_only(read_only)
            .allow_foreign_owner(spec.allow_foreign_owner)
            .open(key)?;
        Self::open_in(Backing::Segment(seg), Target::Key(key), spec, ty)
    }

    /// Attach the segment with this id, wait until it is READY, validate it
    /// and check that it holds `ty`.
    pub fn attach_id(id: i32, spec: &Spec, ty: &TypeDesc, read_only: bool) -> Result<RawStore> {
        let seg = Segment::options()
            .read_only(read_only)
            .allow_foreign_owner(spec.allow_foreign_owner)
            .attach_id(id)?;
        Self::open_in(Backing::Segment(seg), Target::Id(id), spec, ty)
    }

    /// Wait until the memory is READY, validate it and check that it holds
    /// `ty`.
    pub fn open_in(
        backing: Backing,
        target: Target,
        spec: &Spec,
        ty: &TypeDesc,
    ) -> Result<RawStore> {
        let mut store = RawStore {
            base: base_of(&backing),
            backing,
            layout: Layout::for_value(0, 8, 2)?,
            remove_on_drop: spec.remove_on_drop,
        };
        store.wait_ready(target, spec.init_timeout)?;
        // SAFETY: the pointer and length describe the backing memory, which
        // lives as long as `store`.
        let header = unsafe { validate_raw(store.backing.as_ptr(), store.backing.len()) }?;
        header.check_type(ty)?;
        store.layout = header.layout();
        Ok(store)
    }

    /// Open the segment at `key`, or create it if there is none. Many
    /// processes may race: one creates, the others open.
    pub fn open_or_create(
        key: Key,
        spec: &Spec,
        ty: &TypeDesc,
        layout: &Layout,
        mut init: impl FnMut(&RawStore) -> Result<()>,
    ) -> Result<RawStore> {
        if key.is_private() {
            return Self::create(key, spec, ty, layout, init);
        }
        let mut last = None;
        for _ in 0..16 {
            match Self::create(key, spec, ty, layout, &mut init) {
                Err(Error::AlreadyExists { .. }) => {}
                other => return other,
            }
            match Self::open(key, spec, ty, false) {
                // Removed between our create and open: try again.
                Err(e @ Error::NotFound { .. }) => last = Some(e),
                // Nobody will ever finish it: remove it (by id, so a new
                // segment at the key is never hit) and create it anew.
                Err(e @ Error::CreatorDied { id, .. }) => {
                    let _ = Segment::remove_by_id(id);
                    last = Some(e);
                }
                other => return other,
            }
        }
        Err(last.unwrap_or(Error::NotFound { key }))
    }

    fn wait_ready(&self, target: Target, timeout: Duration) -> Result<()> {
        if self.backing.len() < HEADER_SIZE {
            return Err(Error::NotShmstore {
                reason: format!(
                    "{} bytes, fewer than a shmstore header ({HEADER_SIZE})",
                    self.backing.len()
                ),
            });
        }
        let h = self.header();
        let start = Instant::now();
        let mut pause = Duration::from_micros(20);
        loop {
            let state = h.state();
            let magic = h.magic.load(Ordering::Relaxed);
            if state == STATE_READY {
                return Ok(());
            }
            let initialising =
                matches!(state, STATE_FRESH | STATE_INITIALIZING) && (magic == 0 || magic == MAGIC);
            if !initialising {
                // Not a segment being made by shmstore: let validation say why.
                return Ok(());
            }
            let creator = self.backing.creator_pid()?;
            if !process::alive(creator) && h.state() != STATE_READY {
                return Err(Error::CreatorDied {
                    target,
                    id: self.backing.id(),
                    creator,
                });
            }
            let waited = start.elapsed();
            if waited >= timeout {
                return Err(Error::InitTimeout {
                    target,
                    creator,
                    waited,
                });
            }
            std::thread::sleep(pause.min(timeout - waited));
            pause = (pause * 2).min(Duration::from_millis(5));
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

    /// The control block after the header; only for a validated region,
    /// whose data offset leaves room for it.
    #[inline]
    pub fn region_control(&self) -> &RegionControl {
        assert!(self.layout.data_offset >= HEADER_SIZE + REGION_CONTROL_SIZE);
        // SAFETY: validation (or creation) made data_offset >= HEADER_SIZE +
        // REGION_CONTROL_SIZE within the mapping, which lives as long as self;
        // the block is aligned to 64 after the 512-byte header and consists
        // of atomics, valid for any bytes.
        unsafe { &*self.base.as_ptr().add(HEADER_SIZE).cast::<RegionControl>() }
    }

    /// The validated layout.
    #[inline]
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The memory the store lives in.
    pub fn backing(&self) -> &Backing {
        &self.backing
    }

    /// The segment's id (-1 for a heap image).
    pub fn id(&self) -> i32 {
        self.backing.id()
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

    /// Take the write lock, recovering it (and counting the recovery) if its
    /// owner died.
    pub fn lock(&self) -> Result<WriteGuard<'_>> {
        if self.backing.is_read_only() {
            return Err(Error::ReadOnly {
                id: self.backing.id(),
            });
        }
        let h = self.header();
        // SAFETY: the mutex was initialised by the creator before READY, and
        // the guard borrows self, so the segment stays attached until unlock.
        match unsafe { mutex::lock(h.mutex.0.get().cast()) } {
            Ok(mutex::Locked::Clean) => {}
            Ok(mutex::Locked::Recovered) => {
                h.recoveries.fetch_add(1, Ordering::Relaxed);
            }
            Err(source) => {
                return Err(Error::Lock {
                    id: self.backing.id(),
                    source,
                });
            }
        }
        Ok(WriteGuard {
            store: self,
            wake: std::cell::Cell::new(false),
            _not_send: std::marker::PhantomData,
        })
    }

    /// The futex word: the low 32 bits of the commit counter.
    fn futex_word(&self) -> *const u32 {
        (&self.header().seq as *const AtomicU64).cast()
    }

    /// Wait until the commit counter differs from `since`, at most `timeout`.
    /// Returns the counter then (equal to `since` on timeout).
    pub fn wait_for_change(&self, since: u64, timeout: Option<Duration>) -> u64 {
        let h = self.header();
        let deadline = timeout.map(|t| Instant::now() + t);
        // A read-only attachment cannot register as a waiter, so writers do
        // not know to wake it: it sleeps in short slices instead.
        let registration = (!self.backing.is_read_only()).then(|| self.register_waiter());
        let slice = registration.is_none().then_some(Duration::from_millis(2));
        let now = loop {
            let now = h.seq.load(Ordering::SeqCst);
            if now != since {
                break now;
            }
            let remaining = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(r) if !r.is_zero() => Some(r),
                    _ => break now,
                },
                None => None,
            };
            let sleep = match (remaining, slice) {
                (Some(r), Some(s)) => Some(r.min(s)),
                (r, s) => r.or(s),
            };
            // SAFETY: the word is the aligned low half of `seq`, in the
            // mapping that self keeps attached.
            unsafe { futex::wait(self.futex_word(), since as u32, sleep) };
        };
        if let Some(slot) = registration {
            self.unregister_waiter(slot);
        }
        now
    }

    /// Count this process as a waiter, in a pid slot if one is free.
    fn register_waiter(&self) -> Option<usize> {
        let h = self.header();
        let me = std::process::id() as i32;
        let slot = h.waiter_pids.iter().position(|p| {
            p.compare_exchange(0, me, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
        });
        h.waiters.fetch_add(1, Ordering::SeqCst);
        slot
    }

    fn unregister_waiter(&self, slot: Option<usize>) {
        let h = self.header();
        let me = std::process::id() as i32;
        // A writer may have taken us for dead and forgotten us already (only
        // if our pid was reused, which cannot happen while we run); only undo
        // what is still ours.
        match slot {
            Some(i) => {
                if h.waiter_pids[i]
                    .compare_exchange(me, 0, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
                {
                    h.waiters.fetch_sub(1, Ordering::SeqCst);
                }
            }
            None => {
                h.waiters.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// Forget waiters whose process died while waiting, so that writers stop
    /// making a wake call for them. Called only when a wake found no sleeper.
    fn reap_dead_waiters(&self) {
        let h = self.header();
        for p in &h.waiter_pids {
            let pid = p.load(Ordering::Relaxed);
            if pid != 0
                && !process::alive(pid)
                && p.compare_exchange(pid, 0, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
            {
                h.waiters.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// `IPC_STAT` of the segment.
    pub fn info(&self) -> Result<SegmentInfo> {
        self.backing.info()
    }

    /// `IPC_RMID` of the segment.
    pub fn remove(&self) -> Result<()> {
        self.backing.remove()
    }
}

fn base_of(backing: &Backing) -> std::ptr::NonNull<u8> {
    std::ptr::NonNull::new(backing.as_ptr()).expect("a mapping is never at address 0")
}

// SAFETY: `base` points into `backing`, which the store owns and which is
// Send + Sync (an attachment or a heap image); every access through it is
// atomic or under the process-shared lock, from any thread.
unsafe impl Send for RawStore {}
// SAFETY: as above.
unsafe impl Sync for RawStore {}

impl Drop for RawStore {
    fn drop(&mut self) {
        if self.remove_on_drop {
            let _ = self.backing.remove();
        }
    }
}

/// The write lock, held. Borrowing the store, it keeps the segment attached;
/// it unlocks on drop, on the thread that locked (it is not `Send`).
pub struct WriteGuard<'a> {
    store: &'a RawStore,
    /// A commit found waiters: wake them once the lock is released.
    wake: std::cell::Cell<bool>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl WriteGuard<'_> {
    /// Publish commit counter `seq`. Waiters, if any, are woken when the guard
    /// is dropped, after the unlock, so they do not wake into a held lock; a
    /// commit with nobody waiting makes no system call.
    pub fn commit(&self, seq: u64) {
        let h = self.store.header();
        // SeqCst pairs with the waiter's SeqCst increment of `waiters` and its
        // load of `seq`: either it sees the new seq or we see it waiting.
        h.seq.store(seq, Ordering::SeqCst);
        if h.waiters.load(Ordering::SeqCst) > 0 {
            self.wake.set(true);
        }
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: this guard's thread locked the mutex in RawStore::lock and
        // has not unlocked it (the guard is not Send and unlocks once).
        unsafe { mutex::unlock(self.store.header().mutex.0.get().cast()) }
        if self.wake.get() {
            // SAFETY: the futex word lies in the memory the guard's borrow of
            // the store keeps attached.
            let woken = unsafe { futex::wake_all(self.store.futex_word()) };
            if woken == 0 {
                // Nobody was asleep: the waiters may be between checks, or
                // dead. Forget the dead ones so later commits skip the call.
                self.store.reap_dead_waiters();
            }
        }
    }
}

/// [`header::validate`] over a mapped segment.
///
/// # Safety
/// `ptr` must point to `len` mapped bytes that stay mapped while the result
/// is used.
unsafe fn validate_raw<'a>(ptr: *const u8, len: usize) -> Result<&'a Header> {
    // SAFETY: per the contract the bytes are mapped. validate reads only the
    // header, and only through atomics, so other processes writing the slots
    // or the header meanwhile race with nothing this slice is used for.
    let image = unsafe { std::slice::from_raw_parts(ptr, len) };
    header::validate(image)
}
