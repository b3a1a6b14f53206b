//! The write lock: the robust process-shared mutex in the header. A writer
//! that finds the previous owner dead marks the mutex consistent, counts a
//! recovery and wakes every waiter (the dead one may have committed without
//! waking anyone). The wake after a commit happens before the unlock
//! (`WriteGuard::committed`), so a writer that dies between its commit and
//! its wake dies holding the lock.
#![allow(unsafe_code)]

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
        if self.memory.is_read_only() {
            return Err(Error::ReadOnly {
                id: self.memory.id(),
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
                    id: self.memory.id(),
                    source,
                });
            }
        }
        let guard = WriteGuard {
            store: self,
            _not_send: std::marker::PhantomData,
        };
        if super::life::removal::removed(h) {
            return Err(Error::Removed {
                id: self.memory.id(),
            });
        }
        Ok(guard)
    }
}

/// The write lock, held. Borrowing the store, it keeps the segment attached;
/// it unlocks on drop, on the thread that locked (it is not `Send`).
pub struct WriteGuard<'a> {
    store: &'a Store,
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
        // SAFETY: this guard's thread locked the mutex in Store::lock and
        // has not unlocked it (the guard is not Send and unlocks once).
        unsafe { mutex::unlock(self.store.header().mutex.0.get().cast()) }
    }
}
