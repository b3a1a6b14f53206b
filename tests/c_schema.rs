//! The C header parses schemas (FORMAT.md, "Schema (optional)") and reads
//! values through them: `tests/c/schema_read.c` is given a schema's text
//! and the bytes of a value, a Pod struct's for a cell and an archive
//! `rkyv::to_bytes` made for a region, and prints every leaf and the
//! answers to queries by path, compared here with what Rust knows: the
//! layouts it computes are Rust's and rkyv's own (`size_of`, `align_of`),
//! and the fields are the values archived. It refuses what the grammar does
//! not allow, nesting deeper than 32, forms a cell cannot hold, a root of
//! another size or alignment, and archives whose pointers, tags, bools,
//! chars or strings break the format. Compiled with gcc (a test that finds
//! no gcc says so and passes).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::mem::{align_of, offset_of, size_of};

use bytemuck::{Pod, Zeroable};
use common::SegGuard;
use common::programs::{Programs, compile, run};
use shmstore::{Key, Segment, SharedCell, SharedRegion};

/// Error codes of `include/shmstore.h`.
const ECORRUPT: i32 = 4;
const ETYPE: i32 = 5;
const ESCHEMA: i32 = 19;
const ENOPATH: i32 = 20;
const ENONE: i32 = 21;
const ERANGE: i32 = 22;
const ENOTSUP: i32 = 23;

/// What `schema_read` printed and how it ended.
struct Read {
    code: Option<i32>,
    lines: Vec<String>,
}

impl Read {
    fn line(&self, prefix: &str) -> &str {
        self.lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?} in {:#?}", self.lines))
    }

    /// The answer to `query`.
    fn answer(&self, query: &str) -> &str {
        self.line(&format!("{query}="))
    }
}

/// Run `schema_read` on `kind` (`cell` or `region`), `schema` and `bytes`
/// (`None`: parse only) with `queries`.
fn read(
    programs: &Programs,
    kind: &str,
    schema: &str,
    bytes: Option<&[u8]>,
    queries: &[&str],
) -> Read {
    read_raw(programs, kind, schema.as_bytes(), bytes, queries)
}

fn read_raw(
    programs: &Programs,
    kind: &str,
    schema: &[u8],
    bytes: Option<&[u8]>,
    queries: &[&str],
) -> Read {
    let schema_file = programs.exe("schema.txt");
    std::fs::write(&schema_file, schema).expect("write the schema");
    let value_file = programs.exe("value.bin");
    let value_arg = match bytes {
        Some(bytes) => {
            std::fs::write(&value_file, bytes).expect("write the value");
            value_file.to_str().unwrap().to_owned()
        }
        None => "-".to_owned(),
    };
    let mut args = vec![kind, schema_file.to_str().unwrap(), value_arg.as_str()];
    args.extend(queries);
    let out = run(programs, "schema_read", &args);
    assert!(
        out.stderr.is_empty(),
        "schema_read said: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Read {
        code: out.status.code(),
        lines: String::from_utf8(out.stdout)
            .expect("UTF-8 output")
            .lines()
            .map(str::to_owned)
            .collect(),
    }
}

/// `size=S align=A`, as the first line says it.
fn layout_of(r: &Read) -> (usize, usize) {
    let first = r.lines.first().expect("a first line");
    let parse = || {
        let rest = first.strip_prefix("size=")?;
        let (size, rest) = rest.split_once(" align=")?;
        let (align, _) = rest.split_once(' ')?;
        Some((size.parse().ok()?, align.parse().ok()?))
    };
    parse().unwrap_or_else(|| panic!("not a layout line: {first:?}"))
}

/// The leaves the visitor printed: the lines after the first but the
/// answers to queries (whose names have a `:`) and the outcomes.
fn leaves(r: &Read) -> Vec<&str> {
    r.lines[1..]
        .iter()
        .filter(|l| {
            let key = l.split('=').next().unwrap_or("");
            !key.contains(':') && !["root", "visit", "leaves"].contains(&key)
        })
        .map(String::as_str)
        .collect()
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Limits {
    timeout_ms: u64,
    max_conn: u32,
    burst: u16,
    level: i8,
    flag: u8,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Pair(i32, u32);

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct CellValue {
    limits: Limits,
    weights: [f32; 4],
    big: u128,
    neg: i128,
    total: i64,
    size: usize,
    pair: Pair,
    extra: u64,
}

const CELL_SCHEMA: &str = "CellValue{limits:Limits{timeout_ms:u64,max_conn:u32,burst:u16,\
level:i8,flag:u8},weights:[f32;4],big:u128,neg:i128,total:i64,size:usize,pair:Pair(i32,u32),\
extra:u64}";

/// The cell's value of the tests.
fn cell_value() -> CellValue {
    CellValue {
        limits: Limits {
            timeout_ms: 30_000,
            max_conn: 512,
            burst: 65_535,
            level: -7,
            flag: 1,
        },
        weights: [1.5, -0.25, 3.0, 0.0],
        big: u128::from(u64::MAX) + 1,
        neg: -5,
        total: i64::MIN,
        size: 123_456,
        pair: Pair(-1, u32::MAX),
        extra: u64::MAX,
    }
}

/// The leaves of `cell_value()` as `schema_read` prints them.
fn cell_leaves() -> Vec<String> {
    [
        "limits.timeout_ms=30000",
        "limits.max_conn=512",
        "limits.burst=65535",
        "limits.level=-7",
        "limits.flag=1",
        "weights[0]=1.5",
        "weights[1]=-0.25",
        "weights[2]=3",
        "weights[3]=0",
        "big=18446744073709551616",
        "neg=-5",
        "total=-9223372036854775808",
        "size=123456",
        "pair.0=-1",
        "pair.1=4294967295",
        "extra=18446744073709551615",
    ]
    .iter()
    .map(|l| l.to_string())
    .collect()
}

#[test]
fn c_reads_a_pod_cell_value_field_by_field() {
    let Some(programs) = compile("schema-cell", &["schema_read"]) else {
        return;
    };
    let value = cell_value();
    let r = read(
        &programs,
        "cell",
        CELL_SCHEMA,
        Some(bytemuck::bytes_of(&value)),
        &[
            "u64:limits.max_conn",
            "i64:limits.level",
            "u64:limits.level",
            "f64:weights[1]",
            "u64:weights[4]",
            "u64:big",
            "i64:neg",
            "i64:total",
            "u64:total",
            "u64:size",
            "i64:pair.0",
            "u64:pair.1",
            "u64:pair.2",
            "len:weights",
            "len:",
            "len:limits",
            "str:limits",
            "f64:extra",
            "u64:limits.nope",
            "u64:weights.0",
            "u64:pair[0]",
            "u64:limits.max_conn.x",
            "u64:limits..max_conn",
            "u64:weights[1",
            &format!(
                "check:{},{}",
                size_of::<CellValue>(),
                align_of::<CellValue>()
            ),
            &format!(
                "check:{},{}",
                size_of::<CellValue>() + 16,
                align_of::<CellValue>()
            ),
            &format!("check:{},{}", size_of::<CellValue>(), 8),
        ],
    );
    assert_eq!(r.code, Some(0), "{:#?}", r.lines);
    assert_eq!(
        layout_of(&r),
        (size_of::<CellValue>(), align_of::<CellValue>()),
        "the C layout of the schema is Rust's repr(C) layout"
    );
    assert_eq!(leaves(&r), cell_leaves());
    for (query, answer) in [
        ("u64:limits.max_conn", "512".to_owned()),
        ("i64:limits.level", "-7".to_owned()),
        ("u64:limits.level", format!("!{ERANGE}")),
        ("f64:weights[1]", "-0.25".to_owned()),
        ("u64:weights[4]", format!("!{ENOPATH}")),
        ("u64:big", format!("!{ERANGE}")),
        ("i64:neg", "-5".to_owned()),
        ("i64:total", "-9223372036854775808".to_owned()),
        ("u64:total", format!("!{ERANGE}")),
        ("u64:size", "123456".to_owned()),
        ("i64:pair.0", "-1".to_owned()),
        ("u64:pair.1", "4294967295".to_owned()),
        ("u64:pair.2", format!("!{ENOPATH}")),
        ("len:weights", "4".to_owned()),
        ("len:", "8".to_owned()),
        ("len:limits", "5".to_owned()),
        ("str:limits", format!("!{ETYPE}")),
        ("f64:extra", format!("!{ETYPE}")),
        ("u64:limits.nope", format!("!{ENOPATH}")),
        ("u64:weights.0", format!("!{ENOPATH}")),
        ("u64:pair[0]", format!("!{ENOPATH}")),
        ("u64:limits.max_conn.x", format!("!{ENOPATH}")),
        ("u64:limits..max_conn", format!("!{ENOPATH}")),
        ("u64:weights[1", format!("!{ENOPATH}")),
    ] {
        assert_eq!(r.answer(query), answer, "{query}");
    }
    assert_eq!(
        r.answer(&format!(
            "check:{},{}",
            size_of::<CellValue>(),
            align_of::<CellValue>()
        )),
        "0"
    );
    assert_eq!(
        r.answer(&format!(
            "check:{},{}",
            size_of::<CellValue>() + 16,
            align_of::<CellValue>()
        )),
        ESCHEMA.to_string()
    );
    assert_eq!(
        r.answer(&format!("check:{},8", size_of::<CellValue>())),
        ESCHEMA.to_string()
    );

    // A value of another size than the schema's root is not read.
    let short = &bytemuck::bytes_of(&value)[..size_of::<CellValue>() - 8];
    let r = read(&programs, "cell", CELL_SCHEMA, Some(short), &[]);
    assert_eq!(r.code, Some(4), "{:#?}", r.lines);
    assert_eq!(r.lines[1], "root=!11");
}

#[derive(rkyv::Archive, rkyv::Serialize)]
struct RLimits {
    max_conn: u32,
    timeout_ms: u64,
}

#[derive(rkyv::Archive, rkyv::Serialize)]
#[allow(dead_code)]
enum Mode {
    Off,
    On(u32),
    Custom { level: u8 },
}

#[derive(rkyv::Archive, rkyv::Serialize)]
struct Id(u16);

#[derive(rkyv::Archive, rkyv::Serialize)]
struct Empty {}

#[derive(rkyv::Archive, rkyv::Serialize)]
struct Config {
    name: String,
    limits: RLimits,
    tags: Vec<String>,
    mode: Mode,
    backup: Option<u64>,
    none: Option<String>,
    boxed: Box<u32>,
    bstr: Box<str>,
    slice: Box<[u16]>,
    res: Result<u8, String>,
    err: Result<u8, String>,
    pair: (u8, i64),
    arr: [i16; 3],
    ch: char,
    flag: bool,
    f: f32,
    d: f64,
    big: u128,
    neg: i128,
    us: usize,
    is: isize,
    unit: (),
    nested: Vec<Option<Vec<u8>>>,
    id: Id,
    empty: Empty,
    one: (u8,),
    weights: HashMap<String, f64>,
    tree: BTreeMap<String, u32>,
    set: HashSet<u32>,
    bset: BTreeSet<u8>,
}

const CONFIG_SCHEMA: &str = "Config{name:str,limits:RLimits{max_conn:u32,timeout_ms:u64},\
tags:vec<str>,mode:enum Mode{Off=0,On=1(u32),Custom=2{level:u8}},backup:option<u64>,\
none:option<str>,boxed:box<u32>,bstr:box<str>,slice:box<[u16]>,res:result<u8,str>,\
err:result<u8,str>,pair:(u8,i64),arr:[i16;3],ch:char,flag:bool,f:f32,d:f64,big:u128,\
neg:i128,us:usize,is:isize,unit:(),nested:vec<option<vec<u8>>>,id:Id(u16),empty:Empty{},\
one:(u8,),weights:hash_map<str,f64>,tree:btree_map<str,u32>,set:hash_set<u32>,\
bset:btree_set<u8>}";

fn config() -> Config {
    Config {
        name: "db.example.org".into(),
        limits: RLimits {
            max_conn: 512,
            timeout_ms: 30_000,
        },
        tags: vec![
            "a".into(),
            "bb".into(),
            "a long tag here".into(),
            "ccc".into(),
        ],
        mode: Mode::On(7),
        backup: Some(9),
        none: None,
        boxed: Box::new(77),
        bstr: "boxed str".into(),
        slice: vec![1, 2, 65_535].into_boxed_slice(),
        res: Ok(5),
        err: Err("went wrong".into()),
        pair: (200, -3),
        arr: [-1, 0, 32_767],
        ch: 'é',
        flag: true,
        f: 1.5,
        d: -0.25,
        big: u128::from(u64::MAX) + 1,
        neg: -5,
        us: 123_456,
        is: -42,
        unit: (),
        nested: vec![Some(vec![1, 2]), None, Some(vec![])],
        id: Id(65_535),
        empty: Empty {},
        one: (4,),
        weights: HashMap::from([("db".to_owned(), 0.5)]),
        tree: BTreeMap::from([("x".to_owned(), 1)]),
        set: HashSet::from([3]),
        bset: BTreeSet::from([1]),
    }
}

/// The leaves of `config()` as `schema_read` prints them.
fn config_leaves() -> Vec<String> {
    let big = format!("big={}", u128::from(u64::MAX) + 1);
    [
        "name=\"db.example.org\"",
        "limits.max_conn=512",
        "limits.timeout_ms=30000",
        "tags[0]=\"a\"",
        "tags[1]=\"bb\"",
        "tags[2]=\"a long tag here\"",
        "tags[3]=\"ccc\"",
        "mode.On.0=7",
        "backup=9",
        "none=None",
        "boxed=77",
        "bstr=\"boxed str\"",
        "slice[0]=1",
        "slice[1]=2",
        "slice[2]=65535",
        "res.Ok.0=5",
        "err.Err.0=\"went wrong\"",
        "pair.0=200",
        "pair.1=-3",
        "arr[0]=-1",
        "arr[1]=0",
        "arr[2]=32767",
        "ch=233",
        "flag=true",
        "f=1.5",
        "d=-0.25",
        big.as_str(),
        "neg=-5",
        "us=123456",
        "is=-42",
        "unit=()",
        "nested[0][0]=1",
        "nested[0][1]=2",
        "nested[1]=None",
        "id.0=65535",
        "one.0=4",
        "weights[\"db\"]=0.5",
        "tree[\"x\"]=1",
        "set{3}=3",
        "bset{1}=1",
    ]
    .iter()
    .map(|l| l.to_string())
    .collect()
}

#[test]
fn c_reads_an_rkyv_archive_field_by_field() {
    let Some(programs) = compile("schema-region", &["schema_read"]) else {
        return;
    };
    let archive = rkyv::to_bytes::<rkyv::rancor::Error>(&config()).expect("archive");
    let queries = [
        "u64:limits.max_conn",
        "str:name",
        "len:name",
        "str:tags[2]",
        "str:tags[4]",
        "len:tags",
        "variant:mode",
        "u64:mode.On.0",
        "u64:mode.Custom.level",
        "u64:mode.Nope",
        "u64:mode.On",
        "u64:backup",
        "u64:none",
        "str:none",
        "u64:boxed",
        "str:bstr",
        "len:bstr",
        "len:slice",
        "u64:slice[2]",
        "u64:slice[3]",
        "variant:res",
        "variant:err",
        "u64:res.Ok.0",
        "str:err.Err.0",
        "u64:err.Ok.0",
        "i64:pair.1",
        "u64:pair.1",
        "u64:pair[0]",
        "u64:arr.0",
        "i64:arr[0]",
        "u64:ch",
        "bool:flag",
        "f64:f",
        "f64:d",
        "u64:big",
        "i64:neg",
        "u64:us",
        "i64:is",
        "u64:name",
        "str:limits",
        "u64:limits.nope",
        "len:nested[0]",
        "u64:nested[0][1]",
        "u64:nested[1][0]",
        "len:nested[2]",
        "u64:id.0",
        "u64:one.0",
        "f64:weights[\"db\"]",
        "len:weights",
        "u64:tree.x",
        "u64:tree[\"x\"]",
        "u64:tree[\"y\"]",
        "u64:tree[0]",
    ];
    let r = read(&programs, "region", CONFIG_SCHEMA, Some(&archive), &queries);
    assert_eq!(r.code, Some(0), "{:#?}", r.lines);
    assert_eq!(
        layout_of(&r),
        (size_of::<ArchivedConfig>(), align_of::<ArchivedConfig>()),
        "the schema's archived layout is rkyv's"
    );
    assert_eq!(leaves(&r), config_leaves());
    let e = |code: i32| format!("!{code}");
    let answers: [(&str, String); 53] = [
        ("u64:limits.max_conn", "512".into()),
        ("str:name", "\"db.example.org\"".into()),
        ("len:name", "14".into()),
        ("str:tags[2]", "\"a long tag here\"".into()),
        ("str:tags[4]", e(ENONE)),
        ("len:tags", "4".into()),
        ("variant:mode", "On/1".into()),
        ("u64:mode.On.0", "7".into()),
        ("u64:mode.Custom.level", e(ENONE)),
        ("u64:mode.Nope", e(ENOPATH)),
        ("u64:mode.On", e(ETYPE)),
        ("u64:backup", "9".into()),
        ("u64:none", e(ENONE)),
        ("str:none", e(ENONE)),
        ("u64:boxed", "77".into()),
        ("str:bstr", "\"boxed str\"".into()),
        ("len:bstr", "9".into()),
        ("len:slice", "3".into()),
        ("u64:slice[2]", "65535".into()),
        ("u64:slice[3]", e(ENONE)),
        ("variant:res", "Ok/0".into()),
        ("variant:err", "Err/1".into()),
        ("u64:res.Ok.0", "5".into()),
        ("str:err.Err.0", "\"went wrong\"".into()),
        ("u64:err.Ok.0", e(ENONE)),
        ("i64:pair.1", "-3".into()),
        ("u64:pair.1", e(ERANGE)),
        ("u64:pair[0]", e(ENOPATH)),
        ("u64:arr.0", e(ENOPATH)),
        ("i64:arr[0]", "-1".into()),
        ("u64:ch", "233".into()),
        ("bool:flag", "true".into()),
        ("f64:f", "1.5".into()),
        ("f64:d", "-0.25".into()),
        ("u64:big", e(ERANGE)),
        ("i64:neg", "-5".into()),
        ("u64:us", "123456".into()),
        ("i64:is", "-42".into()),
        ("u64:name", e(ETYPE)),
        ("str:limits", e(ETYPE)),
        ("u64:limits.nope", e(ENOPATH)),
        ("len:nested[0]", "2".into()),
        ("u64:nested[0][1]", "2".into()),
        ("u64:nested[1][0]", e(ENONE)),
        ("len:nested[2]", "0".into()),
        ("u64:id.0", "65535".into()),
        ("u64:one.0", "4".into()),
        ("f64:weights[\"db\"]", "0.5".into()),
        ("len:weights", "1".into()),
        ("u64:tree.x", e(ENOPATH)),
        ("u64:tree[\"x\"]", "1".into()),
        ("u64:tree[\"y\"]", e(ENONE)),
        ("u64:tree[0]", e(ENOPATH)),
    ];
    assert_eq!(answers.len(), queries.len());
    for (query, answer) in &answers {
        assert_eq!(r.answer(query), answer, "{query}");
    }
}

#[derive(rkyv::Archive, rkyv::Serialize)]
struct Maps {
    hashed: HashMap<String, u32>,
    sorted: BTreeMap<String, u64>,
    boxed: HashMap<Box<str>, String>,
    empty: HashMap<String, u8>,
    none: BTreeMap<String, u8>,
    numbers: HashMap<u32, u8>,
}

/// Every key of a map of a few hundred entries is found: in rkyv's swiss
/// table, and in its B-tree, several levels deep.
#[test]
fn c_finds_string_keys_in_maps() {
    let Some(programs) = compile("schema-maps", &["schema_read"]) else {
        return;
    };
    let key = |i: u32| {
        if i.is_multiple_of(2) {
            format!("k{i}")
        } else {
            format!("a longer key {i}")
        }
    };
    let maps = Maps {
        hashed: (0..300).map(|i| (key(i), i * 3)).collect(),
        sorted: (0..300).map(|i| (key(i), u64::from(i) << 33)).collect(),
        boxed: (0..20)
            .map(|i| (key(i).into(), format!("value {i}")))
            .collect(),
        empty: HashMap::new(),
        none: BTreeMap::new(),
        numbers: HashMap::from([(1, 2)]),
    };
    let archive = rkyv::to_bytes::<rkyv::rancor::Error>(&maps).expect("archive");
    let schema = "Maps{hashed:hash_map<str,u32>,sorted:btree_map<str,u64>,\
boxed:hash_map<box<str>,str>,empty:hash_map<str,u8>,none:btree_map<str,u8>,\
numbers:hash_map<u32,u8>}";
    let mut queries = Vec::new();
    for i in 0..300 {
        queries.push(format!("u64:hashed[\"{}\"]", key(i)));
        queries.push(format!("u64:sorted[\"{}\"]", key(i)));
    }
    for i in 0..20 {
        queries.push(format!("str:boxed[\"{}\"]", key(i)));
    }
    let absent = [
        "u64:hashed[\"k1\"]",
        "u64:sorted[\"k1\"]",
        "u64:sorted[\"\"]",
        "u64:empty[\"k0\"]",
        "u64:none[\"k0\"]",
    ];
    queries.extend(absent.iter().map(|q| q.to_string()));
    queries.extend(
        [
            "len:hashed",
            "len:sorted",
            "len:empty",
            "u64:numbers[\"1\"]",
            "u64:numbers[1]",
            "u64:hashed[0]",
            "u64:hashed.k0",
        ]
        .map(str::to_owned),
    );
    let args: Vec<&str> = queries.iter().map(String::as_str).collect();
    let r = read(&programs, "region", schema, Some(&archive), &args);
    assert_eq!(r.code, Some(0), "{:#?}", r.lines);
    assert_eq!(
        layout_of(&r),
        (size_of::<ArchivedMaps>(), align_of::<ArchivedMaps>())
    );
    for i in 0..300 {
        assert_eq!(
            r.answer(&format!("u64:hashed[\"{}\"]", key(i))),
            (i * 3).to_string()
        );
        assert_eq!(
            r.answer(&format!("u64:sorted[\"{}\"]", key(i))),
            (u64::from(i) << 33).to_string()
        );
    }
    for i in 0..20 {
        assert_eq!(
            r.answer(&format!("str:boxed[\"{}\"]", key(i))),
            format!("\"value {i}\"")
        );
    }
    for q in absent {
        assert_eq!(r.answer(q), format!("!{ENONE}"), "{q}");
    }
    assert_eq!(r.answer("len:hashed"), "300");
    assert_eq!(r.answer("len:sorted"), "300");
    assert_eq!(r.answer("len:empty"), "0");
    assert_eq!(r.answer("u64:numbers[\"1\"]"), format!("!{ENOPATH}"));
    assert_eq!(r.answer("u64:numbers[1]"), "2");
    assert_eq!(r.answer("u64:hashed[0]"), format!("!{ENOPATH}"));
    assert_eq!(r.answer("u64:hashed.k0"), format!("!{ENOPATH}"));

    // Scribbled tables and trees: corrupt, or the key not found, never a
    // read outside the archive or a walk without end.
    let root = archive.len() - size_of::<ArchivedMaps>();
    let hashed = root + offset_of!(ArchivedMaps, hashed);
    let sorted = root + offset_of!(ArchivedMaps, sorted);
    let patch = |pos: usize, bytes: &[u8]| {
        let mut a = archive.to_vec();
        a[pos..pos + bytes.len()].copy_from_slice(bytes);
        a
    };
    let k0 = "u64:hashed[\"k0\"]";
    let s0 = "u64:sorted[\"k0\"]";
    let corrupt = format!("!{ECORRUPT}");
    for (what, bytes, query) in [
        (
            "a table far away",
            patch(hashed, &i32::MAX.to_le_bytes()),
            k0,
        ),
        (
            "a table before the start",
            patch(hashed, &i32::MIN.to_le_bytes()),
            k0,
        ),
        (
            "more entries than buckets",
            patch(hashed + 4, &u32::MAX.to_le_bytes()),
            k0,
        ),
        (
            "buckets before the start",
            patch(hashed + 8, &(u32::MAX / 2).to_le_bytes()),
            k0,
        ),
        (
            "a tree far away",
            patch(sorted, &i32::MAX.to_le_bytes()),
            s0,
        ),
        (
            "a tree misaligned",
            patch(sorted, &(-3i32).to_le_bytes()),
            s0,
        ),
    ] {
        let r = read(&programs, "region", schema, Some(&bytes), &[query]);
        assert_eq!(r.answer(query), corrupt, "{what}: {:#?}", r.lines);
    }
    // A table must have exactly `len` full buckets, and a key once: one
    // more or one less full control byte, or a key written over another
    // (inline strings of eight bytes or less), is corrupt, whichever key
    // is looked up.
    let ctrl = (hashed as i64
        + i64::from(i32::from_le_bytes(
            archive[hashed..hashed + 4].try_into().unwrap(),
        ))) as usize;
    let cap = u32_at(&archive, hashed + 8) as usize;
    // A bucket of hash_map<str,u32>: the String at 0, the u32 at 8.
    let bucket = |i: usize| ctrl - (i + 1) * 12;
    let full: Vec<usize> = (0..cap).filter(|&i| archive[ctrl + i] < 0x80).collect();
    assert_eq!(full.len(), 300);
    let empty = (0..cap).find(|&i| archive[ctrl + i] == 0xff).unwrap();
    let inline: Vec<usize> = full
        .iter()
        .copied()
        .filter(|&i| archive[bucket(i)] & 0xc0 != 0x80)
        .collect();
    let (a, b) = (inline[0], inline[1]);
    let key_of = |i: usize| {
        let bytes = &archive[bucket(i)..bucket(i) + 8];
        let n = bytes.iter().position(|&c| c == 0xff).unwrap_or(8);
        String::from_utf8(bytes[..n].to_vec()).unwrap()
    };
    let (key_a, key_b) = (key_of(a), key_of(b));
    let qa = format!("u64:hashed[\"{key_a}\"]");
    let qb = format!("u64:hashed[\"{key_b}\"]");
    let mut twice = archive.to_vec();
    twice.copy_within(bucket(a)..bucket(a) + 8, bucket(b));
    let r = read(
        &programs,
        "region",
        schema,
        Some(&twice),
        &[&qa, &qb, "len:hashed"],
    );
    assert_eq!(r.answer(&qa), corrupt, "a key twice: {:#?}", r.lines);
    assert_eq!(r.answer(&qb), format!("!{ENONE}"), "{:#?}", r.lines);
    for (what, bytes) in [
        ("a full bucket more", patch(ctrl + empty, &[0x11])),
        ("a full bucket less", patch(ctrl + full[7], &[0xff])),
        ("len one more", patch(hashed + 4, &301u32.to_le_bytes())),
        ("len one less", patch(hashed + 4, &299u32.to_le_bytes())),
    ] {
        let r = read(
            &programs,
            "region",
            schema,
            Some(&bytes),
            &[&qa, "len:hashed"],
        );
        assert_eq!(r.answer(&qa), corrupt, "{what}: {:#?}", r.lines);
        assert_eq!(r.answer("len:hashed"), corrupt, "{what}: {:#?}", r.lines);
    }
    // A tree must hold exactly `len` entries.
    for len in [299u32, 301, 0x7fff_ffff] {
        let bytes = patch(sorted + 4, &len.to_le_bytes());
        let r = read(
            &programs,
            "region",
            schema,
            Some(&bytes),
            &[s0, "len:sorted"],
        );
        assert_eq!(r.answer(s0), corrupt, "len {len}: {:#?}", r.lines);
        assert_eq!(r.answer("len:sorted"), corrupt, "len {len}: {:#?}", r.lines);
    }

    // A tree whose root node links back to itself: the walk ends.
    let node = (sorted as i64
        + i64::from(i32::from_le_bytes(
            archive[sorted..sorted + 4].try_into().unwrap(),
        ))) as usize;
    assert_eq!(archive[node], 1, "the root of 300 entries is an inner node");
    let mut looped = archive.to_vec();
    // A node of 5 String keys and 5 u64 values: the kind byte, the keys
    // at 4 to 44, the values at 48 to 88, then the 6 links.
    let links = node + 88;
    for i in 0..6 {
        let at = links + 4 * i;
        looped[at..at + 4].copy_from_slice(&(node as i32 - at as i32).to_le_bytes());
    }
    let r = read(
        &programs,
        "region",
        schema,
        Some(&looped),
        &["u64:sorted[\"nowhere\"]"],
    );
    assert_eq!(
        r.answer("u64:sorted[\"nowhere\"]"),
        corrupt,
        "{:#?}",
        r.lines
    );
}

/// Each form's archived size and alignment, as the C parser computes them
/// for a region, are rkyv's (`Archived<T>`).
#[test]
fn c_lays_out_every_form_as_rkyv_archives_it() {
    let Some(programs) = compile("schema-layouts", &["schema_read"]) else {
        return;
    };
    macro_rules! forms {
        ($($t:ty => $text:expr),* $(,)?) => {
            [$(($text, size_of::<rkyv::Archived<$t>>(), align_of::<rkyv::Archived<$t>>())),*]
        };
    }
    let forms = forms![
        u8 => "u8", i16 => "i16", u32 => "u32", i64 => "i64", u128 => "u128", i128 => "i128",
        usize => "usize", isize => "isize", f32 => "f32", f64 => "f64", bool => "bool",
        char => "char", () => "()", String => "str", Vec<u64> => "vec<u64>",
        Box<u64> => "box<u64>", Box<str> => "box<str>", Box<[u64]> => "box<[u64]>",
        Box<[u8; 3]> => "box<[u8;3]>",
        Option<u64> => "option<u64>", Option<u8> => "option<u8>", Option<String> => "option<str>",
        Option<Option<u32>> => "option<option<u32>>", Result<u8, u64> => "result<u8,u64>",
        HashMap<String, f64> => "hash_map<str,f64>", HashSet<u32> => "hash_set<u32>",
        BTreeMap<String, u32> => "btree_map<str,u32>", BTreeSet<u8> => "btree_set<u8>",
        [u16; 5] => "[u16;5]", [u64; 0] => "[u64;0]", (u8, u32, u16) => "(u8,u32,u16)",
        (u8,) => "(u8,)", (u8, String) => "(u8,str)", Mode => "enum Mode{Off=0,On=1(u32),Custom=2{level:u8}}",
        Id => "Id(u16)", Empty => "Empty{}", RLimits => "RLimits{max_conn:u32,timeout_ms:u64}",
    ];
    for (text, size, align) in forms {
        let r = read(&programs, "region", text, None, &[]);
        assert_eq!(r.code, Some(0), "{text}: {:#?}", r.lines);
        assert_eq!(layout_of(&r), (size, align), "{text}");
    }
    // A unit-only enum is a byte; tags need not be in order.
    let r = read(&programs, "region", "enum E{A=3,B=0}", None, &[]);
    assert_eq!(layout_of(&r), (1, 1));
    // A cell's usize is the platform's.
    let r = read(&programs, "cell", "(u8,usize)", None, &[]);
    assert_eq!(layout_of(&r), (2 * size_of::<usize>(), align_of::<usize>()));
}

/// The text of `depth` nested vectors around a `u8`: `depth + 1` deep.
fn nested(depth: usize) -> String {
    format!("{}u8{}", "vec<".repeat(depth), ">".repeat(depth))
}

#[test]
fn c_refuses_schemas_outside_the_grammar() {
    let Some(programs) = compile("schema-refusals", &["schema_read"]) else {
        return;
    };
    let deepest = nested(31);
    let too_deep = nested(32);
    let deep_struct = format!("{}u8{}", "S{a:".repeat(32), "}".repeat(32));
    let region = [
        "",
        " u8",
        "u8 ",
        "U8",
        "u8,",
        "vec<u8",
        "vec<u8>>",
        "vec<>",
        "vec<u8,u8>",
        "Vec<u8>",
        "[u8;01]",
        "[u8;]",
        "[u8;-1]",
        "[u8,2]",
        "[u8;4294967296]",
        "[[u8;65536];65537]",
        "(u8)",
        "(u8,u8,)",
        "(,)",
        "(u8,,u8)",
        "( u8,)",
        "A{a:u8,a:u8}",
        "A{a:u8,}",
        "A{a u8}",
        "A{1a:u8}",
        "A {a:u8}",
        "A()",
        "A(u8,)",
        "A{a:u8}x",
        "enum E{}",
        "enum E{A}",
        "enum E{A=0,B=0}",
        "enum E{A=0,A=1}",
        "enum E{A=256}",
        "enum E{A=00}",
        "enum E{A=0()}",
        "enum E{A=0{}}",
        "enum  E{A=0}",
        "enumE{A=0}",
        "enum E{A=0,}",
        "hash_map<str>",
        "hash_set<u8,u8>",
        "result<u8>",
        "box<[u8;2]",
        "box<[u8]",
        "box<[u8;2>",
        "option<>",
        "str<u8>",
        "u8<u8>",
        "A{a:\u{e9}}",
        "A{\u{e9}:u8}",
        "A{a:u8}\n",
        "A\t{}",
        &too_deep,
        &deep_struct,
    ];
    for text in region {
        let r = read(&programs, "region", text, None, &[]);
        assert_eq!(r.code, Some(3), "{text:?} was not refused: {:#?}", r.lines);
        assert!(
            r.lines[0].starts_with(&format!("refused {ESCHEMA} at ")),
            "{text:?}: {:#?}",
            r.lines
        );
    }
    // Texts cut short deep inside are refused as such: the nodes opened
    // but not closed never exceed SHMSTORE_SCHEMA_NODES_FOR.
    let cut = format!("{}u8,", "(".repeat(31));
    let r = read(&programs, "region", &cut, None, &[]);
    assert_eq!(r.code, Some(3), "{:#?}", r.lines);
    assert!(
        r.lines[0].starts_with(&format!("refused {ESCHEMA} at ")),
        "{cut:?}: {:#?}",
        r.lines
    );
    let wrap = |open: &str, close: &str, levels: usize| {
        (0..levels).fold("u8".to_owned(), |t, _| format!("{open}{t}{close}"))
    };
    for deep in [
        wrap("(", ",)", 31),
        wrap("[", ";1]", 31),
        wrap("box<[", "]>", 15),
        wrap("enum E{A=0(", ")}", 31),
        wrap("enum E{A=0,B=1{b:", "}}", 31),
        wrap("A(", ")", 31),
        wrap("result<", ",u8>", 31),
    ] {
        let r = read(&programs, "region", &deep, None, &[]);
        assert_eq!(r.code, Some(0), "{deep}: {:#?}", r.lines);
        for end in 1..deep.len() {
            let text = &deep[..end];
            let r = read(&programs, "region", text, None, &[]);
            assert_eq!(r.code, Some(3), "{text:?}: {:#?}", r.lines);
            assert!(
                r.lines[0].starts_with(&format!("refused {ESCHEMA} at "))
                    && !r.lines[0].contains("more nodes"),
                "{text:?}: {:#?}",
                r.lines
            );
        }
    }

    // What is refused says where.
    let r = read(&programs, "region", "A{a:u8,b:x8}", None, &[]);
    assert_eq!(
        r.lines[0],
        format!("refused {ESCHEMA} at 9: an unknown type")
    );
    let r = read(&programs, "region", &too_deep, None, &[]);
    assert!(
        r.lines[0].ends_with("nested deeper than 32"),
        "{:#?}",
        r.lines
    );
    // Bytes that are not ASCII, and a schema longer than 16384 bytes.
    let r = read_raw(&programs, "region", b"A{a:u8\xff}", None, &[]);
    assert_eq!(r.code, Some(3));
    let long = format!(
        "A{{{}}}",
        (0..2000)
            .map(|i| format!("f{i}:u8"))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert!(long.len() > 16384);
    let r = read(&programs, "region", &long, None, &[]);
    assert_eq!(r.code, Some(3), "{:#?}", r.lines);

    // The deepest allowed, and forms a cell cannot hold.
    for ok in [
        deepest.as_str(),
        "A{}",
        "(u8,)",
        "enum E{A=255}",
        "A{r#type:u8}",
    ] {
        let r = read(&programs, "region", ok, None, &[]);
        if ok == "A{r#type:u8}" {
            assert_eq!(r.code, Some(3), "raw names are not names: {:#?}", r.lines);
            continue;
        }
        assert_eq!(r.code, Some(0), "{ok}: {:#?}", r.lines);
    }
    for text in [
        "bool",
        "char",
        "str",
        "vec<u8>",
        "box<u8>",
        "box<str>",
        "box<[u8]>",
        "option<u8>",
        "result<u8,u8>",
        "hash_map<u8,u8>",
        "hash_set<u8>",
        "btree_map<u8,u8>",
        "btree_set<u8>",
        "enum E{A=0}",
        "A{a:[bool;2]}",
        "(u8,char)",
        "()",
        "A{a:()}",
    ] {
        let r = read(&programs, "cell", text, None, &[]);
        assert_eq!(r.code, Some(3), "a cell of {text}: {:#?}", r.lines);
        assert!(
            r.lines[0].ends_with("a form a cell's (Pod) value cannot have"),
            "{text}: {:#?}",
            r.lines
        );
    }
    for ok in ["u128", "[u8;3]", "A{a:(u8,u16),b:B(f64)}"] {
        let r = read(&programs, "cell", ok, None, &[]);
        assert_eq!(r.code, Some(0), "a cell of {ok}: {:#?}", r.lines);
    }
}

#[derive(rkyv::Archive, rkyv::Serialize)]
struct Small {
    tags: Vec<String>,
    boxed: Box<u32>,
    long: String,
    short: String,
    flag: bool,
    ch: char,
    opt: Option<u8>,
    mode: Mode,
}

const SMALL_SCHEMA: &str = "Small{tags:vec<str>,boxed:box<u32>,long:str,short:str,flag:bool,\
ch:char,opt:option<u8>,mode:enum Mode{Off=0,On=1(u32),Custom=2{level:u8}}}";

/// Every pointer, length, tag and string of an archive is checked before
/// it is used: scribbled bytes are SHMSTORE_ECORRUPT, never a read outside
/// the archive.
#[test]
fn c_refuses_archives_that_break_the_format() {
    let Some(programs) = compile("schema-corrupt", &["schema_read"]) else {
        return;
    };
    let small = Small {
        tags: vec!["first tag, out of line".into()],
        boxed: Box::new(5),
        long: "more than eight".into(),
        short: "short".into(),
        flag: false,
        ch: 'x',
        opt: Some(1),
        mode: Mode::Custom { level: 3 },
    };
    let archive = rkyv::to_bytes::<rkyv::rancor::Error>(&small)
        .expect("archive")
        .to_vec();
    let root = archive.len() - size_of::<ArchivedSmall>();
    let queries = [
        "str:tags[0]",
        "len:tags",
        "u64:boxed",
        "str:long",
        "str:short",
        "bool:flag",
        "u64:ch",
        "u64:opt",
        "variant:mode",
    ];
    let fine = read(&programs, "region", SMALL_SCHEMA, Some(&archive), &queries);
    assert_eq!(fine.code, Some(0), "{:#?}", fine.lines);
    assert_eq!(fine.answer("str:tags[0]"), "\"first tag, out of line\"");
    assert_eq!(fine.answer("u64:boxed"), "5");
    assert_eq!(fine.answer("str:long"), "\"more than eight\"");
    assert_eq!(fine.answer("str:short"), "\"short\"");
    assert_eq!(fine.answer("variant:mode"), "Custom/2");

    let at = |field: usize| root + field;
    let patch = |pos: usize, bytes: &[u8]| {
        let mut a = archive.clone();
        a[pos..pos + bytes.len()].copy_from_slice(bytes);
        a
    };
    let tags = at(offset_of!(ArchivedSmall, tags));
    let boxed = at(offset_of!(ArchivedSmall, boxed));
    let long = at(offset_of!(ArchivedSmall, long));
    let short = at(offset_of!(ArchivedSmall, short));
    let corrupt = e(ECORRUPT);
    fn e(code: i32) -> String {
        format!("!{code}")
    }
    let len = archive.len() as i32;
    let cases: Vec<(&str, Vec<u8>, &str, String)> = vec![
        // A vector's pointer past the end, before the start, misaligned
        // for its strings, or a count reaching past the end.
        (
            "tags past the end",
            patch(tags, &(len - tags as i32).to_le_bytes()),
            "str:tags[0]",
            corrupt.clone(),
        ),
        (
            "tags before the start",
            patch(tags, &(-(tags as i32) - 4).to_le_bytes()),
            "str:tags[0]",
            corrupt.clone(),
        ),
        (
            "tags far away",
            patch(tags, &i32::MAX.to_le_bytes()),
            "str:tags[0]",
            corrupt.clone(),
        ),
        (
            "tags misaligned",
            patch(tags, &(-(tags as i32) + 1).to_le_bytes()),
            "str:tags[0]",
            corrupt.clone(),
        ),
        (
            "tags too many",
            patch(tags + 4, &u32::MAX.to_le_bytes()),
            "str:tags[0]",
            corrupt.clone(),
        ),
        (
            "tags counted",
            patch(tags + 4, &u32::MAX.to_le_bytes()),
            "len:tags",
            corrupt.clone(),
        ),
        (
            "a box past the end",
            patch(boxed, &(len - boxed as i32).to_le_bytes()),
            "u64:boxed",
            corrupt.clone(),
        ),
        (
            "a box misaligned",
            patch(boxed, &(-(boxed as i32) + 2).to_le_bytes()),
            "u64:boxed",
            corrupt.clone(),
        ),
        // An out-of-line string reaching past the end, starting before the
        // archive, or as short as an inline one; bytes that are not UTF-8.
        (
            "a string too long",
            patch(long, &[0xbf, 0xff, 0xff, 0xff]),
            "str:long",
            corrupt.clone(),
        ),
        (
            "a string before the start",
            patch(long + 4, &(-(long as i32) - 1).to_le_bytes()),
            "str:long",
            corrupt.clone(),
        ),
        (
            "a short out-of-line string",
            patch(long, &[0x88, 0, 0, 0]),
            "str:long",
            corrupt.clone(),
        ),
        (
            "not UTF-8",
            patch(short, &[0x61, 0xc3, 0x28]),
            "str:short",
            corrupt.clone(),
        ),
        (
            "a surrogate",
            patch(short, &[0xed, 0xa0, 0x80]),
            "str:short",
            corrupt.clone(),
        ),
        (
            "an overlong",
            patch(short, &[0xc0, 0xaf]),
            "str:short",
            corrupt.clone(),
        ),
        (
            "inline, full",
            patch(short, b"12345678"),
            "str:short",
            "\"12345678\"".into(),
        ),
        (
            "a bool of 2",
            patch(at(offset_of!(ArchivedSmall, flag)), &[2]),
            "bool:flag",
            corrupt.clone(),
        ),
        (
            "a surrogate char",
            patch(at(offset_of!(ArchivedSmall, ch)), &0xd800u32.to_le_bytes()),
            "u64:ch",
            corrupt.clone(),
        ),
        (
            "a char too large",
            patch(
                at(offset_of!(ArchivedSmall, ch)),
                &0x110000u32.to_le_bytes(),
            ),
            "u64:ch",
            corrupt.clone(),
        ),
        (
            "an option's tag 2",
            patch(at(offset_of!(ArchivedSmall, opt)), &[2]),
            "u64:opt",
            corrupt.clone(),
        ),
        (
            "an option's None",
            patch(at(offset_of!(ArchivedSmall, opt)), &[0]),
            "u64:opt",
            e(ENONE),
        ),
        (
            "an enum's unknown tag",
            patch(at(offset_of!(ArchivedSmall, mode)), &[9]),
            "variant:mode",
            corrupt.clone(),
        ),
    ];
    for (what, bytes, query, answer) in cases {
        let r = read(&programs, "region", SMALL_SCHEMA, Some(&bytes), &[query]);
        assert_eq!(r.answer(query), answer, "{what}: {:#?}", r.lines);
    }

    // An archive shorter than the root, or whose root would be misaligned.
    let r = read(
        &programs,
        "region",
        SMALL_SCHEMA,
        Some(&archive[..size_of::<ArchivedSmall>() - 1]),
        &[],
    );
    assert_eq!(r.lines[1], format!("root=!{ECORRUPT}"), "{:#?}", r.lines);
    let r = read(&programs, "region", SMALL_SCHEMA, Some(&archive[1..]), &[]);
    assert_eq!(r.lines[1], format!("root=!{ECORRUPT}"), "{:#?}", r.lines);

    // A vector of four billion units in eight bytes: the walk stops,
    // bounded, after 32 * len + 2^20 places.
    let mut units = 0i32.to_le_bytes().to_vec();
    units.extend_from_slice(&u32::MAX.to_le_bytes());
    let r = read(
        &programs,
        "region",
        "vec<()>",
        Some(&units),
        &["quiet", "len:"],
    );
    assert_eq!(r.code, Some(4), "the walk was not bounded: {:#?}", r.lines);
    assert_eq!(r.answer("len:"), "4294967295");
    let counted: u64 = r.line("leaves=").parse().unwrap();
    assert!(counted < (1 << 20) + 32 * 8, "{counted} leaves");
    assert_eq!(r.line("visit=!"), ERANGE.to_string());
}

/// 64-bit FNV-1a, as `schema_hash` is.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn u32_at(image: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(image[at..at + 4].try_into().unwrap())
}

fn u64_at(image: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(image[at..at + 8].try_into().unwrap())
}

/// The bytes of segment `id`.
fn image_of(id: i32) -> Vec<u8> {
    let seg = Segment::options()
        .read_only(true)
        .attach_id(id)
        .expect("attach the object");
    let mut image = vec![0; seg.len()];
    seg.read_at(0, &mut image).expect("copy the object");
    image
}

/// `image` (of an object without a schema) with `schema` stored as
/// FORMAT.md's "Schema" says: at 512 in a cell, at 9792 in a region, the
/// data moved up past it to the next multiple of its unit, `data_offset`,
/// `used_len`, `schema_len` and `schema_hash` to match.
fn with_schema(image: &[u8], schema: &[u8]) -> Vec<u8> {
    let kind = u32_at(image, 12);
    let align = u32_at(image, 48) as usize;
    let count = u32_at(image, 76) as usize;
    let data_offset = u64_at(image, 80) as usize;
    let stride = u64_at(image, 88) as usize;
    let (at, unit) = if kind == 1 {
        (512, align.max(8))
    } else {
        (9792, align.max(64))
    };
    assert!(data_offset >= at && u32_at(image, 116) == 0);
    let new_offset = (at + schema.len()).div_ceil(unit) * unit;
    let data = &image[data_offset..data_offset + count * stride];
    let mut out = image[..at].to_vec();
    out.extend_from_slice(schema);
    out.resize(new_offset, 0);
    out.extend_from_slice(data);
    out[80..88].copy_from_slice(&(new_offset as u64).to_le_bytes());
    out[96..104].copy_from_slice(&((new_offset + data.len()) as u64).to_le_bytes());
    out[116..120].copy_from_slice(&(schema.len() as u32).to_le_bytes());
    out[120..128].copy_from_slice(&fnv1a(schema).to_le_bytes());
    out
}

/// A new private segment holding `image`, and its guard.
fn plant(image: &[u8]) -> (Segment, SegGuard) {
    let seg = Segment::options()
        .size(image.len())
        .create(true)
        .open(Key::PRIVATE)
        .expect("create a private segment");
    let guard = SegGuard(seg.id());
    seg.write_at(0, image).expect("write the image");
    (seg, guard)
}

/// Run `schema_object` on the object in `image`, planted in a segment of
/// its own: exit code, standard output's lines, standard error.
fn read_object(
    programs: &Programs,
    image: &[u8],
    queries: &[&str],
) -> (Option<i32>, Vec<String>, String) {
    let (seg, _guard) = plant(image);
    let id = seg.id().to_string();
    let mut args = vec![id.as_str()];
    args.extend(queries);
    let out = run(programs, "schema_object", &args);
    (
        out.status.code(),
        String::from_utf8(out.stdout)
            .expect("UTF-8 output")
            .lines()
            .map(str::to_owned)
            .collect(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The leaves among `schema_object`'s lines.
fn object_leaves(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .filter(|l| {
            let key = l.split('=').next().unwrap_or("");
            !key.contains(':') && !["schema", "version", "visit"].contains(&key)
        })
        .map(String::as_str)
        .collect()
}

/// The C reader copies a cell's and a region's stored schema, checks its
/// hash, parses it against the header and reads the live value through it.
#[test]
fn c_reads_objects_through_their_stored_schema() {
    let Some(programs) = compile("schema-objects", &["schema_object"]) else {
        return;
    };
    let cell = SharedCell::<CellValue>::options()
        .remove_on_drop(true)
        .create(Key::PRIVATE, cell_value())
        .expect("create the cell");
    let _cell_guard = SegGuard(cell.id());
    let plain = image_of(cell.id());
    let image = with_schema(&plain, CELL_SCHEMA.as_bytes());
    let (code, lines, err) = read_object(&programs, &image, &["u64:limits.max_conn"]);
    assert_eq!(code, Some(0), "{lines:#?} {err}");
    assert_eq!(lines[0], format!("schema={CELL_SCHEMA}"));
    assert_eq!(lines[1], "version=0");
    assert_eq!(object_leaves(&lines), cell_leaves());
    assert!(lines.contains(&"u64:limits.max_conn=512".to_owned()));

    let region = SharedRegion::<Config>::options()
        .remove_on_drop(true)
        .create(Key::PRIVATE, 4096)
        .expect("create the region");
    let _region_guard = SegGuard(region.id());
    region.publish(&config()).expect("publish");
    let image = with_schema(&image_of(region.id()), CONFIG_SCHEMA.as_bytes());
    let (code, lines, err) = read_object(&programs, &image, &["str:tags[2]"]);
    assert_eq!(code, Some(0), "{lines:#?} {err}");
    assert_eq!(lines[0], format!("schema={CONFIG_SCHEMA}"));
    assert_eq!(lines[1], "version=1");
    assert_eq!(object_leaves(&lines), config_leaves());
    assert!(lines.contains(&"str:tags[2]=\"a long tag here\"".to_owned()));

    // Refused: no schema; a hash that is not the schema's; a schema that
    // does not parse, or describes another size; a schema_len past 16384,
    // or reaching past data_offset.
    let refusals: Vec<(&str, Vec<u8>, &str)> = vec![
        ("no schema", plain.clone(), "the object stores no schema"),
        (
            "another hash",
            {
                let mut i = with_schema(&plain, CELL_SCHEMA.as_bytes());
                i[120] ^= 1;
                i
            },
            "the schema's bytes do not have its schema_hash",
        ),
        (
            "not the grammar",
            with_schema(&plain, b"CellValue{limits:"),
            "a name was expected",
        ),
        (
            "another size",
            with_schema(&plain, b"CellValue{limits:[u64;2]}"),
            "the schema's size is not the value's",
        ),
        (
            "another alignment",
            with_schema(&plain, b"CellValue{a:[u64;12]}"),
            "the schema's alignment is not the value's",
        ),
        (
            "a cell's form",
            with_schema(&plain, b"CellValue{a:[bool;96]}"),
            "a form a cell's (Pod) value cannot have",
        ),
        (
            "too long",
            {
                let mut i = with_schema(&plain, CELL_SCHEMA.as_bytes());
                i[116..120].copy_from_slice(&16385u32.to_le_bytes());
                i
            },
            "schema longer than 16384 bytes",
        ),
        (
            "past data_offset",
            {
                let mut i = with_schema(&plain, CELL_SCHEMA.as_bytes());
                let room = u64_at(&i, 80) as u32 - 512;
                i[116..120].copy_from_slice(&(room + 1).to_le_bytes());
                i
            },
            "data offset is below the header and schema",
        ),
    ];
    for (what, image, said) in refusals {
        let (code, lines, err) = read_object(&programs, &image, &[]);
        assert_eq!(code, Some(3), "{what}: {lines:#?} {err}");
        assert!(err.contains(said), "{what}: {err}");
    }
}

/// The C header's parser and the Rust one agree on every schema text the
/// fuzz campaign kept and on edge cases of the grammar: the same texts
/// accepted in a cell and in a region, with the same size and alignment.
#[test]
fn c_and_rust_agree_on_every_schema_text() {
    use common::schemas::{judged, shown, texts};
    let Some(programs) = compile("c_and_rust_agree_on_every_schema_text", &["schema_read"]) else {
        return;
    };
    let mut differ = Vec::new();
    for text in texts() {
        let rust = judged(&text);
        for (kind, r) in ["cell", "region"].iter().zip(&rust) {
            let read = read_raw(&programs, kind, &text, None, &[]);
            let c = match read.code {
                Some(0) => {
                    let (size, align) = layout_of(&read);
                    format!("{size}/{align}")
                }
                _ => "refused".into(),
            };
            if c != *r {
                differ.push(format!("{} as a {kind}: rust {r}, c {c}", shown(&text)));
            }
        }
    }
    assert!(
        differ.is_empty(),
        "{} differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
}

#[derive(rkyv::Archive, rkyv::Serialize)]
struct Keyed {
    order: BTreeMap<u32, String>,
    signed: HashMap<i64, u8>,
    flags: HashMap<bool, u32>,
    letters: BTreeMap<char, u16>,
    wide: HashMap<u128, u8>,
    low: BTreeMap<i128, i8>,
    small: BTreeMap<u8, u16>,
    ids: HashSet<u32>,
    names: BTreeSet<String>,
    bytes: BTreeSet<i8>,
    points: HashMap<(u8, u8), u8>,
    maybe: Option<HashSet<u16>>,
}

const KEYED_SCHEMA: &str = "Keyed{order:btree_map<u32,str>,signed:hash_map<i64,u8>,\
flags:hash_map<bool,u32>,letters:btree_map<char,u16>,wide:hash_map<u128,u8>,\
low:btree_map<i128,i8>,small:btree_map<u8,u16>,ids:hash_set<u32>,names:btree_set<str>,\
bytes:btree_set<i8>,points:hash_map<(u8,u8),u8>,maybe:option<hash_set<u16>>}";

fn keyed() -> Keyed {
    Keyed {
        order: (0..200)
            .map(|i| (i * 7, format!("seven times {i}")))
            .collect(),
        signed: [-5, 0, 9, i64::MIN, i64::MAX]
            .into_iter()
            .zip(1..)
            .collect(),
        flags: HashMap::from([(true, 1), (false, 0)]),
        letters: "aé€𝄞z".chars().zip(1..).collect(),
        wide: HashMap::from([(u128::MAX, 1), (u128::from(u64::MAX) + 1, 2), (3, 3)]),
        low: BTreeMap::from([(i128::MIN, -1), (-1, -2), (i128::MAX, 3)]),
        small: (1..=7).map(|i| (i, u16::from(i) * 100)).collect(),
        ids: (0..50).map(|i| i * i).collect(),
        names: ["alpha", "a name longer than eight", ""]
            .map(str::to_owned)
            .into(),
        bytes: [-128, -1, 0, 127].into(),
        points: HashMap::from([((1, 2), 3)]),
        maybe: None,
    }
}

/// Maps whose keys are integers, bools and chars are read by key, and sets
/// answer whether they hold an element, in swiss tables and B-trees.
#[test]
fn c_finds_keys_of_every_scalar_type() {
    let Some(programs) = compile("schema-keys", &["schema_read"]) else {
        return;
    };
    let value = keyed();
    let archive = rkyv::to_bytes::<rkyv::rancor::Error>(&value).expect("archive");
    let mut answers: Vec<(String, String)> = Vec::new();
    let mut ask = |q: String, a: String| answers.push((q, a));
    let e = |code: i32| format!("!{code}");
    for (k, v) in &value.order {
        ask(format!("str:order[{k}]"), format!("{v:?}"));
    }
    for k in [1u64, 6, 1400, 4_294_967_295, 4_294_967_296] {
        ask(format!("str:order[{k}]"), e(ENONE));
    }
    for (k, v) in &value.signed {
        ask(format!("u64:signed[{k}]"), v.to_string());
    }
    ask("u64:signed[-6]".into(), e(ENONE));
    ask("u64:signed[-0]".into(), value.signed[&0].to_string());
    ask("u64:flags[true]".into(), "1".into());
    ask("u64:flags[false]".into(), "0".into());
    for (k, v) in &value.letters {
        ask(format!("u64:letters['{k}']"), v.to_string());
        ask(format!("u64:letters[{}]", u32::from(*k)), v.to_string());
    }
    ask("u64:letters['b']".into(), e(ENONE));
    for (k, v) in &value.wide {
        if *k <= u128::from(u64::MAX) {
            ask(format!("u64:wide[{k}]"), v.to_string());
        }
    }
    ask("u64:wide[18446744073709551615]".into(), e(ENONE));
    ask("i64:low[-1]".into(), "-2".into());
    ask("i64:low[1]".into(), e(ENONE));
    for (k, v) in &value.small {
        ask(format!("u64:small[{k}]"), v.to_string());
    }
    ask("u64:small[300]".into(), e(ENONE));
    for i in 0..60u32 {
        let there = value.ids.contains(&i).to_string();
        ask(format!("contains:ids{{{i}}}"), there.clone());
        let got = if value.ids.contains(&i) {
            i.to_string()
        } else {
            e(ENONE)
        };
        ask(format!("u64:ids{{{i}}}"), got);
    }
    for name in ["alpha", "a name longer than eight", "", "beta"] {
        ask(
            format!("contains:names{{\"{name}\"}}"),
            value.names.contains(name).to_string(),
        );
    }
    ask(
        "str:names{\"a name longer than eight\"}".into(),
        "\"a name longer than eight\"".into(),
    );
    for b in [-128i8, -1, 0, 1, 127] {
        ask(
            format!("contains:bytes{{{b}}}"),
            value.bytes.contains(&b).to_string(),
        );
    }
    // Maps take `[key]` and sets `{element}`; a literal of another kind
    // than the key, or no literal, is no path; keys a path cannot name are
    // not supported; an option that is None on the way is no element.
    for (q, a) in [
        ("u64:order[\"7\"]", e(ENOPATH)),
        ("u64:order{7}", e(ENOPATH)),
        ("u64:order.7", e(ENOPATH)),
        ("u64:order[7", e(ENOPATH)),
        ("u64:order[7]]", e(ENOPATH)),
        ("u64:order[-]", e(ENOPATH)),
        ("u64:order[true]", e(ENOPATH)),
        ("u64:flags[1]", e(ENOPATH)),
        ("u64:flags[True]", e(ENOPATH)),
        ("u64:letters['ab']", e(ENOPATH)),
        ("u64:letters['']", e(ENOPATH)),
        ("u64:letters[\"a\"]", e(ENOPATH)),
        ("u64:signed['a']", e(ENOPATH)),
        ("contains:ids[4]", e(ENOPATH)),
        ("contains:ids", e(ENOPATH)),
        ("contains:order[7]", "true".into()),
        ("contains:order[8]", "false".into()),
        ("contains:order[7].x", e(ENOPATH)),
        ("u64:points[1]", e(ENOTSUP)),
        ("contains:points[\"x\"]", e(ENOTSUP)),
        ("contains:maybe{1}", e(ENONE)),
        ("u64:small[-1]", e(ENONE)),
        ("len:ids", "50".into()),
        ("len:names", "3".into()),
    ] {
        ask(q.into(), a);
    }
    let queries: Vec<&str> = answers.iter().map(|(q, _)| q.as_str()).collect();
    let r = read(&programs, "region", KEYED_SCHEMA, Some(&archive), &queries);
    assert_eq!(r.code, Some(0), "{:#?}", r.lines);
    assert_eq!(
        layout_of(&r),
        (size_of::<ArchivedKeyed>(), align_of::<ArchivedKeyed>())
    );
    for (q, a) in &answers {
        assert_eq!(r.answer(q), a, "{q}");
    }

    // A B-tree holding a key twice is corrupt. `small`'s tree is a leaf
    // of keys 1 and 2 under a root of keys 3 to 7 (FORMAT.md's example):
    // make the leaf's 2 a 1.
    let root = archive.len() - size_of::<ArchivedKeyed>();
    let small = root + offset_of!(ArchivedKeyed, small);
    let node = (small as i64
        + i64::from(i32::from_le_bytes(
            archive[small..small + 4].try_into().unwrap(),
        ))) as usize;
    assert_eq!(archive[node..node + 6], [1, 3, 4, 5, 6, 7]);
    let leaf = (node as i64
        + 16
        + i64::from(i32::from_le_bytes(
            archive[node + 16..node + 20].try_into().unwrap(),
        ))) as usize;
    assert_eq!(archive[leaf..leaf + 3], [0, 1, 2]);
    let mut twice = archive.to_vec();
    twice[leaf + 2] = 1;
    let r = read(
        &programs,
        "region",
        KEYED_SCHEMA,
        Some(&twice),
        &["u64:small[1]", "u64:small[5]"],
    );
    assert_eq!(r.answer("u64:small[1]"), e(ECORRUPT), "{:#?}", r.lines);
    assert_eq!(r.answer("u64:small[5]"), "500", "{:#?}", r.lines);
    // A bool key of 2, a char key that is no scalar value.
    let flags = root + offset_of!(ArchivedKeyed, flags);
    let ctrl = (flags as i64
        + i64::from(i32::from_le_bytes(
            archive[flags..flags + 4].try_into().unwrap(),
        ))) as usize;
    let mut bad = archive.to_vec();
    // A bucket of hash_map<bool,u32>: the bool at 0, the u32 at 4.
    let full = (0..u32_at(&archive, flags + 8) as usize)
        .find(|&i| archive[ctrl + i] < 0x80)
        .unwrap();
    bad[ctrl - (full + 1) * 8] = 2;
    let r = read(
        &programs,
        "region",
        KEYED_SCHEMA,
        Some(&bad),
        &["u64:flags[true]"],
    );
    assert_eq!(r.answer("u64:flags[true]"), e(ECORRUPT), "{:#?}", r.lines);
}

/// The visitor goes into maps and sets whose keys a path can name: each
/// value's leaves under `map[key]`, each element as `set{element}`, in
/// the map's order (a B-tree's is the keys'); a map keyed by tuples stays
/// a leaf. Each path reads back.
#[test]
fn c_visits_the_entries_of_maps_and_sets() {
    let Some(programs) = compile("schema-visit-maps", &["schema_read"]) else {
        return;
    };
    let value = keyed();
    let archive = rkyv::to_bytes::<rkyv::rancor::Error>(&value).expect("archive");
    let r = read(&programs, "region", KEYED_SCHEMA, Some(&archive), &[]);
    assert_eq!(r.code, Some(0), "{:#?}", r.lines);
    let got = leaves(&r);
    let under = |prefix: &str| -> Vec<String> {
        got.iter()
            .filter(|l| l.starts_with(prefix))
            .map(|l| l.to_string())
            .collect()
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    // B-trees, in key order.
    let order: Vec<String> = value
        .order
        .iter()
        .map(|(k, v)| format!("order[{k}]={v:?}"))
        .collect();
    assert_eq!(under("order["), order);
    let letters: Vec<String> = value
        .letters
        .iter()
        .map(|(k, v)| format!("letters['{k}']={v}"))
        .collect();
    assert_eq!(under("letters["), letters);
    let low: Vec<String> = value
        .low
        .iter()
        .map(|(k, v)| format!("low[{k}]={v}"))
        .collect();
    assert_eq!(under("low["), low);
    let names: Vec<String> = value
        .names
        .iter()
        .map(|k| format!("names{{{k:?}}}={k:?}"))
        .collect();
    assert_eq!(under("names{"), names);
    let bytes: Vec<String> = value
        .bytes
        .iter()
        .map(|k| format!("bytes{{{k}}}={k}"))
        .collect();
    assert_eq!(under("bytes{"), bytes);
    // Swiss tables, in their buckets' order.
    let signed: Vec<String> = value
        .signed
        .iter()
        .map(|(k, v)| format!("signed[{k}]={v}"))
        .collect();
    assert_eq!(sorted(under("signed[")), sorted(signed));
    assert_eq!(sorted(under("flags[")), ["flags[false]=0", "flags[true]=1"]);
    // u128 keys beyond 64 bits are named in full; their values are u8.
    let wide: Vec<String> = value
        .wide
        .iter()
        .map(|(k, v)| format!("wide[{k}]={v}"))
        .collect();
    assert_eq!(sorted(under("wide[")), sorted(wide));
    let ids: Vec<String> = value
        .ids
        .iter()
        .map(|k| format!("ids{{{k}}}={k}"))
        .collect();
    assert_eq!(sorted(under("ids{")), sorted(ids));
    assert!(got.contains(&"points=<type 25>"), "{got:#?}");
    assert!(got.contains(&"maybe=None"), "{got:#?}");
    let total = value.order.len()
        + value.signed.len()
        + value.flags.len()
        + value.letters.len()
        + value.wide.len()
        + value.low.len()
        + value.small.len()
        + value.ids.len()
        + value.names.len()
        + value.bytes.len()
        + 2;
    assert_eq!(got.len(), total, "{got:#?}");

    // Each leaf's path reads back to its value.
    let queries: Vec<String> = got
        .iter()
        .filter_map(|l| {
            let (path, v) = l.split_once('=')?;
            let getter = if v.starts_with('"') {
                "str"
            } else if v.starts_with('-') {
                "i64"
            } else if v.starts_with(|c: char| c.is_ascii_digit()) {
                "u64"
            } else {
                return None;
            };
            Some(format!("{getter}:{path}"))
        })
        .collect();
    let args: Vec<&str> = queries.iter().map(String::as_str).collect();
    let back = read(&programs, "region", KEYED_SCHEMA, Some(&archive), &args);
    for (q, l) in queries.iter().zip(
        got.iter()
            .filter(|l| !l.ends_with("None") && !l.contains("<type")),
    ) {
        let (_, v) = l.split_once('=').unwrap();
        assert_eq!(back.answer(q), v, "{q}");
    }

    // A corrupt map stops the walk with its error, after the leaves before.
    let root = archive.len() - size_of::<ArchivedKeyed>();
    let ids = root + offset_of!(ArchivedKeyed, ids);
    let mut bad = archive.to_vec();
    bad[ids + 4..ids + 8].copy_from_slice(&49u32.to_le_bytes());
    let r = read(&programs, "region", KEYED_SCHEMA, Some(&bad), &[]);
    assert_eq!(r.code, Some(4), "{:#?}", r.lines);
    assert_eq!(r.line("visit=!"), ECORRUPT.to_string());
    assert!(leaves(&r).iter().all(|l| !l.starts_with("ids{")));
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Wide {
    max: u128,
    min: i128,
    top: i128,
    one: u128,
    small: i64,
    byte: u8,
    _pad: [u8; 7],
}

/// u128 and i128 are read in full, as two 64-bit halves, at their
/// extremes; the 64-bit getters refuse what does not fit them.
#[test]
fn c_reads_128_bit_integers_in_full() {
    let Some(programs) = compile("schema-wide", &["schema_read"]) else {
        return;
    };
    let value = Wide {
        max: u128::MAX,
        min: i128::MIN,
        top: i128::MAX,
        one: 1,
        small: -2,
        byte: 200,
        _pad: [0; 7],
    };
    let schema = "Wide{max:u128,min:i128,top:i128,one:u128,small:i64,byte:u8,_pad:[u8;7]}";
    let e = |code: i32| format!("!{code}");
    let answers = [
        ("u128:max", u128::MAX.to_string()),
        ("i128:max", e(ERANGE)),
        ("u64:max", e(ERANGE)),
        ("i128:min", i128::MIN.to_string()),
        ("u128:min", e(ERANGE)),
        ("i64:min", e(ERANGE)),
        ("i128:top", i128::MAX.to_string()),
        ("u128:top", i128::MAX.to_string()),
        ("u128:one", "1".into()),
        ("i128:one", "1".into()),
        ("u64:one", "1".into()),
        ("i128:small", "-2".into()),
        ("u128:small", e(ERANGE)),
        ("u128:byte", "200".into()),
        ("i128:byte", "200".into()),
        ("u128:_pad", e(ETYPE)),
        ("i128:nope", e(ENOPATH)),
    ];
    let queries: Vec<&str> = answers.iter().map(|(q, _)| *q).collect();
    let r = read(
        &programs,
        "cell",
        schema,
        Some(bytemuck::bytes_of(&value)),
        &queries,
    );
    assert_eq!(r.code, Some(0), "{:#?}", r.lines);
    assert_eq!(layout_of(&r), (size_of::<Wide>(), align_of::<Wide>()));
    for (q, a) in &answers {
        assert_eq!(r.answer(q), a, "{q}");
    }
    let leaves = leaves(&r);
    assert_eq!(leaves[0], format!("max={}", u128::MAX));
    assert_eq!(leaves[1], format!("min={}", i128::MIN));
    assert_eq!(leaves[2], format!("top={}", i128::MAX));

    // In an archive too, next to a char.
    let archive =
        rkyv::to_bytes::<rkyv::rancor::Error>(&(i128::MIN + 1, u128::MAX - 1, 'z')).unwrap();
    let r = read(
        &programs,
        "region",
        "(i128,u128,char)",
        Some(&archive),
        &["i128:0", "u128:1", "u128:2", "i128:2"],
    );
    assert_eq!(r.answer("i128:0"), (i128::MIN + 1).to_string());
    assert_eq!(r.answer("u128:1"), (u128::MAX - 1).to_string());
    assert_eq!(r.answer("u128:2"), "122");
    assert_eq!(r.answer("i128:2"), "122");
}

/// A B-tree of a few nodes, each linking 6 times to the one below, would
/// make a walk of 6^39 paths, all within a claimed `len` of four billion:
/// the walk stops at as many nodes as the bytes can hold apart.
#[test]
fn c_stops_a_tree_of_shared_nodes() {
    let Some(programs) = compile("schema-shared-nodes", &["schema_read"]) else {
        return;
    };
    // btree_map<u8,u8>: a node is the kind at 0, keys at 1-5, values at
    // 6-10, the links at 12-35; 36 bytes, aligned to 4.
    let levels = 40;
    let mut archive = vec![0u8; 36 * levels];
    for j in 0..levels {
        let node = 36 * j;
        archive[node] = 1;
        for i in 0..5 {
            archive[node + 1 + i] = i as u8 + 1;
        }
        for link in 0..6 {
            let at = node + 12 + 4 * link;
            let off = if j == 0 {
                1
            } else {
                (36 * (j - 1)) as i32 - at as i32
            };
            archive[at..at + 4].copy_from_slice(&off.to_le_bytes());
        }
    }
    let map = archive.len();
    archive.extend_from_slice(&((36 * (levels - 1)) as i32 - map as i32).to_le_bytes());
    archive.extend_from_slice(&u32::MAX.to_le_bytes());
    let started = std::time::Instant::now();
    let r = read(
        &programs,
        "region",
        "btree_map<u8,u8>",
        Some(&archive),
        &["u64:[9]", "len:", "contains:[1]"],
    );
    assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
    let corrupt = format!("!{ECORRUPT}");
    assert_eq!(r.answer("u64:[9]"), corrupt, "{:#?}", r.lines);
    assert_eq!(r.answer("len:"), corrupt);
    assert_eq!(r.answer("contains:[1]"), corrupt);
    assert_eq!(r.line("visit=!"), ECORRUPT.to_string());
}
