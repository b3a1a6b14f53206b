//! The creation protocol's `state` word (`Header::state`): how a creator
//! makes everything it wrote visible to openers at once.
//!
//! The creator, once it has claimed the segment (its identity and name,
//! then the magic, with release ordering: `store/life/claim.rs`), stores
//! `INITIALIZING` (relaxed; it only tells openers that a shmstore creator
//! is at work), writes the header, the mutex and the first value, then
//! stores `READY` with release ordering. An opener loads `state` with
//! acquire ordering and reads nothing but the magic, the state and what the
//! magic publishes (the creator's identity and the name) before it sees
//! `READY`: the acquire load that reads `READY` synchronises with the
//! release store, so every write the creator made before it is visible. A
//! creator that dies before `READY` leaves the word at `INITIALIZING` (or
//! `FRESH`) for good; openers judge the creator's liveness
//! (`store/life/creator.rs`).
//!
//! The word's values are defined here, with the protocol that writes them;
//! the header (`format/header.rs`) re-exports them. The model in
//! `tests/loom_ready.rs` runs these functions.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use super::atomic::{Model, Word32};

/// The `state` word: zero-filled by the kernel, not yet initialised.
pub const STATE_FRESH: u32 = 0;
/// The `state` word: the creator is writing the header.
pub const STATE_INITIALIZING: u32 = 1;
/// The `state` word: the header and the first value are written.
pub const STATE_READY: u32 = 2;

/// The creator, once its claim (identity, name, magic) is written and
/// before the header.
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
