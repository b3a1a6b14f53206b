//! Which segment an argument names, attached: a decimal id, a `0x` key, or
//! the name of an object, found as the library finds it (the name's keys,
//! in the private namespace `--namespace` gives if any; owners trusted as
//! `--trust-user`, `--trust-group` and `--allow-foreign-owner` say). The
//! attachment is what the subcommand then describes, watches or removes:
//! while it lasts, the id names no other segment.

use std::path::PathBuf;

use shmstore::inspect::{self, Trust};
use shmstore::{Error, Key, SECRET_FILE, Segment, list_segments};

use crate::Failure;
use crate::out::clean;

/// How a name is found: whom to trust, and in which private namespace (the
/// directory of `--namespace`), if in one.
pub struct Lookup {
    pub trust: Trust,
    pub namespace: Option<PathBuf>,
}

impl Lookup {
    /// The key of the name `name`: [`Key::named`], or [`Key::named_in`] the
    /// namespace. `Key::named_in` makes the namespace's secret if it has
    /// none; this command only looks, and a secret it made (as root, say)
    /// could be one the namespace's users cannot read. So a namespace
    /// without a secret is reported as holding nothing (no object can be
    /// in it), and only one with a secret is handed to the library.
    fn key(&self, name: &str) -> Result<Key, Failure> {
        let key = Key::named(name)?;
        let Some(dir) = &self.namespace else {
            return Ok(key);
        };
        let is_dir = std::fs::metadata(dir).is_ok_and(|m| m.is_dir());
        let secret = std::fs::metadata(dir.join(SECRET_FILE));
        if is_dir && secret.is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
            return Err(format!(
                "no object is named {}{}: it has no secret yet ({SECRET_FILE}, which a program \
                 using shmstore makes on the first use of a name there)",
                clean(name),
                self.place()
            )
            .into());
        }
        Ok(Key::named_in(dir, name)?)
    }

    /// Where names are found, for messages: "" or " in the private
    /// namespace DIR".
    fn place(&self) -> String {
        match &self.namespace {
            Some(dir) => format!(
                " in the private namespace {}",
                clean(&dir.display().to_string())
            ),
            None => String::new(),
        }
    }
}

/// What the attachment is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Reading: attached read-only.
    Read,
    /// Removing: attached read-write where this user may (so that the
    /// object's writers and waiters are told), else read-only.
    Remove,
}

/// The segment `arg` names, attached for `purpose`.
pub fn attach(arg: &str, lookup: &Lookup, purpose: Purpose) -> Result<Segment, Failure> {
    let read_only = purpose == Purpose::Read;
    let either = |open: &dyn Fn(bool) -> shmstore::Result<Segment>| match open(read_only) {
        Err(Error::PermissionDenied { .. }) if !read_only => open(true),
        other => other,
    };
    if let Some(hex) = arg.strip_prefix("0x").or_else(|| arg.strip_prefix("0X")) {
        let raw = u32::from_str_radix(hex, 16)
            .map_err(|e| format!("bad key {}: {e}", clean(arg)))? as i32;
        let key = Key::new(raw)?;
        return Ok(either(&|ro| {
            Segment::options()
                .read_only(ro)
                .allow_foreign_owner(true)
                .open(key)
        })?);
    }
    if !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_digit()) {
        let id: i32 = arg.parse().map_err(|e| format!("bad id {arg}: {e}"))?;
        return match either(&|ro| {
            Segment::options()
                .read_only(ro)
                .allow_foreign_owner(true)
                .attach_id(id)
        }) {
            Ok(seg) => Ok(seg),
            Err(Error::IdNotFound { .. }) => Err(no_such_id(id)),
            Err(e) => Err(e.into()),
        };
    }
    let key = lookup.key(arg)?;
    match either(&|ro| inspect::locate(key, &lookup.trust, ro)) {
        Ok(seg) => Ok(seg),
        Err(Error::NotFound { .. }) => Err(format!(
            "no object is named {}{} (`shmstore list` shows the names; ids are decimal, keys \
             0x...){}",
            clean(arg),
            lookup.place(),
            held_by(key)
        )
        .into()),
        Err(e @ (Error::ForeignOwner { .. } | Error::PermissionDenied { .. })) => {
            Err(format!("{}{}", clean(&e.to_string()), held_by(key)).into())
        }
        Err(e) => Err(e.into()),
    }
}

/// The id an id or a key argument names, without attaching; `None` for a
/// name.
pub fn id_of(arg: &str) -> Result<Option<i32>, Failure> {
    if let Some(hex) = arg.strip_prefix("0x").or_else(|| arg.strip_prefix("0X")) {
        let raw = u32::from_str_radix(hex, 16)
            .map_err(|e| format!("bad key {}: {e}", clean(arg)))? as i32;
        let key = Key::new(raw)?;
        let found = list_segments()?.into_iter().find(|s| s.key == key);
        return match found {
            Some(s) => Ok(Some(s.id)),
            None => Err(Error::NotFound { key }.into()),
        };
    }
    if !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_digit()) {
        let id: i32 = arg.parse().map_err(|e| format!("bad id {arg}: {e}"))?;
        if list_segments()?.iter().any(|s| s.id == id) {
            return Ok(Some(id));
        }
        return Err(no_such_id(id));
    }
    Ok(None)
}

/// The error for an id no segment has, pointing at a key written in
/// decimal if that is what it was.
fn no_such_id(id: i32) -> Failure {
    if let Ok(all) = list_segments()
        && let Some(s) = all.iter().find(|s| s.key.raw() == id)
    {
        return format!(
            "no segment has id {id}; the segment with key {} ({id} in decimal) has id {}: \
             give keys in hex with 0x",
            s.key, s.id
        )
        .into();
    }
    Error::IdNotFound { id }.into()
}

/// Who holds segments of the name of `key` at its keys, for an error that
/// lets the operator choose whom to trust.
fn held_by(key: Key) -> String {
    let Ok(found) = inspect::claimants(key) else {
        return String::new();
    };
    if found.is_empty() {
        return String::new();
    }
    let each: Vec<String> = found
        .iter()
        .map(|s| {
            format!(
                "segment {} at {:#010x}, owner uid {}, creator uid {}",
                s.id,
                s.key.raw() as u32,
                s.uid,
                s.cuid
            )
        })
        .collect();
    format!(
        "; segments holding the name: {} (trust one with --trust-user UID)",
        each.join("; ")
    )
}
