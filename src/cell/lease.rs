//! A cell's lease: the write lock taken once and kept, so that one writer
//! stores without locking and unlocking around each value.
//!
//! **Nothing new for readers or for recovery.** A lease is the write lock
//! held for a long time. Each leased store is the ring's write
//! (`ring.rs`) followed by the waiters' wake (`sync/notify.rs`), the same
//! steps, in the same order, as a `store` makes between its lock and its
//! unlock, so everything those protocols show for a writer holding the lock
//! holds for the lease at every instruction: readers never wait on it and
//! never copy a torn value, and a leaseholder that dies (killed at any step,
//! between stores or inside one) leaves the robust mutex to the next
//! locker, which recovers it as after any writer's death: it counts the
//! recovery and wakes every waiter, since the dead writer may have
//! committed without waking them. A leaseholder that is paused keeps the
//! lock: other writers wait in `store` or `lease` (or are told
//! [`Error::WriteLocked`] by `try_lease`) and readers go on.
//!
//! **Per store, what the lock no longer gives.** A store looks at two
//! things the lock used to look at when it was taken: whether the object
//! was marked removed since (then [`Error::Removed`], and nothing is
//! written), and whether this is still the process that took the lease (a
//! fork's child inherits the lease's memory but not the lock, which the
//! parent's thread owns: [`Error::Forked`]). Nor does a child's drop
//! unlock it: a child of the bare fork system call has the parent thread's
//! id where pthread looks for its own, so the lease forgets its guard there
//! instead.
//!
//! **A lease that is leaked.** A `MutexGuard` must not be forgotten while
//! the memory is mapped: the thread's robust list still names the mutex,
//! and the kernel writes to it when the thread exits. A lease keeps a share
//! of the attachment (`Store::share`), so forgetting a lease forgets that
//! share too, and the segment stays attached in this process for good: the
//! kernel's write at the thread's exit lands in the mutex, which the next
//! locker then recovers.

use std::marker::PhantomData;

use bytemuck::Pod;

use super::SharedCell;
use crate::error::{Error, Result};
use crate::store::{Store, WriteGuard};
use crate::sys::proc;

/// The write lock of a [`SharedCell`], held until dropped: stores through
/// it take no lock. Made by [`SharedCell::lease`] or
/// [`SharedCell::try_lease`].
///
/// Other writers wait while a lease is held (their `store`, `update` and
/// `lease` block, `try_lease` fails with [`Error::WriteLocked`]); readers
/// are never held up. The thread that holds it gets [`Error::Lock`] from
/// the cell's own `store`, `update` and `lease` (the lock is its already).
/// If the leaseholder's process dies, the next writer
/// takes the lock over and the cell holds the last value the leaseholder
/// committed, whole. A lease is not `Send`: the lock belongs to the thread
/// that took it.
///
/// ```
/// use shmstore::{Key, SharedCell};
///
/// let cell = SharedCell::create(Key::PRIVATE, [0u64; 8])?;
/// let mut lease = cell.lease()?;
/// for i in 1..=1000 {
///     lease.store([i; 8])?;
/// }
/// std::thread::scope(|s| {
///     // Another writer, here a thread, is refused while the lease is held.
///     let other = s.spawn(|| cell.try_lease().map(drop));
///     assert!(matches!(other.join().unwrap(), Err(shmstore::Error::WriteLocked { .. })));
/// });
/// drop(lease);
/// assert_eq!(cell.load(), [1000; 8]);
/// cell.store([0; 8])?;
/// cell.remove()?;
/// # Ok::<(), shmstore::Error>(())
/// ```
pub struct CellLease<'a, T: Pod> {
    cell: &'a SharedCell<T>,
    /// Always `Some` but in `drop`, which forgets it in a fork's child.
    guard: Option<WriteGuard<'a>>,
    /// The process that took the lease.
    pid: i32,
    /// Keeps the segment attached if the lease is forgotten (see the
    /// module's comment).
    _attached: Store,
    _t: PhantomData<T>,
}

impl<T: Pod> SharedCell<T> {
    /// Take the write lock and keep it until the lease is dropped, waiting
    /// for the writer that holds it, if any. A lock whose holder died is
    /// recovered, as by [`store`](Self::store). Fails with
    /// [`Error::Removed`] once the object is marked removed.
    pub fn lease(&self) -> Result<CellLease<'_, T>> {
        let guard = self.store.lock()?;
        crate::crash::point("lease.after_lock");
        Ok(self.leased(guard))
    }

    /// As [`lease`](Self::lease), without waiting: [`Error::WriteLocked`]
    /// if a live writer holds the lock.
    pub fn try_lease(&self) -> Result<CellLease<'_, T>> {
        let guard = self.store.try_lock()?;
        crate::crash::point("lease.after_lock");
        Ok(self.leased(guard))
    }

    fn leased<'a>(&'a self, guard: WriteGuard<'a>) -> CellLease<'a, T> {
        CellLease {
            cell: self,
            guard: Some(guard),
            pid: proc::own_pid(),
            _attached: self.store.share(),
            _t: PhantomData,
        }
    }
}

impl<T: Pod> CellLease<'_, T> {
    /// Store `value` as the next version, waking the processes waiting for
    /// a change; no lock is taken. Fails with [`Error::Removed`] once the
    /// object is marked removed, and with [`Error::Forked`] in a fork's
    /// child; nothing is written then.
    #[inline]
    pub fn store(&mut self, value: T) -> Result<()> {
        let guard = self.may_write()?;
        self.cell.commit_next(&value);
        guard.committed();
        Ok(())
    }

    /// Change the value and return what `f` returns, as
    /// [`SharedCell::update`] does, without taking the lock.
    pub fn update<R>(&mut self, f: impl FnOnce(&mut T) -> R) -> Result<R> {
        let guard = self.may_write()?;
        let result = self.cell.update_locked(f);
        guard.committed();
        Ok(result)
    }

    /// The cell the lease writes.
    pub fn cell(&self) -> &SharedCell<T> {
        self.cell
    }

    #[inline]
    fn may_write(&self) -> Result<&WriteGuard<'_>> {
        if proc::own_pid() != self.pid {
            return Err(Error::Forked { made_in: self.pid });
        }
        // Taken only by `drop`, so always there; were it not, the lock would
        // not be this lease's to write under.
        let Some(guard) = &self.guard else {
            return Err(Error::Forked { made_in: self.pid });
        };
        guard.removed()?;
        Ok(guard)
    }
}

impl<T: Pod> Drop for CellLease<'_, T> {
    /// Unlock, unless this is a fork's child: the lock is the parent's
    /// thread's. A child of the C library's fork would only be refused by
    /// the error-checking mutex, but one of the bare fork system call keeps
    /// the parent thread's id where pthread looks for its own, and its
    /// unlock would let the parent's lock go while the parent stores.
    fn drop(&mut self) {
        if proc::own_pid() != self.pid {
            std::mem::forget(self.guard.take());
        }
    }
}
