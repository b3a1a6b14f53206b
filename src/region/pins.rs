//! The reader pins of a region: a hazard-pointer protocol over 128 slots in
//! the control block. A reader claims a slot (compare-and-swap of its pid
//! into a free one, then its start time), stores the buffer it is about to
//! read and re-checks that the buffer is still current; a writer takes only
//! buffers no slot names. Slots of processes that are gone (pid dead, or
//! alive with another start time) are reclaimed: buffer cleared first, then
//! the pid, so no live reader can claim a slot in between.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::header::{MAX_SLOTS, PIN_SLOTS, RegionControl};
use crate::sync::process;

/// A buffer (of `count`) that is neither `current` nor pinned by a live
/// reader, waiting up to `timeout` for one; then [`Error::ReadersBusy`]
/// naming the pinning processes.
pub(super) fn free_buffer(
    ctl: &RegionControl,
    count: usize,
    current: Option<usize>,
    timeout: Duration,
) -> Result<usize> {
    let current = current.unwrap_or(usize::MAX);
    let start = Instant::now();
    loop {
        let mut pinned = 0u64;
        for pin in &ctl.pins {
            let b = pin.buf.load(Ordering::SeqCst);
            if (1..=MAX_SLOTS).contains(&b) {
                pinned |= 1 << (b - 1);
            }
        }
        // Prefer the buffer after the current one: the oldest.
        let free = (1..=count)
            .map(|i| (current.wrapping_add(i)) % count)
            .find(|&b| b != current && pinned & (1 << b) == 0);
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

/// Claim a free pin slot for this process.
pub(super) fn claim(ctl: &RegionControl) -> Result<PinHold<'_>> {
    let pins = &ctl.pins;
    let me = std::process::id() as i32;
    let start = process::own_start_time();
    let hint = thread_hint();
    for round in 0..2 {
        for i in 0..PIN_SLOTS {
            let s = (hint + i) % PIN_SLOTS;
            let pin = &pins[s];
            if pin.pid.load(Ordering::Relaxed) == 0
                && pin
                    .pid
                    .compare_exchange(0, me, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
            {
                pin.start_time.store(start, Ordering::SeqCst);
                return Ok(PinHold { ctl, slot: s });
            }
        }
        if round == 0 {
            reclaim_dead(ctl);
        }
    }
    Err(Error::PinsExhausted { slots: PIN_SLOTS })
}

/// A small per-thread number, to spread threads over the pin slots.
fn thread_hint() -> usize {
    use std::hash::{BuildHasher, RandomState};
    thread_local! {
        static HINT: usize = RandomState::new().hash_one(std::thread::current().id()) as usize;
    }
    HINT.with(|h| *h)
}

/// A claimed pin slot; released (buffer, then pid) on drop.
pub(crate) struct PinHold<'a> {
    ctl: &'a RegionControl,
    pub(super) slot: usize,
}

impl Drop for PinHold<'_> {
    fn drop(&mut self) {
        let pin = &self.ctl.pins[self.slot];
        pin.buf.store(0, Ordering::Release);
        pin.pid.store(0, Ordering::Release);
    }
}
