//! loom models of a region's buffers and reader pins
//! (`src/region/buffers.rs`, `src/region/pin_slot.rs`), running the
//! library's own publish, pin and copy: a writer never writes a buffer a
//! reader pinned and re-checked; a copying reader keeps only whole copies
//! and never takes an honest writer for a scribbler; a reclaim frees only
//! the claim it judged dead; a revoked slot is never pinned through.
//!
//! The buffers of the pinning models are loom `UnsafeCell`s: a write that
//! overlaps a pinned read is reported by loom as a data race. The copying
//! model's buffers are atomic words written and read relaxed, as FORMAT.md
//! has copiers read them.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test --release --test loom_pins`.
#![cfg(loom)]

use std::sync::atomic::Ordering::{Acquire, Relaxed};

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::AtomicU64;
use loom::thread;
use shmstore::loom_api::Loom;
use shmstore::loom_api::buffers::{self, Copied, Meta};
use shmstore::loom_api::pin_slot::{self, Pin};

const SLOTS: usize = 2;

struct Region {
    current: AtomicU64,
    words: [AtomicU64; SLOTS],
    starts: [AtomicU64; SLOTS],
    lens: [AtomicU64; 2],
    versions: [AtomicU64; 2],
    buffers: [UnsafeCell<u64>; 2],
}

impl Region {
    /// Version 1 published in buffer 0; no slot claimed.
    fn new() -> Region {
        Region {
            current: AtomicU64::new(1 << 8),
            words: [AtomicU64::new(0), AtomicU64::new(0)],
            starts: [AtomicU64::new(0), AtomicU64::new(0)],
            lens: [AtomicU64::new(8), AtomicU64::new(0)],
            versions: [AtomicU64::new(1), AtomicU64::new(0)],
            buffers: [UnsafeCell::new(1), UnsafeCell::new(0)],
        }
    }

    fn meta(&self, b: usize) -> Meta<'_, AtomicU64> {
        Meta {
            len: &self.lens[b],
            version: &self.versions[b],
        }
    }

    /// The library's publish (the model's single writer stands for the
    /// write lock): the scan of every pin and the choice of a buffer, as
    /// `pins::free_buffer` makes them each round, then announce, write,
    /// commit. Returns false where every buffer is taken (the real writer
    /// waits, then reports the busy readers).
    fn publish(&self) -> bool {
        buffers::publish::<Loom, ()>(
            &self.current,
            |b| self.meta(b),
            |current| {
                let scan = || pin_slot::pinned_buffers::<Loom>(self.words.iter());
                buffers::choose::<Loom>(2, current, |b| self.meta(b), scan, |_| true).ok_or(())
            },
            |b, version| {
                self.buffers[b].with_mut(|p| {
                    // SAFETY: loom checks that no pinned read overlaps this write.
                    unsafe { *p = version }
                });
                Ok(8)
            },
        )
        .is_ok()
    }

    /// A reader's claim of `slot` for process (`pid`, `start`).
    fn claim(&self, slot: usize, pid: i32, start: u64) -> Option<u64> {
        pin_slot::claim::<Loom>(&self.words[slot], &self.starts[slot], pid, start)
    }

    /// Pin through `claim` (None once it was revoked, or if `current`
    /// names a buffer that does not hold its version and does not move),
    /// check that the buffer holds the version pinned, read it in place,
    /// unpin; the value read is the version pinned.
    fn read(&self, slot: usize, claim: u64) -> Option<u64> {
        let c = loop {
            match pin_slot::pin::<Loom>(&self.current, &self.words[slot], claim) {
                Pin::Pinned(c) => {
                    let b = (c & 0xff) as usize;
                    if buffers::holds::<Loom>(&self.meta(b), c >> 8) {
                        break c;
                    }
                    pin_slot::unpin::<Loom>(&self.words[slot], claim);
                    if self.current.load(Relaxed) == c {
                        return None; // scribbled: the reader reports it
                    }
                }
                Pin::Moved => thread::yield_now(),
                Pin::Lost => return None,
            }
        };
        let seen = self.buffers[(c & 0xff) as usize].with(|p| {
            // SAFETY: loom checks that no write overlaps this pinned read.
            unsafe { *p }
        });
        assert_eq!(seen, c >> 8, "a pinned buffer changed under its reader");
        pin_slot::unpin::<Loom>(&self.words[slot], claim);
        Some(seen)
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
/// into two buffers: never a write into the buffer a reader holds, and the
/// reader reads the version its pinned `current` names.
#[test]
fn pinned_buffer_is_never_written() {
    bounded().check(|| {
        let region = Arc::new(Region::new());
        let writer = {
            let region = region.clone();
            thread::spawn(move || {
                region.publish();
                region.publish();
            })
        };
        let claim = region.claim(0, 1, 100).expect("a free slot");
        region.read(0, claim).expect("not revoked");
        region.read(0, claim).expect("not revoked");
        assert!(pin_slot::release::<Loom>(&region.words[0], claim));
        writer.join().unwrap();
    });
}

/// Version 2 is current in buffer 1, version 1 in buffer 0. While a writer
/// publishes version 3 (into buffer 0, the oldest), a peer scribbles
/// `current` back to version 1 in buffer 0, and a reader pins through it:
/// the reader never reads buffer 0 while the writer writes it.
#[test]
fn a_scribbled_current_never_moves_a_reader_onto_a_buffer_being_written() {
    bounded().check(|| {
        let region = Arc::new(Region::new());
        region.lens[1].store(8, Relaxed);
        region.versions[1].store(2, Relaxed);
        region.buffers[1].with_mut(|p| {
            // SAFETY: no other thread runs yet.
            unsafe { *p = 2 }
        });
        region.current.store((2 << 8) | 1, Relaxed);
        let writer = {
            let region = region.clone();
            thread::spawn(move || {
                // (It may find the only other buffer pinned: the real writer
                // then waits.)
                region.publish();
            })
        };
        let scribbler = {
            let region = region.clone();
            thread::spawn(move || region.current.store(1 << 8, Relaxed))
        };
        let claim = region.claim(0, 1, 100).expect("a free slot");
        let _ = region.read(0, claim);
        writer.join().unwrap();
        scribbler.join().unwrap();
    });
}

/// A claimer revokes the idle slot of a live reader that reads at the same
/// time: the reader either pinned first (the slot is not revoked while
/// pinned) or finds its slot gone, and never pins through a revoked slot;
/// the writer never writes what is pinned.
#[test]
fn a_revoked_slot_is_never_pinned_through() {
    bounded().check(|| {
        let region = Arc::new(Region::new());
        let claim = region.claim(0, 1, 100).expect("a free slot");
        let revoker = {
            let region = region.clone();
            thread::spawn(move || pin_slot::revoke_idle::<Loom>(&region.words[0]))
        };
        let writer = {
            let region = region.clone();
            thread::spawn(move || {
                region.publish();
            })
        };
        let read = region.read(0, claim);
        let revoked = revoker.join().unwrap();
        writer.join().unwrap();
        let word = region.words[0].load(Relaxed);
        if revoked {
            assert_eq!(pin_slot::pid_of(word), 0, "revoked, then claimed again?");
        } else {
            assert!(read.is_some(), "lost a slot nobody revoked");
            assert_eq!(word, claim & !pin_slot::BUF_MASK, "unpinned, still held");
        }
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
            if let Pin::Pinned(c) = pin_slot::pin::<Loom>(&region.current, &region.words[0], claim)
            {
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

/// A region whose buffers are read by copying: two words per buffer, the
/// second seven times the first, both the version.
struct Copying {
    current: AtomicU64,
    lens: [AtomicU64; 2],
    versions: [AtomicU64; 2],
    words: [[AtomicU64; 2]; 2],
}

impl Copying {
    fn new() -> Copying {
        Copying {
            current: AtomicU64::new(1 << 8),
            lens: [AtomicU64::new(16), AtomicU64::new(0)],
            versions: [AtomicU64::new(1), AtomicU64::new(0)],
            words: [
                [AtomicU64::new(1), AtomicU64::new(7)],
                [AtomicU64::new(0), AtomicU64::new(0)],
            ],
        }
    }

    fn meta(&self, b: usize) -> Meta<'_, AtomicU64> {
        Meta {
            len: &self.lens[b],
            version: &self.versions[b],
        }
    }

    /// The library's publish, no pins: the buffer whose version is oldest.
    fn publish(&self) {
        buffers::publish::<Loom, ()>(
            &self.current,
            |b| self.meta(b),
            |current| {
                buffers::choose::<Loom>(2, current, |b| self.meta(b), || 0, |_| true).ok_or(())
            },
            |b, version| {
                self.words[b][0].store(version, Relaxed);
                self.words[b][1].store(version * 7, Relaxed);
                Ok(16)
            },
        )
        .unwrap();
    }

    /// The library's copy, retried until whole: the version copied.
    fn copy(&self) -> u64 {
        loop {
            let mut got = [0u64; 2];
            let meta = |b: usize| (b < 2).then(|| self.meta(b));
            match buffers::copy::<Loom>(&self.current, meta, 16, |b, len| {
                assert_eq!(len, 16);
                got = [
                    self.words[b][0].load(Relaxed),
                    self.words[b][1].load(Relaxed),
                ];
            }) {
                Copied::Whole { current, len } => {
                    assert_eq!(len, 16);
                    assert_eq!(got[0], current >> 8, "a copy of another version kept");
                    assert_eq!(got[1], got[0] * 7, "a torn copy kept");
                    return got[0];
                }
                Copied::Rewritten => thread::yield_now(),
                other => panic!("an honest writer's region read as {other:?}"),
            }
        }
    }
}

/// Two buffers and three publishes while a reader copies twice: every
/// buffer is rewritten under some copy, and only whole copies are kept;
/// an honest writer is never taken for a scribbler.
#[test]
fn a_kept_copy_is_whole() {
    bounded().check(|| {
        let region = Arc::new(Copying::new());
        let writer = {
            let region = region.clone();
            thread::spawn(move || {
                for _ in 0..3 {
                    region.publish();
                }
            })
        };
        let first = region.copy();
        let second = region.copy();
        assert!(second >= first, "versions went back");
        writer.join().unwrap();
        assert_eq!(region.current.load(Acquire) >> 8, 4);
    });
}
