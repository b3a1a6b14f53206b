//! How the command prints: strings from segments escaped, kernel fields as
//! JSON values.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use shmstore::SegmentInfo;
use shmstore::inspect::{Description, Liveness};

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

/// The kernel's view of a segment.
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
        "dtime": secs(s.dtime),
        "ctime": secs(s.ctime),
        "marked_for_removal": s.marked_for_removal,
        "locked": s.locked,
    })
}

/// What a shmstore header says (strings already escaped by the library).
pub fn description_json(d: &Description) -> Value {
    json!({
        "name": d.name,
        "holds": d.stored,
        "kind": d.kind.map(|k| format!("{k:?}").to_lowercase()),
        "state": d.state,
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

/// Print a JSON value on one line.
pub fn print_json(v: &Value) {
    println!("{v}");
}
