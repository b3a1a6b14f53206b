//! The Python reader (`python/shmstore_reader/`), written from FORMAT.md
//! alone with the standard library only, against cells Rust makes and
//! writes: it finds them by key, id and name (at any of a name's keys, past
//! claims, segments without a magic and other users' segments; waiting for
//! a live or stopped creator's claim; reporting another user's object of the
//! name, and opening it when told to trust that user), honours the `life`
//! word of an object being removed or collected, never returns a torn cell
//! value while Rust stores nonstop, refuses every damaged or foreign header
//! of the fuzz corpus that Rust refuses, runs both as a module and on its
//! directory, and waits for a cell's version to change while a Rust writer
//! in another process stores, removes or leaves it alone. Regions and
//! their archives: `python_region.rs`.
//!
//! Each test is skipped, saying why, when `python3` cannot be run.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::names::{
    NameGuard, cell_image, crowded, dead_pid, documented_key, fresh_name, life_word, make_ready,
    own_start_time, plant, set_life, set_notify,
};
use common::python::{
    PACKAGE, PYTHON_PATH, PyRun, hex, hex_key, py, python_or_skip, wait_for_change,
};
use common::{Kid, SegGuard, Stamped, child_args, key_arg, unique_key};
use serde_json::{Value, json};
use shmstore::{Key, Segment, SharedCell};

/// A plain-data value with fields of several sizes and no padding.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
struct Reading {
    id: u64,
    temp: f64,
    count: i32,
    flags: u16,
    level: u8,
    ok: u8,
}

/// `struct` format of [`Reading`].
const READING: &str = "<QdiHBB";

fn reading_json(r: &Reading) -> Value {
    json!([r.id, r.temp, r.count, r.flags, r.level, r.ok])
}

#[test]
fn child_entry() {
    let Some(args) = child_args() else { return };
    match args[0].as_str() {
        "store_stamps" => common::store_stamps_until_stopped::<4>(key_arg(&args, 1)),
        "create_named" | "create_as_nobody" => {
            let mut options = SharedCell::<Words>::options();
            let value = if args[0] == "create_as_nobody" {
                common::drop_to_nobody();
                options.mode(0o644);
                [3, 1, 4, 1]
            } else {
                [9, 9, 9, 9]
            };
            let cell = options
                .create(Key::named(&args[1]).unwrap(), value)
                .expect("create the named cell");
            common::report("created", cell.id());
        }
        "remove" => {
            let cell = SharedCell::<Words>::open(Key::named(&args[1]).unwrap()).expect("open");
            cell.remove().expect("remove");
            common::report("removed", cell.id());
        }
        // Store the next value or remove the cell at the key, as told.
        "write_on_command" => {
            let cell = SharedCell::<Words>::open(key_arg(&args, 1)).expect("open");
            common::report("ready", 1);
            while let Some(command) = common::read_command() {
                match command.as_str() {
                    "store" => {
                        cell.update(|w| w[0] += 1).expect("store");
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
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

#[test]
fn reads_a_cell_by_key_id_and_name() {
    if !python_or_skip("reads_a_cell_by_key_id_and_name") {
        return;
    }
    let key = unique_key();
    let first = Reading {
        id: 1,
        temp: -40.0,
        count: -7,
        flags: 0xbeef,
        level: 3,
        ok: 1,
    };
    let cell = SharedCell::<Reading>::create(key, first).unwrap();
    let _guard = SegGuard(cell.id());
    let last = Reading {
        id: u64::MAX,
        temp: 21.625,
        count: i32::MIN,
        flags: 7,
        level: 255,
        ok: 0,
    };
    cell.store(Reading { id: 2, ..first }).unwrap();
    cell.store(last).unwrap();

    for target in [
        hex_key(key),
        format!("key:{}", key.raw()),
        cell.id().to_string(),
        format!("id:{}", cell.id()),
    ] {
        let read = py(&["cell", &target, "--struct", READING]).ok();
        assert_eq!(read["version"], 2, "{target}");
        assert_eq!(read["value"], reading_json(&last), "{target}");
    }
    let raw = py(&["cell", &hex_key(key)]).ok();
    assert_eq!(raw["bytes"], hex(bytemuck::bytes_of(&last)));

    let info = py(&["info", &hex_key(key)]).ok();
    assert_eq!(info["kind"], "cell");
    assert_eq!(info["type_name"], std::any::type_name::<Reading>());
    assert_eq!(info["value_size"], 24);
    assert_eq!(info["value_align"], 8);
    assert_eq!(info["fingerprint"], "ok");
    assert_eq!(info["version"], 2);
    assert_eq!(info["layout"]["slot_count"], 4);
    assert_eq!(info["segment"]["id"], cell.id());
    assert_eq!(info["name"], Value::Null);

    // The type the caller expects is checked as shmstore checks it.
    let type_name = std::any::type_name::<Reading>();
    let typed = [
        "cell",
        &hex_key(key),
        "--type-name",
        type_name,
        "--size",
        "24",
    ];
    assert_eq!(py(&typed).ok()["bytes"], hex(bytemuck::bytes_of(&last)));
    let with_schema = [&typed[..], &["--schema-version", "0", "--struct", READING]].concat();
    assert_eq!(py(&with_schema).ok()["value"], reading_json(&last));

    // What is wrong is said, with exit status 1 (2 for bad usage).
    assert_eq!(
        py(&["cell", &hex_key(key), "--struct", "<QQ"]).error(),
        "type_mismatch"
    );
    for wrong in [
        &["--type-name", "shmstore::Other"][..],
        &["--size", "16"],
        &["--schema-version", "1"],
    ] {
        let target = hex_key(key);
        let args = [&["cell", &target][..], wrong].concat();
        assert_eq!(py(&args).error(), "type_mismatch", "{wrong:?}");
    }
    let as_id = py(&["cell", &key.raw().to_string()]);
    assert_eq!(as_id.error(), "not_found");
    assert!(
        as_id.stdout.contains("give keys in hex"),
        "{}",
        as_id.stdout
    );
    assert_eq!(py(&["region", &hex_key(key)]).error(), "wrong_kind");
    assert_eq!(py(&["cell", "0x53ffffff"]).error(), "not_found");
    assert_eq!(py(&["cell", &hex_key(key), "--struct", "<Qz"]).status, 2);
    assert_eq!(py(&["cell"]).status, 2);
    assert_eq!(py(&["cell", "0x0"]).status, 2);

    // By name, with the name's first key taken by a segment that is not
    // shmstore's: the reader goes on to the next key, as Rust did.
    let name = format!("pyreader/cell-{}", std::process::id());
    let named = Key::named(&name).unwrap();
    let squatter = Segment::options()
        .size(4096)
        .create(true)
        .exclusive(true)
        .open(Key::new(named.raw()).unwrap())
        .unwrap();
    let _squatter_guard = SegGuard(squatter.id());
    squatter.write_at(0, b"another program's data").unwrap();
    let cell = SharedCell::<Reading>::create(named, first).unwrap();
    let _named_guard = SegGuard(cell.id());
    assert_ne!(cell.info().unwrap().key.raw(), named.raw(), "not at key 0");
    for target in [name.clone(), format!("name:{name}")] {
        let read = py(&["cell", &target, "--struct", READING]).ok();
        assert_eq!(read["version"], 0, "{target}");
        assert_eq!(read["value"], reading_json(&first), "{target}");
    }
    let info = py(&["info", &name]).ok();
    assert_eq!(info["name"], name.as_str());
    assert_eq!(info["segment"]["id"], cell.id());
    let missing = format!("pyreader/missing-{}", std::process::id());
    assert_eq!(py(&["cell", &missing]).error(), "not_found");
    assert_eq!(py(&["cell", "bad\tname"]).status, 2);
}

#[test]
fn never_sees_a_torn_cell_value_while_rust_stores() {
    if !python_or_skip("never_sees_a_torn_cell_value_while_rust_stores") {
        return;
    }
    type Value4 = Stamped<4>;
    let key = unique_key();
    let cell = SharedCell::<Value4>::create(key, Value4::of(0)).unwrap();
    let _guard = SegGuard(cell.id());
    let mut writer = Kid::spawn(&["store_stamps", &key.raw().to_string()]);
    writer.expect("ready");
    while cell.version() < 1000 {
        std::thread::yield_now();
    }
    // The reader prints each read that differs from the one before. Runs
    // are repeated until one overlapped the writer's commits.
    let (mut reads, mut retries, mut runs) = (0usize, 0u64, 0);
    let mut overlapped = false;
    while !overlapped && runs < 10 {
        runs += 1;
        let run = py(&["cell", &hex_key(key), "--struct", "<5Q", "--reads", "20000"]);
        assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
        let lines = run.lines();
        let mut last = 0;
        for line in &lines {
            let version = line["version"].as_u64().unwrap();
            let words: Vec<u64> = line["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w.as_u64().unwrap())
                .collect();
            let value = Value4 {
                seq: words[0],
                words: words[1..].try_into().unwrap(),
            };
            assert!(value.is_whole(), "torn: {line}");
            assert_eq!(value.seq, version, "value of another version: {line}");
            assert!(version >= last, "went back from {last}: {line}");
            last = version;
            retries += line["retries"].as_u64().unwrap();
        }
        reads += lines.len();
        overlapped = lines.first().map(|l| &l["version"]) != lines.last().map(|l| &l["version"]);
    }
    writer.send("stop");
    let stores: u64 = writer.expect("stores").parse().unwrap();
    assert!(writer.wait().success());
    assert!(
        overlapped,
        "in {runs} runs the Python reader never saw the writer commit"
    );
    println!("{runs} runs, {reads} distinct reads, {retries} retries, {stores} stores");
}

/// The error kinds the reader gives for a header it refuses.
const REFUSALS: &[&str] = &[
    "not_shmstore",
    "incompatible_format",
    "abi_mismatch",
    "corrupt",
    "init_timeout",
    "creator_died",
];

/// The files directly in `dir`, sorted.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

#[test]
fn refuses_every_header_rust_refuses() {
    if !python_or_skip("refuses_every_header_rust_refuses") {
        return;
    }
    let images = common::header_images();
    assert!(!images.is_empty());
    let (mut refused, mut accepted) = (0, 0);
    for (name, bytes) in &images {
        let seg = Segment::options()
            .size(bytes.len())
            .create(true)
            .open(Key::PRIVATE)
            .unwrap();
        let _guard = SegGuard(seg.id());
        seg.write_at(0, bytes).unwrap();
        let rust = shmstore::inspect::describe_segment(&seg).unwrap();
        let run = py(&["info", &format!("id:{}", seg.id()), "--wait", "0"]);
        let what = format!("{name} ({} bytes)", bytes.len());
        match &rust.problem {
            Some(problem) => {
                let kind = run.error();
                assert!(
                    REFUSALS.contains(&kind.as_str()),
                    "{what}: Rust says {problem:?}; Python refused it as {kind}: {}",
                    run.stdout
                );
                refused += 1;
            }
            None => {
                let info = run.ok();
                assert_eq!(
                    info["kind"],
                    format!("{:?}", rust.kind.unwrap()).to_lowercase(),
                    "{what}"
                );
                accepted += 1;
            }
        }
    }
    assert!(
        accepted > 0,
        "no image was valid: the seeds hold valid headers"
    );
    println!(
        "{} images: {refused} refused by both, {accepted} accepted by both",
        images.len()
    );
}

/// A name or type name holding format characters (a right-to-left
/// override, an isolate, a zero-width joiner) or a line separator reaches
/// the terminal escaped: the JSON lines escape every character past ASCII,
/// and the messages on standard error quote names and type names escaped.
#[test]
fn format_characters_in_names_are_printed_escaped() {
    if !python_or_skip("format_characters_in_names_are_printed_escaped") {
        return;
    }
    let name = format!("pyreader/\u{202e}gnp.exe-{}", std::process::id());
    let type_name = "acme.\u{2066}Counter\u{200d}\u{2028}";
    let cell = SharedCell::options()
        .type_name(type_name)
        .create(Key::named(&name).unwrap(), 5u64)
        .unwrap();
    let _guard = SegGuard(cell.id());
    let raw = ["\u{202e}", "\u{2066}", "\u{200d}", "\u{2028}"];
    let printed = |run: &common::python::Run| {
        let all = format!("{}{}", run.stdout, run.stderr);
        for c in raw {
            assert!(!all.contains(c), "{} printed {c:?}: {all}", run.args);
        }
        all
    };

    let run = py(&["info", &name]);
    printed(&run);
    let info = run.ok();
    assert_eq!(info["name"], name.as_str());
    assert_eq!(info["type_name"], type_name);

    let run = py(&["cell", &name, "--type-name", "acme.Other"]);
    let all = printed(&run);
    assert_eq!(run.error(), "type_mismatch");
    assert!(
        run.stderr.contains("acme.\\u2066Counter\\u200d\\u2028"),
        "{all}"
    );

    let missing = format!("{name}-missing");
    let run = py(&["cell", &missing]);
    let all = printed(&run);
    assert_eq!(run.error(), "not_found");
    assert!(run.stderr.contains("pyreader/\\u202egnp.exe-"), "{all}");
}

#[test]
fn refuses_another_users_object_unless_told() {
    if !python_or_skip("refuses_another_users_object_unless_told")
        || !common::root_or_skip("giving a cell to another user")
    {
        return;
    }
    let key = unique_key();
    let cell = SharedCell::<u64>::create(key, 5).unwrap();
    let _guard = SegGuard(cell.id());
    cell.set_owner(65534, 65534).unwrap();
    let target = hex_key(key);
    assert_eq!(py(&["cell", &target]).error(), "foreign_owner");
    let read = py(&["cell", &target, "--struct", "<Q", "--allow-foreign-owner"]).ok();
    assert_eq!(read["value"], json!([5]));
}

/// `python3 -m shmstore_reader` with the package's parent on PYTHONPATH or
/// as the working directory.
fn as_module(args: &[&str], env: bool) -> PyRun {
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "shmstore_reader"]).args(args);
    if env {
        cmd.env("PYTHONPATH", PYTHON_PATH);
    } else {
        cmd.current_dir(PYTHON_PATH);
    }
    PyRun::start(
        cmd,
        format!("python3 -m shmstore_reader {}", args.join(" ")),
    )
}

#[test]
fn runs_as_a_module_on_its_directory_and_on_a_copy() {
    if !python_or_skip("runs_as_a_module_on_its_directory_and_on_a_copy") {
        return;
    }
    let key = unique_key();
    let cell = SharedCell::<u64>::create(key, 0x0102_0304).unwrap();
    let _guard = SegGuard(cell.id());
    let target = hex_key(key);
    let args = ["cell", &target, "--struct", "<Q"];
    let want = py(&args).ok();
    assert_eq!(want["value"], json!([0x0102_0304]));
    for env in [true, false] {
        assert_eq!(
            as_module(&args, env).finish().ok(),
            want,
            "PYTHONPATH: {env}"
        );
        let mut decode = as_module(&["decode", "--schema", "u32", "--hex"], env);
        decode.feed(b"07000000");
        assert_eq!(decode.finish().ok(), json!({"len": 4, "value": 7}));
    }
    assert_eq!(as_module(&["cell", "0x0"], true).finish().status, 2);

    // A copy of the directory under another name runs as well.
    let copy = std::env::temp_dir().join(format!("reader-copy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir(&copy).unwrap();
    for file in files(Path::new(PACKAGE)) {
        if file.extension().is_some_and(|e| e == "py") {
            std::fs::copy(&file, copy.join(file.file_name().unwrap())).unwrap();
        }
    }
    let mut cmd = Command::new("python3");
    cmd.arg(&copy).args(args);
    let got = PyRun::start(cmd, format!("python3 {} ...", copy.display())).finish();
    std::fs::remove_dir_all(&copy).unwrap();
    assert_eq!(got.ok(), want);

    // As a package, with the API its docstring shows.
    let mut cmd = Command::new("python3");
    cmd.env("PYTHONPATH", PYTHON_PATH).args([
        "-c",
        "import sys, json, shmstore_reader as sr\n\
         with sr.ShmObject.open(sys.argv[1]) as obj:\n\
         \x20   version, (value,) = obj.read_cell('<Q')\n\
         print(json.dumps([version, value, sr.name_keys('acme/config')[:2]]))",
        &target,
    ]);
    let got = PyRun::start(cmd, "import shmstore_reader".into()).finish();
    // FORMAT.md's example: key 0 and key 1 of "acme/config".
    assert_eq!(
        got.ok(),
        json!([0, 0x0102_0304, [0x8bcb_4d9b_u32, 0x886f_aa70_u32]])
    );
}

/// The reader's command line with `args`, run by a driver that first runs
/// `prelude` (`names` is the module shmstore_reader.names), then says
/// `ready` on standard error and waits for a line on standard input.
fn reader_on_go(prelude: &str, args: &[&str]) -> PyRun {
    let driver = format!(
        "import sys\n\
         sys.path.insert(0, sys.argv[1])\n\
         import shmstore_reader.names as names\n\
         from shmstore_reader.cli import main\n\
         {prelude}\n\
         sys.stderr.write('ready\\n')\n\
         sys.stderr.flush()\n\
         sys.stdin.readline()\n\
         sys.exit(main(sys.argv[2:]))\n"
    );
    let mut cmd = Command::new("python3");
    cmd.args(["-c", &driver, PYTHON_PATH]).args(args);
    PyRun::start(cmd, format!("shmstore_reader {} (on go)", args.join(" ")))
}

type Words = [u64; 4];

/// The `[u64; 4]` a successful `cell --struct <4Q` read printed, and its
/// version.
fn words_of(run: &common::python::Run) -> (u64, Value) {
    let read = run.ok();
    (read["version"].as_u64().unwrap(), read["value"].clone())
}

/// The object of a name at its last key, past a live creator's claim, a
/// segment whose state shows but not its magic, a dead creator's claim and
/// other programs' segments: the reader opens it at once, waiting neither
/// for the claim (an object exists) nor for the segment without a magic
/// (not a claim: no time window makes it one).
#[test]
fn finds_a_named_object_at_any_key() {
    if !python_or_skip("finds_a_named_object_at_any_key") {
        return;
    }
    let name = fresh_name("py-any-key");
    let crowd = crowded(&name, [1, 2, 3, 4]);
    let start = Instant::now();
    let run = py(&["cell", &name, "--struct", "<4Q"]);
    let took = start.elapsed();
    assert_eq!(words_of(&run), (0, json!([1, 2, 3, 4])));
    assert!(took < Duration::from_secs(2), "took {took:?}");
    drop(crowd);
}

/// A claim of a name (magic and name, not READY) whose creator (this
/// process) lives, and no object: the reader waits, and opens it once it
/// is READY. A segment whose state shows but not its magic is no claim:
/// without an object, the name is not found, at once. (Format 4's readers
/// waited up to 2 seconds on such a segment.)
#[test]
fn waits_for_a_live_claim_and_skips_a_segment_without_magic() {
    if !python_or_skip("waits_for_a_live_claim_and_skips_a_segment_without_magic") {
        return;
    }
    for state in [0u32, 1] {
        let name = fresh_name("py-claim");
        let _names = NameGuard::of(&name);
        let image = cell_image(&name, [5, 6, 7, 8]);
        let (seg, _guard) = plant(documented_key(&name, 0), &image, true, state);
        let mut reader = PyRun::start(
            common::python::reader_command(&["cell", &name, "--struct", "<4Q"]),
            format!("cell {name}"),
        );
        std::thread::sleep(Duration::from_millis(500));
        assert!(reader.running(), "state {state}: the reader did not wait");
        make_ready(&seg);
        assert_eq!(
            words_of(&reader.finish()),
            (0, json!([5, 6, 7, 8])),
            "state {state}"
        );
    }
    for state in [1u32, 2] {
        let name = fresh_name("py-no-magic");
        let _names = NameGuard::of(&name);
        let image = cell_image(&name, [5, 6, 7, 8]);
        let (_seg, _guard) = plant(documented_key(&name, 0), &image, false, state);
        let start = Instant::now();
        let run = py(&["cell", &name, "--wait", "5"]);
        let took = start.elapsed();
        assert_eq!(run.error(), "not_found", "state {state}");
        assert!(
            took < Duration::from_secs(2),
            "state {state}: took {took:?}"
        );
    }
}

/// Judges a claim's creator dead, once the test has had it finish the
/// object (made it READY).
const JUDGED_DEAD_AFTER_IT_FINISHED: &str = "\
def judged(pid, start):
    sys.stderr.write('judging\\n')
    sys.stderr.flush()
    sys.stdin.readline()
    return False
names._claimant_alive = judged";

/// A claim whose creator finishes the object (READY) and exits while the
/// reader judges it: the reader, told the creator is dead, loads the state
/// again and opens the object, rather than pass over the claim.
#[test]
fn finds_a_named_object_finished_while_its_creator_was_judged() {
    if !python_or_skip("finds_a_named_object_finished_while_its_creator_was_judged") {
        return;
    }
    let name = fresh_name("py-judged");
    let _names = NameGuard::of(&name);
    let image = cell_image(&name, [4, 2, 4, 2]);
    let (seg, _guard) = plant(documented_key(&name, 0), &image, true, 1);
    let mut reader = reader_on_go(
        JUDGED_DEAD_AFTER_IT_FINISHED,
        &["cell", &name, "--struct", "<4Q"],
    );
    reader.expect_stderr("ready");
    reader.send("go");
    reader.expect_stderr("judging");
    make_ready(&seg);
    reader.send("judged");
    assert_eq!(words_of(&reader.finish()), (0, json!([4, 2, 4, 2])));
}

/// A creator stopped (SIGSTOP) right after its claim, for longer than any
/// old time window: the reader keeps waiting for it and, at its timeout,
/// names that creator (init_timeout), never "not found"; once the creator
/// goes on, the reader opens the object.
#[test]
fn waits_for_a_stopped_creator() {
    if !python_or_skip("waits_for_a_stopped_creator") {
        return;
    }
    let name = fresh_name("py-stopped");
    let _names = NameGuard::of(&name);
    let mut creator = common::start_stopped(
        common::child(&["create_named", &name]),
        "create.after_claim",
    );
    let run = py(&["cell", &name, "--wait", "2.5"]);
    assert_eq!(run.error(), "init_timeout", "{}", run.stdout);
    assert!(
        run.stderr.contains(&format!("pid {}", creator.pid())),
        "{}",
        run.stderr
    );
    let reader = PyRun::start(
        common::python::reader_command(&["cell", &name, "--struct", "<4Q", "--wait", "30"]),
        format!("cell {name}"),
    );
    std::thread::sleep(Duration::from_millis(300));
    common::resume(&creator);
    assert_eq!(words_of(&reader.finish()), (0, json!([9, 9, 9, 9])));
    creator.expect("created");
    assert!(creator.wait().success());
}

/// A user who is not this one and not root.
const OUTSIDER: (u32, u32) = (43_003, 43_999);

/// Another user's (65534) object of the name, alone at its keys, which
/// `shmstore list` shows: the reader does not say "no object is named" but
/// whose it is and how to trust that user, and opens it with --trust-user. And another user's segment
/// holding the name at its first key, with the object at the second: the
/// reader passes over it and opens the object.
#[test]
fn reports_another_users_object_of_a_name() {
    if !python_or_skip("reports_another_users_object_of_a_name")
        || !common::root_or_skip("acting as user 65534")
    {
        return;
    }
    let name = fresh_name("py-foreign");
    let _names = NameGuard::of(&name);
    let mut kid = Kid::spawn(&["create_as_nobody", &name]);
    kid.expect("created");
    assert!(kid.wait().success());
    let run = py(&["cell", &name]);
    assert_eq!(run.error(), "foreign_owner", "{}", run.stdout);
    for want in [
        "owned by uid 65534",
        "created by uid 65534",
        "--trust-user 65534",
        "--trust-group 65534",
        "--allow-foreign-owner",
    ] {
        assert!(run.stderr.contains(want), "{want:?} not in {}", run.stderr);
    }
    let trusted = py(&["cell", &name, "--struct", "<4Q", "--trust-user", "65534"]);
    assert_eq!(words_of(&trusted), (0, json!([3, 1, 4, 1])));

    let name = fresh_name("py-planted");
    let _names = NameGuard::of(&name);
    // Planted once the name's object exists (see the C reader's twin).
    let planted = SharedCell::<Words>::options()
        .remove_on_drop(true)
        .create(Key::new(documented_key(&name, 0)).unwrap(), [6, 6, 6, 6])
        .unwrap();
    let ours = SharedCell::<Words>::options()
        .remove_on_drop(true)
        .create(Key::named(&name).unwrap(), [7, 7, 7, 7])
        .unwrap();
    common::names::claim_name(planted.id(), &name);
    planted.set_owner(OUTSIDER.0, OUTSIDER.1).unwrap();
    assert_eq!(ours.info().unwrap().key.raw(), documented_key(&name, 1));
    let run = py(&["cell", &name, "--struct", "<4Q"]);
    assert_eq!(words_of(&run), (0, json!([7, 7, 7, 7])));
}

/// An object whose `life` word says it is being removed or collected
/// (FORMAT.md, "Removal"): REMOVING by a dead remover is removed (not
/// found, and left for shmstore to finish: a reader removes nothing);
/// REMOVING or COLLECTING by a live process is waited for (busy at the
/// timeout); COLLECTING by a dead collector is ignored. By id, the object
/// opens whatever the word says but a live collector's mark, which is
/// waited for as by key.
#[test]
fn honours_the_life_word() {
    if !python_or_skip("honours_the_life_word") {
        return;
    }
    let name = fresh_name("py-life");
    let _names = NameGuard::of(&name);
    let cell = SharedCell::<Words>::options()
        .remove_on_drop(true)
        .create(Key::named(&name).unwrap(), [2, 7, 1, 8])
        .unwrap();
    let seg = Segment::options().attach_id(cell.id()).unwrap();
    let key = format!("{:#010x}", documented_key(&name, 0) as u32);
    let (me, start, dead) = (std::process::id() as i32, own_start_time(), dead_pid());
    let cases = [
        (life_word(2, dead, 1), "not_found"),
        (life_word(2, me, start), "busy"),
        (life_word(1, me, start), "busy"),
        (life_word(1, dead, 1), "ok"),
        (0, "ok"),
    ];
    for (word, want) in cases {
        set_life(&seg, word);
        for target in [name.as_str(), key.as_str()] {
            let run = py(&["cell", target, "--wait", "0.5"]);
            let what = format!("life {word:#x}, {target}: {}", run.stdout);
            if want == "ok" {
                assert_eq!(run.status, 0, "{what}");
            } else {
                assert_eq!(run.error(), want, "{what}");
            }
            if want == "busy" {
                assert!(run.stderr.contains(&format!("pid {me}")), "{what}");
            }
        }
        // By id, as the library opens by id: only a live collector is
        // waited for (it may be about to remove the object).
        let by_id = py(&["cell", &format!("id:{}", cell.id()), "--wait", "0.5"]);
        if word == life_word(1, me, start) {
            assert_eq!(
                by_id.error(),
                "busy",
                "life {word:#x} by id: {}",
                by_id.stdout
            );
        } else {
            assert_eq!(by_id.status, 0, "life {word:#x} by id: {}", by_id.stdout);
        }
    }
    set_life(&seg, life_word(2, dead, 1));
    py(&["cell", &name]);
    assert!(!cell.is_removed().unwrap(), "a reader removed the object");
}

/// A remover stopped between its mark and its `IPC_RMID`: the reader
/// waits for it, and once it goes on, finds the name's object gone.
#[test]
fn finds_an_object_removed_meanwhile_gone() {
    if !python_or_skip("finds_an_object_removed_meanwhile_gone") {
        return;
    }
    let name = fresh_name("py-removed");
    let _names = NameGuard::of(&name);
    let cell = SharedCell::<Words>::create(Key::named(&name).unwrap(), [1, 1, 2, 3]).unwrap();
    let _guard = SegGuard(cell.id());
    let mut remover = common::start_stopped(common::child(&["remove", &name]), "remove.after_mark");
    let mut reader = PyRun::start(
        common::python::reader_command(&["cell", &name, "--wait", "30"]),
        format!("cell {name}"),
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(reader.running(), "the reader did not wait for the remover");
    common::resume(&remover);
    assert_eq!(reader.finish().error(), "not_found");
    assert_eq!(remover.expect("removed"), cell.id().to_string());
    assert!(remover.wait().success());
}

/// How long a waiter is watched not to return before the change it waits
/// for is made.
const STILL_WAITING: Duration = Duration::from_millis(300);

/// A cell of `Words` at a fresh key, removed by the guard.
fn waiting_cell() -> (SharedCell<Words>, Key, SegGuard) {
    let key = unique_key();
    let cell = SharedCell::<Words>::options()
        .remove_on_drop(true)
        .create(key, [0; 4])
        .unwrap();
    let guard = SegGuard(cell.id());
    (cell, key, guard)
}

/// `ShmObject.wait_for_change` sleeps until a Rust writer in another
/// process stores, then returns the new version (with and without a
/// timeout); a `since` other than the version, above or below it, returns
/// at once (the version differs from it).
#[test]
fn wait_for_change_wakes_when_a_rust_writer_stores() {
    if !python_or_skip("wait_for_change_wakes_when_a_rust_writer_stores") {
        return;
    }
    let (cell, key, _guard) = waiting_cell();
    let mut writer = Kid::spawn(&["write_on_command", &key.raw().to_string()]);
    writer.expect("ready");
    for timeout in ["none", "20"] {
        let since = cell.version();
        let mut waiter = wait_for_change(&hex_key(key), timeout, None);
        waiter.expect_stderr(&format!("waiting {since}"));
        std::thread::sleep(STILL_WAITING);
        assert!(
            waiter.running(),
            "timeout {timeout}: the wait ended before anything changed"
        );
        writer.send("store");
        let stored: u64 = writer.expect("stored").parse().unwrap();
        let got = waiter.finish().ok();
        assert_eq!(got["result"], "ok", "timeout {timeout}: {got}");
        assert_eq!(got["version"], stored, "timeout {timeout}: {got}");
        assert!(
            got["elapsed"].as_f64().unwrap() >= STILL_WAITING.as_secs_f64(),
            "timeout {timeout}: woke before the store: {got}"
        );
    }
    assert!(writer.wait().success(), "the writer failed");

    let now = cell.version();
    let id = format!("id:{}", cell.id());
    for since in [0, now - 1, now + 1, u64::MAX] {
        let got = wait_for_change(&id, "none", Some(since)).finish().ok();
        assert_eq!(got["result"], "ok", "since {since}: {got}");
        assert_eq!(got["version"], now, "since {since}: {got}");
    }
}

/// With nothing written, the wait ends at its timeout (not before) with
/// the reader's timeout error, a `TimeoutError`; a zero timeout looks once.
#[test]
fn wait_for_change_times_out_when_nothing_changes() {
    if !python_or_skip("wait_for_change_times_out_when_nothing_changes") {
        return;
    }
    let (_cell, key, _guard) = waiting_cell();
    for timeout in [0.0, 0.001, 0.3] {
        let got = wait_for_change(&hex_key(key), &timeout.to_string(), None)
            .finish()
            .ok();
        assert_eq!(got["result"], "timedout", "timeout {timeout}: {got}");
        let elapsed = got["elapsed"].as_f64().unwrap();
        assert!(elapsed >= timeout, "timeout {timeout}: {got}");
        assert!(elapsed < timeout + 10.0, "timeout {timeout}: {got}");
    }
}

/// A wait ends with `Removed` when the cell is removed: by a Rust
/// process's `remove()` (which marks the `life` word, removes and wakes),
/// by `IPC_RMID` alone (what `ipcrm` does), and by the `life` mark alone (a
/// remover between its mark and its `IPC_RMID`).
#[test]
fn wait_for_change_ends_when_the_cell_is_removed() {
    if !python_or_skip("wait_for_change_ends_when_the_cell_is_removed") {
        return;
    }
    for how in ["remove", "ipcrm", "mark"] {
        let (cell, key, _guard) = waiting_cell();
        let mut writer = Kid::spawn(&["write_on_command", &key.raw().to_string()]);
        writer.expect("ready");
        let mut waiter = wait_for_change(&format!("id:{}", cell.id()), "none", None);
        waiter.expect_stderr("waiting 0");
        std::thread::sleep(STILL_WAITING);
        assert!(waiter.running(), "{how}: the wait ended before the removal");
        match how {
            "remove" => {
                writer.send("remove");
                writer.expect("removed");
            }
            "ipcrm" => Segment::remove_by_id(cell.id()).unwrap(),
            _ => {
                let seg = Segment::options().attach_id(cell.id()).unwrap();
                let me = std::process::id() as i32;
                set_life(&seg, life_word(2, me, own_start_time()));
            }
        }
        let got = waiter.finish().ok();
        assert_eq!(got["result"], "removed", "{how}: {got}");
        assert!(writer.wait().success(), "{how}: the writer failed");
    }
}

/// A peer that writes the `notify` word nonstop (so that every FUTEX_WAIT
/// finds it changed and returns at once) makes no wait outlast its
/// deadline, and ends none before it.
#[test]
fn wait_for_change_keeps_its_deadline_while_a_peer_scribbles_on_notify() {
    if !python_or_skip("wait_for_change_keeps_its_deadline_while_a_peer_scribbles_on_notify") {
        return;
    }
    let (cell, key, _guard) = waiting_cell();
    let seg = Segment::options().attach_id(cell.id()).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let got = std::thread::scope(|s| {
        s.spawn(|| {
            let mut word = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                word = word.wrapping_add(0x9e37_79b9);
                set_notify(&seg, word);
            }
        });
        let run = wait_for_change(&hex_key(key), "0.3", None).finish();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        run
    })
    .ok();
    assert_eq!(got["result"], "timedout", "{got}");
    let elapsed = got["elapsed"].as_f64().unwrap();
    assert!((0.3..10.0).contains(&elapsed), "{got}");
}
