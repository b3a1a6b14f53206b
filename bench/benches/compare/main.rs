//! shmstore against its floors and its peers, in one run, on one machine.
//!
//! ```text
//! cargo bench -p shmstore-bench --bench compare               # everything, then BENCHMARKS.md
//! cargo bench -p shmstore-bench --bench compare -- 64B        # a criterion filter: no BENCHMARKS.md
//! COMPARE_QUICK=1 cargo bench -p shmstore-bench --bench compare   # a short smoke run
//! ```
//!
//! What is measured (criterion medians), with values of 64 B, 4 KiB and
//! 64 KiB (`Bytes<N>`, a `#[repr(C)]` `[u8; N]`) wherever the size matters:
//!
//! - floors: a plain copy out of a System V segment; a bare robust,
//!   process-shared pthread mutex lock/unlock, and the same around a copy into
//!   a segment; a shared futex wake between two processes (ping-pong, half a
//!   round trip); a cache line bounced between two processes spinning on an
//!   atomic word of a segment (ping-pong, half a round trip: the physical
//!   limit of any notification).
//! - `SharedCell`: `load`, `load_into` (into a value the caller keeps),
//!   `store`, `update`; `load` and `load_into` while another process
//!   stores as fast as it can, and that process's stores per second, alone
//!   and while each reader ran; store→observed latency in another process,
//!   both sides spinning on `version()`, and both sides in `wait_for_change`
//!   (ping-pongs, half a round trip).
//! - waking (`wake.rs`), for a 64 B cell, right after the `wait_for_change`
//!   row: a store waking a tokio task in `changed(since).await` or in a
//!   `changes()` stream, or making a `Subscription`'s descriptor readable
//!   to `epoll_wait` (ping-pongs, half a round trip); and one store waking
//!   1, 10 and 100 tokio tasks of another process, timed to the last one
//!   woken (one way, on the monotonic clock); next to them, iceoryx2's
//!   events (`iox.rs`): a notifier waking a listener (ping-pong), and one
//!   `notify` waking the last of 1, 10 and 100 listeners of another process.
//! - by placement (`by_placement.rs`): the rows that wake another process
//!   (the futex and cache-line floors, store→observed spinning and in
//!   `wait_for_change`, the async and descriptor wakes, iceoryx2's events,
//!   the Unix socket echo, the fan-outs; 64 B) again, with both processes
//!   pinned to one CPU, then each to its own (`placement.rs`); the
//!   two-CPU rows are skipped, saying why, where this process may run on
//!   one CPU only.
//! - `SharedRegion` (the value shape of `bench/benches/region.rs`: a name, a
//!   `Vec<u64>` and eight string labels, archives of about 1 KiB, 64 KiB and
//!   1 MiB): `read` of a version already validated, the first `read` of a new
//!   version (validation), `publish`, and rkyv serialising the same value
//!   into a local buffer.
//! - peers: `shared_memory` + `raw_sync` (a process-shared mutex around a
//!   copy, uncontended and against a process storing continuously, whose
//!   stores per second are counted as for `SharedCell`);
//!   cloudflare's `mmap-sync` (`read` with and without `check_bytes`,
//!   `write`); a Unix domain socket between two processes carrying the value
//!   encoded with `bincode` (request/response echo, half a round trip);
//!   `std::sync::Mutex<T>` in one process (the in-process ceiling);
//!   for 64 B and 4 KiB values, iceoryx2's blackboard (`blackboard.rs`:
//!   `get` and `update_with_copy` in one process, and `get` against a
//!   process writing continuously, whose writes per second are counted) and
//!   publish-subscribe (`pubsub.rs`: an echo, each side polling `receive()`,
//!   half a round trip).
//! - scaling: total `load`s per second of 1, 2, 4 and 8 reader processes
//!   while one writer process stores about 100,000 times a second.
//! - tails (`tails.rs`, outside criterion, hdrhistogram): p50, p99, p99.9
//!   and max of `SharedCell::load` (64 B, 4 KiB) and `store` (64 B) and of
//!   `SharedRegion::read` (1 KiB), timed in batches of 100, alone and
//!   against a process writing nonstop; and of one store waking 1, 10 and
//!   100 processes blocked in `wait_for_change`, each wake timed.
//!
//! Then the medians saved by criterion (`estimates.json`) are read back and a
//! Markdown report (medians, ratios, scaling, tails, the acceptance targets) is
//! printed and, on an unfiltered run, written into BENCHMARKS.md between its
//! `generated` markers, with the machine's CPU, core count, kernel and date.
//!
//! Nothing outlives the run. Every System V segment is created at
//! `Key::PRIVATE` and marked for removal at once (`IPC_RMID` alone, which
//! leaves stores working), except the cells processes wait on, which a
//! removal would wake for good: those are removed when their measurement
//! ends, on a panic too. Child processes (this binary run again with
//! [`CHILD_ENV`] set) attach segments by id, and die with their parent
//! (`PR_SET_PDEATHSIG`). A pinned row gives this process its CPU mask
//! back when it ends, on a panic too. Files (mmap-sync's, shared_memory's
//! flinks, the socket) live in a fresh directory in `/dev/shm` (tmpfs), removed
//! at the end, on a panic too; shared_memory's POSIX objects are unlinked as
//! soon as every process has them open. iceoryx2's services are named after
//! the parent's pid and go with the last node that uses them (`iox.rs`).

#[path = "../common/mod.rs"]
mod common;

mod blackboard;
mod by_placement;
mod by_size;
mod ctl;
mod floors;
mod iox;
mod machine;
mod peers;
mod placement;
mod pubsub;
mod region;
mod report;
mod roles;
mod scaling;
mod tails;
mod value;
mod wake;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};

use by_placement::bench_placed;
use by_size::bench_size;
use common::child::exit_if_child;
use common::sys::{TMPFS, TempDir};
use floors::bench_floors;
use machine::Machine;
use region::bench_region;
use report::{Results, report, write_benchmarks_md};
use roles::child_main;
use scaling::scaling;
use tails::tails;

/// Set in a child process: its role, its parent's pid and its arguments.
const CHILD_ENV: &str = "SHMSTORE_BENCH_COMPARE_CHILD";
/// Set in a child process that needs a file: its path.
const CHILD_PATH_ENV: &str = "SHMSTORE_BENCH_COMPARE_PATH";
/// Set (to anything) for a short smoke run.
const QUICK_ENV: &str = "COMPARE_QUICK";

/// The tag of the value that tells an echoing child to exit.
const STOP: u64 = u64::MAX;
/// How long a sleeper waits before checking that its peer is still alive.
const POLL: Duration = Duration::from_millis(100);
/// Spins after which a spinner yields the CPU and checks that its peer is
/// still alive (tens of µs: far more than any one-way time measured, so it
/// only matters when the peer has lost its CPU).
const SPIN_CHECK: u32 = 1 << 10;

/// A spinner's idle turns: a spin-loop hint each; every [`SPIN_CHECK`]th
/// also yields the CPU and says it is time to check on the peer.
#[derive(Default)]
struct Spin(u32);

impl Spin {
    /// One idle turn; `true` when the peer should be checked.
    fn idle(&mut self) -> bool {
        std::hint::spin_loop();
        self.0 += 1;
        if self.0 < SPIN_CHECK {
            return false;
        }
        self.0 = 0;
        std::thread::yield_now();
        true
    }
}

/// Value sizes where the size matters, and their names in the results.
const SIZES: [&str; 3] = ["64B", "4KiB", "64KiB"];
/// Reader processes in the scaling test.
const READERS: [usize; 4] = [1, 2, 4, 8];
/// Stores per second of the writer in the scaling test.
const WRITER_RATE: u64 = 100_000;

/// Run `$f::<N>(args.., name)` for every size of [`SIZES`], in order; the
/// array of what they return.
macro_rules! for_each_size {
    ($f:ident($($arg:expr),*)) => {
        [
            $f::<64>($($arg,)* SIZES[0]),
            $f::<4096>($($arg,)* SIZES[1]),
            $f::<65536>($($arg,)* SIZES[2]),
        ]
    };
}

// ---------------------------------------------------------------------------
// main

/// Run-wide settings and the directory for files.
struct Ctx {
    dir: PathBuf,
    quick: bool,
}

impl Ctx {
    /// Scale a duration down for a quick run.
    fn time(&self, secs: f64) -> Duration {
        Duration::from_secs_f64(if self.quick { secs / 5.0 } else { secs })
    }

    fn samples(&self, n: usize) -> usize {
        if self.quick { 10 } else { n }
    }

    /// Settings of a group of in-process measurements.
    fn local(&self, g: &mut BenchmarkGroup<'_, WallTime>) {
        g.warm_up_time(self.time(0.5))
            .measurement_time(self.time(2.0))
            .sample_size(self.samples(20));
    }

    /// Settings of a group of cross-process measurements, noisier.
    fn ipc(&self, g: &mut BenchmarkGroup<'_, WallTime>) {
        g.warm_up_time(self.time(0.5))
            .measurement_time(self.time(4.0))
            .sample_size(self.samples(50));
    }
}

fn main() {
    // Before criterion sees the arguments: a child runs its role and exits.
    exit_if_child(CHILD_ENV, child_main);

    let started = SystemTime::now();
    let wall = Instant::now();
    let machine = Machine::probe();
    // In a `compare` subdirectory of criterion's, so that group names cannot
    // collide with the other benches'.
    let out_dir = common::report::criterion_dir().join("compare");
    let filtered = std::env::args().skip(1).any(|a| !a.starts_with('-'));
    let dir = run_dir();
    let ctx = Ctx {
        dir: dir.0.clone(),
        quick: std::env::var_os(QUICK_ENV).is_some(),
    };
    let mut c = Criterion::default()
        .warm_up_time(ctx.time(0.5))
        .measurement_time(ctx.time(1.5))
        .sample_size(ctx.samples(20))
        .without_plots()
        .output_directory(&out_dir)
        .configure_from_args();

    bench_floors(&mut c, &ctx);
    let writers = for_each_size!(bench_size(&mut c, &ctx));
    bench_placed(&mut c, &ctx);
    bench_region(&mut c, &ctx);
    let scaling = if filtered_out(&c, "scaling") {
        Vec::new()
    } else {
        READERS.iter().map(|&n| scaling(&ctx, n)).collect()
    };
    let tails = tails(&c, &ctx);
    c.final_summary();
    drop(dir);

    let results = Results {
        out_dir,
        since: started,
    };
    let report = report(
        &results,
        &machine,
        &scaling,
        &writers,
        &tails,
        wall.elapsed(),
        ctx.quick,
    );
    println!("\n{report}");
    if filtered || ctx.quick {
        println!("(filtered or quick run: BENCHMARKS.md left as it is)");
    } else {
        write_benchmarks_md(&report);
    }
}

/// Whether a criterion filter on the command line excludes `name` (for the
/// part measured outside criterion).
fn filtered_out(_c: &Criterion, name: &str) -> bool {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str()))
}

/// A fresh directory for the run's files (in `/dev/shm` if there is one),
/// removed on drop.
fn run_dir() -> TempDir {
    const PREFIX: &str = "shmstore-bench-compare-";
    // On tmpfs where there is one, as mmap-sync is meant to be used: on a
    // disk file system its `write` (which `msync`s) measures the disk.
    let shm = Path::new(TMPFS);
    let tmp = if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    };
    TempDir::remove_stale(&tmp, PREFIX);
    TempDir::new(&tmp, PREFIX)
}
