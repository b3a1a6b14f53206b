//! `SharedCell<[u64; 8]>` against the cheapest code doing the same job.
//!
//! Three comparisons, each a criterion group with our measurement and its
//! floor side by side:
//!
//! - `load`: [`SharedCell::load`] against a plain 64-byte volatile copy out of
//!   a System V segment (no seqlock, no retry check).
//! - `store`: [`SharedCell::store`] with nobody waiting against a bare robust,
//!   process-shared, error-checking pthread mutex lock/unlock pair around the
//!   same 64-byte copy into a segment.
//! - `wake`: one-way store→wake latency between two processes against a bare
//!   shared futex wake. Both are ping-pongs with a real second process (this
//!   binary run again with [`CHILD_ENV`] set): the parent publishes `n` into
//!   word or cell A, the child sleeps until it changes and publishes it into
//!   B, the parent sleeps until B changes. Half a round trip is reported.
//!   Ours goes through `store` and `wait_for_change`; the floor is a store to
//!   a futex word plus `FUTEX_WAKE`, and `FUTEX_WAIT` on the other side.
//!
//! After criterion has run, the medians it saved (`estimates.json`) are read
//! back and printed as a Markdown table of ours / floor ratios, with the
//! targets: load within 2x, store within 2x, store→wake within 1.5x.
//!
//! Every segment but the wake benchmark's cells is marked for removal at
//! once (a bare `IPC_RMID`, which leaves stores working), so none outlives
//! the run. The wake benchmark creates its cells at fresh keys and removes
//! them when it ends, on a panic too, once the child is gone: a waiter on a
//! removed cell returns `Error::Removed`, so they cannot go earlier.
//!
//! ```text
//! cargo bench -p shmstore-bench --bench cell
//! ```

mod common;

use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use common::child::{FUTEX_STOP, Peer, exit_if_child, futex_echo, futex_round_trips, parent_gone};
use common::report::{criterion_dir, fmt_opt_ns, judge, median_ns, ratio};
use common::sys::{
    DATA_AT, PAGE, RobustMutexSeg, futex_wait, futex_wake, private_segment, unlink_segment,
};
use criterion::{Bencher, Criterion};
use shmstore::{Error, Key, Segment, SharedCell};

type Value = [u64; 8];

/// Set in a child process: its role and what it attaches.
const CHILD_ENV: &str = "SHMSTORE_BENCH_CELL_CHILD";

/// Sent as the value to tell a child to exit.
const STOP: u64 = u64::MAX;

/// How long a sleeper waits before checking that its peer is still alive.
const POLL: Duration = Duration::from_millis(200);

const TARGETS: [(&str, &str, &str, &str, f64); 3] = [
    (
        "load",
        "shared_cell",
        "plain_copy",
        "`load` / 64-byte copy",
        2.0,
    ),
    (
        "store",
        "shared_cell",
        "mutex_copy",
        "`store` / robust lock+copy+unlock",
        2.0,
    ),
    (
        "wake",
        "shared_cell",
        "futex",
        "store→wake / bare futex wake (one way)",
        1.5,
    ),
];

fn main() {
    // Before criterion sees the arguments: a child runs its loop and exits.
    exit_if_child(CHILD_ENV, child_main);

    let started = SystemTime::now();
    let out_dir = criterion_dir();
    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20)
        .without_plots()
        .output_directory(&out_dir)
        .configure_from_args();

    bench_load(&mut c);
    bench_store(&mut c);
    bench_wake(&mut c);
    c.final_summary();

    print_table(&out_dir, started);
}

// ---------------------------------------------------------------------------
// Segments and raw primitives for the floors

/// The 32-bit atomic word at `offset` in `seg`.
fn word(seg: &Segment, offset: usize) -> &AtomicU32 {
    assert!(offset.is_multiple_of(4) && offset + 4 <= seg.len());
    // SAFETY: the word is 4-aligned (the mapping is page-aligned) and inside
    // the mapping, which lives as long as the borrow of `seg`; every access to
    // it, from either process, is atomic.
    unsafe { &*seg.as_ptr().add(offset).cast::<AtomicU32>() }
}

// ---------------------------------------------------------------------------
// load and store

fn bench_load(c: &mut Criterion) {
    let cell = SharedCell::create(Key::PRIVATE, [7u64; 8]).expect("create a cell");
    unlink_segment(cell.id());
    let seg = private_segment(PAGE);
    let src = seg.as_ptr().wrapping_add(DATA_AT).cast::<Value>();
    // SAFETY: DATA_AT + 64 lies inside the page, 64-aligned; only this thread
    // touches it.
    unsafe { std::ptr::write_volatile(src, [7u64; 8]) };

    let mut g = c.benchmark_group("load");
    g.bench_function("shared_cell", |b| b.iter(|| black_box(cell.load())));
    g.bench_function("plain_copy", |b| {
        b.iter(|| {
            // SAFETY: as above; no other process or thread writes it.
            black_box(unsafe { std::ptr::read_volatile(black_box(src)) })
        })
    });
    g.finish();
}

fn bench_store(c: &mut Criterion) {
    let cell = SharedCell::create(Key::PRIVATE, [0u64; 8]).expect("create a cell");
    unlink_segment(cell.id());
    let floor = RobustMutexSeg::new(size_of::<Value>());

    let mut g = c.benchmark_group("store");
    g.bench_function("shared_cell", |b| {
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            cell.store(black_box([n; 8])).expect("store");
        })
    });
    g.bench_function("mutex_copy", |b| {
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            floor.store_volatile(black_box([n; 8]));
        })
    });
    g.finish();
}

// ---------------------------------------------------------------------------
// store→wake ping-pong

fn bench_wake(c: &mut Criterion) {
    let mut ours: Option<CellPingPong> = None;
    let mut floor: Option<FutexPingPong> = None;
    let mut g = c.benchmark_group("wake");
    // A wake across CPUs varies a lot from one sample to the next (on a
    // virtual machine, waking an idle vCPU dominates): more samples, same time.
    g.sample_size(40);
    g.bench_function("shared_cell", |b: &mut Bencher| {
        let p = ours.get_or_insert_with(CellPingPong::start);
        b.iter_custom(|iters| p.round_trips(iters) / 2);
    });
    g.bench_function("futex", |b: &mut Bencher| {
        let p = floor.get_or_insert_with(FutexPingPong::start);
        b.iter_custom(|iters| p.round_trips(iters) / 2);
    });
    g.finish();
}

/// Two cells at fresh keys, A written by the parent, B by the child.
struct CellPingPong {
    /// Declared first: the child is reaped before the cells are detached.
    child: Peer,
    a: SharedCell<Value>,
    b: SharedCell<Value>,
    b_seen: u64,
    n: u64,
}

/// This binary run again as a child: `role` with the arguments `args`.
fn spawn_child(role: &str, args: &[i64]) -> Peer {
    Peer::spawn(CHILD_ENV, role, args, None)
}

/// Create a cell at a key nobody uses, removed on drop until removed for good.
fn cell_at_fresh_key(salt: u32) -> (SharedCell<Value>, Key) {
    let base = (std::process::id() << 8) ^ 0x5ce1_0000 ^ salt;
    for attempt in 0..64u32 {
        let raw = base.wrapping_add(attempt.wrapping_mul(0x9e37_79b9)) as i32;
        let Ok(key) = Key::new(raw) else { continue };
        match SharedCell::options()
            .remove_on_drop(true)
            .create(key, [0u64; 8])
        {
            Ok(cell) => return (cell, key),
            Err(Error::AlreadyExists { .. }) => continue,
            Err(e) => panic!("create a cell at {key}: {e}"),
        }
    }
    panic!("no free key for a cell");
}

impl CellPingPong {
    fn start() -> Self {
        let (a, key_a) = cell_at_fresh_key(1);
        let (b, key_b) = cell_at_fresh_key(2);
        let mut child = spawn_child("cell", &[key_a.raw().into(), key_b.raw().into()]);
        // The child stores into B once it has both cells open.
        // Fresh cells start at version 0; the child may have stored already.
        let mut b_seen = 0;
        loop {
            let v = b.wait_for_change(b_seen, Some(POLL)).expect("wait");
            if v != b_seen {
                b_seen = v;
                break;
            }
            child.check();
        }
        CellPingPong {
            child,
            a,
            b,
            b_seen,
            n: 0,
        }
    }

    fn round_trips(&mut self, iters: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            self.n += 1;
            self.a.store([self.n; 8]).expect("store A");
            loop {
                let v = self
                    .b
                    .wait_for_change(self.b_seen, Some(POLL))
                    .expect("wait B");
                if v != self.b_seen {
                    self.b_seen = v;
                    break;
                }
                self.child.check();
            }
        }
        let elapsed = start.elapsed();
        assert_eq!(self.b.load()[0], self.n, "the child echoed another value");
        elapsed
    }
}

impl Drop for CellPingPong {
    fn drop(&mut self) {
        // The child exits on this value; `child`, dropped next, waits for it.
        let _ = self.a.store([STOP; 8]);
    }
}

fn cell_child(parent: libc::pid_t, key_a: i32, key_b: i32) -> Result<(), Error> {
    let a = SharedCell::<Value>::open(Key::new(key_a)?)?;
    let b = SharedCell::<Value>::open(Key::new(key_b)?)?;
    let mut seen = a.version();
    b.store([0; 8])?;
    loop {
        let v = a.wait_for_change(seen, Some(POLL))?;
        if v == seen {
            if parent_gone(parent) {
                return Ok(());
            }
            continue;
        }
        seen = v;
        let value = a.load();
        if value[0] == STOP {
            return Ok(());
        }
        b.store(value)?;
    }
}

/// Two futex words in one private segment, on separate cache lines: A at 0,
/// written by the parent, B at 64, written by the child.
struct FutexPingPong {
    /// Declared first: the child is reaped before the segment is detached.
    child: Peer,
    seg: Segment,
    n: u32,
}

const WORD_A: usize = 0;
const WORD_B: usize = 64;
const WORD_READY: usize = 128;

impl FutexPingPong {
    fn start() -> Self {
        let seg = private_segment(PAGE);
        let mut child = spawn_child("futex", &[seg.id().into()]);
        let ready = word(&seg, WORD_READY);
        while ready.load(Ordering::SeqCst) == 0 {
            futex_wait(ready, 0, POLL);
            child.check();
        }
        FutexPingPong { child, seg, n: 0 }
    }

    fn round_trips(&mut self, iters: u64) -> Duration {
        let a = word(&self.seg, WORD_A);
        let b = word(&self.seg, WORD_B);
        futex_round_trips(a, b, &mut self.n, iters, POLL, || self.child.check())
    }
}

impl Drop for FutexPingPong {
    fn drop(&mut self) {
        // The child exits on this value; `child`, dropped next, waits for it.
        let a = word(&self.seg, WORD_A);
        a.store(FUTEX_STOP, Ordering::SeqCst);
        futex_wake(a);
    }
}

fn futex_child(parent: libc::pid_t, id: i32) -> Result<(), Error> {
    let seg = Segment::attach_id(id)?;
    let (a, b, ready) = (
        word(&seg, WORD_A),
        word(&seg, WORD_B),
        word(&seg, WORD_READY),
    );
    futex_echo(a, b, parent, POLL, || {
        ready.store(1, Ordering::SeqCst);
        futex_wake(ready);
    });
    Ok(())
}

fn child_main(role: &str) -> Result<(), Box<dyn std::error::Error>> {
    let parts: Vec<&str> = role.split(':').collect();
    match parts.as_slice() {
        ["cell", parent, a, b] => Ok(cell_child(parent.parse()?, a.parse()?, b.parse()?)?),
        ["futex", parent, id] => Ok(futex_child(parent.parse()?, id.parse()?)?),
        _ => Err(format!("unknown role {role:?}").into()),
    }
}

// ---------------------------------------------------------------------------
// The summary table

fn print_table(out_dir: &Path, since: SystemTime) {
    println!();
    println!(
        "| comparison (ours / floor) | ours (median) | floor (median) | ratio | target | met |"
    );
    println!("|---|---:|---:|---:|---:|---|");
    for (group, ours, floor, what, target) in TARGETS {
        let o = median_ns(out_dir, group, ours, since);
        let f = median_ns(out_dir, group, floor, since);
        let (os, fs) = (fmt_opt_ns(o, 2), fmt_opt_ns(f, 2));
        let (ratio, met) = judge(ratio(o, f), |r| r <= target);
        println!("| {what} | {os} | {fs} | {ratio} | ≤ {target:.1}x | {met} |");
    }
}
