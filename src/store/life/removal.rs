//! Removing an object, and collecting one nobody uses, on the header's
//! `life` word (FORMAT.md, "Removal").
//!
//! **Removal** (`remove()`, `shmstore remove`): on an attachment of the
//! object, mark `life` REMOVING with the remover's pid and start time
//! (compare-and-swap), then `IPC_RMID` on the attachment's id, then wake
//! every waiter; a read-only attachment can neither mark nor wake, and
//! only calls `IPC_RMID`. The attachment keeps the id from naming another segment
//! until it is detached, so the segment removed is the one marked and
//! judged. Writers look at `life` once they hold the write lock and waiters
//! at every round: both return `Error::Removed` as soon as the mark is
//! there. If `IPC_RMID` fails (another user's object), the remover takes
//! its own mark back. A remover that dies between its mark and its
//! `IPC_RMID` leaves the object marked and still at its key: an opener that
//! finds it so judges the remover dead (pid and start time) and finishes
//! the removal it began.
//!
//! **Collection** (`shmstore gc`): judged on an attachment (nobody else
//! attached, its creator gone), then `life` is marked COLLECTING (from
//! LIVE, compare-and-swap), then the attach count is read again
//! (`IPC_STAT`): if the collector's is still the only attachment, the mark
//! becomes REMOVING and the object is removed as above; otherwise the
//! collector takes its mark back. An opener attaches, then reads `life`:
//! COLLECTING by a live collector is waited out; by a dead one it is
//! ignored, and cleared through a read-write attachment.
//!
//! **Why a collector never removes an object someone opened.** The kernel
//! counts an attach and reads the count for `IPC_STAT` under the same
//! per-segment lock, so the collector's second count and an opener's attach
//! are ordered. If the attach came first, the count shows it and the
//! collector backs off. If the count came first, the collector's mark,
//! sequenced before its count, happens before the opener's attach and so
//! before the opener's load of `life`, which sees the mark (or the REMOVING
//! that follows it): the opener waits, and then finds the object gone and
//! never uses it. The model in `tests/loom_life.rs` runs these functions
//! with the kernel's lock as a mutex.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use std::time::Instant;

use crate::error::{Error, Result, Target};
use crate::format::{Header, LIFE_COLLECTING, LIFE_LIVE, LIFE_REMOVING};
use crate::store::Memory;
use crate::store::wait::Futex;
use crate::sync::atomic::{Model, Std, Word64};
use crate::sync::backoff::Backoff;
use crate::sync::notify;
use crate::sys::proc;

/// The state bits of the word.
pub const STATE_MASK: u64 = 3;
const PID_SHIFT: u32 = 2;
const PID_MASK: u64 = (1 << 22) - 1;
const START_SHIFT: u32 = 24;
/// The bits of a start time the word keeps.
pub const START_MASK: u64 = (1 << 40) - 1;

/// The word's actor bits for process `pid` started at `start`.
pub fn actor(pid: i32, start: u64) -> u64 {
    ((pid as u64 & PID_MASK) << PID_SHIFT) | ((start & START_MASK) << START_SHIFT)
}

/// This process as an actor.
pub fn me() -> u64 {
    actor(proc::own_pid(), proc::own_start_time())
}

/// The pid in a word.
pub fn pid_of(word: u64) -> i32 {
    ((word >> PID_SHIFT) & PID_MASK) as i32
}

/// The start time bits in a word.
pub fn start_of(word: u64) -> u64 {
    (word >> START_SHIFT) & START_MASK
}

/// What the word says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    /// In use.
    Live,
    /// A collector is judging it; the whole word.
    Collecting(u64),
    /// Being removed or removed; the whole word.
    Removing(u64),
}

/// Read the word (acquire).
pub fn read<M: Model>(life: &M::U64) -> Life {
    let w = life.load(Acquire);
    match w & STATE_MASK {
        LIFE_LIVE => Life::Live,
        LIFE_COLLECTING => Life::Collecting(w),
        _ => Life::Removing(w),
    }
}

/// Mark the object REMOVING by `me`, from any state but REMOVING; returns
/// the word written, or `None` if another remover marked it first.
pub fn mark_removing<M: Model>(life: &M::U64, me: u64) -> Option<u64> {
    let marked = me | LIFE_REMOVING;
    let mut w = life.load(Relaxed);
    loop {
        if w & STATE_MASK >= LIFE_REMOVING {
            return None;
        }
        match life.compare_exchange(w, marked, AcqRel, Relaxed) {
            Ok(_) => return Some(marked),
            Err(now) => w = now,
        }
    }
}

/// Mark a live object COLLECTING by `me`; returns the word written, or
/// `None` if it is not live.
pub fn mark_collecting<M: Model>(life: &M::U64, me: u64) -> Option<u64> {
    let marked = me | LIFE_COLLECTING;
    let w = life.load(Relaxed);
    if w & STATE_MASK != LIFE_LIVE {
        return None;
    }
    life.compare_exchange(w, marked, AcqRel, Relaxed)
        .ok()
        .map(|_| marked)
}

/// Turn this collector's mark into a removal; `false` if the word moved.
pub fn promote<M: Model>(life: &M::U64, collecting: u64) -> bool {
    let removing = (collecting & !STATE_MASK) | LIFE_REMOVING;
    life.compare_exchange(collecting, removing, AcqRel, Relaxed)
        .is_ok()
}

/// Take back exactly the mark `marked` (a remover whose `IPC_RMID` failed,
/// a collector that found the object in use, or anyone clearing the mark of
/// a collector judged dead); `false` if the word moved.
pub fn unmark<M: Model>(life: &M::U64, marked: u64) -> bool {
    life.compare_exchange(marked, LIFE_LIVE, AcqRel, Relaxed)
        .is_ok()
}

/// Whether the object is marked removed (one load; writers and waiters).
#[inline]
pub fn removed(h: &Header) -> bool {
    h.life.load(Acquire) & STATE_MASK >= LIFE_REMOVING
}

/// Whether the process a mark names still runs (its pid, and the bits of
/// its start time the mark keeps).
pub fn actor_alive(word: u64) -> bool {
    let pid = pid_of(word);
    let start = start_of(word);
    proc::alive(pid)
        && (start == 0 || proc::start_time(pid).is_none_or(|s| s & START_MASK == start))
}

/// Remove the object in `memory` (an attachment, which keeps the id from
/// naming another segment): mark it (read-write attachments), `IPC_RMID`,
/// then wake every waiter. The mark is taken back if `IPC_RMID` fails.
pub fn remove(memory: &Memory, h: &Header) -> Result<()> {
    let writable = !memory.is_read_only();
    let marked = if writable {
        mark_removing::<Std>(&h.life, me())
    } else {
        None
    };
    crate::crash::point("remove.after_mark");
    match memory.remove() {
        Ok(()) => {
            if writable {
                notify::wake::<Std, _>(&h.notify, &Futex);
            }
            Ok(())
        }
        Err(e) => {
            if let Some(m) = marked {
                unmark::<Std>(&h.life, m);
            }
            Err(e)
        }
    }
}

/// What a collection did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collected {
    /// Removed.
    Removed,
    /// Another process attached while it was judged: left alone.
    InUse,
    /// It was being collected or removed by another process: left alone.
    Busy,
}

/// Collect the object in `memory`, which the caller (`catalog::collect`)
/// judged garbage on this very attachment (nobody else attached, its
/// creator gone): mark it, count the attachments again, and remove it only
/// if this one is still the only one.
pub fn collect(memory: &Memory, h: &Header) -> Result<Collected> {
    crate::crash::point("gc.after_judge");
    let Some(marked) = mark_collecting::<Std>(&h.life, me()) else {
        return Ok(Collected::Busy);
    };
    crate::crash::point("gc.after_mark");
    let attached = match memory.info() {
        Ok(info) => info.nattch,
        Err(e) => {
            unmark::<Std>(&h.life, marked);
            return Err(e);
        }
    };
    if attached != 1 || !promote::<Std>(&h.life, marked) {
        unmark::<Std>(&h.life, marked);
        return Ok(Collected::InUse);
    }
    match memory.remove() {
        Ok(()) => {
            notify::wake::<Std, _>(&h.notify, &Futex);
            Ok(Collected::Removed)
        }
        Err(e) => {
            unmark::<Std>(&h.life, (marked & !STATE_MASK) | LIFE_REMOVING);
            Err(e)
        }
    }
}

/// Whether an object just attached may be used: `Ok(true)` if it is live
/// (a collector's mark is waited out while the collector runs, up to
/// `deadline`, and cleared once it is judged dead, on a read-write
/// attachment); `Ok(false)` if it is removed or being removed (a removal
/// whose remover died is finished here, on this attachment; if this process
/// may not remove it, that refusal is the error).
pub fn admit(
    memory: &Memory,
    h: &Header,
    target: Target,
    deadline: Option<Instant>,
) -> Result<bool> {
    let started = Instant::now();
    let mut backoff = Backoff::new();
    loop {
        let word = match read::<Std>(&h.life) {
            Life::Live => return Ok(true),
            Life::Removing(w) => {
                if memory.is_removed()? {
                    return Ok(false);
                }
                if !actor_alive(w) {
                    crate::crash::point("remove.finish");
                    // This process may not be allowed to (another user's
                    // object): then the object stays at its key, marked,
                    // until its owner or root removes it, and is not opened.
                    return match memory.remove() {
                        Ok(()) | Err(Error::IdNotFound { .. }) => Ok(false),
                        Err(e) => Err(e),
                    };
                }
                w
            }
            Life::Collecting(w) => {
                if !actor_alive(w) {
                    if !memory.is_read_only() {
                        unmark::<Std>(&h.life, w);
                    }
                    return Ok(true);
                }
                w
            }
        };
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Error::Busy {
                target,
                pid: pid_of(word),
                removing: word & STATE_MASK >= LIFE_REMOVING,
                waited: started.elapsed(),
            });
        }
        backoff.snooze(deadline);
    }
}
