//! How the compare bench talks to its child processes: starting one (this
//! binary run again with [`CHILD_ENV`] set to a role, its parent's pid and
//! its arguments), and the page of control words they share. A leaf: the
//! measurements import it, and the roles' dispatcher (`roles.rs`) imports
//! the measurements.

use std::ffi::OsStr;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shmstore::Segment;

use crate::common::child::Peer;
use crate::common::sys::{PAGE, private_segment};
use crate::placement::{CPU_ENV, child_cpu};
use crate::{CHILD_ENV, CHILD_PATH_ENV};

/// A child process running `role` with `args`, and with `path` in
/// [`CHILD_PATH_ENV`] if given; stopped (or killed) on drop. While a
/// [`Pin`](crate::placement::Pin) is held, the child runs on the CPU it
/// names for children.
pub fn spawn(role: &str, args: &[i64], path: Option<&Path>) -> Peer {
    let cpu = child_cpu().map(|c| c.to_string());
    let mut vars: Vec<(&str, &OsStr)> = Vec::new();
    if let Some(p) = path {
        vars.push((CHILD_PATH_ENV, p.as_os_str()));
    }
    if let Some(c) = &cpu {
        vars.push((CPU_ENV, OsStr::new(c)));
    }
    Peer::spawn_with(CHILD_ENV, role, args, &vars)
}

/// A page of control words shared with child processes, each word on its
/// own cache line.
pub struct Ctl {
    seg: Segment,
}

/// Indices of the control words.
pub const READY: usize = 0;
pub const START: usize = 1;
pub const HALT: usize = 2;
pub const WORD_A: usize = 3;
pub const WORD_B: usize = 4;
/// The stores a writer child has made so far (the scaling writer, the
/// hammers), published with relaxed stores.
pub const WRITER_COUNT: usize = 5;
pub const READER_COUNT: usize = 8;
/// The fan-out rows (`wake.rs`): how many waits the tasks have entered, how
/// many wake-ups they have had, how many rounds are complete (futex words),
/// and the latest time a task woke (nanoseconds, `CLOCK_MONOTONIC`).
pub const ARMED: usize = 16;
pub const WOKEN: usize = 17;
pub const ROUNDS_DONE: usize = 18;
pub const LAST_WOKEN: usize = 19;
/// The broadcast rows (`tails.rs`): waiter i's time of waking
/// (nanoseconds, `CLOCK_MONOTONIC`) is word `WAITER_AT + i` of a control
/// segment made with room for them ([`Ctl::with_words`]).
pub const WAITER_AT: usize = 20;

/// How many stores a hammer child makes between two updates of its count in
/// [`WRITER_COUNT`].
pub const STORE_COUNT_EVERY: u64 = 64;

impl Ctl {
    pub fn new() -> Self {
        Ctl {
            seg: private_segment(PAGE),
        }
    }

    /// A control segment with room for `words` words (at least a page).
    pub fn with_words(words: usize) -> Self {
        Ctl {
            seg: private_segment((words * 64).max(PAGE)),
        }
    }

    pub fn attach(id: i32) -> Result<Self, shmstore::Error> {
        Ok(Ctl {
            seg: Segment::attach_id(id)?,
        })
    }

    pub fn id(&self) -> i32 {
        self.seg.id()
    }

    /// The 64-bit word `i`.
    pub fn u64(&self, i: usize) -> &AtomicU64 {
        assert!((i + 1) * 64 <= self.seg.len());
        // SAFETY: the word is 64-aligned (the mapping is page-aligned) and
        // inside the mapping, which lives as long as the borrow of `self`;
        // every access to it, from any process, is atomic.
        unsafe { &*self.seg.as_ptr().add(i * 64).cast::<AtomicU64>() }
    }

    /// The 32-bit word `i` (a futex word), on the same line as `u64(i)`:
    /// a given index is used as one or the other.
    pub fn u32(&self, i: usize) -> &AtomicU32 {
        assert!((i + 1) * 64 <= self.seg.len());
        // SAFETY: as in `u64`.
        unsafe { &*self.seg.as_ptr().add(i * 64).cast::<AtomicU32>() }
    }

    /// The writer child's count of stores, with the time it was read.
    pub fn writer_count(&self) -> (Instant, u64) {
        (
            Instant::now(),
            self.u64(WRITER_COUNT).load(Ordering::Relaxed),
        )
    }

    /// The writer child's stores per second over the next `how_long`, this
    /// process sleeping meanwhile.
    pub fn writer_rate(&self, how_long: Duration) -> f64 {
        let mut window = WriterWindow::default();
        window.mark(self);
        std::thread::sleep(how_long);
        window.mark(self);
        window.rate().expect("a window of two marks")
    }

    /// Wait until the READY word reaches `n`, checking that `peers` are
    /// still alive.
    pub fn wait_ready(&self, peers: &mut [Peer], n: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.u64(READY).load(Ordering::SeqCst) < n {
            for p in peers.iter_mut() {
                p.check();
            }
            assert!(Instant::now() < deadline, "bench children not ready");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The stores per second of a writer child between the first and the last
/// of a series of readings of its count (made while something else ran).
#[derive(Default)]
pub struct WriterWindow {
    first: Option<(Instant, u64)>,
    last: Option<(Instant, u64)>,
}

impl WriterWindow {
    /// Read the writer's count: the window runs from the first reading to
    /// this one.
    pub fn mark(&mut self, ctl: &Ctl) {
        let now = ctl.writer_count();
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// Stores per second between the first and the last reading, if there
    /// were two at different times.
    pub fn rate(&self) -> Option<f64> {
        let ((t0, n0), (t1, n1)) = (self.first?, self.last?);
        let secs = (t1 - t0).as_secs_f64();
        (secs > 0.0).then(|| n1.saturating_sub(n0) as f64 / secs)
    }
}

/// A child process that stores nonstop into a value the parent reads and
/// counts its stores in the control page ([`hammer_loop`]); halted on drop.
pub struct Hammer {
    pub ctl: Ctl,
    /// The child's stores per second before any reader.
    pub alone: f64,
    _peer: Peer,
}

impl Hammer {
    /// `peer`, started with `ctl`: wait until it stores, then count its
    /// stores alone for `alone`.
    pub fn running(ctl: Ctl, mut peer: Peer, alone: Duration) -> Hammer {
        ctl.wait_ready(std::slice::from_mut(&mut peer), 1);
        // Make sure it is storing before the measurement starts.
        while ctl.writer_count().1 == 0 {
            peer.check();
            std::thread::yield_now();
        }
        let alone = ctl.writer_rate(alone);
        peer.check();
        Hammer {
            ctl,
            alone,
            _peer: peer,
        }
    }
}

impl Drop for Hammer {
    fn drop(&mut self) {
        self.ctl.u64(HALT).store(1, Ordering::SeqCst);
    }
}

/// The child's side of a [`Hammer`]: say it is ready, then call `store(n)`
/// with n = 1, 2, ... until halted, publishing the count every
/// [`STORE_COUNT_EVERY`] stores.
pub fn hammer_loop(ctl: &Ctl, mut store: impl FnMut(u64) -> ChildResult) -> ChildResult {
    ctl.u64(READY).fetch_add(1, Ordering::SeqCst);
    let count = ctl.u64(WRITER_COUNT);
    let mut n = 0u64;
    while ctl.u64(HALT).load(Ordering::Relaxed) == 0 {
        for _ in 0..STORE_COUNT_EVERY {
            n += 1;
            store(n)?;
        }
        count.store(n, Ordering::Relaxed);
    }
    Ok(())
}

/// What a child role returns: an error ends the child with a message.
pub type ChildResult = Result<(), Box<dyn std::error::Error>>;
