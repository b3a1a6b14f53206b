//! The reader pins of a region: a hazard-pointer protocol over the pin
//! slots of the control block, each one word (`Pin::word`: pid, pinned
//! buffer, `started`, claim tag) plus the holder's start time.
//!
//! **Claim** (reader): compare-and-swap a free word to `(pid, tag + 1)`;
//! store the start time (release); store the word with `started` set
//! (release). **Pin**: load `current`; compare-and-swap the word from the
//! idle claim to the claim naming `current`'s buffer; load `current` again;
//! if it moved, unpin and try again; if the compare-and-swap failed, the
//! slot was revoked: claim another. **Unpin**: store the idle claim.
//! **Release**: compare-and-swap the idle claim to free, keeping the tag.
//!
//! **Scan** (writer, under the write lock, before it writes a buffer):
//! read every slot's word with a read-modify-write that changes nothing
//! (`fetch_add(0)`), and take a buffer that is neither current nor named by
//! any word. Every slot, always, whatever the control block's other words
//! say: nothing a peer scribbles elsewhere can make the writer skip a slot.
//!
//! **Why a pinned buffer is never written.** Take a reader that pinned
//! buffer `b` and found `current` unchanged (naming `b`), and a writer that
//! later chose `b`. The writer chose it under the write lock after a commit
//! that moved `current` off `b` (`b` was current when the reader looked, and
//! a writer never takes the current buffer). The reader's compare-and-swap
//! and the writer's read-modify-write of the same word are ordered in that
//! word's modification order. If the writer's came first, the reader's
//! (which acquires) reads from it (which releases), so everything before
//! the writer's scan, the commit that moved `current` off `b` included,
//! happens before the reader's second load of `current`, which then cannot
//! name `b` at the version it saw: the reader tries again. If the reader's
//! came first, the writer reads `b` in the word and skips it.
//! Read-modify-writes carry the argument (the reader's compare-and-swap
//! acquires, the writer's scan acquires and releases), so that it holds in
//! loom's model too, which treats seq-cst accesses as acquire-release; the
//! writer's scan also acquires the reader's unpin (release), so the
//! reader's use of the buffer happens before the writer's next write.
//!
//! **Reclaim** (anyone, when slots or buffers run out): load the word; if
//! `started`, load the start time (acquire) and the word again: if the claim
//! part (pid, `started`, tag) is unchanged, that start time is this claim's
//! (every new claim changes the tag before it stores its start time). Judge
//! the holder dead by pid and start time (by pid alone before `started`);
//! then compare-and-swap exactly the word judged dead to free. A live holder
//! is never judged dead (its pid answers and its start time matches), so the
//! CAS can only free a dead claim: the word it expects carries the claim's
//! tag, and a slot freed and claimed again in between carries another tag
//! (2^34 claims of one slot would have to pass between the reclaimer's two
//! loads and its CAS for the tag to come round). Its holder being dead,
//! nothing else writes that word, so the CAS fails only if another reclaimer
//! freed it first.
//!
//! **Revoke** (a claimer that finds no slot free, not even after reclaiming
//! dead ones): compare-and-swap a live holder's *idle* started claim (no
//! buffer pinned) to free, keeping the tag. A pinned word is never revoked
//! (the CAS expects the idle word), and the holder learns it at its next
//! pin, whose compare-and-swap from its idle claim fails; so idle threads,
//! in any process, never keep the slots others need.
//!
//! **Fork.** A slot belongs to the process whose pid it holds: a child
//! inherits its parent's handles and guards but never writes its parent's
//! slots (callers compare the slot's pid with [`own_pid`]) and claims its own.
//!
//! The model in `tests/loom_pins.rs` runs these functions, and the
//! writer's side of `buffers.rs` with them.
//!
//! [`own_pid`]: crate::sys::proc::own_pid

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

use crate::format::Current;
use crate::sync::atomic::{Model, Word64};

/// The bits of the pid (Linux pids are below 2^22).
pub const PID_MASK: u64 = (1 << 22) - 1;
/// Where the pinned buffer (plus one) lies.
pub const BUF_SHIFT: u32 = 22;
/// The bits of the pinned buffer plus one.
pub const BUF_MASK: u64 = 0x7f << BUF_SHIFT;
/// The holder's start time is in `start_time`.
pub const STARTED: u64 = 1 << 29;
/// One claim, in the tag.
pub const TAG_ONE: u64 = 1 << 30;
/// The bits of the claim tag.
pub const TAG_MASK: u64 = !(TAG_ONE - 1);

/// The pid in a word (0: free).
#[inline]
pub fn pid_of(word: u64) -> i32 {
    (word & PID_MASK) as i32
}

/// The pinned buffer in a word, if any.
#[inline]
pub fn buffer_of(word: u64) -> Option<usize> {
    match (word & BUF_MASK) >> BUF_SHIFT {
        0 => None,
        b => Some(b as usize - 1),
    }
}

/// The word of a claim pinning `buffer`.
#[inline]
pub fn with_buffer(claim: u64, buffer: usize) -> u64 {
    (claim & !BUF_MASK) | (((buffer as u64 + 1) << BUF_SHIFT) & BUF_MASK)
}

/// Claim the slot for (`pid`, `start`) if it is free. Returns the claim's
/// word (started, nothing pinned), which only its holder writes from then on.
pub fn claim<M: Model>(word: &M::U64, start_time: &M::U64, pid: i32, start: u64) -> Option<u64> {
    debug_assert!(pid > 0 && pid as u64 <= PID_MASK);
    let w = word.load(Relaxed);
    if pid_of(w) != 0 {
        return None;
    }
    let claimed = (w & TAG_MASK).wrapping_add(TAG_ONE) | pid as u64;
    word.compare_exchange(w, claimed, AcqRel, Relaxed).ok()?;
    crate::crash::point("pin.after_claim");
    start_time.store(start, Release);
    crate::crash::point("pin.after_start");
    let started = claimed | STARTED;
    word.store(started, Release);
    Some(started)
}

/// What a pin found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    /// Pinned the buffer this `current` word (raw: [`Current::from_raw`])
    /// names, re-checked.
    Pinned(u64),
    /// A commit came in between: unpinned again; try again.
    Moved,
    /// The slot is no longer this claim's (revoked while idle): claim
    /// another.
    Lost,
}

/// Pin whatever buffer `current` names, in the slot held by `claim` (idle).
#[inline(always)]
pub fn pin<M: Model>(current: &M::U64, word: &M::U64, claim: u64) -> Pin {
    let c = current.load(Acquire);
    let idle = claim & !BUF_MASK;
    let pinned = with_buffer(claim, Current::from_raw(c).buffer());
    if word
        .compare_exchange(idle, pinned, Acquire, Relaxed)
        .is_err()
    {
        return Pin::Lost;
    }
    crate::crash::point("pin.after_pin");
    // Relaxed: if a writer's scan came first in the word's order, the CAS
    // above acquired it, and the commit before that scan is then seen here.
    if current.load(Relaxed) == c {
        Pin::Pinned(c)
    } else {
        unpin::<M>(word, claim);
        Pin::Moved
    }
}

/// Unpin the slot held by `claim`.
#[inline(always)]
pub fn unpin<M: Model>(word: &M::U64, claim: u64) {
    word.store(claim & !BUF_MASK, Release);
}

/// Free the slot held by `claim`, idle (its holder's release); `false` if
/// it was revoked meanwhile (then it is not this holder's any more).
pub fn release<M: Model>(word: &M::U64, claim: u64) -> bool {
    word.compare_exchange(claim & !BUF_MASK, claim & TAG_MASK, AcqRel, Relaxed)
        .is_ok()
}

/// Free the slot if it holds an idle started claim (of a live holder,
/// whoever it is); returns whether this call freed it.
pub fn revoke_idle<M: Model>(word: &M::U64) -> bool {
    let w = word.load(Acquire);
    if pid_of(w) == 0 || w & STARTED == 0 || buffer_of(w).is_some() {
        return false;
    }
    word.compare_exchange(w, w & TAG_MASK, AcqRel, Relaxed)
        .is_ok()
}

/// The writer's scan: a bit per buffer that any slot pins.
pub fn pinned_buffers<'a, M: Model + 'a>(words: impl IntoIterator<Item = &'a M::U64>) -> u64 {
    let mut pinned = 0u64;
    for word in words {
        if let Some(b) = buffer_of(word.fetch_add(0, AcqRel))
            && b < 64
        {
            pinned |= 1 << b;
        }
    }
    pinned
}

/// Free the slot if its holder is dead, by `alive(pid, start)` (start `None`
/// before the holder stored it). Returns whether this call freed it.
pub fn reclaim_if_dead<M: Model>(
    word: &M::U64,
    start_time: &M::U64,
    alive: impl FnOnce(i32, Option<u64>) -> bool,
) -> bool {
    let mut w = word.load(Acquire);
    let pid = pid_of(w);
    if pid == 0 {
        return false;
    }
    let start = if w & STARTED != 0 {
        let start = start_time.load(Acquire);
        let again = word.load(Acquire);
        if again & !BUF_MASK != w & !BUF_MASK {
            return false; // released or claimed again meanwhile
        }
        w = again;
        Some(start)
    } else {
        None
    };
    if alive(pid, start) {
        return false;
    }
    crate::crash::point("reclaim.after_judge");
    word.compare_exchange(w, w & TAG_MASK, AcqRel, Relaxed)
        .is_ok()
}
