//! What a key holds, seen through an attachment of it: nothing, another
//! user's or another program's segment, a creator at work, a claim of a
//! name, or an object. Every judgement is made on the attachment that is
//! then used (or removed), which keeps the id from naming another segment.

use std::sync::atomic::Ordering::{Acquire, Relaxed};

use super::claim;
use super::creator::{Creator, claimant_alive};
use crate::error::{Error, Result};
use crate::format::{
    self, HEADER_SIZE, Header, MAGIC, STATE_FRESH, STATE_INITIALIZING, STATE_READY,
};
use crate::key::Key;
use crate::store::options::Common;
use crate::sync::atomic::Std;
use crate::sys::shm::{Segment, SegmentInfo};

/// Attach the segment at `key` with the trust `options` give, `read_only`
/// as asked: `None` if there is none. (`SegmentOptions::open` checks that what it
/// attached is the segment at the key then.)
pub fn attach_key(key: Key, options: &Common, read_only: bool) -> Result<Option<Segment>> {
    match Segment::options()
        .read_only(read_only)
        .allow_foreign_owner(options.allow_foreign_owner)
        .trust_group_opt(options.trust_group)
        .trust_user_opt(options.trust_user)
        .open(key)
    {
        Ok(seg) => Ok(Some(seg)),
        Err(Error::NotFound { .. }) | Err(Error::IdNotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The header of an attached segment, if it can hold one.
pub fn header(seg: &Segment) -> Option<&Header> {
    format::header_of(seg).ok()
}

/// The region control block of an attached segment, if it can hold one
/// (whatever its header says).
pub fn region_control(seg: &Segment) -> Option<&crate::format::RegionControl> {
    format::region_control_of(seg)
}

/// What one key of a name holds.
pub enum Seen {
    /// No segment.
    Nothing,
    /// A segment whose owner or creator this process does not trust; the
    /// refusal, and whether it holds a claim of this name (looked at
    /// read-only, where its mode lets this user).
    Untrusted { refusal: Error, claims: bool },
    /// A segment this user may not attach as asked; the refusal, and
    /// whether it holds a claim of this name (looked at read-only, where it
    /// can be).
    Denied { refusal: Error, claims: bool },
    /// A segment of another name, a plain key's object, or bytes that are
    /// not shmstore's, with its owner.
    Other { uid: u32 },
    /// A segment whose magic is not written yet, attached: a creator at its
    /// first instructions if that creator lives.
    Fresh {
        seg: Segment,
        info: SegmentInfo,
        alive: bool,
    },
    /// A claim of this name that is not READY, attached: its creator, and
    /// whether that process lives.
    Claim { seg: Segment, pid: i32, alive: bool },
    /// The object of this name (READY), attached.
    Object(Segment),
}

impl Seen {
    /// The owner of what the key holds, for `Error::NameTaken`.
    pub fn owner(&self) -> Option<u32> {
        let info = |seg: &Segment| seg.info().ok().map(|i| i.uid);
        match self {
            Seen::Nothing => None,
            Seen::Untrusted { refusal, .. } | Seen::Denied { refusal, .. } => match refusal {
                Error::ForeignOwner { uid, .. } => Some(*uid),
                _ => None,
            },
            Seen::Other { uid } => Some(*uid),
            Seen::Fresh { info, .. } => Some(info.uid),
            Seen::Claim { seg, .. } | Seen::Object(seg) => info(seg),
        }
    }

    /// As the naming rule sees it (`claim::decide`) from another key of
    /// index `index`.
    pub fn peer(&self, index: usize) -> claim::Peer {
        match self {
            Seen::Object(_) => claim::Peer::Object,
            Seen::Claim {
                pid, alive: true, ..
            } => claim::Peer::Claim { index, pid: *pid },
            _ => claim::Peer::Other,
        }
    }
}

/// Look at key `key` for the name `name`, attaching it `read_only` as asked.
pub fn look(key: Key, name: &str, options: &Common, read_only: bool) -> Result<Seen> {
    let seg = match attach_key(key, options, read_only) {
        Ok(Some(seg)) => seg,
        Ok(None) => return Ok(Seen::Nothing),
        Err(refusal @ Error::ForeignOwner { .. }) => {
            let claims = peek(key, name);
            return Ok(Seen::Untrusted { refusal, claims });
        }
        Err(refusal @ Error::PermissionDenied { .. }) => {
            let claims = !read_only && peek(key, name);
            return Ok(Seen::Denied { refusal, claims });
        }
        Err(e) => return Err(e),
    };
    let info = seg.info()?;
    let Some(h) = header(&seg) else {
        return Ok(Seen::Other { uid: info.uid });
    };
    loop {
        let seen = claim::look::<Std, _>(&h.magic, &h.state, || {
            h.stored_name().is_some_and(|n| n == name.as_bytes())
        });
        match seen {
            Some((STATE_READY, true)) => return Ok(Seen::Object(seg)),
            Some((_, true)) => {
                let (pid, alive) = claimant_alive(h);
                // A creator can publish READY and exit between the load of
                // the state and the judgement that finds it dead.
                if !alive && h.state.load(Acquire) == STATE_READY {
                    continue;
                }
                return Ok(Seen::Claim { seg, pid, alive });
            }
            Some((_, false)) => return Ok(Seen::Other { uid: info.uid }),
            None => {}
        }
        // No magic: a creator at its first instructions (the state, which
        // it stores after the magic, may be seen first), or another
        // program's bytes.
        let magic = h.magic.load(Relaxed);
        let state = h.state.load(Relaxed);
        if magic != 0 || !matches!(state, STATE_FRESH | STATE_INITIALIZING | STATE_READY) {
            if magic == MAGIC {
                continue; // written meanwhile
            }
            return Ok(Seen::Other { uid: info.uid });
        }
        let alive = Creator::from_info(&info).alive(h);
        // A creator can write its magic, finish and exit between the loads
        // that saw no magic and the judgement that finds it dead.
        if !alive && h.magic.load(Acquire) == MAGIC {
            continue;
        }
        return Ok(Seen::Fresh { seg, info, alive });
    }
}

/// Whether the segment at `key`, attached read-only whoever owns it, holds
/// a claim of `name` (for the error that says who holds it). Nothing of it
/// is used but this answer.
fn peek(key: Key, name: &str) -> bool {
    let Ok(seg) = Segment::options()
        .read_only(true)
        .allow_foreign_owner(true)
        .open(key)
    else {
        return false;
    };
    header(&seg).is_some_and(|h| {
        claim::look::<Std, _>(&h.magic, &h.state, || {
            h.stored_name().is_some_and(|n| n == name.as_bytes())
        })
        .is_some_and(|(_, named)| named)
    })
}

/// Whether `seg`, whose creator died before READY, is what a shmstore
/// creator of `used_len` bytes leaves: that size, and a header that either
/// carries shmstore's magic or is still all zero (the creator died right
/// after `shmget`). A segment of another size or with other bytes in its
/// header may be another program's: it is left alone.
pub fn abandoned_like(seg: &Segment, used_len: usize) -> bool {
    let mut head = [0u8; HEADER_SIZE];
    if seg.len() != used_len || seg.read_at(0, &mut head).is_err() {
        return false;
    }
    head[..8] == MAGIC.to_le_bytes() || head.iter().all(|&b| b == 0)
}
