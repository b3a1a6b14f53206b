//! Which segment an argument names: a decimal id, a `0x` key, or the name
//! of an object.

use shmstore::{Error, Key, list_segments};

use crate::Failure;
use crate::out::clean;

/// The id of the segment `arg` names.
pub fn resolve(arg: &str) -> Result<i32, Failure> {
    if let Some(hex) = arg.strip_prefix("0x").or_else(|| arg.strip_prefix("0X")) {
        let raw = u32::from_str_radix(hex, 16)
            .map_err(|e| format!("bad key {}: {e}", clean(arg)))? as i32;
        let key = Key::new(raw)?;
        let found = list_segments()?.into_iter().find(|s| s.key == key);
        return found
            .map(|s| s.id)
            .ok_or_else(|| Error::NotFound { key }.into());
    }
    if !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_digit()) {
        let id: i32 = arg.parse().map_err(|e| format!("bad id {arg}: {e}"))?;
        let all = list_segments()?;
        if all.iter().any(|s| s.id == id) {
            return Ok(id);
        }
        // A key written in decimal, perhaps.
        if let Some(s) = all.iter().find(|s| s.key.raw() == id) {
            return Err(format!(
                "no segment has id {id}; the segment with key {} ({id} in decimal) has id {}: \
                 give keys in hex with 0x",
                s.key, s.id
            )
            .into());
        }
        return Err(Error::IdNotFound { id }.into());
    }
    match shmstore::inspect::find_named(arg)?.first() {
        Some(object) => Ok(object.info.id),
        None => Err(format!(
            "no object is named {} (`shmstore list` shows the names; ids are decimal, keys 0x...)",
            clean(arg)
        )
        .into()),
    }
}
