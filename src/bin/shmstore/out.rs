//! How the command prints: strings from segments escaped, kernel fields as
//! JSON values, every line written through a writer that never panics. A
//! reader that has gone (`shmstore list | head -1`: `EPIPE`) ends a
//! subcommand quietly ([`Closed`]).

use std::fmt::{self, Display};
use std::io::{ErrorKind, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use shmstore::SegmentInfo;
use shmstore::inspect::{Description, Liveness, Trust};

use crate::Failure;

/// `s` with every control and format character escaped (see
/// `shmstore::inspect::escape`): nothing a segment holds (or an error
/// quotes from one) can drive the terminal or show as other text.
pub fn clean(s: &str) -> String {
    shmstore::inspect::escape(s)
}

/// Seconds since the epoch, if known.
pub fn secs(t: Option<SystemTime>) -> Option<u64> {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
}

/// `t` in UTC, RFC 3339 (`2026-12-06T22:54:56Z`), if known.
pub fn utc(t: Option<SystemTime>) -> Option<String> {
    t.map(shmstore::inspect::rfc3339)
}

/// `secs` since the epoch and the same in UTC: `1796512831
/// (2026-12-05T23:20:31Z)`.
pub fn secs_and_utc(secs: u64) -> String {
    match UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs)) {
        Some(t) => format!("{secs} ({})", shmstore::inspect::rfc3339(t)),
        None => secs.to_string(),
    }
}

/// The kernel's view of a segment: times in seconds since the epoch, and
/// each again in UTC (`<time>_rfc3339`).
pub fn kernel_json(s: &SegmentInfo) -> Value {
    json!({
        "id": s.id,
        "key": s.key.to_string(),
        "bytes": s.size,
        "mode": format!("{:04o}", s.mode),
        "uid": s.uid,
        "gid": s.gid,
        "cuid": s.cuid,
        "cgid": s.cgid,
        "cpid": s.cpid,
        "lpid": s.lpid,
        "nattch": s.nattch,
        "atime": secs(s.atime),
        "atime_rfc3339": utc(s.atime),
        "dtime": secs(s.dtime),
        "dtime_rfc3339": utc(s.dtime),
        "ctime": secs(s.ctime),
        "ctime_rfc3339": utc(s.ctime),
        "marked_for_removal": s.marked_for_removal,
        "locked": s.locked,
    })
}

/// Why the segment `info` describes is not trusted (its owner and creator
/// uids), or `None` if it is: what a lookup by name with `trust` judges.
pub fn distrust(info: &SegmentInfo, trust: &Trust) -> Option<String> {
    (!trust.trusts(info)).then(|| format!("owner uid {}, creator uid {}", info.uid, info.cuid))
}

/// What a shmstore header says (strings already escaped by the library).
pub fn description_json(d: &Description) -> Value {
    json!({
        "name": d.name,
        "holds": d.stored,
        "schema": d.schema,
        "kind": d.kind.map(|k| format!("{k:?}").to_lowercase()),
        "state": d.state_name(),
        "version": d.version,
        "recoveries": d.recoveries,
        "waiting": d.waiting,
        "creator_pid": d.creator_pid,
        "layout": d.layout.map(|l| json!({
            "data_offset": l.data_offset,
            "slot_stride": l.slot_stride,
            "slot_count": l.slot_count,
        })),
        "region": d.region.as_ref().map(|r| json!({
            "current_version": r.current_version,
            "current_buffer": r.current_buffer,
            "buffers": r.buffers.iter().map(|b| json!({"len": b.len, "version": b.version})).collect::<Vec<_>>(),
            "pins": r.pins.iter().map(|p| json!({"pid": p.pid, "buffer": p.buffer})).collect::<Vec<_>>(),
        })),
        "warnings": d.warnings,
        "problem": d.problem.as_deref().map(clean),
    })
}

/// Who still runs.
pub fn liveness_json(l: &Liveness) -> Value {
    json!({
        "creator": {"pid": l.creator.0, "running": l.creator.1},
        "readers": l.readers.iter().map(|(pid, buffer, running)| json!({
            "pid": pid, "buffer": buffer, "running": running,
        })).collect::<Vec<_>>(),
        "waiting": l.waiting,
    })
}

/// Standard output's reader has gone (a pipe whose reading end is closed).
/// Not a failure: the subcommand ends quietly, with exit code 0.
#[derive(Debug)]
pub struct Closed;

impl Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("standard output closed by its reader")
    }
}

impl std::error::Error for Closed {}

/// Print `s` and a newline on standard output, flushed: [`Closed`] if its
/// reader has gone, a failure if it cannot be written otherwise (a full
/// disk).
pub fn line(s: impl Display) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{s}").and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Err(Box::new(Closed)),
        Err(e) => Err(format!("cannot write to standard output: {e}").into()),
    }
}

/// [`line`] for a subcommand that goes on when nobody reads what it says:
/// a removal asked for is made whether or not it is reported, so a reader
/// that has gone is no reason to stop.
pub fn report(s: impl Display) -> Result<(), Failure> {
    match line(s) {
        Err(e) if e.is::<Closed>() => Ok(()),
        other => other,
    }
}

/// Print `shmstore: ` and `s` on standard error. If that cannot be written
/// (nobody reads it), the exit code still tells.
pub fn warn(s: impl Display) {
    let _ = writeln!(std::io::stderr(), "shmstore: {s}");
}

/// Whether standard output's reader has gone, asked without writing (a
/// pipe whose reading end is closed polls as an error): what ends a
/// `watch` that has nothing new to print.
pub fn reader_gone() -> bool {
    use std::os::fd::AsFd;
    shmstore::inspect::reader_gone(std::io::stdout().as_fd()).unwrap_or(false)
}

/// Print a JSON value on one line.
pub fn print_json(v: &Value) -> Result<(), Failure> {
    line(v)
}
