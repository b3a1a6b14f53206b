//! A handle's pin slots and how the threads reading through it borrow them
//! (process-local bookkeeping around the protocol of `pin_slot.rs`).
//!
//! Claiming a slot costs a compare-and-swap on a shared line, so a handle
//! keeps the slots it claimed and lends one to each thread that reads
//! through it: after its first read, a thread pins with one swap and unpins
//! with one store, and remembers in [`LAST_READ`] which slot and which validated
//! archive it used last. The handle releases its slots when it is dropped.
//! A thread that exits gives its slot back to the handle in private memory
//! only (the handle, and with it the mapping, may be gone); the slot is
//! lent again only once no guard pins through it, which matters when a
//! guard outlives the thread's own bookkeeping in a thread-local destructor.
//!
//! Slots claimed by a process belong to it alone: a forked child inherits
//! the handle, its guards and this bookkeeping, but compares the handle's
//! pid with its own and never writes its parent's slots; it reads through
//! slots of its own, claimed for each read.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::pin_slot::{self, buffer_of, pid_of};
use crate::error::{Error, Result};
use crate::format::{PIN_SLOTS, RegionControl};
use crate::sync::atomic::Std;
use crate::sync::backoff::Backoff;
use crate::sys::proc;

/// A slot this process claimed, with the word of its claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lease {
    pub(crate) slot: usize,
    pub(crate) claim: u64,
}

/// A buffer (of `count`) that is neither `current` nor pinned by a live
/// reader, waiting up to `timeout` for one; then [`Error::ReadersBusy`]
/// naming the pinning processes. Of the free buffers it takes the one
/// written last, whose bytes are most likely still in cache.
pub(super) fn free_buffer(
    ctl: &RegionControl,
    count: usize,
    current: Option<usize>,
    timeout: Duration,
) -> Result<usize> {
    let start = Instant::now();
    let deadline = start.checked_add(timeout);
    let mut backoff = Backoff::new();
    loop {
        let pinned =
            pin_slot::pinned_buffers::<Std>(&ctl.pin_high, ctl.pins.iter().map(|p| &p.word));
        let free = (0..count)
            .filter(|&b| Some(b) != current && pinned & (1 << b) == 0)
            .max_by_key(|&b| ctl.buffers[b].version.load(Ordering::Relaxed));
        if let Some(b) = free {
            return Ok(b);
        }
        if reclaim_dead(ctl) {
            continue;
        }
        let waited = start.elapsed();
        if waited >= timeout {
            let mut pids: Vec<i32> = ctl
                .pins
                .iter()
                .map(|p| p.word.load(Ordering::Relaxed))
                .filter(|&w| buffer_of(w).is_some())
                .map(pid_of)
                .collect();
            pids.sort_unstable();
            pids.dedup();
            return Err(Error::ReadersBusy { pids, waited });
        }
        backoff.snooze(deadline);
    }
}

/// Free the slots of processes that are gone (or whose pid now names
/// another process), pinning or not. Returns whether any was freed.
pub(super) fn reclaim_dead(ctl: &RegionControl) -> bool {
    let mut freed = false;
    for pin in &ctl.pins {
        freed |= pin_slot::reclaim_if_dead::<Std>(&pin.word, &pin.start_time, |pid, start| {
            proc::same_process_alive(pid, start)
        });
    }
    freed
}

/// Claim a free pin slot for this process, reclaiming dead readers' slots
/// if none is free.
#[cold]
fn claim_slot(ctl: &RegionControl) -> Result<Lease> {
    let me = proc::own_pid();
    if me <= 0 || me as u64 > pin_slot::PID_MASK {
        return Err(Error::Os {
            target: None,
            op: "claim a pin slot",
            source: std::io::Error::other(format!("pid {me} does not fit in 22 bits")),
        });
    }
    let start = proc::own_start_time();
    for round in 0..2 {
        for (slot, pin) in ctl.pins.iter().enumerate() {
            if let Some(claim) = pin_slot::claim::<Std>(&pin.word, &pin.start_time, me, start) {
                pin_slot::raise_high::<Std>(&ctl.pin_high, slot);
                return Ok(Lease { slot, claim });
            }
        }
        if round == 0 {
            reclaim_dead(ctl);
        }
    }
    Err(Error::PinsExhausted { slots: PIN_SLOTS })
}

/// The pin slots a handle has claimed, lent to the threads reading
/// through it.
pub(crate) struct HandleSlots {
    /// Unique among the handles of this process, never reused.
    pub(super) id: u64,
    /// The process the slots were claimed for (a forked child may not use
    /// them).
    pub(super) pid: i32,
    /// Slots claimed and lent to no live thread. One may still be pinned by
    /// a guard that outlived its thread's bookkeeping: it is lent again
    /// once that guard is gone.
    spare: Mutex<Vec<Lease>>,
    /// Every slot claimed, released when the handle is dropped.
    claimed: Mutex<Vec<Lease>>,
    /// Set when the handle has released its slots.
    dropped: AtomicBool,
}

impl HandleSlots {
    pub(crate) fn new() -> Arc<HandleSlots> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Arc::new(HandleSlots {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            pid: proc::own_pid(),
            spare: Mutex::new(Vec::new()),
            claimed: Mutex::new(Vec::new()),
            dropped: AtomicBool::new(false),
        })
    }

    /// Release every slot this handle claimed. Called by the handle's drop,
    /// while the segment is still attached and no guard lives.
    pub(crate) fn release_all(&self, ctl: &RegionControl) {
        self.dropped.store(true, Ordering::SeqCst);
        if self.pid != proc::own_pid() {
            return; // a forked child: the slots are its parent's
        }
        for lease in self.claimed.lock().drain(..) {
            pin_slot::release::<Std>(&ctl.pins[lease.slot].word, lease.claim);
        }
        self.spare.lock().clear();
    }
}

/// A slot lent to this thread by a handle.
struct ThreadSlot {
    cache: Arc<HandleSlots>,
    lease: Lease,
}

impl Drop for ThreadSlot {
    fn drop(&mut self) {
        // The thread is exiting (or the handle is gone): forget the fast
        // path through this slot, and give the slot back to its handle, in
        // private memory, touching no segment.
        let _ = LAST_READ.try_with(|f| {
            if f.get().id == self.cache.id {
                f.set(LastRead::NONE);
            }
        });
        if !self.cache.dropped.load(Ordering::SeqCst) {
            self.cache.spare.lock().push(self.lease);
        }
    }
}

/// What a thread remembers of its last read, for the next one: through
/// which handle and slot, and the archive (its `current` word and length)
/// that handle validated.
#[derive(Debug, Clone, Copy)]
pub(super) struct LastRead {
    pub(super) id: u64,
    pub(super) lease: Lease,
    pub(super) current: u64,
    pub(super) len: usize,
}

impl LastRead {
    const NONE: LastRead = LastRead {
        id: 0,
        lease: Lease { slot: 0, claim: 0 },
        current: 0,
        len: 0,
    };
}

thread_local! {
    /// The slots lent to this thread, one per handle it read through.
    static THREAD_SLOTS: RefCell<Vec<ThreadSlot>> = const { RefCell::new(Vec::new()) };
    /// This thread's last read.
    static LAST_READ: Cell<LastRead> = const { Cell::new(LastRead::NONE) };
}

/// This thread's last read through the handle whose cache is `cache`, if
/// its slot is the thread's own and free: the fast path.
#[inline(always)]
pub(super) fn last_read(cache: &HandleSlots) -> Option<LastRead> {
    let f = LAST_READ.try_with(Cell::get).ok()?;
    (f.id == cache.id && cache.pid == proc::own_pid()).then_some(f)
}

/// Remember this thread's read through its own slot.
pub(super) fn remember(fast: LastRead) {
    let _ = LAST_READ.try_with(|f| f.set(fast));
}

/// A free slot for one read when the fast path did not apply, and its
/// index: the thread's own slot of this handle (lent on first use) if it is
/// free, else a slot claimed for this read alone (nested reads, a forked
/// child, a thread being torn down).
#[cold]
pub(super) fn acquire<'a>(
    ctl: &'a RegionControl,
    cache: &Arc<HandleSlots>,
) -> Result<(PinHold<'a>, usize)> {
    if cache.pid == proc::own_pid()
        && let Ok(lent) = THREAD_SLOTS.try_with(|lent| lend(ctl, cache, &mut lent.borrow_mut()))
    {
        let lease = lent?;
        let word = &ctl.pins[lease.slot].word;
        if buffer_of(word.load(Ordering::Relaxed)).is_none() {
            let hold = PinHold {
                word,
                claim: lease.claim,
                lent: true,
            };
            return Ok((hold, lease.slot));
        }
        // PinnedArchive by an outer guard of this thread: this read is nested.
    }
    let lease = claim_slot(ctl)?;
    let hold = PinHold {
        word: &ctl.pins[lease.slot].word,
        claim: lease.claim,
        lent: false,
    };
    Ok((hold, lease.slot))
}

/// This thread's slot of `cache`'s handle, claimed or taken from the
/// handle's spares on first use.
#[cold]
fn lend(
    ctl: &RegionControl,
    cache: &Arc<HandleSlots>,
    lent: &mut Vec<ThreadSlot>,
) -> Result<Lease> {
    if let Some(entry) = lent.iter().find(|e| e.cache.id == cache.id) {
        return Ok(entry.lease);
    }
    lent.retain(|e| !e.cache.dropped.load(Ordering::Relaxed));
    let spare = {
        let mut spare = cache.spare.lock();
        let free = spare
            .iter()
            .position(|l| buffer_of(ctl.pins[l.slot].word.load(Ordering::Acquire)).is_none());
        free.map(|i| spare.swap_remove(i))
    };
    let lease = match spare {
        Some(lease) => lease,
        None => {
            let lease = claim_slot(ctl)?;
            cache.claimed.lock().push(lease);
            lease
        }
    };
    lent.push(ThreadSlot {
        cache: cache.clone(),
        lease,
    });
    Ok(lease)
}

/// A slot held for one read. Dropping it unpins the buffer, and releases
/// the slot if it was claimed for this read alone; in a forked child
/// (another pid than the claim's) it does nothing: the slot is the
/// parent's.
pub(crate) struct PinHold<'a> {
    /// The slot's word.
    pub(super) word: &'a AtomicU64,
    /// The holder's claim (its pid is in it).
    pub(super) claim: u64,
    /// Whether the slot is the thread's own, lent by the handle.
    pub(super) lent: bool,
}

impl PinHold<'_> {
    /// Pin whatever `current` names: its word, or `None` if a commit came
    /// in between.
    #[inline(always)]
    pub(super) fn pin(&self, current: &AtomicU64) -> Option<u64> {
        pin_slot::pin::<Std>(current, self.word, self.claim)
    }
}

impl Drop for PinHold<'_> {
    #[inline]
    fn drop(&mut self) {
        if pid_of(self.claim) != proc::own_pid() {
            return;
        }
        if self.lent {
            pin_slot::unpin::<Std>(self.word, self.claim);
        } else {
            pin_slot::release::<Std>(self.word, self.claim);
        }
    }
}
