//! Waiting for a change of an object's version: the event count of
//! `sync/notify.rs` on the header's `notify` word, in slices, with a
//! deadline. A read-only attachment cannot announce itself, so it polls in
//! short slices.
//!
//! **Removal.** A waiter whose object is removed (`IPC_RMID`, by `remove()`,
//! the `shmstore` command or `ipcrm`) returns [`Error::Removed`]: it asks the
//! kernel (`IPC_STAT`) when it starts and then whenever a slice passed, or
//! it was woken, without a change, at most every [`REMOVAL_CHECK`]. A
//! `remove()` through a handle also wakes every waiter, so they see it at
//! once; an `ipcrm` is seen within a slice (250 ms, or [`REMOVAL_CHECK`] for
//! a read-only waiter). Loads, reads and stores never ask.

use std::time::{Duration, Instant};

/// How often, at most, a waiter asks the kernel whether its object was
/// removed while nothing changed.
pub const REMOVAL_CHECK: Duration = Duration::from_millis(100);

use super::Store;
use crate::error::{Error, Result, Target};
use crate::sync::atomic::Std;
use crate::sync::notify;
use crate::sys::futex::Futex;

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
            Duration::from_millis(2)
        };
        let mut now = since;
        let mut changed = || {
            now = version();
            now != since
        };
        if !changed() {
            self.fail_if_removed()?;
        }
        let mut checked = Instant::now();
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
            if checked.elapsed() >= REMOVAL_CHECK.min(slice) {
                self.fail_if_removed()?;
                checked = Instant::now();
            }
        }
        Ok(now)
    }

    /// [`Error::Removed`] if the object was removed.
    fn fail_if_removed(&self) -> Result<()> {
        if self.is_removed()? {
            return Err(Error::Removed { id: self.id() });
        }
        Ok(())
    }
}
