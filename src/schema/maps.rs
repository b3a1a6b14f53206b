//! rkyv 0.8's maps and sets, decoded by a schema (FORMAT.md, "Maps and
//! sets").

use super::shape::Shape;
use super::value::{Input, Res, Value, fail};

/// Decode the map or set of `shape` at `at`.
pub(super) fn decode(_input: &mut Input<'_>, shape: &Shape, _at: usize, path: &str) -> Res<Value> {
    fail(path, format!("{shape}: maps and sets are not decoded"))
}
