//! The life of an object, one protocol: creating it, reaching it by key or
//! by name, replacing it with one of another type, removing it, and
//! collecting it when nobody uses it.
//!
//! # What holds
//!
//! Whatever other processes do, and however long any of them pauses:
//!
//! 1. **One creator per segment.** A segment is made by `shmget` with
//!    `IPC_CREAT | IPC_EXCL`: exactly one process makes it; it writes its
//!    pid, start time and name, then the magic (release), then the header,
//!    the mutex and the first value, and publishes `READY` (release,
//!    `sync/ready.rs`). Openers read nothing but the magic, the state, the
//!    name and the creator before they see `READY` (acquire).
//! 2. **At most one object per name.** A name has [`NAME_PROBES`] keys
//!    (`Key::named`). An *object* of a name is a segment at one of its keys,
//!    trusted (owner and creator: this user, root, or as the options say),
//!    with shmstore's magic, that name, and `READY`. There are never two at
//!    once. (A segment of another user never counts, so another user can
//!    deny a name, by taking its keys, but never impersonate its object.)
//! 3. **A removal hits only what it judged.** Every removal (a creator's of
//!    its own failed segment, `open_or_replace`'s of an object of another
//!    type, `open_or_create`'s of a segment whose creator died, `remove()`,
//!    the command's `remove` and `gc`) calls `IPC_RMID` on the id of an
//!    attachment through which it judged the segment, before detaching it:
//!    an attached segment is not destroyed, so its id cannot name another
//!    segment meanwhile, however many are made and removed.
//! 4. **Replacement converges.** `open_or_replace` removes only an object
//!    it attached and found of another type; racing replacers of one type
//!    each remove the old object (the same one) and then create, and (2)
//!    leaves one new object, which the others open.
//! 5. **Removal is seen.** Writers and waiters learn a removal made through
//!    shmstore at their next step, and `gc` never removes an object someone
//!    opened (`removal.rs`).
//!
//! # Creating by name (why (2) holds)
//!
//! A creator of name `N`:
//!
//! 1. looks at every key of `N` (`look.rs`): an object of `N` there means
//!    `AlreadyExists`; claims whose creator died, and segments a creator of
//!    this size abandoned before writing anything, are removed (judged on
//!    the attachment);
//! 2. makes a segment (`IPC_EXCL`) at the first key that held nothing
//!    (`EEXIST`: back to 1), and *claims* it: identity and name, magic
//!    (release), then a sequentially consistent fence (`claim::claim`);
//! 3. looks at every other key again and applies the rule
//!    (`claim::decide`): an object of `N`, or a live claim of `N` at a lower
//!    key, and it yields (removes its own segment: `AlreadyExists`); a live
//!    claim of `N` at a higher key, and it waits for that one to be decided
//!    (up to `init_timeout`, then removes its own: `InitTimeout`); else it
//!    finishes and publishes `READY`.
//!
//! Suppose two creators `X` (key `a`) and `Y` (key `b`, `a < b`) both
//! published `READY`, and take the last look of each at the other's key
//! (after which each proceeded). One of three things held:
//!
//! - `Y` made its segment after `X` looked up key `b`. The kernel makes and
//!   looks up keys under one lock, so `X`'s claim, made before `X`'s look,
//!   happens before everything `Y` does after its `shmget`: `Y`'s look at
//!   key `a` (where `X`'s segment stays until after both are `READY`) sees
//!   `X`'s claim, at a lower key, or its object, and `Y` yields.
//! - `X` made its segment after `Y` looked up key `a`: symmetrically `X`
//!   sees `Y`'s claim or object; a claim at a higher key makes `X` wait
//!   until that claim is an object (then `X` yields) or gone.
//! - Both segments existed at both looks. Each stored its magic, then a
//!   sequentially consistent fence, then loaded the other's magic: of two
//!   such store-fence-load sequences at least one load sees the other's
//!   store (the fences are ordered; the later one's load sees the earlier
//!   one's store). So `Y` sees `X`'s claim and yields, or `X` sees `Y`'s
//!   and waits, as above.
//!
//! In every case one of them does not publish: a contradiction. A creator
//! that sees another's segment before its magic (a creator at its first
//! instructions) may ignore it: by the same fences that creator will see
//! this one's claim. A claim whose creator is dead (by pid and start time,
//! written before the magic) never becomes an object and is ignored (and
//! removed). No time decides anything: a creator paused for any time, at
//! any step, is still a creator, and what it makes others do is wait, up to
//! their `init_timeout`, and then fail with `InitTimeout` naming it.
//!
//! Opening by name looks at every key: the object of `N` is opened on the
//! attachment that showed it; while a live claim of `N` stands and no
//! object, the open waits for it (up to `init_timeout`).
//!
//! # Plain keys
//!
//! A plain key (`Key::new`, `Key::ftok`) holds at most one segment, by the
//! kernel. An open waits for its `READY` while its creator lives; a
//! segment whose creator died before `READY` is `CreatorDied`, and
//! `open_or_create` and `open_or_replace` remove it (on the attachment that
//! judged it) if it is what a creator of the same layout leaves: its size,
//! and a header all zero or carrying shmstore's magic.
//!
//! # Steps where a process may die or stop
//!
//! `create.before_shmget`, `create.after_shmget`, `create.after_claim`,
//! `create.after_scan`, `create.after_header`, `create.after_mutex`,
//! `create.after_value`, `replace.after_judge`, `remove.after_list`,
//! `remove.after_mark`, `remove.finish`, `gc.after_list`, `gc.after_judge`,
//! `gc.after_mark` (`src/crash.rs`);
//! `tests/life.rs` kills and stops a process at each and checks what holds.
//! `tests/loom_life.rs` models the claim rule and the collection.
//!
//! [`NAME_PROBES`]: crate::NAME_PROBES

use std::time::Instant;

use super::options::Common;
use super::{Memory, Store};
use crate::error::{Error, Result, Target};
use crate::format::{self, HEADER_SIZE, Layout, TypeDesc};
use crate::key::Key;
use crate::sync::atomic::Std;
use crate::sync::backoff::Backoff;
use crate::sync::ready;
use crate::sys::proc;
use crate::sys::shm::Segment;

pub mod claim;
pub(crate) mod creator;
pub(crate) mod look;
pub mod removal;

use look::Seen;

/// How many times an open-or-create, a replacement or a creation by name
/// goes round (create, find it taken, open, find it gone...) before it
/// gives up on other processes creating and removing the object meanwhile.
const ROUNDS: usize = 16;

/// What an open found at a key or a name.
enum Found {
    /// The object, validated and of the type asked for.
    Store(Store),
    /// No object.
    Nothing,
    /// A shmstore object of another type, format or platform, attached:
    /// what `open_or_replace` removes.
    Mismatch(Error, Segment),
    /// A segment whose creator died before `READY` (plain key), attached.
    Abandoned(Error, Segment),
}

impl Store {
    /// Create the object at `key` (exclusively), lay out the header for
    /// `ty` and `layout`, let `init` write the first value, and publish
    /// READY. A named key creates at a free key of its name, unless the
    /// object exists (`AlreadyExists`).
    pub fn create(
        key: Key,
        options: &Common,
        ty: &TypeDesc,
        layout: &Layout,
        init: impl FnMut(&Store) -> Result<()>,
    ) -> Result<Store> {
        match key.name() {
            Some(name) => Self::create_named(key, name, options, ty, layout, init),
            None => {
                let seg = Self::make(key, options, layout)?;
                Self::create_in(Memory::Segment(seg), None, options, ty, layout, init)
            }
        }
    }

    /// Make the segment at `key` exclusively, given to the options' group.
    fn make(key: Key, options: &Common, layout: &Layout) -> Result<Segment> {
        let seg = Segment::options()
            .size(layout.used_len)
            .create(true)
            .exclusive(true)
            .mode(options.mode)
            .open(key)?;
        crate::crash::point("create.after_shmget");
        if let Some(gid) = options.group
            && let Err(e) = seg.set_owner(proc::euid(), gid)
        {
            let _ = seg.remove();
            return Err(e);
        }
        Ok(seg)
    }

    /// Lay out a store in fresh zero-filled memory (under `name` if given),
    /// let `init` write the first value, and publish READY. On failure the
    /// memory is removed.
    pub fn create_in(
        memory: Memory,
        name: Option<&str>,
        options: &Common,
        ty: &TypeDesc,
        layout: &Layout,
        init: impl FnOnce(&Store) -> Result<()>,
    ) -> Result<Store> {
        let store = Self::claimed(memory, name, ty, layout)?;
        Self::finish(store, options, ty, layout, init)
    }

    /// The first steps of a creator on its fresh memory: checks, then the
    /// claim (identity, name, magic, and the fence after it).
    fn claimed(
        memory: Memory,
        name: Option<&str>,
        ty: &TypeDesc,
        layout: &Layout,
    ) -> Result<Store> {
        if ty.name.chars().any(char::is_control) {
            let _ = memory.remove();
            return Err(Error::InvalidName {
                name: ty.name.escape_debug().to_string(),
                reason: "a type name has no control character",
            });
        }
        if memory.len() < layout.used_len || memory.len() < HEADER_SIZE {
            let _ = memory.remove();
            return Err(Error::SizeMismatch {
                requested: layout.used_len.max(HEADER_SIZE),
                actual: memory.len(),
            });
        }
        let store = Self::unarmed(memory, ty.kind, *layout);
        let h = store.header();
        claim::claim::<Std>(&h.magic, &h.state, || {
            h.write_creator(proc::own_pid(), proc::own_start_time(), name)
        });
        crate::crash::point("create.after_claim");
        Ok(store)
    }

    /// The rest of a creation: header, mutex, first value, READY. On
    /// failure the memory is removed.
    fn finish(
        mut store: Store,
        options: &Common,
        ty: &TypeDesc,
        layout: &Layout,
        init: impl FnOnce(&Store) -> Result<()>,
    ) -> Result<Store> {
        let written = (|| {
            let h = store.header();
            h.write_fresh(ty, layout);
            if let Some(schema) = &ty.schema {
                format::write_schema(&store.memory.memory, ty.kind, schema)?;
            }
            crate::crash::point("create.after_header");
            // Nobody uses the mutex before READY.
            store.init_mutex().map_err(|source| Error::Lock {
                id: store.memory.id(),
                source,
            })?;
            crate::crash::point("create.after_mutex");
            init(&store)?;
            crate::crash::point("create.after_value");
            ready::publish::<Std>(&h.state);
            // A creator judged dead by mistake (a clock stepped while it
            // was at its first instructions, an operator's removal) finds
            // its segment removed: an object nobody can reach is no success.
            if let Ok(true) = store.memory.is_removed() {
                return Err(Error::Removed {
                    id: store.memory.id(),
                });
            }
            Ok(())
        })();
        match written {
            Ok(()) => {
                store.arm(options.remove_on_drop);
                Ok(store)
            }
            Err(e) => {
                let _ = store.memory.remove();
                Err(e)
            }
        }
    }

    /// Create the object named by `key`, unless it exists (see the module's
    /// comment: why at most one object of a name exists).
    fn create_named(
        key: Key,
        name: &str,
        options: &Common,
        ty: &TypeDesc,
        layout: &Layout,
        mut init: impl FnMut(&Store) -> Result<()>,
    ) -> Result<Store> {
        let deadline = Instant::now().checked_add(options.init_timeout);
        let keys: Vec<Key> = key.candidates().collect();
        let mut backoff = Backoff::new();
        for _ in 0..ROUNDS {
            let mut seen = Vec::with_capacity(keys.len());
            for &k in &keys {
                seen.push(look::look(k, name, options, true)?);
            }
            if seen.iter().any(|s| matches!(s, Seen::Object(_))) {
                return Err(Error::AlreadyExists { key });
            }
            if let Some(i) = seen.iter().position(blocks) {
                return Err(refusal(seen.swap_remove(i)));
            }
            if clear_abandoned(&seen, layout) {
                continue;
            }
            let Some(own) = seen.iter().position(|s| matches!(s, Seen::Nothing)) else {
                if let Some(pid) = live_claim(&seen) {
                    wait_or_time_out(&mut backoff, deadline, key, pid, options)?;
                    continue;
                }
                return Err(Error::NameTaken {
                    name: name.to_owned(),
                    keys: keys.iter().map(|k| k.raw()).collect(),
                    owners: seen.iter().map(Seen::owner).collect(),
                });
            };
            drop(seen);
            crate::crash::point("create.before_shmget");
            let seg = match Self::make(keys[own], options, layout) {
                Err(Error::AlreadyExists { .. }) => continue,
                other => other?,
            };
            let store = Self::claimed(Memory::Segment(seg), Some(name), ty, layout)?;
            match resolve(own, &keys, name, options, deadline) {
                Ok(claim::Decision::Proceed) => {
                    crate::crash::point("create.after_scan");
                    return Self::finish(store, options, ty, layout, &mut init);
                }
                Ok(_) => {
                    let _ = store.memory.remove();
                    return Err(Error::AlreadyExists { key });
                }
                Err(e) => {
                    let _ = store.memory.remove();
                    return Err(e);
                }
            }
        }
        Err(Error::Contended {
            key,
            op: "create the object of its name",
            rounds: ROUNDS,
        })
    }

    /// Open the existing object at `key`, wait until it is READY, validate
    /// it and check that it holds `ty`. A named key opens the object of its
    /// name, whichever of its keys holds it.
    pub fn open(key: Key, options: &Common, ty: &TypeDesc, read_only: bool) -> Result<Store> {
        match Self::find(key, options, ty, read_only)? {
            Found::Store(store) => Ok(store),
            Found::Nothing => Err(Error::NotFound { key }),
            Found::Mismatch(e, _) | Found::Abandoned(e, _) => Err(e),
        }
    }

    /// What `key` reaches.
    fn find(key: Key, options: &Common, ty: &TypeDesc, read_only: bool) -> Result<Found> {
        let deadline = Instant::now().checked_add(options.init_timeout);
        match key.name() {
            Some(name) => Self::find_named(key, name, options, ty, read_only, deadline),
            None => match look::attach_key(key, options, read_only)? {
                Some(seg) => Self::judge(seg, Target::Key(key), options, ty, deadline),
                None => Ok(Found::Nothing),
            },
        }
    }

    /// The object of the name of `key`: opened on the attachment that
    /// showed it (looked for again if it turns out to be going away).
    fn find_named(
        key: Key,
        name: &str,
        options: &Common,
        ty: &TypeDesc,
        read_only: bool,
        deadline: Option<Instant>,
    ) -> Result<Found> {
        let mut backoff = Backoff::new();
        loop {
            let Some(seg) = Self::locate_named(key, name, options, read_only, deadline)? else {
                return Ok(Found::Nothing);
            };
            let id = seg.id();
            match Self::judge(seg, Target::Key(key), options, ty, deadline)? {
                // Removed meanwhile: look again, while there is time.
                Found::Nothing if deadline.is_none_or(|d| Instant::now() < d) => {
                    backoff.snooze(deadline);
                }
                Found::Nothing => return Err(Error::Removed { id }),
                found => return Ok(found),
            }
        }
    }

    /// The segment of the object the named key `key` reaches, attached
    /// (`read_only` as asked) and not yet validated; `None` if there is
    /// none. While a live claim of the name stands and no object, it waits
    /// (up to the options' `init_timeout`). A segment of another user, or
    /// one this user may not attach, that holds the name is that refusal
    /// (`ForeignOwner`, `PermissionDenied`), so that the cause is named.
    pub fn locate(key: Key, options: &Common, read_only: bool) -> Result<Option<Segment>> {
        let name = key.name().ok_or_else(|| Error::InvalidOptions {
            reason: format!("{key} has no name"),
        })?;
        let deadline = Instant::now().checked_add(options.init_timeout);
        Self::locate_named(key, name, options, read_only, deadline)
    }

    fn locate_named(
        key: Key,
        name: &str,
        options: &Common,
        read_only: bool,
        deadline: Option<Instant>,
    ) -> Result<Option<Segment>> {
        let mut backoff = Backoff::new();
        loop {
            let mut claimant = None;
            let mut refused = None;
            for k in key.candidates() {
                match look::look(k, name, options, read_only)? {
                    Seen::Object(seg) => return Ok(Some(seg)),
                    Seen::Claim {
                        pid, alive: true, ..
                    } => claimant = claimant.or(Some(pid)),
                    Seen::Untrusted {
                        refusal,
                        claims: true,
                    }
                    | Seen::Denied {
                        refusal,
                        claims: true,
                    } => refused = refused.or(Some(refusal)),
                    _ => {}
                }
            }
            if let Some(pid) = claimant {
                wait_or_time_out(&mut backoff, deadline, key, pid, options)?;
                continue;
            }
            return match refused {
                Some(e) => Err(e),
                None => Ok(None),
            };
        }
    }

    /// Judge the segment attached at `target`: wait for its READY, check
    /// that it is not being removed or collected, validate it and check
    /// its type.
    fn judge(
        seg: Segment,
        target: Target,
        options: &Common,
        ty: &TypeDesc,
        deadline: Option<Instant>,
    ) -> Result<Found> {
        let memory = Memory::Segment(seg);
        let Some(h) = header_of(&memory) else {
            return Err(Error::NotShmstore {
                reason: format!(
                    "{} bytes, fewer than a shmstore header ({HEADER_SIZE})",
                    memory.len()
                ),
            });
        };
        if let Err(e) = creator::wait_ready(h, &memory, target, options.init_timeout) {
            return match (e, memory) {
                (e @ Error::CreatorDied { .. }, Memory::Segment(seg)) => {
                    Ok(Found::Abandoned(e, seg))
                }
                (e, _) => Err(e),
            };
        }
        let valid = format::validate(h, memory.len());
        if matches!(
            valid,
            Ok(_) | Err(Error::IncompatibleFormat { .. } | Error::AbiMismatch { .. })
        ) && !removal::admit(&memory, h, target, deadline)?
        {
            return Ok(Found::Nothing);
        }
        let checked = valid.and_then(|v| v.check_type(&memory, ty).map(|()| v));
        match (checked, memory) {
            (Ok(valid), memory) => {
                let mut store = Self::unarmed(memory, valid.kind, valid.layout);
                store.arm(options.remove_on_drop);
                Ok(Found::Store(store))
            }
            (
                Err(
                    e @ (Error::TypeMismatch { .. }
                    | Error::IncompatibleFormat { .. }
                    | Error::AbiMismatch { .. }),
                ),
                Memory::Segment(seg),
            ) => Ok(Found::Mismatch(e, seg)),
            (Err(e), _) => Err(e),
        }
    }

    /// Attach the segment with this id, wait until it is READY, validate it
    /// and check that it holds `ty`. A removed segment can be attached
    /// (if it was removed through shmstore, its writes return
    /// `Error::Removed`).
    pub fn attach_id(id: i32, options: &Common, ty: &TypeDesc, read_only: bool) -> Result<Store> {
        let seg = Segment::options()
            .read_only(read_only)
            .allow_foreign_owner(options.allow_foreign_owner)
            .trust_group_opt(options.trust_group)
            .trust_user_opt(options.trust_user)
            .attach_id(id)?;
        let mut store = Self::open_unarmed(Memory::Segment(seg), Target::Id(id), options, ty)?;
        // A collector judging it is waited out, as for an open by key (an
        // id reaches a removed object too: whether it is removed does not
        // matter here). Only a store this returns may remove the object
        // when dropped: one given up here leaves it alone.
        if let removal::Life::Collecting(_) = removal::read::<Std>(&store.header().life) {
            let deadline = Instant::now().checked_add(options.init_timeout);
            removal::admit(&store.memory, store.header(), Target::Id(id), deadline)?;
        }
        store.arm(options.remove_on_drop);
        Ok(store)
    }

    /// Wait until the memory is READY, validate it and check that it holds
    /// `ty`. The layout validated is the one kept. (No look at removal: an
    /// id reaches a removed object too.)
    pub fn open_in(
        memory: Memory,
        target: Target,
        options: &Common,
        ty: &TypeDesc,
    ) -> Result<Store> {
        let mut store = Self::open_unarmed(memory, target, options, ty)?;
        store.arm(options.remove_on_drop);
        Ok(store)
    }

    /// [`open_in`](Self::open_in), with `remove_on_drop` not yet armed.
    fn open_unarmed(
        memory: Memory,
        target: Target,
        options: &Common,
        ty: &TypeDesc,
    ) -> Result<Store> {
        let h = header_of(&memory).ok_or_else(|| Error::NotShmstore {
            reason: format!(
                "{} bytes, fewer than a shmstore header ({HEADER_SIZE})",
                memory.len()
            ),
        })?;
        creator::wait_ready(h, &memory, target, options.init_timeout)?;
        let valid = format::validate(h, memory.len())?;
        valid.check_type(&memory, ty)?;
        Ok(Self::unarmed(memory, valid.kind, valid.layout))
    }

    /// Open the object at `key`, or create it if there is none. Many
    /// processes may race: one creates, the others open.
    pub fn open_or_create(
        key: Key,
        options: &Common,
        ty: &TypeDesc,
        layout: &Layout,
        init: impl FnMut(&Store) -> Result<()>,
    ) -> Result<Store> {
        Self::open_creating(key, options, ty, layout, init, false)
    }

    /// Open the object at `key`, or create it; if the key reaches a
    /// shmstore object of another type, format or platform (a new release
    /// restarting), remove exactly that object (judged on this attachment)
    /// and create this one. Processes still attached to the old object keep
    /// reading its last value, and their writes and waits return
    /// `Error::Removed`: they open the key again. Another program's segment
    /// at the key is never removed.
    pub fn open_or_replace(
        key: Key,
        options: &Common,
        ty: &TypeDesc,
        layout: &Layout,
        init: impl FnMut(&Store) -> Result<()>,
    ) -> Result<Store> {
        Self::open_creating(key, options, ty, layout, init, true)
    }

    fn open_creating(
        key: Key,
        options: &Common,
        ty: &TypeDesc,
        layout: &Layout,
        mut init: impl FnMut(&Store) -> Result<()>,
        replace: bool,
    ) -> Result<Store> {
        if key.is_private() {
            return Self::create(key, options, ty, layout, init);
        }
        let mut last = None;
        for _ in 0..ROUNDS {
            match Self::find(key, options, ty, false)? {
                Found::Store(store) => return Ok(store),
                Found::Mismatch(e, seg) => {
                    if !replace {
                        return Err(e);
                    }
                    crate::crash::point("replace.after_judge");
                    let memory = Memory::Segment(seg);
                    if let Some(h) = header_of(&memory) {
                        removal::remove(&memory, h)?;
                    }
                    last = Some(e);
                }
                Found::Abandoned(e, seg) => {
                    // Nobody will ever finish it: if it is what a creator of
                    // this very layout leaves, remove it (this attachment
                    // judged it) and create it anew. Anything else may be
                    // another program's: leave it.
                    if !look::abandoned_like(&seg, layout.used_len) {
                        return Err(e);
                    }
                    let _ = seg.remove();
                    last = Some(e);
                }
                Found::Nothing => match Self::create(key, options, ty, layout, &mut init) {
                    Err(e @ (Error::AlreadyExists { .. } | Error::Removed { .. })) => {
                        last = Some(e)
                    }
                    other => return other,
                },
            }
        }
        Err(last.unwrap_or(Error::NotFound { key }))
    }

    /// Remove the object: mark it, `IPC_RMID` on this handle's attachment,
    /// wake every waiter (`removal.rs`).
    pub fn remove(&self) -> Result<()> {
        removal::remove(&self.memory, self.header())
    }
}

/// The header of the memory, if it can hold one.
fn header_of(memory: &Memory) -> Option<&format::Header> {
    format::header_of(memory).ok()
}

/// Decide a claim at key index `own` of `keys` (see the module's comment):
/// look at every other key until the rule says proceed or yield. A live
/// claim at a higher key is waited for, up to `deadline`.
fn resolve(
    own: usize,
    keys: &[Key],
    name: &str,
    options: &Common,
    deadline: Option<Instant>,
) -> Result<claim::Decision> {
    let mut backoff = Backoff::new();
    loop {
        let mut peers = Vec::with_capacity(keys.len());
        for (j, &k) in keys.iter().enumerate() {
            if j != own {
                let seen = look::look(k, name, options, true)?;
                if blocks(&seen) {
                    return Err(refusal(seen));
                }
                peers.push(seen.peer(j));
            }
        }
        match claim::decide(own, peers) {
            claim::Decision::Wait { pid } => {
                wait_or_time_out(&mut backoff, deadline, keys[0], pid, options)?
            }
            decided => return Ok(decided),
        }
    }
}

/// Whether what a key holds stops a creation of the name outright: a
/// segment of a trusted owner that this user may not look into (it may hold
/// the name), or another user's segment that holds the name (its users
/// count it as the name's object). Creating at another key would make a
/// second object of the name, as some processes see it.
fn blocks(seen: &Seen) -> bool {
    matches!(
        seen,
        Seen::Denied { .. } | Seen::Untrusted { claims: true, .. }
    )
}

/// The error a blocking look carries.
fn refusal(seen: Seen) -> Error {
    match seen {
        Seen::Denied { refusal, .. } | Seen::Untrusted { refusal, .. } => refusal,
        _ => Error::InvalidOptions {
            reason: "a look that does not block".into(),
        },
    }
}

/// Remove what the look found abandoned: claims of the name whose creator
/// died, and segments a creator of this layout left before writing
/// anything. Each is judged on its attachment and removed through it.
/// Returns whether anything was removed.
fn clear_abandoned(seen: &[Seen], layout: &Layout) -> bool {
    let mut cleared = false;
    for s in seen {
        let abandoned = match s {
            Seen::Claim {
                seg, alive: false, ..
            } => Some(seg),
            Seen::Fresh {
                seg, alive: false, ..
            } if look::abandoned_like(seg, layout.used_len) => Some(seg),
            _ => None,
        };
        if let Some(seg) = abandoned {
            cleared |= seg.remove().is_ok();
        }
    }
    cleared
}

/// The creator of a live claim the look found, if any.
fn live_claim(seen: &[Seen]) -> Option<i32> {
    seen.iter().find_map(|s| match s {
        Seen::Claim {
            pid, alive: true, ..
        } => Some(*pid),
        _ => None,
    })
}

/// Back off before looking again, or [`Error::InitTimeout`] naming the
/// creator waited for once `deadline` passed.
fn wait_or_time_out(
    backoff: &mut Backoff,
    deadline: Option<Instant>,
    key: Key,
    pid: i32,
    options: &Common,
) -> Result<()> {
    if deadline.is_some_and(|d| Instant::now() >= d) {
        return Err(Error::InitTimeout {
            target: Target::Key(key),
            creator: pid,
            waited: options.init_timeout,
        });
    }
    backoff.snooze(deadline);
    Ok(())
}
