//! The reader pins of a region: a hazard-pointer protocol over 128 slots in
//! the control block. A reader claims a slot (compare-and-swap of its pid
//! into a free one, then its start time), stores the buffer it is about to
//! read and re-checks that the buffer is still current; a writer takes only
//! buffers no slot names. Slots of processes that are gone (pid dead, or
//! alive with another start time) are reclaimed: buffer cleared first, then
//! the pid, so no live reader can claim a slot in between.
//!
//! Claiming a slot costs a compare-and-swap on a shared line, so a handle
//! keeps the slots it claimed and lends one to each thread that reads
//! through it: after its first read, a thread pins with one store and
//! unpins with another. The handle releases its slots when it is dropped;
//! a thread that exits gives its slot back to the handle (in private
//! memory, so it is safe even if the handle is gone).

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::header::{MAX_SLOTS, PIN_SLOTS, RegionControl};
use crate::sync::process;

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
    let mut start = None;
    loop {
        let mut pinned = 0u64;
        for pin in scanned(ctl) {
            let b = pin.buf.load(Ordering::SeqCst);
            if (1..=MAX_SLOTS).contains(&b) {
                pinned |= 1 << (b - 1);
            }
        }
        let free = (0..count)
            .filter(|&b| Some(b) != current && pinned & (1 << b) == 0)
            .max_by_key(|&b| ctl.buffers[b].version.load(Ordering::Relaxed));
        if let Some(b) = free {
            return Ok(b);
        }
        if reclaim_dead(ctl) {
            continue;
        }
        let waited = start.get_or_insert_with(Instant::now).elapsed();
        if waited >= timeout {
            let mut pids: Vec<i32> = scanned(ctl)
                .filter(|p| p.buf.load(Ordering::Relaxed) != 0)
                .map(|p| p.pid.load(Ordering::Relaxed))
                .collect();
            pids.sort_unstable();
            pids.dedup();
            return Err(Error::ReadersBusy { pids, waited });
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// The pin slots that have ever been claimed (below `pin_high`).
fn scanned(ctl: &RegionControl) -> impl Iterator<Item = &crate::header::Pin> {
    let high = (ctl.pin_high.load(Ordering::SeqCst) as usize).min(PIN_SLOTS);
    ctl.pins[..high].iter()
}

/// Free the pins of processes that are gone (or whose pid now names
/// another process). Returns whether any was freed.
pub(super) fn reclaim_dead(ctl: &RegionControl) -> bool {
    let mut freed = false;
    for pin in &ctl.pins {
        let pid = pin.pid.load(Ordering::SeqCst);
        if pid == 0 || pin.buf.load(Ordering::SeqCst) == 0 {
            continue;
        }
        if !process::same_process_alive(pid, pin.start_time.load(Ordering::Relaxed)) {
            // Clear the buffer first: while pid still names the dead
            // process, no live reader can claim the slot in between.
            pin.buf.store(0, Ordering::SeqCst);
            let _ = pin
                .pid
                .compare_exchange(pid, 0, Ordering::SeqCst, Ordering::Relaxed);
            freed = true;
        }
    }
    freed
}

/// Claim the lowest free pin slot for this process.
#[cold]
fn claim_slot(ctl: &RegionControl) -> Result<usize> {
    let me = process::own_pid();
    let start = process::own_start_time();
    for round in 0..2 {
        for (s, pin) in ctl.pins.iter().enumerate() {
            if pin.pid.load(Ordering::Relaxed) == 0
                && pin
                    .pid
                    .compare_exchange(0, me, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
            {
                pin.start_time.store(start, Ordering::SeqCst);
                // Writers scan up to here from now on; the SeqCst order puts
                // this before any buffer this slot will pin.
                ctl.pin_high.fetch_max(s as u32 + 1, Ordering::SeqCst);
                return Ok(s);
            }
        }
        if round == 0 {
            reclaim_dead(ctl);
        }
    }
    Err(Error::PinsExhausted { slots: PIN_SLOTS })
}

fn release_slot(ctl: &RegionControl, slot: usize) {
    let pin = &ctl.pins[slot];
    pin.buf.store(0, Ordering::Release);
    pin.pid.store(0, Ordering::Release);
}

/// The pin slots a handle has claimed, lent to the threads reading
/// through it.
pub(crate) struct PinCache {
    /// Unique among the handles of this process, never reused.
    id: u64,
    /// The process the slots were claimed for (a forked child may not use
    /// them).
    pid: i32,
    /// Slots claimed and lent to no thread.
    spare: Mutex<Vec<usize>>,
    /// Every slot claimed, released when the handle is dropped.
    claimed: Mutex<Vec<usize>>,
    /// Set when the handle has released its slots.
    dropped: AtomicBool,
}

impl PinCache {
    pub(crate) fn new() -> Arc<PinCache> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Arc::new(PinCache {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            pid: process::own_pid(),
            spare: Mutex::new(Vec::new()),
            claimed: Mutex::new(Vec::new()),
            dropped: AtomicBool::new(false),
        })
    }

    /// Release every slot this handle claimed. Called by the handle's drop,
    /// while the segment is still attached and no guard lives.
    pub(crate) fn release_all(&self, ctl: &RegionControl) {
        self.dropped.store(true, Ordering::SeqCst);
        if self.pid != process::own_pid() {
            return; // a forked child: the slots are its parent's
        }
        for &slot in self.claimed.lock().iter() {
            release_slot(ctl, slot);
        }
    }
}

/// A slot lent to this thread by a handle. A lent slot is in use while its
/// `buf` is non-zero.
struct Lent {
    cache: Arc<PinCache>,
    slot: usize,
}

impl Drop for Lent {
    fn drop(&mut self) {
        // The thread is exiting (or the entry is stale): give the slot back
        // to its handle, in private memory, touching no segment.
        if !self.cache.dropped.load(Ordering::SeqCst) {
            self.cache.spare.lock().push(self.slot);
        }
    }
}

thread_local! {
    /// The slots lent to this thread, one per handle it read through.
    static LENT: RefCell<Vec<Lent>> = const { RefCell::new(Vec::new()) };
    /// The last (handle id, slot) this thread read through: the fast path.
    static LAST: Cell<(u64, usize)> = const { Cell::new((0, 0)) };
}

/// Pin whatever buffer is current in `slot`: store it, then re-check that it
/// is still current (all sequentially consistent, so a writer that scans
/// the pins after this store sees it, and one that flipped before it is
/// seen by the re-check). The `current` word pinned, or `None` if a publish
/// came in between (try again). A `current` of version 0 pins nothing
/// meaningful; the caller reports it.
#[inline(always)]
pub(super) fn pin_current(ctl: &RegionControl, slot: usize) -> Option<u64> {
    let current = ctl.current.load(Ordering::SeqCst);
    ctl.pins[slot]
        .buf
        .store((current & 0xff) as u32 + 1, Ordering::SeqCst);
    (ctl.current.load(Ordering::SeqCst) == current).then_some(current)
}

/// The thread's own slot of this handle, when it has one and it is free:
/// the fast path of a read.
#[inline]
pub(super) fn pin_fast<'a>(ctl: &'a RegionControl, cache: &PinCache) -> Option<PinHold<'a>> {
    match LAST.try_with(Cell::get) {
        Ok((id, slot))
            if id == cache.id
                && cache.pid == process::own_pid()
                && ctl.pins[slot].buf.load(Ordering::Relaxed) == 0 =>
        {
            Some(PinHold {
                ctl,
                slot,
                lent: true,
            })
        }
        _ => None,
    }
}

/// Pin a slot for one read when [`pin_fast`] found none: the thread's own
/// slot of this handle, lent on first use, else a slot claimed for this read
/// alone (nested reads, a forked child, a thread being torn down).
#[cold]
pub(super) fn pin_slow<'a>(ctl: &'a RegionControl, cache: &Arc<PinCache>) -> Result<PinHold<'a>> {
    if cache.pid == process::own_pid()
        && let Ok(lent) = LENT.try_with(|lent| lend(ctl, cache, &mut lent.borrow_mut()))
    {
        let slot = lent?;
        // In use by an outer guard of this thread: this read is nested.
        if ctl.pins[slot].buf.load(Ordering::Relaxed) == 0 {
            let _ = LAST.try_with(|c| c.set((cache.id, slot)));
            return Ok(PinHold {
                ctl,
                slot,
                lent: true,
            });
        }
    }
    Ok(PinHold {
        ctl,
        slot: claim_slot(ctl)?,
        lent: false,
    })
}

/// This thread's slot of `cache`'s handle, claimed or taken from the
/// handle's spares on first use.
#[cold]
fn lend(ctl: &RegionControl, cache: &Arc<PinCache>, lent: &mut Vec<Lent>) -> Result<usize> {
    if let Some(entry) = lent.iter().find(|e| e.cache.id == cache.id) {
        return Ok(entry.slot);
    }
    lent.retain(|e| !e.cache.dropped.load(Ordering::Relaxed));
    let spare = cache.spare.lock().pop();
    let slot = match spare {
        Some(slot) => slot,
        None => {
            let slot = claim_slot(ctl)?;
            cache.claimed.lock().push(slot);
            slot
        }
    };
    lent.push(Lent {
        cache: cache.clone(),
        slot,
    });
    Ok(slot)
}

/// A pinned slot for one read. Dropping it unpins the buffer, and releases
/// the slot if it was claimed for this read alone.
pub(crate) struct PinHold<'a> {
    ctl: &'a RegionControl,
    pub(super) slot: usize,
    /// Whether the slot is the thread's own, lent by the handle.
    lent: bool,
}

impl Drop for PinHold<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.lent {
            self.ctl.pins[self.slot].buf.store(0, Ordering::Release);
        } else {
            release_slot(self.ctl, self.slot);
        }
    }
}
