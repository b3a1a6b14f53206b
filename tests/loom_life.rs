//! loom models of the life of an object (`src/store/life/`): two creators
//! of one name, racing while a key of the name is freed, never both make
//! an object (the claim, its fence and the rule of `claim.rs`); a collector
//! never removes an object an opener admitted (`removal.rs`).
//!
//! The kernel is modelled by mutexes: one per key (`shmget` with
//! `IPC_EXCL`, lookups and `IPC_RMID` take the kernel's lock on the keys)
//! and one per segment (an attach counts, and `IPC_STAT` reads the count,
//! under the segment's lock). Everything else is the library's functions.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test --release --test loom_life`.
#![cfg(loom)]

use std::sync::atomic::Ordering::{Relaxed, SeqCst};

use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use loom::sync::{Arc, Mutex};
use loom::thread;
use shmstore::loom_api::claim::{self, Decision, Peer};
use shmstore::loom_api::removal::{self, Life};
use shmstore::loom_api::{Loom, ready};

/// The name the creators make; 0 is a plain key's object, 2 another name.
const NAME: u64 = 1;
const READY: u32 = 2;
const KEYS: usize = 3;

/// A segment's words the naming protocol reads.
struct Segment {
    magic: AtomicU64,
    state: AtomicU32,
    name: AtomicU64,
    /// The creator's identity, written before the magic.
    creator: AtomicU64,
}

impl Segment {
    fn fresh() -> Arc<Segment> {
        Arc::new(Segment {
            magic: AtomicU64::new(0),
            state: AtomicU32::new(0),
            name: AtomicU64::new(0),
            creator: AtomicU64::new(0),
        })
    }

    /// A whole object of another kind (a plain key's), as found at a key.
    fn plain() -> Arc<Segment> {
        let s = Segment::fresh();
        s.creator.store(9, SeqCst);
        s.magic.store(u64::from_le_bytes(*b"shmstore"), SeqCst);
        s.state.store(READY, SeqCst);
        s
    }
}

/// The keys of the name, as the kernel holds them.
struct Keys([Mutex<Option<Arc<Segment>>>; KEYS]);

impl Keys {
    /// What key `k` holds, for the name: `None` for nothing.
    fn look(&self, k: usize) -> Option<(Arc<Segment>, Option<(u32, bool)>)> {
        let seg = self.0[k].lock().unwrap().clone()?;
        let seen =
            claim::look::<Loom, _>(&seg.magic, &seg.state, || seg.name.load(Relaxed) == NAME);
        Some((seg, seen))
    }

    /// `shmget(IPC_CREAT | IPC_EXCL)` at key `k`.
    fn make(&self, k: usize) -> Option<Arc<Segment>> {
        let mut slot = self.0[k].lock().unwrap();
        if slot.is_some() {
            return None;
        }
        let seg = Segment::fresh();
        *slot = Some(seg.clone());
        Some(seg)
    }

    /// `IPC_RMID` of `seg`, if it is still at key `k`.
    fn remove(&self, k: usize, seg: &Arc<Segment>) {
        let mut slot = self.0[k].lock().unwrap();
        if slot.as_ref().is_some_and(|s| Arc::ptr_eq(s, seg)) {
            *slot = None;
        }
    }
}

/// A creator of the name, as `create_named` runs (creators never die in
/// this model, so every claim is live): look, make at the first free key,
/// claim, decide. Returns the key of the object it made.
fn create(keys: &Keys) -> Option<usize> {
    for _ in 0..2 {
        let seen: Vec<_> = (0..KEYS).map(|k| keys.look(k)).collect();
        if seen
            .iter()
            .flatten()
            .any(|(_, s)| *s == Some((READY, true)))
        {
            return None; // AlreadyExists
        }
        let own = seen.iter().position(Option::is_none)?;
        let Some(seg) = keys.make(own) else {
            continue; // EEXIST: look again
        };
        claim::claim::<Loom>(&seg.magic, &seg.state, || {
            seg.creator.store(1, Relaxed);
            seg.name.store(NAME, Relaxed);
        });
        loop {
            let peers = (0..KEYS).filter(|&j| j != own).map(|j| match keys.look(j) {
                Some((_, Some((READY, true)))) => Peer::Object,
                Some((_, Some((_, true)))) => Peer::Claim { index: j, pid: 1 },
                _ => Peer::Other,
            });
            match claim::decide(own, peers) {
                Decision::Proceed => {
                    ready::publish::<Loom>(&seg.state);
                    return Some(own);
                }
                Decision::Yield => {
                    keys.remove(own, &seg);
                    return None;
                }
                Decision::Wait { .. } => thread::yield_now(),
            }
        }
    }
    None
}

fn bounded() -> loom::model::Builder {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    builder
}

/// Key 0 holds a plain key's object, which goes away while two creators of
/// the name race: they never both make an object.
#[test]
fn two_creators_never_make_two_objects() {
    bounded().check(|| {
        let keys = Arc::new(Keys([
            Mutex::new(Some(Segment::plain())),
            Mutex::new(None),
            Mutex::new(None),
        ]));
        let creators: Vec<_> = (0..2)
            .map(|_| {
                let keys = keys.clone();
                thread::spawn(move || create(&keys))
            })
            .collect();
        {
            let mut k0 = keys.0[0].lock().unwrap();
            if k0.as_ref().is_some_and(|s| s.name.load(Relaxed) == 0) {
                *k0 = None; // the plain object is removed
            }
        }
        let made: Vec<usize> = creators
            .into_iter()
            .filter_map(|c| c.join().unwrap())
            .collect();
        assert!(made.len() <= 1, "two objects of one name, at keys {made:?}");
        let objects = (0..KEYS)
            .filter(|&k| matches!(keys.look(k), Some((_, Some((READY, true))))))
            .count();
        assert_eq!(objects, made.len());
    });
}

/// An opener looks while a creator claims: whoever sees the magic sees who
/// made the segment and under which name (the look's closure asserts it).
#[test]
fn whoever_sees_the_magic_sees_the_claim() {
    bounded().check(|| {
        let keys = Arc::new(Keys([Mutex::new(None), Mutex::new(None), Mutex::new(None)]));
        let creator = {
            let keys = keys.clone();
            thread::spawn(move || create(&keys))
        };
        for k in 0..KEYS {
            if let Some((_, Some((_, named)))) = keys.look(k) {
                assert!(named, "the magic seen before the name");
            }
        }
        assert_eq!(creator.join().unwrap(), Some(0));
    });
}

/// A segment as the removal protocol sees it.
struct Object {
    life: AtomicU64,
    /// The kernel's attach count, under the segment's lock.
    attached: Mutex<u32>,
    removed: AtomicBool,
}

/// A collector that judged the object garbage on its attachment (its own
/// the only one) races an opener that attaches it: the object is removed
/// only if the opener never admitted it.
#[test]
fn a_collector_never_removes_what_an_opener_admitted() {
    bounded().check(|| {
        let object = Arc::new(Object {
            life: AtomicU64::new(0),
            attached: Mutex::new(1),
            removed: AtomicBool::new(false),
        });
        let collector = {
            let object = object.clone();
            thread::spawn(move || {
                let me = removal::actor(10, 1);
                let Some(marked) = removal::mark_collecting::<Loom>(&object.life, me) else {
                    return;
                };
                let attached = *object.attached.lock().unwrap();
                if attached == 1 && removal::promote::<Loom>(&object.life, marked) {
                    object.removed.store(true, SeqCst);
                } else {
                    removal::unmark::<Loom>(&object.life, marked);
                }
            })
        };
        *object.attached.lock().unwrap() += 1;
        let admitted = loop {
            match removal::read::<Loom>(&object.life) {
                Life::Live => break true,
                Life::Removing(_) => break false,
                // The collector lives: wait for it.
                Life::Collecting(_) => thread::yield_now(),
            }
        };
        collector.join().unwrap();
        assert!(
            !(admitted && object.removed.load(SeqCst)),
            "an admitted object was collected"
        );
    });
}
