//! Schema texts every reader must judge alike (FORMAT.md, "Schema"): edge
//! cases of the grammar and every text the fuzz campaign kept, with what
//! the Rust parser makes of each, for the Python and C readers' parsers
//! to be compared with.

use shmstore::schema::{DEPTH_MAX, Form, Shape};

/// The texts: edge cases, then the fuzz corpus's own texts.
pub fn texts() -> Vec<Vec<u8>> {
    let mut texts: Vec<Vec<u8>> = [
        "u8",
        "()",
        "(u8,)",
        "(u8,str)",
        "(u8,u16)",
        "([u8;3],)",
        "[u32;4]",
        "[u8;0]",
        "box<str>",
        "box<[u16]>",
        "box<[u8;4]>",
        "box<u64>",
        "box<[u8;4294967296]>",
        "option<option<u32>>",
        "result<u32,str>",
        "hash_set<str>",
        "btree_map<u32,vec<bool>>",
        "S{}",
        "S()",
        "M(f64)",
        "u8{x:u8}",
        "enum E{A=3,B=7}",
        "enum E{A=0{}}",
        "enum E{A=0()}",
        "enum E{}",
        "S{a:u8,}",
        "(u8,str,)",
        "S{a:u8,a:u8}",
        "enum E{A=1,B=1}",
        "enum E{A=1,A=2}",
        "enum E{A=256}",
        "[u8;01]",
        "P{a:usize,b:isize,c:i128,d:f32}",
        "S{a:bool}",
        "S{a:char}",
        "S{a:str}",
        "S{a:()}",
        "u7",
        "",
        " u8",
        "u8 ",
        "vec<u8",
        "enum  E{A=0}",
        "S{a:u8}x",
    ]
    .iter()
    .map(|t| t.as_bytes().to_vec())
    .collect();
    for n in [DEPTH_MAX - 1, DEPTH_MAX, DEPTH_MAX + 1] {
        texts.push(format!("{}u8{}", "[".repeat(n - 1), ";1]".repeat(n - 1)).into_bytes());
        texts.push(format!("{}u8{}", "vec<".repeat(n - 1), ">".repeat(n - 1)).into_bytes());
        // A boxed slice's element is two levels below the box.
        texts.push(format!("{}box<[u8]>{}", "vec<".repeat(n - 3), ">".repeat(n - 3)).into_bytes());
    }
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/schema");
    let mut files: Vec<_> = std::fs::read_dir(corpus)
        .expect("the schema corpus")
        .map(|e| e.expect("an entry").path())
        .collect();
    files.sort();
    for path in files {
        let data = std::fs::read(path).expect("a corpus file");
        // An input with its own text: a mode byte with bit 1 clear, a
        // 16-bit length, the text.
        if data.len() >= 3 && data[0] & 2 == 0 {
            let len = usize::from(u16::from_le_bytes([data[1], data[2]]));
            texts.push(data[3..].iter().take(len).copied().collect());
        }
    }
    texts
}

/// What the Rust parser makes of `text` as a cell's value and as a
/// region's root: `SIZE/ALIGN`, or `refused`.
pub fn judged(text: &[u8]) -> [String; 2] {
    [Form::Cell, Form::Region].map(|form| {
        match Shape::parse(text)
            .map_err(|_| ())
            .and_then(|s| s.layout(form).map_err(|_| ()))
        {
            Ok(l) => format!("{}/{}", l.size, l.align),
            Err(()) => "refused".into(),
        }
    })
}

/// `text` for a message: its bytes, escaped.
pub fn shown(text: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(text))
}
