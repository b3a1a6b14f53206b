//! `shmstore watch`: a line for each new version of an object (or change
//! in what is wrong with it), with the time, and a cell's value (in hex or
//! words) or a region's archive length.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shmstore::inspect::rfc3339_millis;

use serde_json::json;
use shmstore::Segment;
use shmstore::inspect;

use crate::out::{self, clean, print_json};
use crate::resolve::{Lookup, Purpose, attach};
use crate::{Failure, Outcome, Words};

/// How often `watch` looks at the segment again for a new version: it
/// decodes snapshots of the segment (`inspect::describe_segment`), which
/// need not hold a valid object, rather than wait on it.
const POLL: Duration = Duration::from_millis(20);

/// A cell's value as `format` says.
pub fn words(bytes: &[u8], format: Words) -> Vec<String> {
    match format {
        Words::Hex => vec![bytes.iter().map(|b| format!("{b:02x}")).collect()],
        Words::U64 => bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()).to_string())
            .collect(),
        Words::I32 => bytes
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap_or_default()).to_string())
            .collect(),
        Words::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default()).to_string())
            .collect(),
    }
}

/// Print the object's state now.
fn show(
    seg: &Segment,
    d: &inspect::Description,
    format: Option<Words>,
    as_json: bool,
) -> Result<(), Failure> {
    let now = SystemTime::now();
    let secs = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    // By field when the object stores a schema and no format was asked
    // for; in words otherwise.
    let fields = match (format, &d.schema) {
        (None, Some(_)) => inspect::contents(seg)
            .map_err(|e| e.to_string())
            .ok()
            .and_then(|c| c.decode()),
        _ => None,
    };
    let value = match fields {
        Some(_) => None,
        None => {
            inspect::cell_value(seg).map(|(_, bytes)| words(&bytes, format.unwrap_or(Words::Hex)))
        }
    };
    let (fields, fields_problem) = match fields {
        Some(Ok(v)) => (Some(v), None),
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    let archive = d.region.as_ref().and_then(|r| {
        r.buffers
            .get(r.current_buffer)
            .map(|b| b.len)
            .filter(|_| r.current_version != 0)
    });
    if as_json {
        return print_json(&json!({
            "time": secs,
            "time_rfc3339": rfc3339_millis(now),
            "version": d.version,
            "holds": d.stored,
            "name": d.name,
            "value": value,
            "fields": fields.as_ref().map(crate::get::to_json),
            "archive_len": archive,
            "problem": d.problem.as_deref().or(fields_problem.as_deref()).map(clean),
        }));
    }
    let mut line = format!("{} {}", rfc3339_millis(now), clean(&d.summary()));
    if let Some(v) = value {
        line.push_str(&format!(" value {}", v.join(" ")));
    }
    if let Some(v) = &fields {
        line.push_str(&format!(" value {}", clean(&v.to_string())));
    }
    if let Some(e) = &fields_problem {
        line.push_str(&format!(" (not decoded: {})", clean(e)));
    }
    if let Some(len) = archive {
        line.push_str(&format!(" archive {len} bytes"));
    }
    out::line(line)
}

pub fn run(
    target: &str,
    lookup: &Lookup,
    count: Option<u64>,
    timeout: Option<Duration>,
    format: Option<Words>,
    as_json: bool,
) -> Result<Outcome, Failure> {
    let seg = attach(target, lookup, Purpose::Read)?;
    let count = count.unwrap_or(u64::MAX);
    if count == 0 {
        return Ok(Outcome::Done);
    }
    let mut last = inspect::describe_segment(&seg)?;
    show(&seg, &last, format, as_json)?;
    let mut shown = 1;
    let mut since = Instant::now();
    while shown < count {
        if timeout.is_some_and(|t| since.elapsed() >= t) {
            return Err(format!("no new version within {:?}", timeout.unwrap_or_default()).into());
        }
        std::thread::sleep(POLL);
        // Nobody reads any more (`| head -1`): end now, not at the next
        // version, which may never come.
        if out::reader_gone() {
            return Ok(Outcome::Done);
        }
        let now = inspect::describe_segment(&seg)?;
        if now.version != last.version || now.problem != last.problem {
            show(&seg, &now, format, as_json)?;
            last = now;
            shown += 1;
            since = Instant::now();
        }
    }
    Ok(Outcome::Done)
}
