//! loom model of the creation protocol's `state` word (`src/sync/ready.rs`):
//! an opener that sees READY sees everything the creator wrote before it.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test --release --test loom_ready`.
#![cfg(loom)]

use std::sync::atomic::Ordering::Relaxed;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU32, AtomicU64};
use loom::thread;
use shmstore::loom_api::{Loom, ready};

const READY: u32 = 2;

#[test]
fn ready_publishes_the_header() {
    loom::model(|| {
        let state = Arc::new(AtomicU32::new(0));
        let fields = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let creator = {
            let (state, fields) = (state.clone(), fields.clone());
            thread::spawn(move || {
                ready::begin::<Loom>(&state);
                fields[0].store(0x5348_4d53, Relaxed);
                fields[1].store(4096, Relaxed);
                ready::publish::<Loom>(&state);
            })
        };
        loop {
            if ready::state::<Loom>(&state) == READY {
                assert_eq!(fields[0].load(Relaxed), 0x5348_4d53);
                assert_eq!(fields[1].load(Relaxed), 4096);
                break;
            }
            thread::yield_now();
        }
        creator.join().unwrap();
    });
}
