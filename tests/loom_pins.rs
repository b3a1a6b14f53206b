//! loom models of a region's reader pins (`src/region/pin_slot.rs`): a
//! writer never writes a buffer a reader pinned and re-checked, and a
//! reclaim frees only the claim it judged dead, even when two reclaimers
//! race and the dead reader's pid comes back as a live reader.
//!
//! The buffers are loom `UnsafeCell`s: a write that overlaps a pinned read
//! is reported by loom as a data race.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test --release --test loom_pins`.
#![cfg(loom)]

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicU32, AtomicU64};
use loom::thread;
use shmstore::loom_api::{Loom, pin_slot};

const SLOTS: usize = 2;

struct Region {
    current: AtomicU64,
    high: AtomicU32,
    words: [AtomicU64; SLOTS],
    starts: [AtomicU64; SLOTS],
    buffers: [UnsafeCell<u64>; 2],
}

impl Region {
    /// Version 1 published in buffer 0; no slot claimed.
    fn new() -> Region {
        Region {
            current: AtomicU64::new(1 << 8),
            high: AtomicU32::new(0),
            words: [AtomicU64::new(0), AtomicU64::new(0)],
            starts: [AtomicU64::new(0), AtomicU64::new(0)],
            buffers: [UnsafeCell::new(1), UnsafeCell::new(0)],
        }
    }

    /// A writer's publish of `version` (the write lock is the model's
    /// single writer): scan the pins, write a buffer neither current nor
    /// pinned, commit. Returns false where every buffer is taken (the real
    /// writer waits, then reports the busy readers).
    fn publish(&self, version: u64) -> bool {
        let current = (self.current.load(Acquire) & 0xff) as usize;
        let pinned = pin_slot::pinned_buffers::<Loom>(&self.high, self.words.iter());
        let Some(b) = (0..2).find(|&b| b != current && pinned & (1 << b) == 0) else {
            return false;
        };
        self.buffers[b].with_mut(|p| {
            // SAFETY: loom checks that no pinned read overlaps this write.
            unsafe { *p = version }
        });
        self.current.store((version << 8) | b as u64, Release);
        true
    }

    /// A reader's claim of `slot` for process (`pid`, `start`).
    fn claim(&self, slot: usize, pid: i32, start: u64) -> Option<u64> {
        let claim = pin_slot::claim::<Loom>(&self.words[slot], &self.starts[slot], pid, start)?;
        pin_slot::raise_high::<Loom>(&self.high, slot);
        Some(claim)
    }

    /// Pin, read the pinned buffer in place, unpin; the value read is the
    /// version pinned.
    fn read(&self, slot: usize, claim: u64) {
        let c = loop {
            if let Some(c) = pin_slot::pin::<Loom>(&self.current, &self.words[slot], claim) {
                break c;
            }
            thread::yield_now();
        };
        let seen = self.buffers[(c & 0xff) as usize].with(|p| {
            // SAFETY: loom checks that no write overlaps this pinned read.
            unsafe { *p }
        });
        assert_eq!(seen, c >> 8, "a pinned buffer changed under its reader");
        pin_slot::unpin::<Loom>(&self.words[slot], claim);
    }
}

fn bounded() -> loom::model::Builder {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder
}

/// A reader claims a slot and reads twice while a writer publishes twice
/// into two buffers: never a write into the buffer a reader holds.
#[test]
fn pinned_buffer_is_never_written() {
    bounded().check(|| {
        let region = Arc::new(Region::new());
        let writer = {
            let region = region.clone();
            thread::spawn(move || {
                region.publish(2);
                region.publish(3);
            })
        };
        let claim = region.claim(0, 1, 100).expect("a free slot");
        region.read(0, claim);
        region.read(0, claim);
        pin_slot::release::<Loom>(&region.words[0], claim);
        writer.join().unwrap();
    });
}

/// Slot 0 holds the claim of a dead reader (pid 7, start 5) pinning buffer
/// 0. Two reclaimers judge it at once while a new live process with the same
/// pid (start 6) waits to claim the slot, then pins and holds buffer 0: the
/// reclaimers free the dead claim exactly once and never the live one.
#[test]
fn reclaim_frees_only_the_dead_claim() {
    bounded().check(|| {
        let region = Arc::new(Region::new());
        let dead = pin_slot::STARTED | pin_slot::TAG_ONE | 7;
        region.starts[0].store(5, Relaxed);
        region.words[0].store(pin_slot::with_buffer(dead, 0), Relaxed);
        region.high.store(1, Relaxed);
        // Pid 7 runs again, as another process: start time 6.
        let alive = |pid: i32, start: Option<u64>| pid == 7 && start.is_none_or(|s| s == 6);
        let reclaimers: Vec<_> = (0..2)
            .map(|_| {
                let region = region.clone();
                thread::spawn(move || {
                    pin_slot::reclaim_if_dead::<Loom>(&region.words[0], &region.starts[0], alive)
                })
            })
            .collect();
        let claim = loop {
            if let Some(claim) = region.claim(0, 7, 6) {
                break claim;
            }
            thread::yield_now();
        };
        let c = loop {
            if let Some(c) = pin_slot::pin::<Loom>(&region.current, &region.words[0], claim) {
                break c;
            }
            thread::yield_now();
        };
        let freed: usize = reclaimers
            .into_iter()
            .map(|r| usize::from(r.join().unwrap()))
            .sum();
        assert_eq!(freed, 1, "the dead claim was freed once");
        assert_eq!(
            region.words[0].load(Relaxed),
            pin_slot::with_buffer(claim, (c & 0xff) as usize),
            "a reclaimer touched the live claim"
        );
    });
}
