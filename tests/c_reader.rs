//! C programs built on `include/shmstore.h` (the format of `FORMAT.md` as a
//! C header) read the cells Rust writes: `tests/c/read_cell.c` and
//! `tests/c/read_stamps.c` read a `SharedCell` while Rust writers never
//! pause, `tests/c/validate.c` checks headers as a reader does, against
//! the fuzz corpus, `tests/c/alive.c` how a creator's life is judged, and
//! `tests/c/wait_change.c` waits for a cell's version to change while a
//! Rust writer in another process stores, removes or leaves it alone.
//! They are compiled with gcc (a test that finds no gcc says so and
//! passes). Regions and names are in `c_reader_region.rs`.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::names::{life_word, own_start_time, set_life, set_notify};
use common::programs::{Programs, Read, compile, key_hex, read_cell, run, spawn, stdout_of};
use common::{Kid, Live, SegGuard, Stamped};
use shmstore::{Key, Segment, SharedCell, SharedRegion};

type Words = [u64; 4];

#[test]
fn c_reader_reads_what_rust_stored() {
    let Some(programs) = compile("stored", &["read_cell"]) else {
        return;
    };
    let key = common::unique_key();
    let cell = SharedCell::<Words>::options()
        .remove_on_drop(true)
        .create(key, [1, 2, 3, 4])
        .expect("create the cell");
    let _guard = SegGuard(cell.id());
    let values: [Words; 3] = [
        [10, 20, 30, 40],
        [u64::MAX, 0, 0x0123_4567_89ab_cdef, 1 << 63],
        [7, 0xdead_beef_0000_0001, 42, u64::MAX - 1],
    ];
    let id = cell.id().to_string();
    let key = key_hex(key);
    for (i, value) in values.iter().enumerate() {
        cell.store(*value).expect("store");
        let expected = [Read {
            version: i as u64 + 1,
            words: *value,
            hash: "ok".to_owned(),
            name: std::any::type_name::<Words>().to_owned(),
        }];
        assert_eq!(read_cell(&programs, &[&id], 1), expected, "by id");
        assert_eq!(
            read_cell(&programs, &["--key", &key], 1),
            expected,
            "by key"
        );
    }
    assert_eq!(cell.load(), values[2], "the C reader changed the cell");

    // A region is not a cell of [u64; 4], and a key with no segment is no
    // cell at all.
    let region = SharedRegion::<String>::options()
        .remove_on_drop(true)
        .create(Key::PRIVATE, 1024)
        .expect("create a region");
    let _region_guard = SegGuard(region.id());
    let out = run(&programs, "read_cell", &[&region.id().to_string()]);
    assert_eq!(out.status.code(), Some(3), "read_cell on a region: {out:?}");
    let absent = common::unique_key();
    let out = run(&programs, "read_cell", &["--key", &key_hex(absent)]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "read_cell at a free key: {out:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no such object"),
        "{out:?}"
    );
}

/// Runs of the reader in the concurrent tests before they give up on seeing
/// a commit.
const ATTEMPTS: usize = 20;

/// The value the writer below commits as version `v`.
fn value_for(v: u64) -> Words {
    [
        v,
        !v,
        v.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        v ^ 0x5555_aaaa_5555_aaaa,
    ]
}

#[test]
fn c_reader_never_sees_a_torn_value_while_rust_writes() {
    let Some(programs) = compile("concurrent", &["read_cell"]) else {
        return;
    };
    let name = "acme.Zähler";
    let cell = SharedCell::<Words>::options()
        .remove_on_drop(true)
        .type_name(name)
        .schema_version(7)
        .create(Key::PRIVATE, value_for(0))
        .expect("create the cell");
    let _guard = SegGuard(cell.id());
    let id = cell.id().to_string();
    let stop = AtomicBool::new(false);
    // The reader prints every read that differs from the one before, so the
    // lines show each value it saw. Runs are repeated until one overlapped
    // the writer's commits (on a loaded machine a run may not).
    let runs = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                cell.update(|v| *v = value_for(v[0] + 1)).expect("update");
            }
        });
        // Stops the writer also when a run panics, so the scope can end.
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop_writer = StopOnDrop(&stop);
        while cell.version() < 100 {
            std::thread::yield_now();
        }
        let mut runs = Vec::new();
        for _ in 0..ATTEMPTS {
            let reads = read_cell(&programs, &[&id], 1_000_000);
            let overlapped = reads.first().map(|r| r.version) != reads.last().map(|r| r.version);
            runs.push(reads);
            if overlapped {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().expect("the writer thread");
        runs
    });
    for reads in &runs {
        let mut last = 0;
        for read in reads {
            assert_eq!(
                read.words,
                value_for(read.version),
                "torn or stale: {read:?}"
            );
            assert_eq!((read.hash.as_str(), read.name.as_str()), ("ok", name));
            assert!(read.version >= last, "version went back: {read:?}");
            last = read.version;
        }
    }
    let reads = runs.last().expect("at least one run");
    let (first, last) = (reads[0].version, reads[reads.len() - 1].version);
    assert!(
        first != last,
        "in {ATTEMPTS} runs the C reader never saw the writer commit"
    );
    println!(
        "run {}: {} lines, versions {first} to {last}",
        runs.len(),
        reads.len()
    );
}

/// Run `validate` on a new private segment holding `bytes` (at least one
/// byte: an empty input becomes one zero byte). Returns the exit code
/// (`None` if it died of a signal) and its output, and Rust's verdict on
/// the same bytes (`None`: no problem).
fn validate_bytes(programs: &Programs, bytes: &[u8]) -> (Option<i32>, String, Option<String>) {
    let mut bytes = bytes.to_vec();
    if bytes.is_empty() {
        bytes.push(0);
    }
    let seg = Segment::options()
        .size(bytes.len())
        .create(true)
        .open(Key::PRIVATE)
        .expect("create a private segment");
    let _guard = SegGuard(seg.id());
    seg.write_at(0, &bytes).expect("write the input");
    let out = run(programs, "validate", &[&seg.id().to_string()]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rust = shmstore::inspect::describe(&bytes, bytes.len()).problem;
    (out.status.code(), said, rust)
}

#[test]
fn c_validator_refuses_corrupt_and_foreign_segments() {
    let Some(programs) = compile("validate", &["validate"]) else {
        return;
    };
    // Live objects are valid.
    for (what, id, guard) in [
        {
            let c = SharedCell::<Words>::create(Key::PRIVATE, [0; 4]).expect("create a cell");
            ("cell", c.id(), SegGuard(c.id()))
        },
        {
            let r = SharedRegion::<String>::create(Key::PRIVATE, 1024).expect("create a region");
            ("region", r.id(), SegGuard(r.id()))
        },
    ] {
        let out = run(&programs, "validate", &[&id.to_string()]);
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && said.starts_with("valid "),
            "a live {what} refused: {said}"
        );
        // The rkyv format FORMAT.md describes is the one Rust writes.
        assert_eq!(
            said.contains(" rkyv_format=ok"),
            what == "region",
            "a live {what}: {said}"
        );
        drop(guard);
    }

    let inputs = common::header_images();
    let (mut accepted, mut refused, mut stricter) = (0, 0, Vec::new());
    let mut failures = Vec::new();
    for (name, bytes) in &inputs {
        let (code, said, rust) = validate_bytes(&programs, bytes);
        match code {
            Some(0) if rust.is_none() => accepted += 1,
            Some(0) => failures.push(format!(
                "{name}: C accepted what Rust refuses ({}): {said}",
                rust.unwrap_or_default()
            )),
            Some(3) if said.starts_with("refused ") => {
                refused += 1;
                if rust.is_none() {
                    stricter.push(format!("{name}: {said}"));
                }
            }
            Some(code) => failures.push(format!("{name}: exit status {code}: {said}")),
            None => failures.push(format!("{name}: the validator crashed: {said}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        stricter.is_empty(),
        "C refused what Rust accepts:\n{}",
        stricter.join("\n")
    );
    assert!(
        accepted > 0,
        "no input was valid: the seeds hold valid headers"
    );
    println!(
        "{} inputs: {accepted} valid, {refused} refused, as Rust judges them",
        inputs.len()
    );
}

/// A creator is judged by all of its threads (FORMAT.md, "Opening"): one
/// whose first thread has exited while another still works lives, so an
/// open waits for it instead of refusing its segment half made.
#[test]
fn c_reader_judges_a_creator_by_all_its_threads() {
    let Some(programs) = compile("alive", &["alive"]) else {
        return;
    };
    let out = run(&programs, "alive", &[]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert_eq!(
        said.lines().filter(|l| l.starts_with("ok ")).count(),
        5,
        "{said}"
    );
}

/// Child roles: the Rust writer of `c_reader_never_tears_large_values`, and
/// the one of the waiting tests, which writes when told to.
#[test]
fn child_entry() {
    let Some(args) = common::child_args() else {
        return;
    };
    match args[0].as_str() {
        "store" => common::store_stamps_until_stopped::<STAMP_WORDS>(common::key_arg(&args, 1)),
        "write_on_command" => write_on_command(common::key_arg(&args, 1)),
        role => panic!("unknown child role {role}"),
    }
}

/// Words of the large stamped values (4 KiB with the sequence number).
const STAMP_WORDS: usize = 511;

/// Values of 4 KiB in a cell of only 2 slots, stored nonstop by another
/// process: a copy takes long enough for the writer to come round to its
/// slot, so a reader that accepted such a copy would print torn reads.
#[test]
fn c_reader_never_tears_large_values() {
    let Some(programs) = compile("stamps", &["read_stamps"]) else {
        return;
    };
    let key = common::unique_key();
    let cell = SharedCell::<Stamped<STAMP_WORDS>>::options()
        .slots(2)
        .remove_on_drop(true)
        .create(key, Stamped::of(0))
        .expect("create the cell");
    let _guard = SegGuard(cell.id());
    let mut writer = Live::spawn(&["store", &key.raw().to_string()]);
    writer.expect("ready");
    while cell.version() < 100 {
        std::thread::yield_now();
    }
    let id = cell.id().to_string();
    let words = STAMP_WORDS.to_string();
    let line = stdout_of(
        "read_stamps",
        run(&programs, "read_stamps", &[&id, &words, "200000"]),
    );
    writer.send("stop");
    let stores: u64 = writer.expect("stores").parse().expect("a count");
    writer.finish();
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
    };
    println!("{} ({stores} stores)", line.trim());
    assert_eq!(field("torn"), 0, "torn reads: {line}");
    assert_eq!(field("backwards"), 0, "went backwards: {line}");
    assert!(field("last") <= stores, "a version never stored: {line}");
    assert!(
        field("versions") > 1,
        "the reader never saw the writer commit: {line}"
    );
}

/// Child role: open the cell of `Words` at `key`, report `ready`, then for
/// each line the parent sends: `store` the next value (reporting `stored`,
/// its version) or `remove` the cell (reporting `removed`); exit at the end
/// of input.
fn write_on_command(key: Key) {
    let cell = SharedCell::<Words>::open(key).expect("open the cell");
    common::report("ready", 1);
    while let Some(command) = common::read_command() {
        match command.as_str() {
            "store" => {
                cell.update(|w| *w = value_for(w[0] + 1)).expect("store");
                common::report("stored", cell.version());
            }
            "remove" => {
                cell.remove().expect("remove");
                common::report("removed", cell.id());
            }
            other => panic!("unknown command {other}"),
        }
    }
}

/// A cell of `Words` at a fresh key, removed by the guard.
fn waiting_cell() -> (SharedCell<Words>, Key, SegGuard) {
    let key = common::unique_key();
    let cell = SharedCell::<Words>::options()
        .remove_on_drop(true)
        .create(key, value_for(0))
        .expect("create the cell");
    let guard = SegGuard(cell.id());
    (cell, key, guard)
}

/// How long a waiter is watched not to return before the change it waits
/// for is made.
const STILL_WAITING: Duration = Duration::from_millis(300);

/// `shmstore_wait_for_change` in a C process sleeps until a Rust writer in
/// another process stores, then returns the new version (with and without
/// a deadline); a `since` other than the version, above or below it,
/// returns at once (the version differs from it).
#[test]
fn c_waiter_wakes_when_a_rust_writer_stores() {
    let Some(programs) = compile("wait-wake", &["wait_change"]) else {
        return;
    };
    let (cell, key, _guard) = waiting_cell();
    let mut writer = Kid::spawn(&["write_on_command", &key.raw().to_string()]);
    writer.expect("ready");
    let key = key_hex(key);
    for timeout in ["forever", "20000"] {
        let since = cell.version();
        let mut waiter = spawn(&programs, "wait_change", &["--key", &key, timeout]);
        assert_eq!(waiter.expect("waiting"), since.to_string());
        assert!(
            waiter.report_within("result", STILL_WAITING).is_none(),
            "timeout {timeout}: the wait ended before anything changed"
        );
        writer.send("store");
        let stored = writer.expect("stored");
        assert_eq!(waiter.expect("result"), "ok", "timeout {timeout}");
        assert_eq!(waiter.expect("version"), stored, "timeout {timeout}");
        let elapsed: u64 = waiter.expect("elapsed_us").parse().unwrap();
        assert!(
            elapsed >= STILL_WAITING.as_micros() as u64,
            "timeout {timeout}: woke after {elapsed} µs, before the store"
        );
        assert!(waiter.wait().success(), "timeout {timeout}");
    }
    assert!(writer.wait().success(), "the writer failed");

    let now = cell.version();
    let id = cell.id().to_string();
    for since in [0, now - 1, now + 1, u64::MAX >> 1] {
        let since = since.to_string();
        let out = run(&programs, "wait_change", &[&id, "forever", &since]);
        assert!(out.status.success(), "since {since}: {out:?}");
        let said = |name| common::report_of(&out.stdout, name);
        assert_eq!(said("result").as_deref(), Some("ok"), "since {since}");
        assert_eq!(said("version"), Some(now.to_string()), "since {since}");
    }
}

/// With nothing written, the wait ends at its timeout (not before) with
/// `SHMSTORE_ETIMEDOUT` and the version it waited on; a zero timeout looks
/// once.
#[test]
fn c_waiter_times_out_when_nothing_changes() {
    let Some(programs) = compile("wait-timeout", &["wait_change"]) else {
        return;
    };
    let (cell, key, _guard) = waiting_cell();
    cell.store(value_for(1)).expect("store");
    for timeout_ms in [0u64, 1, 300] {
        let out = run(
            &programs,
            "wait_change",
            &["--key", &key_hex(key), &timeout_ms.to_string()],
        );
        assert!(out.status.success(), "timeout {timeout_ms}: {out:?}");
        let said = |name| common::report_of(&out.stdout, name);
        assert_eq!(said("result").as_deref(), Some("timedout"), "{out:?}");
        assert_eq!(said("version").as_deref(), Some("1"), "{out:?}");
        let elapsed: u64 = said("elapsed_us").unwrap().parse().unwrap();
        assert!(
            elapsed >= timeout_ms * 1000,
            "timeout {timeout_ms} ms: returned after {elapsed} µs"
        );
        assert!(
            elapsed < timeout_ms * 1000 + 10_000_000,
            "timeout {timeout_ms} ms: returned after {elapsed} µs"
        );
    }
}

/// A wait ends with `SHMSTORE_EREMOVED` when the cell is removed: by a Rust
/// process's `remove()` (which marks the `life` word, removes and wakes),
/// by `IPC_RMID` alone (what `ipcrm` does: the kernel's `SHM_DEST` is all
/// there is to see), and by the `life` mark alone (a remover between its
/// mark and its `IPC_RMID`).
#[test]
fn c_waiter_ends_when_the_cell_is_removed() {
    let Some(programs) = compile("wait-removed", &["wait_change"]) else {
        return;
    };
    for how in ["remove", "ipcrm", "mark"] {
        let (cell, key, _guard) = waiting_cell();
        let mut writer = Kid::spawn(&["write_on_command", &key.raw().to_string()]);
        writer.expect("ready");
        let mut waiter = spawn(
            &programs,
            "wait_change",
            &[&cell.id().to_string(), "forever"],
        );
        assert_eq!(waiter.expect("waiting"), "0");
        assert!(
            waiter.report_within("result", STILL_WAITING).is_none(),
            "{how}: the wait ended before the removal"
        );
        match how {
            "remove" => {
                writer.send("remove");
                writer.expect("removed");
            }
            "ipcrm" => Segment::remove_by_id(cell.id()).expect("IPC_RMID"),
            _ => {
                let seg = Segment::options().attach_id(cell.id()).expect("attach");
                let me = std::process::id() as i32;
                set_life(&seg, life_word(2, me, own_start_time()));
            }
        }
        assert_eq!(waiter.expect("result"), "removed", "{how}");
        assert_eq!(waiter.expect("version"), "0", "{how}");
        assert!(waiter.wait().success(), "{how}");
        assert!(writer.wait().success(), "{how}: the writer failed");
    }
}

/// A peer that writes the `notify` word nonstop (so that every FUTEX_WAIT
/// finds it changed and returns at once) makes no wait outlast its
/// deadline, and ends none before it.
#[test]
fn c_waiter_keeps_its_deadline_while_a_peer_scribbles_on_notify() {
    let Some(programs) = compile("wait-scribbled", &["wait_change"]) else {
        return;
    };
    let (cell, key, _guard) = waiting_cell();
    let seg = Segment::options().attach_id(cell.id()).expect("attach");
    let stop = AtomicBool::new(false);
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            let mut word = 0u32;
            while !stop.load(Ordering::Relaxed) {
                word = word.wrapping_add(0x9e37_79b9);
                set_notify(&seg, word);
            }
        });
        let out = run(&programs, "wait_change", &["--key", &key_hex(key), "300"]);
        stop.store(true, Ordering::Relaxed);
        out
    });
    assert!(out.status.success(), "{out:?}");
    let said = |name| common::report_of(&out.stdout, name);
    assert_eq!(said("result").as_deref(), Some("timedout"), "{out:?}");
    let elapsed: u64 = said("elapsed_us").unwrap().parse().unwrap();
    assert!(
        (300_000..10_000_000).contains(&elapsed),
        "returned after {elapsed} µs"
    );
}
