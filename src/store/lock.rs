//! The write lock: the robust process-shared mutex in the header. A writer
//! that finds the previous owner dead marks the mutex consistent, counts a
//! recovery and wakes every waiter (the dead one may have committed without
//! waking anyone). The wake after a commit happens before the unlock
//! (`WriteGuard::committed`), so a writer that dies between its commit and
//! its wake dies holding the lock.

use std::sync::atomic::Ordering;

use super::Store;
use super::wait::Futex;
use crate::error::{Error, Result};
use crate::sync::atomic::Std;
use crate::sync::notify;
use crate::sys::mutex;

impl Store {
    /// Take the write lock. A lock whose owner died is recovered: marked
    /// consistent, counted, and every waiter woken, since the dead owner may
    /// have committed without waking anyone. An object marked removed
    /// (`life/removal.rs`) is [`Error::Removed`]: nothing is written into an
    /// object no opener can reach any more.
    pub fn lock(&self) -> Result<WriteGuard<'_>> {
        let mutex = self.writable_mutex()?;
        let locked = mutex.lock().map_err(|source| self.lock_error(source))?;
        self.locked(locked)
    }

    /// As [`lock`](Self::lock), without waiting: [`Error::WriteLocked`] if
    /// a live writer holds the lock.
    pub fn try_lock(&self) -> Result<WriteGuard<'_>> {
        let mutex = self.writable_mutex()?;
        match mutex.try_lock() {
            Ok(Some(locked)) => self.locked(locked),
            Ok(None) => Err(Error::WriteLocked {
                id: self.memory.id(),
            }),
            Err(source) => Err(self.lock_error(source)),
        }
    }

    fn writable_mutex(&self) -> Result<mutex::Mutex<'_>> {
        // Not `ok_or`: an error made and dropped on every lock costs a call.
        self.mutex().ok_or_else(|| Error::ReadOnly {
            id: self.memory.id(),
        })
    }

    fn lock_error(&self, source: std::io::Error) -> Error {
        Error::Lock {
            id: self.memory.id(),
            source,
        }
    }

    /// The guard of a lock just taken: a dead owner's recovery counted and
    /// its waiters woken, and a removed object refused.
    fn locked<'a>(
        &'a self,
        (how, locked): (mutex::Locked, mutex::MutexGuard<'a>),
    ) -> Result<WriteGuard<'a>> {
        let h = self.header();
        if how == mutex::Locked::Recovered {
            h.recoveries.fetch_add(1, Ordering::Relaxed);
            notify::wake::<Std, _>(&h.notify, &Futex);
        }
        let guard = WriteGuard {
            store: self,
            _locked: locked,
        };
        guard.removed()?;
        Ok(guard)
    }
}

/// The write lock, held. Borrowing the store, it keeps the segment attached;
/// it unlocks on drop, on the thread that locked (it is not `Send`).
pub struct WriteGuard<'a> {
    store: &'a Store,
    /// Unlocks the mutex when dropped.
    _locked: mutex::MutexGuard<'a>,
}

impl WriteGuard<'_> {
    /// Whether the object was marked removed since the lock was taken: a
    /// writer that keeps the lock (a lease) looks before each commit.
    #[inline]
    pub fn removed(&self) -> Result<()> {
        if super::life::removal::removed(self.store.header()) {
            return Err(Error::Removed {
                id: self.store.memory.id(),
            });
        }
        Ok(())
    }

    /// Called right after the store that commits: wake the waiters, if any
    /// announced themselves, before the lock is released (a writer that
    /// dies before waking them dies holding the lock, and the next one
    /// wakes them). A commit with nobody waiting makes no system call.
    #[inline]
    pub fn committed(&self) {
        notify::after_commit::<Std, _>(&self.store.header().notify, &Futex);
    }
}
