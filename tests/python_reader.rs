//! The Python reader (`python/shmstore_reader/`), written from FORMAT.md
//! alone with the standard library only, against cells Rust makes and
//! writes: it finds them by key, id and name (also a name whose creator's
//! state shows before its magic, or which is finished while the reader
//! judges its creator), never returns a torn cell value while Rust stores
//! nonstop, refuses every damaged or foreign header of the fuzz corpus that
//! Rust refuses, and runs both as a module and on its directory. Regions
//! and their archives: `python_region.rs`.
//!
//! Each test is skipped, saying why, when `python3` cannot be run.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::python::{PACKAGE, PYTHON_PATH, PyRun, hex, hex_key, py, python_or_skip};
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
         print(json.dumps([version, value, sr.name_keys('acme/config')[0]]))",
        &target,
    ]);
    let got = PyRun::start(cmd, "import shmstore_reader".into()).finish();
    assert_eq!(got.ok(), json!([0, 0x0102_0304, 0xc5bf_6153_u32]));
}

/// The bytes of a cell named `name` holding `value`, as its creator (this
/// process) leaves them, and the name's first key, where it was made.
fn named_image(name: &str, value: Reading) -> (Key, Vec<u8>) {
    let named = Key::named(name).unwrap();
    let cell = SharedCell::<Reading>::create(named, value).unwrap();
    let _guard = SegGuard(cell.id());
    let first = Key::new(named.raw()).unwrap();
    assert_eq!(cell.info().unwrap().key.raw(), first.raw(), "not at key 0");
    let seg = Segment::options().open(first).unwrap();
    let mut image = vec![0; seg.len()];
    seg.read_at(0, &mut image).unwrap();
    (first, image)
}

/// Write `image` into `seg` as its creator finishes an object: everything
/// but the magic, then the magic, by one 8-byte release store.
fn finish_as_creator(seg: &Segment, image: &[u8]) {
    seg.write_at(8, &image[8..]).unwrap();
    let magic = u64::from_le_bytes(image[..8].try_into().unwrap());
    // SAFETY: the attachment is read-write, page-aligned and longer than 8
    // bytes, and stays mapped while `seg` lives; its bytes are only
    // accessed atomically.
    let word = unsafe { AtomicU64::from_ptr(seg.as_ptr().cast()) };
    word.store(magic, Ordering::Release);
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

#[test]
fn waits_for_a_named_creator_whose_state_shows_before_its_magic() {
    if !python_or_skip("waits_for_a_named_creator_whose_state_shows_before_its_magic") {
        return;
    }
    // A creator stores the magic, then `state = INITIALIZING` (relaxed),
    // then at last READY: a look may load the magic before the first store
    // and the state after the second or the last. The segment stays as
    // that look saw it while its creator (this process) lives.
    for state in [1u32, 2] {
        let name = format!("pyreader/early-{state}-{}", std::process::id());
        let value = Reading {
            id: 40 + u64::from(state),
            temp: 0.5,
            count: 3,
            flags: 1,
            level: 2,
            ok: 1,
        };
        let (first, image) = named_image(&name, value);
        let mut reader = reader_on_go("", &["cell", &name, "--struct", READING]);
        reader.expect_stderr("ready");
        let seg = Segment::options()
            .size(image.len())
            .create(true)
            .exclusive(true)
            .open(first)
            .unwrap();
        let _guard = SegGuard(seg.id());
        seg.write_at(16, &state.to_le_bytes()).unwrap();
        reader.send("go");
        // The reader must wait, attached, for the creator rather than take
        // the segment for another program's and skip the key.
        let deadline = Instant::now() + Duration::from_secs(10);
        let waiting = loop {
            if seg.info().unwrap().nattch >= 2 {
                break true;
            }
            if !reader.running() || Instant::now() >= deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        finish_as_creator(&seg, &image);
        let run = reader.finish();
        assert!(
            waiting,
            "state {state}: the reader did not wait for the creator: {}{}",
            run.stdout, run.stderr
        );
        let read = run.ok();
        assert_eq!(read["version"], 0, "state {state}");
        assert_eq!(read["value"], reading_json(&value), "state {state}");
    }
}

/// Judges a creator dead, once the test has had it finish the object.
const JUDGED_DEAD_AFTER_IT_FINISHED: &str = "\
def judged(addr, info):
    sys.stderr.write('judging\\n')
    sys.stderr.flush()
    sys.stdin.readline()
    return False
names._creator_alive = judged";

#[test]
fn finds_a_named_object_finished_while_its_creator_was_judged() {
    if !python_or_skip("finds_a_named_object_finished_while_its_creator_was_judged") {
        return;
    }
    let name = format!("pyreader/judged-{}", std::process::id());
    let value = Reading {
        id: 42,
        temp: -1.5,
        count: 9,
        flags: 2,
        level: 1,
        ok: 0,
    };
    let (first, image) = named_image(&name, value);
    let mut reader = reader_on_go(
        JUDGED_DEAD_AFTER_IT_FINISHED,
        &["cell", &name, "--struct", READING],
    );
    reader.expect_stderr("ready");
    // A creator at its first instructions: the segment is all zeros.
    let seg = Segment::options()
        .size(image.len())
        .create(true)
        .exclusive(true)
        .open(first)
        .unwrap();
    let _guard = SegGuard(seg.id());
    reader.send("go");
    // While the reader judges it, the creator finishes the object and
    // exits: the reader is told it is dead, and must look at the magic
    // again rather than skip the key.
    reader.expect_stderr("judging");
    finish_as_creator(&seg, &image);
    reader.send("judged");
    let read = reader.finish().ok();
    assert_eq!(read["version"], 0);
    assert_eq!(read["value"], reading_json(&value));
}
