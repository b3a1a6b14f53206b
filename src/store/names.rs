//! Objects reached by name (`Key::named`): which key of the name's sequence
//! holds the object.
//!
//! A named object's creator writes the name (with its pid and start time)
//! before the magic, which it stores with release ordering; so whoever
//! attaches a segment and sees the magic (acquire) reads the name it was
//! created under, and that name never changes. A segment whose magic is not
//! there yet is a creator at its first instructions: it is waited for
//! (bounded by the open's timeout) while its creator lives.
//!
//! - **Open**: try the keys of the sequence in order; skip a key that holds
//!   nothing, an object of another name, a plain key's object or another
//!   program's segment; open the first that holds this name, on the same
//!   attachment that showed the name (so nothing can replace it between the
//!   check and the open).
//! - **Create**: if a key of the sequence holds this name already, the
//!   object exists; else create at the first key that holds nothing (a
//!   racing creator of the same name that gets there first makes this one
//!   find it: `AlreadyExists`). A key that holds another name is skipped,
//!   so two names whose keys collide never share an object. A segment left
//!   by a creator that died before it wrote anything is removed if it has
//!   the size this creator would make, as for a plain key.
//!
//! The sequence has `NAME_PROBES` keys; a name all of whose keys are taken
//! is `Error::NameTaken`.

use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::time::Instant;

use super::memory::Creator;
use super::options::Common;
use super::{Memory, Store};
use crate::error::{Error, Result, Target};
use crate::format::{
    self, Header, Layout, MAGIC, STATE_FRESH, STATE_INITIALIZING, STATE_READY, TypeDesc,
};
use crate::key::Key;
use crate::sync::backoff::Backoff;
use crate::sys::shm::Segment;

/// How long after a segment is made its creator may still not have written
/// its first words (the kernel's clock counts whole seconds).
const CREATOR_WINDOW: std::time::Duration = std::time::Duration::from_secs(2);

/// What a key of a name's sequence holds, for that name.
enum Holds {
    /// Nothing: no segment at the key.
    Nothing,
    /// The object of this name, attached.
    This(Segment),
    /// A segment of another name, a plain key's object, another program's
    /// segment, or one this user may not open.
    Other,
    /// A segment whose creator died before writing anything, with its id.
    Abandoned(i32),
}

/// Attach the segment at `k` (`read_only` as asked) and say whether it
/// holds the object named `name`.
fn holds(k: Key, name: &str, options: &Common, read_only: bool) -> Result<Holds> {
    let seg = match Segment::options()
        .read_only(read_only)
        .allow_foreign_owner(options.allow_foreign_owner)
        .trust_group_opt(options.trust_group)
        .open(k)
    {
        Ok(seg) => seg,
        Err(Error::NotFound { .. }) | Err(Error::IdNotFound { .. }) => return Ok(Holds::Nothing),
        Err(Error::ForeignOwner { .. }) | Err(Error::PermissionDenied { .. }) => {
            return Ok(Holds::Other);
        }
        Err(e) => return Err(e),
    };
    // SAFETY: the pointer and length are the attachment's, which `seg`
    // keeps mapped while the header is used here.
    let Ok(h) = (unsafe { format::header_at(seg.as_ptr(), seg.len()) }) else {
        return Ok(Holds::Other);
    };
    let deadline = Instant::now().checked_add(options.init_timeout);
    let mut backoff = Backoff::new();
    loop {
        let mut creator = None;
        let seen = look(h, name, || {
            let c = Creator::of(&seg)?;
            let alive = c.alive(h);
            creator = Some(c);
            Ok(alive)
        })?;
        let creator = match seen {
            Look::Named(true) => return Ok(Holds::This(seg)),
            Look::Named(false) | Look::Foreign => return Ok(Holds::Other),
            Look::Abandoned => return Ok(Holds::Abandoned(seg.id())),
            Look::Again => continue,
            Look::Creating => creator,
        };
        // A creator writes within microseconds of making the segment: one
        // made seconds ago is not being created.
        let settled = creator
            .as_ref()
            .and_then(|c| c.created)
            .and_then(|t| t.checked_add(CREATOR_WINDOW))
            .is_none_or(|t| t < std::time::SystemTime::now());
        if settled {
            // Unless the creator wrote its first words since the look.
            if h.magic.load(Acquire) == MAGIC {
                continue;
            }
            return Ok(Holds::Other);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Error::InitTimeout {
                target: Target::Key(k),
                creator: creator.map_or(0, |c| c.pid),
                waited: options.init_timeout,
            });
        }
        backoff.snooze(deadline);
    }
}

/// What one look at a header shows, for a name.
#[derive(Debug, PartialEq, Eq)]
enum Look {
    /// shmstore's object, of this name (`true`) or not.
    Named(bool),
    /// Bytes that are not a shmstore creator's.
    Foreign,
    /// Not a word written yet, and the creator lives.
    Creating,
    /// Not a word written yet, and the creator is dead.
    Abandoned,
    /// The creator wrote its first words meanwhile: look again.
    Again,
}

/// Look at a header once: the magic (acquire, so that the name written
/// before it is seen), else whether a creator may be at work, judged by
/// `creator_alive`.
///
/// A creator stores the magic, then `state = INITIALIZING` (relaxed): a
/// look may see that state before the magic, or the magic may appear
/// between two loads; with no magic seen, a state of INITIALIZING or READY
/// is a creator at work too (it is judged like one at its first words). A
/// creator can also write its first words, finish and exit between the
/// loads that saw none and the judgement that finds it dead: after that
/// judgement the magic is looked at again, and only a header still all
/// zero there is abandoned.
fn look(h: &Header, name: &str, creator_alive: impl FnOnce() -> Result<bool>) -> Result<Look> {
    let magic = h.magic.load(Acquire);
    if magic == MAGIC {
        // The name was written before the magic (release).
        return Ok(Look::Named(
            h.stored_name()
                .is_some_and(|stored| stored == name.as_bytes()),
        ));
    }
    let state = h.state.load(Relaxed);
    if magic != 0 || !matches!(state, STATE_FRESH | STATE_INITIALIZING | STATE_READY) {
        return Ok(Look::Foreign);
    }
    if creator_alive()? {
        return Ok(Look::Creating);
    }
    if h.magic.load(Acquire) == MAGIC {
        return Ok(Look::Again);
    }
    Ok(
        if state == STATE_FRESH && h.state.load(Relaxed) == STATE_FRESH {
            Look::Abandoned
        } else {
            Look::Foreign
        },
    )
}

impl Store {
    /// Open the object named by `key` (a named key): the first key of its
    /// sequence that holds it.
    pub(super) fn open_named(
        key: Key,
        name: &str,
        options: &Common,
        ty: &TypeDesc,
        read_only: bool,
    ) -> Result<Store> {
        for k in key.candidates() {
            if let Holds::This(seg) = holds(k, name, options, read_only)? {
                return Self::open_in(Memory::Segment(seg), Target::Key(key), options, ty);
            }
        }
        Err(Error::NotFound { key })
    }

    /// The id of the object named by `key`, if a key of its sequence holds
    /// it.
    pub(super) fn named_object_at(key: Key, name: &str, options: &Common) -> Result<Option<i32>> {
        for k in key.candidates() {
            if let Holds::This(seg) = holds(k, name, options, true)? {
                return Ok(Some(seg.id()));
            }
        }
        Ok(None)
    }

    /// Create the object named by `key` at the first free key of its
    /// sequence, unless it exists.
    pub(super) fn create_named(
        key: Key,
        name: &str,
        options: &Common,
        ty: &TypeDesc,
        layout: &Layout,
        mut init: impl FnMut(&Store) -> Result<()>,
    ) -> Result<Store> {
        for k in key.candidates() {
            if let Holds::This(_) = holds(k, name, options, true)? {
                return Err(Error::AlreadyExists { key });
            }
        }
        for k in key.candidates() {
            for _ in 0..2 {
                match Self::create_at(k, Some(name), options, ty, layout, &mut init) {
                    Err(Error::AlreadyExists { .. }) => {}
                    other => return other,
                }
                match holds(k, name, options, true)? {
                    Holds::This(_) => return Err(Error::AlreadyExists { key }),
                    Holds::Abandoned(id) if super::create::abandoned_like(id, options, layout) => {
                        let _ = Segment::remove_by_id(id);
                    }
                    // Removed meanwhile: try this key again.
                    Holds::Nothing => {}
                    _ => break,
                }
            }
        }
        Err(Error::NameTaken {
            name: name.to_owned(),
            keys: key.candidates().map(Key::raw).collect(),
        })
    }
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;
    use crate::format::header_at;

    #[repr(C, align(64))]
    struct Image([u8; 512]);

    /// A zero-filled header in private memory, as the kernel makes it.
    fn zeroed() -> Box<Image> {
        Box::new(Image([0; 512]))
    }

    fn header(img: &mut Image) -> &Header {
        // SAFETY: 512 bytes aligned to 64, borrowed mutably for as long as
        // the header is used, and reached only through it.
        unsafe { header_at((img as *mut Image).cast(), 512) }.unwrap()
    }

    #[test]
    fn a_creator_that_finished_and_exited_while_judged_is_not_abandoned() {
        let mut img = zeroed();
        let h = header(&mut img);
        // The creator writes its first words, completes and exits between
        // the look that saw none and the liveness check that finds it dead.
        let seen = look(h, "acme/config", || {
            h.write_creator(4242, 1, Some("acme/config"));
            Ok(false)
        })
        .unwrap();
        assert_eq!(seen, Look::Again);
        assert_eq!(
            look(h, "acme/config", || Ok(false)).unwrap(),
            Look::Named(true)
        );
    }

    #[test]
    fn a_creator_whose_state_is_seen_before_its_magic_is_still_creating() {
        // The creator stores the magic, then `state = INITIALIZING`
        // (relaxed): a look may see the state first, or see the magic
        // appear between its two loads. Neither is another program's.
        let mut img = zeroed();
        let h = header(&mut img);
        h.state.store(STATE_INITIALIZING, Relaxed);
        assert_eq!(look(h, "a", || Ok(true)).unwrap(), Look::Creating);
        let seen = look(h, "a", || {
            h.write_creator(4242, 1, Some("a"));
            Ok(false)
        })
        .unwrap();
        assert_eq!(seen, Look::Again);
        assert_eq!(look(h, "a", || Ok(false)).unwrap(), Look::Named(true));
    }

    #[test]
    fn looks_at_a_header() {
        let mut img = zeroed();
        let h = header(&mut img);
        assert_eq!(look(h, "a", || Ok(true)).unwrap(), Look::Creating);
        assert_eq!(look(h, "a", || Ok(false)).unwrap(), Look::Abandoned);
        h.write_creator(4242, 1, Some("b"));
        assert_eq!(look(h, "a", || Ok(false)).unwrap(), Look::Named(false));
        let mut other = zeroed();
        let h = header(&mut other);
        h.state.store(7, Relaxed);
        assert_eq!(look(h, "a", || Ok(false)).unwrap(), Look::Foreign);
    }
}
