//! The protocol of a cell: a seqlock over a ring of `n` slots (a power of
//! two), on three shared things: the commit counter `seq`, the announcement
//! `writing`, and the slots.
//!
//! **Writer** (holding the write lock): `s = seq`; store `writing = s + 1`;
//! release fence; fill slot `(s + 1) % n` with relaxed atomic stores; store
//! `seq = s + 1` (release): the commit point. A writer that dies before the
//! commit leaves `seq` and the slot it names untouched (and `writing = s +
//! 1`, which the next writer stores again).
//!
//! **Reader** (lock-free, writes nothing): `s1 = seq` (acquire); copy slot
//! `s1 % n` with relaxed atomic loads; acquire fence; keep the copy if
//! `writing - s1 < n` or if `seq` still reads `s1`; else try again.
//!
//! **Why a kept copy is whole.** The acquire load of `s1` synchronises with
//! the commit of version `s1`, so the slot's bytes of version `s1` are
//! visible: the copy can differ from them only by bytes of a later writer
//! refilling that same slot, which is the writer of version `s1 + n` or
//! later (the slot of version `v` is filled only for `v`, `v + n`, ...).
//! That writer stored `writing >= s1 + n` before its release fence and its
//! slot stores; a reader that copied any of those stores and then passed its
//! acquire fence sees `writing >= s1 + n` (the fences synchronise, and
//! `writing` only grows), so `writing - s1 >= n` and the first test fails.
//! The second test is the plain seqlock rule: a copy that saw any store of
//! the writer of `s1 + n` makes everything that happened before that
//! writer's fence visible after the reader's, the commit of `s1 + 1` by an
//! earlier writer included (writers are serialised by the lock, and version
//! `s1 + n` is begun only after `s1 + 1` ... `s1 + n - 1` were committed),
//! so `seq` no longer reads `s1`. This test also ends the loop whatever a
//! faulty peer scribbled on `writing`, so a reader never spins forever on
//! it. A reader thus retries only when writers finished `n - 1` values
//! during one copy.
//!
//! The model in `tests/loom_ring.rs` runs these functions, with 2 and 4
//! slots, and catches the copy of a refilled slot when the fence or the
//! announcement is weakened.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use crate::sync::atomic::{Model, Word64};
use crate::sync::backoff::Backoff;

/// The slot that holds version `v` in a ring of `slots` (a power of two).
#[inline(always)]
pub fn slot_of(v: u64, slots: u64) -> usize {
    (v & (slots - 1)) as usize
}

/// Copy the committed value: `copy(i)` copies slot `i` out with relaxed
/// atomic loads; it may be called again for another slot, and only the last
/// copy is whole. Returns the version copied.
#[inline(always)]
pub fn read<M: Model>(
    seq: &M::U64,
    writing: &M::U64,
    slots: u64,
    mut copy: impl FnMut(usize),
) -> u64 {
    let mut backoff = Backoff::new();
    loop {
        let s1 = seq.load(Acquire);
        copy(slot_of(s1, slots));
        M::fence(Acquire);
        if writing.load(Relaxed).wrapping_sub(s1) < slots || seq.load(Relaxed) == s1 {
            return s1;
        }
        M::spin(&mut backoff);
    }
}

/// Write the next version (holding the write lock): announce it, let
/// `fill(i)` fill slot `i` with relaxed atomic stores, and commit. Returns
/// the version committed.
#[inline]
pub fn write<M: Model>(
    seq: &M::U64,
    writing: &M::U64,
    slots: u64,
    fill: impl FnOnce(usize),
) -> u64 {
    let next = seq.load(Relaxed).wrapping_add(1);
    // Announce the version before writing its slot; the fence orders the
    // announcement before the slot writes, so a reader that sees any of them
    // also sees `writing >= next`.
    writing.store(next, Relaxed);
    crate::crash::point("cell.after_announce");
    M::fence(Release);
    fill(slot_of(next, slots));
    crate::crash::point("cell.after_slot");
    seq.store(next, Release);
    crate::crash::point("cell.after_commit");
    next
}
