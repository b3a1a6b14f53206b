//! `shmstore remove`: each target removed or reported on its own, saying
//! what it is; what it is and the expectations are judged on an attachment
//! of it, and the removal is made through that attachment, since ids are
//! reused within seconds. `--prefix` removes by the names stored in the
//! objects (`inspect::remove_prefix`); the expectations apply to the
//! targets only.

use serde_json::{Value, json};
use shmstore::SegmentInfo;
use shmstore::inspect;

use crate::out::{self, clean, secs, secs_and_utc};
use crate::resolve::{Lookup, Purpose, attach};
use crate::{Failure, Outcome};

/// What the operator expects the segment to be.
pub struct Expect {
    pub key: Option<String>,
    pub name: Option<String>,
    pub cpid: Option<i32>,
    pub ctime: Option<u64>,
}

impl Expect {
    /// Why `info` (and the object's `name`) is not what was expected.
    fn mismatch(&self, info: &SegmentInfo, name: Option<&str>) -> Option<String> {
        if let Some(key) = &self.key {
            let have = format!("{:#010x}", info.key.raw() as u32);
            if !have.eq_ignore_ascii_case(key) {
                return Some(format!("its key is {have}, not {}", clean(key)));
            }
        }
        if let Some(want) = &self.name
            && name != Some(want.as_str())
        {
            return Some(format!(
                "its name is {}, not {}",
                name.map_or("none".into(), clean),
                clean(want)
            ));
        }
        if let Some(cpid) = self.cpid
            && info.cpid != cpid
        {
            return Some(format!("it was created by pid {}, not {cpid}", info.cpid));
        }
        if let Some(ctime) = self.ctime
            && secs(info.ctime) != Some(ctime)
        {
            return Some(format!(
                "its change time is {}, not {}",
                secs(info.ctime).map_or("unknown".into(), secs_and_utc),
                secs_and_utc(ctime)
            ));
        }
        None
    }
}

/// What the segment `info` describes is, in a line: its id, key, size and
/// creator, and the object's `name` and stored type (`holds`) if known.
fn identify(info: &SegmentInfo, name: Option<&str>, holds: Option<&str>) -> String {
    let mut s = format!(
        "segment {} (key {:#010x}, {} bytes, created by pid {} uid {}",
        info.id,
        info.key.raw() as u32,
        info.size,
        info.cpid,
        info.cuid
    );
    if let Some(n) = name {
        s.push_str(&format!(", name {}", clean(n)));
    }
    if let Some(h) = holds {
        s.push_str(&format!(", holds {}", clean(h)));
    }
    s.push(')');
    s
}

/// Remove the segment `arg` names, if it is what was expected: judged on
/// the attachment that is then removed, so that an id reused meanwhile by
/// another segment is never hit.
fn remove_one(
    arg: &str,
    lookup: &Lookup,
    expect: &Expect,
) -> Result<(i32, String), (Option<i32>, String)> {
    let seg = attach(arg, lookup, Purpose::Remove).map_err(|e| (None, clean(&e.to_string())))?;
    let id = seg.id();
    let info = seg.info().map_err(|e| (Some(id), e.to_string()))?;
    let described = inspect::describe_segment(&seg).ok();
    let name = described.as_ref().and_then(|d| d.name.clone());
    let holds = described.as_ref().and_then(|d| d.stored.clone());
    let what = identify(&info, name.as_deref(), holds.as_deref());
    if let Some(why) = expect.mismatch(&info, name.as_deref()) {
        return Err((Some(id), format!("{what}: not removed: {why}")));
    }
    inspect::remove_attached(seg).map_err(|e| (Some(id), format!("{what}: {e}")))?;
    Ok((id, what))
}

pub fn run(
    targets: &[String],
    lookup: &Lookup,
    prefix: Option<&str>,
    expect: &Expect,
    as_json: bool,
) -> Result<Outcome, Failure> {
    if targets.is_empty() && prefix.is_none() {
        return Err("give the segments to remove, or --prefix".into());
    }
    let mut outcome = Outcome::Done;
    let mut rows = Vec::new();
    for arg in targets {
        match remove_one(arg, lookup, expect) {
            Ok((id, what)) => {
                if as_json {
                    rows.push(
                        json!({"target": clean(arg), "id": id, "removed": true, "error": null}),
                    );
                } else {
                    out::report(format_args!(
                        "removed {what} (gone once every process has detached)"
                    ))?;
                }
            }
            Err((id, why)) => {
                outcome = Outcome::SomeFailed;
                if as_json {
                    rows.push(json!({"target": clean(arg), "id": id, "removed": false, "error": clean(&why)}));
                } else {
                    out::warn(format_args!("{}: {}", clean(arg), clean(&why)));
                }
            }
        }
    }
    if let Some(prefix) = prefix {
        for (object, removed) in inspect::remove_prefix(prefix)? {
            let name = object.name().map(clean).unwrap_or_default();
            let error = removed.as_ref().err().map(|e| clean(&e.to_string()));
            if error.is_some() {
                outcome = Outcome::SomeFailed;
            }
            if as_json {
                rows.push(json!({"target": name, "id": object.info.id, "removed": error.is_none(), "error": error}));
                continue;
            }
            match error {
                None => out::report(format_args!("removed {name} (segment {})", object.info.id))?,
                Some(e) => out::warn(format_args!("{name} (segment {}): {e}", object.info.id)),
            }
        }
    }
    if as_json {
        out::report(Value::Array(rows))?;
    }
    Ok(outcome)
}
