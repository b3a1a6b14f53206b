//! A schema's text (FORMAT.md, "Schema") parsed into a [`Shape`], and the
//! layout a shape implies for a cell or a region.
//!
//! The text may come from a segment that a faulty peer wrote, so the
//! parser trusts nothing: it accepts exactly the grammar, at most
//! [`SCHEMA_MAX`] bytes and [`DEPTH_MAX`] levels of nesting, and every size
//! it computes is checked for overflow. It never panics.

use std::fmt;

/// The most bytes of a stored schema.
pub const SCHEMA_MAX: usize = 16384;
/// The deepest a schema may nest (a type inside a type counts one level).
pub const DEPTH_MAX: usize = 32;
/// The largest a type described may be, in bytes, wherever it lies (an
/// archive's relative pointers reach no further).
pub const TYPE_SIZE_MAX: usize = u32::MAX as usize;

/// A scalar of the schema grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scalar {
    /// `u8`
    U8,
    /// `i8`
    I8,
    /// `u16`
    U16,
    /// `i16`
    I16,
    /// `u32`
    U32,
    /// `i32`
    I32,
    /// `u64`
    U64,
    /// `i64`
    I64,
    /// `u128`
    U128,
    /// `i128`
    I128,
    /// `usize`: pointer-sized in a cell, 4 bytes in a region.
    Usize,
    /// `isize`: pointer-sized in a cell, 4 bytes in a region.
    Isize,
    /// `f32`
    F32,
    /// `f64`
    F64,
    /// `bool` (regions only)
    Bool,
    /// `char` (regions only)
    Char,
}

const SCALARS: [(&str, Scalar); 16] = [
    ("u8", Scalar::U8),
    ("i8", Scalar::I8),
    ("u16", Scalar::U16),
    ("i16", Scalar::I16),
    ("u32", Scalar::U32),
    ("i32", Scalar::I32),
    ("u64", Scalar::U64),
    ("i64", Scalar::I64),
    ("u128", Scalar::U128),
    ("i128", Scalar::I128),
    ("usize", Scalar::Usize),
    ("isize", Scalar::Isize),
    ("f32", Scalar::F32),
    ("f64", Scalar::F64),
    ("bool", Scalar::Bool),
    ("char", Scalar::Char),
];

impl Scalar {
    /// Its name in the grammar.
    pub fn name(self) -> &'static str {
        SCALARS
            .iter()
            .find(|(_, s)| *s == self)
            .map_or("?", |(n, _)| n)
    }

    /// Its size (and alignment) in a value of `form`.
    pub fn size(self, form: Form) -> usize {
        match self {
            Scalar::U8 | Scalar::I8 | Scalar::Bool => 1,
            Scalar::U16 | Scalar::I16 => 2,
            Scalar::U32 | Scalar::I32 | Scalar::F32 | Scalar::Char => 4,
            Scalar::U64 | Scalar::I64 | Scalar::F64 => 8,
            Scalar::U128 | Scalar::I128 => 16,
            Scalar::Usize | Scalar::Isize => match form {
                Form::Cell => size_of::<usize>(),
                Form::Region => 4,
            },
        }
    }
}

/// Where a value lies: in a cell's slot (the platform's own layout) or in a
/// region's archive (rkyv 0.8's layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// A `SharedCell`'s value.
    Cell,
    /// A `SharedRegion`'s archived root.
    Region,
}

/// The fields of a struct or of an enum's variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fields {
    /// `{a:u8,b:str}`; empty for a unit struct.
    Named(Vec<(String, Shape)>),
    /// `(u8,str)`: fields named by their position.
    Unnamed(Vec<Shape>),
}

impl Fields {
    /// Every field's name (its position for unnamed ones) and shape.
    pub fn iter(&self) -> impl Iterator<Item = (String, &Shape)> {
        let (named, unnamed) = match self {
            Fields::Named(f) => (Some(f), None),
            Fields::Unnamed(f) => (None, Some(f)),
        };
        let named = named.into_iter().flatten().map(|(n, s)| (n.clone(), s));
        let unnamed = unnamed
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, s)| (i.to_string(), s));
        named.chain(unnamed)
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        match self {
            Fields::Named(f) => f.len(),
            Fields::Unnamed(f) => f.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One variant of an enum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    /// Its name.
    pub name: String,
    /// Its tag byte.
    pub tag: u8,
    /// Its fields; `None` for a unit variant.
    pub fields: Option<Fields>,
}

/// A type as a schema describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Shape {
    /// A number, `bool` or `char`.
    Scalar(Scalar),
    /// `str`: an archived `String`.
    Str,
    /// `()`
    Unit,
    /// `vec<T>`
    Vec(Box<Shape>),
    /// `box<T>`
    Box(Box<Shape>),
    /// `box<str>`
    BoxStr,
    /// `box<[T]>`
    BoxSlice(Box<Shape>),
    /// `option<T>`
    Option(Box<Shape>),
    /// `result<T,E>`
    Result(Box<Shape>, Box<Shape>),
    /// `hash_map<K,V>`
    HashMap(Box<Shape>, Box<Shape>),
    /// `hash_set<T>`
    HashSet(Box<Shape>),
    /// `btree_map<K,V>`
    BTreeMap(Box<Shape>, Box<Shape>),
    /// `btree_set<T>`
    BTreeSet(Box<Shape>),
    /// `[T;N]`
    Array(Box<Shape>, u64),
    /// `(A,B,...)`, at least one element.
    Tuple(Vec<Shape>),
    /// `Name{...}` or `Name(...)`.
    Struct {
        /// The type's name.
        name: String,
        /// Its fields.
        fields: Fields,
    },
    /// `enum Name{...}`.
    Enum {
        /// The type's name.
        name: String,
        /// Its variants, at least one.
        variants: Vec<Variant>,
    },
}

/// Why a schema's text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The byte offset in the text where it went wrong.
    pub at: usize,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.at, self.reason)
    }
}

/// A size and an alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Bytes.
    pub size: usize,
    /// A power of two.
    pub align: usize,
}

/// The sizes of rkyv 0.8's archived containers (FORMAT.md, "Region
/// archives"), all aligned to 4.
const RELPTR: usize = 4;
const SLICE: usize = 8;
const HASH_TABLE: usize = 12;
const BTREE: usize = 8;

struct Parser<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Parser<'a> {
    fn fail<T>(&self, reason: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            at: self.at,
            reason: reason.into(),
        })
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn eat(&mut self, token: &str) -> bool {
        let t = token.as_bytes();
        if self.text[self.at..].starts_with(t) {
            self.at += t.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &str) -> Result<(), ParseError> {
        if self.eat(token) {
            Ok(())
        } else {
            let found = match self.peek() {
                Some(b) if b.is_ascii_graphic() => format!("`{}`", b as char),
                Some(b) => format!("byte {b:#04x}"),
                None => "the end".into(),
            };
            self.fail(format!("expected `{token}`, found {found}"))
        }
    }

    fn name(&mut self) -> Result<String, ParseError> {
        let start = self.at;
        match self.peek() {
            Some(b) if b.is_ascii_alphabetic() || b == b'_' => self.at += 1,
            _ => return self.fail("expected a name"),
        }
        while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric() || b == b'_') {
            self.at += 1;
        }
        // ASCII only: the bytes are valid UTF-8.
        Ok(String::from_utf8_lossy(&self.text[start..self.at]).into_owned())
    }

    fn number(&mut self, max: u64) -> Result<u64, ParseError> {
        let start = self.at;
        let mut n: u64 = 0;
        while let Some(b @ b'0'..=b'9') = self.peek() {
            if self.at > start && n == 0 {
                return self.fail("a number has a leading zero");
            }
            n = match n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(b - b'0')))
            {
                Some(n) if n <= max => n,
                _ => return self.fail(format!("a number above {max}")),
            };
            self.at += 1;
        }
        if self.at == start {
            return self.fail("expected a number");
        }
        Ok(n)
    }

    fn shape(&mut self, depth: usize) -> Result<Shape, ParseError> {
        // The root is at depth 0: DEPTH_MAX levels in all.
        if depth >= DEPTH_MAX {
            return self.fail(format!("nested deeper than {DEPTH_MAX}"));
        }
        let inner = |p: &mut Self| p.shape(depth + 1).map(Box::new);
        if self.eat("()") {
            return Ok(Shape::Unit);
        }
        if self.eat("(") {
            // `(A,)` is a tuple of one; `(A,B)` of two: no trailing comma.
            let mut elems = vec![self.shape(depth + 1)?];
            self.expect(",")?;
            if self.peek() != Some(b')') {
                loop {
                    elems.push(self.shape(depth + 1)?);
                    if !self.eat(",") {
                        break;
                    }
                }
            }
            self.expect(")")?;
            return Ok(Shape::Tuple(elems));
        }
        if self.eat("[") {
            let elem = inner(self)?;
            self.expect(";")?;
            let n = self.number(u64::from(u32::MAX))?;
            self.expect("]")?;
            return Ok(Shape::Array(elem, n));
        }
        if self.eat("enum ") {
            let name = self.name()?;
            self.expect("{")?;
            let mut variants: Vec<Variant> = Vec::new();
            loop {
                let vname = self.name()?;
                self.expect("=")?;
                let tag = self.number(255)? as u8;
                if variants.iter().any(|v| v.tag == tag) {
                    return self.fail(format!("tag {tag} given twice"));
                }
                if variants.iter().any(|v| v.name == vname) {
                    return self.fail(format!("variant `{vname}` given twice"));
                }
                let fields = match self.peek() {
                    Some(b'(') => Some(self.unnamed(depth)?),
                    Some(b'{') => match self.named(depth)? {
                        Fields::Named(f) if f.is_empty() => {
                            return self.fail("a variant's named fields are one or more");
                        }
                        fields => Some(fields),
                    },
                    _ => None,
                };
                variants.push(Variant {
                    name: vname,
                    tag,
                    fields,
                });
                if !self.eat(",") {
                    break;
                }
            }
            self.expect("}")?;
            return Ok(Shape::Enum { name, variants });
        }
        let name = self.name()?;
        match self.peek() {
            Some(b'{') => {
                let fields = self.named(depth)?;
                return Ok(Shape::Struct { name, fields });
            }
            Some(b'(') => {
                let fields = self.unnamed(depth)?;
                return Ok(Shape::Struct { name, fields });
            }
            _ => {}
        }
        if let Some((_, s)) = SCALARS.iter().find(|(n, _)| *n == name) {
            return Ok(Shape::Scalar(*s));
        }
        match name.as_str() {
            "str" => Ok(Shape::Str),
            "vec" | "option" | "hash_set" | "btree_set" => {
                self.expect("<")?;
                let t = inner(self)?;
                self.expect(">")?;
                Ok(match name.as_str() {
                    "vec" => Shape::Vec(t),
                    "option" => Shape::Option(t),
                    "hash_set" => Shape::HashSet(t),
                    _ => Shape::BTreeSet(t),
                })
            }
            "box" => {
                self.expect("<")?;
                let t = if self.eat("str>") {
                    return Ok(Shape::BoxStr);
                } else if self.eat("[") {
                    // `box<[T]>` (a slice) or `box<[T;N]>` (a boxed array):
                    // the brackets are a level, as an array's are, so `T`
                    // is two below the box either way.
                    let t = self.shape(depth + 2).map(Box::new)?;
                    if self.eat(";") {
                        let n = self.number(u64::from(u32::MAX))?;
                        self.expect("]")?;
                        Shape::Box(Box::new(Shape::Array(t, n)))
                    } else {
                        self.expect("]")?;
                        Shape::BoxSlice(t)
                    }
                } else {
                    Shape::Box(inner(self)?)
                };
                self.expect(">")?;
                Ok(t)
            }
            "result" | "hash_map" | "btree_map" => {
                self.expect("<")?;
                let a = inner(self)?;
                self.expect(",")?;
                let b = inner(self)?;
                self.expect(">")?;
                Ok(match name.as_str() {
                    "result" => Shape::Result(a, b),
                    "hash_map" => Shape::HashMap(a, b),
                    _ => Shape::BTreeMap(a, b),
                })
            }
            other => self.fail(format!("unknown type `{other}`")),
        }
    }

    fn named(&mut self, depth: usize) -> Result<Fields, ParseError> {
        self.expect("{")?;
        let mut fields: Vec<(String, Shape)> = Vec::new();
        // `{}` has no fields; otherwise no trailing comma.
        while self.peek() != Some(b'}') || !fields.is_empty() {
            let at = self.at;
            let name = self.name()?;
            if fields.iter().any(|(n, _)| *n == name) {
                self.at = at;
                return self.fail(format!("field `{name}` given twice"));
            }
            self.expect(":")?;
            fields.push((name, self.shape(depth + 1)?));
            if !self.eat(",") {
                break;
            }
        }
        self.expect("}")?;
        Ok(Fields::Named(fields))
    }

    fn unnamed(&mut self, depth: usize) -> Result<Fields, ParseError> {
        self.expect("(")?;
        let mut fields = vec![self.shape(depth + 1)?];
        while self.eat(",") {
            fields.push(self.shape(depth + 1)?);
        }
        self.expect(")")?;
        Ok(Fields::Unnamed(fields))
    }
}

impl Shape {
    /// Parse a schema's text, exactly the grammar of FORMAT.md ("Schema"):
    /// at most [`SCHEMA_MAX`] bytes, nested at most [`DEPTH_MAX`] deep.
    pub fn parse(text: &[u8]) -> Result<Shape, ParseError> {
        if text.len() > SCHEMA_MAX {
            return Err(ParseError {
                at: SCHEMA_MAX,
                reason: format!("{} bytes, more than {SCHEMA_MAX}", text.len()),
            });
        }
        let mut p = Parser { text, at: 0 };
        let shape = p.shape(0)?;
        if p.at != text.len() {
            return p.fail("text after the type");
        }
        Ok(shape)
    }

    /// The size and alignment of a value of this shape in `form`, or why
    /// it cannot be one (a form a cell cannot hold, a size past
    /// [`TYPE_SIZE_MAX`] here or in any type inside, behind a pointer
    /// too).
    pub fn layout(&self, form: Form) -> Result<Layout, String> {
        let region_only = |what: &str| match form {
            Form::Cell => Err(format!("a cell cannot hold {what} (not plain data)")),
            Form::Region => Ok(()),
        };
        let fixed = |size, align| Ok(Layout { size, align });
        match self {
            Shape::Scalar(s) => {
                if matches!(s, Scalar::Bool | Scalar::Char) {
                    region_only(s.name())?;
                }
                let size = s.size(form);
                fixed(size, size)
            }
            Shape::Unit => region_only("()").and(fixed(0, 1)),
            Shape::Str => region_only("a string").and(fixed(SLICE, 4)),
            Shape::Vec(t) | Shape::BoxSlice(t) => {
                region_only("a vector")?;
                t.layout(form)?;
                fixed(SLICE, 4)
            }
            Shape::BoxStr => region_only("a box").and(fixed(SLICE, 4)),
            Shape::Box(t) => {
                region_only("a box")?;
                t.layout(form)?;
                fixed(RELPTR, 4)
            }
            Shape::HashMap(k, v) | Shape::BTreeMap(k, v) => {
                region_only("a map")?;
                k.layout(form)?;
                v.layout(form)?;
                let size = if matches!(self, Shape::HashMap(..)) {
                    HASH_TABLE
                } else {
                    BTREE
                };
                fixed(size, 4)
            }
            Shape::HashSet(k) | Shape::BTreeSet(k) => {
                region_only("a set")?;
                k.layout(form)?;
                let size = if matches!(self, Shape::HashSet(..)) {
                    HASH_TABLE
                } else {
                    BTREE
                };
                fixed(size, 4)
            }
            Shape::Option(t) => {
                region_only("an option")?;
                enum_layout([Some(std::slice::from_ref(&**t))], form)
            }
            Shape::Result(a, b) => {
                region_only("a result")?;
                enum_layout(
                    [
                        Some(std::slice::from_ref(&**a)),
                        Some(std::slice::from_ref(&**b)),
                    ],
                    form,
                )
            }
            Shape::Array(t, n) => {
                let l = t.layout(form)?;
                let size = usize::try_from(*n)
                    .ok()
                    .and_then(|n| n.checked_mul(l.size))
                    .filter(|&s| s <= TYPE_SIZE_MAX)
                    .ok_or_else(|| format!("an array of {n} elements of {} bytes", l.size))?;
                fixed(size, l.align)
            }
            Shape::Tuple(elems) => struct_layout(elems.iter(), form).map(|(_, l)| l),
            Shape::Struct { fields, .. } => {
                struct_layout(fields.iter().map(|(_, s)| s), form).map(|(_, l)| l)
            }
            Shape::Enum { variants, .. } => {
                region_only("an enum")?;
                let lists: Vec<Option<Vec<Shape>>> = variants
                    .iter()
                    .map(|v| {
                        v.fields
                            .as_ref()
                            .map(|f| f.iter().map(|(_, s)| s.clone()).collect())
                    })
                    .collect();
                enum_layout(lists.iter().map(|l| l.as_deref()), form)
            }
        }
    }
}

/// The offsets of fields of these shapes laid out as C lays out a
/// struct, and the struct's layout.
pub fn struct_layout<'a>(
    fields: impl Iterator<Item = &'a Shape>,
    form: Form,
) -> Result<(Vec<usize>, Layout), String> {
    let mut offset = 0usize;
    let mut align = 1usize;
    let mut offsets = Vec::new();
    for f in fields {
        let l = f.layout(form)?;
        offset = offset
            .checked_next_multiple_of(l.align)
            .ok_or("a struct too large")?;
        offsets.push(offset);
        offset = offset.checked_add(l.size).ok_or("a struct too large")?;
        align = align.max(l.align);
    }
    let size = offset
        .checked_next_multiple_of(align)
        .filter(|&s| s <= TYPE_SIZE_MAX)
        .ok_or("a struct too large")?;
    Ok((offsets, Layout { size, align }))
}

/// The layout of a `repr(u8)` enum whose variants have these fields
/// (`None`: a unit variant): each a struct of the tag byte then its fields.
fn enum_layout<'a>(
    variants: impl IntoIterator<Item = Option<&'a [Shape]>>,
    form: Form,
) -> Result<Layout, String> {
    let mut size = 1usize;
    let mut align = 1usize;
    for fields in variants {
        let tag = Shape::Scalar(Scalar::U8);
        let all = std::iter::once(&tag).chain(fields.into_iter().flatten());
        let (_, l) = struct_layout(all, form)?;
        size = size.max(l.size);
        align = align.max(l.align);
    }
    let size = size
        .checked_next_multiple_of(align)
        .filter(|&s| s <= TYPE_SIZE_MAX)
        .ok_or("an enum too large")?;
    Ok(Layout { size, align })
}

/// The offsets of a variant's fields, after its tag byte.
pub fn variant_offsets(fields: &Fields, form: Form) -> Result<Vec<usize>, String> {
    let tag = Shape::Scalar(Scalar::U8);
    let shapes: Vec<&Shape> = std::iter::once(&tag)
        .chain(fields.iter().map(|(_, s)| s))
        .collect();
    let (mut offsets, _) = struct_layout(shapes.into_iter(), form)?;
    offsets.remove(0);
    Ok(offsets)
}

impl fmt::Display for Shape {
    /// The canonical text: what [`Shape::parse`] reads back to this shape.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list<T>(
            f: &mut fmt::Formatter<'_>,
            items: &[T],
            mut each: impl FnMut(&mut fmt::Formatter<'_>, &T) -> fmt::Result,
        ) -> fmt::Result {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                each(f, item)?;
            }
            Ok(())
        }
        fn fields(f: &mut fmt::Formatter<'_>, fs: &Fields) -> fmt::Result {
            match fs {
                Fields::Named(n) => {
                    f.write_str("{")?;
                    list(f, n, |f, (name, s)| write!(f, "{name}:{s}"))?;
                    f.write_str("}")
                }
                Fields::Unnamed(u) => {
                    f.write_str("(")?;
                    list(f, u, |f, s| write!(f, "{s}"))?;
                    f.write_str(")")
                }
            }
        }
        match self {
            Shape::Scalar(s) => f.write_str(s.name()),
            Shape::Str => f.write_str("str"),
            Shape::Unit => f.write_str("()"),
            Shape::Vec(t) => write!(f, "vec<{t}>"),
            Shape::Box(t) => write!(f, "box<{t}>"),
            Shape::BoxStr => f.write_str("box<str>"),
            Shape::BoxSlice(t) => write!(f, "box<[{t}]>"),
            Shape::Option(t) => write!(f, "option<{t}>"),
            Shape::Result(a, b) => write!(f, "result<{a},{b}>"),
            Shape::HashMap(k, v) => write!(f, "hash_map<{k},{v}>"),
            Shape::HashSet(k) => write!(f, "hash_set<{k}>"),
            Shape::BTreeMap(k, v) => write!(f, "btree_map<{k},{v}>"),
            Shape::BTreeSet(k) => write!(f, "btree_set<{k}>"),
            Shape::Array(t, n) => write!(f, "[{t};{n}]"),
            Shape::Tuple(elems) => {
                f.write_str("(")?;
                list(f, elems, |f, s| write!(f, "{s}"))?;
                if elems.len() == 1 {
                    f.write_str(",")?;
                }
                f.write_str(")")
            }
            Shape::Struct { name, fields: fs } => {
                f.write_str(name)?;
                fields(f, fs)
            }
            Shape::Enum { name, variants } => {
                write!(f, "enum {name}{{")?;
                list(f, variants, |f, v| {
                    write!(f, "{}={}", v.name, v.tag)?;
                    match &v.fields {
                        Some(fs) => fields(f, fs),
                        None => Ok(()),
                    }
                })?;
                f.write_str("}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "Config{name:str,limits:Limits{max_conn:u32,timeout_ms:u64},tags:vec<str>,\
        weights:hash_map<str,f64>,mode:enum Mode{Off=0,On=1(u32),Custom=2{level:u8}}}";

    #[test]
    fn every_form_reads_back_to_its_text() {
        for text in [
            CONFIG,
            "u8",
            "()",
            "(u8,)",
            "(u8,str)",
            "[u32;4]",
            "box<str>",
            "box<[u16]>",
            "box<u64>",
            "box<[u8;4]>",
            "option<option<u32>>",
            "result<u32,str>",
            "hash_set<str>",
            "btree_map<u32,vec<bool>>",
            "btree_set<char>",
            "Unit{}",
            "Meters(f64)",
            "u8{x:u8}",
            "enum E{A=3,B=7}",
            "P{a:usize,b:isize,c:i128,d:f32}",
        ] {
            let shape = Shape::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(shape.to_string(), text);
        }
    }

    #[test]
    fn text_outside_the_grammar_is_refused() {
        for text in [
            "",
            " u8",
            "u8 ",
            "u7",
            "(u8)",
            "[u8;01]",
            "[u8;4294967296]",
            "vec<u8",
            "vec<>",
            "enum E{}",
            "enum E{A}",
            "enum E{A=256}",
            "enum E{A=1,B=1}",
            "enum E{A=1,A=2}",
            "S{a:u8,a:u8}",
            "S{a:u8,}",
            "(u8,str,)",
            "S()",
            "box<str",
            "hash_map<str>",
            "\u{e9}{a:u8}",
            "S{1:u8}",
        ] {
            assert!(Shape::parse(text.as_bytes()).is_err(), "{text:?} accepted");
        }
        let deep = |n: usize| format!("{}u8{}", "vec<".repeat(n - 1), ">".repeat(n - 1));
        assert!(Shape::parse(deep(DEPTH_MAX).as_bytes()).is_ok());
        assert!(Shape::parse(deep(DEPTH_MAX + 1).as_bytes()).is_err());
        assert!(Shape::parse(b"enum E{A=0{}}").is_err());
        let long = format!("S{{{}}}", "a:u8,".repeat(4000));
        assert!(Shape::parse(long.as_bytes()).is_err());
    }

    #[test]
    fn layouts_follow_c_and_rkyv() {
        let l = |t: &str, form| Shape::parse(t.as_bytes()).unwrap().layout(form);
        let ok = |size, align| Ok(Layout { size, align });
        assert_eq!(l("S{a:u8,b:u64,c:u16}", Form::Region), ok(24, 8));
        assert_eq!(l("(u8,u32,u16)", Form::Region), ok(12, 4));
        assert_eq!(l("option<u64>", Form::Region), ok(16, 8));
        assert_eq!(l("option<u8>", Form::Region), ok(2, 1));
        assert_eq!(l("option<str>", Form::Region), ok(12, 4));
        assert_eq!(
            l("enum E{A=0,B=1(u32),C=2{x:u8,y:str}}", Form::Region),
            ok(12, 4)
        );
        assert_eq!(l("enum E{A=0,B=1}", Form::Region), ok(1, 1));
        assert_eq!(
            l(
                "Config{id:u32,name:str,ports:vec<u16>,backup:option<u64>}",
                Form::Region
            ),
            ok(40, 8)
        );
        assert_eq!(l("S{a:usize}", Form::Region), ok(4, 4));
        assert_eq!(l("S{a:usize}", Form::Cell), ok(8, 8));
        assert_eq!(l("[u16;3]", Form::Cell), ok(6, 2));
        assert_eq!(l("S{}", Form::Cell), ok(0, 1));
        assert!(l("S{a:str}", Form::Cell).is_err());
        assert!(l("S{a:bool}", Form::Cell).is_err());
        assert!(l("[[u64;4294967295];4294967295]", Form::Region).is_err());
        assert!(l("box<[u8;4294967295]>", Form::Region).is_ok());
        assert!(l("box<[u16;4294967295]>", Form::Region).is_err());
        assert!(l("vec<[u16;2147483648]>", Form::Region).is_err());
    }
}
