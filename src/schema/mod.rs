//! Types that describe themselves: a [`Schema`] is written into the
//! segment when an object is created (with `with_schema()` on its builder),
//! where it becomes the type's identity and lets readers that know nothing
//! of the Rust type (the `shmstore get` command, the Python reader, the C
//! header) decode a value by field name.
//!
//! A schema is a short text (FORMAT.md, "Schema"), such as
//! `Config{name:str,limits:Limits{max_conn:u32},tags:vec<str>}`: the names
//! of the type, its fields and variants, in declaration order, and the
//! type of each. It describes the value as it lies in the segment: a
//! cell's value as the platform lays it out, a region's root as rkyv 0.8
//! archives it; the layout follows from the text ([`Shape::layout`]).
//!
//! Derive it:
//!
//! ```
//! use shmstore::{Key, SharedCell, Schema};
//!
//! #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable, Schema)]
//! #[repr(C)]
//! struct Stats {
//!     requests: u64,
//!     errors: u32,
//!     load: f32,
//! }
//!
//! let cell = SharedCell::<Stats>::creator()
//!     .with_schema()
//!     .remove_on_drop(true)
//!     .create(Key::PRIVATE, Stats { requests: 0, errors: 0, load: 0.0 })?;
//! assert_eq!(
//!     shmstore::schema::describe::<Stats>()?,
//!     "Stats{requests:u64,errors:u32,load:f32}"
//! );
//! # drop(cell);
//! # Ok::<(), shmstore::Error>(())
//! ```
//!
//! The derive refuses what would make the layout differ from what it
//! writes: a packed or over-aligned struct,
//!
//! ```compile_fail
//! #[derive(Clone, Copy, shmstore::Schema)]
//! #[repr(C, packed)]
//! struct Packed { a: u8, b: u32 }
//! ```
//!
//! a field archived through a wrapper,
//!
//! ```compile_fail
//! #[derive(rkyv::Archive, rkyv::Serialize, shmstore::Schema)]
//! struct Wrapped {
//!     #[rkyv(with = rkyv::with::Skip)]
//!     cache: u64,
//! }
//! ```
//!
//! a repr passed to the archived type,
//!
//! ```compile_fail
//! #[derive(rkyv::Archive, rkyv::Serialize, shmstore::Schema)]
//! #[rkyv(attr(repr(align(2))))]
//! struct Inner { x: u8 }
//! ```
//!
//! a name that is not ASCII,
//!
//! ```compile_fail
//! #[derive(Clone, Copy, shmstore::Schema)]
//! #[repr(C)]
//! struct Größe { a: u8 }
//! ```
//!
//! and a discriminant that is not an integer literal:
//!
//! ```compile_fail
//! const LOW: isize = 3;
//! #[derive(shmstore::Schema)]
//! enum Level { Low = LOW, High }
//! ```
//!
//! Implementing it by hand is for types the derive cannot see into (a
//! field archived `with` a wrapper, a type of another crate): write what
//! rkyv archives, with the [`Describer`]'s methods.

mod diff;
mod maps;
mod shape;
mod value;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

pub use diff::differences;
pub use shape::{
    DEPTH_MAX, Fields, Form, Layout, ParseError, SCHEMA_MAX, Scalar, Shape, TYPE_SIZE_MAX, Variant,
};
pub use value::{DecodeError, Value, decode};

use crate::error::{Error, Result};

/// A type that can describe its layout, as a cell stores it (for plain
/// data) and as rkyv archives it (for a region): see the [module
/// docs](self). Derive it with `#[derive(shmstore::Schema)]`.
pub trait Schema {
    /// Write this type's schema.
    fn describe(d: &mut Describer);
}

/// What a [`Schema`] writes its description into. Every method appends one
/// piece of the grammar; [`nested`](Self::nested) describes a type inside
/// this one (and stops a type that contains itself).
#[derive(Debug, Default)]
pub struct Describer {
    text: String,
    /// For each open list, how many items it has yet.
    lists: Vec<usize>,
    depth: usize,
    too_deep: bool,
    /// Why a type inside cannot be described, if one cannot.
    refused: Option<String>,
}

impl Describer {
    /// A scalar (`u8` ... `f64`, `bool`, `char`), `str` or `()`.
    pub fn scalar(&mut self, name: &'static str) {
        self.text.push_str(name);
    }

    /// Say that a type inside cannot be described, and why: the schema
    /// is then refused ([`describe`] fails with the first reason given).
    pub fn refuse(&mut self, reason: impl Into<String>) {
        self.refused.get_or_insert_with(|| reason.into());
    }

    /// Describe `T` here, one level deeper.
    pub fn nested<T: Schema + ?Sized>(&mut self) {
        if self.depth >= DEPTH_MAX {
            self.too_deep = true;
            return;
        }
        self.depth += 1;
        T::describe(self);
        self.depth -= 1;
    }

    /// A generic container: `name<` ... `>` around its arguments, each
    /// started with [`item`](Self::item).
    pub fn begin_generic(&mut self, name: &'static str) {
        self.text.push_str(name);
        self.open("<");
    }

    /// The end of [`begin_generic`](Self::begin_generic).
    pub fn end_generic(&mut self) {
        self.close(">");
    }

    /// `[T;N]`.
    pub fn array<T: Schema>(&mut self, len: usize) {
        self.text.push('[');
        self.nested::<T>();
        self.text.push_str(&format!(";{len}]"));
    }

    /// A tuple: `(`, its elements each started with [`item`](Self::item),
    /// and [`end_tuple`](Self::end_tuple).
    pub fn begin_tuple(&mut self) {
        self.open("(");
    }

    /// The end of a tuple (a tuple of one gets its comma: `(u8,)`).
    pub fn end_tuple(&mut self) {
        if self.lists.last() == Some(&1) {
            self.text.push(',');
        }
        self.close(")");
    }

    /// A struct named `name` with named fields: each begun with
    /// [`field`](Self::field), ended with [`end_fields`](Self::end_fields).
    pub fn begin_struct(&mut self, name: &str) {
        self.text.push_str(name);
        self.open("{");
    }

    /// A tuple struct named `name`: its fields each begun with
    /// [`item`](Self::item), ended with [`end_items`](Self::end_items).
    pub fn begin_tuple_struct(&mut self, name: &str) {
        self.text.push_str(name);
        self.open("(");
    }

    /// An enum named `name`: its variants, each begun with
    /// [`variant`](Self::variant), then [`end_fields`](Self::end_fields).
    pub fn begin_enum(&mut self, name: &str) {
        self.text.push_str("enum ");
        self.text.push_str(name);
        self.open("{");
    }

    /// A variant with its tag; its fields, if it has any, follow between
    /// [`begin_named`](Self::begin_named) and
    /// [`end_fields`](Self::end_fields), or between
    /// [`begin_items`](Self::begin_items) and [`end_items`](Self::end_items).
    pub fn variant(&mut self, name: &str, tag: u8) {
        self.item();
        self.text.push_str(&format!("{name}={tag}"));
    }

    /// The named fields of a variant.
    pub fn begin_named(&mut self) {
        self.open("{");
    }

    /// The unnamed fields of a variant.
    pub fn begin_items(&mut self) {
        self.open("(");
    }

    /// A named field: its type follows (with [`nested`](Self::nested)).
    pub fn field(&mut self, name: &str) {
        self.item();
        self.text.push_str(name);
        self.text.push(':');
    }

    /// The next element of a tuple, a tuple struct or a generic: its type
    /// follows.
    pub fn item(&mut self) {
        if let Some(items) = self.lists.last_mut() {
            if *items > 0 {
                self.text.push(',');
            }
            *items += 1;
        }
    }

    /// The end of named fields, a struct or an enum.
    pub fn end_fields(&mut self) {
        self.close("}");
    }

    /// The end of unnamed fields or a tuple struct.
    pub fn end_items(&mut self) {
        self.close(")");
    }

    fn open(&mut self, token: &str) {
        self.text.push_str(token);
        self.lists.push(0);
    }

    fn close(&mut self, token: &str) {
        self.text.push_str(token);
        self.lists.pop();
    }
}

/// The schema of `T`: its text, checked against the grammar.
///
/// Fails with [`Error::InvalidLayout`] for a type that nests deeper than
/// [`DEPTH_MAX`] (a type that contains itself, through a `Box` or a `Vec`,
/// has no finite schema) or a hand-written description outside the
/// grammar.
pub fn describe<T: Schema + ?Sized>() -> Result<String> {
    let mut d = Describer::default();
    d.nested::<T>();
    if let Some(reason) = d.refused {
        return Err(Error::InvalidLayout {
            reason: format!("{} has no schema: {reason}", std::any::type_name::<T>()),
        });
    }
    if d.too_deep {
        return Err(Error::InvalidLayout {
            reason: format!(
                "the schema of {} nests deeper than {DEPTH_MAX} (a type that contains itself has \
                 none)",
                std::any::type_name::<T>()
            ),
        });
    }
    match Shape::parse(d.text.as_bytes()) {
        Ok(_) => Ok(d.text),
        Err(e) => Err(Error::InvalidLayout {
            reason: format!(
                "the schema of {} is not in the grammar ({e}): {}",
                std::any::type_name::<T>(),
                d.text
            ),
        }),
    }
}

macro_rules! scalars {
    ($($t:ty => $name:literal),* $(,)?) => {$(
        impl Schema for $t {
            fn describe(d: &mut Describer) {
                d.scalar($name);
            }
        }
    )*};
}

scalars! {
    u8 => "u8", i8 => "i8", u16 => "u16", i16 => "i16", u32 => "u32", i32 => "i32",
    u64 => "u64", i64 => "i64", u128 => "u128", i128 => "i128", usize => "usize",
    isize => "isize", f32 => "f32", f64 => "f64", bool => "bool", char => "char",
    String => "str", () => "()",
}

impl<T: Schema, const N: usize> Schema for [T; N] {
    fn describe(d: &mut Describer) {
        d.array::<T>(N);
    }
}

macro_rules! generic {
    ($name:literal, $t:ident $(<$($p:ident $(: $bound:path)?),*>)? => $($arg:ident),*) => {
        impl<$($($p: Schema $(+ $bound)?),*)?> Schema for $t<$($($p),*)?> {
            fn describe(d: &mut Describer) {
                d.begin_generic($name);
                $(d.item(); d.nested::<$arg>();)*
                d.end_generic();
            }
        }
    };
}

generic!("vec", Vec<T> => T);
generic!("option", Option<T> => T);
generic!("btree_set", BTreeSet<T> => T);

impl<T: Schema, E: Schema> Schema for std::result::Result<T, E> {
    fn describe(d: &mut Describer) {
        d.begin_generic("result");
        d.item();
        d.nested::<T>();
        d.item();
        d.nested::<E>();
        d.end_generic();
    }
}

impl<K: Schema, V: Schema> Schema for BTreeMap<K, V> {
    fn describe(d: &mut Describer) {
        d.begin_generic("btree_map");
        d.item();
        d.nested::<K>();
        d.item();
        d.nested::<V>();
        d.end_generic();
    }
}

impl<K: Schema, V: Schema, S> Schema for HashMap<K, V, S> {
    fn describe(d: &mut Describer) {
        d.begin_generic("hash_map");
        d.item();
        d.nested::<K>();
        d.item();
        d.nested::<V>();
        d.end_generic();
    }
}

impl<K: Schema, S> Schema for HashSet<K, S> {
    fn describe(d: &mut Describer) {
        d.begin_generic("hash_set");
        d.item();
        d.nested::<K>();
        d.end_generic();
    }
}

impl<T: Schema + 'static> Schema for Box<T> {
    fn describe(d: &mut Describer) {
        if std::any::TypeId::of::<T>() == std::any::TypeId::of::<String>() {
            // Its text would be `box<str>`, which is `Box<str>`: another
            // layout of the same size in many places.
            d.refuse(
                "a Box<String> reads as a Box<str> in the schema grammar; use Box<str> or String",
            );
            return;
        }
        d.begin_generic("box");
        d.item();
        d.nested::<T>();
        d.end_generic();
    }
}

impl Schema for Box<str> {
    fn describe(d: &mut Describer) {
        d.scalar("box<str>");
    }
}

impl<T: Schema> Schema for Box<[T]> {
    fn describe(d: &mut Describer) {
        d.scalar("box<[");
        d.nested::<T>();
        d.scalar("]>");
    }
}

macro_rules! tuples {
    ($(($($t:ident),+))*) => {$(
        impl<$($t: Schema),+> Schema for ($($t,)+) {
            fn describe(d: &mut Describer) {
                d.begin_tuple();
                $(d.item(); d.nested::<$t>();)+
                d.end_tuple();
            }
        }
    )*};
}

tuples! {
    (A) (A, B) (A, B, C) (A, B, C, D) (A, B, C, D, E) (A, B, C, D, E, F)
    (A, B, C, D, E, F, G) (A, B, C, D, E, F, G, H)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn std_types_describe_themselves() {
        assert_eq!(describe::<u64>().unwrap(), "u64");
        assert_eq!(describe::<[u16; 3]>().unwrap(), "[u16;3]");
        assert_eq!(describe::<(u8,)>().unwrap(), "(u8,)");
        assert_eq!(describe::<(u8, String)>().unwrap(), "(u8,str)");
        assert_eq!(describe::<Vec<Option<u32>>>().unwrap(), "vec<option<u32>>");
        assert_eq!(
            describe::<HashMap<String, Vec<f64>>>().unwrap(),
            "hash_map<str,vec<f64>>"
        );
        assert_eq!(describe::<BTreeSet<char>>().unwrap(), "btree_set<char>");
        assert_eq!(describe::<Box<str>>().unwrap(), "box<str>");
        assert_eq!(describe::<Box<[u8]>>().unwrap(), "box<[u8]>");
        assert_eq!(describe::<Box<u8>>().unwrap(), "box<u8>");
        assert_eq!(
            describe::<std::result::Result<u8, String>>().unwrap(),
            "result<u8,str>"
        );
        assert_eq!(describe::<()>().unwrap(), "()");
        assert_eq!(
            describe::<(Vec<(u8, String)>,)>().unwrap(),
            "(vec<(u8,str)>,)"
        );
    }

    struct Endless;
    impl Schema for Endless {
        fn describe(d: &mut Describer) {
            d.begin_generic("vec");
            d.item();
            d.nested::<Endless>();
            d.end_generic();
        }
    }

    #[test]
    fn a_boxed_string_is_refused_wherever_it_is() {
        for e in [
            describe::<Box<String>>().unwrap_err(),
            describe::<Vec<Box<String>>>().unwrap_err(),
            describe::<(u64, Option<Box<String>>)>().unwrap_err(),
        ] {
            assert!(e.to_string().contains("Box<str>"), "{e}");
        }
        assert_eq!(describe::<Box<Box<str>>>().unwrap(), "box<box<str>>");
    }

    #[test]
    fn a_type_that_contains_itself_is_refused() {
        let e = describe::<Endless>().unwrap_err();
        assert!(e.to_string().contains("deeper than"), "{e}");
    }
}
