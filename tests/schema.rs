//! Objects that describe their own type: the derive's schema for every
//! shape, stored at creation and compared at open (a type changed in any
//! way is refused with the field named; a type that only moved is not),
//! and values decoded by field from the stored schema alone, as a reader
//! that knows no Rust type reads them.

mod common;

use std::collections::{BTreeMap, HashMap};

use bytemuck::{Pod, Zeroable};
use common::{Kid, SegGuard, child_args, key_arg, report, unique_key};
use shmstore::schema::{Value, describe};
use shmstore::{Error, Key, Schema, Segment, SharedCell, SharedRegion, inspect};

mod v1 {
    use super::*;

    #[derive(Clone, Copy, Pod, Zeroable, Schema, Debug, PartialEq)]
    #[repr(C)]
    pub struct Stats {
        pub requests: u64,
        pub errors: u32,
        pub load: f32,
    }
}

/// The same type, moved to another module: its Rust name differs.
mod moved {
    use super::*;

    #[derive(Clone, Copy, Pod, Zeroable, Schema)]
    #[repr(C)]
    pub struct Stats {
        pub requests: u64,
        pub errors: u32,
        pub load: f32,
    }
}

/// Two fields of the same size swapped.
mod swapped {
    use super::*;

    #[derive(Clone, Copy, Pod, Zeroable, Schema)]
    #[repr(C)]
    pub struct Stats {
        pub requests: u64,
        pub load: f32,
        pub errors: u32,
    }
}

/// A field retyped, same size.
mod retyped {
    use super::*;

    #[derive(Clone, Copy, Pod, Zeroable, Schema)]
    #[repr(C)]
    pub struct Stats {
        pub requests: u64,
        pub errors: f32,
        pub load: f32,
    }
}

/// A field renamed.
mod renamed {
    use super::*;

    #[derive(Clone, Copy, Pod, Zeroable, Schema)]
    #[repr(C)]
    pub struct Stats {
        pub requests: u64,
        pub failures: u32,
        pub load: f32,
    }
}

#[derive(rkyv::Archive, rkyv::Serialize, Schema, Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_conn: u32,
    pub timeout_ms: u64,
}

#[derive(rkyv::Archive, rkyv::Serialize, Schema, Debug, Clone, PartialEq)]
pub enum Mode {
    Off,
    On(u32),
    Custom { level: u8, note: String },
}

#[derive(rkyv::Archive, rkyv::Serialize, Schema, Debug, Clone, PartialEq)]
pub struct Config {
    pub name: String,
    pub limits: Limits,
    pub tags: Vec<String>,
    pub backup: Option<u64>,
    pub weights: HashMap<String, f64>,
    pub order: BTreeMap<u32, String>,
    pub mode: Mode,
    pub pair: (u8, i16),
    pub grid: [i8; 3],
    pub flag: bool,
    pub initial: char,
}

/// The config with one more variant in its enum.
#[allow(dead_code)]
mod grown {
    use super::*;

    #[derive(rkyv::Archive, rkyv::Serialize, Schema)]
    pub enum Mode {
        Off,
        On(u32),
        Custom { level: u8, note: String },
        Auto,
    }

    #[derive(rkyv::Archive, rkyv::Serialize, Schema)]
    pub struct Config {
        pub name: String,
        pub limits: Limits,
        pub tags: Vec<String>,
        pub backup: Option<u64>,
        pub weights: HashMap<String, f64>,
        pub order: BTreeMap<u32, String>,
        pub mode: Mode,
        pub pair: (u8, i16),
        pub grid: [i8; 3],
        pub flag: bool,
        pub initial: char,
    }
}

#[derive(Schema)]
pub struct Meters(pub f64);

#[derive(Schema)]
pub struct Marker;

#[derive(Schema)]
pub struct Empty();

#[derive(Schema)]
#[allow(dead_code)]
pub enum Shapes {
    Braces {},
    Parens(),
    Bare,
}

#[derive(Schema)]
pub struct Wrapper<T> {
    pub inner: T,
}

#[derive(Schema)]
#[allow(dead_code)]
pub enum Level {
    Low = 3,
    Mid,
    High = 10,
}

fn config() -> Config {
    Config {
        name: "db.example.org".into(),
        limits: Limits {
            max_conn: 100,
            timeout_ms: 2500,
        },
        tags: vec!["a".into(), "a longer tag".into()],
        backup: Some(9),
        weights: HashMap::from([("db".into(), 0.5), ("cache".into(), 2.0)]),
        order: BTreeMap::from([(1, "one".into()), (7, "seven".into())]),
        mode: Mode::Custom {
            level: 3,
            note: "nightly".into(),
        },
        pair: (200, -5),
        grid: [-1, 0, 1],
        flag: true,
        initial: 'é',
    }
}

fn field<'v>(v: &'v Value, name: &str) -> &'v Value {
    match v {
        Value::Struct(fields) => {
            &fields
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("no field {name} in {v}"))
                .1
        }
        other => panic!("{other} is not a struct"),
    }
}

#[test]
fn child_entry() {
    let Some(args) = child_args() else { return };
    match args[0].as_str() {
        "create_v1" => {
            let cell = SharedCell::<v1::Stats>::creator()
                .with_schema()
                .create(
                    key_arg(&args, 1),
                    v1::Stats {
                        requests: 7,
                        errors: 1,
                        load: 0.25,
                    },
                )
                .unwrap();
            report("id", cell.id());
        }
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

#[test]
fn the_derive_writes_every_shape() {
    assert_eq!(
        describe::<v1::Stats>().unwrap(),
        "Stats{requests:u64,errors:u32,load:f32}"
    );
    assert_eq!(
        describe::<Config>().unwrap(),
        "Config{name:str,limits:Limits{max_conn:u32,timeout_ms:u64},tags:vec<str>,\
         backup:option<u64>,weights:hash_map<str,f64>,order:btree_map<u32,str>,\
         mode:enum Mode{Off=0,On=1(u32),Custom=2{level:u8,note:str}},pair:(u8,i16),\
         grid:[i8;3],flag:bool,initial:char}"
    );
    assert_eq!(describe::<Meters>().unwrap(), "Meters(f64)");
    assert_eq!(describe::<Marker>().unwrap(), "Marker{}");
    assert_eq!(describe::<Empty>().unwrap(), "Empty{}");
    assert_eq!(
        describe::<Shapes>().unwrap(),
        "enum Shapes{Braces=0,Parens=1,Bare=2}"
    );
    assert_eq!(
        describe::<Wrapper<Vec<u8>>>().unwrap(),
        "Wrapper{inner:vec<u8>}"
    );
    assert_eq!(
        describe::<Level>().unwrap(),
        "enum Level{Low=3,Mid=4,High=10}"
    );
}

#[test]
fn a_type_that_only_moved_opens_by_its_schema() {
    let key = unique_key();
    let cell = SharedCell::<v1::Stats>::creator()
        .with_schema()
        .create(key, v1::Stats::zeroed())
        .unwrap();
    let _g = SegGuard(cell.id());
    // By name, the moved type is another type.
    let err = SharedCell::<moved::Stats>::open(key).unwrap_err();
    assert!(matches!(err, Error::TypeMismatch { .. }), "{err}");
    // By structure it is the same.
    let other = SharedCell::<moved::Stats>::opener()
        .with_schema()
        .open(key)
        .unwrap();
    assert_eq!(other.load().requests, 0);
    // An opener without a schema still opens it by name.
    SharedCell::<v1::Stats>::open(key).unwrap();
}

#[test]
fn each_change_of_a_cells_type_is_refused_with_the_field_named() {
    let key = unique_key();
    let mut kid = Kid::spawn(&["create_v1", &key.raw().to_string()]);
    let id: i32 = kid.expect("id").parse().unwrap();
    let _g = SegGuard(id);
    kid.wait();
    fn refused<T: Pod + Schema>(key: Key) -> Vec<String> {
        match SharedCell::<T>::opener().with_schema().open(key) {
            Err(Error::TypeMismatch { differences, .. }) => differences,
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("{} opened", std::any::type_name::<T>()),
        }
    }
    let d = refused::<swapped::Stats>(key);
    assert!(
        d.len() == 1 && d[0].contains("`errors`") && d[0].contains("`load`"),
        "{d:?}"
    );
    assert_eq!(refused::<retyped::Stats>(key), ["`errors`: u32 is now f32"]);
    assert_eq!(
        refused::<renamed::Stats>(key),
        [
            "field `failures` added (u32)",
            "field `errors` removed (was u32)"
        ]
    );
    // The error says what to do.
    let err = SharedCell::<swapped::Stats>::opener()
        .with_schema()
        .open(key)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("acme/config@2") && err.contains("another order"),
        "{err}"
    );
    assert_eq!(
        SharedCell::<v1::Stats>::opener()
            .with_schema()
            .open(key)
            .unwrap()
            .load()
            .requests,
        7
    );
}

#[test]
fn a_region_config_is_refused_when_a_variant_is_added() {
    let key = unique_key();
    let region = SharedRegion::<Config>::creator()
        .with_schema()
        .create(key, 4096)
        .unwrap();
    let _g = SegGuard(region.id());
    let err = match SharedRegion::<grown::Config>::opener()
        .with_schema()
        .open(key)
    {
        Err(Error::TypeMismatch { differences, .. }) => differences,
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("opened"),
    };
    assert_eq!(err, ["variant `mode.Auto` added (tag 3)"]);
}

#[test]
fn a_cell_is_read_by_field_from_its_stored_schema() {
    let key = unique_key();
    let cell = SharedCell::<v1::Stats>::creator()
        .with_schema()
        .create(
            key,
            v1::Stats {
                requests: 12,
                errors: 3,
                load: 0.5,
            },
        )
        .unwrap();
    let _g = SegGuard(cell.id());
    let seg = Segment::options().attach_id(cell.id()).unwrap();
    let contents = inspect::contents(&seg).unwrap();
    assert_eq!(
        contents.schema.as_deref(),
        Some("Stats{requests:u64,errors:u32,load:f32}")
    );
    let v = contents.decode().unwrap().unwrap();
    assert_eq!(field(&v, "requests"), &Value::Uint(12));
    assert_eq!(field(&v, "errors"), &Value::Uint(3));
    assert_eq!(field(&v, "load"), &Value::Float(0.5));
    assert_eq!(v.lines(), ["requests = 12", "errors = 3", "load = 0.5"]);
}

#[test]
fn a_region_is_read_by_field_from_its_stored_schema() {
    let key = unique_key();
    let region = SharedRegion::<Config>::creator()
        .with_schema()
        .create(key, 4096)
        .unwrap();
    let _g = SegGuard(region.id());
    let c = config();
    region.publish(&c).unwrap();
    let seg = Segment::options().attach_id(region.id()).unwrap();
    let v = inspect::contents(&seg).unwrap().decode().unwrap().unwrap();
    assert_eq!(field(&v, "name"), &Value::Str(c.name.clone()));
    let limits = field(&v, "limits");
    assert_eq!(field(limits, "max_conn"), &Value::Uint(100));
    assert_eq!(field(limits, "timeout_ms"), &Value::Uint(2500));
    assert_eq!(
        field(&v, "tags"),
        &Value::List(vec![
            Value::Str("a".into()),
            Value::Str("a longer tag".into())
        ])
    );
    assert_eq!(field(&v, "backup"), &Value::Uint(9));
    let Value::Map(weights) = field(&v, "weights") else {
        panic!("weights is not a map")
    };
    let mut weights: Vec<(String, f64)> = weights
        .iter()
        .map(|(k, v)| match (k, v) {
            (Value::Str(k), Value::Float(v)) => (k.clone(), *v),
            other => panic!("{other:?}"),
        })
        .collect();
    weights.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(weights, [("cache".into(), 2.0), ("db".into(), 0.5)]);
    assert_eq!(
        field(&v, "order"),
        &Value::Map(vec![
            (Value::Uint(1), Value::Str("one".into())),
            (Value::Uint(7), Value::Str("seven".into())),
        ])
    );
    assert_eq!(
        field(&v, "mode"),
        &Value::Variant(
            "Custom".into(),
            Box::new(Value::Struct(vec![
                ("level".into(), Value::Uint(3)),
                ("note".into(), Value::Str("nightly".into())),
            ]))
        )
    );
    assert_eq!(
        field(&v, "pair"),
        &Value::List(vec![Value::Uint(200), Value::Int(-5)])
    );
    assert_eq!(
        field(&v, "grid"),
        &Value::List(vec![Value::Int(-1), Value::Int(0), Value::Int(1)])
    );
    assert_eq!(field(&v, "flag"), &Value::Bool(true));
    assert_eq!(field(&v, "initial"), &Value::Str("é".into()));
}

#[test]
fn a_schema_is_stored_only_when_asked_for() {
    let (cell, _key, _g) = common::new_cell(5u64);
    let seg = Segment::options().attach_id(cell.id()).unwrap();
    let contents = inspect::contents(&seg).unwrap();
    assert_eq!(contents.schema, None);
    assert!(contents.decode().is_none());
}

fn decoded<T>(value: &T) -> Value
where
    T: Schema
        + for<'a> rkyv::Serialize<
            rkyv::api::high::HighSerializer<
                rkyv::util::AlignedVec,
                rkyv::ser::allocator::ArenaHandle<'a>,
                rkyv::rancor::Error,
            >,
        >,
{
    let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(value).unwrap();
    let shape = shmstore::schema::Shape::parse(describe::<T>().unwrap().as_bytes()).unwrap();
    shmstore::schema::decode(&shape, shmstore::schema::Form::Region, &bytes).unwrap()
}

#[test]
fn maps_and_sets_of_every_size_decode_whole() {
    for n in [0u32, 1, 4, 5, 6, 30, 31, 36, 100, 1000] {
        let btree: BTreeMap<u32, u64> = (0..n).map(|i| (i * 3, u64::from(i) << 33)).collect();
        let want: Vec<(Value, Value)> = btree
            .iter()
            .map(|(k, v)| (Value::Uint(u128::from(*k)), Value::Uint(u128::from(*v))))
            .collect();
        assert_eq!(decoded(&btree), Value::Map(want), "btree_map of {n}");

        let hash: HashMap<u32, String> = (0..n).map(|i| (i, format!("value number {i}"))).collect();
        let Value::Map(got) = decoded(&hash) else {
            panic!("not a map")
        };
        let mut got: Vec<(u32, String)> = got
            .into_iter()
            .map(|e| match e {
                (Value::Uint(k), Value::Str(v)) => (k as u32, v),
                other => panic!("{other:?}"),
            })
            .collect();
        got.sort();
        let mut want: Vec<(u32, String)> = hash.into_iter().collect();
        want.sort();
        assert_eq!(got, want, "hash_map of {n}");

        let set: std::collections::BTreeSet<u16> = (0..n as u16).map(|i| i * 2).collect();
        let want: Vec<Value> = set.iter().map(|k| Value::Uint(u128::from(*k))).collect();
        assert_eq!(decoded(&set), Value::List(want), "btree_set of {n}");

        let hset: std::collections::HashSet<String> = (0..n).map(|i| format!("k{i}")).collect();
        let Value::List(got) = decoded(&hset) else {
            panic!("not a list")
        };
        assert_eq!(got.len(), n as usize, "hash_set of {n}");
        for v in got {
            let Value::Str(s) = v else { panic!("{v:?}") };
            assert!(hset.contains(&s), "{s}");
        }
    }
}

fn shmstore(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_shmstore"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_command_prints_a_value_by_field() {
    let key = unique_key();
    let cell = SharedCell::<v1::Stats>::creator()
        .with_schema()
        .create(
            key,
            v1::Stats {
                requests: 12,
                errors: 3,
                load: 0.5,
            },
        )
        .unwrap();
    let _g = SegGuard(cell.id());
    let id = cell.id().to_string();
    let out = shmstore(&["get", &id]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "requests = 12\nerrors = 3\nload = 0.5\n"
    );
    let out = shmstore(&["get", &id, "--json"]);
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    for part in [
        "\"kind\":\"cell\"",
        "\"schema\":\"Stats{requests:u64,errors:u32,load:f32}\"",
        "\"value\":{\"requests\":12,\"errors\":3,\"load\":0.5}",
    ] {
        assert!(json.contains(part), "{part} not in {json}");
    }

    let out = shmstore(&["watch", &id, "--count", "1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("value {requests: 12, errors: 3, load: 0.5}"),
        "{text}"
    );
    let out = shmstore(&["watch", &id, "--count", "1", "--json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"fields\":{"), "{text}");
    let out = shmstore(&["inspect", &id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("schema:      Stats{requests:u64,errors:u32,load:f32}"),
        "{text}"
    );

    let region = SharedRegion::<Config>::creator()
        .with_schema()
        .create(unique_key(), 4096)
        .unwrap();
    let _r = SegGuard(region.id());
    region.publish(&config()).unwrap();
    let out = shmstore(&["get", &region.id().to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    for line in [
        "name = \"db.example.org\"",
        "limits.max_conn = 100",
        "tags[1] = \"a longer tag\"",
        "weights[\"db\"] = 0.5",
        "order[7] = \"seven\"",
        "mode.Custom.level = 3",
        "pair[1] = -5",
        "initial = \"é\"",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
    let out = shmstore(&["inspect", &region.id().to_string(), "--json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"schema\":\"Config{name:str,"), "{text}");
    let out = shmstore(&["get", &region.id().to_string(), "--json"]);
    let json = String::from_utf8_lossy(&out.stdout);
    for part in [
        "\"max_conn\":100",
        "\"weights\":{",
        "\"order\":[[1,\"one\"],[7,\"seven\"]]",
        "\"mode\":{\"Custom\":{",
    ] {
        assert!(json.contains(part), "{part} not in {json}");
    }
}

#[test]
fn the_command_asks_for_a_format_without_a_schema() {
    let (cell, _key, _g) = common::new_cell(0x0102u64);
    let id = cell.id().to_string();
    let out = shmstore(&["get", &id]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no schema") && err.contains("--format"),
        "{err}"
    );
    let out = shmstore(&["get", &id, "--format", "u64"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "258\n");
}

#[test]
fn python_reads_a_config_with_maps_by_field_from_the_stored_schema() {
    use common::python::{py, python_or_skip};
    if !python_or_skip("python_reads_a_config_with_maps_by_field_from_the_stored_schema") {
        return;
    }
    let region = SharedRegion::<Config>::creator()
        .with_schema()
        .create(unique_key(), 4096)
        .unwrap();
    let _g = SegGuard(region.id());
    let c = config();
    region.publish(&c).unwrap();
    let v = py(&["value", &region.id().to_string(), "--json"]).ok();
    let v = &v["value"];
    assert_eq!(v["name"], c.name.as_str());
    assert_eq!(v["limits"]["max_conn"], c.limits.max_conn);
    assert_eq!(v["limits"]["timeout_ms"], c.limits.timeout_ms);
    assert_eq!(v["tags"], serde_json::json!(c.tags));
    assert_eq!(v["backup"], 9);
    assert_eq!(v["weights"], serde_json::json!({"db": 0.5, "cache": 2.0}));
    assert_eq!(v["order"], serde_json::json!({"1": "one", "7": "seven"}));
    assert_eq!(
        v["mode"],
        serde_json::json!({"Custom": {"level": 3, "note": "nightly"}})
    );
    assert_eq!(v["pair"], serde_json::json!([200, -5]));
    assert_eq!(v["grid"], serde_json::json!([-1, 0, 1]));
    assert_eq!(v["flag"], true);
    assert_eq!(v["initial"], "é");

    let cell = SharedCell::<v1::Stats>::creator()
        .with_schema()
        .create(
            unique_key(),
            v1::Stats {
                requests: 12,
                errors: 3,
                load: 0.5,
            },
        )
        .unwrap();
    let _c = SegGuard(cell.id());
    let v = py(&["value", &cell.id().to_string(), "--json"]).ok();
    assert_eq!(
        v["value"],
        serde_json::json!({"requests": 12, "errors": 3, "load": 0.5})
    );
}

/// The Python reader's parser and this one agree on every schema text the
/// fuzz campaign kept and on edge cases of the grammar: the same texts
/// accepted in a cell and in a region, with the same size and alignment.
#[test]
fn python_and_rust_agree_on_every_schema_text() {
    use common::python::{PYTHON_PATH, python_or_skip};
    use common::schemas::{judged, shown, texts};
    if !python_or_skip("python_and_rust_agree_on_every_schema_text") {
        return;
    }
    let texts = texts();
    let script = r#"
import sys
from shmstore_reader.schema import parse_stored_schema
for line in sys.stdin:
    text = bytes.fromhex(line.strip())
    out = []
    for kind in ("cell", "region"):
        try:
            s = parse_stored_schema(text, kind)
            out.append(f"{s.size}/{s.align}")
        except Exception as e:
            if type(e).__name__ != "BadSchema":
                raise
            out.append("refused")
    print(" ".join(out))
"#;
    let input: String = texts
        .iter()
        .map(|t| t.iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n")
        .collect();
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .env("PYTHONPATH", PYTHON_PATH)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let python: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(python.len(), texts.len());
    let differ: Vec<String> = texts
        .iter()
        .zip(&python)
        .filter_map(|(t, p)| {
            let r = judged(t).join(" ");
            (r != *p).then(|| format!("{}: rust {r}, python {p}", shown(t)))
        })
        .collect();
    assert!(
        differ.is_empty(),
        "{} differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
}

/// Every shape the Config above does not hold.
#[derive(rkyv::Archive, rkyv::Serialize, Schema)]
pub struct Rest {
    pub boxed: Box<u32>,
    pub text: Box<str>,
    pub slice: Box<[u16]>,
    pub good: Result<u8, String>,
    pub bad: Result<u8, String>,
    pub hset: std::collections::HashSet<u16>,
    pub bset: std::collections::BTreeSet<String>,
    pub unit: (),
    pub wide: u128,
    pub negative: i128,
    pub size: usize,
    pub signed: isize,
    pub single: f32,
    pub nested: Vec<Option<Limits>>,
    pub meters: Distance,
    pub lone: (u64,),
}

#[derive(rkyv::Archive, rkyv::Serialize, Schema)]
pub struct Distance(pub f64, pub i8);

fn rest() -> Rest {
    Rest {
        boxed: Box::new(77),
        text: "boxed text here".into(),
        slice: vec![1, 2, 3].into(),
        good: Ok(5),
        bad: Err("no luck at all".into()),
        hset: [4, 8].into(),
        bset: ["x".to_string(), "a longer one".to_string()].into(),
        unit: (),
        wide: u128::MAX - 1,
        negative: i128::MIN + 1,
        size: 123_456,
        signed: -7,
        single: 1.5,
        nested: vec![
            None,
            Some(Limits {
                max_conn: 1,
                timeout_ms: 2,
            }),
        ],
        meters: Distance(2.25, -3),
        lone: (9,),
    }
}

#[test]
fn every_other_shape_is_read_by_rust_and_python_alike() {
    use common::python::{py, python_or_skip};
    let region = SharedRegion::<Rest>::creator()
        .with_schema()
        .create(unique_key(), 4096)
        .unwrap();
    let _g = SegGuard(region.id());
    region.publish(&rest()).unwrap();
    let seg = Segment::options().attach_id(region.id()).unwrap();
    let v = inspect::contents(&seg).unwrap().decode().unwrap().unwrap();
    let s = |x: &str| Value::Str(x.into());
    assert_eq!(field(&v, "boxed"), &Value::Uint(77));
    assert_eq!(field(&v, "text"), &s("boxed text here"));
    assert_eq!(
        field(&v, "slice"),
        &Value::List(vec![Value::Uint(1), Value::Uint(2), Value::Uint(3)])
    );
    assert_eq!(
        field(&v, "good"),
        &Value::Variant("Ok".into(), Box::new(Value::Uint(5)))
    );
    assert_eq!(
        field(&v, "bad"),
        &Value::Variant("Err".into(), Box::new(s("no luck at all")))
    );
    let Value::List(mut hset) = field(&v, "hset").clone() else {
        panic!("hset")
    };
    hset.sort_by_key(|x| x.to_string());
    assert_eq!(hset, [Value::Uint(4), Value::Uint(8)]);
    assert_eq!(
        field(&v, "bset"),
        &Value::List(vec![s("a longer one"), s("x")])
    );
    assert_eq!(field(&v, "unit"), &Value::Null);
    assert_eq!(field(&v, "wide"), &Value::Uint(u128::MAX - 1));
    assert_eq!(field(&v, "negative"), &Value::Int(i128::MIN + 1));
    assert_eq!(field(&v, "size"), &Value::Uint(123_456));
    assert_eq!(field(&v, "signed"), &Value::Int(-7));
    assert_eq!(field(&v, "single"), &Value::Float(1.5));
    let Value::List(nested) = field(&v, "nested") else {
        panic!("nested")
    };
    assert_eq!(nested[0], Value::Null);
    assert_eq!(field(&nested[1], "timeout_ms"), &Value::Uint(2));
    assert_eq!(
        field(&v, "meters"),
        &Value::List(vec![Value::Float(2.25), Value::Int(-3)])
    );
    assert_eq!(field(&v, "lone"), &Value::List(vec![Value::Uint(9)]));

    if !python_or_skip("every_other_shape_is_read_by_rust_and_python_alike") {
        return;
    }
    let run = py(&["value", &region.id().to_string(), "--json"]);
    // Integers past 64 bits, checked in the text (JSON numbers read back
    // as floats here).
    for wide in [(u128::MAX - 1).to_string(), (i128::MIN + 1).to_string()] {
        assert!(run.stdout.contains(&wide), "{wide} not in {}", run.stdout);
    }
    let p = run.ok();
    let p = &p["value"];
    assert_eq!(p["boxed"], 77);
    assert_eq!(p["text"], "boxed text here");
    assert_eq!(p["slice"], serde_json::json!([1, 2, 3]));
    assert_eq!(p["good"], serde_json::json!({"Ok": [5]}));
    assert_eq!(p["bad"], serde_json::json!({"Err": ["no luck at all"]}));
    let mut hset: Vec<u64> = p["hset"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    hset.sort();
    assert_eq!(hset, [4, 8]);
    assert_eq!(p["bset"], serde_json::json!(["a longer one", "x"]));
    assert_eq!(p["unit"], serde_json::Value::Null);
    assert_eq!(p["size"], 123_456);
    assert_eq!(p["signed"], -7);
    assert_eq!(p["single"], 1.5);
    assert_eq!(
        p["nested"],
        serde_json::json!([null, {"max_conn": 1, "timeout_ms": 2}])
    );
    assert_eq!(p["meters"], serde_json::json!([2.25, -3]));
    assert_eq!(p["lone"], serde_json::json!([9]));
}
