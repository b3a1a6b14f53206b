//! An untyped shmstore segment: the creation protocol, the validated header,
//! the write lock and change notification. `SharedCell` and `SharedRegion`
//! are typed containers over it, as `lock_api` containers are over raw locks.
//!
//! **Creation.** The kernel zero-fills a new segment. Exactly one process
//! creates it (`IPC_CREAT|IPC_EXCL`), stores `state = INITIALIZING`, writes
//! the header, initialises the mutex, writes the first value, then stores
//! `state = READY` with release ordering. Openers load `state` with acquire
//! ordering and read nothing else (but `magic`) before `READY`: after it,
//! every field the creator wrote is visible. Openers wait for `READY` with a
//! bounded timeout; a creator that died before it is told apart from a live
//! one by pid, start time and user (`process::may_be_creator`), never by pid
//! alone, so a process that took over a dead creator's pid does not block
//! recovery: `open_or_create` removes such a segment (by id) and creates it
//! anew. A creator that fails removes what it created; removal on drop is
//! armed only once an open or create has succeeded.
//!
//! **Validation.** An open validates the header once and keeps the layout
//! `header::validate` checked; nothing of the layout is read from the
//! segment again, so a peer scribbling on the header later cannot move a
//! slot outside the mapping.
//!
//! **Writing and waiting.** Writers take the robust mutex; one that finds
//! its previous owner dead marks it consistent, counts a recovery and wakes
//! every waiter (the dead one may have committed without waking anyone).
//! Each kind's commit is one store to one word (a cell's `seq`, a region's
//! `current`), followed, still under the lock, by the wake of
//! `sync/notify.rs`; waiting compares that same word.

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
use crate::sync::atomic::Std;
use crate::sync::notify::{self, Futex};
use crate::sync::{mutex, process, ready};

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

impl RawStore {
    fn unarmed(backing: Backing, kind: Kind, layout: Layout) -> RawStore {
        RawStore {
            base: base_of(&backing),
            backing,
            kind,
            layout,
            remove_on_drop: 0,
        }
    }

    fn arm(&mut self, remove_on_drop: bool) {
        if remove_on_drop {
            self.remove_on_drop = process::own_pid();
        }
    }

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
        crate::crash::point("create.after_shmget");
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
        if backing.len() < layout.used_len || backing.len() < HEADER_SIZE {
            let _ = backing.remove();
            return Err(Error::SizeMismatch {
                requested: layout.used_len.max(HEADER_SIZE),
                actual: backing.len(),
            });
        }
        let mut store = Self::unarmed(backing, ty.kind, *layout);
        let written = (|| {
            let h = store.header();
            h.write_creator(process::own_pid(), process::own_start_time());
            ready::begin::<Std>(&h.state);
            h.write_fresh(ty, layout);
            crate::crash::point("create.after_header");
            // SAFETY: the mutex room is writable, aligned to 64 and large
            // enough (asserted in header.rs); nobody uses it before READY.
            unsafe { mutex::init(h.mutex.0.get().cast()) }.map_err(|source| Error::Lock {
                id: store.backing.id(),
                source,
            })?;
            crate::crash::point("create.after_mutex");
            init(&store)?;
            crate::crash::point("create.after_value");
            ready::publish::<Std>(&h.state);
            Ok(())
        })();
        match written {
            Ok(()) => {
                store.arm(spec.remove_on_drop);
                Ok(store)
            }
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
    /// `ty`. The layout validated is the one kept.
    pub fn open_in(
        backing: Backing,
        target: Target,
        spec: &Spec,
        ty: &TypeDesc,
    ) -> Result<RawStore> {
        // SAFETY: the pointer and length describe the backing memory (a
        // mapping or a heap image, reached through a mutable pointer), which
        // lives as long as `backing`, and so as long as the header is used
        // here.
        let header = unsafe { header::header_at(backing.as_ptr(), backing.len()) }?;
        wait_ready(header, &backing, target, spec.init_timeout)?;
        let valid = header::validate(header, backing.len())?;
        valid.check_type(header, ty)?;
        let mut store = Self::unarmed(backing, valid.kind, valid.layout);
        store.arm(spec.remove_on_drop);
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
                // Nobody will ever finish it: if it is what a creator of
                // this very layout leaves, remove it (by id, so a new
                // segment at the key is never hit) and create it anew.
                // Anything else may be another program's: leave it.
                Err(e @ Error::CreatorDied { id, .. }) => {
                    if !abandoned_like(id, spec, layout) {
                        return Err(e);
                    }
                    let _ = Segment::remove_by_id(id);
                    last = Some(e);
                }
                other => return other,
            }
        }
        Err(last.unwrap_or(Error::NotFound { key }))
    }

    /// The header (validated when the store was opened or created).
    #[inline]
    pub fn header(&self) -> &Header {
        // SAFETY: the memory is at least HEADER_SIZE bytes (checked on open,
        // made so on create), page-aligned (shmat, HeapImage), lives as long
        // as self, and Header consists of atomics, valid for any bytes.
        unsafe { &*self.base.as_ptr().cast::<Header>() }
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
        // SAFETY: validation (or creation) made data_offset >= HEADER_SIZE +
        // REGION_CONTROL_SIZE within the mapping for a region (the kept
        // values, checked above), which lives as long as self; the block is
        // aligned to 64 after the 512-byte header and consists of atomics,
        // valid for any bytes.
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

    /// Take the write lock. A lock whose owner died is recovered: marked
    /// consistent, counted, and every waiter woken, since the dead owner may
    /// have committed without waking anyone.
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
                notify::wake::<Std, _>(&h.notify, &Futex);
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
            _not_send: std::marker::PhantomData,
        })
    }

    /// Wait until `version()` differs from `since`, at most `timeout` (a
    /// timeout too long to represent waits as long as `None`). Returns the
    /// version then (equal to `since` on timeout).
    pub fn wait_for_change(
        &self,
        since: u64,
        timeout: Option<Duration>,
        version: impl Fn() -> u64,
    ) -> Result<u64> {
        let word = &self.header().notify;
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        // A read-only attachment cannot announce itself, so writers do not
        // wake it: it sleeps in short slices instead.
        let announce = !self.backing.is_read_only();
        let slice = if announce {
            notify::MAX_SLEEP
        } else {
            Duration::from_millis(2)
        };
        let mut now = since;
        let mut changed = || {
            now = version();
            now != since
        };
        loop {
            let sleep = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(r) if !r.is_zero() => r.min(slice),
                    // Out of time: one last look, so that even a zero
                    // timeout sees a change made before the call.
                    _ => {
                        changed();
                        break;
                    }
                },
                None => slice,
            };
            let moved =
                notify::wait_round::<Std, _>(word, &Futex, announce, &mut changed, Some(sleep))
                    .map_err(|source| Error::Os {
                        target: Some(Target::Id(self.id())),
                        op: "futex wait",
                        source,
                    })?;
            if moved {
                break;
            }
        }
        Ok(now)
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

/// Whether segment `id`, whose creator died before READY, is what a
/// shmstore creator of `layout` leaves: its size, and a header that either
/// carries shmstore's magic or is still all zeros (the creator died right
/// after `shmget`). A segment of another size or with other bytes in its
/// header is left alone.
fn abandoned_like(id: i32, spec: &Spec, layout: &Layout) -> bool {
    let Ok(seg) = Segment::options()
        .read_only(true)
        .allow_foreign_owner(spec.allow_foreign_owner)
        .attach_id(id)
    else {
        return false;
    };
    let mut head = [0u8; HEADER_SIZE];
    if seg.len() != layout.used_len || seg.read_at(0, &mut head).is_err() {
        return false;
    }
    head[..8] == MAGIC.to_le_bytes() || head.iter().all(|&b| b == 0)
}

/// Wait until the header's state is READY, or find out it never will be.
fn wait_ready(h: &Header, backing: &Backing, target: Target, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(20);
    loop {
        let state = ready::state::<Std>(&h.state);
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
        let creator = backing.creator()?;
        if !creator.alive(h) && ready::state::<Std>(&h.state) != STATE_READY {
            return Err(Error::CreatorDied {
                target,
                id: backing.id(),
                creator: creator.pid,
            });
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(Error::InitTimeout {
                target,
                creator: creator.pid,
                waited,
            });
        }
        std::thread::sleep(pause.min(timeout - waited));
        pause = (pause * 2).min(Duration::from_millis(5));
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
        if self.remove_on_drop != 0 && self.remove_on_drop == process::own_pid() {
            let _ = self.backing.remove();
        }
    }
}

/// The write lock, held. Borrowing the store, it keeps the segment attached;
/// it unlocks on drop, on the thread that locked (it is not `Send`).
pub struct WriteGuard<'a> {
    store: &'a RawStore,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl WriteGuard<'_> {
    /// Called right after the store that commits: wake the waiters, if any
    /// announced themselves, before the lock is released (a writer that
    /// dies before waking them dies holding the lock, and the next one
    /// wakes them). A commit with nobody waiting makes no system call.
    #[inline]
    pub fn committed(&self) {
        notify::after_commit::<Std, _>(&self.store.header().notify, &Futex);
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: this guard's thread locked the mutex in RawStore::lock and
        // has not unlocked it (the guard is not Send and unlocks once).
        unsafe { mutex::unlock(self.store.header().mutex.0.get().cast()) }
    }
}
