//! The one error type of the crate.
//!
//! Every variant says what happened, to which key or id, and what to do about
//! it. Variants that come from a failed system call keep the `io::Error` as
//! their [`source`](std::error::Error::source).

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::key::Key;

/// The result type of every fallible operation in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A segment: one found by key, or one named by id. What an open reaches
/// (`opener().open(target)`; a [`Key`] converts into one) and what an error
/// is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A segment looked up by key (`shmget`).
    Key(Key),
    /// A segment named by its kernel id (`shmat`/`shmctl` on an id).
    Id(i32),
}

impl From<Key> for Target {
    fn from(key: Key) -> Target {
        Target::Key(key)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Key(k) => write!(f, "key {k}"),
            Target::Id(id) => write!(f, "id {id}"),
        }
    }
}

/// A System V shared-memory limit the kernel enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `/proc/sys/kernel/shmmax`: the largest size of one segment.
    Shmmax,
    /// `/proc/sys/kernel/shmall`: the total pages of all segments.
    Shmall,
    /// `/proc/sys/kernel/shmmni`: the number of segments system-wide.
    Shmmni,
    /// The kernel could not allocate memory for a new segment (`shmget`
    /// failed with `ENOMEM`), most often because the segment needs more
    /// memory than the system can commit.
    Memory,
}

impl Limit {
    /// The file under `/proc` that sets this limit, if there is one.
    pub fn proc_path(self) -> Option<&'static str> {
        match self {
            Limit::Shmmax => Some("/proc/sys/kernel/shmmax"),
            Limit::Shmall => Some("/proc/sys/kernel/shmall"),
            Limit::Shmmni => Some("/proc/sys/kernel/shmmni"),
            Limit::Memory => None,
        }
    }
}

/// Everything that can go wrong in shmstore.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A raw key value that cannot name a segment (0 is `IPC_PRIVATE`).
    InvalidKey {
        /// The value given.
        raw: i32,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A name that cannot name an object.
    InvalidName {
        /// The name given, escaped.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// No key of a name's sequence is free for a new object: each holds an
    /// object of another name, another program's segment, or a segment
    /// another user made there (names made by keys are a namespace every
    /// local user shares: see `Key::named`).
    NameTaken {
        /// The name.
        name: String,
        /// The keys tried, in order.
        keys: Vec<i32>,
        /// The owner (uid) of the segment at each key, in the same order
        /// (`None` where the segment went away meanwhile).
        owners: Vec<Option<u32>>,
    },
    /// The directory of a private namespace (`Key::named_in`) cannot be
    /// used: it or its secret could be read or replaced by other users, or
    /// it cannot be read.
    Namespace {
        /// The directory.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// `ftok` could not use the path (it must exist and be accessible).
    KeyPath {
        /// The path given to `ftok`.
        path: PathBuf,
        /// The error from `stat`.
        source: io::Error,
    },
    /// An exclusive create found a segment at the key already.
    AlreadyExists {
        /// The key that is taken.
        key: Key,
    },
    /// No segment exists at the key (and creation was not asked for).
    NotFound {
        /// The key looked up.
        key: Key,
    },
    /// No segment has this id (never existed, or removed and detached by all).
    IdNotFound {
        /// The id looked up.
        id: i32,
    },
    /// The caller lacks the permission for the operation (`EACCES`/`EPERM`).
    PermissionDenied {
        /// The segment concerned.
        target: Target,
        /// The operation refused (`"shmget"`, `"shmat"`, `"IPC_SET"`, ...).
        op: &'static str,
        /// The error from the kernel.
        source: io::Error,
    },
    /// The segment is owned or was created by another user, which could be a
    /// squatter that pre-created it at a guessable key.
    ForeignOwner {
        /// The segment concerned.
        target: Target,
        /// Its owner's uid.
        uid: u32,
        /// Its creator's uid.
        cuid: u32,
        /// Its group.
        gid: u32,
        /// The caller's effective uid.
        euid: u32,
    },
    /// The existing segment is smaller than the size asked for.
    SizeMismatch {
        /// The size asked for.
        requested: usize,
        /// The segment's real size.
        actual: usize,
    },
    /// A size of 0 was given where a segment is to be created.
    ZeroSize {
        /// The key the create was for.
        key: Key,
    },
    /// Huge pages were requested, but the system has none to give.
    NoHugePages {
        /// The error from the kernel.
        source: io::Error,
    },
    /// A kernel limit on System V shared memory was hit.
    LimitReached {
        /// Which limit.
        limit: Limit,
        /// The error from the kernel (`ENOSPC`, `ENOMEM` or `EINVAL`).
        source: io::Error,
    },
    /// `shmat` could not map the segment into this process's address space
    /// (`ENOMEM`): the process's address-space limit (`RLIMIT_AS`, `ulimit
    /// -v`) or its number of mappings (`vm.max_map_count`) was reached, or no
    /// free range of addresses is large enough. The kernel had the segment;
    /// if this call created it, it was removed again. Raise the limit, or use
    /// a smaller segment.
    MapFailed {
        /// The segment concerned.
        target: Target,
        /// The segment's size in bytes.
        size: usize,
        /// The error from the kernel.
        source: io::Error,
    },
    /// A write was attempted through a read-only attachment.
    ReadOnly {
        /// The segment concerned.
        id: i32,
    },
    /// An offset/length pair lies outside the segment.
    OutOfBounds {
        /// The first byte asked for.
        offset: usize,
        /// The number of bytes asked for.
        len: usize,
        /// The segment's size.
        size: usize,
    },
    /// The segment at the key is not a shmstore segment (wrong magic, or
    /// too small for a header): some other program's, most likely.
    NotShmstore {
        /// What was found.
        reason: String,
    },
    /// The segment was written by a shmstore with another on-segment format.
    IncompatibleFormat {
        /// The format version in the segment.
        found: u32,
        /// The one this build reads.
        supported: u32,
    },
    /// The segment was made on another platform (architecture, pointer
    /// width, C library or mutex size differ).
    AbiMismatch {
        /// The platform the segment was made on.
        stored: String,
        /// This build's platform.
        ours: String,
    },
    /// The segment holds another type (or kind, or schema version) than the
    /// one asked for.
    TypeMismatch {
        /// What the segment holds.
        stored: String,
        /// What was asked for.
        requested: String,
        /// When both sides have a schema: what differs, field by field
        /// (`field `limits.max_conn`: u32 is now f32`).
        differences: Vec<String>,
    },
    /// The segment's bytes are inconsistent: a buggy peer wrote over them,
    /// or they were truncated.
    Corrupt {
        /// What is wrong.
        reason: String,
    },
    /// Options that contradict each other or the call they are given to.
    InvalidOptions {
        /// Which, and why.
        reason: String,
    },
    /// A value or layout that cannot be stored.
    InvalidLayout {
        /// Why.
        reason: String,
    },
    /// The segment's creator did not finish initialising it in time.
    InitTimeout {
        /// The segment concerned.
        target: Target,
        /// The creator's pid: the kernel's `shm_cpid`, or the pid the
        /// header of a live claim of the name gives.
        creator: i32,
        /// How long this process waited.
        waited: std::time::Duration,
    },
    /// The object is being removed, or judged by `shmstore gc`, by a
    /// process that has not finished (it may be paused).
    Busy {
        /// The object concerned.
        target: Target,
        /// The process removing or collecting it.
        pid: i32,
        /// Being removed (`true`), or judged for collection.
        removing: bool,
        /// How long this process waited.
        waited: std::time::Duration,
    },
    /// The segment's creator died before it finished initialising it.
    CreatorDied {
        /// The segment concerned.
        target: Target,
        /// Its id, for removing it.
        id: i32,
        /// The dead creator's pid.
        creator: i32,
    },
    /// The write lock cannot be used: it is not recoverable or this thread
    /// already holds it.
    Lock {
        /// The segment concerned.
        id: i32,
        /// What `pthread_mutex_lock` said.
        source: io::Error,
    },
    /// A value's archive does not fit in a region's buffer.
    CapacityExceeded {
        /// The archive's size, when it could be measured.
        needed: Option<usize>,
        /// The bytes a buffer holds.
        capacity: usize,
    },
    /// Every buffer a writer could use is pinned by a live reader.
    ReadersBusy {
        /// The processes holding pins.
        pids: Vec<i32>,
        /// How long the writer waited.
        waited: std::time::Duration,
    },
    /// Every reader pin slot of a region is in use.
    PinsExhausted {
        /// The number of slots.
        slots: usize,
    },
    /// Nothing has been published in the region yet.
    NothingPublished,
    /// A validated archive that the type's own `Deserialize` refused
    /// (`RegionRef::deserialize`); read it in place instead.
    Deserialize {
        /// What the type's deserialiser said.
        reason: String,
    },
    /// The object was removed (`IPC_RMID`): the handle still reads its last
    /// value, but no process will write it again.
    Removed {
        /// The removed segment's id.
        id: i32,
    },
    /// A subscription (`watch::Subscription`) or a cell's lease
    /// (`CellLease`) was used in a process other than the one that made it,
    /// the child of a `fork`: the watcher thread, or the write lock, is the
    /// parent's. Make a new one in the child.
    Forked {
        /// The process that made the subscription or took the lease.
        made_in: i32,
    },
    /// Another writer holds the object's write lock: a lease
    /// (`SharedCell::lease`), or a store or publish in progress.
    /// `try_lease` says so instead of waiting; `lease`, `store` and
    /// `publish` wait for it.
    WriteLocked {
        /// The object's segment id.
        id: i32,
    },
    /// Other processes created and removed segments at the key (or at the
    /// keys of its name) every time this process looked, `rounds` times in
    /// a row, so that it could neither open nor create one.
    Contended {
        /// The key concerned.
        key: Key,
        /// What this process was doing.
        op: &'static str,
        /// How many times it looked.
        rounds: usize,
    },
    /// Something this system, or this handle, does that shmstore cannot
    /// work with.
    Unsupported {
        /// What it is.
        reason: String,
    },
    /// Any other failure of a system call: the error the kernel returned.
    Os {
        /// The segment concerned, when there is one.
        target: Option<Target>,
        /// The call that failed.
        op: &'static str,
        /// The error from the kernel.
        source: io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidKey { raw, reason } => {
                write!(f, "invalid key {raw:#010x}: {reason}")
            }
            Error::InvalidName { name, reason } => {
                write!(f, "invalid name \"{name}\": {reason}")
            }
            Error::NameTaken { name, keys, owners } => write!(
                f,
                "every key of the name {name:?} holds another object ({}); remove what holds \
                 them (`ipcs -m`, `shmstore list`), ask their owners to, or choose another name",
                keys.iter()
                    .zip(owners.iter().chain(std::iter::repeat(&None)))
                    .map(|(k, o)| match o {
                        Some(uid) => format!("{:#010x} owned by uid {uid}", *k as u32),
                        None => format!("{:#010x}", *k as u32),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Error::Namespace { dir, reason } => write!(
                f,
                "the private namespace in {} cannot be used: {reason}; keep the directory this \
                 user's (or root's), not writable by its group or others, and its secret \
                 readable by nobody else",
                dir.display()
            ),
            Error::KeyPath { path, source } => write!(
                f,
                "ftok cannot use {}: {source}; give a path that exists and that this user can stat",
                path.display()
            ),
            Error::AlreadyExists { key } => write!(
                f,
                "a segment already exists at key {key}; open it instead, or remove it (`ipcrm -M {key}`)"
            ),
            Error::NotFound { key } => write!(
                f,
                "no segment exists at key {key}; create it first, or check the key (`ipcs -m`)"
            ),
            Error::IdNotFound { id } => write!(
                f,
                "no segment has id {id}: it never existed or it was removed and detached"
            ),
            Error::PermissionDenied { target, op, source } => write!(
                f,
                "{op} on {target} refused: {source}; check the segment's mode and owner (`ipcs -m -i ID`)"
            ),
            Error::ForeignOwner {
                target,
                uid,
                cuid,
                gid,
                euid,
            } => {
                write!(
                    f,
                    "segment at {target} is owned by uid {uid} and was created by uid {cuid} (group \
                     {gid}), not by this user (uid {euid}) or root, so it is not trusted: any local \
                     user can make a segment at a key. If that user is trusted: "
                )?;
                if uid == cuid {
                    write!(f, "trust_user({uid}) (`--trust-user {uid}`), ")?;
                }
                write!(
                    f,
                    "trust_group({gid}) when its owner and creator are members of group {gid} \
                     (`--trust-group {gid}`), or allow_foreign_owner(true); otherwise remove it"
                )
            }
            Error::SizeMismatch { requested, actual } => write!(
                f,
                "the existing segment has {actual} bytes, fewer than the {requested} asked for; \
                 ask for at most {actual}, or remove and recreate it"
            ),
            Error::ZeroSize { key } => {
                write!(
                    f,
                    "cannot create a segment of 0 bytes at key {key}; give a size"
                )
            }
            Error::NoHugePages { source } => write!(
                f,
                "huge pages were requested but none are available ({source}); reserve some with \
                 `sysctl vm.nr_hugepages=N`, or create without huge pages"
            ),
            Error::LimitReached { limit, source } => match limit.proc_path() {
                Some(path) => write!(
                    f,
                    "the kernel limit {path} was reached ({source}); raise it, or remove unused \
                     segments (`ipcs -m`)"
                ),
                None => write!(
                    f,
                    "shmget: the kernel could not allocate memory for the segment ({source}); free \
                     memory or ask for less"
                ),
            },
            Error::MapFailed {
                target,
                size,
                source,
            } => write!(
                f,
                "shmat could not map the segment at {target} ({size} bytes) into this process's \
                 address space ({source}); raise the process's address-space limit (`ulimit -v`) \
                 or vm.max_map_count, or use a smaller segment"
            ),
            Error::ReadOnly { id } => write!(
                f,
                "segment id {id} is attached read-only; attach it read-write to change it"
            ),
            Error::OutOfBounds { offset, len, size } => write!(
                f,
                "bytes {offset}..{} lie outside the segment of {size} bytes",
                offset.saturating_add(*len)
            ),
            Error::NotShmstore { reason } => write!(
                f,
                "not a shmstore segment ({reason}); another program may use this key: pick another key"
            ),
            Error::IncompatibleFormat { found, supported } => write!(
                f,
                "the segment has on-segment format {found}, this build reads format {supported}; \
                 use the same shmstore version in every process"
            ),
            Error::AbiMismatch { stored, ours } => write!(
                f,
                "the segment was made on {stored}, this process is {ours}; share segments only \
                 between builds for the same platform"
            ),
            Error::TypeMismatch {
                stored,
                requested,
                differences,
            } => {
                write!(
                    f,
                    "the segment holds {stored}, but {requested} was asked for"
                )?;
                if !differences.is_empty() {
                    write!(f, " (what differs: {})", differences.join("; "))?;
                }
                f.write_str(
                    "; if the type changed, the new one is a new object: publish it under a new \
                     name (say `acme/config@2`) while readers of the old one drain, or replace the \
                     object with open_or_replace, which its old readers see as removed; if only \
                     the Rust type's name or module changed, give both sides the same type_name, \
                     or store a schema (with_schema), which makes the names not matter",
                )
            }
            Error::Corrupt { reason } => write!(
                f,
                "the segment is corrupt: {reason}; a process wrote over it or it was truncated: \
                 remove and recreate it"
            ),
            Error::InvalidLayout { reason } => write!(f, "cannot lay out the value: {reason}"),
            Error::InvalidOptions { reason } => write!(f, "invalid options: {reason}"),
            Error::InitTimeout {
                target,
                creator,
                waited,
            } => write!(
                f,
                "the segment at {target} was not initialised by its creator (pid {creator}) within \
                 {waited:?}; wait longer, or remove it if the creator is stuck"
            ),
            Error::Busy {
                target,
                pid,
                removing: true,
                waited,
            } => write!(
                f,
                "the object at {target} is being removed by pid {pid}, which has not finished after \
                 {waited:?}; wait for it (it may be stopped), or create the object anew once it is gone"
            ),
            Error::Busy {
                target,
                pid,
                removing: false,
                waited,
            } => write!(
                f,
                "the object at {target} is being judged by `shmstore gc` (pid {pid}), which has not \
                 finished after {waited:?}; wait for it (it may be stopped) and open it again"
            ),
            Error::CreatorDied {
                target,
                id,
                creator,
            } => write!(
                f,
                "the creator (pid {creator}) of the segment at {target} (id {id}) died before initialising it; \
                 remove it and create it again (open_or_create does so when the segment has the size \
                 and header it would have made itself)"
            ),
            Error::Lock { id, source } => {
                write!(
                    f,
                    "the write lock of segment id {id} cannot be taken: {source}"
                )
            }
            Error::CapacityExceeded {
                needed: Some(needed),
                capacity,
            } => write!(
                f,
                "the value's archive needs {needed} bytes, the region's buffers hold {capacity}; \
                 create the region with a larger capacity"
            ),
            Error::CapacityExceeded {
                needed: None,
                capacity,
            } => write!(
                f,
                "the value's archive does not fit in the region's {capacity}-byte buffers; create \
                 the region with a larger capacity"
            ),
            Error::ReadersBusy { pids, waited } => write!(
                f,
                "every free buffer is pinned by live readers (pids {pids:?}) after waiting {waited:?}; \
                 readers must drop their guards, or create the region with more buffers"
            ),
            Error::PinsExhausted { slots } => write!(
                f,
                "all {slots} reader pins stayed in use while this reader waited for one; drop \
                 guards sooner or read from fewer threads at once"
            ),
            Error::Forked { made_in } => write!(
                f,
                "this subscription or lease was made in process {made_in}, not in this one (a \
                 fork's child): its watcher thread or write lock is the parent's; make a new one \
                 in this process"
            ),
            Error::WriteLocked { id } => write!(
                f,
                "another writer holds the write lock of the object (segment id {id}): a lease, \
                 or a store in progress; lease() and store() wait for it, or try again later"
            ),
            Error::Removed { id } => write!(
                f,
                "the object (segment id {id}) was removed; open it again by its key if it was \
                 replaced, or stop using it"
            ),
            Error::NothingPublished => {
                write!(
                    f,
                    "nothing has been published in the region yet; wait_for_change(0, ..) waits for the first value"
                )
            }
            Error::Deserialize { reason } => write!(
                f,
                "the archived value validated but its type's Deserialize refused it ({reason}); \
                 read it in place through the guard instead"
            ),
            Error::Contended { key, op, rounds } => write!(
                f,
                "other processes created and removed segments at key {key} {rounds} times in a \
                 row while this process tried to {op}; try again, and if it persists, find the \
                 processes that keep making and removing it (`ipcs -m`, `shmstore list`)"
            ),
            Error::Unsupported { reason } => write!(
                f,
                "{reason}: shmstore does not support this; report it with the kernel's version \
                 (`uname -r`)"
            ),
            Error::Os {
                target: Some(target),
                op,
                source,
            } => write!(f, "{op} on {target} failed: {source}"),
            Error::Os {
                target: None,
                op,
                source,
            } => write!(f, "{op} failed: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::KeyPath { source, .. }
            | Error::PermissionDenied { source, .. }
            | Error::NoHugePages { source }
            | Error::LimitReached { source, .. }
            | Error::MapFailed { source, .. }
            | Error::Lock { source, .. }
            | Error::Os { source, .. } => Some(source),
            _ => None,
        }
    }
}
