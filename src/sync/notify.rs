//! Waiting for a change: an event count on one 32-bit word per object
//! (`Header::notify`), beside the object's commit point (a cell's `seq`, a
//! region's `current`).
//!
//! The word holds `WAITING` (bit 0: a read-write waiter may be asleep on the
//! word) and an epoch (bits 1 to 31). Every write to it is a
//! read-modify-write, so all of them lie in one modification order and
//! each release one synchronises with every acquire one that reads a later
//! value (release sequences).
//!
//! - **Writer**, holding the write lock, after the store that commits:
//!   read the word with a read-modify-write that changes nothing
//!   (`fetch_add(0)`); if `WAITING` is set, [`wake`]: replace the word by
//!   `(word & !WAITING) + 2` (compare-and-swap loop) and `FUTEX_WAKE` every
//!   sleeper. All of this happens before the lock is released, so a writer
//!   that dies between its commit and its wake dies holding the lock, and
//!   the next writer, which recovers the lock, calls [`wake`]
//!   unconditionally.
//! - **Waiter** (read-write attachment): load the word (`e`, acquire); if
//!   the commit point moved, done. Unless `e` has `WAITING`, set it by
//!   compare-and-swap from `e` (start over if that fails). Look at the
//!   commit point again; if it did not move, `FUTEX_WAIT` while the word
//!   still holds `e | WAITING`. Read-only attachments cannot write the
//!   word: they sleep on it without announcing themselves, in short slices.
//!
//! **No lost wake-up** (between live processes). Take a waiter that goes to
//! sleep on `x = e | WAITING` after its last look missed a commit `C`, and
//! let `R` be the writer's read-modify-write after `C`. Where the waiter
//! set `WAITING` itself, its CAS and `R` are ordered in the word's
//! modification order; where it found `WAITING` set, its load of `e` read
//! some value of that order. If the waiter's CAS (or the value its load
//! read) came after `R`, it read from `R` or a later read-modify-write, so
//! it synchronises with `R`, and `C`, sequenced before `R`, happens before
//! the waiter's look: the look would have seen `C`. So it came before `R`:
//! `R` reads a value at or after it, with `WAITING` set (only writers clear
//! `WAITING`, each right after a commit of its own, and the first commit
//! after the waiter's look is `C`'s), and `R`'s writer moves the epoch on:
//! from then on the word differs from `x`. The kernel compares the word and
//! queues the waiter atomically with respect to `FUTEX_WAKE`, so the waiter
//! either does not sleep (the word moved) or is queued before the writer's
//! wake and woken by it. Dead waiters leave `WAITING` set: the next commit
//! pays one wake call and clears it; no waiter bookkeeping is needed.
//!
//! **Waiting on several words** ([`wait_any_round`], for a watcher that
//! serves many objects at once): the same steps on each word, one sleep on
//! all of them, which the kernel (`futex_waitv`) compares and queues on
//! atomically with respect to a wake on any one. The argument above holds
//! word by word: for each object whose commit the last look missed, either
//! its writer's read-modify-write came after the waiter's load or CAS of
//! that word, and moves it on (so the sleep is refused or woken), or the
//! look would have seen the commit.
//!
//! **Writers that die.** Between commit and wake: covered by the recovery
//! above. With no later writer at all, waiters still see the change: a
//! read-write waiter sleeps at most [`MAX_SLEEP`] at a time before it looks
//! at the commit point again.
//!
//! The model in `tests/loom_notify.rs` runs these functions.

use std::io;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::Duration;

use super::atomic::{Model, Word32};

/// Bit 0 of the word: a read-write waiter may be asleep on it.
pub const WAITING: u32 = 1;

/// The longest a waiter sleeps before it looks at the commit point again,
/// so that a change whose writer died before waking anyone is still seen.
pub const MAX_SLEEP: Duration = Duration::from_millis(250);

/// How a waiter sleeps on a word until a writer wakes it (the kernel's
/// futex for the real thing; a condition variable in the loom models).
pub trait Sleep<W: ?Sized> {
    /// Sleep while `word` holds `expected`, at most `timeout`; may return
    /// early for any reason.
    fn sleep(&self, word: &W, expected: u32, timeout: Option<Duration>) -> io::Result<()>;
    /// Wake every sleeper on `word`.
    fn wake_all(&self, word: &W);
}

/// How a waiter sleeps on several words at once until a writer wakes any
/// of them (the kernel's `futex_waitv`; a condition variable in the loom
/// models).
pub trait SleepAny<W: ?Sized> {
    /// Sleep while every word holds its expected value, at most `timeout`;
    /// may return early for any reason.
    fn sleep_any(&self, words: &[(&W, u32)], timeout: Option<Duration>) -> io::Result<()>;
}

/// The writer's side, right after the store that commits (and still under
/// the write lock): wake the waiters if any announced themselves.
#[inline]
pub fn after_commit<M: Model, S: Sleep<M::U32>>(word: &M::U32, sleep: &S) {
    if word.fetch_add(0, SeqCst) & WAITING != 0 {
        crate::crash::point("notify.before_wake");
        wake::<M, S>(word, sleep);
    }
}

/// Clear `WAITING`, move the epoch on and wake every sleeper. Called by a
/// writer whose commit found `WAITING`, and unconditionally by a writer that
/// recovered the lock from a dead one and by a removal, whose waiters then
/// find the `life` mark (`store/life/removal.rs`).
pub fn wake<M: Model, S: Sleep<M::U32>>(word: &M::U32, sleep: &S) {
    let mut w = word.load(Relaxed);
    while let Err(now) = word.compare_exchange(w, (w & !WAITING).wrapping_add(2), SeqCst, Relaxed) {
        w = now;
    }
    sleep.wake_all(word);
}

/// One round of waiting: returns `true` as soon as `changed()` says the
/// commit point moved, `false` after a sleep of at most `timeout` (or a
/// wake, or a lost race on the word) without seeing it move. `announce`:
/// set `WAITING` so that writers wake this waiter (a read-write attachment
/// only).
pub fn wait_round<M: Model, S: Sleep<M::U32>>(
    word: &M::U32,
    sleep: &S,
    announce: bool,
    changed: &mut impl FnMut() -> bool,
    timeout: Option<Duration>,
) -> io::Result<bool> {
    let mut e = word.load(SeqCst);
    if changed() {
        return Ok(true);
    }
    if announce && e & WAITING == 0 {
        if word
            .compare_exchange(e, e | WAITING, SeqCst, Relaxed)
            .is_err()
        {
            return Ok(false);
        }
        e |= WAITING;
    }
    if changed() {
        return Ok(true);
    }
    crate::crash::point("notify.before_sleep");
    sleep.sleep(word, e, timeout)?;
    Ok(changed())
}

/// One round of waiting on several words (`(word, announce)` each: set
/// `WAITING` on it, for a read-write attachment), for changes that
/// `changed()` looks at all together: `true` as soon as it says something
/// moved, `false` after a sleep of at most `timeout` (or a wake, or a lost
/// race on a word) without seeing it.
pub fn wait_any_round<M: Model, S: SleepAny<M::U32>>(
    words: &[(&M::U32, bool)],
    sleep: &S,
    changed: &mut impl FnMut() -> bool,
    timeout: Option<Duration>,
) -> io::Result<bool> {
    let mut expected: Vec<(&M::U32, u32)> = words
        .iter()
        .map(|&(word, _)| (word, word.load(SeqCst)))
        .collect();
    if changed() {
        return Ok(true);
    }
    for ((word, e), &(_, announce)) in expected.iter_mut().zip(words) {
        if announce && *e & WAITING == 0 {
            if word
                .compare_exchange(*e, *e | WAITING, SeqCst, Relaxed)
                .is_err()
            {
                return Ok(false);
            }
            *e |= WAITING;
        }
    }
    if changed() {
        return Ok(true);
    }
    crate::crash::point("notify.before_sleep_any");
    sleep.sleep_any(&expected, timeout)?;
    Ok(changed())
}
