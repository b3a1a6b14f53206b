//! The Python reader (`python/shmstore_reader/`), written from FORMAT.md
//! alone with the standard library only, against objects Rust makes and
//! writes: it finds them by key, id and name, never returns a torn cell
//! value or a torn region archive while Rust writes nonstop, decodes the
//! rkyv types FORMAT.md documents, and refuses every damaged or foreign
//! header of the fuzz corpus that Rust refuses.
//!
//! Each test is skipped, saying why, when `python3` cannot be run.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{Kid, SegGuard, Stamped, child_args, key_arg, report, stop_on_stdin, unique_key};
use serde_json::{Value, json};
use shmstore::{Key, Segment, SharedCell, SharedRegion};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/python/shmstore_reader");

/// How long one run of the Python reader may take before it is killed and
/// the test fails.
const PY_DEADLINE: Duration = Duration::from_secs(120);

/// The error kinds the reader gives for a header it refuses.
const REFUSALS: &[&str] = &[
    "not_shmstore",
    "incompatible_format",
    "abi_mismatch",
    "corrupt",
    "init_timeout",
    "creator_died",
];

/// Whether `python3` (3.8 or later) runs; prints why the test is skipped if
/// not.
fn python_or_skip(test: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import sys; sys.exit(sys.version_info < (3, 8))"])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("skipping {test}: python3 (3.8 or later) cannot be run");
    }
    ok
}

/// What a run of the reader printed, and how it ended.
struct Run {
    args: String,
    status: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The JSON lines it printed.
    fn lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{}: bad JSON line {l:?}: {e}", self.args))
            })
            .collect()
    }

    /// The one JSON value of a successful run.
    fn ok(&self) -> Value {
        assert_eq!(
            self.status, 0,
            "{} failed: {}{}",
            self.args, self.stdout, self.stderr
        );
        let mut lines = self.lines();
        assert_eq!(lines.len(), 1, "{}: {}", self.args, self.stdout);
        lines.remove(0)
    }

    /// The error kind of a failed run, which must have exit status 1.
    fn error(&self) -> String {
        assert_eq!(
            self.status, 1,
            "{} should fail with status 1: {}{}",
            self.args, self.stdout, self.stderr
        );
        let lines = self.lines();
        let kind = lines.last().and_then(|v| v["error"].as_str());
        kind.unwrap_or_else(|| panic!("{}: no error in {}", self.args, self.stdout))
            .to_owned()
    }
}

/// Run the reader with `args`, killing it if it outlives [`PY_DEADLINE`].
/// It must never end in a Python traceback.
fn py(args: &[&str]) -> Run {
    py_with_input(args, None)
}

/// As [`py`], with `input` on its standard input.
fn py_with_input(args: &[&str], input: Option<&[u8]>) -> Run {
    let what = format!("shmstore_reader {}", args.join(" "));
    let mut child = Command::new("python3")
        .arg(SCRIPT)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    if let Some(input) = input {
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(&input);
        });
    }
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + PY_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for python3") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {PY_DEADLINE:?}: killed it");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let run = Run {
        args: what,
        status: status.code().unwrap_or(-1),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    assert!(
        !run.stderr.contains("Traceback"),
        "{} crashed: {}",
        run.args,
        run.stderr
    );
    assert!(
        [0, 1, 2].contains(&run.status),
        "{} ended with {status}: {}",
        run.args,
        run.stderr
    );
    run
}

fn hex_key(key: Key) -> String {
    format!("{:#010x}", key.raw() as u32)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

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

#[derive(rkyv::Archive, rkyv::Serialize, Debug, Clone, PartialEq)]
struct Inner {
    tag: u8,
    words: Vec<u16>,
}

/// A region's value with the field types FORMAT.md documents.
#[derive(rkyv::Archive, rkyv::Serialize, Debug, Clone, PartialEq)]
struct Sample {
    id: u64,
    short: String,
    long: String,
    ports: Vec<u32>,
    limit: Option<u64>,
    on: bool,
    ratio: f64,
    inner: Inner,
}

/// The schema of [`Sample`] for the Python reader.
const SAMPLE_SCHEMA: &str = r#"[["id", "u64"], ["short", "str"], ["long", "str"],
    ["ports", "vec<u32>"], ["limit", "option<u64>"], ["on", "bool"], ["ratio", "f64"],
    ["inner", [["tag", "u8"], ["words", "vec<u16>"]]]]"#;

impl Sample {
    /// A value whose every field derives from `v`: a torn archive shows.
    fn of(v: u64) -> Sample {
        Sample {
            id: v,
            short: format!("s{}", v % 10_000_000),
            long: format!("version {v} of a string longer than eight bytes"),
            ports: (0..(v % 5) as u32).map(|i| i * 1000 + v as u32).collect(),
            limit: (!v.is_multiple_of(3)).then_some(v * 1000),
            on: v.is_multiple_of(2),
            ratio: v as f64 / 8.0,
            inner: Inner {
                tag: (v % 251) as u8,
                words: (0..(v % 4) as u16)
                    .map(|i| i.wrapping_add(v as u16))
                    .collect(),
            },
        }
    }

    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "short": self.short,
            "long": self.long,
            "ports": self.ports,
            "limit": self.limit,
            "on": self.on,
            "ratio": self.ratio,
            "inner": {"tag": self.inner.tag, "words": self.inner.words},
        })
    }
}

#[test]
fn child_entry() {
    let Some(args) = child_args() else { return };
    match args[0].as_str() {
        "store_stamps" => common::store_stamps_until_stopped::<4>(key_arg(&args, 1)),
        "publish" => {
            let region = SharedRegion::<Sample>::open(key_arg(&args, 1)).unwrap();
            let stop = stop_on_stdin();
            report("ready", 1);
            let mut published = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let v = region.version();
                region.publish(&Sample::of(v + 1)).unwrap();
                published += 1;
            }
            report("published", published);
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

#[test]
fn copies_and_decodes_a_region() {
    if !python_or_skip("copies_and_decodes_a_region") {
        return;
    }
    let key = unique_key();
    let region = SharedRegion::<Sample>::create(key, 4096).unwrap();
    let _guard = SegGuard(region.id());
    let target = hex_key(key);
    assert_eq!(py(&["region", &target]).error(), "nothing_published");

    let edge = Sample {
        id: u64::MAX,
        short: "12345678".into(),
        long: "123456789".into(),
        ports: Vec::new(),
        limit: None,
        on: false,
        ratio: -0.1,
        inner: Inner {
            tag: 0,
            words: vec![u16::MAX],
        },
    };
    let long = Sample {
        long: "é".repeat(100),
        ports: (0..300).collect(),
        ..Sample::of(7)
    };
    for (i, value) in [Sample::of(1), Sample::of(3), edge, long]
        .iter()
        .enumerate()
    {
        region.publish(value).unwrap();
        let decoded = py(&["region", &target, "--schema", SAMPLE_SCHEMA]).ok();
        assert_eq!(decoded["version"], i + 1);
        assert_eq!(decoded["value"], value.json(), "{value:?}");
        let raw = py(&["region", &target]).ok();
        let archive = rkyv::to_bytes::<rkyv::rancor::Error>(value).unwrap();
        assert_eq!(raw["len"], archive.len());
        assert_eq!(raw["bytes"], hex(&archive), "{value:?}");
    }

    let info = py(&["info", &target]).ok();
    assert_eq!(info["kind"], "region");
    assert_eq!(info["type_extra"], "0x72010404");
    assert_eq!(info["value_size"], size_of::<ArchivedSample>());
    assert_eq!(info["region"]["current_version"], 4);
    assert_eq!(py(&["cell", &target]).error(), "wrong_kind");
    assert_eq!(
        py(&["region", &target, "--schema", "u64"]).error(),
        "type_mismatch"
    );
    assert_eq!(py(&["region", &target, "--schema", "[\"x\""]).status, 2);

    // While a Rust process publishes nonstop, every archive copied decodes
    // to the value of its own version, and versions only move forward.
    let mut publisher = Kid::spawn(&["publish", &key.raw().to_string()]);
    publisher.expect("ready");
    let (mut runs, mut reads, mut retries) = (0, 0usize, 0u64);
    let mut overlapped = false;
    while !overlapped && runs < 10 {
        runs += 1;
        let run = py(&[
            "region",
            &target,
            "--schema",
            SAMPLE_SCHEMA,
            "--reads",
            "2000",
        ]);
        assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
        let lines = run.lines();
        let mut last = 0;
        for line in &lines {
            let version = line["version"].as_u64().unwrap();
            assert_eq!(line["value"], Sample::of(version).json(), "torn: {line}");
            assert!(version >= last, "went back from {last}: {line}");
            last = version;
            retries += line["retries"].as_u64().unwrap();
        }
        reads += lines.len();
        overlapped = lines.first().map(|l| &l["version"]) != lines.last().map(|l| &l["version"]);
    }
    publisher.send("stop");
    let published: u64 = publisher.expect("published").parse().unwrap();
    assert!(publisher.wait().success());
    assert!(
        overlapped,
        "in {runs} runs the Python reader never saw a new version"
    );
    println!("{runs} runs, {reads} distinct reads, {retries} retries, {published} published");
}

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
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut images = files(&fuzz.join("corpus/header"));
    images.extend(files(&fuzz.join("seeds/header")));
    assert!(!images.is_empty());
    let (mut refused, mut accepted) = (0, 0);
    for path in &images {
        let bytes = std::fs::read(path).unwrap();
        let seg = Segment::options()
            .size(bytes.len())
            .create(true)
            .open(Key::PRIVATE)
            .unwrap();
        let _guard = SegGuard(seg.id());
        seg.write_at(0, &bytes).unwrap();
        let rust = shmstore::inspect::describe_segment(&seg).unwrap();
        let run = py(&["info", &format!("id:{}", seg.id()), "--wait", "0"]);
        let what = format!("{} ({} bytes)", path.display(), bytes.len());
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
    println!(
        "{} images: {refused} refused by both, {accepted} accepted by both",
        images.len()
    );
}

#[derive(rkyv::Archive, rkyv::Serialize)]
struct Padded {
    a: u8,
    b: u64,
    c: u16,
}

#[derive(rkyv::Archive, rkyv::Serialize)]
enum Shape {
    Empty,
    Circle(u32),
    Named { sides: u8, name: String },
}

#[derive(rkyv::Archive, rkyv::Serialize)]
#[allow(dead_code)]
enum Level {
    Low = 3,
    High = 7,
}

/// The example of FORMAT.md, "Region archives".
#[derive(rkyv::Archive, rkyv::Serialize)]
struct Config {
    id: u32,
    name: String,
    ports: Vec<u16>,
    backup: Option<u64>,
}

#[test]
fn decodes_the_documented_rkyv_layouts() {
    if !python_or_skip("decodes_the_documented_rkyv_layouts") {
        return;
    }
    macro_rules! archive {
        ($value:expr) => {
            rkyv::to_bytes::<rkyv::rancor::Error>(&$value)
                .unwrap()
                .to_vec()
        };
    }
    // FORMAT.md shows these bytes: they must stay what rkyv writes.
    let config = archive!(Config {
        id: 7,
        name: "db.example.org".into(),
        ports: vec![80, 443],
        backup: Some(9),
    });
    let rows = [
        "64622e6578616d70", // 0: "db.examp"
        "6c652e6f72675000", // 8: "le.org", then ports[0] = 80
        "bb01000000000000", // 16: ports[1] = 443, padding
        "070000008e000000", // 24: the root: id = 7; name: length word 0x8e
        "e4ffffffeaffffff", // 32: name's offset -28; ports' pointer -22
        "0200000000000000", // 40: ports' length 2, padding
        "0100000000000000", // 48: backup: tag 1 (Some), padding
        "0900000000000000", // 56: backup's value 9
    ];
    assert_eq!(hex(&config), rows.concat());
    let long = |c: char, n: usize| std::iter::repeat_n(c, n).collect::<String>();
    let cases: Vec<(&str, Vec<u8>, Value)> = vec![
        ("u8", archive!(0xabu8), json!(0xab)),
        ("i16", archive!(-2i16), json!(-2)),
        ("u32", archive!(0x0102_0304u32), json!(0x0102_0304)),
        ("i64", archive!(i64::MIN), json!(i64::MIN)),
        ("u128", archive!(u128::from(u64::MAX)), json!(u64::MAX)),
        ("i128", archive!(-3i128), json!(-3)),
        ("usize", archive!(0x0102_0304usize), json!(0x0102_0304)),
        ("isize", archive!(-5isize), json!(-5)),
        ("f32", archive!(1.5f32), json!(1.5)),
        ("f64", archive!(-0.1f64), json!(-0.1)),
        ("bool", archive!(true), json!(true)),
        ("char", archive!('🎉'), json!("🎉")),
        ("()", archive!(()), json!(null)),
        (
            r#"[["a", "u8"], ["b", "u64"], ["c", "u16"]]"#,
            archive!(Padded { a: 1, b: 2, c: 3 }),
            json!({"a": 1, "b": 2, "c": 3}),
        ),
        (
            "(u8, u32, u16)",
            archive!((1u8, 2u32, 3u16)),
            json!([1, 2, 3]),
        ),
        ("[u16; 3]", archive!([1u16, 2, 3]), json!([1, 2, 3])),
        ("str", archive!(String::new()), json!("")),
        ("str", archive!("a".to_string()), json!("a")),
        ("str", archive!("12345678".to_string()), json!("12345678")),
        ("str", archive!("123456789".to_string()), json!("123456789")),
        (
            "str",
            archive!("héllo wörld".to_string()),
            json!("héllo wörld"),
        ),
        ("str", archive!(long('x', 63)), json!(long('x', 63))),
        ("str", archive!(long('y', 64)), json!(long('y', 64))),
        ("str", archive!(long('z', 70)), json!(long('z', 70))),
        (
            "str",
            archive!(long('w', 100_000)),
            json!(long('w', 100_000)),
        ),
        ("vec<u32>", archive!(Vec::<u32>::new()), json!([])),
        ("vec<u32>", archive!(vec![1u32, 2, 3]), json!([1, 2, 3])),
        (
            "vec<str>",
            archive!(vec!["ab".to_string(), "0123456789abc".to_string()]),
            json!(["ab", "0123456789abc"]),
        ),
        (
            "vec<vec<u8>>",
            archive!(vec![vec![1u8], vec![], vec![2, 3]]),
            json!([[1], [], [2, 3]]),
        ),
        (
            "vec<option<u64>>",
            archive!(vec![Some(1u64), None, Some(3)]),
            json!([1, null, 3]),
        ),
        ("option<u64>", archive!(None::<u64>), json!(null)),
        ("option<u64>", archive!(Some(u64::MAX)), json!(u64::MAX)),
        ("option<u8>", archive!(Some(7u8)), json!(7)),
        ("option<bool>", archive!(Some(false)), json!(false)),
        (
            "option<str>",
            archive!(Some("a string of 21 bytes!".to_string())),
            json!("a string of 21 bytes!"),
        ),
        ("box<u64>", archive!(Box::new(42u64)), json!(42)),
        (
            "box<str>",
            archive!(Box::<str>::from("a boxed str")),
            json!("a boxed str"),
        ),
        (
            "box<[u32]>",
            archive!(Box::<[u32]>::from(vec![4u32, 5])),
            json!([4, 5]),
        ),
        (
            "box<string>",
            archive!(Box::new("inner string!".to_string())),
            json!("inner string!"),
        ),
        (
            "result<u32, str>",
            archive!(Ok::<u32, String>(5)),
            json!({"Ok": [5]}),
        ),
        (
            "result<u32, str>",
            archive!(Err::<u32, String>("bad".into())),
            json!({"Err": ["bad"]}),
        ),
    ];
    let shape = r#"{"enum": [["Empty", null], ["Circle", ["u32"]],
        ["Named", [["sides", "u8"], ["name", "str"]]]]}"#;
    let level = r#"{"enum": [{"name": "Low", "fields": null, "tag": 3},
        {"name": "High", "fields": null, "tag": 7}]}"#;
    let config_schema = r#"[["id", "u32"], ["name", "str"], ["ports", "vec<u16>"],
        ["backup", "option<u64>"]]"#;
    let more: Vec<(&str, Vec<u8>, Value)> = vec![
        (shape, archive!(Shape::Empty), json!("Empty")),
        (
            shape,
            archive!(Shape::Circle(0xdead_beef)),
            json!({"Circle": [0xdead_beef_u32]}),
        ),
        (
            shape,
            archive!(Shape::Named {
                sides: 5,
                name: "a pentagon, named".into()
            }),
            json!({"Named": {"sides": 5, "name": "a pentagon, named"}}),
        ),
        (level, archive!(Level::High), json!("High")),
        (
            config_schema,
            config,
            json!({"id": 7, "name": "db.example.org", "ports": [80, 443], "backup": 9}),
        ),
    ];
    for (schema, bytes, want) in cases.into_iter().chain(more) {
        let run = py_with_input(&["decode", "--schema", schema], Some(&bytes));
        let got = run.ok();
        assert_eq!(got["len"], bytes.len(), "{schema}: {}", hex(&bytes));
        assert_eq!(got["value"], want, "{schema}: {}", hex(&bytes));
    }
    // A pointer out of the archive is an error that says where.
    let mut bad = archive!(vec![1u32, 2, 3]);
    let at = bad.len() - 8;
    bad[at..at + 4].copy_from_slice(&(-1000i32).to_le_bytes());
    let run = py_with_input(&["decode", "--schema", "vec<u32>"], Some(&bad));
    assert_eq!(run.error(), "decode");
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
