//! A read-write handle's writes: `publish` and `publish_bytes`. Under the
//! write lock, a publish chooses a buffer that is neither current nor
//! pinned by a live reader nor within the handle's reuse grace
//! (`pins::free_buffer`), fills it, and makes it current through
//! `buffers::publish`, whose argument is at the top of `buffers.rs`.
//!
//! Writers fill a chosen buffer through a `&mut [u8]` (rkyv's serialiser),
//! which `archive.rs` makes: within this mapping nothing else reads or
//! writes the buffer meanwhile (reads of this handle pin first, and a
//! pinned buffer is never chosen); a read-only handle of this process has a
//! mapping of its own, and copies with atomic loads, as do readers of other
//! processes.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rkyv::Archive;
use rkyv::rancor;
use rkyv::ser::allocator::Arena;
use rkyv::ser::writer::Buffer;

use super::{Publishable, Readable, RegionSettings, SharedRegion, archive, buffers, pins};
use crate::error::{Error, Result};
use crate::format::Current;
use crate::store::{ReadWrite, WriteGuard};
use crate::sync::atomic::Std;

/// What a read-write handle keeps for publishing.
pub(super) struct Writer {
    /// rkyv's scratch space, reused across publishes.
    arena: Mutex<Arena>,
    publish_timeout: Duration,
    /// How long a buffer that stopped being current is left alone before a
    /// publish reuses it (for copying readers slower than the writer).
    reuse_grace: Duration,
    /// When each buffer stopped being current, as this handle saw it.
    retired: Mutex<Retired>,
}

/// When the buffers stopped being current, as one handle saw it: exactly
/// for the commits it made; for a commit another process made, the moment
/// this handle first saw it.
struct Retired {
    /// The `current` word this handle last saw or made.
    seen: u64,
    /// When each buffer stopped being current.
    at: Vec<Option<Instant>>,
}

impl Writer {
    pub(super) fn new(settings: &RegionSettings, buffers: usize) -> Writer {
        Writer {
            arena: Mutex::new(Arena::new()),
            publish_timeout: settings.publish_timeout,
            reuse_grace: settings.reuse_grace,
            retired: Mutex::new(Retired {
                seen: 0,
                at: vec![None; buffers],
            }),
        }
    }
}

/// The writing methods.
impl<T: Archive> SharedRegion<T, ReadWrite> {
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
                // The buffer is neither current nor pinned by a live reader,
                // and we hold the write lock.
                let mut arena = self.writer().arena.lock();
                archive::serialize_into(&self.store, &guard, buffer, capacity, value, &mut arena)
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
    /// serialised into scratch buffers of doubling size, up to 64 times the
    /// capacity (at least 1 MiB, at most 1 GiB; `None` beyond).
    fn measure(&self, value: &T) -> Option<usize>
    where
        T: Publishable,
    {
        /// How many times the capacity the last scratch buffer may hold.
        const TIMES: usize = 64;
        /// The last scratch buffer's size, at least.
        const LEAST: usize = 1 << 20;
        /// The last scratch buffer's size, at most.
        const MOST: usize = 1 << 30;
        /// Half the first scratch buffer's size, at least.
        const FIRST: usize = 2048;
        let limit = self.capacity().saturating_mul(TIMES).clamp(LEAST, MOST);
        let mut arena = self.writer().arena.lock();
        let mut size = self.capacity().clamp(FIRST, MOST);
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
        self.publish_checked(archive, archive::check_archive::<T>)
    }

    /// Make `archive` current once `check` accepted it, copied into the
    /// buffer (aligned as a buffer is); returns the new version. For
    /// [`publish_bytes`](Self::publish_bytes), and for raw handles, which
    /// check by the stored schema.
    pub(crate) fn publish_checked(
        &self,
        archive: &[u8],
        check: impl FnOnce(&[u8]) -> Result<()>,
    ) -> Result<u64> {
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
                // As in publish: the buffer is ours alone until made current,
                // and holds at least `capacity >= archive.len()` bytes.
                archive::copy_into(&self.store, &guard, buffer, archive, check)
            },
        )?;
        Ok(self.committed(&guard, next))
    }

    /// After the commit of version `next`: wake the waiters, and note when
    /// the buffer that was current stopped being so (the reuse grace).
    fn committed(&self, guard: &WriteGuard<'_>, next: u64) -> u64 {
        guard.committed();
        if !self.writer().reuse_grace.is_zero() {
            let mut retired = self.writer().retired.lock();
            if next > 1 {
                // `seen` was read from shared memory: a peer may have
                // written a buffer past the count there, which no reader
                // can pin, so there is nothing to note.
                let before = Current::from_raw(retired.seen).buffer();
                if let Some(at) = retired.at.get_mut(before) {
                    *at = Some(Instant::now());
                }
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
        let grace = self.writer().reuse_grace;
        let mut retired = self.writer().retired.lock();
        if !grace.is_zero() && retired.seen != now {
            // Another process committed since this handle last did: when
            // its buffers stopped being current is not known here; count
            // them from now.
            let at = Instant::now();
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
        pins::free_buffer(
            ctl,
            count,
            current,
            self.writer().publish_timeout,
            grace_left,
        )
    }
}
