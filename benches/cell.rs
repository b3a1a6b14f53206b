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
//! Every segment is marked for removal as soon as both processes have it
//! attached, so none outlives the run. The floors' segments are private and
//! reached by id; `SharedCell` can only be opened by key, so the wake
//! benchmark creates its cells at fresh keys, waits for the child to open
//! them, then removes them (and removes them on drop should a panic come
//! first).
//!
//! ```text
//! cargo bench --bench cell
//! ```

mod common;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use common::median_ns;
use criterion::{Bencher, Criterion};
use shmstore::{Error, Key, Segment, SharedCell};

type Value = [u64; 8];

/// Set in a child process: its role and what it attaches.
const CHILD_ENV: &str = "SHMSTORE_BENCH_CELL_CHILD";

/// Sent as the value to tell a child to exit.
const STOP: u64 = u64::MAX;
const STOP32: u32 = u32::MAX;

/// How long a sleeper waits before checking that its peer is still alive.
const POLL: Duration = Duration::from_millis(200);

/// Offset of the 64-byte value in the floors' segments: its own cache lines,
/// apart from the mutex, as a cell's slots are apart from its header.
const DATA_AT: usize = 512;

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
    if let Some(role) = std::env::var_os(CHILD_ENV) {
        let role = role.into_string().expect("child role is UTF-8");
        std::process::exit(match child_main(&role) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("bench child ({role}): {e}");
                1
            }
        });
    }

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

/// Where criterion keeps its results: as criterion decides by default, but
/// without asking `cargo metadata` (the binary lies in `<target>/<profile>/deps`).
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.join("criterion")))
        .unwrap_or_else(|| PathBuf::from("target/criterion"))
}

// ---------------------------------------------------------------------------
// Segments and raw primitives for the floors

/// A private segment of one page, already marked for removal.
fn private_segment() -> Segment {
    let seg = Segment::options()
        .size(4096)
        .create(true)
        .open(Key::PRIVATE)
        .expect("create a private segment");
    seg.remove().expect("mark the segment for removal");
    seg
}

/// The 32-bit atomic word at `offset` in `seg`.
fn word(seg: &Segment, offset: usize) -> &AtomicU32 {
    assert!(offset.is_multiple_of(4) && offset + 4 <= seg.len());
    // SAFETY: the word is 4-aligned (the mapping is page-aligned) and inside
    // the mapping, which lives as long as the borrow of `seg`; every access to
    // it, from either process, is atomic.
    unsafe { &*seg.as_ptr().add(offset).cast::<AtomicU32>() }
}

/// `FUTEX_WAIT` (shared, not private) while `word` holds `expected`, at most
/// `timeout`. Returns on a wake, a signal, a timeout or a changed word.
fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a live, aligned 4-byte word of a shared mapping, which
    // the kernel only reads; `ts` outlives the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            0usize,
            0u32,
        );
    }
}

/// `FUTEX_WAKE` (shared) of every sleeper on `word`.
fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned word; FUTEX_WAKE only computes its key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            0usize,
            0usize,
            0u32,
        );
    }
}

/// A robust, process-shared, error-checking pthread mutex at offset 0 of a
/// private segment (the same kind `SharedCell` writes under), with a 64-byte
/// value at [`DATA_AT`].
struct RawMutexSeg {
    seg: Segment,
}

impl RawMutexSeg {
    fn new() -> Self {
        let seg = private_segment();
        assert!(size_of::<libc::pthread_mutex_t>() <= DATA_AT);
        let m = seg.as_ptr().cast::<libc::pthread_mutex_t>();
        let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: `attr` is initialised by pthread_mutexattr_init before any
        // other use and destroyed after the mutex is made; `m` points to the
        // page-aligned start of a fresh segment, writable, large enough and
        // used by nobody else.
        unsafe {
            let a = attr.as_mut_ptr();
            assert_eq!(libc::pthread_mutexattr_init(a), 0);
            assert_eq!(
                libc::pthread_mutexattr_setpshared(a, libc::PTHREAD_PROCESS_SHARED),
                0
            );
            assert_eq!(
                libc::pthread_mutexattr_setrobust(a, libc::PTHREAD_MUTEX_ROBUST),
                0
            );
            assert_eq!(
                libc::pthread_mutexattr_settype(a, libc::PTHREAD_MUTEX_ERRORCHECK),
                0
            );
            assert_eq!(libc::pthread_mutex_init(m, a), 0);
            libc::pthread_mutexattr_destroy(a);
        }
        RawMutexSeg { seg }
    }

    /// Lock, copy `value` in, unlock.
    #[inline]
    fn store(&self, value: Value) {
        let m = self.seg.as_ptr().cast::<libc::pthread_mutex_t>();
        // SAFETY: the mutex was initialised in `new` and lives in the mapping
        // `self` keeps; the value's 64 bytes at DATA_AT are inside the page,
        // 64-aligned, and written only by this thread while it holds the lock.
        unsafe {
            let rc = libc::pthread_mutex_lock(m);
            debug_assert_eq!(rc, 0);
            std::ptr::write_volatile(self.seg.as_ptr().add(DATA_AT).cast::<Value>(), value);
            let rc = libc::pthread_mutex_unlock(m);
            debug_assert_eq!(rc, 0);
        }
    }
}

impl Drop for RawMutexSeg {
    fn drop(&mut self) {
        // SAFETY: the mutex was initialised in `new` and nobody holds it.
        unsafe { libc::pthread_mutex_destroy(self.seg.as_ptr().cast()) };
    }
}

// ---------------------------------------------------------------------------
// load and store

fn bench_load(c: &mut Criterion) {
    let cell = SharedCell::create(Key::PRIVATE, [7u64; 8]).expect("create a cell");
    cell.remove().expect("mark the cell for removal");
    let seg = private_segment();
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
    cell.remove().expect("mark the cell for removal");
    let floor = RawMutexSeg::new();

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
            floor.store(black_box([n; 8]));
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

fn spawn_child(role: &str) -> Child {
    Command::new(std::env::current_exe().expect("current_exe"))
        .env(CHILD_ENV, role)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn the bench child")
}

/// Panic (rather than hang) if the child has exited.
fn check_child(child: &mut Child) {
    if let Some(status) = child.try_wait().expect("try_wait") {
        panic!("bench child exited early: {status}");
    }
}

/// Let the child exit by itself after `stop`, or kill it.
fn reap(child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Whether the process that started this child is gone (it was re-parented).
fn parent_gone(parent: libc::pid_t) -> bool {
    // SAFETY: getppid has no preconditions and cannot fail.
    unsafe { libc::getppid() != parent }
}

/// Two cells at fresh keys, A written by the parent, B by the child.
struct CellPingPong {
    a: SharedCell<Value>,
    b: SharedCell<Value>,
    b_seen: u64,
    n: u64,
    child: Child,
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
        let role = format!(
            "cell:{}:{}:{}",
            std::process::id(),
            key_a.raw(),
            key_b.raw()
        );
        let mut child = spawn_child(&role);
        // The child stores into B once it has both cells open.
        // Fresh cells start at version 0; the child may have stored already.
        let mut b_seen = 0;
        loop {
            let v = b.wait_for_change(b_seen, Some(POLL)).expect("wait");
            if v != b_seen {
                b_seen = v;
                break;
            }
            check_child(&mut child);
        }
        // Both processes are attached: the keys can go now.
        a.remove().expect("remove A");
        b.remove().expect("remove B");
        CellPingPong {
            a,
            b,
            b_seen,
            n: 0,
            child,
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
                check_child(&mut self.child);
            }
        }
        let elapsed = start.elapsed();
        assert_eq!(self.b.load()[0], self.n, "the child echoed another value");
        elapsed
    }
}

impl Drop for CellPingPong {
    fn drop(&mut self) {
        let _ = self.a.store([STOP; 8]);
        reap(&mut self.child);
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
    seg: Segment,
    n: u32,
    child: Child,
}

const WORD_A: usize = 0;
const WORD_B: usize = 64;
const WORD_READY: usize = 128;

impl FutexPingPong {
    fn start() -> Self {
        let seg = private_segment();
        let mut child = spawn_child(&format!("futex:{}:{}", std::process::id(), seg.id()));
        let ready = word(&seg, WORD_READY);
        while ready.load(Ordering::SeqCst) == 0 {
            futex_wait(ready, 0, POLL);
            check_child(&mut child);
        }
        FutexPingPong { seg, n: 0, child }
    }

    fn round_trips(&mut self, iters: u64) -> Duration {
        let a = word(&self.seg, WORD_A);
        let b = word(&self.seg, WORD_B);
        let start = Instant::now();
        for _ in 0..iters {
            let prev = self.n;
            // Wraps below STOP32.
            self.n = (self.n + 1) % STOP32;
            a.store(self.n, Ordering::SeqCst);
            futex_wake(a);
            loop {
                if b.load(Ordering::SeqCst) == self.n {
                    break;
                }
                futex_wait(b, prev, POLL);
                if b.load(Ordering::SeqCst) == prev {
                    check_child(&mut self.child);
                }
            }
        }
        start.elapsed()
    }
}

impl Drop for FutexPingPong {
    fn drop(&mut self) {
        let a = word(&self.seg, WORD_A);
        a.store(STOP32, Ordering::SeqCst);
        futex_wake(a);
        reap(&mut self.child);
    }
}

fn futex_child(parent: libc::pid_t, id: i32) -> Result<(), Error> {
    let seg = Segment::attach_id(id)?;
    let (a, b, ready) = (
        word(&seg, WORD_A),
        word(&seg, WORD_B),
        word(&seg, WORD_READY),
    );
    let mut seen = a.load(Ordering::SeqCst);
    ready.store(1, Ordering::SeqCst);
    futex_wake(ready);
    loop {
        let v = a.load(Ordering::SeqCst);
        if v == seen {
            futex_wait(a, seen, POLL);
            if a.load(Ordering::SeqCst) == seen && parent_gone(parent) {
                return Ok(());
            }
            continue;
        }
        seen = v;
        if v == STOP32 {
            return Ok(());
        }
        b.store(v, Ordering::SeqCst);
        futex_wake(b);
    }
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

fn fmt_ns(ns: f64) -> String {
    if ns >= 10_000.0 {
        format!("{:.2} µs", ns / 1000.0)
    } else if ns >= 100.0 {
        format!("{ns:.0} ns")
    } else {
        format!("{ns:.2} ns")
    }
}

fn print_table(out_dir: &Path, since: SystemTime) {
    println!();
    println!(
        "| comparison (ours / floor) | ours (median) | floor (median) | ratio | target | met |"
    );
    println!("|---|---:|---:|---:|---:|---|");
    for (group, ours, floor, what, target) in TARGETS {
        let o = median_ns(out_dir, group, ours, since);
        let f = median_ns(out_dir, group, floor, since);
        let (os, fs) = (
            o.map_or("n/a".into(), fmt_ns),
            f.map_or("n/a".into(), fmt_ns),
        );
        let (ratio, met) = match (o, f) {
            (Some(o), Some(f)) if f > 0.0 => {
                let r = o / f;
                (format!("{r:.2}x"), if r <= target { "yes" } else { "no" })
            }
            _ => ("n/a".into(), "not measured"),
        };
        println!("| {what} | {os} | {fs} | {ratio} | ≤ {target:.1}x | {met} |");
    }
}
