//! C programs built on `include/shmstore.h` (the format of `FORMAT.md` as a
//! C header) read the cells Rust writes: `tests/c/read_cell.c` and
//! `tests/c/read_stamps.c` read a `SharedCell` while Rust writers never
//! pause, `tests/c/validate.c` checks headers as a reader does, against
//! the fuzz corpus, and `tests/c/alive.c` how a creator's life is judged.
//! They are compiled with gcc (a test that finds no gcc says so and
//! passes). Regions and names are in `c_reader_region.rs`.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use common::programs::{Programs, Read, compile, key_hex, read_cell, run, stdout_of};
use common::{Live, SegGuard, Stamped};
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

/// Child roles: the Rust writer of `c_reader_never_tears_large_values`.
#[test]
fn child_entry() {
    let Some(args) = common::child_args() else {
        return;
    };
    match args[0].as_str() {
        "store" => common::store_stamps_until_stopped::<STAMP_WORDS>(common::key_arg(&args, 1)),
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
