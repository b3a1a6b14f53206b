//! The objects on the system, by what their headers say: every segment
//! described, found by name as the library finds it, removed (by prefix
//! too) and collected when nobody uses them (`shmstore gc`), each judged and
//! removed on one attachment. Public through [`inspect`](crate::inspect).

use std::sync::atomic::Ordering::{Acquire, Relaxed};

use crate::error::{Error, Result};
use crate::format::{Kind, MAGIC};
use crate::inspect::{Description, describe_segment};
use crate::key::Key;
use crate::region::pin_slot::{STARTED, buffer_of, pid_of};
use crate::store::life::creator::Creator;
use crate::store::life::{look, removal};
use crate::store::options::Common;
use crate::store::{Memory, Store};
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

/// Which owners a lookup by name trusts, beside this user and root: the
/// options of the same names on [`Options`](crate::Options).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trust {
    /// A user whose objects are trusted (`trust_user`).
    pub user: Option<u32>,
    /// A group whose members' objects are trusted (`trust_group`).
    pub group: Option<u32>,
    /// Every owner (`allow_foreign_owner`).
    pub any: bool,
}

impl Trust {
    /// Whether a lookup by name with this trust would take the segment
    /// `info` describes: its owner and its creator are this user, root, or
    /// trusted as this says (the rule of
    /// [`allow_foreign_owner`](crate::Options::allow_foreign_owner),
    /// [`trust_user`](crate::Options::trust_user) and
    /// [`trust_group`](crate::Options::trust_group)). What `shmstore list`
    /// marks, so that another user's segment is not taken for one's own.
    pub fn trusts(&self, info: &SegmentInfo) -> bool {
        Segment::options()
            .allow_foreign_owner(self.any)
            .trust_group_opt(self.group)
            .trust_user_opt(self.user)
            .trusts(info)
    }

    fn options(&self) -> Common {
        Common {
            allow_foreign_owner: self.any,
            trust_group: self.group,
            trust_user: self.user,
            ..Common::default()
        }
    }
}

/// The segment of the object of the name `key` was made for
/// ([`Key::named`] or [`Key::named_in`]), found as the library finds it
/// (the name's keys, trusted owners; `Error::ForeignOwner` if only an
/// untrusted segment holds the name; waiting, up to the default
/// `init_timeout`, while a live creator still claims the name), attached
/// read-only or read-write as asked; `Error::NotFound` if none holds it. Describe, watch or remove *this* attachment: it keeps the id from
/// naming another segment. A key without a name is refused
/// (`Error::InvalidOptions`).
pub fn locate(key: Key, trust: &Trust, read_only: bool) -> Result<Segment> {
    Store::locate(key, &trust.options(), read_only)?.ok_or(Error::NotFound { key })
}

/// Every segment at the keys of the name `key` was made for that holds
/// that name, whoever owns it: what an operator needs to see when a lookup
/// is refused. A key without a name is refused (`Error::InvalidOptions`).
pub fn claimants(key: Key) -> Result<Vec<SegmentInfo>> {
    let name = key.name().ok_or_else(|| Error::InvalidOptions {
        reason: format!("{key} has no name"),
    })?;
    let mut found = Vec::new();
    for k in key.candidates() {
        let Ok(seg) = Segment::options()
            .read_only(true)
            .allow_foreign_owner(true)
            .open(k)
        else {
            continue;
        };
        let named = look::header(&seg)
            .filter(|h| h.magic.load(Acquire) == MAGIC)
            .and_then(|h| h.stored_name())
            .is_some_and(|n| n == name.as_bytes());
        if named {
            found.push(seg.info()?);
        }
    }
    Ok(found)
}

/// Remove the segment `seg` is attached to: a shmstore object through the
/// removal protocol (`store/life/removal.rs`: on a read-write attachment
/// marked first and its waiters woken after, so that its writers and
/// waiters learn it at once; then `IPC_RMID` on this attachment's id), any
/// other segment by `IPC_RMID` on this attachment's id. Judge it on `seg`
/// first: the id names no other segment while `seg` lives.
pub fn remove_attached(seg: Segment) -> Result<()> {
    let memory = Memory::Segment(seg);
    let h = memory.segment().and_then(look::header);
    match h.filter(|h| h.magic.load(Acquire) == MAGIC) {
        Some(h) => removal::remove(&memory, h),
        None => memory.remove(),
    }
}

/// Attach segment `id` (whoever owns it) read-write if this user may, else
/// read-only: what the command judges and removes.
pub fn attach_for_removal(id: i32) -> Result<Segment> {
    match Segment::options().allow_foreign_owner(true).attach_id(id) {
        Err(Error::PermissionDenied { .. }) => Segment::options()
            .read_only(true)
            .allow_foreign_owner(true)
            .attach_id(id),
        other => other,
    }
}

/// Remove every object whose name starts with `prefix` (not empty:
/// `acme/` removes `acme/config` and `acme/counters`), and return them,
/// each with what its removal gave. Each is attached, its name read again
/// on that attachment, and removed through it (`remove_attached`), so that
/// an id reused meanwhile by another segment is never removed.
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
        .filter_map(|o| {
            crate::crash::point("remove.after_list");
            let seg = match attach_for_removal(o.info.id) {
                Ok(seg) => seg,
                Err(Error::IdNotFound { .. }) => return None,
                Err(e) => return Some((o, Err(e))),
            };
            let still = look::header(&seg)
                .filter(|h| h.magic.load(Acquire) == MAGIC)
                .and_then(|h| h.stored_name())
                .is_some_and(|n| n.starts_with(prefix.as_bytes()));
            still.then(|| (o, remove_attached(seg)))
        })
        .collect())
}

/// Which of the processes the header of `seg` names still run; `None` if
/// it is not a shmstore segment.
pub fn liveness(seg: &Segment) -> Option<Liveness> {
    let h = look::header(seg)?;
    if h.magic.load(Acquire) != MAGIC {
        return None;
    }
    let creator = Creator::of(seg).ok()?;
    let mut readers = Vec::new();
    let ctl = look::region_control(seg).filter(|_| h.kind.load(Relaxed) == Kind::Region as u32);
    if let Some(ctl) = ctl {
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
/// gc` lists; [`collect`] removes one, judged again.
pub fn garbage() -> Result<Vec<Object>> {
    let euid = proc::euid();
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

/// What [`collect`] did with a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Collection {
    /// Removed.
    Removed,
    /// Not garbage when judged again on an attachment: why.
    Kept(String),
}

/// Remove segment `id` if it is still garbage, judged on an attachment of
/// it (only this attachment, its creator gone, this user's unless root,
/// not being removed, its name under `prefix` if given) and then by the
/// collection protocol
/// (`store/life/removal.rs`): an opener that attaches while it is judged
/// keeps it.
pub fn collect(id: i32, prefix: Option<&str>) -> Result<Collection> {
    let euid = proc::euid();
    crate::crash::point("gc.after_list");
    let seg = match Segment::options().allow_foreign_owner(true).attach_id(id) {
        Ok(seg) => seg,
        Err(Error::IdNotFound { .. }) => return Ok(Collection::Kept("gone".into())),
        Err(e) => return Err(e),
    };
    let info = seg.info()?;
    let memory = Memory::Segment(seg);
    let h = memory.segment().and_then(look::header);
    let Some(h) = h.filter(|h| h.magic.load(Acquire) == MAGIC) else {
        return Ok(Collection::Kept("not a shmstore object".into()));
    };
    let named = h.stored_name().unwrap_or_default();
    let why = if info.marked_for_removal {
        Some("it was removed".to_owned())
    } else if prefix.is_some_and(|p| !named.starts_with(p.as_bytes())) {
        Some("its name is not under the prefix".to_owned())
    } else if info.nattch != 1 {
        Some(format!(
            "{} other processes attached",
            info.nattch.saturating_sub(1)
        ))
    } else if euid != 0 && info.uid != euid {
        Some(format!("it belongs to uid {}", info.uid))
    } else if Creator::from_info(&info).alive(h) {
        Some(format!("its creator (pid {}) runs", info.cpid))
    } else {
        None
    };
    if let Some(why) = why {
        return Ok(Collection::Kept(why));
    }
    Ok(match removal::collect(&memory, h)? {
        removal::Collected::Removed => Collection::Removed,
        removal::Collected::InUse => {
            Collection::Kept("a process attached while it was judged".into())
        }
        removal::Collected::Busy => Collection::Kept("another process removes it".into()),
    })
}

/// The value a cell's segment holds now, with its version, read through
/// a store as handles read (`cell/ring.rs`), on an attachment of its own
/// (read-only, whoever owns it; `seg` keeps the id from naming another
/// segment meanwhile). `None` if `seg` is not a valid cell.
pub fn cell_value(seg: &Segment) -> Option<(u64, Vec<u8>)> {
    let own = Segment::options()
        .read_only(true)
        .allow_foreign_owner(true)
        .attach_id(seg.id())
        .ok()?;
    let store = Store::open_untyped(Memory::Segment(own)).ok()?;
    if store.kind() != Kind::Cell {
        return None;
    }
    let mut out = vec![0u8; store.layout().value_size];
    let version = store.read_cell(&mut out);
    Some((version, out))
}

/// What an object holds now, for a reader that knows nothing of its type:
/// its bytes, and the schema that says how to read them, if it stores one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contents {
    /// A cell or a region.
    pub kind: Kind,
    /// The version of the value read.
    pub version: u64,
    /// The stored schema (FORMAT.md, "Schema"), checked against its hash
    /// but not parsed: it is as untrusted as the bytes.
    pub schema: Option<String>,
    /// A cell's value, or a copy of a region's current archive.
    pub bytes: Vec<u8>,
    /// The value's size and alignment as the header says (a region's:
    /// its archived root's), which the schema must imply.
    pub value_size: u32,
    /// See `value_size`.
    pub value_align: u32,
    /// The header's further facts of the stored form (a region's: rkyv's
    /// format, which must be the one decoded).
    pub type_extra: u64,
}

impl Contents {
    /// The value decoded by its stored schema: `None` when there is none.
    pub fn decode(&self) -> Option<std::result::Result<crate::schema::Value, String>> {
        use crate::schema::{Form, Shape, decode};
        let schema = self.schema.as_ref()?;
        let form = match self.kind {
            Kind::Cell => Form::Cell,
            Kind::Region => Form::Region,
        };
        let rkyv = crate::region::rkyv_format();
        Some((|| {
            if self.kind == Kind::Region && self.type_extra != rkyv {
                return Err(format!(
                    "the archive is in rkyv's format {:#x}, not {rkyv:#x}, which this build \
                     decodes",
                    self.type_extra
                ));
            }
            let shape = Shape::parse(schema.as_bytes())
                .map_err(|e| format!("the stored schema is not readable: {e}"))?;
            let l = shape.layout(form)?;
            if (l.size, l.align) != (self.value_size as usize, self.value_align as usize) {
                return Err(format!(
                    "the stored schema implies {} bytes aligned to {}, the header {} aligned \
                     to {}",
                    l.size, l.align, self.value_size, self.value_align
                ));
            }
            decode(&shape, form, &self.bytes).map_err(|e| e.to_string())
        })())
    }
}

/// What the object `seg` holds now, read on an attachment of its own
/// (read-only, whoever owns it): a cell's value as its readers copy it, or
/// a whole copy of a region's current archive, and its stored schema.
///
/// Errors: those of validation ([`Error::NotShmstore`], [`Error::Corrupt`]
/// and so on), [`Error::NothingPublished`] for a region that holds nothing
/// yet, [`Error::Corrupt`] for a schema whose bytes do not match its hash.
pub fn contents(seg: &Segment) -> Result<Contents> {
    let own = Segment::options()
        .read_only(true)
        .allow_foreign_owner(true)
        .attach_id(seg.id())?;
    let memory = Memory::Segment(own);
    let h = crate::format::header_of(&memory)?;
    let valid = crate::format::validate(h, memory.len())?;
    let schema = valid
        .schema(&memory)?
        .map(|s| String::from_utf8_lossy(&s).into_owned());
    let store = Store::open_untyped(memory)?;
    let (version, bytes) = match store.kind() {
        Kind::Cell => {
            let mut out = vec![0u8; store.layout().value_size];
            (store.read_cell(&mut out), out)
        }
        Kind::Region => crate::region::copy_current(&store)?,
    };
    Ok(Contents {
        kind: store.kind(),
        version,
        schema,
        bytes,
        value_size: valid.value_size,
        value_align: valid.value_align,
        type_extra: valid.type_extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(kind: Kind, schema: &str, bytes: Vec<u8>, size: u32, align: u32) -> Contents {
        Contents {
            kind,
            version: 1,
            schema: Some(schema.into()),
            bytes,
            value_size: size,
            value_align: align,
            type_extra: crate::region::rkyv_format(),
        }
    }

    #[test]
    fn a_schema_that_does_not_fit_the_header_decodes_nothing() {
        let right = contents(Kind::Cell, "S{a:u8}", vec![7], 1, 1);
        assert!(right.decode().unwrap().is_ok());
        let wrong = contents(Kind::Cell, "S{a:u8}", vec![7; 16], 16, 8);
        let e = wrong.decode().unwrap().unwrap_err();
        assert!(e.contains("implies 1 bytes"), "{e}");
        let mut other_format = contents(Kind::Region, "u32", 7u32.to_le_bytes().to_vec(), 4, 4);
        assert!(other_format.decode().unwrap().is_ok());
        other_format.type_extra = 0x7201_0804;
        let e = other_format.decode().unwrap().unwrap_err();
        assert!(e.contains("format"), "{e}");
    }
}
