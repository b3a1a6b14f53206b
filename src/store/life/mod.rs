//! Creating and opening an object, and the race between creators and
//! openers.
//!
//! The kernel zero-fills a new segment. Exactly one process creates it
//! (`IPC_CREAT|IPC_EXCL`), writes its pid, start time and the magic first,
//! then the rest of the header, initialises the mutex and writes the first
//! value, and publishes `READY` (`sync/ready.rs`). Openers read nothing but
//! `magic` and `state` before `READY`. They wait for it with a bounded
//! timeout; a creator that died before it is told apart from a live one by
//! pid and start time (or, before it wrote them, by start before the
//! segment's creation and by user: `sys::proc::may_be_creator`), never by
//! pid alone, so a process that took over a dead creator's pid does not
//! block recovery: `open_or_create` removes such a segment (by id, and only
//! if it has the size and header a creator of the same layout leaves) and
//! creates it anew. A creator that fails removes what it created; removal
//! on drop is armed only once an open or create has succeeded, and only for
//! the process that armed it.
#![allow(unsafe_code)]

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::options::Common;
use super::{Memory, Store};
use crate::error::{Error, Result, Target};
use crate::format::{
    self, HEADER_SIZE, Header, Layout, MAGIC, STATE_FRESH, STATE_INITIALIZING, STATE_READY,
    TypeDesc,
};
use crate::key::Key;
use crate::sync::atomic::Std;
use crate::sync::backoff::Backoff;
use crate::sync::ready;
use crate::sys::shm::Segment;
use crate::sys::{mutex, proc};

impl Store {
    /// Create the object at `key` (exclusively), lay out the header for
    /// `ty` and `layout`, let `init` write the first value, and publish
    /// READY. A named key creates at the first free key of its name's
    /// sequence (`names.rs`).
    pub fn create(
        key: Key,
        options: &Common,
        ty: &TypeDesc,
        layout: &Layout,
        init: impl FnMut(&Store) -> Result<()>,
    ) -> Result<Store> {
        match key.name() {
            Some(name) => Self::create_named(key, name, options, ty, layout, init),
            None => Self::create_at(key, None, options, ty, layout, init),
        }
    }

    /// Create the segment at `key` exclusively, under `name` if given.
    pub(super) fn create_at(
        key: Key,
        name: Option<&str>,
        options: &Common,
        ty: &TypeDesc,
        layout: &Layout,
        init: impl FnOnce(&Store) -> Result<()>,
    ) -> Result<Store> {
        let seg = Segment::options()
            .size(layout.used_len)
            .create(true)
            .exclusive(true)
            .mode(options.mode)
            .open(key)?;
        crate::crash::point("create.after_shmget");
        if let Some(gid) = options.group {
            // SAFETY: geteuid has no preconditions and cannot fail.
            let euid = unsafe { libc::geteuid() };
            if let Err(e) = seg.set_owner(euid, gid) {
                let _ = seg.remove();
                return Err(e);
            }
        }
        Self::create_in(Memory::Segment(seg), name, options, ty, layout, init)
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
        let mut store = Self::unarmed(memory, ty.kind, *layout);
        let written = (|| {
            let h = store.header();
            h.write_creator(proc::own_pid(), proc::own_start_time(), name);
            ready::begin::<Std>(&h.state);
            h.write_fresh(ty, layout);
            crate::crash::point("create.after_header");
            // SAFETY: the mutex room is writable, aligned to 64 and large
            // enough (asserted in format/header.rs); nobody uses it before READY.
            unsafe { mutex::init(h.mutex.0.get().cast()) }.map_err(|source| Error::Lock {
                id: store.memory.id(),
                source,
            })?;
            crate::crash::point("create.after_mutex");
            init(&store)?;
            crate::crash::point("create.after_value");
            ready::publish::<Std>(&h.state);
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

    /// Open the existing object at `key`, wait until it is READY, validate
    /// it and check that it holds `ty`. A named key opens the key of its
    /// name's sequence that holds an object of that name (`names.rs`).
    pub fn open(key: Key, options: &Common, ty: &TypeDesc, read_only: bool) -> Result<Store> {
        if let Some(name) = key.name() {
            return Self::open_named(key, name, options, ty, read_only);
        }
        let seg = Segment::options()
            .read_only(read_only)
            .allow_foreign_owner(options.allow_foreign_owner)
            .trust_group_opt(options.trust_group)
            .open(key)?;
        Self::open_in(Memory::Segment(seg), Target::Key(key), options, ty)
    }

    /// Attach the segment with this id, wait until it is READY, validate it
    /// and check that it holds `ty`.
    pub fn attach_id(id: i32, options: &Common, ty: &TypeDesc, read_only: bool) -> Result<Store> {
        let seg = Segment::options()
            .read_only(read_only)
            .allow_foreign_owner(options.allow_foreign_owner)
            .trust_group_opt(options.trust_group)
            .attach_id(id)?;
        Self::open_in(Memory::Segment(seg), Target::Id(id), options, ty)
    }

    /// Wait until the memory is READY, validate it and check that it holds
    /// `ty`. The layout validated is the one kept.
    pub fn open_in(
        memory: Memory,
        target: Target,
        options: &Common,
        ty: &TypeDesc,
    ) -> Result<Store> {
        // SAFETY: the pointer and length describe the backing memory (a
        // mapping or a heap image, reached through a mutable pointer), which
        // lives as long as `memory`, and so as long as the header is used
        // here.
        let header = unsafe { format::header_at(memory.as_ptr(), memory.len()) }?;
        wait_ready(header, &memory, target, options.init_timeout)?;
        let valid = format::validate(header, memory.len())?;
        valid.check_type(header, ty)?;
        let mut store = Self::unarmed(memory, valid.kind, valid.layout);
        store.arm(options.remove_on_drop);
        Ok(store)
    }

    /// Open the segment at `key`, or create it if there is none. Many
    /// processes may race: one creates, the others open.
    pub fn open_or_create(
        key: Key,
        options: &Common,
        ty: &TypeDesc,
        layout: &Layout,
        mut init: impl FnMut(&Store) -> Result<()>,
    ) -> Result<Store> {
        if key.is_private() {
            return Self::create(key, options, ty, layout, init);
        }
        let mut last = None;
        for _ in 0..16 {
            match Self::create(key, options, ty, layout, &mut init) {
                Err(Error::AlreadyExists { .. }) => {}
                other => return other,
            }
            match Self::open(key, options, ty, false) {
                // Removed between our create and open: try again.
                Err(e @ Error::NotFound { .. }) => last = Some(e),
                // Nobody will ever finish it: if it is what a creator of
                // this very layout leaves, remove it (by id, so a new
                // segment at the key is never hit) and create it anew.
                // Anything else may be another program's: leave it.
                Err(e @ Error::CreatorDied { id, .. }) => {
                    if !abandoned_like(id, options, layout) {
                        return Err(e);
                    }
                    let _ = Segment::remove_by_id(id);
                    last = Some(e);
                }
                other => return other,
            }
        }
        Err(last.unwrap_or(Error::NotFound { key }))
    }

    /// Open the object at `key`, or create it; if the key reaches a
    /// shmstore object of another type, format or platform (a new release
    /// restarting), remove that one and create this one. Processes still
    /// attached to the old object keep reading its last value, and their
    /// waits return `Error::Removed`: they open the key again. Another
    /// program's segment at the key is never removed.
    pub fn open_or_replace(
        key: Key,
        options: &Common,
        ty: &TypeDesc,
        layout: &Layout,
        mut init: impl FnMut(&Store) -> Result<()>,
    ) -> Result<Store> {
        let mut last = None;
        for _ in 0..4 {
            match Self::open_or_create(key, options, ty, layout, &mut init) {
                Err(
                    e @ (Error::TypeMismatch { .. }
                    | Error::IncompatibleFormat { .. }
                    | Error::AbiMismatch { .. }),
                ) => {
                    // (Gone meanwhile: nothing to remove.)
                    if let Some(id) = Self::object_at(key, options)? {
                        Segment::remove_by_id(id)?;
                    }
                    last = Some(e);
                }
                other => return other,
            }
        }
        Err(last.unwrap_or(Error::NotFound { key }))
    }

    /// The id of the shmstore object `key` reaches (by its name's sequence
    /// for a named key), if any.
    fn object_at(key: Key, options: &Common) -> Result<Option<i32>> {
        if let Some(name) = key.name() {
            return Self::named_object_at(key, name, options);
        }
        let seg = match Segment::options()
            .read_only(true)
            .allow_foreign_owner(options.allow_foreign_owner)
            .trust_group_opt(options.trust_group)
            .open(key)
        {
            Ok(seg) => seg,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut magic = [0u8; 8];
        seg.read_at(0, &mut magic)?;
        Ok((magic == MAGIC.to_le_bytes()).then(|| seg.id()))
    }
}

/// Whether segment `id`, whose creator died before READY, is what a
/// shmstore creator of `layout` leaves: its size, and a header that either
/// carries shmstore's magic or is still all zeros (the creator died right
/// after `shmget`). A segment of another size or with other bytes in its
/// header is left alone.
pub(super) fn abandoned_like(id: i32, options: &Common, layout: &Layout) -> bool {
    let Ok(seg) = Segment::options()
        .read_only(true)
        .allow_foreign_owner(options.allow_foreign_owner)
        .trust_group_opt(options.trust_group)
        .attach_id(id)
    else {
        return false;
    };
    let mut head = [0u8; HEADER_SIZE];
    if seg.len() != layout.used_len || seg.read_at(0, &mut head).is_err() {
        return false;
    }
    head[..8] == MAGIC.to_le_bytes() || head.iter().all(|&b| b == 0)
}

/// Wait until the header's state is READY, or find out it never will be.
fn wait_ready(h: &Header, memory: &Memory, target: Target, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    let deadline = start.checked_add(timeout);
    let mut backoff = Backoff::new();
    loop {
        let state = ready::state::<Std>(&h.state);
        let magic = h.magic.load(Ordering::Relaxed);
        if state == STATE_READY {
            return Ok(());
        }
        let initialising =
            matches!(state, STATE_FRESH | STATE_INITIALIZING) && (magic == 0 || magic == MAGIC);
        if !initialising {
            // Not a segment being made by shmstore: let validation say why.
            return Ok(());
        }
        let creator = memory.creator()?;
        if !creator.alive(h) && ready::state::<Std>(&h.state) != STATE_READY {
            return Err(Error::CreatorDied {
                target,
                id: memory.id(),
                creator: creator.pid,
            });
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(Error::InitTimeout {
                target,
                creator: creator.pid,
                waited,
            });
        }
        backoff.snooze(deadline);
    }
}
