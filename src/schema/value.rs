//! A value decoded by its schema, field by field, from bytes that nothing
//! vouches for: a copy of a cell's slot or of a region's archive, which a
//! faulty peer may have written anything into.
//!
//! Every relative pointer is checked to stay inside the archive and to be
//! aligned before it is followed; every `bool`, `char`, tag and string is
//! checked; and what a decode makes is bounded: every value counts 8 bytes
//! and every string its length, against a budget of 32 bytes per byte of
//! input plus 1 MiB (pointers that share a target are each followed anew,
//! so without it a small archive could decode to gigabytes). A decode that
//! fails says where, and never panics.

use std::fmt;

use std::collections::HashMap;
use std::rc::Rc;

use super::shape::{Fields, Form, Layout, Scalar, Shape, struct_layout, variant_offsets};

/// A decoded value.
///
/// As in JSON (and serde_json), an absent value and a value that is
/// nothing look alike: `None`, `Some(None)` and `Some(())` all decode to
/// [`Value::Null`]; an `Option` of a value that cannot be null is exact.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// `()`, and `None`.
    Null,
    /// A `bool`.
    Bool(bool),
    /// A signed integer.
    Int(i128),
    /// An unsigned integer.
    Uint(u128),
    /// A float.
    Float(f64),
    /// A `char` or a string.
    Str(String),
    /// An array, a vector, a tuple or a set.
    List(Vec<Value>),
    /// A map's entries.
    Map(Vec<(Value, Value)>),
    /// A struct's (or a variant's) named fields, in order.
    Struct(Vec<(String, Value)>),
    /// An enum's variant, with its fields (`Null` for a unit variant).
    Variant(String, Box<Value>),
}

/// Why bytes could not be decoded by a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// The field where it went wrong (`limits.max_conn`; empty for the
    /// root).
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "at the root: {}", self.reason)
        } else {
            write!(f, "at `{}`: {}", self.path, self.reason)
        }
    }
}

const VALUE_COST: usize = 8;
const BUDGET_PER_BYTE: usize = 32;
const BUDGET_EXTRA: usize = 1 << 20;

/// Where a value lies in the whole, for an error: made into text only when
/// a decode fails, so that deep paths with long names cost nothing per
/// value.
#[derive(Clone, Copy)]
pub(super) enum Path<'p> {
    /// The root.
    Root,
    /// A named step below `parent`: a field or a variant.
    Name(&'p Path<'p>, &'p str),
    /// An element below `parent`: `[i]`.
    Index(&'p Path<'p>, usize),
}

impl Path<'_> {
    fn render(&self) -> String {
        match self {
            Path::Root => String::new(),
            Path::Name(parent, name) => {
                let head = parent.render();
                if head.is_empty() {
                    (*name).to_owned()
                } else {
                    format!("{head}.{name}")
                }
            }
            Path::Index(parent, i) => format!("{}[{i}]", parent.render()),
        }
    }
}

pub(super) struct Input<'a> {
    bytes: &'a [u8],
    pub(super) form: Form,
    budget: usize,
    /// Layouts and offsets worked out once per shape (by its address: the
    /// shape outlives the decode), not once per value.
    layouts: HashMap<usize, Layout>,
    offsets: HashMap<usize, Rc<[usize]>>,
}

pub(super) type Res<T> = Result<T, DecodeError>;

pub(super) fn fail<T>(path: &Path<'_>, reason: impl Into<String>) -> Res<T> {
    Err(DecodeError {
        path: path.render(),
        reason: reason.into(),
    })
}

impl Input<'_> {
    pub(super) fn spend(&mut self, n: usize, path: &Path<'_>) -> Res<()> {
        match self.budget.checked_sub(n) {
            Some(left) => {
                self.budget = left;
                Ok(())
            }
            None => fail(
                path,
                "the bytes decode to more than the budget (32 bytes a byte plus 1 MiB): pointers \
                 in them share targets, or they are not of this schema",
            ),
        }
    }

    /// The layout of `shape`, worked out once.
    pub(super) fn layout(&mut self, shape: &Shape, path: &Path<'_>) -> Res<Layout> {
        let key = shape as *const Shape as usize;
        if let Some(l) = self.layouts.get(&key) {
            return Ok(*l);
        }
        let l = shape.layout(self.form).or_else(|e| fail(path, e))?;
        self.layouts.insert(key, l);
        Ok(l)
    }

    /// The offsets `compute` gives for the thing at `key`, worked out once.
    pub(super) fn offsets<T>(
        &mut self,
        key: &T,
        path: &Path<'_>,
        compute: impl FnOnce(Form) -> Result<Vec<usize>, String>,
    ) -> Res<Rc<[usize]>> {
        let key = key as *const T as usize;
        if let Some(o) = self.offsets.get(&key) {
            return Ok(o.clone());
        }
        let o: Rc<[usize]> = compute(self.form).or_else(|e| fail(path, e))?.into();
        self.offsets.insert(key, o.clone());
        Ok(o)
    }

    /// `len` bytes at `at`, aligned to `align`, all inside the input.
    pub(super) fn take(&self, at: usize, len: usize, align: usize, path: &Path<'_>) -> Res<&[u8]> {
        let end = at.checked_add(len);
        match end {
            Some(end) if end <= self.bytes.len() => {
                if !at.is_multiple_of(align.max(1)) {
                    return fail(
                        path,
                        format!("{len} bytes at {at} are not aligned to {align}"),
                    );
                }
                Ok(&self.bytes[at..end])
            }
            _ => fail(
                path,
                format!(
                    "{len} bytes at {at} lie outside the {} bytes",
                    self.bytes.len()
                ),
            ),
        }
    }

    pub(super) fn u32_at(&self, at: usize, path: &Path<'_>) -> Res<u32> {
        let b = self.take(at, 4, 1, path)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Where the relative pointer at `at` points.
    pub(super) fn target(&self, at: usize, path: &Path<'_>) -> Res<usize> {
        let offset = self.u32_at(at, path)? as i32;
        match at.checked_add_signed(offset as isize) {
            Some(t) if t <= self.bytes.len() => Ok(t),
            _ => fail(
                path,
                format!("a pointer at {at} to {offset:+} leaves the archive"),
            ),
        }
    }

    pub(super) fn value(&mut self, shape: &Shape, at: usize, path: &Path<'_>) -> Res<Value> {
        self.spend(VALUE_COST, path)?;
        let layout = self.layout(shape, path)?;
        let here = self.take(at, layout.size, layout.align, path)?;
        let first = here.first().copied().unwrap_or(0);
        match shape {
            Shape::Scalar(s) => scalar(*s, here, path),
            Shape::Unit => Ok(Value::Null),
            Shape::Str => self.string(at, path),
            Shape::BoxStr => {
                let (start, len) = self.slice(at, 1, 1, path)?;
                let bytes = self.take(start, len, 1, path)?;
                let s = utf8(bytes, path)?;
                self.spend(s.len(), path)?;
                Ok(Value::Str(s))
            }
            Shape::Vec(t) | Shape::BoxSlice(t) => {
                let l = self.layout(t, path)?;
                let (start, count) = self.slice(at, l.size, l.align, path)?;
                let mut items = Vec::new();
                for i in 0..count {
                    items.push(self.value(t, start + i * l.size, &Path::Index(path, i))?);
                }
                Ok(Value::List(items))
            }
            Shape::Box(t) => {
                let target = self.target(at, path)?;
                self.value(t, target, path)
            }
            Shape::Option(t) => match first {
                0 => Ok(Value::Null),
                1 => {
                    let off = self.layout(t, path)?.align.max(1);
                    self.value(t, at + off, path)
                }
                tag => fail(path, format!("an option's tag is {tag}, not 0 or 1")),
            },
            Shape::Result(ok, err) => {
                let (name, t) = match first {
                    0 => ("Ok", ok),
                    1 => ("Err", err),
                    tag => return fail(path, format!("a result's tag is {tag}, not 0 or 1")),
                };
                // The value follows the tag as a struct's second field.
                let off = self.layout(t, path)?.align.max(1);
                let v = self.value(t, at + off, &Path::Name(path, name))?;
                Ok(Value::Variant(name.into(), Box::new(v)))
            }
            Shape::HashMap(..) | Shape::HashSet(..) | Shape::BTreeMap(..) | Shape::BTreeSet(..) => {
                super::maps::decode(self, shape, at, path)
            }
            Shape::Array(t, n) => {
                let size = self.layout(t, path)?.size;
                let mut items = Vec::new();
                for i in 0..*n as usize {
                    items.push(self.value(t, at + i * size, &Path::Index(path, i))?);
                }
                Ok(Value::List(items))
            }
            Shape::Tuple(elems) => {
                let offsets = self.offsets(shape, path, |form| {
                    struct_layout(elems.iter(), form).map(|(o, _)| o)
                })?;
                let mut items = Vec::new();
                for (i, (t, off)) in elems.iter().zip(offsets.iter()).enumerate() {
                    items.push(self.value(t, at + off, &Path::Index(path, i))?);
                }
                Ok(Value::List(items))
            }
            Shape::Struct { fields, .. } => {
                let offsets = self.offsets(shape, path, |form| {
                    struct_layout(fields.iter().map(|(_, s)| s), form).map(|(o, _)| o)
                })?;
                self.fields(fields, &offsets, at, path)
            }
            Shape::Enum { variants, .. } => {
                let Some(v) = variants.iter().find(|v| v.tag == first) else {
                    return fail(path, format!("enum tag {first} names no variant"));
                };
                let p = Path::Name(path, &v.name);
                let inner = match &v.fields {
                    None => Value::Null,
                    Some(fields) => {
                        let offsets =
                            self.offsets(fields, &p, |form| variant_offsets(fields, form))?;
                        self.fields(fields, &offsets, at, &p)?
                    }
                };
                Ok(Value::Variant(v.name.clone(), Box::new(inner)))
            }
        }
    }

    fn fields(
        &mut self,
        fields: &Fields,
        offsets: &[usize],
        at: usize,
        path: &Path<'_>,
    ) -> Res<Value> {
        Ok(match fields {
            Fields::Named(named) => {
                let mut out = Vec::new();
                for ((name, t), off) in named.iter().zip(offsets) {
                    let v = self.value(t, at + off, &Path::Name(path, name))?;
                    out.push((name.clone(), v));
                }
                Value::Struct(out)
            }
            Fields::Unnamed(unnamed) => {
                let mut out = Vec::new();
                for (i, (t, off)) in unnamed.iter().zip(offsets).enumerate() {
                    out.push(self.value(t, at + off, &Path::Index(path, i))?);
                }
                Value::List(out)
            }
        })
    }

    /// A vector's elements: a relative pointer and a `u32` count, checked
    /// to hold `count` elements of `size` bytes aligned to `align`.
    pub(super) fn slice(
        &mut self,
        at: usize,
        size: usize,
        align: usize,
        path: &Path<'_>,
    ) -> Res<(usize, usize)> {
        let count = self.u32_at(at + 4, path)? as usize;
        if count == 0 {
            return Ok((at, 0));
        }
        let start = self.target(at, path)?;
        let Some(bytes) = count.checked_mul(size) else {
            return fail(path, format!("{count} elements of {size} bytes"));
        };
        self.take(start, bytes, align, path)?;
        self.spend(count.saturating_mul(VALUE_COST), path)?;
        Ok((start, count))
    }

    /// An archived `String`: inline up to 8 bytes, else a length word and an
    /// offset from the string's own start.
    pub(super) fn string(&mut self, at: usize, path: &Path<'_>) -> Res<Value> {
        let raw = self.take(at, 8, 4, path)?;
        let bytes = if raw[0] & 0xc0 != 0x80 {
            let end = raw.iter().position(|&b| b == 0xff).unwrap_or(8);
            &raw[..end]
        } else {
            let word = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
            let len = ((word & 0x3f) | ((word & 0xffff_ff00) >> 2)) as usize;
            if len <= 8 {
                return fail(path, format!("an out-of-line string of {len} bytes"));
            }
            let offset = i32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]);
            let Some(start) = at.checked_add_signed(offset as isize) else {
                return fail(path, "a string's offset leaves the archive");
            };
            self.take(start, len, 1, path)?
        };
        let s = utf8(bytes, path)?;
        self.spend(s.len(), path)?;
        Ok(Value::Str(s))
    }
}

fn utf8(bytes: &[u8], path: &Path<'_>) -> Res<String> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_owned()),
        Err(e) => fail(
            path,
            format!("a string is not UTF-8 (at byte {})", e.valid_up_to()),
        ),
    }
}

fn scalar(s: Scalar, b: &[u8], path: &Path<'_>) -> Res<Value> {
    let mut wide = [0u8; 16];
    wide[..b.len()].copy_from_slice(b);
    let u = u128::from_le_bytes(wide);
    let bits = b.len() * 8;
    let signed = |u: u128| -> i128 {
        let shift = 128 - bits;
        ((u << shift) as i128) >> shift
    };
    Ok(match s {
        Scalar::U8 | Scalar::U16 | Scalar::U32 | Scalar::U64 | Scalar::U128 | Scalar::Usize => {
            Value::Uint(u)
        }
        Scalar::I8 | Scalar::I16 | Scalar::I32 | Scalar::I64 | Scalar::I128 | Scalar::Isize => {
            Value::Int(signed(u))
        }
        Scalar::F32 => Value::Float(f64::from(f32::from_bits(u as u32))),
        Scalar::F64 => Value::Float(f64::from_bits(u as u64)),
        Scalar::Bool => match b[0] {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            x => return fail(path, format!("a bool holds {x}")),
        },
        Scalar::Char => match char::from_u32(u as u32) {
            Some(c) => Value::Str(c.to_string()),
            None => return fail(path, format!("a char holds {u:#x}")),
        },
    })
}

/// Decode `bytes` as a value of `shape`: for [`Form::Cell`], a cell's
/// value (its first bytes); for [`Form::Region`], an rkyv archive whose
/// root is its last bytes. Nothing in the bytes is trusted (see the
/// module's docs).
pub fn decode(shape: &Shape, form: Form, bytes: &[u8]) -> Result<Value, DecodeError> {
    let root = Path::Root;
    let layout = shape.layout(form).or_else(|e| fail(&root, e))?;
    let at = match form {
        Form::Cell => 0,
        Form::Region => match bytes.len().checked_sub(layout.size) {
            Some(at) => at,
            None => {
                return fail(
                    &root,
                    format!(
                        "{} bytes, fewer than the root's {}",
                        bytes.len(),
                        layout.size
                    ),
                );
            }
        },
    };
    let mut input = Input {
        bytes,
        form,
        budget: bytes
            .len()
            .saturating_mul(BUDGET_PER_BYTE)
            .saturating_add(BUDGET_EXTRA),
        layouts: HashMap::new(),
        offsets: HashMap::new(),
    };
    input.value(shape, at, &root)
}

/// `name` below `path`, as `lines` writes paths.
fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

impl Value {
    /// One line per leaf: `path = value`, paths as `limits.max_conn`,
    /// `tags[2]`, `mode.On.0`, strings quoted as Rust quotes them.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.flatten("", &mut out);
        out
    }

    fn flatten(&self, path: &str, out: &mut Vec<String>) {
        let name = |p: &str| if p.is_empty() { "value" } else { p }.to_owned();
        match self {
            Value::List(items) if !items.is_empty() => {
                for (i, v) in items.iter().enumerate() {
                    v.flatten(&format!("{path}[{i}]"), out);
                }
            }
            Value::Struct(fields) if !fields.is_empty() => {
                for (n, v) in fields {
                    v.flatten(&join(path, n), out);
                }
            }
            Value::Map(entries) if !entries.is_empty() => {
                for (k, v) in entries {
                    v.flatten(&format!("{path}[{k}]"), out);
                }
            }
            Value::Variant(n, inner) if **inner != Value::Null => {
                inner.flatten(&join(path, n), out);
            }
            leaf => out.push(format!("{} = {leaf}", name(path))),
        }
    }
}

impl fmt::Display for Value {
    /// A compact, one-line form: `{max_conn: 10, tags: ["a", "b"]}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Uint(u) => write!(f, "{u}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Map(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
            Value::Struct(fields) => {
                f.write_str("{")?;
                for (i, (n, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{n}: {v}")?;
                }
                f.write_str("}")
            }
            Value::Variant(n, inner) => match **inner {
                Value::Null => f.write_str(n),
                ref v => write!(f, "{n}{v}"),
            },
        }
    }
}
