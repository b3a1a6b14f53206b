//! The objects on the system, by what their headers say: every segment
//! described, found by name, removed by prefix, and the ones nobody uses
//! any more (`shmstore gc`). Public through [`inspect`](crate::inspect).
#![allow(unsafe_code)]

use std::sync::atomic::Ordering::{Acquire, Relaxed};

use crate::error::Result;
use crate::format::{self, HEADER_SIZE, Kind, MAGIC, REGION_CONTROL_SIZE, RegionControl};
use crate::inspect::{Description, describe_segment};
use crate::region::pin_slot::{STARTED, buffer_of, pid_of};
use crate::store::memory::Creator;
use crate::sync::notify::WAITING;
use crate::sys::proc;
use crate::sys::shm::{Segment, SegmentInfo};

/// A segment on the system, with what its bytes say.
#[derive(Debug, Clone)]
pub struct Object {
    /// What the kernel says (read before this process attached it).
    pub info: SegmentInfo,
    /// What the header says, or why it could not be read.
    pub description: std::result::Result<Description, String>,
    /// Which of the processes the header names still run.
    pub liveness: Option<Liveness>,
}

/// Which of the processes a shmstore object's header names still run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Liveness {
    /// The creator: its pid and whether it runs (judged by pid and start
    /// time, as openers judge it).
    pub creator: (i32, bool),
    /// Each process holding a reader pin slot: pid, the buffer it pins
    /// (if any), and whether it runs (pid and start time).
    pub readers: Vec<(i32, Option<u32>, bool)>,
    /// A read-write waiter announced itself since the last commit (it may
    /// have died since: the next commit clears the announcement).
    pub waiting: bool,
}

impl Object {
    /// The object's name, if it is a named shmstore object.
    pub fn name(&self) -> Option<&str> {
        self.description.as_ref().ok()?.name.as_deref()
    }
}

/// Every segment on the system ([`list_segments`](crate::list_segments)),
/// each attached read-only (whoever owns it) and described.
pub fn objects() -> Result<Vec<Object>> {
    Ok(crate::sys::proc::list_segments()?
        .into_iter()
        .map(|info| {
            let seg = Segment::options()
                .read_only(true)
                .allow_foreign_owner(true)
                .attach_id(info.id);
            let description = seg
                .as_ref()
                .map_err(|e| e.to_string())
                .and_then(|seg| describe_segment(seg).map_err(|e| e.to_string()));
            let liveness = seg.ok().and_then(|seg| liveness(&seg));
            Object {
                info,
                description,
                liveness,
            }
        })
        .collect())
}

/// The objects named `name` (one, unless a removed one still lingers:
/// removed segments come after).
pub fn find_named(name: &str) -> Result<Vec<Object>> {
    let mut found: Vec<Object> = objects()?
        .into_iter()
        .filter(|o| o.name() == Some(name))
        .collect();
    found.sort_by_key(|o| o.info.marked_for_removal);
    Ok(found)
}

/// Remove (`IPC_RMID`) every object whose name starts with `prefix` (not
/// empty: `acme/` removes `acme/config` and `acme/counters`), and return
/// them. Objects this user may not remove are skipped and returned with
/// the error.
pub fn remove_prefix(prefix: &str) -> Result<Vec<(Object, Result<()>)>> {
    if prefix.is_empty() {
        return Err(crate::Error::InvalidName {
            name: String::new(),
            reason: "an empty prefix would name every object",
        });
    }
    Ok(objects()?
        .into_iter()
        .filter(|o| o.name().is_some_and(|n| n.starts_with(prefix)) && !o.info.marked_for_removal)
        .map(|o| {
            let removed = Segment::remove_by_id(o.info.id);
            (o, removed)
        })
        .collect())
}

/// Which of the processes the header of `seg` names still run; `None` if
/// it is not a shmstore segment.
pub fn liveness(seg: &Segment) -> Option<Liveness> {
    // SAFETY: the attachment's pointer and length, mapped while `seg` lives,
    // which outlives every use of the header here.
    let h = unsafe { format::header_at(seg.as_ptr(), seg.len()) }.ok()?;
    if h.magic.load(Acquire) != MAGIC {
        return None;
    }
    let creator = Creator::of(seg).ok()?;
    let mut readers = Vec::new();
    let region = h.kind.load(Relaxed) == Kind::Region as u32
        && seg.len() >= HEADER_SIZE + REGION_CONTROL_SIZE;
    if region {
        // SAFETY: the control block lies inside the attachment (checked),
        // 64-aligned after the 512-byte header; atomics only.
        let ctl = unsafe { &*seg.as_ptr().add(HEADER_SIZE).cast::<RegionControl>() };
        for pin in &ctl.pins {
            let w = pin.word.load(Acquire);
            let pid = pid_of(w);
            if pid == 0 {
                continue;
            }
            let start = (w & STARTED != 0).then(|| pin.start_time.load(Acquire));
            readers.push((
                pid,
                buffer_of(w).map(|b| b as u32),
                proc::same_process_alive(pid, start),
            ));
        }
    }
    Some(Liveness {
        creator: (creator.pid, creator.alive(h)),
        readers,
        waiting: h.notify.load(Relaxed) & WAITING != 0,
    })
}

/// The shmstore objects nobody uses any more: no process attached and the
/// creator gone, owned by this user (by anyone, for root). What `shmstore
/// gc` lists, and removes when told.
pub fn garbage() -> Result<Vec<Object>> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    Ok(objects()?
        .into_iter()
        .filter(|o| {
            o.info.nattch == 0
                && !o.info.marked_for_removal
                && (euid == 0 || o.info.uid == euid)
                && o.liveness.as_ref().is_some_and(|l| !l.creator.1)
        })
        .collect())
}

/// The value a cell's segment holds now, with its version: the bytes of the
/// committed slot, copied as readers copy (`cell/ring.rs`). `None` if `seg`
/// is not a valid cell.
pub fn cell_value(seg: &Segment) -> Option<(u64, Vec<u8>)> {
    // SAFETY: the attachment's pointer and length, mapped while `seg` lives.
    let h = unsafe { format::header_at(seg.as_ptr(), seg.len()) }.ok()?;
    let valid = format::validate(h, seg.len()).ok()?;
    if valid.kind != Kind::Cell {
        return None;
    }
    let layout = valid.layout;
    let mut out = vec![0u8; layout.value_size];
    let version = crate::cell::ring::read::<crate::sync::atomic::Std>(
        &h.seq,
        &h.writing,
        layout.slot_count as u64,
        |slot| {
            // SAFETY: validate checked that every slot lies inside the
            // attachment; a slot is value_size bytes rounded up to 8 at an
            // 8-aligned offset; `out` holds value_size bytes.
            unsafe {
                crate::sync::copy::load_bytes(
                    seg.as_ptr()
                        .add(layout.data_offset + slot * layout.slot_stride),
                    out.as_mut_ptr(),
                    layout.value_size,
                )
            }
        },
    );
    Some((version, out))
}
