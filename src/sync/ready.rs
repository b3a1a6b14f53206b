//! The creation protocol's `state` word (`Header::state`): how a creator
//! makes everything it wrote visible to openers at once.
//!
//! The creator stores `INITIALIZING` (relaxed; it only tells openers that a
//! shmstore creator is at work), writes the header, the mutex and the first
//! value, then stores `READY` with release ordering. An opener loads `state`
//! with acquire ordering and reads nothing but `magic` and `state` before it
//! sees `READY`: the acquire load that reads `READY` synchronises with the
//! release store, so every write the creator made before it is visible. A
//! creator that dies before `READY` leaves the word at `INITIALIZING` (or
//! `FRESH`) for good; openers judge the creator's liveness (`store/create.rs`).
//!
//! The model in `tests/loom_ready.rs` runs these functions.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use super::atomic::{Model, Word32};
use crate::format::{STATE_INITIALIZING, STATE_READY};

/// The creator, before it writes anything else.
pub fn begin<M: Model>(state: &M::U32) {
    state.store(STATE_INITIALIZING, Relaxed);
}

/// The creator, after everything else is written.
pub fn publish<M: Model>(state: &M::U32) {
    state.store(STATE_READY, Release);
}

/// An opener: the state word; everything the creator wrote is visible once
/// this returns `STATE_READY`.
pub fn state<M: Model>(state: &M::U32) -> u32 {
    state.load(Acquire)
}
