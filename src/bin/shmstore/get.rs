//! `shmstore get`: the value an object holds now, decoded field by field
//! by the schema stored in it (objects created `with_schema()`), or its
//! bytes in words for an object without one.

use serde_json::{Map, Value as Json, json};
use shmstore::Kind;
use shmstore::inspect;
use shmstore::schema::Value;

use crate::out::{clean, line, print_json};
use crate::resolve::{Lookup, Purpose, attach};
use crate::{Failure, Outcome, Words};

/// A decoded value as JSON: structs as objects, maps as objects when every
/// key is a string (else as a list of `[key, value]` pairs), a unit variant
/// as its name and any other variant as `{"Name": fields}`; integers
/// outside what JSON numbers hold exactly (past 2^53) and floats that are
/// not finite as strings.
pub fn to_json(v: &Value) -> Json {
    const EXACT: u128 = 1 << 53;
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => json!(b),
        Value::Uint(u) if *u <= EXACT => json!(*u as u64),
        Value::Int(i) if i.unsigned_abs() <= EXACT => json!(*i as i64),
        Value::Uint(u) => json!(u.to_string()),
        Value::Int(i) => json!(i.to_string()),
        Value::Float(x) if x.is_finite() => json!(x),
        Value::Float(x) => json!(x.to_string()),
        Value::Str(s) => json!(s),
        Value::List(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => {
            if entries.iter().all(|(k, _)| matches!(k, Value::Str(_))) {
                let mut m = Map::new();
                for (k, v) in entries {
                    if let Value::Str(k) = k {
                        m.insert(k.clone(), to_json(v));
                    }
                }
                Json::Object(m)
            } else {
                Json::Array(
                    entries
                        .iter()
                        .map(|(k, v)| json!([to_json(k), to_json(v)]))
                        .collect(),
                )
            }
        }
        Value::Struct(fields) => Json::Object(
            fields
                .iter()
                .map(|(n, v)| (n.clone(), to_json(v)))
                .collect(),
        ),
        Value::Variant(name, inner) => match **inner {
            Value::Null => json!(name),
            ref fields => json!({ name: to_json(fields) }),
        },
        // A later kind of value: its text.
        other => json!(other.to_string()),
    }
}

pub fn run(
    target: &str,
    lookup: &Lookup,
    format: Option<Words>,
    as_json: bool,
) -> Result<Outcome, Failure> {
    let seg = attach(target, lookup, Purpose::Read)?;
    let contents = inspect::contents(&seg)?;
    let kind = match contents.kind {
        Kind::Cell => "cell",
        _ => "region",
    };
    let decoded = match (format, contents.decode()) {
        (None, None) => {
            return Err(format!(
                "{} stores no schema (it was created without with_schema()): show its bytes \
                 with --format hex, u64, i32 or f64",
                clean(target)
            )
            .into());
        }
        (None, Some(Err(e))) => {
            return Err(format!("{}: {}", clean(target), clean(&e)).into());
        }
        (None, Some(Ok(value))) => Some(value),
        (Some(_), _) => None,
    };
    if as_json {
        print_json(&json!({
            "id": seg.id(),
            "kind": kind,
            "version": contents.version,
            "schema": contents.schema,
            "value": decoded.as_ref().map(to_json),
            "words": format.map(|f| crate::watch::words(&contents.bytes, f)),
        }))?;
        return Ok(Outcome::Done);
    }
    match (decoded, format) {
        (Some(value), _) => {
            for l in value.lines() {
                line(clean(&l))?;
            }
        }
        (None, Some(f)) => line(crate::watch::words(&contents.bytes, f).join(" "))?,
        (None, None) => {}
    }
    Ok(Outcome::Done)
}
