//! A safe wrapper of the System V shared-memory calls: `shmget`, `shmat`,
//! `shmdt` and `shmctl` (`IPC_STAT`, `IPC_SET`, `IPC_RMID`).
//!
//! Every call into the kernel for segments is made in this file, behind
//! [`Segment`] (an attachment that detaches on drop) and [`SegmentOptions`]
//! (how to find or create one, in the style of [`std::fs::OpenOptions`]).
#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Limit, Result, Target};
use crate::key::Key;

/// `SHM_DEST` in `shm_perm.mode`: marked for removal, gone after the last detach.
const SHM_DEST: u16 = 0o1000;
/// `SHM_LOCKED` in `shm_perm.mode`: locked in memory by `SHM_LOCK`.
const SHM_LOCKED: u16 = 0o2000;

/// How to find, create and attach a segment.
///
/// ```
/// use shmstore::{Key, Segment};
///
/// let seg = Segment::options()
///     .size(4096)
///     .create(true)
///     .mode(0o600)
///     .open(Key::PRIVATE)?;
/// assert_eq!(seg.len(), 4096);
/// seg.write_at(0, b"hello")?;
/// let mut buf = [0u8; 5];
/// seg.read_at(0, &mut buf)?;
/// assert_eq!(&buf, b"hello");
/// seg.remove()?; // gone once `seg` is dropped
/// # Ok::<(), shmstore::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SegmentOptions {
    size: usize,
    create: bool,
    exclusive: bool,
    mode: u32,
    read_only: bool,
    huge_pages: bool,
    no_reserve: bool,
    allow_foreign_owner: bool,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        SegmentOptions {
            size: 0,
            create: false,
            exclusive: false,
            mode: 0o600,
            read_only: false,
            huge_pages: false,
            no_reserve: false,
            allow_foreign_owner: false,
        }
    }
}

impl SegmentOptions {
    /// Options that open an existing segment read-write, any size, mode `0o600`
    /// if it were created.
    pub fn new() -> Self {
        Self::default()
    }

    /// The size in bytes. Needed to create; when opening, a size larger than
    /// the segment's is [`Error::SizeMismatch`] and a smaller one is ignored
    /// ([`Segment::len`] gives the real size). Default 0: any size.
    pub fn size(&mut self, bytes: usize) -> &mut Self {
        self.size = bytes;
        self
    }

    /// Create the segment if it does not exist (`IPC_CREAT`). Without
    /// [`exclusive`](Self::exclusive), [`open`](Self::open) looks the key up
    /// first and creates with `IPC_CREAT | IPC_EXCL` only if it is missing,
    /// so that it knows whether it created the segment.
    pub fn create(&mut self, yes: bool) -> &mut Self {
        self.create = yes;
        self
    }

    /// With [`create`](Self::create): fail with [`Error::AlreadyExists`] if
    /// the segment exists (`IPC_EXCL`). Exactly one of many racing creators
    /// succeeds.
    pub fn exclusive(&mut self, yes: bool) -> &mut Self {
        self.exclusive = yes;
        self
    }

    /// The permission bits of a created segment (only the low 9 bits count).
    /// Default `0o600`: only this user.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode & 0o777;
        self
    }

    /// Attach read-only (`SHM_RDONLY`): a write through the mapping faults.
    pub fn read_only(&mut self, yes: bool) -> &mut Self {
        self.read_only = yes;
        self
    }

    /// Back a created segment with huge pages (`SHM_HUGETLB`). Fails with
    /// [`Error::NoHugePages`] where the system has none reserved.
    pub fn huge_pages(&mut self, yes: bool) -> &mut Self {
        self.huge_pages = yes;
        self
    }

    /// Reserve no swap space for a created segment (`SHM_NORESERVE`): a write
    /// may then get `SIGSEGV` when memory runs out.
    pub fn no_reserve(&mut self, yes: bool) -> &mut Self {
        self.no_reserve = yes;
        self
    }

    /// Accept a segment owned or created by another user than the caller and
    /// root. Off by default: another user can pre-create a segment at a
    /// guessable key and feed it to us ([`Error::ForeignOwner`]).
    pub fn allow_foreign_owner(&mut self, yes: bool) -> &mut Self {
        self.allow_foreign_owner = yes;
        self
    }

    /// Find (or create, as the options say) the segment at `key` and attach it.
    ///
    /// [`Key::PRIVATE`] always creates a new segment, whatever
    /// [`create`](Self::create) says.
    ///
    /// If this call created the segment and then cannot attach it (`IPC_STAT`,
    /// the owner or size check, or `shmat` fails), it removes the segment
    /// again before returning the error, so a failed call leaves nothing
    /// behind. A segment that existed before the call is never removed.
    pub fn open(&self, key: Key) -> Result<Segment> {
        let (id, created) = self.get(key)?;
        let attached = self.attach(id, Target::Key(key));
        if attached.is_err() && created {
            // This call made the segment, so it existed for nobody before:
            // remove it, by id, which never hits a segment made at the key
            // later. A process that found it at the key meanwhile keeps its
            // attachment until it detaches, as after any removal. The creator
            // may remove it whatever its mode; should that fail anyway, the
            // attach error is still the one to report.
            let _ = remove(id);
        }
        attached
    }

    /// `shmget` as the options say: the segment's id, and whether this call
    /// created it.
    fn get(&self, key: Key) -> Result<(i32, bool)> {
        // The mode bits also ask shmget for access; when only looking up, ask
        // for none and let shmat check the access the attachment really needs.
        // Creating is always exclusive, so that a success means this call
        // made the segment (IPC_EXCL changes nothing for Key::PRIVATE, which
        // always makes a new one).
        let mut create = self.mode as libc::c_int | libc::IPC_CREAT | libc::IPC_EXCL;
        if self.huge_pages {
            create |= libc::SHM_HUGETLB;
        }
        if self.no_reserve {
            create |= libc::SHM_NORESERVE;
        }
        if key.is_private() || (self.create && self.exclusive) {
            return shmget(key, self.size, create)
                .map(|id| (id, true))
                .map_err(|err| self.shmget_error(key, err));
        }
        if !self.create {
            return shmget(key, self.size, 0)
                .map(|id| (id, false))
                .map_err(|err| self.shmget_error(key, err));
        }
        // Open or create: look the key up, and create it exclusively only if
        // it is missing. A segment created (EEXIST) or removed (ENOENT) by
        // another process between the two calls sends us round again.
        for _ in 0..OPEN_OR_CREATE_ROUNDS {
            match shmget(key, self.size, 0) {
                Ok(id) => return Ok((id, false)),
                Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {}
                Err(err) => return Err(self.shmget_error(key, err)),
            }
            match shmget(key, self.size, create) {
                Ok(id) => return Ok((id, true)),
                Err(err) if err.raw_os_error() == Some(libc::EEXIST) => {}
                Err(err) => return Err(self.shmget_error(key, err)),
            }
        }
        Err(Error::Os {
            target: Some(Target::Key(key)),
            op: "shmget",
            source: io::Error::other(format!(
                "other processes created and removed the segment at this key {OPEN_OR_CREATE_ROUNDS} \
                 times in a row while it was being opened; try again"
            )),
        })
    }

    /// Attach the segment with this kernel id (as `ipcs -m` lists it). The
    /// size, read-only and foreign-owner options apply; the others do not.
    pub fn attach_id(&self, id: i32) -> Result<Segment> {
        self.attach(id, Target::Id(id))
    }

    fn attach(&self, id: i32, target: Target) -> Result<Segment> {
        let info = stat(id, target)?;
        if !self.allow_foreign_owner {
            // SAFETY: geteuid has no preconditions and cannot fail.
            let euid = unsafe { libc::geteuid() };
            let trusted = |uid: u32| uid == euid || uid == 0;
            if !trusted(info.uid) || !trusted(info.cuid) {
                return Err(Error::ForeignOwner {
                    target,
                    uid: info.uid,
                    cuid: info.cuid,
                    euid,
                });
            }
        }
        if self.size > info.size {
            return Err(Error::SizeMismatch {
                requested: self.size,
                actual: info.size,
            });
        }
        let flags = if self.read_only { libc::SHM_RDONLY } else { 0 };
        // SAFETY: a null address lets the kernel choose where to map, so no
        // existing mapping of ours is replaced.
        let addr = unsafe { libc::shmat(id, std::ptr::null(), flags) };
        if addr as isize == -1 {
            let err = io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::EACCES) | Some(libc::EPERM) => Error::PermissionDenied {
                    target,
                    op: "shmat",
                    source: err,
                },
                Some(libc::EINVAL) | Some(libc::EIDRM) => Error::IdNotFound { id },
                Some(libc::ENOMEM) => Error::MapFailed {
                    target,
                    size: info.size,
                    source: err,
                },
                _ => Error::Os {
                    target: Some(target),
                    op: "shmat",
                    source: err,
                },
            });
        }
        let ptr = NonNull::new(addr.cast::<u8>()).ok_or_else(|| Error::Os {
            target: Some(target),
            op: "shmat",
            source: io::Error::other("the kernel mapped the segment at address 0"),
        })?;
        Ok(Segment {
            id,
            key: info.key,
            ptr,
            len: info.size,
            read_only: self.read_only,
        })
    }

    fn shmget_error(&self, key: Key, err: io::Error) -> Error {
        match err.raw_os_error() {
            Some(libc::EEXIST) => Error::AlreadyExists { key },
            Some(libc::ENOENT) => Error::NotFound { key },
            Some(libc::EACCES) => Error::PermissionDenied {
                target: Target::Key(key),
                op: "shmget",
                source: err,
            },
            Some(libc::EPERM) if self.huge_pages => Error::PermissionDenied {
                target: Target::Key(key),
                op: "shmget with SHM_HUGETLB (needs CAP_IPC_LOCK or the hugetlb group)",
                source: err,
            },
            Some(libc::EINVAL) => {
                // The segment exists but is smaller than asked for, or the size
                // is outside the kernel's bounds for a new segment.
                if !key.is_private() {
                    // Size 0 and no flags only looks up.
                    if let Ok(existing) = shmget(key, 0, 0)
                        && let Ok(info) = stat(existing, Target::Key(key))
                        && info.size < self.size
                    {
                        return Error::SizeMismatch {
                            requested: self.size,
                            actual: info.size,
                        };
                    }
                }
                if self.size == 0 {
                    Error::ZeroSize { key }
                } else if read_proc_u64("/proc/sys/kernel/shmmax")
                    .is_some_and(|max| self.size as u64 > max)
                {
                    Error::LimitReached {
                        limit: Limit::Shmmax,
                        source: err,
                    }
                } else {
                    Error::Os {
                        target: Some(Target::Key(key)),
                        op: "shmget",
                        source: err,
                    }
                }
            }
            Some(libc::ENOMEM) if self.huge_pages => Error::NoHugePages { source: err },
            Some(libc::ENOMEM) => Error::LimitReached {
                limit: Limit::Memory,
                source: err,
            },
            Some(libc::ENOSPC) => {
                let ids = std::fs::read_to_string("/proc/sysvipc/shm")
                    .map(|s| s.lines().count().saturating_sub(1) as u64)
                    .ok();
                let mni = read_proc_u64("/proc/sys/kernel/shmmni");
                let limit = match (ids, mni) {
                    (Some(ids), Some(mni)) if ids >= mni => Limit::Shmmni,
                    _ => Limit::Shmall,
                };
                Error::LimitReached { limit, source: err }
            }
            _ => Error::Os {
                target: Some(Target::Key(key)),
                op: "shmget",
                source: err,
            },
        }
    }
}

/// How many times an open-or-create looks the key up and tries to create the
/// segment before giving up on other processes creating and removing it.
const OPEN_OR_CREATE_ROUNDS: usize = 16;

fn shmget(key: Key, size: usize, flags: libc::c_int) -> io::Result<i32> {
    // SAFETY: shmget takes plain integers and touches no memory of ours.
    let id = unsafe { libc::shmget(key.raw(), size, flags) };
    if id < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(id)
}

fn read_proc_u64(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// What the kernel knows of a segment (`shmctl(IPC_STAT)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The segment's id.
    pub id: i32,
    /// Its key; [`Key::PRIVATE`] for private segments and for segments
    /// marked for removal.
    pub key: Key,
    /// Its size in bytes, as created.
    pub size: usize,
    /// The permission bits (low 9 bits of `shm_perm.mode`).
    pub mode: u32,
    /// `IPC_RMID` was called: it disappears after the last detach.
    pub marked_for_removal: bool,
    /// Locked in memory (`SHM_LOCK`).
    pub locked: bool,
    /// Owner's user id.
    pub uid: u32,
    /// Owner's group id.
    pub gid: u32,
    /// Creator's user id.
    pub cuid: u32,
    /// Creator's group id.
    pub cgid: u32,
    /// Process id of the creator.
    pub cpid: i32,
    /// Process id of the last `shmat`/`shmdt`.
    pub lpid: i32,
    /// Number of current attachments.
    pub nattch: u64,
    /// Time of the last attach, if any.
    pub atime: Option<SystemTime>,
    /// Time of the last detach, if any.
    pub dtime: Option<SystemTime>,
    /// Time of the creation or the last `IPC_SET`.
    pub ctime: Option<SystemTime>,
}

fn time_of(secs: libc::time_t) -> Option<SystemTime> {
    (secs > 0).then(|| UNIX_EPOCH + Duration::from_secs(secs as u64))
}

fn stat_raw(id: i32, target: Target) -> Result<libc::shmid_ds> {
    let mut ds = MaybeUninit::<libc::shmid_ds>::zeroed();
    // SAFETY: `ds` is a valid, writable shmid_ds for IPC_STAT to fill.
    let rc = unsafe { libc::shmctl(id, libc::IPC_STAT, ds.as_mut_ptr()) };
    if rc < 0 {
        return Err(ctl_error(
            id,
            target,
            "IPC_STAT",
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: shmctl succeeded, so the kernel filled the struct (and it was
    // zeroed before, which is a valid value of this plain C struct anyway).
    Ok(unsafe { ds.assume_init() })
}

fn stat(id: i32, target: Target) -> Result<SegmentInfo> {
    let ds = stat_raw(id, target)?;
    let raw_key = ds.shm_perm.__key;
    Ok(SegmentInfo {
        id,
        key: if raw_key == 0 {
            Key::PRIVATE
        } else {
            Key::new(raw_key)?
        },
        size: ds.shm_segsz,
        mode: u32::from(ds.shm_perm.mode & 0o777),
        marked_for_removal: ds.shm_perm.mode & SHM_DEST != 0,
        locked: ds.shm_perm.mode & SHM_LOCKED != 0,
        uid: ds.shm_perm.uid,
        gid: ds.shm_perm.gid,
        cuid: ds.shm_perm.cuid,
        cgid: ds.shm_perm.cgid,
        cpid: ds.shm_cpid,
        lpid: ds.shm_lpid,
        nattch: ds.shm_nattch,
        atime: time_of(ds.shm_atime),
        dtime: time_of(ds.shm_dtime),
        ctime: time_of(ds.shm_ctime),
    })
}

fn ctl_error(id: i32, target: Target, op: &'static str, err: io::Error) -> Error {
    match err.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => Error::PermissionDenied {
            target,
            op,
            source: err,
        },
        Some(libc::EINVAL) | Some(libc::EIDRM) => Error::IdNotFound { id },
        _ => Error::Os {
            target: Some(target),
            op,
            source: err,
        },
    }
}

fn set(id: i32, change: impl FnOnce(&mut libc::ipc_perm)) -> Result<()> {
    let target = Target::Id(id);
    let mut ds = stat_raw(id, target)?;
    change(&mut ds.shm_perm);
    // SAFETY: `ds` is a valid shmid_ds; IPC_SET only reads uid, gid and mode.
    let rc = unsafe { libc::shmctl(id, libc::IPC_SET, &mut ds) };
    if rc < 0 {
        return Err(ctl_error(id, target, "IPC_SET", io::Error::last_os_error()));
    }
    Ok(())
}

fn remove(id: i32) -> Result<()> {
    // SAFETY: IPC_RMID does not read the buffer argument, which may be null.
    let rc = unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
    if rc < 0 {
        return Err(ctl_error(
            id,
            Target::Id(id),
            "IPC_RMID",
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// A System V shared-memory segment attached to this process.
///
/// Dropping it detaches (`shmdt`); the segment itself lives on in the kernel
/// until it is [removed](Segment::remove) and every process has detached.
///
/// Other processes may write the memory at any time, so the bytes are reached
/// through atomics ([`read_at`](Self::read_at), [`write_at`](Self::write_at))
/// or through the raw pointer by layers that bring their own synchronisation.
#[derive(Debug)]
pub struct Segment {
    id: i32,
    key: Key,
    ptr: NonNull<u8>,
    len: usize,
    read_only: bool,
}

// SAFETY: the mapping belongs to the process, not a thread, and stays valid
// until the Segment is dropped; every access through &self is atomic.
unsafe impl Send for Segment {}
// SAFETY: as above: shared access from several threads only uses atomics.
unsafe impl Sync for Segment {}

impl Segment {
    /// Options to find, create and attach a segment.
    pub fn options() -> SegmentOptions {
        SegmentOptions::new()
    }

    /// Attach the segment with this id read-write, refusing foreign owners.
    pub fn attach_id(id: i32) -> Result<Segment> {
        SegmentOptions::new().attach_id(id)
    }

    /// `IPC_STAT` of the segment with this id, without attaching it.
    pub fn info_by_id(id: i32) -> Result<SegmentInfo> {
        stat(id, Target::Id(id))
    }

    /// `IPC_RMID` of the segment with this id, without attaching it.
    pub fn remove_by_id(id: i32) -> Result<()> {
        remove(id)
    }

    /// The kernel's id of the segment.
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The key the segment was found by, as the kernel had it at attach time
    /// ([`Key::PRIVATE`] for private segments).
    pub fn key(&self) -> Key {
        self.key
    }

    /// The segment's size in bytes, as the kernel has it (not the size asked
    /// for when opening).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the segment has no bytes (never true for a real segment).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the attachment is read-only (`SHM_RDONLY`).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The first byte of the mapping, valid for [`len`](Self::len) bytes while
    /// `self` lives. Writing through it faults if the attachment is read-only.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    fn check_range(&self, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(Error::OutOfBounds {
                offset,
                len,
                size: self.len,
            }),
        }
    }

    /// Copy `buf.len()` bytes at `offset` out of the segment. Bytes another
    /// process writes meanwhile may be seen half old, half new: the layers above
    /// bring the synchronisation that rules that out.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.check_range(offset, buf.len())?;
        for (i, out) in buf.iter_mut().enumerate() {
            // SAFETY: offset + i < len (checked), so the byte is inside the
            // mapping, which lives as long as self; u8 needs no alignment.
            let cell = unsafe { AtomicU8::from_ptr(self.ptr.as_ptr().add(offset + i)) };
            *out = cell.load(Ordering::Relaxed);
        }
        Ok(())
    }

    /// Copy `data` into the segment at `offset`. Fails with
    /// [`Error::ReadOnly`] on a read-only attachment.
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly { id: self.id });
        }
        self.check_range(offset, data.len())?;
        for (i, byte) in data.iter().enumerate() {
            // SAFETY: as in read_at; the mapping is writable (not read-only).
            let cell = unsafe { AtomicU8::from_ptr(self.ptr.as_ptr().add(offset + i)) };
            cell.store(*byte, Ordering::Relaxed);
        }
        Ok(())
    }

    /// `IPC_STAT`: size, mode, owner, creator, pids, attach count and times.
    pub fn info(&self) -> Result<SegmentInfo> {
        stat(self.id, Target::Id(self.id))
    }

    /// `IPC_SET` of the permission bits (low 9 bits of `mode`). Only the
    /// owner, the creator or root may.
    pub fn set_mode(&self, mode: u32) -> Result<()> {
        set(self.id, |perm| {
            perm.mode = (perm.mode & !0o777) | (mode & 0o777) as u16;
        })
    }

    /// `IPC_SET` of the owner's uid and gid. Only the owner, the creator or
    /// root may.
    pub fn set_owner(&self, uid: u32, gid: u32) -> Result<()> {
        set(self.id, |perm| {
            perm.uid = uid;
            perm.gid = gid;
        })
    }

    /// `IPC_RMID`: the key is free at once; the memory stays usable by every
    /// process attached until its last detach, then it is gone.
    pub fn remove(&self) -> Result<()> {
        remove(self.id)
    }

    /// Detach now (`shmdt`), reporting a failure that `drop` would ignore.
    pub fn detach(self) -> Result<()> {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: the pointer came from shmat and is detached exactly once,
        // since `this` is never dropped.
        let rc = unsafe { libc::shmdt(this.ptr.as_ptr().cast()) };
        if rc < 0 {
            return Err(Error::Os {
                target: Some(Target::Id(this.id)),
                op: "shmdt",
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: the pointer came from shmat and is detached exactly once;
        // nothing borrowed from self outlives it.
        unsafe {
            libc::shmdt(self.ptr.as_ptr().cast());
        }
    }
}
