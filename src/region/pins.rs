//! A handle's pin slots and how the threads reading through it borrow them
//! (process-local bookkeeping around the protocol of `pin_slot.rs`).
//!
//! Claiming a slot costs a compare-and-swap on a shared line, so a handle
//! lends each thread that reads through it a slot of its own: after its
//! first read, a thread pins with one compare-and-swap and unpins with one
//! store, and remembers in [`LAST_READ`] which slot and which validated
//! archive it used last. Slots go back to the shared table:
//!
//! - when the thread exits (its `ThreadSlot` is dropped): released at once
//!   if the handle still lives and nothing pins through the slot (a guard
//!   that outlived the thread's bookkeeping keeps it until the handle lends
//!   it again or is dropped);
//! - when the handle is dropped: every slot it still holds;
//! - when another reader, in any process, finds no slot free: it revokes an
//!   idle one (`pin_slot::revoke_idle`), and this handle's thread finds out
//!   at its next pin (`Pin::Lost`) and claims another.
//!
//! So idle threads, and threads that exited, never keep the slots other
//! readers need.
//!
//! Slots claimed by a process belong to it alone: a forked child inherits
//! the handle, its guards and this bookkeeping, but compares the handle's
//! pid with its own and never writes its parent's slots; it reads through
//! slots of its own, claimed for each read.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::pin_slot::{self, Pin, buffer_of, pid_of};
use crate::error::{Error, Result};
use crate::format::{PIN_SLOTS, RegionControl};
use crate::store::ControlLink;
use crate::sync::atomic::Std;
use crate::sync::backoff::Backoff;
use crate::sys::proc;

/// A slot this process claimed, with the word of its claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lease {
    pub(crate) slot: usize,
    pub(crate) claim: u64,
}

/// How long a reader that finds every slot pinned waits for one to be
/// unpinned before it reports [`Error::PinsExhausted`].
const SLOT_WAIT: Duration = Duration::from_secs(1);

/// A buffer (of `count`) that is neither `current` nor pinned by a live
/// reader, nor within its reuse grace (`grace_left`), waiting up to
/// `timeout` for pins to go; then [`Error::ReadersBusy`] naming the pinning
/// processes. Of the free buffers it takes the one whose version is oldest.
pub(super) fn free_buffer(
    ctl: &RegionControl,
    count: usize,
    current: Option<usize>,
    timeout: Duration,
    grace_left: impl Fn(usize) -> Option<Duration>,
) -> Result<usize> {
    let start = Instant::now();
    let deadline = start.checked_add(timeout);
    let mut backoff = Backoff::new();
    let meta = |b: usize| super::buffers::Meta {
        len: &ctl.buffers[b].len,
        version: &ctl.buffers[b].version,
    };
    let scan = || pin_slot::pinned_buffers::<Std>(ctl.pins.iter().map(|p| &p.word));
    loop {
        let ready = |b: usize| grace_left(b).is_none();
        if let Some(b) = super::buffers::choose::<Std>(count, current, meta, scan, ready) {
            return Ok(b);
        }
        // A buffer free but for its grace: the grace passes whatever
        // readers do.
        let pinned = scan();
        let waiting = (0..count)
            .filter(|&b| Some(b) != current && pinned & (1 << b) == 0)
            .filter_map(&grace_left)
            .min();
        if let Some(left) = waiting {
            std::thread::sleep(left);
            continue;
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

/// Claim a free pin slot for this process: reclaiming dead readers' slots
/// if none is free, then revoking an idle one, then waiting a little for
/// one to be unpinned.
#[cold]
fn claim_slot(ctl: &RegionControl) -> Result<Lease> {
    let me = proc::own_pid();
    if me <= 0 || me as u64 > pin_slot::PID_MASK {
        return Err(Error::Unsupported {
            reason: format!("pid {me} does not fit in the 22 bits of a reader pin slot"),
        });
    }
    let start = proc::own_start_time();
    let deadline = Instant::now() + SLOT_WAIT;
    let mut backoff = Backoff::new();
    loop {
        for (slot, pin) in ctl.pins.iter().enumerate() {
            if let Some(claim) = pin_slot::claim::<Std>(&pin.word, &pin.start_time, me, start) {
                return Ok(Lease { slot, claim });
            }
        }
        let freed = reclaim_dead(ctl)
            || ctl
                .pins
                .iter()
                .any(|p| pin_slot::revoke_idle::<Std>(&p.word));
        if Instant::now() >= deadline {
            return Err(Error::PinsExhausted { slots: PIN_SLOTS });
        }
        if !freed {
            backoff.snooze(Some(deadline));
        }
    }
}

/// The pin slots a handle has claimed, lent to the threads reading
/// through it.
pub(crate) struct HandleSlots {
    /// Unique among the handles of this process, never reused.
    pub(super) id: u64,
    /// The process the slots were claimed for (a forked child may not use
    /// them).
    pub(super) pid: i32,
    /// The control block while the handle lives; cut once it released its
    /// slots (the mapping may be gone).
    link: Arc<ControlLink>,
    /// Slots claimed and lent to no live thread. One may still be pinned by
    /// a guard that outlived its thread's bookkeeping: it is lent again
    /// once that guard is gone.
    spare: Mutex<Vec<Lease>>,
    /// Every slot claimed and not given back, released when the handle is
    /// dropped.
    claimed: Mutex<Vec<Lease>>,
}

impl HandleSlots {
    pub(crate) fn new(link: Arc<ControlLink>) -> Arc<HandleSlots> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Arc::new(HandleSlots {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            pid: proc::own_pid(),
            link,
            spare: Mutex::new(Vec::new()),
            claimed: Mutex::new(Vec::new()),
        })
    }

    /// Release every slot this handle claimed. Called by the handle's drop,
    /// while the segment is still attached and no guard lives.
    pub(crate) fn release_all(&self, ctl: &RegionControl) {
        self.link.cut();
        if self.pid != proc::own_pid() {
            return; // a forked child: the slots are its parent's
        }
        for lease in self.claimed.lock().drain(..) {
            pin_slot::release::<Std>(&ctl.pins[lease.slot].word, lease.claim);
        }
        self.spare.lock().clear();
    }

    /// Forget `lease`: it was revoked, or given back.
    fn forget(&self, lease: Lease) {
        self.claimed.lock().retain(|l| *l != lease);
        self.spare.lock().retain(|l| *l != lease);
    }
}

/// A slot lent to this thread by a handle.
struct ThreadSlot {
    cache: Arc<HandleSlots>,
    lease: Lease,
    /// Still this handle's (not revoked).
    held: bool,
}

impl Drop for ThreadSlot {
    fn drop(&mut self) {
        // The thread is exiting (or forgets the slot): forget the fast path
        // through it, and give the slot back, to the shared table if the
        // handle still lives and nothing pins through it.
        let _ = LAST_READ.try_with(|f| {
            if f.get().id == self.cache.id {
                f.set(LastRead::NONE);
            }
        });
        if !self.held || self.cache.pid != proc::own_pid() {
            return;
        }
        // Under the link's lock: the handle cuts it before its mapping goes.
        // Nothing if it is cut: the handle released its slots.
        let _ = self.cache.link.with(|ctl| {
            let word = &ctl.pins[self.lease.slot].word;
            if buffer_of(word.load(Ordering::Acquire)).is_some() {
                // A guard outlived this thread's bookkeeping: lend it again
                // once that guard is gone.
                self.cache.spare.lock().push(self.lease);
                return;
            }
            pin_slot::release::<Std>(word, self.lease.claim);
            self.cache.forget(self.lease);
        });
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

/// A free slot for one read when the fast path did not apply: the thread's
/// own slot of this handle (lent on first use) if it is free, else a slot
/// claimed for this read alone (nested reads, a forked child, a thread
/// being torn down).
#[cold]
pub(super) fn acquire<'a>(ctl: &'a RegionControl, cache: &Arc<HandleSlots>) -> Result<Slot<'a>> {
    if cache.pid == proc::own_pid()
        && let Ok(lent) = THREAD_SLOTS.try_with(|lent| lend(ctl, cache, &mut lent.borrow_mut()))
    {
        let lease = lent?;
        let word = &ctl.pins[lease.slot].word;
        if buffer_of(word.load(Ordering::Relaxed)).is_none() {
            return Ok(Slot {
                word,
                lease,
                lent: true,
            });
        }
        // Pinned by an outer guard of this thread: this read is nested.
    }
    let lease = claim_slot(ctl)?;
    Ok(Slot {
        word: &ctl.pins[lease.slot].word,
        lease,
        lent: false,
    })
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
    lent.retain(|e| e.cache.link.is_live());
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
        held: true,
    });
    Ok(lease)
}

/// The slot `lease` of this thread was revoked: forget it, so that the next
/// read claims another.
#[cold]
pub(super) fn lost(cache: &HandleSlots, lease: Lease) {
    let _ = THREAD_SLOTS.try_with(|lent| {
        let mut lent = lent.borrow_mut();
        if let Some(i) = lent
            .iter()
            .position(|e| e.cache.id == cache.id && e.lease == lease)
        {
            let mut entry = lent.swap_remove(i);
            entry.held = false;
        }
    });
    let _ = LAST_READ.try_with(|f| {
        if f.get().id == cache.id {
            f.set(LastRead::NONE);
        }
    });
    cache.forget(lease);
}

/// A slot for one read, not pinned yet.
pub(super) struct Slot<'a> {
    word: &'a AtomicU64,
    pub(super) lease: Lease,
    /// Whether the slot is the thread's own, lent by the handle.
    pub(super) lent: bool,
}

impl<'a> Slot<'a> {
    /// Pin whatever `current` names.
    #[inline(always)]
    pub(super) fn pin(&self, current: &AtomicU64) -> Pin {
        pin_slot::pin::<Std>(current, self.word, self.lease.claim)
    }

    /// The hold of the pin this slot just made: dropping it unpins.
    pub(super) fn pinned(self) -> PinHold<'a> {
        PinHold::new(self.word, self.lease.claim, self.lent)
    }
}

/// A pinned slot, held by a guard. Dropping it unpins the buffer, and
/// releases the slot if it was claimed for this read alone; in a forked
/// child (another pid than the claim's) it does nothing: the slot is the
/// parent's.
pub(crate) struct PinHold<'a> {
    /// The slot's word.
    pub(super) word: &'a AtomicU64,
    /// The holder's claim (its pid is in it).
    pub(super) claim: u64,
    /// 1 if the slot is the thread's own, lent by the handle, 0 if it was
    /// claimed for this read alone: a whole word rather than a `bool`, so
    /// that a guard is made of whole words, which the compiler moves whole
    /// (a `bool` tail made it copy bytes across the claim's word, read back
    /// before the store that wrote them had left the store buffer, which
    /// cost a read several nanoseconds).
    lent: u64,
}

impl<'a> PinHold<'a> {
    #[inline(always)]
    pub(super) fn new(word: &'a AtomicU64, claim: u64, lent: bool) -> PinHold<'a> {
        PinHold {
            word,
            claim,
            lent: u64::from(lent),
        }
    }

    /// Whether the slot is the thread's own, lent by the handle.
    #[inline(always)]
    pub(super) fn lent(&self) -> bool {
        self.lent != 0
    }
}

impl Drop for PinHold<'_> {
    #[inline]
    fn drop(&mut self) {
        if pid_of(self.claim) != proc::own_pid() {
            return;
        }
        pin_slot::unpin::<Std>(self.word, self.claim);
        if !self.lent() {
            pin_slot::release::<Std>(self.word, self.claim);
        }
    }
}
