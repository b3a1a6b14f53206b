//! Watching objects from an event loop: a [`Subscription`] covers any
//! number of cells and regions, is a descriptor (an `eventfd`) that epoll,
//! mio or tokio's `AsyncFd` can register, and says, without blocking,
//! which objects changed and their versions.
//!
//! A futex has no descriptor, so a watcher thread bridges the two: it
//! sleeps on the `notify` words of every object subscribed to in this
//! process at once (`futex_waitv`, up to [`GROUP_MAX`]
//! objects a thread; more threads past that) and signals the eventfd of
//! each subscription whose object moved. The thread starts with the first
//! subscription and is joined with the last; it holds a share of each
//! watched handle's attachment only while subscribed. Processes that
//! subscribe to nothing run no thread, and a store with nobody waiting
//! still makes no system call.
//!
//! **The protocol** (`hub.rs` runs it), on each watched object's commit
//! word (a cell's `seq`, a region's `current`), its `notify` word and its
//! `life` word, and each group's state under its lock:
//!
//! 1. **Subscribe**: under the group's lock, the subscription's inbox joins
//!    the object's slot (a new slot's `seen` is the version then); the
//!    group's kick word moves on and is woken, so its thread sleeps on the
//!    new word from its next round. Then, outside the lock, the
//!    subscription takes its baseline (the version now, or the caller's
//!    `since`), and signals itself if the version already differs from it
//!    or the object is removed.
//! 2. **A watcher round**: copy, under the lock, the live slots' objects,
//!    their `seen`, and the kick word; then one
//!    `sync::notify::wait_any_round` on the kick
//!    word and every object's `notify` (announcing `WAITING` on read-write
//!    attachments), which returns once the kick moved, or some version
//!    differs from its `seen`, or some `life` mark came or went since the
//!    last pass, or after a slice.
//! 3. **Deliver**, under the lock: for each live slot, if the version
//!    differs from `seen`, or `life` was newly marked, or the kernel says
//!    the object was removed (asked at every pass while a mark stands,
//!    else at most every `REMOVAL_CHECK`, for an `ipcrm`), set `seen` to
//!    the version, then signal every inbox on the slot. Only the kernel's
//!    word makes a removal final (the slot stops being watched and the
//!    object's `gone` is set): a remover whose `IPC_RMID` fails takes its
//!    mark back, and the object lives on, watched.
//! 4. **changes()**: drain the eventfd, then for each object compare the
//!    version to the one last reported; one that moved and is also removed
//!    signals the eventfd again, so that the removal, reported by the next
//!    call, is not left to a signal already drained.
//!
//! **No change is lost.** Take a commit of version `v` on object `O`, and
//! a subscription `S` on `O` whose last report (or baseline) `b` read
//! before it, so `b < v`. The watcher never sleeps through the commit:
//! either its `seen` for `O` already differs from the version, and its
//! round returns at once, or the waiting protocol's argument
//! (`sync/notify.rs`, word by word for `futex_waitv`) ends the round after
//! the commit (for a read-write attachment: the writer's read-modify-write
//! on `notify` finds `WAITING` and wakes it; for a read-only one, within a
//! slice). The delivery pass that follows reads a version `>= v`, which
//! differs from `seen`. If that pass held the lock after `S` joined, it
//! signals `S` after reading `v`, and `S`'s next `changes()`, which drains
//! before it reads, reads `>= v`. If it held the lock before `S` joined,
//! its read of `v` happens before `S`'s baseline (lock, then read), which
//! then reads `>= v`, not `b`. A signal that arrives between a drain and
//! the reads after it is left in the counter: the descriptor stays
//! readable, so the most a reader sees is a readiness with nothing new.
//!
//! **Removal** reaches every subscription: a remover marks `life` and wakes
//! `notify`, so the round returns and the pass signals (a subscription
//! reports the mark as a removal, as `wait_for_change` does); its
//! `IPC_RMID` comes before its wake, so the pass after that wake finds the
//! removal final. An `ipcrm` is found by the pass's `IPC_STAT`, within a
//! slice of `REMOVAL_CHECK`. A mark that stands (a remover paused between
//! its mark and its `IPC_RMID`, or a peer's write) is signalled once, and
//! the round sleeps on; the kernel is asked at each pass until it goes.
//!
//! **Dead writers.** A writer that dies between its commit and its wake
//! leaves the round to its slice (`MAX_SLEEP`), as for any waiter.
//!
//! **What read-only handles cost.** A read-only attachment cannot set
//! `WAITING`, so writers do not wake the watcher for it: while a group
//! watches one, its thread looks every `READ_ONLY_SLICE` (2 ms), about 500
//! wake-ups a second, and its subscriptions learn of a change within that.
//!
//! **Fork.** A subscription belongs to the process that made it: in a
//! fork's child its methods return [`Error::Forked`] (its watcher thread is
//! not there, and its eventfd is shared with the parent's). Handles keep
//! working in the child, and new subscriptions there start the child's own
//! watcher. A process tells its own bookkeeping from a parent's by a word
//! that reads zero in every fork's child (`proc::own_word`), not by its
//! pid, which a descendant may get back; and it never takes a parent's
//! lock, which another thread of the parent may have held at the fork.
//! One limit: the parent's watcher held shares of the objects it watched,
//! and a child has no thread to give them back, so a child of a process
//! that was watching keeps those segments attached until it exits or
//! calls `exec`, even after it drops its own handles.

mod hub;
#[cfg(feature = "tokio")]
mod tokio;

#[cfg(feature = "tokio")]
pub use self::tokio::Changes;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::time::Duration;

use hub::{Group, Hub, Inbox};
use parking_lot::Mutex;

use crate::cell::SharedCell;
use crate::error::{Error, Result};
use crate::format::Current;
use crate::region::SharedRegion;
use crate::store::life::removal;
use crate::store::{Access, Store};
use crate::sys::eventfd::EventFd;
use crate::sys::proc;

pub use hub::GROUP_MAX;

/// An object a watcher watches: a share of a handle's attachment, and how
/// to read its version.
pub struct Object {
    store: Store,
    probe: Probe,
    /// Set by the watcher when it found the object removed.
    gone: AtomicBool,
}

#[derive(Clone, Copy)]
enum Probe {
    Cell,
    Region,
}

impl Object {
    fn version(&self) -> u64 {
        match self.probe {
            Probe::Cell => self.store.seq().load(SeqCst),
            Probe::Region => {
                Current::from_raw(self.store.region_control().current.load(SeqCst)).version()
            }
        }
    }

    fn notify(&self) -> &AtomicU32 {
        &self.store.header().notify
    }

    /// Whether this attachment may set `WAITING` (read-write).
    fn announces(&self) -> bool {
        !self.store.memory().is_read_only()
    }

    /// Whether `life` is marked for removal.
    fn marked_removed(&self) -> bool {
        removal::removed(self.store.header())
    }

    fn removed(&self) -> bool {
        self.gone.load(SeqCst) || self.marked_removed()
    }
}

mod sealed {
    /// How a handle hands its object to a watcher.
    pub trait Watch {
        /// A share of the handle's attachment, with its kind.
        fn watched(&self) -> super::Object;
    }
}

/// A handle a [`Subscription`] can watch: a [`SharedCell`], a
/// [`SharedRegion`] or a [`RawObject`](crate::raw::RawObject), read-write
/// or read-only.
pub trait Watchable: sealed::Watch {}

impl<T: bytemuck::Pod, A: Access> sealed::Watch for SharedCell<T, A> {
    fn watched(&self) -> Object {
        Object {
            store: self.untyped().share(),
            probe: Probe::Cell,
            gone: AtomicBool::new(false),
        }
    }
}

impl<T: bytemuck::Pod, A: Access> Watchable for SharedCell<T, A> {}

impl<T: rkyv::Archive, A: Access> sealed::Watch for SharedRegion<T, A> {
    fn watched(&self) -> Object {
        Object {
            store: self.store().share(),
            probe: Probe::Region,
            gone: AtomicBool::new(false),
        }
    }
}

impl<T: rkyv::Archive, A: Access> Watchable for SharedRegion<T, A> {}

impl<A: Access> sealed::Watch for crate::raw::RawObject<A> {
    fn watched(&self) -> Object {
        Object {
            store: self.store().share(),
            probe: match self.kind() {
                crate::format::Kind::Cell => Probe::Cell,
                crate::format::Kind::Region => Probe::Region,
            },
            gone: AtomicBool::new(false),
        }
    }
}

impl<A: Access> Watchable for crate::raw::RawObject<A> {}

/// What [`Subscription::changes`] found about one object: which one (the
/// token [`Subscription::add`] returned) and its new version, or
/// [`Error::Removed`] once it was removed without a change since the last
/// report, as `wait_for_change` returns.
#[derive(Debug)]
pub struct Change {
    /// The object's token.
    pub token: usize,
    /// Its version now, or `Err(Error::Removed { .. })`.
    pub version: Result<u64>,
}

/// One subscribed object.
struct Entry {
    object: Arc<Object>,
    group: Arc<Group>,
    /// The version last reported (or the baseline).
    reported: u64,
    /// Whether its removal was reported.
    removal_reported: bool,
}

/// A set of watched objects behind one descriptor, readable when one of
/// them may have changed or been removed.
///
/// Register [`as_fd`](AsFd::as_fd) with epoll, mio or tokio's `AsyncFd`
/// (readable interest); when it is readable, [`changes`](Self::changes)
/// says which objects moved, and clears it. Or block on it with
/// [`wait`](Self::wait). Dropping the subscription stops watching its
/// objects (and the watcher thread with the process's last subscription).
///
/// ```
/// use std::time::Duration;
/// use shmstore::watch::Subscription;
/// use shmstore::{Key, SharedCell};
///
/// let config = SharedCell::create(Key::PRIVATE, 1u64)?;
/// let command = SharedCell::create(Key::PRIVATE, 0u32)?;
/// let mut sub = Subscription::new()?;
/// let c = sub.add(&config)?;
/// let k = sub.add(&command)?;
/// command.store(7)?;
/// let changes = sub.wait(Some(Duration::from_secs(5)))?;
/// assert_eq!(changes.len(), 1);
/// assert_eq!(changes[0].token, k);
/// assert_eq!(changes[0].version.as_ref().ok(), Some(&1));
/// # let _ = c;
/// config.remove()?;
/// command.remove()?;
/// # Ok::<(), shmstore::Error>(())
/// ```
pub struct Subscription {
    inbox: Arc<Inbox>,
    entries: Vec<Entry>,
    /// The hub of the process that made it: a fork's child has its own (a
    /// pid would not tell, since a descendant may get an ancestor's back).
    hub: &'static Mutex<Hub>,
    /// The pid of the process that made it, for `Error::Forked`.
    pid: i32,
}

impl Subscription {
    /// An empty subscription: its descriptor is never readable until an
    /// object is added.
    pub fn new() -> Result<Subscription> {
        let fd = EventFd::new().map_err(|source| Error::Os {
            target: None,
            op: "eventfd",
            source,
        })?;
        Ok(Subscription {
            inbox: Arc::new(Inbox { fd }),
            entries: Vec::new(),
            hub: hub::hub(),
            pid: proc::own_pid(),
        })
    }

    /// Watch `object` from its version now; returns its token (0 for the
    /// first object added, then 1, 2, ...). Adding the same handle twice
    /// watches it twice.
    pub fn add(&mut self, object: &impl Watchable) -> Result<usize> {
        self.add_entry(object, None)
    }

    /// Watch `object` for a version other than `since`: if it already
    /// differs (or the object is removed), the descriptor is readable at
    /// once.
    pub fn add_since(&mut self, object: &impl Watchable, since: u64) -> Result<usize> {
        self.add_entry(object, Some(since))
    }

    fn add_entry(&mut self, object: &impl Watchable, since: Option<u64>) -> Result<usize> {
        self.same_process()?;
        let (object, group) = hub::subscribe(object.watched(), &self.inbox)?;
        // The baseline is taken after joining (see the protocol above).
        let now = object.version();
        let reported = since.unwrap_or(now);
        let signal = now != reported || object.removed();
        // Kept before signalling, so that a failed signal still leaves the
        // entry to be unsubscribed when the subscription is dropped.
        self.entries.push(Entry {
            object,
            group,
            reported,
            removal_reported: false,
        });
        if signal {
            self.signal()?;
        }
        Ok(self.entries.len() - 1)
    }

    /// How many objects it watches.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it watches nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Without blocking: clear the descriptor's readiness, and return each
    /// object whose version differs from the one last reported (with the
    /// version now), and each object removed since (once, as
    /// `Err(Error::Removed)`). Empty if nothing changed. An object removed
    /// after a new version is reported with the version first; the
    /// descriptor then stays readable, and the next call reports the
    /// removal.
    pub fn changes(&mut self) -> Result<Vec<Change>> {
        self.same_process()?;
        self.inbox.fd.drain().map_err(|source| Error::Os {
            target: None,
            op: "read an eventfd",
            source,
        })?;
        let mut out = Vec::new();
        let mut removal_left = false;
        for (token, entry) in self.entries.iter_mut().enumerate() {
            if entry.removal_reported {
                continue;
            }
            let version = entry.object.version();
            if version != entry.reported {
                entry.reported = version;
                out.push(Change {
                    token,
                    version: Ok(version),
                });
                // The removal, if any, is for the next call; the watcher
                // signals it once only, and that signal was just drained.
                removal_left |= entry.object.removed();
            } else if entry.object.removed() {
                entry.removal_reported = true;
                out.push(Change {
                    token,
                    version: Err(Error::Removed {
                        id: entry.object.store.id(),
                    }),
                });
            }
        }
        if removal_left {
            self.signal()?;
        }
        Ok(out)
    }

    /// Block until some object changes or is removed, at most `timeout`
    /// (`None`: for as long as it takes), and return
    /// [`changes`](Self::changes) then (empty on timeout).
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<Vec<Change>> {
        self.same_process()?;
        let deadline = timeout.and_then(|t| std::time::Instant::now().checked_add(t));
        loop {
            let changes = self.changes()?;
            let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
            if !changes.is_empty() || left.is_some_and(|l| l.is_zero()) {
                return Ok(changes);
            }
            self.inbox.fd.wait(left).map_err(|source| Error::Os {
                target: None,
                op: "poll an eventfd",
                source,
            })?;
        }
    }

    fn signal(&self) -> Result<()> {
        self.inbox.fd.signal().map_err(|source| Error::Os {
            target: None,
            op: "write an eventfd",
            source,
        })
    }

    fn same_process(&self) -> Result<()> {
        if !std::ptr::eq(self.hub, hub::hub()) {
            return Err(Error::Forked { made_in: self.pid });
        }
        Ok(())
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if self.same_process().is_err() {
            // A fork's child: the groups and their threads are the
            // parent's.
            return;
        }
        for entry in self.entries.drain(..) {
            hub::unsubscribe(&entry.object, &entry.group, &self.inbox);
        }
    }
}

impl AsFd for Subscription {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inbox.fd.as_fd()
    }
}

impl AsRawFd for Subscription {
    fn as_raw_fd(&self) -> RawFd {
        self.inbox.fd.as_raw_fd()
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("fd", &self.as_raw_fd())
            .field("objects", &self.entries.len())
            .finish()
    }
}

/// How many watcher threads this process runs now.
pub fn watcher_threads() -> usize {
    hub::threads()
}
