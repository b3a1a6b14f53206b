//! Waiting for a change in an async task (feature `tokio`): a
//! [`Subscription`]'s descriptor registered with tokio's reactor
//! (`AsyncFd`), so the task needs no thread of its own. Dropping the future
//! (a `select!` that took another branch, a task aborted) drops its
//! subscription: nothing is lost, since the next call starts from the
//! version the caller passes.
#![allow(unsafe_code)]

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::{Subscription, Watchable};
use crate::cell::SharedCell;
use crate::error::{Error, Result};
use crate::raw::RawObject;
use crate::region::SharedRegion;
use crate::store::Access;

/// A stream of one object's versions for an async task, like tokio's
/// `watch::Receiver`: each [`changed`](Self::changed) waits for a version
/// other than the last it returned. Made by `changes()` on a cell or a
/// region.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> shmstore::Result<()> {
/// use shmstore::{Key, SharedCell};
///
/// let cell = SharedCell::create(Key::PRIVATE, 0u64)?;
/// let mut changes = cell.changes()?;
/// cell.store(1)?;
/// assert_eq!(changes.changed().await?, 1);
/// cell.remove()?;
/// assert!(matches!(changes.changed().await, Err(shmstore::Error::Removed { .. })));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Changes {
    fd: AsyncFd<Subscription>,
    /// The object's id once its removal was reported: every later call
    /// returns `Error::Removed` at once.
    removed: Option<i32>,
}

impl Changes {
    /// Watch `object` for versions other than `since`. Needs a tokio
    /// runtime with I/O enabled (`enable_io` or `enable_all`).
    pub(crate) fn since(object: &impl Watchable, since: u64) -> Result<Changes> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Unsupported {
                reason: "waiting with `changed().await` outside a tokio runtime".into(),
            });
        }
        let mut sub = Subscription::new()?;
        sub.add_since(object, since)?;
        // tokio panics, where it has no error to return, when the runtime
        // was built without I/O: turned into an error here (in builds that
        // unwind; tokio's own panic message still reaches the panic hook).
        let registered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: the descriptor is the subscription's eventfd, which the
            // subscription keeps open (it holds its inbox) and never replaces
            // for as long as it lives, and it lives inside the AsyncFd, which
            // is never taken apart (`into_inner`).
            unsafe { AsyncFd::register_with_interest(sub, Interest::READABLE) }
        }))
        .map_err(|_| Error::Unsupported {
            reason: "waiting with `changed().await` on a tokio runtime built without I/O \
                     (call `enable_io` or `enable_all` on its builder)"
                .into(),
        })?;
        let fd = registered.map_err(|e| Error::Os {
            target: None,
            op: "register an eventfd with tokio",
            source: e.into_parts().1,
        })?;
        Ok(Changes { fd, removed: None })
    }

    /// What `changed(since)` on a cell or a region does: `now` at once if
    /// it differs from `since`, else the first version of a stream from
    /// `since`.
    async fn once(object: &impl Watchable, now: u64, since: u64) -> Result<u64> {
        if now != since {
            return Ok(now);
        }
        Changes::since(object, since)?.changed().await
    }

    /// Wait for the next version (the first call: any version other than
    /// the one the stream started from), and return it; or
    /// [`Error::Removed`] once the object is removed, then on every call.
    /// Cancel-safe: a call dropped before it returns loses nothing.
    pub async fn changed(&mut self) -> Result<u64> {
        if let Some(id) = self.removed {
            return Err(Error::Removed { id });
        }
        loop {
            let mut ready = self.fd.readable_mut().await.map_err(|source| Error::Os {
                target: None,
                op: "wait for an eventfd",
                source,
            })?;
            let changes = ready.get_inner_mut().changes()?;
            // One object: at most one change, the latest version.
            match changes.into_iter().last() {
                Some(change) => {
                    if let Err(Error::Removed { id }) = change.version {
                        self.removed = Some(id);
                    }
                    return change.version;
                }
                None => ready.clear_ready(),
            }
        }
    }
}

/// Async waiting (feature `tokio`).
impl<T: bytemuck::Pod, A: Access> SharedCell<T, A> {
    /// Wait until the version differs from `since` and return it, like
    /// [`wait_for_change`](Self::wait_for_change) with no timeout, without
    /// blocking the thread: `Err(Error::Removed)` once the cell is removed.
    /// Cancel-safe. Wrap it in `tokio::time::timeout` for a deadline.
    /// Needs a tokio runtime with I/O enabled (else `Error::Unsupported`).
    ///
    /// Each call that must wait subscribes afresh; where no other
    /// subscription is open in the process, that starts the watcher thread
    /// and joins it on return (tens of microseconds). A task that waits in
    /// a loop keeps a [`changes`](Self::changes) stream instead.
    pub async fn changed(&self, since: u64) -> Result<u64> {
        Changes::once(self, self.version(), since).await
    }

    /// A [`Changes`] stream of this cell's versions from the version now.
    pub fn changes(&self) -> Result<Changes> {
        Changes::since(self, self.version())
    }
}

/// Async waiting (feature `tokio`).
impl<T: rkyv::Archive, A: Access> SharedRegion<T, A> {
    /// Wait until the version differs from `since` and return it, like
    /// [`wait_for_change`](Self::wait_for_change) with no timeout, without
    /// blocking the thread: `Err(Error::Removed)` once the region is
    /// removed. Cancel-safe. A [`RegionRef`](crate::RegionRef) is not
    /// `Send`, so do not hold one across this `.await` in a spawned task:
    /// read, copy out what you need, drop the guard, then await.
    /// Needs a tokio runtime with I/O enabled (else `Error::Unsupported`).
    ///
    /// Each call that must wait subscribes afresh; where no other
    /// subscription is open in the process, that starts the watcher thread
    /// and joins it on return (tens of microseconds). A task that waits in
    /// a loop keeps a [`changes`](Self::changes) stream instead.
    pub async fn changed(&self, since: u64) -> Result<u64> {
        Changes::once(self, self.version(), since).await
    }

    /// A [`Changes`] stream of this region's versions from the version now.
    pub fn changes(&self) -> Result<Changes> {
        Changes::since(self, self.version())
    }
}

/// Async waiting (feature `tokio`).
impl<A: Access> RawObject<A> {
    /// Wait until the version differs from `since` and return it, as
    /// [`SharedCell::changed`] does: `Err(Error::Removed)` once the object
    /// is removed. Cancel-safe.
    pub async fn changed(&self, since: u64) -> Result<u64> {
        Changes::once(self, self.version(), since).await
    }

    /// A [`Changes`] stream of this object's versions from `since`.
    pub fn changes_since(&self, since: u64) -> Result<Changes> {
        Changes::since(self, since)
    }
}
