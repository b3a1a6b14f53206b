//! Waiting for a change of an object's version: the event count of
//! `sync/notify.rs` on the header's `notify` word, in slices, with a
//! deadline. A read-only attachment cannot announce itself, so it polls in
//! short slices.
//!
//! **Removal.** A waiter whose object is removed returns
//! [`Error::Removed`]. A removal through shmstore (`remove()`, the
//! `shmstore` command) marks the header's `life` word, then wakes every
//! waiter (`life/removal.rs`): a waiter looks at the mark before it sleeps
//! and after every wake, so it returns at once. An `ipcrm` marks nothing:
//! for it, a waiter also asks the kernel (`IPC_STAT`) when it starts and
//! then, while nothing changes, after each round it slept, but a handle
//! does not ask twice within [`REMOVAL_CHECK`] or a slice, whichever is
//! shorter, not even across calls (a loop that waits, wakes and waits again
//! asks once per interval, not once per wake: the question is a system
//! call, about a sixth of a wake-up's cost on one CPU); so it sees one
//! within about a slice and that interval ([`notify::MAX_SLEEP`] for a
//! read-write waiter, [`READ_ONLY_SLICE`] for a read-only one). Loads and
//! reads never ask; stores and publishes look at the mark once they hold
//! the write lock.

use std::io;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::Store;
use crate::error::{Error, Result, Target};
use crate::sync::atomic::Std;
use crate::sync::notify::{self, Sleep, SleepAny};
use crate::sys::futex;

/// How often, at most, a read-write waiter asks the kernel whether its
/// object was removed while nothing changed (a read-only one asks after
/// each of its slices, which are shorter).
pub const REMOVAL_CHECK: Duration = Duration::from_millis(100);

/// The slice a read-only waiter, which writers do not wake, sleeps before
/// it looks at the version again.
pub const READ_ONLY_SLICE: Duration = Duration::from_millis(2);

/// When a store's waits last asked the kernel whether the object was
/// removed and found it was not: nanoseconds after [`epoch`] plus one (0:
/// never), in private memory.
#[derive(Debug, Default)]
pub struct Asked(AtomicU64);

/// The instant [`Asked`] counts from: the first time a wait looked at it.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl Asked {
    /// When the last answer was given, if it was given less than `within`
    /// ago.
    fn within(&self, within: Duration) -> Option<Instant> {
        let at = self.0.load(Ordering::Relaxed).checked_sub(1)?;
        let at = epoch() + Duration::from_nanos(at);
        (at.elapsed() < within).then_some(at)
    }

    /// An answer was given now.
    fn now(&self) -> Instant {
        let now = Instant::now();
        let nanos = now.saturating_duration_since(epoch()).as_nanos();
        self.0.store(
            u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1,
            Ordering::Relaxed,
        );
        now
    }
}

/// The kernel's futex, as the waiting protocol (`sync/notify.rs`) sleeps
/// and wakes on it.
pub struct Futex;

impl Sleep<AtomicU32> for Futex {
    #[inline]
    fn sleep(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> io::Result<()> {
        futex::wait(word, expected, timeout).map(drop)
    }

    #[inline]
    fn wake_all(&self, word: &AtomicU32) {
        // A failed wake (ENOSYS) leaves waiters to their MAX_SLEEP slices;
        // the commit is made either way.
        let _ = futex::wake_all(word);
    }
}

/// Whether `futex_waitv` answered `ENOSYS` (a kernel before 5.16): from
/// then on a wait on several words sleeps on the first one in
/// [`READ_ONLY_SLICE`] slices, and so sees a change of the others within a
/// slice.
static NO_WAITV: AtomicBool = AtomicBool::new(false);

impl SleepAny<AtomicU32> for Futex {
    fn sleep_any(&self, words: &[(&AtomicU32, u32)], timeout: Option<Duration>) -> io::Result<()> {
        if let [(word, expected)] = words {
            return self.sleep(word, *expected, timeout);
        }
        if !NO_WAITV.load(Ordering::Relaxed) {
            match futex::wait_any(words, timeout) {
                Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                    NO_WAITV.store(true, Ordering::Relaxed);
                }
                other => return other.map(drop),
            }
        }
        let slice = timeout.map_or(READ_ONLY_SLICE, |t| t.min(READ_ONLY_SLICE));
        match words.first() {
            Some((word, expected)) => self.sleep(word, *expected, Some(slice)),
            None => Ok(()),
        }
    }
}

impl Store {
    /// Wait until `version()` differs from `since`, at most `timeout` (a
    /// timeout too long to represent waits as long as `None`). Returns the
    /// version then (equal to `since` on timeout), or [`Error::Removed`]
    /// once the object is removed and the version did not change.
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
        let announce = !self.memory.is_read_only();
        let slice = if announce {
            notify::MAX_SLEEP
        } else {
            READ_ONLY_SLICE
        };
        let now = std::cell::Cell::new(since);
        let header = self.header();
        let removed = || super::life::removal::removed(header);
        let mut changed = || {
            now.set(version());
            now.get() != since || removed()
        };
        let interval = REMOVAL_CHECK.min(slice);
        // The version is read whether or not the kernel is asked: the
        // removal mark below counts only if it did not change.
        let mut checked = match (changed(), self.memory.asked.within(interval)) {
            (_, Some(at)) => at,
            (false, None) => self.fail_if_removed()?,
            (true, None) => Instant::now(),
        };
        if now.get() == since && removed() {
            return Err(Error::Removed { id: self.id() });
        }
        loop {
            let sleep = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(r) if !r.is_zero() => r.min(slice),
                    // Out of time: one last look, so that even a zero
                    // timeout sees a change made before the call.
                    _ => {
                        if changed() && now.get() == since {
                            return Err(Error::Removed { id: self.id() });
                        }
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
                if now.get() == since {
                    return Err(Error::Removed { id: self.id() });
                }
                break;
            }
            if checked.elapsed() >= interval {
                checked = self.fail_if_removed()?;
            }
        }
        Ok(now.get())
    }

    /// [`Error::Removed`] if the object was removed, else when the kernel
    /// said it was not.
    fn fail_if_removed(&self) -> Result<Instant> {
        if self.is_removed()? {
            return Err(Error::Removed { id: self.id() });
        }
        Ok(self.memory.asked.now())
    }
}
