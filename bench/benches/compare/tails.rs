//! Tails: distributions of per-operation latency (hdrhistogram, three
//! significant digits, in picoseconds), where criterion's medians say
//! nothing of the slow operations.
//!
//! - Operations of a few nanoseconds (`SharedCell::load` of 64 B and
//!   4 KiB, `SharedCell::store` of 64 B, `SharedRegion::read` of a 1 KiB
//!   archive's version already validated) are timed in batches of
//!   [`BATCH`] between two clock reads, each batch recorded as its mean per
//!   operation: one clock read costs about as much as the operation. Each
//!   with no other process, then with one child process storing (or
//!   publishing) nonstop into the same object, and for `load` with that
//!   writer and one more child process calling `load` nonstop (two readers
//!   and a writer). Under a publisher, a region `read` validates each new
//!   version it meets, as a reader then does.
//! - Wake-ups, tens of microseconds, are timed one by one: a store into a
//!   64-byte cell waking N = 1, 10 and 100 child processes, each blocked in
//!   `wait_for_change` on that cell, timed from just before the store to
//!   each waiter's clock read after its `wait_for_change` returned, on
//!   `CLOCK_MONOTONIC`, which every process reads. Each round records the
//!   last waiter's time and every waiter's. A round starts once every
//!   waiter has said it waits again and the kernel shows it asleep
//!   (untimed); N = 1 is store→observed one way. After its store the
//!   parent sleeps until every waiter has reported, as in the ping-pongs.
//!
//! Measured outside criterion, after it; a quick run records fewer samples.

use std::fs::File;
use std::hint::black_box;
use std::io::Read as _;
use std::path::PathBuf;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Instant;

use criterion::Criterion;
use hdrhistogram::Histogram;
use shmstore::{SharedCell, SharedRegion, Target};

use crate::by_size::ALONE_SECS;
use crate::common::child::{Peer, parent_gone};
use crate::common::values::{Config, REGION_SIZES, config_of_size, read_region, region_with};
use crate::ctl::{
    ARMED, ChildResult, Ctl, HALT, Hammer, LAST_WOKEN, READY, ROUNDS_DONE, WAITER_AT, WriterWindow,
    hammer_loop, spawn,
};
use crate::value::{Bytes, private_cell, waited_cell};
use crate::wake::{armed, now_ns, wait_word, woke};
use crate::{Ctx, POLL, STOP, filtered_out};

/// Operations timed between two clock reads in the batched rows.
pub const BATCH: u64 = 100;
/// The waiting processes one store wakes in the broadcast rows.
pub const BROADCAST: [usize; 3] = [1, 10, 100];

/// One distribution.
pub struct Tail {
    /// What was timed, for the report to find it.
    pub id: String,
    /// What else ran: one of [`ALONE`], [`ONE_WRITER`], [`TWO_READERS`],
    /// [`ONE_PUBLISHER`], or for a broadcast "" (its id says it).
    pub contention: &'static str,
    /// The rate of the process storing or publishing nonstop while this
    /// was measured, and alone before ("18.6 M stores/s; 56.1 M alone"),
    /// if there was one.
    pub rate: Option<String>,
    /// Picoseconds: a batch's mean per operation, or one wake-up.
    pub ps: Histogram<u64>,
}

impl Tail {
    /// The value at quantile `q` in nanoseconds.
    pub fn ns_at(&self, q: f64) -> f64 {
        self.ps.value_at_quantile(q) as f64 / 1e3
    }

    pub fn max_ns(&self) -> f64 {
        self.ps.max() as f64 / 1e3
    }
}

/// Every distribution of a run: the batched operations, then the wakes.
#[derive(Default)]
pub struct Tails {
    pub ops: Vec<Tail>,
    pub wakes: Vec<Tail>,
}

impl Tails {
    /// The distribution `id` measured with `contention`, if measured.
    pub fn get(&self, id: &str, contention: &str) -> Option<&Tail> {
        self.ops
            .iter()
            .chain(&self.wakes)
            .find(|t| t.id == id && t.contention == contention)
    }
}

/// The kinds of contention, as the report says them.
pub const ALONE: &str = "none";
pub const ONE_WRITER: &str = "1 process storing nonstop";
pub const TWO_READERS: &str = "1 process storing nonstop, 1 more calling `load` nonstop";
pub const ONE_PUBLISHER: &str = "1 process publishing nonstop";

/// Measure every distribution that the command line's filters let through
/// (by the names `tails/<id>`).
pub fn tails(c: &Criterion, ctx: &Ctx) -> Tails {
    let mut t = Tails::default();
    let run = |id: &str| !filtered_out(c, &format!("tails/{id}"));
    if run("load_64B") {
        cell_loads::<64>(ctx, "load_64B", &mut t.ops);
    }
    if run("load_4KiB") {
        cell_loads::<4096>(ctx, "load_4KiB", &mut t.ops);
    }
    if run("store_64B") {
        cell_stores(ctx, &mut t.ops);
    }
    if run("region_read_1KiB") {
        region_reads(ctx, &mut t.ops);
    }
    if run("broadcast") {
        for n in BROADCAST {
            broadcast(ctx, n, &mut t.wakes);
        }
    }
    t
}

/// An empty histogram of picoseconds, growing as needed.
fn histogram() -> Histogram<u64> {
    Histogram::new(3).expect("a histogram of 3 significant digits")
}

/// Time `op` in batches of [`BATCH`] for about a second (a fifth of that in
/// a quick run), after a tenth of that untimed: each batch's mean per call.
/// By time, not by count, so that every row spans as many timer ticks and
/// time slices.
fn batches(ctx: &Ctx, mut op: impl FnMut()) -> Histogram<u64> {
    let budget = ctx.time(1.0);
    let warm_until = Instant::now() + budget / 10;
    while Instant::now() < warm_until {
        for _ in 0..BATCH {
            op();
        }
    }
    let mut h = histogram();
    let until = Instant::now() + budget;
    for i in 0u64.. {
        let start = Instant::now();
        for _ in 0..BATCH {
            op();
        }
        let ns = start.elapsed().as_nanos() as u64;
        h.record(ns * 1000 / BATCH).expect("record");
        if i % 256 == 255 && Instant::now() >= until {
            break;
        }
    }
    h
}

/// Print a distribution as it is measured.
fn say(t: &Tail) {
    println!(
        "tails/{} ({}{}): {} samples, p50 {:.1} ns, p99 {:.1} ns, p99.9 {:.1} ns, max {:.1} ns",
        t.id,
        t.contention,
        t.rate.as_ref().map_or(String::new(), |r| format!(", {r}")),
        t.ps.len(),
        t.ns_at(0.5),
        t.ns_at(0.99),
        t.ns_at(0.999),
        t.max_ns()
    );
}

fn push(
    out: &mut Vec<Tail>,
    id: &str,
    contention: &'static str,
    rate: Option<String>,
    ps: Histogram<u64>,
) {
    let t = Tail {
        id: id.to_owned(),
        contention,
        rate,
        ps,
    };
    say(&t);
    out.push(t);
}

/// The writer's rate while the reader ran, from its count read before
/// and after, and its rate alone ("18.6 M stores/s; 56.1 M alone");
/// panics if it made none (it died).
fn rate(unit: &str, window: &WriterWindow, writer: &Hammer) -> Option<String> {
    let rate = window.rate().unwrap_or(0.0);
    assert!(rate > 0.0, "tails: the writer made no {unit} (did it die?)");
    let fmt = |r: f64| {
        if r >= 1e6 {
            format!("{:.1} M", r / 1e6)
        } else {
            format!("{:.0} k", r / 1e3)
        }
    };
    Some(format!(
        "{} {unit}/s; {} alone",
        fmt(rate),
        fmt(writer.alone)
    ))
}

/// A child process storing nonstop into the cell `cell` (values of `N`
/// bytes), counting its stores; halted on drop.
fn cell_writer<const N: usize>(ctx: &Ctx, cell: i32) -> Hammer {
    let ctl = Ctl::new();
    let peer = spawn(
        "cell_hammer",
        &[N as i64, ctl.id().into(), cell.into()],
        None,
    );
    Hammer::running(ctl, peer, ctx.time(ALONE_SECS))
}

/// A child process calling `load` nonstop on the cell `cell`; halted on
/// drop (of the control page's owner, below).
struct Reader {
    ctl: Ctl,
    _peer: Peer,
}

impl Reader {
    fn start<const N: usize>(cell: i32) -> Reader {
        let ctl = Ctl::new();
        let mut peer = spawn(
            "tail_reader",
            &[N as i64, ctl.id().into(), cell.into()],
            None,
        );
        ctl.wait_ready(std::slice::from_mut(&mut peer), 1);
        Reader { ctl, _peer: peer }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.ctl.u64(HALT).store(1, SeqCst);
    }
}

pub fn tail_reader<const N: usize>(ctl: i32, cell: i32) -> ChildResult {
    let ctl = Ctl::attach(ctl)?;
    let cell = SharedCell::<Bytes<N>>::opener().open(Target::Id(cell))?;
    ctl.u64(READY).fetch_add(1, SeqCst);
    while ctl.u64(HALT).load(SeqCst) == 0 {
        for _ in 0..1024 {
            black_box(cell.load());
        }
    }
    Ok(())
}

/// `load` of an `N`-byte cell: alone, against a writer, and against a
/// writer with one more reader.
fn cell_loads<const N: usize>(ctx: &Ctx, id: &str, out: &mut Vec<Tail>) {
    let cell = private_cell(Bytes::<N>::pattern(7));
    let load = || {
        let v = cell.load();
        black_box(&v);
    };
    push(out, id, ALONE, None, batches(ctx, load));

    let writer = cell_writer::<N>(ctx, cell.id());
    let mut window = WriterWindow::default();
    window.mark(&writer.ctl);
    let h = batches(ctx, load);
    window.mark(&writer.ctl);
    push(out, id, ONE_WRITER, rate("stores", &window, &writer), h);

    let reader = Reader::start::<N>(cell.id());
    let mut window = WriterWindow::default();
    window.mark(&writer.ctl);
    let h = batches(ctx, load);
    window.mark(&writer.ctl);
    drop(reader);
    push(out, id, TWO_READERS, rate("stores", &window, &writer), h);
}

/// `store` of a 64-byte cell: alone, and against a writer.
fn cell_stores(ctx: &Ctx, out: &mut Vec<Tail>) {
    const ID: &str = "store_64B";
    let cell = private_cell(Bytes::<64>::pattern(7));
    let mut value = Bytes::<64>::pattern(1);
    let mut n = 0u64;
    let mut store = || {
        n += 1;
        value.0[8] = n as u8;
        cell.store(black_box(value)).expect("store");
    };
    push(out, ID, ALONE, None, batches(ctx, &mut store));

    let writer = cell_writer::<64>(ctx, cell.id());
    let mut window = WriterWindow::default();
    window.mark(&writer.ctl);
    let h = batches(ctx, &mut store);
    window.mark(&writer.ctl);
    push(out, ID, ONE_WRITER, rate("stores", &window, &writer), h);
}

/// `read` of a 1 KiB archive's region: a version already validated, then
/// against a process publishing nonstop (each new version met is
/// validated).
fn region_reads(ctx: &Ctx, out: &mut Vec<Tail>) {
    const ID: &str = "region_read_1KiB";
    let size = REGION_SIZES[0].1;
    let value = config_of_size(size);
    let region = region_with(&value);
    drop(region.read().expect("read")); // validate this version once
    let read = || {
        read_region(&region);
    };
    push(out, ID, ALONE, None, batches(ctx, read));

    let ctl = Ctl::new();
    let peer = spawn(
        "tail_publisher",
        &[ctl.id().into(), region.id().into(), size as i64],
        None,
    );
    let writer = Hammer::running(ctl, peer, ctx.time(ALONE_SECS));
    let mut window = WriterWindow::default();
    window.mark(&writer.ctl);
    let h = batches(ctx, read);
    window.mark(&writer.ctl);
    push(
        out,
        ID,
        ONE_PUBLISHER,
        rate("publishes", &window, &writer),
        h,
    );
}

pub fn tail_publisher(ctl: i32, region: i32, size: usize) -> ChildResult {
    let ctl = Ctl::attach(ctl)?;
    let region = SharedRegion::<Config>::opener().open(Target::Id(region))?;
    let value = config_of_size(size);
    hammer_loop(&ctl, |_| {
        region.publish(&value)?;
        Ok(())
    })
}

type Cell = SharedCell<Bytes<64>>;

/// `waiters` child processes blocked in `wait_for_change` on one cell,
/// which the parent stores into once a round.
struct Broadcast {
    /// Declared first: the children have exited before the cell is
    /// removed.
    peers: Vec<Peer>,
    /// Each child's `/proc/<pid>/stat`.
    stats: Vec<PathBuf>,
    ctl: Ctl,
    cell: Cell,
    waiters: u32,
    rounds: u32,
}

impl Broadcast {
    fn start(waiters: usize) -> Broadcast {
        let mut b = Broadcast {
            peers: Vec::with_capacity(waiters),
            stats: Vec::with_capacity(waiters),
            ctl: Ctl::with_words(WAITER_AT + waiters),
            cell: waited_cell(Bytes::pattern(0)),
            waiters: waiters as u32,
            rounds: 0,
        };
        // One by one into `b`, so that a failure on the way stops (on
        // drop) those already started.
        for i in 0..waiters {
            let args = [
                b.ctl.id().into(),
                b.cell.id().into(),
                i as i64,
                waiters as i64,
            ];
            let peer = spawn("tail_waiter", &args, None);
            b.stats
                .push(PathBuf::from(format!("/proc/{}/stat", peer.id())));
            b.peers.push(peer);
        }
        b
    }

    /// One round: the time from the store to the last waiter's wake, and
    /// each waiter's, into `last` and `each` (picoseconds).
    fn round(&mut self, last: &mut Histogram<u64>, each: &mut Histogram<u64>) {
        self.rounds += 1;
        let peers = &mut self.peers;
        wait_word(self.ctl.u32(ARMED), self.rounds * self.waiters, || {
            peers.iter_mut().for_each(Peer::check)
        });
        self.wait_asleep();
        self.ctl.u64(LAST_WOKEN).store(0, SeqCst);
        let fired_at = now_ns();
        self.cell
            .store(Bytes::pattern(self.rounds.into()))
            .expect("store");
        let peers = &mut self.peers;
        wait_word(self.ctl.u32(ROUNDS_DONE), self.rounds, || {
            peers.iter_mut().for_each(Peer::check)
        });
        let ps = |at: u64| at.saturating_sub(fired_at) * 1000;
        last.record(ps(self.ctl.u64(LAST_WOKEN).load(SeqCst)))
            .expect("record");
        for i in 0..self.waiters as usize {
            each.record(ps(self.ctl.u64(WAITER_AT + i).load(SeqCst)))
                .expect("record");
        }
    }

    /// Return once the kernel shows every waiter asleep (state `S`: each
    /// has said it waits again, and the only sleep after that is the
    /// futex wait of `wait_for_change`).
    fn wait_asleep(&mut self) {
        let mut buf = Vec::with_capacity(512);
        for (stat, peer) in self.stats.iter().zip(&mut self.peers) {
            let mut tries = 0u32;
            while state(stat, &mut buf) != Some(b'S') {
                tries += 1;
                if tries.is_multiple_of(64) {
                    peer.check();
                }
                std::thread::yield_now();
            }
        }
    }
}

impl Drop for Broadcast {
    fn drop(&mut self) {
        let _ = self.cell.store(Bytes::pattern(STOP));
    }
}

/// The state letter of `/proc/<pid>/stat` (`R`, `S`, …), read into `buf`.
fn state(stat: &PathBuf, buf: &mut Vec<u8>) -> Option<u8> {
    buf.clear();
    File::open(stat).ok()?.read_to_end(buf).ok()?;
    // pid (comm) state ...: comm may hold spaces and parentheses.
    let close = buf.iter().rposition(|&b| b == b')')?;
    buf.get(close + 2).copied()
}

/// One store waking `waiters` processes, round after round.
fn broadcast(ctx: &Ctx, waiters: usize, out: &mut Vec<Tail>) {
    let rounds = match (waiters, ctx.quick) {
        (1, false) => 20_000,
        (10, false) => 5_000,
        (_, false) => 2_000,
        (1, true) => 1_000,
        (10, true) => 300,
        (_, true) => 100,
    };
    let mut b = Broadcast::start(waiters);
    let (mut last, mut each) = (histogram(), histogram());
    // A few rounds untimed first.
    let (mut skip_last, mut skip_each) = (histogram(), histogram());
    for _ in 0..(rounds / 20).max(5) {
        b.round(&mut skip_last, &mut skip_each);
    }
    for _ in 0..rounds {
        b.round(&mut last, &mut each);
    }
    drop(b);
    let id = format!("broadcast_{waiters}");
    if waiters == 1 {
        push(out, &id, "", None, each);
    } else {
        push(out, &format!("{id}_last"), "", None, last);
        push(out, &format!("{id}_each"), "", None, each);
    }
}

/// One waiter of a broadcast: wait for each new version of the cell; on
/// each, its time of waking into its word and the round's words.
pub fn tail_waiter(
    parent: libc::pid_t,
    ctl: i32,
    cell: i32,
    index: usize,
    waiters: i32,
) -> ChildResult {
    let ctl = Ctl::attach(ctl)?;
    let cell = Cell::opener().open(Target::Id(cell))?;
    let waiters = u32::try_from(waiters)?;
    let slot = ctl.u64(WAITER_AT + index);
    let mut seen = cell.version();
    // Told to stop before it read the version: no change would come.
    if cell.load().tag() == STOP {
        return Ok(());
    }
    loop {
        armed(&ctl, waiters);
        let v = loop {
            let v = cell.wait_for_change(seen, Some(POLL))?;
            if v != seen {
                break v;
            }
            if parent_gone(parent) {
                return Ok(());
            }
        };
        let woken_at = now_ns();
        seen = v;
        if cell.load().tag() == STOP {
            return Ok(());
        }
        slot.store(woken_at, SeqCst);
        woke(&ctl, waiters, woken_at);
    }
}
