//! loom model of a cell's ring of slots (`src/cell/ring.rs`): a writer
//! commits versions while a reader copies; the copy the reader keeps is
//! always the whole value of the version it reports, with 2 and with 4 slots.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test --release --test loom_ring`.
#![cfg(loom)]

use std::sync::atomic::Ordering::Relaxed;

use loom::sync::Arc;
use loom::sync::atomic::AtomicU64;
use loom::thread;
use shmstore::loom_api::{Loom, ring};

/// A cell whose value is two words, both equal to the version in a whole
/// copy.
struct Cell {
    seq: AtomicU64,
    writing: AtomicU64,
    slots: Vec<[AtomicU64; 2]>,
}

impl Cell {
    fn new(slots: usize) -> Cell {
        Cell {
            seq: AtomicU64::new(0),
            writing: AtomicU64::new(0),
            slots: (0..slots)
                .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
                .collect(),
        }
    }

    /// The writer's store of the next version (one writer: no lock needed).
    fn store_next(&self) {
        let next = self.seq.load(Relaxed) + 1;
        ring::write::<Loom>(&self.seq, &self.writing, self.slots.len() as u64, |i| {
            self.slots[i][0].store(next, Relaxed);
            self.slots[i][1].store(next, Relaxed);
        });
    }

    /// A reader's load: the version and the copy it kept.
    fn load(&self) -> (u64, [u64; 2]) {
        let mut copy = [0; 2];
        let v = ring::read::<Loom>(&self.seq, &self.writing, self.slots.len() as u64, |i| {
            copy[0] = self.slots[i][0].load(Relaxed);
            copy[1] = self.slots[i][1].load(Relaxed);
        });
        (v, copy)
    }
}

/// `writes` commits race one load; the slot the load copies is refilled
/// once the writer gets `slots` versions ahead.
fn check(slots: usize, writes: u64) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(move || {
        let cell = Arc::new(Cell::new(slots));
        let writer = {
            let cell = cell.clone();
            thread::spawn(move || {
                for _ in 0..writes {
                    cell.store_next();
                }
            })
        };
        let (v, copy) = cell.load();
        assert_eq!(copy, [v, v], "kept a torn or refilled copy of version {v}");
        assert!(v <= writes);
        writer.join().unwrap();
        assert_eq!(cell.load(), (writes, [writes, writes]));
    });
}

#[test]
fn two_slots_refilled_under_a_reader() {
    check(2, 3);
}

#[test]
fn four_slots_refilled_under_a_reader() {
    check(4, 5);
}

/// A `writing` word scribbled by a faulty peer never makes a reader spin:
/// with no writer, `seq` does not move and the copy is kept.
#[test]
fn scribbled_announcement_does_not_hang_a_reader() {
    loom::model(|| {
        let cell = Cell::new(2);
        cell.writing.store(u64::MAX / 3, Relaxed);
        assert_eq!(cell.load(), (0, [0, 0]));
    });
}
