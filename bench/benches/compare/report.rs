//! The Markdown report of a run (medians, ratios, scaling, the acceptance
//! targets), and writing it into BENCHMARKS.md.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::by_size::{ALONE_SECS, WriterSide};
use crate::common::report::{fmt_opt_ns, median_ns, ratio};
use crate::common::values::REGION_SIZES;
use crate::machine::{Machine, busy_processes, list_or_none, load_average};
use crate::placement::Placement;
use crate::scaling::Scale;
use crate::tails::{ALONE, BATCH, ONE_PUBLISHER, ONE_WRITER, TWO_READERS, Tail, Tails};
use crate::wake::FANOUT;
use crate::{SIZES, WRITER_RATE};

/// Criterion's medians of this run.
pub struct Results {
    pub out_dir: PathBuf,
    pub since: SystemTime,
}

impl Results {
    /// The median of `group/bench` in nanoseconds, if this run measured it.
    fn get(&self, group: &str, bench: &str) -> Option<f64> {
        median_ns(&self.out_dir, group, bench, self.since)
    }
}

/// A median for the report, "n/a" if not measured: as in the other benches'
/// tables, but in milliseconds from 1 ms and in microseconds with two
/// decimals from 1 µs to 10 µs.
fn fmt_ns(ns: Option<f64>) -> String {
    match ns {
        Some(ns) if ns >= 1_000_000.0 => format!("{:.2} ms", ns / 1e6),
        Some(ns) if (1_000.0..10_000.0).contains(&ns) => format!("{:.2} µs", ns / 1e3),
        ns => fmt_opt_ns(ns, 1),
    }
}

/// A rate per second for the report, "n/a" if not measured: in millions
/// with three significant digits or so, in thousands below a million.
fn fmt_rate(r: Option<f64>) -> String {
    match r {
        None => "n/a".into(),
        Some(r) if r >= 100e6 => format!("{:.0} M", r / 1e6),
        Some(r) if r >= 10e6 => format!("{:.1} M", r / 1e6),
        Some(r) if r >= 1e6 => format!("{:.2} M", r / 1e6),
        Some(r) => format!("{:.0} k", r / 1e3),
    }
}

/// A writer's rate while a reader ran, followed by its share of the rate
/// `alone` in parentheses when both were measured.
fn fmt_rate_share(r: Option<f64>, alone: Option<f64>) -> String {
    match (r, alone) {
        (Some(r), Some(a)) if a > 0.0 => format!("{} ({:.0}%)", fmt_rate(Some(r)), r / a * 100.0),
        _ => fmt_rate(r),
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        None => "n/a".into(),
        Some(r) if r >= 100.0 => format!("{r:.0}x"),
        Some(r) if r < 0.1 => format!("1/{:.0}", 1.0 / r),
        Some(r) if r >= 10.0 => format!("{r:.1}x"),
        Some(r) => format!("{r:.2}x"),
    }
}

/// One acceptance target: met when `value` ≤ `max` (a ratio or, with
/// `unit_ns`, nanoseconds).
struct Target {
    what: String,
    value: Option<f64>,
    max: f64,
    strict: bool,
    unit_ns: bool,
}

impl Target {
    /// A ratio that must be at most `max`.
    fn ratio(what: impl Into<String>, value: Option<f64>, max: f64) -> Target {
        Target {
            what: what.into(),
            value,
            max,
            strict: false,
            unit_ns: false,
        }
    }

    /// Whether the bound holds; `None` if nothing was measured.
    fn met(&self) -> Option<bool> {
        self.value.map(|v| {
            if self.strict {
                v < self.max
            } else {
                v <= self.max
            }
        })
    }

    fn row(&self) -> String {
        let fmt = |x: f64| {
            if self.unit_ns {
                fmt_ns(Some(x))
            } else {
                fmt_ratio(Some(x))
            }
        };
        let bound = format!("{} {}", if self.strict { "<" } else { "≤" }, fmt(self.max));
        let (measured, verdict) = match self.value {
            None => ("n/a".to_owned(), "not measured".to_owned()),
            Some(v) => {
                let verdict = if self.met() == Some(true) {
                    "**met**".to_owned()
                } else {
                    format!(
                        "**missed** by {} ({:.0}% over)",
                        if self.unit_ns {
                            fmt_ns(Some(v - self.max))
                        } else {
                            format!("{:.2}x", v - self.max)
                        },
                        (v / self.max - 1.0) * 100.0
                    )
                };
                (fmt(v), verdict)
            }
        };
        format!("| {} | {measured} | {bound} | {verdict} |", self.what)
    }
}

fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    writeln!(out, "| {} |", header.join(" | ")).expect("write to a String");
    let align: Vec<&str> = header
        .iter()
        .enumerate()
        .map(|(i, _)| if i == 0 { "---" } else { "---:" })
        .collect();
    writeln!(out, "|{}|", align.join("|")).expect("write to a String");
    for r in rows {
        writeln!(out, "| {} |", r.join(" | ")).expect("write to a String");
    }
    out.push('\n');
}

/// The report of a run: `writers` holds the writer's side of the contended
/// reads, one per size of [`SIZES`].
pub fn report(
    r: &Results,
    m: &Machine,
    scaling: &[Scale],
    writers: &[WriterSide],
    tails: &Tails,
    took: Duration,
    quick: bool,
) -> String {
    let mut out = String::new();
    let w = &mut out;
    let size_header = ["", "64 B", "4 KiB", "64 KiB"];
    let region_header = ["", "1 KiB", "64 KiB", "1 MiB"];
    let sized = |id: &str| -> Vec<Option<f64>> {
        SIZES
            .iter()
            .map(|s| r.get(s, id).or_else(|| r.get(&format!("{s}_ipc"), id)))
            .collect()
    };
    let regional = |id: &str| -> Vec<Option<f64>> {
        REGION_SIZES
            .iter()
            .map(|(s, _)| {
                if id == "first_read" {
                    r.get("region_first_read", s)
                } else {
                    r.get(&format!("region_{s}"), id)
                }
            })
            .collect()
    };
    let ns_row = |label: &str, xs: &[Option<f64>]| -> Vec<String> {
        std::iter::once(label.to_owned())
            .chain(xs.iter().map(|&x| fmt_ns(x)))
            .collect()
    };
    let ratio_row = |label: &str, a: &[Option<f64>], b: &[Option<f64>]| -> Vec<String> {
        std::iter::once(label.to_owned())
            .chain(a.iter().zip(b).map(|(&x, &y)| fmt_ratio(ratio(x, y))))
            .collect()
    };

    writeln!(
        w,
        "Machine: {}{}, {} cores (`available_parallelism`), Linux {}, {}. \
         Run on {}, {:.1} minutes{}. Load average before the run: {}, after it: {}; \
         other processes running at its start: {}; at its end: {}.\n",
        m.cpu,
        if m.virtual_machine {
            " (virtual machine)"
        } else {
            ""
        },
        m.cores,
        m.kernel,
        m.rustc,
        m.date,
        took.as_secs_f64() / 60.0,
        if quick { ", QUICK smoke settings" } else { "" },
        m.load_before,
        load_average(),
        list_or_none(&m.busy_before),
        list_or_none(&busy_processes()),
    )
    .expect("write to a String");

    // Medians by value size.
    writeln!(w, "### Medians by value size\n").expect("write to a String");
    let rows_spec: [(&str, &str); 22] = [
        (
            "floor: plain copy (`memcpy`) out of a segment",
            "floor_copy",
        ),
        (
            "floor: word-by-word volatile copy out of a segment",
            "floor_copy_words",
        ),
        (
            "floor: robust mutex lock + copy in + unlock",
            "floor_lock_copy",
        ),
        ("`SharedCell::load`", "cell_load"),
        (
            "`SharedCell::load_into` (copies into the caller's value)",
            "cell_load_into",
        ),
        ("`SharedCell::store`", "cell_store"),
        (
            "`CellLease::store` (the write lock kept, `SharedCell::lease`)",
            "cell_lease_store",
        ),
        ("`SharedCell::update`", "cell_update"),
        (
            "iceoryx2 blackboard: `get` (copies the value out)",
            "iceoryx2_blackboard_read",
        ),
        (
            "iceoryx2 blackboard: `update_with_copy`",
            "iceoryx2_blackboard_write",
        ),
        (
            "`SharedCell::load`, another process storing nonstop",
            "cell_load_contended",
        ),
        (
            "`SharedCell::load_into`, another process storing nonstop",
            "cell_load_into_contended",
        ),
        (
            "iceoryx2 blackboard: `get`, another process writing nonstop",
            "iceoryx2_blackboard_read_contended",
        ),
        (
            "`SharedCell` store→observed, spinning reader (one way)",
            "cell_observe_spin",
        ),
        (
            "iceoryx2 publish-subscribe: `send_copy`→`receive`, polling subscriber (one way)",
            "iceoryx2_pubsub_spin",
        ),
        (
            "`SharedCell` store→observed, `wait_for_change` reader (one way)",
            "cell_observe_wait",
        ),
        (
            "shared_memory + raw_sync: lock, copy out",
            "shm_rawsync_load",
        ),
        (
            "shared_memory + raw_sync: lock, copy in",
            "shm_rawsync_store",
        ),
        (
            "shared_memory + raw_sync: copy out, another process storing nonstop",
            "shm_rawsync_load_contended",
        ),
        (
            "Unix socket + bincode, echo (round trip / 2)",
            "uds_bincode",
        ),
        ("`std::sync::Mutex<T>`: lock, copy out", "std_mutex_load"),
        ("`std::sync::Mutex<T>`: lock, copy in", "std_mutex_store"),
    ];
    let rows: Vec<Vec<String>> = rows_spec
        .iter()
        .map(|(label, id)| ns_row(label, &sized(id)))
        .collect();
    table(w, &size_header, &rows);

    writeln!(w, "### Floors without a value\n").expect("write to a String");
    table(
        w,
        &["", "median"],
        &[
            vec![
                "robust process-shared mutex, lock + unlock".into(),
                fmt_ns(r.get("floor", "robust_lock_unlock")),
            ],
            vec![
                "context: a `getpid` system call".into(),
                fmt_ns(r.get("floor", "getpid")),
            ],
            vec![
                "shared futex wake between two processes (one way)".into(),
                fmt_ns(r.get("floor_ipc", "futex_wake")),
            ],
            vec![
                "cache line between two spinning processes (one way)".into(),
                fmt_ns(r.get("floor_ipc", "cacheline")),
            ],
        ],
    );

    let futex = r.get("floor_ipc", "futex_wake");
    let wait = sized("cell_observe_wait")[0];
    let woke = |id: &str| r.get("wake", id);
    let changed = woke("async_changed");
    writeln!(
        w,
        "### Store → waiter woken in another process (64 B, one way)\n"
    )
    .expect("write to a String");
    let rows: Vec<Vec<String>> = [
        ("shared futex wake between two processes (floor)", futex),
        ("`SharedCell` store → `wait_for_change` returns", wait),
        (
            "store → tokio task in `changed(since).await` returns",
            changed,
        ),
        (
            "store → tokio task in a `changes()` stream's `changed().await` returns",
            woke("async_stream"),
        ),
        (
            "store → `Subscription` descriptor readable (`epoll_wait`, then `changes()`)",
            woke("fd_epoll"),
        ),
        (
            "iceoryx2 event: `notify` → listener `timed_wait` returns (no value)",
            woke("iceoryx2_event"),
        ),
    ]
    .iter()
    .map(|(label, ns)| vec![(*label).to_owned(), fmt_ns(*ns)])
    .collect();
    table(w, &["ping-pong, round trip / 2", "median"], &rows);
    let fanout = |kind: &str| -> Vec<Option<f64>> {
        FANOUT
            .iter()
            .map(|n| woke(&format!("{kind}_last_of_{n}")))
            .collect()
    };
    let (tasks, listeners) = (fanout("async"), fanout("iceoryx2"));
    let fanout_header: Vec<String> = std::iter::once("one store, N waiters".to_owned())
        .chain(FANOUT.iter().map(|n| format!("N = {n}")))
        .collect();
    let fanout_header: Vec<&str> = fanout_header.iter().map(String::as_str).collect();
    table(
        w,
        &fanout_header,
        &[
            ns_row(
                "store → the last of N tokio tasks in `changed(since).await` woken",
                &tasks,
            ),
            ns_row(
                "iceoryx2 `notify` → the last of N listeners woken",
                &listeners,
            ),
            ratio_row("tokio tasks / iceoryx2 listeners", &tasks, &listeners),
            ratio_row("tokio tasks / one tokio task", &tasks, &[tasks[0]; 3]),
        ],
    );
    table(
        w,
        &["ratio", ""],
        &[
            vec![
                "`changed(since).await` / `wait_for_change`".into(),
                fmt_ratio(ratio(changed, wait)),
            ],
            vec![
                "`changes()` stream / `wait_for_change`".into(),
                fmt_ratio(ratio(woke("async_stream"), wait)),
            ],
            vec![
                "descriptor (`epoll_wait`) / `wait_for_change`".into(),
                fmt_ratio(ratio(woke("fd_epoll"), wait)),
            ],
            vec![
                "`changed(since).await` / futex wake".into(),
                fmt_ratio(ratio(changed, futex)),
            ],
            vec![
                "`changed(since).await` / iceoryx2 event".into(),
                fmt_ratio(ratio(changed, woke("iceoryx2_event"))),
            ],
            vec![
                "`changes()` stream / iceoryx2 event".into(),
                fmt_ratio(ratio(woke("async_stream"), woke("iceoryx2_event"))),
            ],
        ],
    );
    writeln!(
        w,
        "The first table's rows are ping-pongs (half a round trip, both sides \
         waiting the same way, as `wait_for_change` above); the second's are \
         one way, timed from just before the store (or `notify`) to the time \
         the last waiter woke, on the monotonic clock both processes read. \
         The tokio tasks run on one current-thread runtime; the iceoryx2 \
         listeners are waited on by one thread with epoll.\n"
    )
    .expect("write to a String");
    placement_section(w, r);

    writeln!(w, "### Ratios by value size\n").expect("write to a String");
    let line = r.get("floor_ipc", "cacheline");
    let rows = vec![
        ratio_row(
            "`load` / plain copy (`memcpy`)",
            &sized("cell_load"),
            &sized("floor_copy"),
        ),
        ratio_row(
            "`load` / word-by-word volatile copy",
            &sized("cell_load"),
            &sized("floor_copy_words"),
        ),
        ratio_row(
            "`load_into` / plain copy (`memcpy`)",
            &sized("cell_load_into"),
            &sized("floor_copy"),
        ),
        ratio_row(
            "`store` / robust lock + copy + unlock",
            &sized("cell_store"),
            &sized("floor_lock_copy"),
        ),
        ratio_row(
            "leased `store` / robust lock + copy + unlock",
            &sized("cell_lease_store"),
            &sized("floor_lock_copy"),
        ),
        ratio_row(
            "`update` / robust lock + copy + unlock",
            &sized("cell_update"),
            &sized("floor_lock_copy"),
        ),
        ratio_row(
            "`load` contended / uncontended",
            &sized("cell_load_contended"),
            &sized("cell_load"),
        ),
        ratio_row(
            "store→observed spinning / cache-line ping-pong",
            &sized("cell_observe_spin"),
            &[line; 3],
        ),
        ratio_row(
            "store→observed `wait_for_change` / futex wake",
            &sized("cell_observe_wait"),
            &[futex; 3],
        ),
        ratio_row(
            "shared_memory + raw_sync copy out / `load`",
            &sized("shm_rawsync_load"),
            &sized("cell_load"),
        ),
        ratio_row(
            "shared_memory + raw_sync copy out / `load_into`",
            &sized("shm_rawsync_load"),
            &sized("cell_load_into"),
        ),
        ratio_row(
            "shared_memory + raw_sync copy in / `store`",
            &sized("shm_rawsync_store"),
            &sized("cell_store"),
        ),
        ratio_row(
            "shared_memory + raw_sync contended / `load` contended",
            &sized("shm_rawsync_load_contended"),
            &sized("cell_load_contended"),
        ),
        ratio_row(
            "shared_memory + raw_sync contended / `load_into` contended",
            &sized("shm_rawsync_load_contended"),
            &sized("cell_load_into_contended"),
        ),
        ratio_row(
            "Unix socket + bincode / store→observed `wait_for_change`",
            &sized("uds_bincode"),
            &sized("cell_observe_wait"),
        ),
        ratio_row(
            "`std::sync::Mutex` copy out / `load`",
            &sized("std_mutex_load"),
            &sized("cell_load"),
        ),
        ratio_row(
            "`std::sync::Mutex` copy out / `load_into`",
            &sized("std_mutex_load"),
            &sized("cell_load_into"),
        ),
        ratio_row(
            "`std::sync::Mutex` copy in / `store`",
            &sized("std_mutex_store"),
            &sized("cell_store"),
        ),
    ];
    table(w, &size_header, &rows);
    writeln!(
        w,
        "A ratio above 1 means the second is faster: for the peers' rows, \
         ours is that many times faster.\n"
    )
    .expect("write to a String");
    let rows = vec![
        ratio_row(
            "`store` / iceoryx2 blackboard `update_with_copy`",
            &sized("cell_store"),
            &sized("iceoryx2_blackboard_write"),
        ),
        ratio_row(
            "iceoryx2 blackboard `get` / `load`",
            &sized("iceoryx2_blackboard_read"),
            &sized("cell_load"),
        ),
        ratio_row(
            "iceoryx2 blackboard `get` contended / `load` contended",
            &sized("iceoryx2_blackboard_read_contended"),
            &sized("cell_load_contended"),
        ),
        ratio_row(
            "iceoryx2 publish-subscribe / store→observed spinning",
            &sized("iceoryx2_pubsub_spin"),
            &sized("cell_observe_spin"),
        ),
    ];
    table(w, &size_header, &rows);
    writeln!(
        w,
        "Again, above 1 the second is faster: in the first row, iceoryx2's \
         blackboard write; in the others, ours.\n"
    )
    .expect("write to a String");

    writeln!(w, "### Contended reads: the writer's side\n").expect("write to a String");
    let rows: Vec<Vec<String>> = size_header[1..]
        .iter()
        .zip(writers)
        .map(|(size, ws)| {
            vec![
                (*size).to_owned(),
                fmt_rate(ws.cell_alone),
                fmt_rate_share(ws.cell_load, ws.cell_alone),
                fmt_rate_share(ws.cell_load_into, ws.cell_alone),
                fmt_rate(ws.shm_alone),
                fmt_rate_share(ws.shm_load, ws.shm_alone),
            ]
        })
        .collect();
    table(
        w,
        &[
            "stores/s",
            "`SharedCell::store`, alone",
            "while `load` ran",
            "while `load_into` ran",
            "raw_sync store, alone",
            "while raw_sync's copy out ran",
        ],
        &rows,
    );
    writeln!(
        w,
        "Stores per second of the process storing nonstop in the contended rows \
         above: *alone* counted for {:.2} s after it started, before any reader; \
         *while … ran* counted over all the time criterion ran that reader \
         (warm-up and samples), in parentheses as a share of the rate alone.\n",
        if quick { ALONE_SECS / 5.0 } else { ALONE_SECS }
    )
    .expect("write to a String");
    let rows: Vec<Vec<String>> = size_header[1..]
        .iter()
        .zip(writers)
        .map(|(size, ws)| {
            vec![
                (*size).to_owned(),
                fmt_rate(ws.board_alone),
                fmt_rate_share(ws.board_load, ws.board_alone),
            ]
        })
        .collect();
    table(
        w,
        &[
            "writes/s",
            "iceoryx2 blackboard `update_with_copy`, alone",
            "while its `get` ran",
        ],
        &rows,
    );
    writeln!(
        w,
        "The same for the process writing the iceoryx2 blackboard nonstop \
         in its contended row.\n"
    )
    .expect("write to a String");

    writeln!(
        w,
        "### SharedRegion and mmap-sync (archive of about the size given)\n"
    )
    .expect("write to a String");
    let region_rows = [
        ("`read`, version already validated", "read"),
        ("`read`, first of a new version (validates)", "first_read"),
        ("`publish`", "publish"),
        ("rkyv `to_bytes_in` a local `AlignedVec`", "rkyv_local"),
        (
            "rkyv `to_bytes_in` local `AlignedVec`s, one of 4 in turn",
            "rkyv_local_rotating",
        ),
        (
            "mmap-sync `read(check_bytes = false)`",
            "mmap_sync_read_unchecked",
        ),
        (
            "mmap-sync `read(check_bytes = true)`",
            "mmap_sync_read_checked",
        ),
        ("mmap-sync `write`", "mmap_sync_write"),
    ];
    let mut rows: Vec<Vec<String>> = region_rows
        .iter()
        .map(|(label, id)| ns_row(label, &regional(id)))
        .collect();
    rows.push(ratio_row(
        "`read` / mmap-sync unchecked `read`",
        &regional("read"),
        &regional("mmap_sync_read_unchecked"),
    ));
    rows.push(ratio_row(
        "`publish` / mmap-sync `write`",
        &regional("publish"),
        &regional("mmap_sync_write"),
    ));
    rows.push(ratio_row(
        "`publish` / local rkyv serialisation",
        &regional("publish"),
        &regional("rkyv_local"),
    ));
    rows.push(ratio_row(
        "`publish` / local rkyv serialisation, 4 buffers in turn",
        &regional("publish"),
        &regional("rkyv_local_rotating"),
    ));
    table(w, &region_header, &rows);
    writeln!(
        w,
        "A region has 4 buffers by default and publishes into each in turn \
         (readers keep reading the current one), so a large value's \
         serialisation writes into a buffer last written three publishes \
         ago, further from the processor than a local buffer written every \
         time; the rotating local row pays the same.\n"
    )
    .expect("write to a String");

    writeln!(
        w,
        "### Scaling: `load` of a 64 B cell by N reader processes, one writer \
         process storing about {WRITER_RATE} times a second\n"
    )
    .expect("write to a String");
    let rows: Vec<Vec<String>> = scaling
        .iter()
        .map(|s| {
            vec![
                s.readers.to_string(),
                format!("{:.1} M", s.loads / 1e6),
                format!("{:.1} M", s.loads / 1e6 / s.readers as f64),
                format!("{:.0}", s.stores),
            ]
        })
        .collect();
    table(
        w,
        &[
            "reader processes",
            "loads/s, total",
            "loads/s per reader",
            "writer stores/s",
        ],
        &rows,
    );
    writeln!(
        w,
        "This machine has {} cores: beyond that many busy processes the \
         readers share them, so the total cannot grow.\n",
        m.cores
    )
    .expect("write to a String");
    tails_section(w, tails, m);

    writeln!(w, "### Acceptance targets\n").expect("write to a String");
    let (reads, first_ns) = (regional("read"), regional("read")[0]);
    let mut targets = vec![
        Target::ratio(
            "`load` / plain 64-byte copy, word by word (volatile, as `bench/benches/cell.rs`)",
            ratio(sized("cell_load")[0], sized("floor_copy_words")[0]),
            2.0,
        ),
        Target::ratio(
            "`load` / plain 64-byte copy, `memcpy` (vector moves)",
            ratio(sized("cell_load")[0], sized("floor_copy")[0]),
            2.0,
        ),
        Target::ratio(
            "`store` / robust lock + 64-byte copy + unlock",
            ratio(sized("cell_store")[0], sized("floor_lock_copy")[0]),
            1.3,
        ),
        Target::ratio(
            "store→async task (`changed(since).await`) / store→`wait_for_change` \
                   (64 B, one way)",
            ratio(changed, wait),
            1.5,
        ),
    ];
    targets.push(Target::ratio(
        "leased `store` (`CellLease`) / iceoryx2 blackboard write, 64 B",
        ratio(
            sized("cell_lease_store")[0],
            sized("iceoryx2_blackboard_write")[0],
        ),
        1.0,
    ));
    targets.push(Target::ratio(
        "`load` contended / shared_memory + raw_sync copy out contended, 4 KiB",
        ratio(
            sized("cell_load_contended")[1],
            sized("shm_rawsync_load_contended")[1],
        ),
        1.0,
    ));
    if let Some(ws) = writers.get(1) {
        // The bound is a floor here: the share must be at least 0.5, so the
        // target is met when alone / while-read is at most 2.
        targets.push(Target::ratio(
            "the writer's stores/s alone / while `load` ran, 4 KiB (keeps ≥ 50%)",
            match (ws.cell_alone, ws.cell_load) {
                (Some(a), Some(l)) if l > 0.0 => Some(a / l),
                _ => None,
            },
            2.0,
        ));
    }
    targets.extend(placement_targets(r));
    for ((name, _), &ns) in REGION_SIZES.iter().zip(&reads) {
        targets.push(Target {
            what: format!("region `read` of a validated version, {name}"),
            value: ns,
            max: 3.0,
            strict: false,
            unit_ns: true,
        });
    }
    let last_ns = reads[reads.len() - 1];
    targets.push(Target::ratio(
        "region `read`, 1 MiB vs 1 KiB (slower / faster)",
        match (first_ns, last_ns) {
            (Some(a), Some(b)) => Some(a.max(b) / a.min(b)),
            _ => None,
        },
        1.5,
    ));
    let unchecked = regional("mmap_sync_read_unchecked");
    let publish = regional("publish");
    let write = regional("mmap_sync_write");
    for (i, (name, _)) in REGION_SIZES.iter().enumerate() {
        targets.push(Target::ratio(
            format!("region `read` / mmap-sync unchecked `read`, {name}"),
            ratio(reads[i], unchecked[i]),
            1.0,
        ));
    }
    for (i, (name, _)) in REGION_SIZES.iter().enumerate() {
        targets.push(Target::ratio(
            format!("`publish` / mmap-sync `write`, {name} (≥ 2x faster)"),
            ratio(publish[i], write[i]),
            0.5,
        ));
    }
    targets.push(Target::ratio(
        "`publish` / local rkyv serialisation, 1 MiB",
        ratio(publish[2], regional("rkyv_local")[2]),
        1.2,
    ));
    targets.push(Target::ratio(
        "`publish` / local rkyv serialisation into 4 buffers in turn, 1 MiB",
        ratio(publish[2], regional("rkyv_local_rotating")[2]),
        1.2,
    ));
    targets.extend(tail_targets(tails));
    writeln!(w, "| target | measured | bound | verdict |").expect("write to a String");
    writeln!(w, "|---|---:|---:|---|").expect("write to a String");
    for t in &targets {
        writeln!(w, "{}", t.row()).expect("write to a String");
    }
    let missed: Vec<&str> = targets
        .iter()
        .filter(|t| t.met() == Some(false))
        .map(|t| t.what.as_str())
        .collect();
    let unmeasured = targets.iter().filter(|t| t.met().is_none()).count();
    writeln!(
        w,
        "\n{} of {} targets met, {} missed, {unmeasured} not measured{}",
        targets.iter().filter(|t| t.met() == Some(true)).count(),
        targets.len(),
        missed.len(),
        if missed.is_empty() {
            ".".to_owned()
        } else {
            format!(". Missed: {}.", missed.join("; "))
        }
    )
    .expect("write to a String");
    out
}

const BEGIN: &str = "<!-- generated by `cargo bench -p shmstore-bench --bench compare`: begin -->";
const END: &str = "<!-- generated by `cargo bench -p shmstore-bench --bench compare`: end -->";

/// Put `report` between the markers of BENCHMARKS.md (creating the file if
/// needed), keeping what is written around them.
pub fn write_benchmarks_md(report: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let block = format!("{BEGIN}\n\n{report}\n{END}");
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{block}{}", &old[..b], &old[e + END.len()..])
        }
        _ => format!("# Benchmarks\n\n{block}\n{old}"),
    };
    std::fs::write(&path, new).expect("write BENCHMARKS.md");
    println!("wrote {}", path.display());
}

/// The name of a placement in the report.
fn placement_label(p: Placement) -> &'static str {
    match p {
        Placement::SameCpu => "same CPU",
        Placement::TwoCpus => "two CPUs",
    }
}

/// Row `id` of the `placed_*` groups, one median a placement of
/// [`Placement::ALL`].
fn placed(r: &Results, id: &str) -> Vec<Option<f64>> {
    Placement::ALL
        .iter()
        .map(|p| r.get(&format!("placed_{}", p.name()), id))
        .collect()
}

/// The rows that wake another process, with both processes on one CPU and
/// on two (`by_placement.rs`), and their ratios to the futex floor.
fn placement_section(w: &mut String, r: &Results) {
    writeln!(
        w,
        "### Store → woken in another process, by placement (64 B, one way)\n"
    )
    .expect("write to a String");
    let header: Vec<&str> = std::iter::once("ping-pong, round trip / 2")
        .chain(Placement::ALL.iter().map(|&p| placement_label(p)))
        .collect();
    let ns_row = |label: &str, id: &str| -> Vec<String> {
        std::iter::once(label.to_owned())
            .chain(placed(r, id).into_iter().map(fmt_ns))
            .collect()
    };
    let rows = [
        (
            "shared futex wake between two processes (floor)",
            "futex_wake",
        ),
        (
            "cache line between two spinning processes (floor)",
            "cacheline",
        ),
        (
            "`SharedCell` store→observed, spinning reader",
            "cell_observe_spin",
        ),
        (
            "`SharedCell` store → `wait_for_change` returns",
            "cell_observe_wait",
        ),
        (
            "store → tokio task in `changed(since).await` returns",
            "async_changed",
        ),
        (
            "store → tokio task in a `changes()` stream's `changed().await` returns",
            "async_stream",
        ),
        (
            "store → `Subscription` descriptor readable (`epoll_wait`, then `changes()`)",
            "fd_epoll",
        ),
        (
            "iceoryx2 event: `notify` → listener `timed_wait` returns (no value)",
            "iceoryx2_event",
        ),
        (
            "Unix socket + bincode, echo (request → response)",
            "uds_bincode",
        ),
    ];
    let rows: Vec<Vec<String>> = rows.iter().map(|(l, id)| ns_row(l, id)).collect();
    table(w, &header, &rows);

    let fanout_header: Vec<String> = std::iter::once("one store, N waiters (one way)".to_owned())
        .chain(FANOUT.iter().map(|n| format!("N = {n}")))
        .collect();
    let fanout_header: Vec<&str> = fanout_header.iter().map(String::as_str).collect();
    let mut rows = Vec::new();
    for (kind, label) in [
        (
            "async",
            "store → the last of N tokio tasks in `changed(since).await` woken",
        ),
        (
            "iceoryx2",
            "iceoryx2 `notify` → the last of N listeners woken",
        ),
    ] {
        for (i, &p) in Placement::ALL.iter().enumerate() {
            rows.push(
                std::iter::once(format!("{label}, {}", placement_label(p)))
                    .chain(
                        FANOUT
                            .iter()
                            .map(|n| fmt_ns(placed(r, &format!("{kind}_last_of_{n}"))[i])),
                    )
                    .collect(),
            );
        }
    }
    table(w, &fanout_header, &rows);

    let futex = placed(r, "futex_wake");
    let ratio_row = |label: &str, id: &str, floor: &[Option<f64>]| -> Vec<String> {
        std::iter::once(label.to_owned())
            .chain(
                placed(r, id)
                    .into_iter()
                    .zip(floor)
                    .map(|(x, &y)| fmt_ratio(ratio(x, y))),
            )
            .collect()
    };
    let mut ratio_header = header.clone();
    ratio_header[0] = "ratio";
    table(
        w,
        &ratio_header,
        &[
            ratio_row(
                "`wait_for_change` / futex wake",
                "cell_observe_wait",
                &futex,
            ),
            ratio_row(
                "`changed(since).await` / futex wake",
                "async_changed",
                &futex,
            ),
            ratio_row("`changes()` stream / futex wake", "async_stream", &futex),
            ratio_row("descriptor (`epoll_wait`) / futex wake", "fd_epoll", &futex),
            ratio_row("iceoryx2 event / futex wake", "iceoryx2_event", &futex),
            ratio_row("Unix socket + bincode / futex wake", "uds_bincode", &futex),
            ratio_row(
                "store→observed spinning / cache-line ping-pong",
                "cell_observe_spin",
                &placed(r, "cacheline"),
            ),
        ],
    );
    let cpus: Vec<String> = Placement::ALL
        .iter()
        .map(|&p| match p.cpus() {
            Ok((a, b)) if a == b => format!("*{}*: both on CPU {a}", placement_label(p)),
            Ok((a, b)) => format!(
                "*{}*: the parent on CPU {a}, the other process on CPU {b}",
                placement_label(p)
            ),
            Err(why) => format!("*{}*: not measured, {why}", placement_label(p)),
        })
        .collect();
    writeln!(
        w,
        "The rows of this report that wake another process, measured again \
         with the two processes pinned (`sched_setaffinity`, in both, for the \
         time of each row): {}. The rows elsewhere are not pinned. On one \
         CPU every wake-up is a switch from the storing process to the woken \
         one, and the spinning rows move on only when the spinner yields its \
         CPU (every 1024 spins); on two, a wake-up reaches another CPU, \
         which may have gone idle. Each placement's rows run in one group, \
         its futex floor first.\n",
        cpus.join("; ")
    )
    .expect("write to a String");
}

/// The acceptance targets of the placed rows: `wait_for_change` within
/// 1.2x of the futex floor in each placement.
fn placement_targets(r: &Results) -> Vec<Target> {
    let wait = placed(r, "cell_observe_wait");
    let futex = placed(r, "futex_wake");
    Placement::ALL
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            Target::ratio(
                format!(
                    "store→wake / bare futex wake, {} (64 B, one way)",
                    placement_label(p)
                ),
                ratio(wait[i], futex[i]),
                1.2,
            )
        })
        .collect()
}

/// The operations of the tails table, in its order: (label, id, the
/// kinds of contention measured).
const TAIL_OPS: [(&str, &str, &[&str]); 4] = [
    (
        "`SharedCell::load`, 64 B",
        "load_64B",
        &[ALONE, ONE_WRITER, TWO_READERS],
    ),
    (
        "`SharedCell::load`, 4 KiB",
        "load_4KiB",
        &[ALONE, ONE_WRITER, TWO_READERS],
    ),
    (
        "`SharedCell::store`, 64 B",
        "store_64B",
        &[ALONE, ONE_WRITER],
    ),
    (
        "`SharedRegion::read`, 1 KiB, version already validated",
        "region_read_1KiB",
        &[ALONE, ONE_PUBLISHER],
    ),
];

/// A distribution's cells: samples, p50, p99, p99.9, max ("n/a" if not
/// measured).
fn tail_cells(t: Option<&Tail>) -> Vec<String> {
    match t {
        None => vec!["n/a".into(); 5],
        Some(t) => vec![
            t.ps.len().to_string(),
            fmt_ns(Some(t.ns_at(0.5))),
            fmt_ns(Some(t.ns_at(0.99))),
            fmt_ns(Some(t.ns_at(0.999))),
            fmt_ns(Some(t.max_ns())),
        ],
    }
}

/// p99.9 / p50 of a distribution.
fn tail_spread(t: Option<&Tail>) -> Option<f64> {
    t.and_then(|t| ratio(Some(t.ns_at(0.999)), Some(t.ns_at(0.5))))
}

/// The tails (`tails.rs`): batched operations, then wake-ups.
fn tails_section(w: &mut String, tails: &Tails, m: &Machine) {
    writeln!(w, "### Tails: per-operation latency\n").expect("write to a String");
    let mut rows = Vec::new();
    for (label, id, kinds) in TAIL_OPS {
        for &kind in kinds {
            let t = tails.get(id, kind);
            let others = match t.and_then(|t| t.rate.as_ref()) {
                Some(rate) => format!("{kind} ({rate})"),
                None => kind.to_owned(),
            };
            let mut row = vec![label.to_owned(), others];
            row.extend(tail_cells(t));
            row.push(fmt_ratio(tail_spread(t)));
            rows.push(row);
        }
    }
    table(
        w,
        &[
            "operation (batches of 100)",
            "other processes",
            "batches",
            "p50",
            "p99",
            "p99.9",
            "max",
            "p99.9 / p50",
        ],
        &rows,
    );
    writeln!(
        w,
        "Each sample is a batch of {BATCH} operations timed between two clock \
         reads and recorded as its mean per operation (a clock read costs \
         about as much as one of these operations): a single slow operation \
         weighs a hundredth in its batch, so a tail here is a slow stretch of \
         about {BATCH} operations (an interrupt, a preemption, a run of \
         contended reads). The other processes use the same object; under a \
         publisher, a region `read` validates each new version it meets. \
         Nothing is pinned: where the scheduler runs the reader and the \
         writer on one CPU they take turns instead of contending, and a \
         batch that spans a switch holds the other's time slice (the \
         writer's rate while the reader ran, against its rate alone, shows \
         how much they overlapped). With two readers and a writer, three \
         busy processes share this machine's {} cores. hdrhistogram, three \
         significant digits.\n",
        m.cores
    )
    .expect("write to a String");

    let mut rows = Vec::new();
    for t in &tails.wakes {
        let label = match t.id.rsplit_once('_') {
            Some((_, "last")) => format!(
                "N = {}: the last woken",
                t.id.split('_').nth(1).unwrap_or("?")
            ),
            Some((_, "each")) => {
                format!("N = {}: each waiter", t.id.split('_').nth(1).unwrap_or("?"))
            }
            _ => "N = 1: store→observed, one way".to_owned(),
        };
        let mut row = vec![label];
        row.extend(tail_cells(Some(t)));
        rows.push(row);
    }
    if rows.is_empty() {
        rows.push(
            std::iter::once("not measured".to_owned())
                .chain(tail_cells(None))
                .collect(),
        );
    }
    table(
        w,
        &[
            "one store → N processes in `wait_for_change` woken (64 B)",
            "samples",
            "p50",
            "p99",
            "p99.9",
            "max",
        ],
        &rows,
    );
    writeln!(
        w,
        "Each wake-up timed on its own, from just before the store to the \
         waiter's clock read after its `wait_for_change` returned, on \
         `CLOCK_MONOTONIC`, which every process reads; *the last woken* is \
         one sample a round, *each waiter* N. Each round starts once every \
         waiter waits again and the kernel shows it asleep (untimed); after \
         its store the storing process sleeps until every waiter has \
         reported, as in the ping-pongs. The processes are not pinned.\n"
    )
    .expect("write to a String");
}

/// The acceptance targets of the tails: p99.9 within 10x the median for
/// `load` and region `read` against one process writing nonstop.
fn tail_targets(tails: &Tails) -> Vec<Target> {
    [
        ("`load` 64 B", "load_64B", ONE_WRITER),
        ("`load` 4 KiB", "load_4KiB", ONE_WRITER),
        ("region `read` 1 KiB", "region_read_1KiB", ONE_PUBLISHER),
    ]
    .into_iter()
    .map(|(what, id, kind)| {
        Target::ratio(
            format!("p99.9 / p50 of {what}, {kind} (batches of {BATCH})"),
            tail_spread(tails.get(id, kind)),
            10.0,
        )
    })
    .collect()
}
