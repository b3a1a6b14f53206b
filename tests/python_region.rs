//! The Python reader (`python/shmstore_reader/`) on regions: it copies a
//! region's current archive as FORMAT.md says, never returns a torn archive
//! while Rust publishes nonstop, throws no copy away when the publisher's
//! reuse grace is above its copy time, decodes every rkyv 0.8 layout
//! FORMAT.md documents ("Region archives") to the value Rust archived, and
//! waits for a region's version to change while a Rust publisher in
//! another process publishes or removes it.
//!
//! Each test is skipped, saying why, when `python3` cannot be run.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::names::{life_word, own_start_time, set_life};
use common::python::{
    PYTHON_PATH, PyRun, hex, hex_key, py, py_with_input, python_or_skip, wait_for_change,
};
use common::{Kid, SegGuard, child_args, key_arg, report, stop_on_stdin, unique_key};
use serde_json::{Value, json};
use shmstore::{Segment, SharedRegion};

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
        // Publish the stamped words of version v (see STAMPS below), `words`
        // of them, nonstop, with a reuse grace of `grace_us` microseconds.
        "publish_stamps" => {
            let words: usize = args[2].parse().unwrap();
            let grace = Duration::from_micros(args[3].parse().unwrap());
            let region = SharedRegion::<Vec<u64>>::opener()
                .reuse_grace(grace)
                .open(key_arg(&args, 1))
                .unwrap();
            let stop = stop_on_stdin();
            report("ready", 1);
            let mut value = vec![0u64; words];
            let mut last = region.version();
            while !stop.load(Ordering::Relaxed) {
                value[0] = last + 1;
                for (i, w) in value.iter_mut().enumerate().skip(1) {
                    *w = (last + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                        ^ (i as u64).wrapping_mul(0xff51_afd7_ed55_8ccd);
                }
                last = region.publish(&value).unwrap();
            }
            report("published", last);
        }
        // Publish the next version or remove the region at the key, as told.
        "publish_on_command" => {
            let region = SharedRegion::<Sample>::open(key_arg(&args, 1)).unwrap();
            report("ready", 1);
            while let Some(command) = common::read_command() {
                match command.as_str() {
                    "publish" => {
                        let v = region.version() + 1;
                        report("published", region.publish(&Sample::of(v)).unwrap());
                    }
                    "remove" => {
                        region.remove().unwrap();
                        report("removed", region.id());
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

/// A struct holding a map and a set, as a region's root would.
#[derive(rkyv::Archive, rkyv::Serialize)]
struct Registry {
    name: String,
    weights: HashMap<String, f64>,
    ids: BTreeSet<u32>,
}

/// The archive of `value`, as a region holds it.
fn archive_of<T>(value: &T) -> Vec<u8>
where
    T: for<'a> rkyv::Serialize<
            rkyv::api::high::HighSerializer<
                rkyv::util::AlignedVec,
                rkyv::ser::allocator::ArenaHandle<'a>,
                rkyv::rancor::Error,
            >,
        >,
{
    rkyv::to_bytes::<rkyv::rancor::Error>(value)
        .unwrap()
        .to_vec()
}

/// What the Python decoder makes of `bytes` with `schema`.
fn py_decode(schema: &str, bytes: &[u8]) -> Value {
    let got = py_with_input(&["decode", "--schema", schema], Some(bytes)).ok();
    assert_eq!(got["len"], bytes.len(), "{schema}: {}", hex(bytes));
    got["value"].clone()
}

#[test]
fn decodes_maps_and_sets() {
    if !python_or_skip("decodes_maps_and_sets") {
        return;
    }
    // FORMAT.md ("Maps and sets") shows these bytes: they must stay what
    // rkyv writes.
    let one = archive_of(&HashMap::from([(1u32, 2u32)]));
    let rows = [
        "0100000002000000",                 // 0: bucket 1: key 1, value 2
        "0000000000000000",                 // 8: bucket 0: empty (zeros)
        "ff28ff28ffffffffffffffffffffffff", // 16: control bytes 0-15
        "ffffffffffffffffffffffffffffff",   // 32: control bytes 16-30
        "00",                               // 47: padding
        "e0ffffff0100000002000000",         // 48: the root: -32, len 1, cap 2
    ];
    assert_eq!(hex(&one), rows.concat());
    assert_eq!(py_decode("hash_map<u32, u32>", &one), json!({"1": 2}));
    let seven: BTreeMap<u8, u16> = (1..=7).map(|i| (i, u16::from(i) * 100)).collect();
    let seven = archive_of(&seven);
    let rows = [
        "00",                               // 0: the leaf: kind 0
        "0102000000",                       // 1: keys 1, 2 (3 unused)
        "6400c800000000000000",             // 6: values 100, 200 (3 unused)
        "02000000",                         // 16: the leaf's length, 2
        "01",                               // 20: the inner node: kind 1
        "0304050607",                       // 21: keys 3 to 7
        "2c019001f4015802bc02",             // 26: values 300 to 700
        "dcffffff",                         // 36: lesser[0]: 36 - 36 = 0, the leaf
        "01000000010000000100000001000000", // 40: lesser[1..5]: none (offset 1)
        "01000000",                         // 56: greater: none
        "d8ffffff07000000",                 // 60: the root: 60 - 40 = 20, len 7
    ];
    assert_eq!(hex(&seven), rows.concat());
    assert_eq!(
        py_decode("btree_map<u8, u16>", &seven),
        json!({"1": 100, "2": 200, "3": 300, "4": 400, "5": 500, "6": 600, "7": 700})
    );

    // Hash maps: keys by name, values of every alignment, empty maps.
    let words: HashMap<String, u32> = (0..200).map(|i| (format!("key number {i}"), i)).collect();
    assert_eq!(
        py_decode("hash_map<str, u32>", &archive_of(&words)),
        json!(words)
    );
    let lists: HashMap<u64, Vec<u16>> = (0..50u64)
        .map(|i| (i * 0x1_0000_0001, (0..(i % 4) as u16).collect()))
        .collect();
    let want: serde_json::Map<String, Value> = lists
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    assert_eq!(
        py_decode("hash_map<u64, vec<u16>>", &archive_of(&lists)),
        Value::Object(want)
    );
    assert_eq!(
        py_decode(
            "hash_map<u32, u32>",
            &archive_of(&HashMap::<u32, u32>::new())
        ),
        json!({})
    );
    assert_eq!(
        py_decode("hash_set<str>", &archive_of(&HashSet::<String>::new())),
        json!([])
    );
    // Hash sets: in bucket order, the order rkyv's own iterator gives.
    let names: HashSet<String> = (0..40).map(|i| format!("n{i}")).collect();
    let bytes = archive_of(&names);
    let archived =
        rkyv::access::<rkyv::Archived<HashSet<String>>, rkyv::rancor::Error>(&bytes).unwrap();
    let order: Vec<&str> = archived.iter().map(|s| s.as_str()).collect();
    assert_eq!(py_decode("hash_set<str>", &bytes), json!(order));
    // Entries of no bytes at all.
    assert_eq!(
        py_decode("hash_set<()>", &archive_of(&HashSet::from([()]))),
        json!([null])
    );

    // B-trees: in key order, of one to four levels.
    for n in [1u32, 5, 6, 7, 35, 36, 37, 216, 1000] {
        let map: BTreeMap<u32, String> = (0..n).map(|i| (i * 3, format!("value {i}"))).collect();
        assert_eq!(
            py_decode("btree_map<u32, str>", &archive_of(&map)),
            json!(map),
            "{n}"
        );
        let set: BTreeSet<i64> = (0..i64::from(n)).map(|i| i * i - 500).collect();
        assert_eq!(
            py_decode("btree_set<i64>", &archive_of(&set)),
            json!(set),
            "{n}"
        );
    }
    assert_eq!(
        py_decode(
            "btree_map<u32, u32>",
            &archive_of(&BTreeMap::<u32, u32>::new())
        ),
        json!({})
    );
    assert_eq!(
        py_decode("btree_set<()>", &archive_of(&BTreeSet::from([()]))),
        json!([null])
    );
    // Keys that are not scalars: a list of [key, value] pairs.
    let pairs: BTreeMap<(u8, u8), bool> = (0..9u8).map(|i| ((i / 3, i % 3), i % 2 == 0)).collect();
    let want: Vec<Value> = pairs.iter().map(|((a, b), v)| json!([[a, b], v])).collect();
    assert_eq!(
        py_decode("btree_map<(u8, u8), bool>", &archive_of(&pairs)),
        json!(want)
    );
    // Maps in maps, and in a struct.
    let nested: HashMap<String, BTreeMap<u8, u8>> = (0..12u8)
        .map(|i| (format!("outer {i}"), (0..i).map(|j| (j, i ^ j)).collect()))
        .collect();
    let want: serde_json::Map<String, Value> = nested
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                json!(
                    v.iter()
                        .map(|(a, b)| (a.to_string(), *b))
                        .collect::<BTreeMap<_, _>>()
                ),
            )
        })
        .collect();
    assert_eq!(
        py_decode("hash_map<str, btree_map<u8, u8>>", &archive_of(&nested)),
        Value::Object(want)
    );
    let registry = Registry {
        name: "weights of the day".into(),
        weights: (0..10)
            .map(|i| (format!("w{i}"), f64::from(i) / 4.0))
            .collect(),
        ids: (0..100).map(|i| i * 7).collect(),
    };
    let schema = r#"[["name", "str"], ["weights", {"hash_map": ["str", "f64"]}], ["ids", "btree_set<u32>"]]"#;
    assert_eq!(
        py_decode(schema, &archive_of(&registry)),
        json!({"name": registry.name, "weights": registry.weights, "ids": registry.ids})
    );

    // A control byte scribbled from full to empty: the count disagrees.
    let mut bad = one.clone();
    bad[17] = 0xff;
    let run = py_with_input(&["decode", "--schema", "hash_map<u32, u32>"], Some(&bad));
    assert_eq!(run.error(), "decode");
}

/// `aliased(schema, total)` in Python: an archive of `total` bytes whose
/// root, a `vec<vec<u8>>` or a `vec<str>`, has elements that all point at
/// one vector or string filling the first half of the archive; the
/// elements fill the rest.
const ALIASED: &str = r#"
def aliased(schema, total):
    inner = total // 2
    n = (total - inner - 8) // 8
    if schema == "vec<vec<u8>>":
        out = bytearray(b"\x07" * inner)
        for _ in range(n):
            out += struct.pack("<iI", -len(out), inner)
    else:
        word = (inner & 0x3F) | 0x80 | ((inner & ~0x3F) << 2)
        out = bytearray(b"a" * inner)
        for _ in range(n):
            out += struct.pack("<Ii", word, -len(out))
    out += struct.pack("<iI", inner - len(out), n)
    assert len(out) == total
    return bytes(out)
"#;

/// A Python script: given the package's parent directory and then
/// `SCHEMA=FILE` or `SCHEMA=aliased:BYTES` for each archive, it decodes each
/// archive, once timed and once with its memory traced, and prints one JSON
/// line: for each, how the decode ended (`ok` with the
/// root's length, `DecodeError` with its message, or `MemoryError` past
/// the 2 GiB the script may use), its seconds and its peak traced bytes.
const DECODE_EACH: &str = r#"
import json, resource, struct, sys, time, tracemalloc
sys.path.insert(0, sys.argv[1])
from shmstore_reader import DecodeError, decode_archive
ALIASED
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

def attempt(data, schema, traced):
    if traced:
        tracemalloc.start()
    start = time.monotonic()
    try:
        kind, message = "ok", str(len(decode_archive(data, schema)))
    except DecodeError as e:
        kind, message = "DecodeError", e.message
    except MemoryError:
        kind, message = "MemoryError", ""
    seconds = time.monotonic() - start
    peak = tracemalloc.get_traced_memory()[1] if traced else 0
    tracemalloc.stop()
    return kind, message, seconds, peak

out = []
for case in sys.argv[2:]:
    schema, source = case.split("=", 1)
    spec = json.loads(schema) if schema.startswith("{") else schema
    if source.startswith("aliased:"):
        data = aliased(schema, int(source[8:]))
    else:
        with open(source, "rb") as f:
            data = f.read()
    kind, message, seconds, _ = attempt(data, spec, False)
    _, _, _, peak = attempt(data, spec, True)
    out.append({"schema": schema, "len": len(data), "kind": kind, "message": message,
                "seconds": seconds, "peak": peak})
print(json.dumps(out))
"#;

/// An archived struct of one byte that decodes to three values (the
/// element, its field and the field's field): the most values per archived
/// byte among the tests' honest archives.
#[derive(rkyv::Archive, rkyv::Serialize)]
struct Nested {
    inner: Byte,
}

#[derive(rkyv::Archive, rkyv::Serialize)]
struct Byte {
    b: u8,
}

#[test]
fn pointers_that_share_a_target_cannot_blow_up_a_decode() {
    if !python_or_skip("pointers_that_share_a_target_cannot_blow_up_a_decode") {
        return;
    }
    // Honest archives as rkyv writes them, of the sizes of the aliased
    // ones: they decode whole.
    macro_rules! archive {
        ($value:expr) => {
            rkyv::to_bytes::<rkyv::rancor::Error>(&$value)
                .unwrap()
                .to_vec()
        };
    }
    let nested: Vec<Nested> = (0..64 << 10)
        .map(|i| Nested {
            inner: Byte { b: i as u8 },
        })
        .collect();
    let honest: Vec<(&str, Vec<u8>, usize)> = vec![
        ("vec<u8>", archive!(vec![7u8; 64 << 10]), 64 << 10),
        ("vec<vec<u8>>", archive!(vec![vec![7u8; 504]; 128]), 128),
        (
            r#"{"vec": [["inner", [["b", "u8"]]]]}"#,
            archive!(nested),
            64 << 10,
        ),
        ("vec<str>", archive!(vec!["a".repeat(504); 2048]), 2048),
    ];
    let dir = std::env::temp_dir();
    let mut cases = Vec::new();
    let mut files = Vec::new();
    for (i, (schema, bytes, _)) in honest.iter().enumerate() {
        let path = dir.join(format!("honest-archive-{}-{i}.bin", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        cases.push(format!("{schema}={}", path.display()));
        files.push(path);
    }
    // 64 KiB of vectors that all point at one 32 KiB vector: 134 million
    // values; 1 MiB of strings that all point at one 512 KiB string: 32 GiB.
    let aliased = [("vec<vec<u8>>", 64usize << 10), ("vec<str>", 1 << 20)];
    for (schema, len) in aliased {
        cases.push(format!("{schema}=aliased:{len}"));
    }
    let script = DECODE_EACH.replace("ALIASED", ALIASED);
    let mut cmd = Command::new("python3");
    cmd.args(["-c", &script, PYTHON_PATH]).args(&cases);
    let run = PyRun::start(cmd, "decode aliased archives".into()).finish();
    for f in files {
        let _ = std::fs::remove_file(f);
    }
    let results = run.ok();
    let results = results.as_array().unwrap();
    for ((schema, bytes, count), got) in honest.iter().zip(results) {
        assert_eq!(got["len"], bytes.len(), "{schema}");
        assert_eq!(got["kind"], "ok", "{schema}: {got}");
        assert_eq!(got["message"], count.to_string(), "{schema}: {got}");
    }
    for ((schema, len), got) in aliased.iter().zip(&results[honest.len()..]) {
        assert_eq!(got["len"], *len, "{schema}");
        assert_eq!(got["kind"], "DecodeError", "{schema}: {got}");
        let seconds = got["seconds"].as_f64().unwrap();
        assert!(seconds < 1.0, "{schema}: {seconds} s to refuse: {got}");
        // What was decoded before the refusal is bounded by the archive's
        // size, not by the size of what it points at again and again.
        let peak = got["peak"].as_u64().unwrap() as usize;
        assert!(peak < 64 * len + (4 << 20), "{schema}: {peak} bytes: {got}");
    }
}

/// A Python script: given the package's parent directory, a region's
/// TARGET and a number of seconds, it copies the region's archive (a
/// `Vec<u64>` of stamped words, as the `publish_stamps` role writes them)
/// for that long, checks every copy, and prints one JSON line: the copies
/// made, the copies thrown away (`ShmObject.retries`), the torn copies
/// kept, the versions seen, the median and the longest copy in
/// microseconds, and whether the reader gave up (Starved).
const COPY_STAMPS: &str = r#"
import json, struct, sys, time
sys.path.insert(0, sys.argv[1])
import shmstore_reader as sr

obj = sr.ShmObject.open(sys.argv[2], sr.OpenOptions(timeout=float(sys.argv[3])))
copies, torn, versions, times, starved, last = 0, 0, 0, [], False, None
end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    start = time.perf_counter()
    try:
        version, data = obj.copy_region()
    except sr.Starved:
        starved = True
        break
    times.append(time.perf_counter() - start)
    copies += 1
    versions += version != last
    last = version
    offset, count = struct.unpack_from("<iI", data, len(data) - 8)
    words = struct.unpack_from(f"<{count}Q", data, len(data) - 8 + offset)
    want = [version] + [(version * 0x9E3779B97F4A7C15 ^ i * 0xFF51AFD7ED558CCD) & (2**64 - 1)
                        for i in range(1, count)]
    torn += list(words) != want
times.sort()
print(json.dumps({"copies": copies, "retries": obj.retries, "torn": torn, "versions": versions,
                  "median_us": times[len(times) // 2] * 1e6 if times else None,
                  "max_us": times[-1] * 1e6 if times else None, "starved": starved}))
"#;

/// Copy a `Vec<u64>` region of `words` stamped words at `key` with
/// [`COPY_STAMPS`] for `seconds`, while a Rust process publishes nonstop
/// with a reuse grace of `grace` (none if `None`: the region is copied
/// while nobody publishes).
fn copy_stamps(key: shmstore::Key, words: usize, seconds: f64, grace: Option<Duration>) -> Value {
    let publisher = grace.map(|g| {
        let mut kid = Kid::spawn(&[
            "publish_stamps",
            &key.raw().to_string(),
            &words.to_string(),
            &g.as_micros().to_string(),
        ]);
        kid.expect("ready");
        kid
    });
    let mut cmd = Command::new("python3");
    cmd.args([
        "-c",
        COPY_STAMPS,
        PYTHON_PATH,
        &hex_key(key),
        &seconds.to_string(),
    ]);
    let run = PyRun::start(cmd, "copy stamped archives".into()).finish();
    if let Some(mut kid) = publisher {
        kid.send("stop");
        kid.expect("published");
        assert!(kid.wait().success(), "the publisher failed");
    }
    run.ok()
}

/// Python copies a 1 KiB archive word by word more slowly than a Rust
/// publisher that never pauses comes back to its buffer (4 buffers): the
/// test measures its copy time, then has the publisher keep a reuse grace
/// far above it, and Python throws no copy away (a copy shorter than the
/// grace is never rewritten: FORMAT.md, "Reading a region by copying").
/// Without a grace it says how many it throws away, and whether it starves.
#[test]
fn copies_keep_up_with_a_reuse_grace_above_the_copy_time() {
    if !python_or_skip("copies_keep_up_with_a_reuse_grace_above_the_copy_time") {
        return;
    }
    const WORDS: usize = 127; // 1 KiB with the root
    let key = unique_key();
    let region = SharedRegion::<Vec<u64>>::create(key, WORDS * 8 + 8).unwrap();
    let _guard = SegGuard(region.id());
    region.publish(&vec![1u64; 1]).unwrap();
    let mut first = vec![0u64; WORDS];
    first[0] = 2;
    for (i, w) in first.iter_mut().enumerate().skip(1) {
        *w = 2u64.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ (i as u64).wrapping_mul(0xff51_afd7_ed55_8ccd);
    }
    region.publish(&first).unwrap();

    let idle = copy_stamps(key, WORDS, 0.5, None);
    let copy_us = idle["median_us"].as_f64().unwrap();
    assert_eq!(idle["retries"], 0, "{idle}");
    let grace = Duration::from_millis(20);
    assert!(
        Duration::from_secs_f64(copy_us / 1e6) * 100 < grace,
        "a 1 KiB copy takes {copy_us} µs: the grace is not far above it"
    );
    let with_grace = copy_stamps(key, WORDS, 2.5, Some(grace));
    let without = copy_stamps(key, WORDS, 2.5, Some(Duration::ZERO));
    println!("copy of 1 KiB: {copy_us:.1} µs (median, idle: {idle})");
    println!("reuse grace {grace:?}: {with_grace}");
    println!("no reuse grace: {without}");
    assert_eq!(with_grace["torn"], 0, "{with_grace}");
    assert_eq!(without["torn"], 0, "{without}");
    assert_eq!(with_grace["starved"], false, "{with_grace}");
    assert!(with_grace["versions"].as_u64().unwrap() > 1, "{with_grace}");
    assert_eq!(with_grace["retries"], 0, "{with_grace}");
}

/// How long a waiter is watched not to return before the change it waits
/// for is made.
const STILL_WAITING: Duration = Duration::from_millis(300);

/// `ShmObject.wait_for_change` on a region sleeps until a Rust publisher in
/// another process publishes: the first version (waiting from 0, nothing
/// published) and the next ones; with nothing published it times out at
/// its deadline.
#[test]
fn wait_for_change_wakes_when_a_rust_publisher_publishes() {
    if !python_or_skip("wait_for_change_wakes_when_a_rust_publisher_publishes") {
        return;
    }
    let key = unique_key();
    let region = SharedRegion::<Sample>::create(key, 4096).unwrap();
    let _guard = SegGuard(region.id());
    let got = wait_for_change(&hex_key(key), "0.2", None).finish().ok();
    assert_eq!(got["result"], "timedout", "{got}");
    assert!(got["elapsed"].as_f64().unwrap() >= 0.2, "{got}");

    let mut publisher = Kid::spawn(&["publish_on_command", &key.raw().to_string()]);
    publisher.expect("ready");
    for (since, timeout) in [(0u64, "none"), (1, "20"), (2, "none")] {
        let mut waiter = wait_for_change(&hex_key(key), timeout, None);
        waiter.expect_stderr(&format!("waiting {since}"));
        std::thread::sleep(STILL_WAITING);
        assert!(
            waiter.running(),
            "since {since}: the wait ended before anything was published"
        );
        publisher.send("publish");
        let published: u64 = publisher.expect("published").parse().unwrap();
        assert_eq!(published, since + 1);
        let got = waiter.finish().ok();
        assert_eq!(got["result"], "ok", "since {since}: {got}");
        assert_eq!(got["version"], published, "since {since}: {got}");
    }
    assert!(publisher.wait().success(), "the publisher failed");
}

/// A wait on a region ends with `Removed` when it is removed: by a Rust
/// process's `remove()`, by `IPC_RMID` alone (as `ipcrm` does), and by the
/// `life` mark alone.
#[test]
fn wait_for_change_ends_when_the_region_is_removed() {
    if !python_or_skip("wait_for_change_ends_when_the_region_is_removed") {
        return;
    }
    for how in ["remove", "ipcrm", "mark"] {
        let key = unique_key();
        let region = SharedRegion::<Sample>::create(key, 4096).unwrap();
        let _guard = SegGuard(region.id());
        region.publish(&Sample::of(1)).unwrap();
        let mut publisher = Kid::spawn(&["publish_on_command", &key.raw().to_string()]);
        publisher.expect("ready");
        let mut waiter = wait_for_change(&format!("id:{}", region.id()), "none", None);
        waiter.expect_stderr("waiting 1");
        std::thread::sleep(STILL_WAITING);
        assert!(waiter.running(), "{how}: the wait ended before the removal");
        match how {
            "remove" => {
                publisher.send("remove");
                publisher.expect("removed");
            }
            "ipcrm" => Segment::remove_by_id(region.id()).unwrap(),
            _ => {
                let seg = Segment::options().attach_id(region.id()).unwrap();
                let me = std::process::id() as i32;
                set_life(&seg, life_word(2, me, own_start_time()));
            }
        }
        let got = waiter.finish().ok();
        assert_eq!(got["result"], "removed", "{how}: {got}");
        assert!(publisher.wait().success(), "{how}: the publisher failed");
    }
}
